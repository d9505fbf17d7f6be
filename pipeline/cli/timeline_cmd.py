"""``ichpipe timeline`` (one patient's serial scans, ``timeline import``) and ``ichpipe expansion``.

The pipeline modules (SQLAlchemy, matplotlib) are imported inside the
commands so that ``ichpipe --help`` stays fast.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from ichpipe.errors import ConfigError, UsageError
from ichpipe.pipeline.cli._common import config_option, echo_json, handle_errors, load_cli_config, redact

__all__ = ["expansion", "timeline"]

log = logging.getLogger(__name__)

_VOLUME_UNITS = ("mL", "cm3", "mm3", "uL")


def _store_option(func: Any) -> Any:
    return click.option(
        "--store",
        "store_location",
        default=None,
        metavar="PATH|URL",
        help="Results store: an SQLite file or a database URL (overrides store.path / store.url).",
    )(func)


def _store_overrides(store_location: str | None) -> dict[str, Any]:
    if store_location is None:
        return {}
    if "://" in store_location:
        return {"store": {"url": store_location}}
    return {"store": {"url": None, "path": store_location}}


def _rule_options(func: Any) -> Any:
    for option in reversed(
        (
            click.option("--preset", default=None, help="Expansion definition by name (expansion.preset)."),
            click.option("--absolute-ml", type=float, default=None, help="Absolute growth threshold in mL."),
            click.option("--relative-pct", type=float, default=None, help="Relative growth threshold in %."),
            click.option("--window-h", type=float, default=None, help="Window in hours from onset."),
        )
    ):
        func = option(func)
    return func


def _expansion_overrides(
    preset: str | None, absolute_ml: float | None, relative_pct: float | None, window_h: float | None
) -> dict[str, Any]:
    values = {"preset": preset, "absolute_ml": absolute_ml, "relative_pct": relative_pct, "window_h": window_h}
    given = {k: v for k, v in values.items() if v is not None}
    return {"expansion": given} if given else {}


@click.group(invoke_without_command=True)
@click.option("--patient", "patient_id", default=None, help="PatientID whose timeline to show.")
@click.option("--issuer", default=None, help="IssuerOfPatientID, when one ID is used by several issuers.")
@click.option("--json", "as_json", is_flag=True, help="Print the timeline as JSON on stdout.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the timeline plot (PNG) to this file.",
)
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a static QC page (key images, volumes, changes, verdict; sortable) to this file.")
@click.option("--outputs", "outputs_root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where `ichpipe run` wrote its outputs, to find key images (default: outputs.directory).")
@_rule_options
@_store_option
@config_option
@click.pass_context
@handle_errors
def timeline(
    ctx: click.Context,
    patient_id: str | None,
    issuer: str | None,
    as_json: bool,
    plot_path: Path | None,
    html_path: Path | None,
    outputs_root: Path | None,
    preset: str | None,
    absolute_ml: float | None,
    relative_pct: float | None,
    window_h: float | None,
    store_location: str | None,
    config_path: Path | None,
) -> None:
    """Show one patient's serial scans (ordered by time, one per accession) and expansion verdict.

    Exit status 0 on success, 1 when the patient is not in the store, 2 on bad usage or config.
    """
    if ctx.invoked_subcommand is not None:
        if patient_id is not None or as_json or plot_path is not None:
            raise UsageError("--patient, --json and --plot belong to `ichpipe timeline`, not to its subcommands.")
        return
    if patient_id is None:
        raise UsageError("Give --patient ID to show a timeline, or use `ichpipe timeline import`.")
    from ichpipe.pipeline.serial.timeline_reports import TimelineOptions, show_timeline

    overrides = {**_store_overrides(store_location),
                 **_expansion_overrides(preset, absolute_ml, relative_pct, window_h)}
    config = load_cli_config(config_path, overrides)
    report = show_timeline(
        TimelineOptions(
            store=config.store,
            rule=config.expansion.rule(),
            patient_id=patient_id,
            issuer_of_patient_id=issuer,
            plot_path=plot_path,
        )
    )
    if html_path is not None:
        from ichpipe.pipeline.serial.timeline_page import write_timeline_page

        write_timeline_page(report, html_path, outputs_root=outputs_root or Path(config.outputs.directory))
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(report.to_text())
        if html_path is not None:
            click.echo(f"QC page: {html_path}")
    sys.exit(report.exit_code)


_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)

_IMPORT_EPILOG = """\b
The 2023 contest tables (problem E, ../shared/data/contest-2023E), file by option:
  ichpipe timeline import --mapping contest_2023e \\
      --volumes  table2_volumes_locations.csv \\
      --times    appendix1_accession_times.csv \\
      --clinical table1_clinical.csv
