"""``ichpipe features``: export the expansion predictor's feature table (and labels) as CSV.

From the contest tables (``--contest DIR``: table1 + table2 first scan +
table3 Hemo/ED of the first accession) or from the results store (first scan
of every patient: the features ``ichpipe run`` recorded, or the imported
tables', and the stored clinical record). Heavy modules are imported inside
the command so that ``ichpipe --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ichpipe.errors import UsageError
from ichpipe.pipeline.cli._common import config_option, echo_json, handle_errors, load_cli_config

__all__ = ["features"]


def store_overrides(store_location: str | None) -> dict[str, Any]:
    """Config overrides for ``--store PATH|URL``."""
    if store_location is None:
        return {}
    if "://" in store_location:
        return {"store": {"url": store_location}}
    return {"store": {"url": None, "path": store_location}}


@click.command()
@click.option("--contest", "contest_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of the 2023 contest tables (table1, table2, table3 Hemo/ED, appendix1).")
@click.option("--from-store", is_flag=True, help="Read the patients of the results store instead.")
@click.option("--store", "store_location", default=None, metavar="PATH|URL",
              help="Results store (overrides store.path / store.url); implies --from-store.")
@click.option("--out", "out_csv", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Features CSV to write (patient_id, feature_space, one column per feature).")
@click.option("--labels-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the expansion labels under the configured rule (patient_id, label, rule).")
@click.option("--allow-post-baseline", is_flag=True, default=None,
              help="Include clinical fields recorded after the first scan (treatments); see the model card.")
@click.option("--missing", type=click.Choice(["empty", "drop", "fail"]), default=None,
              help="A patient lacking some features (e.g. no radiomics row): keep it with empty cells, leave it out, "
              "or stop (default predictor.missing_features: empty). Every such patient is listed either way.")
@click.option("--json", "as_json", is_flag=True, help="Print a summary as JSON on stdout.")
@config_option
@handle_errors
def features(
    contest_dir: Path | None,
    from_store: bool,
    store_location: str | None,
    out_csv: Path,
    labels_out: Path | None,
    allow_post_baseline: bool | None,
    missing: str | None,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """Write the predictor's feature table (one row per patient) as CSV.

    \b
    From the 2023 contest tables: --contest DIR reads, in DIR,
      table1_clinical.csv        clinical fields (through predictor.clinical_mapping)
      table2_volumes_locations.csv  first-scan volumes and vascular-territory ratios
      table3_radiomics_Hemo.csv / _ED.csv  radiomics of the first-scan accession
      appendix1_accession_times.csv  scan times (for --labels-out)
    From the results store: --from-store (after `ichpipe run` or `ichpipe timeline import`).

    Outcomes (90-day mRS), data splits and identifiers are never columns. A
    patient lacking features is listed with what it lacks (see --missing).
    Exit status 0 on success, 1 when the inputs cannot be read (or, with
    --missing fail, a patient lacks features), 2 on bad usage.
    """
    from_store = from_store or store_location is not None
    if (contest_dir is None) == (not from_store):
        raise UsageError("Give exactly one source: --contest DIR or --from-store (--store PATH).")
    overrides = store_overrides(store_location)
    if allow_post_baseline is not None:
        overrides["predictor"] = {"allow_post_baseline": allow_post_baseline}
    config = load_cli_config(config_path, overrides)
    cfg = config.predictor

    from ichpipe.dicom_io._privacy import remember_values
    from ichpipe.pipeline.risk.feature_table import (
        contest_feature_table,
        contest_labels,
        write_features_csv,
        write_labels_csv,
    )
    from ichpipe.pipeline.risk.missing_features import apply_missing_policy, missing_by_patient
    from ichpipe.pipeline.risk.store_features import store_feature_table
    from ichpipe.pipeline.serial.clinical import load_clinical_mapping

    mapping = load_clinical_mapping(cfg.clinical_mapping)
    rule = config.expansion.rule()
    labels: dict[str, int | None] | None = None
    if contest_dir is not None:
        if not contest_dir.is_dir():
            raise UsageError(f"--contest {contest_dir} is not a folder.")
        table = contest_feature_table(contest_dir, clinical_mapping=mapping,
                                      allow_post_baseline=cfg.allow_post_baseline)
        if labels_out is not None:
            labels = contest_labels(contest_dir, rule=rule)
    else:
        from ichpipe.pipeline.serial.expansion import evaluate_timelines, labels_by_patient
        from ichpipe.pipeline.serial.store import open_store
        from ichpipe.pipeline.serial.timeline import load_timelines

        with open_store(config.store, create=False) as store:
            table = store_feature_table(store, clinical_mapping=mapping,
                                        allow_post_baseline=cfg.allow_post_baseline)
            if labels_out is not None:
                labels = labels_by_patient(evaluate_timelines(load_timelines(store), rule))
    policy = missing or cfg.missing_features
    lacking = missing_by_patient(table)
    # IDs in error messages and logs are masked unless --log-phi; the listing on stdout is the result.
    remember_values("PatientID", [p.patient_id for p in lacking])
    if policy == "fail" and lacking and not as_json:
        for p in lacking:
            click.echo(f"{p.patient_id}: {p.describe()}")
    table, missing_report = apply_missing_policy(table, policy)
    write_features_csv(table, out_csv)
    summary: dict[str, Any] = {
        "features_csv": str(out_csv),
        "n_patients": table.n_patients,
        "n_features": len(table.feature_names),
        "feature_space": table.feature_space,
        "missing": missing_report.to_dict(),
    }
    if labels is not None and labels_out is not None:
        write_labels_csv(labels, labels_out, rule=f"{rule.name}: {rule.describe()}")
        values = list(labels.values())
        summary.update({
            "labels_csv": str(labels_out),
            "expanded": sum(v == 1 for v in values),
            "not_expanded": sum(v == 0 for v in values),
            "undetermined": sum(v is None for v in values),
        })
    if as_json:
        echo_json(summary)
    else:
        click.echo(
            f"{summary['n_patients']} patients x {summary['n_features']} features ({summary['feature_space']}) "
            f"-> {out_csv}"
        )
        for line in missing_report.lines():
            click.echo(line)
        if "labels_csv" in summary:
            click.echo(
                f"labels: {summary['expanded']} expanded, {summary['not_expanded']} not expanded, "
                f"{summary['undetermined']} undetermined -> {labels_out}"
            )
