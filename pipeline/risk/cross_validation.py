"""Cross-validated evaluation: out-of-fold predictions, metrics with confidence intervals, calibration plot.

Protocol (:func:`cross_validate`): repeated stratified k-fold at patient
level (:func:`ichpipe.pipeline.risk.cv.patient_folds`). In each outer fold every
model is fitted on the training patients only (its preprocessing too) and
predicts the test patients. Calibration and decision threshold of that fold
are chosen **inside the training patients**, on out-of-fold predictions of an
inner stratified k-fold over them: a model that carries its own ``threshold``
after fitting (:class:`~ichpipe.pipeline.risk.calibrated.CalibratedModel`) uses
it; any other gets Youden's J on inner out-of-fold predictions
(:func:`oof_threshold`). Every patient is thus predicted once per repetition
by a model, a calibration and a threshold that never saw them.

Statistics (:func:`summarise`), per repetition on the pooled out-of-fold
predictions of all patients, then averaged over repetitions:

* **AUC** of the (calibrated) probabilities, and of the model's raw output
  (the ranking the threshold applies to; a flat calibration ties a fold's
  patients, which moves the first but not the second); 95 % CI by patient-level bootstrap (resample patients with
  replacement, recompute the repeat-averaged AUC; 2.5th and 97.5th
  percentiles); the SD across repetitions is reported beside it (it shows
  the split-to-split spread, not the sampling uncertainty);
* **Brier score** (same bootstrap CI);
* **calibration slope** (logistic regression of the label on the logit of
  the prediction; 1 is ideal, < 1 too extreme) and **calibration-in-the-large**
  (intercept with the logit as offset; 0 is ideal, < 0 predictions too high),
  same bootstrap CI;
* **flagged fraction**: share of patients at or above their fold's threshold
  (compare with the prevalence), same bootstrap CI;
* **sensitivity, specificity, accuracy** at the fold's inner-chosen threshold (same bootstrap CI);
* references: the **majority-class accuracy** (always predicting "no
  expansion") and the Brier score of predicting the training folds'
  prevalence for everyone.
"""

from __future__ import annotations

import io
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata
from sklearn.metrics import roc_curve

from ichpipe.atomic import atomic_write
from ichpipe.pipeline.config.predictor_config import EvaluationConfig
from ichpipe.pipeline.risk.calibration import calibration_slope_intercept
from ichpipe.pipeline.risk.cv import Fold, inner_folds, patient_folds
from ichpipe.pipeline.risk.tabular_baselines import Classifier

__all__ = [
    "CVPredictions",
    "Interval",
    "ModelSummary",
    "References",
    "auc_score",
    "calibration_plot",
    "cross_validate",
    "markdown_table",
    "model_label",
    "oof_threshold",
    "references",
    "summarise",
    "youden_threshold",
]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ModelFactory = Callable[[], Classifier]


