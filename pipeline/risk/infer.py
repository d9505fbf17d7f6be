"""Predict expansion from a predictor checkpoint (no training code is imported here).

A predictor checkpoint (:func:`ichpipe.pipeline.risk.train.save_predictor`)
carries the feature names in input order, the fitted preprocessing, the
feature space, the calibration, the decision threshold and the model's
cross-validated performance, so a prediction needs only the checkpoint and a
feature table. The model version reported with every probability is the
checkpoint file's SHA-256, and every prediction carries the sentence that
says what the cross-validated AUC supports
(:func:`ichpipe.pipeline.risk.calibration.performance_statement`); a checkpoint
without stored performance says that nothing shows it discriminates.

The probability is the calibrated one (Platt scaling stored in the
checkpoint; an older checkpoint without calibration gives the network's raw
probability and says so). The flag compares the network's raw probability
with the stored threshold, as the threshold was chosen on that scale.

Inputs are checked, never guessed: a table of another feature space is
refused; a required feature that is absent or empty is refused with a message
naming it, unless imputation is asked for (``predictor.impute_missing`` or
``--impute``), in which case the training median stored in the checkpoint is
used and the prediction lists what was imputed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ichpipe.errors import CheckpointError, PredictorInputError
from ichpipe.models.checkpoint import Checkpoint, load_model
from ichpipe.pipeline.risk.calibration import PlattScaling, performance_statement
from ichpipe.pipeline.risk.feature_table import FeatureTable
from ichpipe.pipeline.risk.feature_transform import FeatureTransform

__all__ = ["Prediction", "Predictor", "load_predictor", "predict"]

#: How many missing feature names a message lists before "and N more".
_LIST_AT_MOST = 12


@dataclass(frozen=True)
class Predictor:
    """A loaded predictor checkpoint.

    Attributes
    ----------
    network:
        The network, in eval mode on the CPU.
    checkpoint:
        The verified checkpoint (path, SHA-256, metadata).
    transform:
        The preprocessing fitted at training (feature names in input order).
    feature_space:
        Feature space it was trained on (``None`` if unstated).
    threshold:
        Decision threshold chosen at training (on the network's raw probability), or ``None``.
    calibration:
        Platt scaling of the network's probability, or ``None`` (uncalibrated checkpoint).
    performance:
        Cross-validated performance stored at training (``cv_auc``, its interval, patients), or ``None``.
    """

    network: nn.Module
    checkpoint: Checkpoint
    transform: FeatureTransform
    feature_space: str | None
    threshold: float | None
    calibration: PlattScaling | None = None
    performance: Mapping[str, Any] | None = None

    @property
    def statement(self) -> str:
        """The sentence printed with every prediction (what the cross-validated AUC supports)."""
        return performance_statement(self.performance)

    @property
    def ranking_usable(self) -> bool:
        """``False`` when the calibration is flat (slope 0): out of fold the network's ranking carried nothing,
        so every patient gets the same probability and the flag only restates the raw network output."""
        return self.calibration is None or self.calibration.slope > 0.0

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Required features, in model input order."""
        return self.transform.feature_names

    @property
    def sha256(self) -> str:
        """SHA-256 of the checkpoint file: the model version."""
        return self.checkpoint.file_sha256

    def describe(self) -> dict[str, Any]:
        """Model identity for reports."""
        meta = self.checkpoint.metadata
        return {
            "name": self.checkpoint.name,
            "checkpoint": str(self.checkpoint.path),
            "checkpoint_sha256": self.sha256,
            "feature_space": self.feature_space,
            "n_features": len(self.feature_names),
            "threshold": self.threshold,
            "calibration": None if self.calibration is None else self.calibration.to_metadata(),
            "performance": None if self.performance is None else dict(self.performance),
            "statement": self.statement,
            "ranking_usable": self.ranking_usable,
            "training_data": meta.get("training_data"),
            "created": meta.get("created"),
        }


def load_predictor(path: str | os.PathLike[str], *, expected_sha256: str | None = None) -> Predictor:
    """Load and verify an expansion-predictor checkpoint.

    Raises
    ------
    ichpipe.errors.CheckpointError
        If the file is not a valid ichpipe checkpoint of an expansion model,
        or its metadata lacks the feature list and preprocessing.
    """
    network, checkpoint = load_model(path, task="expansion", expected_sha256=expected_sha256, map_location="cpu")
    norm = checkpoint.metadata.get("normalisation")
    if not isinstance(norm, Mapping) or not isinstance(norm.get("transform"), Mapping):
        raise CheckpointError(
            f"Checkpoint '{path}' has no feature list and preprocessing in its metadata "
            "(normalisation.transform); it was not written by `ichpipe train predictor`."
        )
    try:
        transform = FeatureTransform.from_metadata(norm["transform"])
    except ValueError as exc:
        raise CheckpointError(f"Checkpoint '{path}': {exc}") from exc
    n_features = checkpoint.model_kwargs.get("n_features")
    if n_features != len(transform.feature_names):
        raise CheckpointError(
            f"Checkpoint '{path}' lists {len(transform.feature_names)} features but its network takes "
            f"{n_features}; re-create it with `ichpipe train predictor`."
        )
    threshold = norm.get("threshold")
    space = norm.get("feature_space")
    calibration = None
    if isinstance(norm.get("calibration"), Mapping):
        try:
            calibration = PlattScaling.from_metadata(norm["calibration"])
        except ValueError as exc:
            raise CheckpointError(f"Checkpoint '{path}': {exc}") from exc
    performance = norm.get("performance")
    if performance is None and isinstance(checkpoint.metadata.get("metrics"), Mapping):
        metrics = checkpoint.metadata["metrics"]  # older checkpoints: the CV AUC is among the metrics
        if "cv_auc" in metrics:
            performance = {k: metrics.get(k) for k in ("cv_auc", "cv_auc_ci_low", "cv_auc_ci_high")}
    return Predictor(
        network=network,
        checkpoint=checkpoint,
        transform=transform,
        feature_space=None if space is None else str(space),
        threshold=None if threshold is None else float(threshold),
        calibration=calibration,
        performance=dict(performance) if isinstance(performance, Mapping) else None,
    )


@dataclass(frozen=True)
class Prediction:
    """The expansion probability of one patient.

    Attributes
    ----------
    patient_id:
        The patient.
    probability:
        Predicted probability of expansion (calibrated when the checkpoint has a calibration).
    above_threshold:
        Whether the network's raw probability is at or above the threshold (``None`` without one).
    imputed:
        Features filled with the training median (empty unless imputation was asked for).
    raw_probability:
        The network's probability before calibration.
    calibrated:
        Whether ``probability`` went through the stored calibration.
    statement:
        What the model's cross-validated AUC supports (printed with the prediction).
    """

    patient_id: str
    probability: float
    above_threshold: bool | None
    imputed: tuple[str, ...]
    raw_probability: float = float("nan")
    calibrated: bool = False
    statement: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain values."""
        return {
            "patient_id": self.patient_id,
            "probability": self.probability,
            "calibrated": self.calibrated,
            "raw_probability": self.raw_probability,
            "above_threshold": self.above_threshold,
            "imputed": list(self.imputed),
            "statement": self.statement,
        }


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_LIST_AT_MOST])
    more = len(names) - _LIST_AT_MOST
    return shown + (f" and {more} more" if more > 0 else "")


def predict(predictor: Predictor, table: FeatureTable, *, impute: bool = False) -> list[Prediction]:
    """Probability of expansion for every row of ``table``.

    Parameters
    ----------
    predictor:
        From :func:`load_predictor`.
    table:
        Feature table (extra columns are ignored).
    impute:
        Fill absent or empty required features with the training median.

    Raises
    ------
    ichpipe.errors.PredictorInputError
        If the table is of another feature space, or (without ``impute``) a
        required feature is absent from the table or empty in a row; the
        message names the patients and their missing features (the command
        line masks the IDs in it unless ``--log-phi``).
    """
    if table.n_patients == 0:
        raise PredictorInputError("The feature table has no rows to predict.")
    if predictor.feature_space and table.feature_space and table.feature_space != predictor.feature_space:
        raise PredictorInputError(
            f"The features are in feature space '{table.feature_space}' but the checkpoint was trained on "
            f"'{predictor.feature_space}' (different units or conventions); use a checkpoint trained on "
            f"'{table.feature_space}' features (`ichpipe train predictor`)."
        )
    required = list(predictor.feature_names)
    present = set(table.feature_names)
    absent = [n for n in required if n not in present]
    if absent and not impute:
        raise PredictorInputError(
            f"The input lacks {len(absent)} of the {len(required)} features the checkpoint needs: "
            f"{_names(absent)}. Provide them, or allow imputation with training medians "
            "(--impute / predictor.impute_missing)."
        )
    x = np.full((table.n_patients, len(required)), np.nan)
    index = {n: j for j, n in enumerate(table.feature_names)}
    for j, name in enumerate(required):
        if name in index:
            x[:, j] = table.values[:, index[name]]
    missing = np.isnan(x)
    if missing.any() and not impute:
        rows = np.flatnonzero(missing.any(axis=1))
        gaps = {table.patient_ids[i]: [required[j] for j in np.flatnonzero(missing[i])] for i in rows[:_LIST_AT_MOST]}
        who = "; ".join(f"{pid}: {len(names)} ({_names(names)})" for pid, names in gaps.items())
        more = f"; and {len(rows) - _LIST_AT_MOST} more patient(s)" if len(rows) > _LIST_AT_MOST else ""
        raise PredictorInputError(
            f"{len(rows)} patient(s) have no value for some required features - {who}{more}. Provide them, or "
            "allow imputation with training medians (--impute / predictor.impute_missing)."
        )
    z = torch.as_tensor(predictor.transform.apply(x), dtype=torch.float32)
    with torch.no_grad():
        raw = torch.sigmoid(predictor.network(z)).numpy().astype(np.float64)
    probs = raw if predictor.calibration is None else predictor.calibration.apply(raw)
    statement = predictor.statement
    out = []
    for i, pid in enumerate(table.patient_ids):
        above = None if predictor.threshold is None else bool(raw[i] >= predictor.threshold)
        imputed = tuple(required[j] for j in np.flatnonzero(missing[i]))
        out.append(Prediction(
            patient_id=pid, probability=float(probs[i]), above_threshold=above, imputed=imputed,
            raw_probability=float(raw[i]), calibrated=predictor.calibration is not None, statement=statement,
        ))
    return out
