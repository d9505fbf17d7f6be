"""``ichpipe predict-expansion``: probability of hematoma expansion per patient from a predictor checkpoint.

Imports no training code: only the checkpoint loader, the feature table and
the inference module.
"""

from __future__ import annotations

from pathlib import Path

import click

from ichpipe.errors import CheckpointError, PredictorInputError, UsageError
from ichpipe.pipeline.cli._common import config_option, echo_json, handle_errors, load_cli_config
from ichpipe.pipeline.cli.features_cmd import store_overrides

__all__ = ["predict_expansion"]


@click.command("predict-expansion")
@click.option("--patient", "patients", multiple=True, metavar="ID",
              help="Patient ID (repeatable). Without --features the patient's first scan and clinical record "
              "are read from the results store.")
@click.option("--features", "features_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Features CSV (`ichpipe features`); every row, or only the --patient rows.")
@click.option("--checkpoint", "checkpoint_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Predictor checkpoint (default predictor.checkpoint: the shipped contest model).")
@click.option("--impute/--no-impute", default=None,
              help="Fill missing features with the training medians instead of refusing (predictor.impute_missing).")
@click.option("--store", "store_location", default=None, metavar="PATH|URL",
              help="Results store (overrides store.path / store.url).")
@click.option("--json", "as_json", is_flag=True, help="Print the predictions as JSON on stdout.")
@config_option
@handle_errors
def predict_expansion(
    patients: tuple[str, ...],
    features_csv: Path | None,
    checkpoint_path: Path | None,
    impute: bool | None,
    store_location: str | None,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """Predict the probability of hematoma expansion, with the model version (checkpoint SHA-256).

    Every prediction is printed with the model's cross-validated AUC and its
    95 % interval, and a plain warning when that interval includes 0.5.
    Inputs missing a required feature are refused with the feature names,
    unless imputation is asked for. Exit status 0 on success, 1 when the
    inputs or checkpoint cannot be used, 2 on bad usage.
    """
    if features_csv is None and not patients:
        raise UsageError("Give --patient ID (read from the results store) and/or --features CSV.")
    config = load_cli_config(config_path, store_overrides(store_location))
    cfg = config.predictor

    from ichpipe.dicom_io._privacy import remember_values
    from ichpipe.pipeline.config.models_config import resolve_checkpoint
    from ichpipe.pipeline.risk.feature_table import FeatureTable, read_features_csv
    from ichpipe.pipeline.risk.infer import load_predictor, predict

    path = checkpoint_path or resolve_checkpoint(cfg.checkpoint)
    if not path.is_file():
        raise CheckpointError(
            f"Predictor checkpoint {path} does not exist; pass --checkpoint FILE or set predictor.checkpoint "
            "(`ichpipe train predictor` writes one)."
        )
    model = load_predictor(path)
    table: FeatureTable
    if features_csv is not None:
        table = read_features_csv(features_csv)
        if patients:
            absent = [p for p in patients if p not in set(table.patient_ids)]
            if absent:
                raise PredictorInputError(f"{features_csv.name} has no row for patient(s) {', '.join(absent)}.")
            table = table.rows(list(dict.fromkeys(patients)))
    else:
        from ichpipe.pipeline.risk.store_features import store_feature_table
        from ichpipe.pipeline.serial.clinical import load_clinical_mapping
        from ichpipe.pipeline.serial.store import open_store

        mapping = load_clinical_mapping(cfg.clinical_mapping)
        with open_store(config.store, create=False) as store:
            table = store_feature_table(store, clinical_mapping=mapping, allow_post_baseline=True,
                                        patients=list(dict.fromkeys(patients)))
    # Patient IDs in error messages are masked unless --log-phi (the predictions on stdout name them).
    remember_values("PatientID", table.patient_ids)
    predictions = predict(model, table, impute=cfg.impute_missing if impute is None else impute)
    if as_json:
        echo_json({"model": model.describe(), "predictions": [p.to_dict() for p in predictions]})
        return
    info = model.describe()
    threshold = "" if info["threshold"] is None else f", threshold {info['threshold']:.3f} (uncalibrated scale)"
    click.echo(f"model {info['name']} (checkpoint SHA-256 {info['checkpoint_sha256']}){threshold}")
    if model.calibration is None:
        click.echo("This checkpoint has no calibration: its probabilities are the network's raw outputs.")
    usable = model.ranking_usable
    if not usable:
        click.echo("Its calibration is flat: out of fold the network's ranking carried nothing, so every patient "
                   "gets the same probability and no patient is flagged above or below the threshold.")
    for p in predictions:
        flag = "" if p.above_threshold is None or not usable else (
            " above threshold" if p.above_threshold else " below threshold")
        imputed = f" (imputed {len(p.imputed)}: {_short(p.imputed)})" if p.imputed else ""
        click.echo(f"{p.patient_id}: probability of expansion {p.probability:.3f}{flag}{imputed}. {p.statement}")
    guessed = [p for p in predictions if p.imputed]
    if guessed:
        click.echo(f"{len(guessed)} patient(s) had missing features filled with the training medians: "
                   + ", ".join(f"{p.patient_id} ({len(p.imputed)})" for p in guessed)
                   + "; their probabilities rest partly on those fills.")


def _short(names: tuple[str, ...], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"