def auc_score(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    """ROC AUC (Mann-Whitney, ties counted half); ``nan`` when a class is absent."""
    labels = np.asarray(y).astype(bool)
    n1 = int(labels.sum())
    n0 = labels.size - n1
    if n1 == 0 or n0 == 0:
        return math.nan
    ranks = rankdata(np.asarray(p, dtype=np.float64))
    return float((ranks[labels].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def youden_threshold(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    """The probability threshold maximising sensitivity + specificity - 1 (``p >= t`` is positive).

    Raises
    ------
    ValueError
        If ``y`` lacks a class.
    """
    labels = np.asarray(y, dtype=np.int64)
    if labels.min() == labels.max():
        raise ValueError("Argument 'y' must hold both classes to choose a threshold.")
    fpr, tpr, thresholds = roc_curve(labels, np.asarray(p, dtype=np.float64))
    best = int(np.argmax(tpr - fpr))
    return float(min(thresholds[best], 1.0))


def oof_threshold(
    make: ModelFactory,
    x: FloatArray,
    y: IntArray,
    feature_names: Sequence[str],
    *,
    n_splits: int,
    seed: int,
) -> float:
    """Youden threshold on out-of-fold predictions of ``n_splits`` inner folds over these rows."""
    oof = np.empty(len(y))
    for k, (fit, held) in enumerate(inner_folds(y, n_splits=n_splits, seed=seed)):
        model = make().fit(x[fit], y[fit], feature_names, seed=seed + 7919 * (k + 1))
        oof[held] = model.predict_proba(x[held])
    return youden_threshold(y, oof)


@dataclass(frozen=True)
class CVPredictions:
    """One model's out-of-fold predictions.

    Attributes
    ----------
    name:
        Model name.
    probability:
        ``(repeats, patients)``: each patient's prediction by the fold that held it out.
    threshold:
        ``(repeats, patients)``: the threshold that fold chose inside its training patients,
        on the scale of ``raw`` (of ``probability`` when ``raw`` is ``None``).
    seconds:
        Wall time spent fitting (outer and inner models).
    raw:
        ``(repeats, patients)``: the base model's output before calibration (what the
        threshold applies to), or ``None`` for a model without calibration.
    """

    name: str
    probability: FloatArray
    threshold: FloatArray
    seconds: float
    raw: FloatArray | None = None


def cross_validate(
    x: FloatArray,
    y: IntArray,
    feature_names: Sequence[str],
    patient_ids: Sequence[str],
    factories: Mapping[str, ModelFactory],
    *,
    evaluation: EvaluationConfig,
    seed: int,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, CVPredictions], list[Fold]]:
    """Out-of-fold predictions of every model on the same patient-level folds.

    Parameters
    ----------
    x, y:
        Feature rows and labels (0/1) of the labelled patients.
    feature_names, patient_ids:
        Column names and one ID per row (each patient once).
    factories:
        Model name to a function building an unfitted model.
    evaluation:
        Folds, repeats, inner threshold folds.
    seed:
        Seed of the folds and of every fit.
    progress:
        Called with a short line after each outer fold (no patient IDs).

    Returns
    -------
    tuple of (dict, list of Fold)
        Predictions per model, and the folds used.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    folds = patient_folds(patient_ids, y, n_splits=evaluation.folds, n_repeats=evaluation.repeats, seed=seed)
    shape = (evaluation.repeats, len(y))
    prob = {name: np.full(shape, np.nan) for name in factories}
    raw = {name: np.full(shape, np.nan) for name in factories}
    has_raw = dict.fromkeys(factories, False)
    thr = {name: np.full(shape, np.nan) for name in factories}
    seconds = dict.fromkeys(factories, 0.0)
    for fold in folds:
        fold_seed = seed + 1000 * fold.repeat + fold.fold
        xt, yt = x[fold.train], y[fold.train]
        for name, make in factories.items():
            started = time.perf_counter()
            model = make().fit(xt, yt, feature_names, seed=fold_seed)
            prob[name][fold.repeat, fold.test] = model.predict_proba(x[fold.test])
            own = getattr(model, "threshold_raw", None)  # a CalibratedModel: its own raw scale and threshold
            predict_raw = getattr(model, "predict_raw", None)
            if own is not None and predict_raw is not None:
                has_raw[name] = True
                raw[name][fold.repeat, fold.test] = predict_raw(x[fold.test])
            thr[name][fold.repeat, fold.test] = own if own is not None else oof_threshold(
                make, xt, yt, feature_names, n_splits=evaluation.threshold_folds, seed=fold_seed
            )
            seconds[name] += time.perf_counter() - started
        if progress is not None:
            progress(f"repeat {fold.repeat + 1}/{evaluation.repeats}, fold {fold.fold + 1}/{evaluation.folds} done")
    results = {
        name: CVPredictions(name=name, probability=prob[name], threshold=thr[name], seconds=seconds[name],
                            raw=raw[name] if has_raw[name] else None)
        for name in factories
    }
    return results, folds


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95 % confidence interval."""

    value: float
    low: float
    high: float

    def format(self, digits: int = 3) -> str:
        """``0.712 (0.601-0.815)``."""
        return f"{self.value:.{digits}f} ({self.low:.{digits}f}-{self.high:.{digits}f})"

    def to_dict(self) -> dict[str, float]:
        """Plain values."""
        return {"value": self.value, "ci_low": self.low, "ci_high": self.high}


@dataclass(frozen=True)
class ModelSummary:
    """Cross-validated metrics of one model (see the module docstring)."""

    name: str
    auc: Interval
    auc_repeat_sd: float
    auc_per_repeat: tuple[float, ...]
    brier: Interval
    sensitivity: Interval
    specificity: Interval
    accuracy: Interval
    mean_threshold: float
    seconds: float
    mean_probability: float = math.nan
    calibration_slope: Interval | None = None
    calibration_intercept: Interval | None = None
    flagged: Interval | None = None
    auc_raw: Interval | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain values."""
        return {
            "name": self.name,
            "mean_probability": self.mean_probability,
            "auc": self.auc.to_dict(),
            "auc_repeat_sd": self.auc_repeat_sd,
            "auc_per_repeat": list(self.auc_per_repeat),
            "brier": self.brier.to_dict(),
            "sensitivity": self.sensitivity.to_dict(),
            "specificity": self.specificity.to_dict(),
            "accuracy": self.accuracy.to_dict(),
            "calibration_slope": None if self.calibration_slope is None else self.calibration_slope.to_dict(),
            "calibration_intercept": (
                None if self.calibration_intercept is None else self.calibration_intercept.to_dict()
            ),
            "flagged_fraction": None if self.flagged is None else self.flagged.to_dict(),
            "auc_raw": None if self.auc_raw is None else self.auc_raw.to_dict(),
            "mean_threshold": self.mean_threshold,
            "seconds": self.seconds,
        }


def _per_repeat(y: IntArray, prob: FloatArray, thr: FloatArray, raw: FloatArray | None = None) -> dict[str, FloatArray]:
    """Each metric per repetition (rows of ``prob``), on the given patients; ``raw >= thr`` flags when given."""
    pos = y == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    ranks = rankdata(prob, axis=1)
    auc = (ranks[:, pos].sum(axis=1) - n1 * (n1 + 1) / 2.0) / (n1 * n0)
    yhat = (prob if raw is None else raw) >= thr
    calibration = np.array([calibration_slope_intercept(row, y) for row in prob]).reshape(-1, 2)
    out = {} if raw is None else {
        "auc_raw": (rankdata(raw, axis=1)[:, pos].sum(axis=1) - n1 * (n1 + 1) / 2.0) / (n1 * n0)
    }
    return out | {
        "auc": auc,
        "brier": np.mean((prob - y) ** 2, axis=1),
        "sensitivity": yhat[:, pos].mean(axis=1),
        "specificity": (~yhat[:, ~pos]).mean(axis=1),
        "accuracy": (yhat == pos).mean(axis=1),
        "flagged": yhat.mean(axis=1),
        "calibration_slope": calibration[:, 0],
        "calibration_intercept": calibration[:, 1],
    }


def summarise(pred: CVPredictions, y: IntArray, *, n_bootstrap: int, seed: int) -> ModelSummary:
    """Repeat-averaged metrics with patient-level bootstrap 95 % confidence intervals.

    Raises
    ------
    ValueError
        If a patient has no out-of-fold prediction, or ``y`` lacks a class.
    """
    y = np.asarray(y, dtype=np.int64)
    if np.isnan(pred.probability).any() or np.isnan(pred.threshold).any():
        raise ValueError(f"Model '{pred.name}' has patients without an out-of-fold prediction.")
    if y.min() == y.max():
        raise ValueError("Argument 'y' must hold both classes.")
    point = _per_repeat(y, pred.probability, pred.threshold, pred.raw)
    rng = np.random.default_rng(seed)
    boot: dict[str, list[float]] = {k: [] for k in point}
    n = len(y)
    while len(boot["auc"]) < n_bootstrap:
        idx = rng.integers(0, n, n)
        yb = y[idx]
        if yb.min() == yb.max():
            continue  # a resample needs both classes
        stats = _per_repeat(yb, pred.probability[:, idx], pred.threshold[:, idx],
                            None if pred.raw is None else pred.raw[:, idx])
        for k, v in stats.items():
            boot[k].append(float(v.mean()))

    def interval(key: str) -> Interval:
        low, high = np.percentile(boot[key], [2.5, 97.5])
        return Interval(float(point[key].mean()), float(low), float(high))

    return ModelSummary(
        name=pred.name,
        auc=interval("auc"),
        auc_repeat_sd=float(point["auc"].std(ddof=1)) if len(point["auc"]) > 1 else 0.0,
        auc_per_repeat=tuple(float(v) for v in point["auc"]),
        brier=interval("brier"),
        sensitivity=interval("sensitivity"),
        specificity=interval("specificity"),
        accuracy=interval("accuracy"),
        mean_threshold=float(pred.threshold.mean()),
        seconds=pred.seconds,
        mean_probability=float(pred.probability.mean()),
        calibration_slope=interval("calibration_slope"),
        calibration_intercept=interval("calibration_intercept"),
        flagged=interval("flagged"),
        auc_raw=interval("auc_raw") if "auc_raw" in point else None,
    )


@dataclass(frozen=True)
class References:
    """What a model must beat: no-skill baselines on the same patients and folds."""

    n_patients: int
    n_expanded: int
    majority_accuracy: float
    prevalence_brier: float

    def to_dict(self) -> dict[str, float | int]:
        """Plain values."""
        return {
            "n_patients": self.n_patients,
            "n_expanded": self.n_expanded,
            "majority_class_accuracy": self.majority_accuracy,
            "prevalence_brier": self.prevalence_brier,
        }


def references(y: IntArray, folds: Sequence[Fold]) -> References:
    """Majority-class accuracy, and the Brier score of predicting each training fold's prevalence."""
    y = np.asarray(y, dtype=np.int64)
    rate = float(y.mean())
    errors: list[float] = []
    for fold in folds:
        prevalence = float(y[fold.train].mean())
        errors += list((prevalence - y[fold.test]) ** 2)
    return References(
        n_patients=len(y),
        n_expanded=int(y.sum()),
        majority_accuracy=max(rate, 1.0 - rate),
        prevalence_brier=float(np.mean(errors)),
    )


_LABELS = {
    "sacnn": "Self-attention 1D-CNN (seed 004)",
    "sacnn_v0": "Self-attention 1D-CNN, old recipe (epoch-1 early stopping, Youden, uncalibrated)",
    "brain": "BRAIN score, partial (volume, prior stroke, hours to CT), recalibrated",
    "brain_published": "BRAIN score, partial, published probabilities",
    "prespecified": "Logistic regression (6 pre-specified predictors)",
    "logistic_l1": "L1 logistic regression (selection inside folds)",
    "logistic": "Logistic regression (all features)",
    "gbm": "Gradient boosting (all features)",
    "volume": "Logistic regression (baseline volume only)",
}


def model_label(name: str) -> str:
    """Human-readable name of a model."""
    return _LABELS.get(name, name)


def _fmt(value: Interval | None, digits: int = 2) -> str:
    return "-" if value is None else value.format(digits)


def markdown_table(summaries: Sequence[ModelSummary], refs: References) -> str:
    """The results as a Markdown table, the references below it."""
    prevalence = refs.n_expanded / refs.n_patients
    lines = [
        "| Model | AUC (95 % CI) | AUC of the raw ranking (95 % CI) | AUC SD across repeats | Brier (95 % CI) "
        "| Calibration slope (95 % CI) | Calibration intercept (95 % CI) | Flagged fraction (95 % CI) "
        "| Sensitivity (95 % CI) | Specificity (95 % CI) | Mean threshold |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {model_label(s.name)} | {s.auc.format()} | {_fmt(s.auc_raw, 3)} | {s.auc_repeat_sd:.3f} "
            f"| {s.brier.format()} "
            f"| {_fmt(s.calibration_slope)} | {_fmt(s.calibration_intercept)} | {_fmt(s.flagged)} "
            f"| {s.sensitivity.format(2)} | {s.specificity.format(2)} | {s.mean_threshold:.3f} |"
        )
    lines.append(
        f"| Prevalence for everyone (no skill) | 0.500 | - | - | {refs.prevalence_brier:.3f} | - | - | 0 or 1 "
        f"| - | - | - |"
    )
    lines.append("")
    lines.append(f"Prevalence {prevalence:.3f} ({refs.n_expanded} of {refs.n_patients}); a sane flagged fraction "
                 f"lies within 1.5x of it ({prevalence / 1.5:.3f}-{prevalence * 1.5:.3f}).")
    return "\n".join(lines) + "\n"


def calibration_plot(
    predictions: Sequence[CVPredictions],
    y: IntArray,
    path: Path,
    *,
    bins: int = 5,
    title: str = "",
) -> Path:
    """Reliability diagram of the pooled out-of-fold predictions, one line per model (PNG, atomic).

    Bins hold equal numbers of predictions; each point is the mean predicted
    probability against the observed share of expansions in its bin.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = np.asarray(y, dtype=np.int64)
    fig, (ax, hist) = plt.subplots(
        2, 1, figsize=(6.0, 7.0), gridspec_kw={"height_ratios": [3, 1]}, sharex=True
    )
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect calibration")
    for pred in predictions:
        p = pred.probability.ravel()
        obs = np.tile(y, pred.probability.shape[0]).astype(np.float64)
        order = np.argsort(p, kind="stable")
        groups = np.array_split(order, bins)
        mean_p = [float(p[g].mean()) for g in groups if g.size]
        frac = [float(obs[g].mean()) for g in groups if g.size]
        ax.plot(mean_p, frac, marker="o", linewidth=1.5, label=model_label(pred.name))
        hist.hist(p, bins=20, range=(0, 1), histtype="step", linewidth=1.2)
    ax.axhline(float(y.mean()), color="0.8", linewidth=1, label=f"prevalence {y.mean():.2f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("Observed share expanded")
    ax.set_title(title or "Calibration of out-of-fold predictions")
    ax.legend(loc="upper left", fontsize=8)
    hist.set_xlabel("Predicted probability of expansion")
    hist.set_ylabel("Predictions")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    data = buf.getvalue()

    def write(fh: BinaryIO) -> None:
        fh.write(data)

    return atomic_write(path, write)
