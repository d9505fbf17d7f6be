"""The seed's self-attention CNN (``expansion_sacnn``) as a classifier, and the final checkpoint.

Training of one network (:meth:`SACNNModel.fit`):

1. the preprocessing (median imputation, fixed log of heavy-tailed features,
   standardisation) is fitted on the training rows only;
2. a stratified ``validation_fraction`` of those rows is held out for early
   stopping (never the test fold);
3. weighted binary cross-entropy (``pos_weight = n_negative / n_positive``
   with balanced class weighting), Adam (lr 1e-3 as the seed, small weight
   decay), mini-batches, at most ``epochs`` epochs;
4. early stopping compares the trailing mean of the last ``smoothing``
   validation losses, counts only epochs from ``min_epochs`` on, stops after
   ``patience`` epochs without improvement and keeps the weights of the best
   epoch.

With ``epochs=`` given, :meth:`SACNNModel.fit` instead trains on *all* rows
for exactly that many epochs (no hold-out). :meth:`SACNNModel.refit` does so
for the median best epoch of networks fitted on inner folds (the recipe of
:class:`~ichpipe.pipeline.risk.calibrated.CalibratedModel` with
``training.refit``): the final network learns from every training patient,
and the number of epochs comes from held-out data, never from epoch 1 of one
noisy 80/20 split.

Everything is seeded (weights, shuffles, split), single-threaded by default.

:func:`train_predictor` trains the network on all labelled patients that
way, fits its calibration and decision threshold on out-of-fold predictions
of those patients, and :func:`save_predictor` writes a checkpoint that
carries the feature names and order, the preprocessing statistics, the
calibration, the threshold, the cross-validated performance and the
training provenance in its metadata, so prediction needs nothing else.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from ichpipe.models.checkpoint import save_checkpoint
from ichpipe.models.registry import build_model, get_model_spec
from ichpipe.pipeline.config.predictor_config import EvaluationConfig, TrainingConfig
from ichpipe.pipeline.risk.cv import validation_split
from ichpipe.pipeline.risk.feature_transform import FeatureTransform

__all__ = [
    "MODEL_NAME",
    "SACNNModel",
    "TrainedPredictor",
    "save_predictor",
    "torch_threads",
    "train_predictor",
]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Registry name of the seed's network.
MODEL_NAME = "expansion_sacnn"


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (0: leave torch's setting), then restore it."""
    before = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class History:
    """What one training run did."""

    epochs_run: int = 0
    best_epoch: int = 0
    best_val_loss: float = float("inf")
    refit_from: tuple[int, ...] = ()
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)


