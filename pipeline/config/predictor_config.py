"""The ``predictor:`` section of ``config.yaml``: imaging features, inputs, training, evaluation.

Kept free of heavy imports (no torch, no scikit-learn) so that loading the
configuration stays fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ichpipe.pipeline.config.features_config import FeatureConfig

__all__ = ["EvaluationConfig", "PredictorConfig", "TrainingConfig"]

ClassWeight = Literal["balanced", "none"]
MissingFeatures = Literal["empty", "drop", "fail"]
ThresholdRule = Literal["prevalence", "youden", "youden_capped"]
Calibration = Literal["platt", "none"]

#: Features log-transformed (sign(x) log(1 + |x|)) before standardisation: names ending so.
DEFAULT_LOG_SUFFIXES: tuple[str, ...] = (
    "volume_ml",
    "MeshVolume",
    "VoxelVolume",
    "SurfaceArea",
    "Energy",
    "TotalEnergy",
    "Variance",
)


@dataclass(frozen=True)
class TrainingConfig:
    """How every model is fitted (the same for cross-validation and the final checkpoint).

    Parameters
    ----------
    seed:
        Seed of every random choice (folds, inner splits, weights, bootstrap).
    class_weight:
        ``balanced``: each class weighs as much as the other in the loss
        (network: ``pos_weight = n_negative / n_positive``; scikit-learn
        ``class_weight='balanced'``); ``none``: every patient weighs 1.
        Balanced weighting shifts probabilities towards 0.5 (see the model card).
    log_suffixes:
        Features whose name ends with one of these are log-transformed
        (``sign(x) log1p(|x|)``) before standardisation; fixed beforehand, not tuned.
    volume_feature:
        The baseline hematoma volume column, used by the volume-only baseline.
    epochs:
        Most training epochs of the network.
    patience:
        Early stopping: epochs without a lower (smoothed) validation loss
        before stopping (the weights of the best epoch are kept).
    min_epochs:
        Epochs always trained before early stopping may pick an epoch: the
        first epochs of a barely trained network are never kept (the old
        recipe kept epoch 1 of 31).
    smoothing:
        Early stopping compares the trailing mean of the last ``smoothing``
        validation losses, not the single noisy value of a ~20-patient split.
    refit:
        The final network (of a fold or of the shipped checkpoint) is
        refitted on **all** its training patients for the median best epoch
        of the inner folds (at least ``min_epochs``), instead of keeping the
        early-stopped network of one 80/20 split.
    learning_rate, weight_decay:
        Adam settings (the seed's learning rate is 1e-3).
    batch_size:
        Mini-batch size of the network.
    validation_fraction:
        Share of each training fold held out (stratified) for early stopping.
    torch_threads:
        CPU threads torch may use while training (0: torch's default).
    """

    seed: int = 0
    class_weight: ClassWeight = "balanced"
    log_suffixes: tuple[str, ...] = DEFAULT_LOG_SUFFIXES
    volume_feature: str = "HM_volume_ml"
    epochs: int = 300
    patience: int = 30
    min_epochs: int = 10
    smoothing: int = 5
    refit: bool = True
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    validation_fraction: float = 0.2
    torch_threads: int = 1

    def __post_init__(self) -> None:
        if self.class_weight not in ("balanced", "none"):
            raise ValueError(
                f"predictor.training.class_weight must be 'balanced' or 'none'; got {self.class_weight!r}."
            )
        for key in ("epochs", "patience", "batch_size", "min_epochs", "smoothing"):
            if getattr(self, key) < 1:
                raise ValueError(f"predictor.training.{key} must be at least 1; got {getattr(self, key)}.")
        for key in ("learning_rate", "weight_decay"):
            value = getattr(self, key)
            if not math.isfinite(value) or value < 0 or (key == "learning_rate" and value == 0):
                raise ValueError(f"predictor.training.{key} must be a positive number; got {value!r}.")
        if self.min_epochs > self.epochs:
            raise ValueError(
                f"predictor.training.min_epochs ({self.min_epochs}) must not exceed epochs ({self.epochs})."
            )
        if not 0.05 <= self.validation_fraction <= 0.5:
            raise ValueError(
                f"predictor.training.validation_fraction must be in [0.05, 0.5]; got {self.validation_fraction}."
            )
        if self.torch_threads < 0:
            raise ValueError(f"predictor.training.torch_threads must be 0 or more; got {self.torch_threads}.")
        if not self.volume_feature.strip():
            raise ValueError("predictor.training.volume_feature must name a feature column.")


@dataclass(frozen=True)
class EvaluationConfig:
    """Cross-validation and the statistics reported.

    Parameters
    ----------
    folds, repeats:
        Repeated stratified k-fold cross-validation at patient level.
    threshold_folds:
        Inner folds on each training fold whose out-of-fold predictions fit
        the calibration and choose the decision threshold (and, for the
        network, the refit's number of epochs), so neither sees the test fold.
    threshold_rule:
        ``prevalence``: the threshold at which the inner out-of-fold flagged
        fraction equals the training prevalence; ``youden``: Youden's J (the
        old rule; on weak models it flags nearly everyone);
        ``youden_capped``: Youden's J among thresholds flagging at most
        ``flag_cap`` x the prevalence.
    flag_cap:
        Most flagged fraction, as a multiple of the prevalence, that
        ``youden_capped`` allows and that the shipped model's flagged
        fraction on its training patients is checked against.
    calibration:
        ``platt``: logistic recalibration of the probabilities fitted on the
        inner out-of-fold predictions; ``none``: raw model outputs.
    bootstrap:
        Patient-level bootstrap resamples behind the 95 % confidence intervals.
    calibration_bins:
        Bins (equal counts) of the calibration plot.
    """

    folds: int = 5
    repeats: int = 5
    threshold_folds: int = 5
    threshold_rule: ThresholdRule = "prevalence"
    flag_cap: float = 1.5
    calibration: Calibration = "platt"
    bootstrap: int = 2000
    calibration_bins: int = 5

    def __post_init__(self) -> None:
        if self.threshold_rule not in ("prevalence", "youden", "youden_capped"):
            raise ValueError(
                "predictor.evaluation.threshold_rule must be 'prevalence', 'youden' or 'youden_capped'; "
                f"got {self.threshold_rule!r}."
            )
        if self.calibration not in ("platt", "none"):
            raise ValueError(f"predictor.evaluation.calibration must be 'platt' or 'none'; got {self.calibration!r}.")
        if not math.isfinite(self.flag_cap) or self.flag_cap < 1.0:
            raise ValueError(f"predictor.evaluation.flag_cap must be a number of at least 1; got {self.flag_cap!r}.")
        for key, low in (("folds", 2), ("repeats", 1), ("threshold_folds", 2), ("bootstrap", 100),
                         ("calibration_bins", 2)):
            if getattr(self, key) < low:
                raise ValueError(f"predictor.evaluation.{key} must be at least {low}; got {getattr(self, key)}.")


@dataclass(frozen=True)
class PredictorConfig:
    """The expansion predictor: features computed by ``run``, inputs, training and evaluation.

    Parameters
    ----------
    features:
        Imaging features ``ichpipe run`` computes and records (``enabled`` switches them off).
    checkpoint:
        Checkpoint ``predict-expansion`` uses: a path, or a file name in the
        shipped ``models/checkpoints/``.
    impute_missing:
        ``predict-expansion``: fill a missing feature with the training median
        stored in the checkpoint (and say so) instead of refusing the patient.
    clinical_mapping:
        Column mapping of clinical CSVs: a shipped name
        (``pipeline/serial/mappings/clinical/``) or a YAML file.
    allow_post_baseline:
        Let clinical fields recorded after the first scan (treatments) be
        features. Off by default: they can reflect the expansion itself.
    missing_features:
        ``ichpipe features``: what to do with a patient that lacks some
        features (e.g. no radiomics row): ``empty`` keeps it with empty cells,
        ``drop`` leaves it out, ``fail`` stops; every such patient is listed.
    training, evaluation:
        See :class:`TrainingConfig` and :class:`EvaluationConfig`.
    """

    features: FeatureConfig = field(default_factory=FeatureConfig)
    checkpoint: str = "expansion_sacnn_contest2023e.pt"
    impute_missing: bool = False
    clinical_mapping: str = "contest_2023e"
    allow_post_baseline: bool = False
    missing_features: MissingFeatures = "empty"
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    def __post_init__(self) -> None:
        if not self.checkpoint.strip():
            raise ValueError("predictor.checkpoint must name a checkpoint file.")
        if not self.clinical_mapping.strip():
            raise ValueError("predictor.clinical_mapping must name a mapping.")
        if self.missing_features not in ("empty", "drop", "fail"):
            raise ValueError(
                f"predictor.missing_features must be empty, drop or fail; got {self.missing_features!r}."
            )
