"""The seed's self-attention CNN (``expansion_sacnn``) as a classifier, and the final checkpoint.

Training of one fold (:class:`SACNNModel.fit`):

1. the preprocessing (median imputation, fixed log of heavy-tailed features,
   standardisation) is fitted on the training rows only;
2. a stratified ``validation_fraction`` of those rows is held out for early
   stopping (never the test fold);
3. weighted binary cross-entropy (``pos_weight = n_negative / n_positive``
   with balanced class weighting), Adam (lr 1e-3 as the seed, small weight
   decay), mini-batches, at most ``epochs`` epochs;
4. training stops after ``patience`` epochs without a lower validation loss
   and the weights of the best epoch are kept.

Everything is seeded (weights, shuffles, split), single-threaded by default.

:func:`train_predictor` trains the network on all labelled patients the
same way, chooses its decision threshold from out-of-fold predictions on
those patients, and :func:`save_predictor` writes a checkpoint that carries
the feature names and order, the preprocessing statistics, the threshold and
the training provenance in its metadata, so prediction needs nothing else.
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

    def fit(self, x: FloatArray, y: IntArray, feature_names: Sequence[str], *, seed: int) -> SACNNModel:
        """Fit preprocessing and network on these training rows only (see the module docstring).

        Raises
        ------
        ValueError
            If shapes disagree or a class has fewer than 2 patients.
        """
        cfg = self._training
        x = np.asarray(x, dtype=np.float64)
        labels = np.asarray(y, dtype=np.int64)
        self.transform = FeatureTransform.fit(x, feature_names, log_suffixes=cfg.log_suffixes)
        z = self.transform.apply(x)
        fit_idx, val_idx = validation_split(labels, fraction=cfg.validation_fraction, seed=seed)
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
            for epoch in range(1, cfg.epochs + 1):
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
                net.eval()
                with torch.no_grad():
                    val = float(loss_fn(net(xv), yv))
                history.train_loss.append(total / len(yf))
                history.val_loss.append(val)
                history.epochs_run = epoch
                if val < history.best_val_loss - 1e-6:
                    history.best_val_loss, history.best_epoch = val, epoch
                    best_state = copy.deepcopy(net.state_dict())
                elif epoch - history.best_epoch >= cfg.patience:
                    break
            net.load_state_dict(best_state)
            net.eval()
        self.network, self.history = net, history
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
    """The final network, its preprocessing and decision threshold, and how it was made.

    Attributes
    ----------
    model:
        The fitted :class:`SACNNModel`.
    feature_space:
        Feature space of the training table.
    threshold:
        Decision threshold (Youden's J on out-of-fold predictions of the
        training patients).
    n_patients, n_expanded:
        Training patients and how many expanded.
    seconds:
        Wall time of the final fit and of the threshold's inner folds.
    """

    model: SACNNModel
    feature_space: str | None
    threshold: float
    n_patients: int
    n_expanded: int
    seconds: Mapping[str, float]


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
    """Train the network on every labelled patient and choose its threshold.

    The threshold comes from ``evaluation.threshold_folds``-fold out-of-fold
    predictions on these patients (each model of those folds trained exactly
    like the final one), maximising Youden's J.
    """
    from ichpipe.pipeline.risk.cross_validation import oof_threshold

    started = time.perf_counter()
    model = SACNNModel(training, model_kwargs=model_kwargs).fit(x, y, feature_names, seed=training.seed)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    threshold = oof_threshold(
        lambda: SACNNModel(training, model_kwargs=model_kwargs),
        x,
        y,
        feature_names,
        n_splits=evaluation.threshold_folds,
        seed=training.seed,
    )
    return TrainedPredictor(
        model=model,
        feature_space=feature_space,
        threshold=threshold,
        n_patients=len(y),
        n_expanded=int(np.sum(y)),
        seconds={"fit": fit_s, "threshold": time.perf_counter() - started},
    )


def save_predictor(
    path: str | os.PathLike[str],
    trained: TrainedPredictor,
    *,
    training_data: str,
    training: TrainingConfig,
    label_rule: str,
    clinical_mapping: str,
    allow_post_baseline: bool,
    metrics: Mapping[str, float] | None = None,
) -> Path:
    """Write the checkpoint (atomically) with everything prediction needs in its metadata.

    ``metadata.normalisation`` holds ``feature_space``, ``feature_names``
    (model input order), the fitted preprocessing (``transform``: log flags,
    medians, means, standard deviations), ``threshold`` and how it was
    chosen, the label rule and the clinical mapping.
    """
    model = trained.model
    if model.network is None or model.transform is None:
        raise ValueError("Argument 'trained' holds an unfitted network.")
    transform = model.transform
    spec = get_model_spec(MODEL_NAME)
    normalisation = {
        "kind": "tabular-standardisation",
        "feature_space": trained.feature_space,
        "feature_names": list(transform.feature_names),
        "transform": transform.to_metadata(),
        "threshold": trained.threshold,
        "threshold_method": "Youden's J on out-of-fold predictions of the training patients",
        "label_rule": label_rule,
        "clinical_mapping": clinical_mapping,
        "allow_post_baseline": allow_post_baseline,
        "training": {
            "n_patients": trained.n_patients,
            "n_expanded": trained.n_expanded,
            "seed": training.seed,
            "class_weight": training.class_weight,
            "epochs_run": model.history.epochs_run,
            "best_epoch": model.history.best_epoch,
            "learning_rate": training.learning_rate,
            "weight_decay": training.weight_decay,
            "batch_size": training.batch_size,
            "validation_fraction": training.validation_fraction,
            "patience": training.patience,
        },
    }
    return save_checkpoint(
        path,
        model.network,
        name=spec.name,
        model_kwargs=model.model_kwargs,
        input_size=(len(transform.feature_names),),
        window=None,
        normalisation=normalisation,
        training_data=training_data,
        metrics=dict(metrics or {}),
    )