table1 gives the hours from onset to the first scan: without --clinical the
48-h window is counted from each patient's first scan (2 more patients read
"expanded" on the contest's sub001-sub100). table3_radiomics_*.csv are not
imported: `ichpipe features --contest DIR` reads them.

\b
Surgery: a post-surgical follow-up never counts as "not expanded". Mark it per
scan (volumes table, --post-surgical-col or `post_surgical:` in a mapping's
scan group) or per patient (clinical table, --surgery-datetime-col or
`surgery_datetime:`). Warnings go to stderr and name the patients (masked as
[PatientID] unless `ichpipe --log-phi`).
"""


def _warn_without_onset(n: int, n_patients: int) -> None:
    """The one loud warning of an import that leaves patients without an onset time."""
    bar = "!" * 78
    click.echo(
        f"{bar}\nWARNING: {n} of the {n_patients} imported patient(s) have no symptom-onset time in the store.\n"
        "Their 48-h expansion window is counted from the FIRST SCAN instead of onset, so follow-ups later than\n"
        "48 h after onset can count and more patients can read 'expanded' (on the contest tables sub001-sub100:\n"
        "25 instead of 23). Give the onset with --clinical (contest: --clinical table1_clinical.csv), or use\n"
        f"--onset-hours-col / --onset-datetime-col.\n{bar}",
        err=True,
    )


@timeline.command("import", epilog=_IMPORT_EPILOG)
@click.option("--volumes", type=_FILE, default=None,
              help="CSV of hematoma volumes per scan (long or wide). Contest: table2_volumes_locations.csv.")
@click.option("--times", type=_FILE, default=None,
              help="CSV of scan date-times per accession number. Contest: appendix1_accession_times.csv.")
@click.option("--clinical", type=_FILE, default=None,
              help="CSV of onset time (and surgery time) per patient. Contest: table1_clinical.csv.")
@click.option(
    "--mapping",
    default=None,
    help="Column mapping: a shipped name (contest_2023e) or a YAML/JSON file. "
    "Without it, name the columns of long tables with the --*-col options.",
)
@click.option("--patient-col", default=None, help="Long tables: patient ID column (volumes and clinical).")
@click.option("--accession-col", default=None, help="Long tables: accession number column.")
@click.option("--volume-col", default=None, help="Long tables: volume column.")
@click.option("--datetime-col", default=None, help="Long tables: scan date-time column.")
@click.option("--volume-unit", type=click.Choice(_VOLUME_UNITS), default="mL", show_default=True)
@click.option("--post-surgical-col", default=None,
              help="Long volumes table: column marking a scan taken after surgery (1/yes/true).")
@click.option("--onset-hours-col", default=None, help="Clinical: hours from onset to the first scan.")
@click.option("--onset-datetime-col", default=None, help="Clinical: onset date-time.")
@click.option("--surgery-datetime-col", default=None,
              help="Clinical: date-time of hematoma surgery (later scans are post-surgical).")
@click.option("--datetime-format", default="iso", show_default=True, help="iso, dicom or a strptime format.")
@click.option("--json", "as_json", is_flag=True, help="Print the import report as JSON on stdout.")
@_store_option
@config_option
@handle_errors
def import_cmd(
    volumes: Path | None,
    times: Path | None,
    clinical: Path | None,
    mapping: str | None,
    patient_col: str | None,
    accession_col: str | None,
    volume_col: str | None,
    datetime_col: str | None,
    volume_unit: str,
    post_surgical_col: str | None,
    onset_hours_col: str | None,
    onset_datetime_col: str | None,
    surgery_datetime_col: str | None,
    datetime_format: str,
    as_json: bool,
    store_location: str | None,
    config_path: Path | None,
) -> None:
    """Import volumes measured elsewhere (and onset and surgery times) into the results store.

    Exit status 0 on success, 1 when a table row cannot be read, 2 on bad usage,
    a mapping that does not fit the tables, or bad config.
    """
    from ichpipe.dicom_io._privacy import remember_values
    from ichpipe.pipeline.serial.import_mappings import load_mapping, long_mapping
    from ichpipe.pipeline.serial.timeline_import import ImportOptions, run_import

    if volumes is None and clinical is None:
        raise UsageError("Give --volumes, --clinical, or both.")
    column_options = (patient_col, accession_col, volume_col, datetime_col, onset_hours_col, onset_datetime_col,
                      post_surgical_col, surgery_datetime_col)
    if mapping is not None:
        if any(c is not None for c in column_options):
            raise UsageError("Use either --mapping or the --*-col options, not both.")
        table_mapping = load_mapping(mapping)
    else:
        if patient_col is None:
            raise UsageError("Give --mapping NAME|FILE, or name the columns (at least --patient-col).")
        try:
            table_mapping = long_mapping(
                patient=patient_col,
                accession=accession_col,
                volume=volume_col,
                datetime_column=datetime_col,
                volume_unit=volume_unit,  # type: ignore[arg-type]  # click.Choice checked it
                onset_to_first_scan_h=onset_hours_col,
                onset_datetime=onset_datetime_col,
                datetime_format=datetime_format,
                post_surgical=post_surgical_col,
                surgery_datetime=surgery_datetime_col,
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    config = load_cli_config(config_path, _store_overrides(store_location))
    report = run_import(
        ImportOptions(store=config.store, mapping=table_mapping, volumes=volumes, times=times, clinical=clinical)
    )
    # Patient IDs of the tables are identifiers like a header's PatientID: masked unless --log-phi.
    remember_values("PatientID", [p for w in report.warnings for p in w.patients] + list(report.without_onset))
    for warning in report.warnings:
        log.warning("%s", warning.text)
    if report.n_without_onset and volumes is not None:
        _warn_without_onset(report.n_without_onset, report.n_patients)
    if as_json:
        data = report.to_dict()
        data["warnings"] = [redact(w) for w in data["warnings"]]
        echo_json(data)
    else:
        click.echo(
            f"Imported {report.n_scans} scan(s) of {report.n_patients} patient(s) and "
            f"{report.n_clinical} clinical row(s) into {report.store} (mapping {report.mapping})."
        )
        if report.warnings:
            click.echo(f"{len(report.warnings)} warning(s) on stderr.")
    sys.exit(report.exit_code)


@timeline.command("prefer")
@click.option("--accession", default=None, help="Accession number of the scan (checked against the series).")
@click.option("--series", "series_uid", required=True, help="SeriesInstanceUID to use for that scan.")
@click.option("--auto", "release", is_flag=True,
              help="Undo the choice instead: the scan's latest run is used again.")
@_store_option
@config_option
@handle_errors
def prefer_cmd(accession: str | None, series_uid: str, release: bool, store_location: str | None,
               config_path: Path | None) -> None:
    """Choose which measured series the timeline uses for a scan (accession number).

    The choice stays until you choose again: a later `ichpipe run` of another
    series of the same accession is recorded beside it without taking its place.
    `ichpipe timeline --patient ID` lists each scan's series and which one is used.
    Exit status 0 on success, 1 when the series is not recorded or belongs to
    another accession, 2 on bad usage or config.
    """
    from ichpipe.pipeline.serial.store import open_store, release_preferred, set_preferred

    config = load_cli_config(config_path, _store_overrides(store_location))
    with open_store(config.store, create=False) as store:
        if release:
            used = release_preferred(store, series_uid)
            click.echo(f"The scan of series {series_uid} uses its latest run again: series {used}.")
        else:
            set_preferred(store, series_uid, accession_number=accession)
            click.echo(f"Series {series_uid} is now the one used for its scan (your choice).")


@timeline.command("remeasure")
@click.option("--patient", "patients", multiple=True, metavar="ID",
              help="Patient whose scans to measure one way (repeatable).")
@click.option("--all", "all_mixed", is_flag=True,
              help="Every patient of the store whose scans were measured in different ways (a batch).")
@click.option("--issuer", default=None, help="IssuerOfPatientID, when one ID is used by several issuers.")
@click.option("--segmenter", default=None, help="Method to measure with (default: the config's, as for `run`).")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Checkpoint of a network segmenter (default: models.default_checkpoint).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output root for the new reports (default outputs.directory).")
@click.option("--dry-run", is_flag=True, help="Only list which scans would be run again.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON on stdout.")
@_store_option
@config_option
@handle_errors
def remeasure_cmd(patients: tuple[str, ...], all_mixed: bool, issuer: str | None, segmenter: str | None,
                  checkpoint: Path | None, device: str | None, out: Path | None, dry_run: bool, as_json: bool,
                  store_location: str | None, config_path: Path | None) -> None:
    """Measure every scan of a patient one way, so that expansion compares like with like.

    Runs the series each scan uses again from the study folder it was read
    from, with one segmenter and checkpoint; scans already measured that way
    are left alone. Scans imported from tables, or whose study has moved,
    cannot be run again and are listed. Exit status 0 when every scan is
    measured one way, 1 when a scan could not be run again, 2 on bad usage.
    """
    from ichpipe.pipeline.jobs.remeasure_timeline import RemeasureOptions, remeasure_timelines

    config = load_cli_config(config_path, _store_overrides(store_location))
    report = remeasure_timelines(
        RemeasureOptions(patients=patients, all_mixed=all_mixed, issuer_of_patient_id=issuer, segmenter=segmenter,
                         checkpoint=checkpoint, device=device, out=out, dry_run=dry_run),  # type: ignore[arg-type]
        config,
    )
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(report.to_text())
    sys.exit(report.exit_code)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print every patient's result as JSON on stdout.")
@click.option("--csv", "as_csv", is_flag=True, help="Print one CSV row per patient on stdout.")
@click.option(
    "--plot-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write one timeline plot (PNG) per patient into this folder.",
)
@_rule_options
@_store_option
@config_option
@handle_errors
def expansion(
    as_json: bool,
    as_csv: bool,
    plot_dir: Path | None,
    preset: str | None,
    absolute_ml: float | None,
    relative_pct: float | None,
    window_h: float | None,
    store_location: str | None,
    config_path: Path | None,
) -> None:
    """Hematoma expansion of every patient in the store: expanded, not expanded or undetermined.

    The rule comes from the config (expansion.*) and the options. Exit status 0
    on success, 1 when the store is missing or empty, 2 on bad usage or config.
    """
    if as_json and as_csv:
        raise UsageError("Choose one of --json and --csv.")
    from ichpipe.pipeline.serial.timeline_reports import ExpansionOptions, summarize_expansion

    overrides = {**_store_overrides(store_location),
                 **_expansion_overrides(preset, absolute_ml, relative_pct, window_h)}
    config = load_cli_config(config_path, overrides)
    try:
        rule = config.expansion.rule()
    except ValueError as exc:  # pragma: no cover - the config loader validates it already
        raise ConfigError(str(exc)) from exc
    report = summarize_expansion(ExpansionOptions(store=config.store, rule=rule, plot_dir=plot_dir))
    if as_json:
        echo_json(report.to_dict())
    elif as_csv:
        click.echo(report.to_csv(), nl=False)
    else:
        click.echo(report.to_text())
    sys.exit(report.exit_code)
