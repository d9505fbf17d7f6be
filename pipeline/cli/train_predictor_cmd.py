"""``ichpipe train predictor``: cross-validate the expansion models and train the default network.

Heavy modules (torch, scikit-learn) are imported inside the command so that
``ichpipe --help`` stays fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from ichpipe.errors import UsageError
from ichpipe.pipeline.cli._common import config_option, echo_json, handle_errors, load_cli_config
from ichpipe.pipeline.cli.features_cmd import store_overrides

__all__ = ["predictor"]

log = logging.getLogger("ichpipe")

_MODELS = "sacnn,logistic,gbm,volume,brain,brain_published,prespecified,logistic_l1"


@click.command("predictor")
@click.option("--features", "features_csv", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Features CSV (`ichpipe features` writes one): patient_id, feature_space, features.")
@click.option("--labels", "labels_source", required=True, metavar="CSV|store",
              help="Labels CSV (patient_id, label: 1, 0 or empty = undetermined; `ichpipe expansion --csv` "
              "writes one), or 'store' for the results store's timelines under the configured rule.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("ichpipe-out/predictor"), show_default=True, help="Output folder.")
@click.option("--checkpoint", "checkpoint_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Checkpoint to write (default OUT/expansion_sacnn.pt).")
@click.option("--card", "card_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Model card to write (default OUT/MODEL_CARD_PREDICTOR.md).")
@click.option("--models", default=_MODELS, show_default=True,
              help="Models to cross-validate, comma-separated (those whose columns the table lacks are skipped "
              "with a note, except volume).")
@click.option("--folds", type=int, default=None, help="Cross-validation folds (predictor.evaluation.folds).")
@click.option("--repeats", type=int, default=None, help="Repetitions (predictor.evaluation.repeats).")
@click.option("--seed", type=int, default=None, help="Seed (predictor.training.seed).")
@click.option("--cv/--no-cv", "run_cv", default=True, show_default=True, help="Run the cross-validation.")
@click.option("--save/--no-save", "save", default=True, show_default=True,
              help="Train the network on every labelled patient and save the checkpoint.")
@click.option("--training-data", default=None, help="Description of the data, stored in the checkpoint and card.")
@click.option("--store", "store_location", default=None, metavar="PATH|URL",
              help="Results store for --labels store (overrides store.path / store.url).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
@config_option
@handle_errors
def predictor(
    features_csv: Path,
    labels_source: str,
    out_dir: Path,
    checkpoint_path: Path | None,
    card_path: Path | None,
    models: str,
    folds: int | None,
    repeats: int | None,
    seed: int | None,
    run_cv: bool,
    save: bool,
    training_data: str | None,
    store_location: str | None,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """Cross-validate the seed's network, the baselines and the BRAIN score; train and save the network.

    Patients with an undetermined label are excluded. Writes the CV table,
    out-of-fold predictions, a calibration plot, the checkpoint and the model
    card to OUT. Exit status 0 on success, 1 when the inputs cannot be used
    or outputs not written, 2 on bad usage or config.
    """
    overrides: dict[str, Any] = store_overrides(store_location)
    evaluation = {k: v for k, v in (("folds", folds), ("repeats", repeats)) if v is not None}
    predictor_over: dict[str, Any] = {}
    if evaluation:
        predictor_over["evaluation"] = evaluation
    if seed is not None:
        predictor_over["training"] = {"seed": seed}
    if predictor_over:
        overrides["predictor"] = predictor_over
    config = load_cli_config(config_path, overrides)
    labels = None if labels_source == "store" else Path(labels_source)
    if labels is not None and not labels.is_file():
        raise UsageError(f"--labels {labels_source}: no such file (give a labels CSV or 'store').")

    from ichpipe.pipeline.jobs.train_predictor import TrainOptions, run_training

    options = TrainOptions(
        features=features_csv,
        labels=labels,
        out=out_dir,
        checkpoint=checkpoint_path,
        card=card_path,
        models=tuple(m.strip() for m in models.split(",") if m.strip()),
        cross_validate=run_cv,
        save_checkpoint=save,
        training_data=training_data,
    )
    report = run_training(options, config, progress=lambda line: log.info("cross-validation: %s", line))
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(report.to_text())
