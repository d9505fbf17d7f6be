"""The ``ichpipe train predictor`` job: cross-validate every model, train and save the network, write the card.

Outputs (in ``--out``):

``cv_table.md``
    The cross-validated results (Markdown table and references).
``cv_results.json``
    The same with every number, the settings and the folds' sizes.
``oof_predictions.csv``
    Each patient's out-of-fold probability and threshold per model and repetition.
``calibration.png``
    Reliability diagram of the out-of-fold predictions.
``expansion_sacnn.pt`` (or ``--checkpoint``)
    The network trained on every labelled patient, with its feature list,
    preprocessing and threshold.
``MODEL_CARD_PREDICTOR.md`` (or ``--card``)
    The model card.

Patients whose label is undetermined (or who have no label) are excluded
from training and scoring, and counted.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ichpipe.atomic import atomic_write
from ichpipe.errors import OutputError, PredictorInputError, UsageError
from ichpipe.models.hashing import file_sha256
from ichpipe.pipeline.config import Config
from ichpipe.pipeline.config.predictor_config import EvaluationConfig, TrainingConfig
from ichpipe.pipeline.risk.card import CardInputs, write_model_card
from ichpipe.pipeline.risk.cross_validation import (
    ModelFactory,
    ModelSummary,
    References,
    calibration_plot,
    cross_validate,
    markdown_table,
    model_label,
    references,
    summarise,
)
from ichpipe.pipeline.risk.feature_table import (
    FeatureTable,
    labelled,
    read_features_csv,
    read_label_rule,
    read_labels_csv,
)
from ichpipe.pipeline.risk.tabular_baselines import (
    gradient_boosting,
    l1_logistic,
    logistic_regression,
    prespecified_logistic,
    volume_logistic,
)
from ichpipe.pipeline.risk.train import SACNNModel, save_predictor, train_predictor
from ichpipe.pipeline.serial.clinical import CLINICAL_FIELDS, load_clinical_mapping

__all__ = [
    "MODEL_NAMES",
    "TrainOptions",
    "TrainReport",
    "feature_groups",
    "model_factories",
    "required_columns",
    "run_training",
]

log = logging.getLogger(__name__)

#: Models the job knows, in report order.
MODEL_NAMES: tuple[str, ...] = (
    "sacnn", "logistic", "gbm", "volume", "brain", "brain_published", "prespecified", "logistic_l1",
)


@dataclass(frozen=True)
class TrainOptions:
    """What the command line asks of one training run.

    Parameters
    ----------
    features:
        Features CSV (``patient_id``, ``feature_space``, features).
    labels:
        Labels CSV (``patient_id``, ``label``); ``None`` takes the labels from
        the results store's timelines under the configured expansion rule.
    out:
        Output folder.
    checkpoint:
        Checkpoint file; ``None``: ``OUT/expansion_sacnn.pt``.
    card:
        Model card; ``None``: ``OUT/MODEL_CARD_PREDICTOR.md``.
    models:
        Which models to cross-validate (subset of :data:`MODEL_NAMES`).
    cross_validate:
        Run the cross-validation.
    save_checkpoint:
        Train the network on every labelled patient and save it.
    training_data:
        Description of the data stored in the checkpoint and the card.
    """

    features: Path
    labels: Path | None
    out: Path
    checkpoint: Path | None = None
    card: Path | None = None
    models: tuple[str, ...] = MODEL_NAMES
    cross_validate: bool = True
    save_checkpoint: bool = True
    training_data: str | None = None

    def __post_init__(self) -> None:
        unknown = [m for m in self.models if m not in MODEL_NAMES]
        if unknown or not self.models:
            raise UsageError(
                f"--models must name some of {', '.join(MODEL_NAMES)}; got {', '.join(self.models) or 'none'}."
            )
        if not self.cross_validate and not self.save_checkpoint:
            raise UsageError("Nothing to do: both the cross-validation and the checkpoint are switched off.")


@dataclass(frozen=True)
class TrainReport:
    """What the job did and where the outputs are."""

    n_patients: int
    n_expanded: int
    n_undetermined: int
    n_unlabelled: int
    n_features: int
    feature_space: str | None
    summaries: tuple[ModelSummary, ...]
    refs: References | None
    outputs: Mapping[str, str]
    checkpoint_sha256: str | None
    seconds: Mapping[str, float]
    table: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def exit_code(self) -> int:
        """0: the job completed."""
        return 0

    def to_dict(self) -> dict[str, Any]:
        """Plain values (no patient IDs)."""
        return {
            "n_patients": self.n_patients,
            "n_expanded": self.n_expanded,
            "n_undetermined_excluded": self.n_undetermined,
            "n_unlabelled_excluded": self.n_unlabelled,
            "n_features": self.n_features,
            "feature_space": self.feature_space,
            "results": [s.to_dict() for s in self.summaries],
            "references": None if self.refs is None else self.refs.to_dict(),
            "outputs": dict(self.outputs),
            "checkpoint_sha256": self.checkpoint_sha256,
            "seconds": dict(self.seconds),
            "notes": list(self.notes),
        }

    def to_text(self) -> str:
        """A short summary for a terminal."""
        lines = [
            f"{self.n_patients} patients ({self.n_expanded} expanded), {self.n_features} features "
            f"({self.feature_space}); excluded: {self.n_undetermined} undetermined, {self.n_unlabelled} unlabelled."
        ]
        if self.table:
            lines.append(self.table.rstrip())
        if self.checkpoint_sha256:
            lines.append(f"Checkpoint {self.outputs.get('checkpoint')} (SHA-256 {self.checkpoint_sha256}).")
        lines += [f"{k}: {v}" for k, v in self.outputs.items() if k != "checkpoint"]
        return "\n".join(lines)


def feature_groups(names: tuple[str, ...]) -> dict[str, list[str]]:
    """Group feature names for the card: clinical, hematoma, edema, other."""
    clinical = {f.name for f in CLINICAL_FIELDS}
    groups: dict[str, list[str]] = {"Clinical": [], "Hematoma (first scan)": [], "Perihematomal edema": [],
                                    "Other": []}
    for n in names:
        key = ("Clinical" if n in clinical else "Hematoma (first scan)" if n.startswith("HM_")
               else "Perihematomal edema" if n.startswith("ED_") else "Other")
        groups[key].append(n)
    return {k: v for k, v in groups.items() if v}


def _write_bytes(path: Path, data: bytes) -> Path:
    def write(fh: BinaryIO) -> None:
        fh.write(data)

    return atomic_write(path, write)


def _oof_csv(table: FeatureTable, y: np.ndarray, results: Mapping[str, Any]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["patient_id", "label", "model", "repeat", "probability", "raw_probability", "threshold",
                     "flagged"])
    for name, pred in results.items():
        decision = pred.probability if pred.raw is None else pred.raw
        for r in range(pred.probability.shape[0]):
            for i, pid in enumerate(table.patient_ids):
                writer.writerow([pid, int(y[i]), name, r, f"{pred.probability[r, i]:.6f}",
                                 f"{decision[r, i]:.6f}", f"{pred.threshold[r, i]:.6f}",
                                 int(decision[r, i] >= pred.threshold[r, i])])
    return buf.getvalue().encode("utf-8")


def _labels(options: TrainOptions, config: Config) -> tuple[dict[str, int | None], str]:
    if options.labels is not None:
        rule = read_label_rule(options.labels)
        return read_labels_csv(options.labels), rule or f"as given in {options.labels.name}"
    from ichpipe.pipeline.serial.expansion import evaluate_timelines, labels_by_patient
    from ichpipe.pipeline.serial.store import open_store
    from ichpipe.pipeline.serial.timeline import load_timelines

    rule_obj = config.expansion.rule()
    with open_store(config.store, create=False) as store:
        labels = labels_by_patient(evaluate_timelines(load_timelines(store), rule_obj))
    return labels, f"{rule_obj.name}: {rule_obj.describe()}"


def required_columns(training: TrainingConfig) -> dict[str, tuple[str, ...]]:
    """Feature columns each model needs beyond "any features" (models absent here use all columns)."""
    from ichpipe.pipeline.risk.scores import BRAIN_COLUMNS
    from ichpipe.pipeline.risk.tabular_baselines import prespecified_columns

    return {
        "volume": (training.volume_feature,),
        "brain": BRAIN_COLUMNS,
        "brain_published": BRAIN_COLUMNS,
        "prespecified": prespecified_columns(),
    }


def model_factories(
    names: Sequence[str], training: TrainingConfig, evaluation: EvaluationConfig | None = None
) -> dict[str, ModelFactory]:
    """Builders of the named models (report order), all with the same training settings and recipe.

    Every model is wrapped in a :class:`~ichpipe.pipeline.risk.calibrated.CalibratedModel`
    (inner folds, refit, calibration and threshold on out-of-fold predictions),
    except ``brain_published``, which keeps the paper's probabilities (no calibration).
    """
    from ichpipe.pipeline.risk.calibrated import CalibratedModel
    from ichpipe.pipeline.risk.scores import BrainScoreModel

    ev = evaluation or EvaluationConfig()
    bases: dict[str, ModelFactory] = {
        "sacnn": lambda: SACNNModel(training),
        "logistic": lambda: logistic_regression(training),
        "gbm": lambda: gradient_boosting(training),
        "volume": lambda: volume_logistic(training),
        "brain": lambda: BrainScoreModel(training, published=True),
        "brain_published": lambda: BrainScoreModel(training, published=True),
        "prespecified": lambda: prespecified_logistic(training),
        "logistic_l1": lambda: l1_logistic(training),
    }

    def wrap(name: str) -> ModelFactory:
        base = bases[name]
        calibration = "none" if name == "brain_published" else ev.calibration
        return lambda: CalibratedModel(
            base, n_splits=ev.threshold_folds, calibration=calibration, threshold_rule=ev.threshold_rule,
            flag_cap=ev.flag_cap, refit=training.refit,
        )

    return {name: wrap(name) for name in MODEL_NAMES if name in names}


def run_training(
    options: TrainOptions, config: Config, *, progress: Callable[[str], None] | None = None
) -> TrainReport:
    """Run the training job (see the module docstring).

    Raises
    ------
    ichpipe.errors.PredictorInputError
        If the features or labels cannot be used (too few patients per class,
        a missing volume column for the volume baseline...).
    ichpipe.errors.OutputError
        If the outputs cannot be written.
    """
    cfg = config.predictor
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    table = read_features_csv(options.features)
    labels, rule = _labels(options, config)
    data = labelled(table, labels)
    y = data.y
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    need = max(cfg.evaluation.folds, cfg.evaluation.threshold_folds) if options.cross_validate else \
        cfg.evaluation.threshold_folds
    if min(n_pos, n_neg) < need:
        raise PredictorInputError(
            f"{n_pos} expanded and {n_neg} not-expanded patients have labels; each class needs at least {need} "
            "for the folds configured (predictor.evaluation.folds, threshold_folds)."
        )
    notes: list[str] = []
    models = list(options.models)
    for name, needed in required_columns(cfg.training).items():
        absent = [c for c in needed if c not in table.feature_names]
        if name in models and absent and name != "volume":
            models.remove(name)
            notes.append(f"{model_label(name)} was not evaluated: the features table lacks {', '.join(absent)}.")
            log.info("Skipping model %s: the features table lacks %s.", name, ", ".join(absent))
    if "volume" in options.models and cfg.training.volume_feature not in table.feature_names:
        raise PredictorInputError(
            f"The volume baseline needs the column {cfg.training.volume_feature!r} "
            "(predictor.training.volume_feature), absent from the features table."
        )
    try:
        options.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot create the output folder {options.out}: {exc.strerror or exc}.") from exc
    seconds["load"] = time.perf_counter() - started
    log.info("%d labelled patients (%d expanded), %d features.", len(y), n_pos, len(table.feature_names))

    outputs: dict[str, str] = {}
    summaries: tuple[ModelSummary, ...] = ()
    refs: References | None = None
    table_md = ""
    card_path = options.card or options.out / "MODEL_CARD_PREDICTOR.md"
    png: Path | None = None
    x, names = data.table.values, data.table.feature_names
    if options.cross_validate:
        started = time.perf_counter()
        results, folds = cross_validate(
            x, y, names, data.table.patient_ids, model_factories(models, cfg.training, cfg.evaluation),
            evaluation=cfg.evaluation, seed=cfg.training.seed, progress=progress,
        )
        seconds["cross_validation"] = time.perf_counter() - started
        summaries = tuple(
            summarise(results[m], y, n_bootstrap=cfg.evaluation.bootstrap, seed=cfg.training.seed) for m in results
        )
        refs = references(y, folds)
        table_md = markdown_table(summaries, refs)
        outputs["cv_table"] = str(_write_bytes(options.out / "cv_table.md", table_md.encode("utf-8")))
        png = calibration_plot(
            list(results.values()), y, options.out / "calibration.png", bins=cfg.evaluation.calibration_bins,
            title=f"Out-of-fold calibration ({cfg.evaluation.repeats}x{cfg.evaluation.folds} CV, n={len(y)}, "
                  f"{n_pos} expanded)",
        )
        outputs["calibration_png"] = str(png)
        outputs["oof_predictions"] = str(_write_bytes(options.out / "oof_predictions.csv",
                                                      _oof_csv(data.table, y, results)))
        summary_json = {
            "references": refs.to_dict(),
            "results": [s.to_dict() for s in summaries],
            "evaluation": {
                "folds": cfg.evaluation.folds, "repeats": cfg.evaluation.repeats,
                "threshold_folds": cfg.evaluation.threshold_folds, "bootstrap": cfg.evaluation.bootstrap,
                "ci": "patient-level bootstrap percentile interval of the repeat-averaged metric",
            },
            "label_rule": rule,
            "feature_space": table.feature_space,
            "feature_names": list(names),
        }
        outputs["cv_results"] = str(_write_bytes(
            options.out / "cv_results.json", (json.dumps(summary_json, indent=2) + "\n").encode("utf-8")))

    checkpoint_info: dict[str, Any] | None = None
    sha: str | None = None
    if options.save_checkpoint:
        started = time.perf_counter()
        trained = train_predictor(x, y, names, feature_space=table.feature_space, training=cfg.training,
                                  evaluation=cfg.evaluation)
        seconds["final_training"] = time.perf_counter() - started
        sacnn = next((s for s in summaries if s.name == "sacnn"), None)
        metrics: dict[str, float] = {}
        performance: dict[str, Any] | None = None
        if sacnn is not None:
            metrics = {
                "cv_auc": sacnn.auc.value, "cv_auc_ci_low": sacnn.auc.low, "cv_auc_ci_high": sacnn.auc.high,
                "cv_brier": sacnn.brier.value, "cv_sensitivity": sacnn.sensitivity.value,
                "cv_specificity": sacnn.specificity.value, "cv_accuracy": sacnn.accuracy.value,
            }
            for key, interval in (("cv_calibration_slope", sacnn.calibration_slope),
                                  ("cv_calibration_intercept", sacnn.calibration_intercept),
                                  ("cv_flagged_fraction", sacnn.flagged)):
                if interval is not None:
                    metrics[key] = interval.value
            ev = cfg.evaluation
            performance = {
                "cv_auc": sacnn.auc.value, "cv_auc_ci_low": sacnn.auc.low, "cv_auc_ci_high": sacnn.auc.high,
                "n_patients": len(y), "n_expanded": n_pos,
                "protocol": f"patient-level stratified {ev.folds}-fold cross-validation repeated {ev.repeats} "
                            f"times; 95 % CI by patient-level bootstrap ({ev.bootstrap} resamples)",
            }
        low, high = trained.prevalence / cfg.evaluation.flag_cap, trained.prevalence * cfg.evaluation.flag_cap
        if not low <= trained.training_flagged <= high:
            log.warning(
                "The final model flags %.1f%% of its training patients, outside %.1f-%.1f%% (the prevalence "
                "%.1f%% within a factor %.1f); see the model card.", 100 * trained.training_flagged, 100 * low,
                100 * high, 100 * trained.prevalence, cfg.evaluation.flag_cap,
            )
        path = options.checkpoint or options.out / "expansion_sacnn.pt"
        description = options.training_data or (
            f"{options.features.name}: {len(y)} labelled patients ({n_pos} expanded)"
        )
        save_predictor(
            path, trained, training_data=description, training=cfg.training, evaluation=cfg.evaluation,
            label_rule=rule, clinical_mapping=cfg.clinical_mapping, allow_post_baseline=cfg.allow_post_baseline,
            metrics=metrics, performance=performance,
        )
        sha = file_sha256(path)
        outputs["checkpoint"] = str(path)
        from ichpipe.pipeline.risk.calibration import performance_statement

        net = trained.model.base
        unlabelled = [p for p in table.patient_ids if p not in set(data.table.patient_ids)]
        unlabelled_flagged = (
            float(np.mean(trained.model.flag(table.rows(unlabelled).values))) if unlabelled else float("nan")
        )
        checkpoint_info = {
            "file": path.name, "sha256": sha, "threshold": trained.threshold,
            "threshold_calibrated": trained.model.threshold,
            "calibration": trained.model.calibration.to_metadata(),
            "n_patients": trained.n_patients, "n_expanded": trained.n_expanded,
            "epochs_run": net.history.epochs_run, "best_epoch": net.history.best_epoch,
            "inner_best_epochs": list(net.history.refit_from), "refit": cfg.training.refit,
            "training_flagged": trained.training_flagged, "oof_flagged": trained.oof_flagged,
            "prevalence": trained.prevalence, "flag_cap": cfg.evaluation.flag_cap,
            "n_unlabelled_rows": len(unlabelled), "unlabelled_flagged": unlabelled_flagged,
            "statement": performance_statement(performance),
            "seconds": float(sum(trained.seconds.values())),
        }

    mapping = load_clinical_mapping(cfg.clinical_mapping)
    excluded = dict(mapping.excluded)
    if not cfg.allow_post_baseline:
        excluded.update({f.name: "given after the first scan (post-baseline); may reflect the expansion itself"
                         for f in CLINICAL_FIELDS if f.timing == "post_baseline"})
    data_text = (
        f"{options.training_data + '. ' if options.training_data else ''}"
        f"{len(y)} patients with a determined label from `{options.features.name}` ({n_pos} expanded, "
        f"{n_pos / len(y):.1%}); excluded: {data.n_undetermined} with an undetermined label and "
        f"{data.n_unlabelled} without a label. Label rule: {rule}."
    )
    card_inputs = CardInputs(
        title="Model card: hematoma expansion predictor (seed 004 self-attention 1D-CNN)",
        data=data_text,
        feature_space=table.feature_space,
        feature_groups=feature_groups(names),
        excluded=excluded,
        summaries=summaries,
        refs=refs,
        evaluation=cfg.evaluation,
        training=cfg.training,
        checkpoint=checkpoint_info,
        seconds=seconds,
        calibration_png=None if png is None else os.path.relpath(png, card_path.parent),
        notes=tuple(notes),
    )
    outputs["card"] = str(write_model_card(card_path, card_inputs))
    return TrainReport(
        n_patients=len(y),
        n_expanded=n_pos,
        n_undetermined=data.n_undetermined,
        n_unlabelled=data.n_unlabelled,
        n_features=len(names),
        feature_space=table.feature_space,
        summaries=summaries,
        refs=refs,
        outputs=outputs,
        checkpoint_sha256=sha,
        seconds=seconds,
        table=table_md,
        notes=tuple(notes),
    )