class SACNNModel:
    """The seed's network behind the :class:`~ichpipe.pipeline.risk.tabular_baselines.Classifier` interface.

    Parameters
    ----------
    training:
        Optimiser, early stopping, class weighting, log features, threads.
    model_kwargs:
        Constructor arguments other than ``n_features`` (registry defaults otherwise).
    """

    name = "sacnn"

    def __init__(self, training: TrainingConfig, *, model_kwargs: Mapping[str, Any] | None = None) -> None:
        self._training = training
        self._kwargs = dict(model_kwargs or {})
        if "n_features" in self._kwargs:
            raise ValueError("Argument 'model_kwargs' must not set n_features; it follows the feature table.")
        self.transform: FeatureTransform | None = None
        self.network: nn.Module | None = None
        self.history = History()

    @property
    def model_kwargs(self) -> dict[str, Any]:
        """Full constructor arguments of the fitted network."""
        if self.transform is None:
            raise ValueError("The network is not fitted; call fit first.")
        return {**self._kwargs, "n_features": len(self.transform.feature_names)}

    def fit(
        self,
        x: FloatArray,
        y: IntArray,
        feature_names: Sequence[str],
        *,
        seed: int,
        epochs: int | None = None,
    ) -> SACNNModel:
        """Fit preprocessing and network on these training rows only (see the module docstring).

        Parameters
        ----------
        epochs:
            ``None``: early stopping on a stratified validation split; a
            number: train on every row for exactly that many epochs.

        Raises
        ------
        ValueError
            If shapes disagree, a class has fewer than 2 patients, or ``epochs`` is below 1.
        """
        cfg = self._training
        if epochs is not None and epochs < 1:
            raise ValueError(f"Argument 'epochs' must be at least 1; got {epochs}.")
        x = np.asarray(x, dtype=np.float64)
        labels = np.asarray(y, dtype=np.int64)
        self.transform = FeatureTransform.fit(x, feature_names, log_suffixes=cfg.log_suffixes)
        z = self.transform.apply(x)
        if epochs is None:
            fit_idx, val_idx = validation_split(labels, fraction=cfg.validation_fraction, seed=seed)
        else:
            fit_idx, val_idx = np.arange(labels.size, dtype=np.int64), np.zeros(0, dtype=np.int64)
        with torch_threads(cfg.torch_threads):
            torch.manual_seed(seed)
            net = build_model(MODEL_NAME, **self.model_kwargs)
            xf = torch.as_tensor(z[fit_idx], dtype=torch.float32)
            yf = torch.as_tensor(labels[fit_idx], dtype=torch.float32)
            xv = torch.as_tensor(z[val_idx], dtype=torch.float32)
            yv = torch.as_tensor(labels[val_idx], dtype=torch.float32)
            n_pos = float(yf.sum())
            pos_weight = (len(yf) - n_pos) / n_pos if cfg.class_weight == "balanced" and n_pos > 0 else 1.0
            loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight))
            optimiser = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
            generator = torch.Generator().manual_seed(seed)
            history = History()
            best_state = copy.deepcopy(net.state_dict())
            for epoch in range(1, (epochs or cfg.epochs) + 1):
                net.train()
                order = torch.randperm(len(yf), generator=generator)
                total = 0.0
                for start in range(0, len(yf), cfg.batch_size):
                    batch = order[start : start + cfg.batch_size]
                    optimiser.zero_grad()
                    loss = loss_fn(net(xf[batch]), yf[batch])
                    loss.backward()
                    optimiser.step()
                    total += loss.item() * len(batch)
                history.train_loss.append(total / len(yf))
                history.epochs_run = epoch
                if epochs is not None:
                    continue
                net.eval()
                with torch.no_grad():
                    history.val_loss.append(float(loss_fn(net(xv), yv)))
                if epoch < cfg.min_epochs:
                    continue
                smoothed = float(np.mean(history.val_loss[-cfg.smoothing :]))
                if smoothed < history.best_val_loss - 1e-6:
                    history.best_val_loss, history.best_epoch = smoothed, epoch
                    best_state = copy.deepcopy(net.state_dict())
                elif epoch - history.best_epoch >= cfg.patience:
                    break
            if epochs is None:
                net.load_state_dict(best_state)
            else:
                history.best_epoch = epochs
            net.eval()
        self.network, self.history = net, history
        return self

    def refit(
        self,
        x: FloatArray,
        y: IntArray,
        feature_names: Sequence[str],
        *,
        seed: int,
        inner: Sequence[SACNNModel],
    ) -> SACNNModel:
        """Fit on every row for the median best epoch of the ``inner`` networks (at least ``min_epochs``).

        Raises
        ------
        ValueError
            If ``inner`` is empty or holds an unfitted network.
        """
        best = [m.history.best_epoch for m in inner]
        if not best or min(best) < 1:
            raise ValueError("Argument 'inner' must hold fitted networks (their best epochs choose the refit's).")
        epochs = max(self._training.min_epochs, round(float(np.median(best))))
        self.fit(x, y, feature_names, seed=seed, epochs=epochs)
        self.history.refit_from = tuple(best)
        return self

    def predict_proba(self, x: FloatArray) -> FloatArray:
        """Probability of expansion per row."""
        if self.transform is None or self.network is None:
            raise ValueError("The network is not fitted; call fit first.")
        z = torch.as_tensor(self.transform.apply(x), dtype=torch.float32)
        with torch_threads(self._training.torch_threads), torch.no_grad():
            return np.asarray(torch.sigmoid(self.network(z)).numpy(), dtype=np.float64)


@dataclass(frozen=True)
class TrainedPredictor:
    """The final network with its calibration and decision threshold, and how it was made.

    Attributes
    ----------
    model:
        The fitted :class:`~ichpipe.pipeline.risk.calibrated.CalibratedModel`
        around the network (``model.base`` is the :class:`SACNNModel`).
    feature_space:
        Feature space of the training table.
    threshold:
        Decision threshold on the network's output (``model.threshold_raw``).
    n_patients, n_expanded:
        Training patients and how many expanded.
    seconds:
        Wall time of the inner folds plus the final fit.
    training_flagged:
        Share of the training patients the final model flags (compare with the prevalence).
    oof_flagged:
        Share of the training patients' out-of-fold predictions at or above the threshold.
    """

    model: Any
    feature_space: str | None
    threshold: float
    n_patients: int
    n_expanded: int
    seconds: Mapping[str, float]
    training_flagged: float = float("nan")
    oof_flagged: float = float("nan")

    @property
    def prevalence(self) -> float:
        """Share of the training patients who expanded."""
        return self.n_expanded / self.n_patients


def train_predictor(
    x: FloatArray,
    y: IntArray,
    feature_names: Sequence[str],
    *,
    feature_space: str | None,
    training: TrainingConfig,
    evaluation: EvaluationConfig,
    model_kwargs: Mapping[str, Any] | None = None,
) -> TrainedPredictor:
    """Train the network on every labelled patient with its calibration and threshold.

    One :class:`~ichpipe.pipeline.risk.calibrated.CalibratedModel`:
    ``evaluation.threshold_folds`` inner folds give every patient an
    out-of-fold probability (each inner network trained exactly like those of
    the cross-validation); with ``training.refit`` the final network is fitted
    on all patients for the median best epoch of the inner networks; Platt
    scaling (``evaluation.calibration``) and the threshold
    (``evaluation.threshold_rule``) are fitted on the out-of-fold predictions.
    The flagged fraction of the final model on these patients is measured
    and returned (the job and the card report it beside the prevalence).
    """
    from ichpipe.pipeline.risk.calibrated import CalibratedModel

    started = time.perf_counter()
    model = CalibratedModel(
        lambda: SACNNModel(training, model_kwargs=model_kwargs),
        n_splits=evaluation.threshold_folds,
        calibration=evaluation.calibration,
        threshold_rule=evaluation.threshold_rule,
        flag_cap=evaluation.flag_cap,
        refit=training.refit,
    ).fit(x, y, feature_names, seed=training.seed)
    seconds = time.perf_counter() - started
    return TrainedPredictor(
        model=model,
        feature_space=feature_space,
        threshold=model.threshold_raw,
        n_patients=len(y),
        n_expanded=int(np.sum(y)),
        seconds={"fit": seconds},
        training_flagged=float(np.mean(model.flag(x))),
        oof_flagged=float(np.mean(model.oof_raw >= model.threshold_raw)),
    )


_THRESHOLD_METHODS = {
    "prevalence": "the out-of-fold flagged fraction of the training patients equals their prevalence",
    "youden": "Youden's J on out-of-fold predictions of the training patients",
    "youden_capped": "Youden's J on out-of-fold predictions of the training patients, flagging at most "
    "flag_cap x the prevalence",
}


def save_predictor(
    path: str | os.PathLike[str],
    trained: TrainedPredictor,
    *,
    training_data: str,
    training: TrainingConfig,
    evaluation: EvaluationConfig | None = None,
    label_rule: str,
    clinical_mapping: str,
    allow_post_baseline: bool,
    metrics: Mapping[str, float] | None = None,
    performance: Mapping[str, Any] | None = None,
) -> Path:
    """Write the checkpoint (atomically) with everything prediction needs in its metadata.

    ``metadata.normalisation`` holds ``feature_space``, ``feature_names``
    (model input order), the fitted preprocessing (``transform``: log flags,
    medians, means, standard deviations), ``calibration`` (Platt slope and
    intercept applied to the network's probability), ``threshold`` (on the
    network's probability, before calibration) and how it was chosen,
    ``performance`` (the cross-validated AUC with its interval and the
    sentence printed with every prediction), the flagged fractions, the label
    rule and the clinical mapping.
    """
    from ichpipe.pipeline.risk.calibration import performance_statement

    evaluation = evaluation or EvaluationConfig()
    model = trained.model
    net: SACNNModel = model.base
    if net is None or net.network is None or net.transform is None:
        raise ValueError("Argument 'trained' holds an unfitted network.")
    transform = net.transform
    spec = get_model_spec(MODEL_NAME)
    perf = dict(performance or {})
    perf["statement"] = performance_statement(perf or None)
    normalisation = {
        "kind": "tabular-standardisation",
        "feature_space": trained.feature_space,
        "feature_names": list(transform.feature_names),
        "transform": transform.to_metadata(),
        "calibration": {**model.calibration.to_metadata(),
                        "fitted_on": f"{evaluation.threshold_folds}-fold out-of-fold predictions of the "
                                     "training patients"},
        "threshold": trained.threshold,
        "threshold_calibrated": model.threshold,
        "threshold_applies_to": "the network's probability before calibration",
        "threshold_method": _THRESHOLD_METHODS[evaluation.threshold_rule],
        "flagged_fraction": {
            "training_patients": trained.training_flagged,
            "training_out_of_fold": trained.oof_flagged,
            "prevalence": trained.prevalence,
        },
        "performance": perf,
        "label_rule": label_rule,
        "clinical_mapping": clinical_mapping,
        "allow_post_baseline": allow_post_baseline,
        "training": {
            "n_patients": trained.n_patients,
            "n_expanded": trained.n_expanded,
            "seed": training.seed,
            "class_weight": training.class_weight,
            "epochs_run": net.history.epochs_run,
            "best_epoch": net.history.best_epoch,
            "refit": training.refit,
            "inner_best_epochs": list(net.history.refit_from),
            "min_epochs": training.min_epochs,
            "smoothing": training.smoothing,
            "learning_rate": training.learning_rate,
            "weight_decay": training.weight_decay,
            "batch_size": training.batch_size,
            "validation_fraction": training.validation_fraction,
            "patience": training.patience,
        },
    }
    return save_checkpoint(
        path,
        net.network,
        name=spec.name,
        model_kwargs=net.model_kwargs,
        input_size=(len(transform.feature_names),),
        window=None,
        normalisation=normalisation,
        training_data=training_data,
        metrics=dict(metrics or {}),
    )
