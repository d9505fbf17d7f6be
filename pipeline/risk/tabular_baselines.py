"""Baselines beside the seed's network: logistic regression, gradient boosting, volume only.

Every model here and the network (:mod:`ichpipe.pipeline.risk.train`) share one
interface (:class:`Classifier`): ``fit(x, y, feature_names, seed=...)`` on
training rows only (the preprocessing is fitted inside, on those rows) and
``predict_proba(x)`` for the probability of expansion. Hyper-parameters are
fixed beforehand (common small-data choices), never tuned on the data:

``logistic``
    L2 logistic regression (C = 1) on all features, standardised.
``gbm``
    scikit-learn gradient boosting: 200 trees of depth 2, learning rate
    0.05, 80 % row subsampling.
``volume``
    Logistic regression on the baseline hematoma volume alone (log mL),
    the reference any richer model has to beat.

Class weighting (``predictor.training.class_weight: balanced``) gives each
class the same total weight in every model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from ichpipe.pipeline.config.predictor_config import TrainingConfig
from ichpipe.pipeline.risk.feature_transform import FeatureTransform

__all__ = [
    "Classifier",
    "SklearnModel",
    "balanced_weights",
    "gradient_boosting",
    "logistic_regression",
    "volume_logistic",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class Classifier(Protocol):
    """What cross-validation needs of a model."""

    name: str

    def fit(self, x: FloatArray, y: IntArray, feature_names: Sequence[str], *, seed: int) -> Classifier:
        """Fit on training rows (preprocessing included); return ``self``."""
        ...

    def predict_proba(self, x: FloatArray) -> FloatArray:
        """Probability of expansion for each row of ``x`` (all features, table order)."""
        ...


def balanced_weights(y: IntArray) -> FloatArray:
    """Per-row weights giving each class the same total (``n / (2 n_class)``), as scikit-learn's 'balanced'."""
    labels = np.asarray(y, dtype=np.int64)
    counts = np.bincount(labels, minlength=2).astype(np.float64)
    if counts.min() == 0:
        raise ValueError("Argument 'y' must hold both classes to weight them.")
    return np.asarray((labels.size / (2.0 * counts))[labels])


class SklearnModel:
    """A scikit-learn estimator behind a fitted :class:`FeatureTransform`.

    Parameters
    ----------
    name:
        Model name in reports.
    make_estimator:
        ``seed -> estimator`` with ``fit(x, y, sample_weight=...)`` and ``predict_proba``.
    training:
        Class weighting and log-transformed features.
    columns:
        Only these features (e.g. the volume); ``None`` uses all.
    """

    def __init__(
        self,
        name: str,
        make_estimator: Callable[[int], Any],
        training: TrainingConfig,
        *,
        columns: Sequence[str] | None = None,
    ) -> None:
        self.name = name
        self._make = make_estimator
        self._training = training
        self._columns = None if columns is None else tuple(columns)
        self._index: list[int] | None = None
        self.transform: FeatureTransform | None = None
        self.estimator: Any = None

    def _select(self, x: FloatArray) -> FloatArray:
        if self._index is None:
            raise ValueError(f"Model '{self.name}' is not fitted; call fit first.")
        return np.asarray(np.asarray(x, dtype=np.float64)[:, self._index])

    def fit(self, x: FloatArray, y: IntArray, feature_names: Sequence[str], *, seed: int) -> SklearnModel:
        """Fit the transform and the estimator on these training rows only.

        Raises
        ------
        ValueError
            If a requested column is not among ``feature_names`` or shapes disagree.
        """
        names = list(feature_names)
        wanted = list(self._columns) if self._columns is not None else names
        absent = [c for c in wanted if c not in names]
        if absent:
            raise ValueError(f"Model '{self.name}' needs feature(s) {', '.join(absent)}, absent from the table.")
        self._index = [names.index(c) for c in wanted]
        xs = self._select(x)
        self.transform = FeatureTransform.fit(xs, wanted, log_suffixes=self._training.log_suffixes)
        weights = balanced_weights(y) if self._training.class_weight == "balanced" else None
        self.estimator = self._make(seed)
        self.estimator.fit(self.transform.apply(xs), np.asarray(y), sample_weight=weights)
        return self

    def predict_proba(self, x: FloatArray) -> FloatArray:
        """Probability of expansion per row."""
        if self.transform is None or self.estimator is None:
            raise ValueError(f"Model '{self.name}' is not fitted; call fit first.")
        return np.asarray(self.estimator.predict_proba(self.transform.apply(self._select(x)))[:, 1], dtype=np.float64)


def logistic_regression(training: TrainingConfig) -> SklearnModel:
    """L2 logistic regression (C = 1) on every feature."""
    return SklearnModel(
        "logistic", lambda seed: LogisticRegression(C=1.0, max_iter=10_000, random_state=seed), training
    )


def gradient_boosting(training: TrainingConfig) -> SklearnModel:
    """Gradient-boosted trees (200 trees, depth 2, learning rate 0.05, subsample 0.8)."""
    return SklearnModel(
        "gbm",
        lambda seed: GradientBoostingClassifier(
            n_estimators=200, learning_rate=0.05, max_depth=2, subsample=0.8, random_state=seed
        ),
        training,
    )


def volume_logistic(training: TrainingConfig) -> SklearnModel:
    """Logistic regression on the baseline hematoma volume alone."""
    return SklearnModel(
        "volume",
        lambda seed: LogisticRegression(C=1.0, max_iter=10_000, random_state=seed),
        training,
        columns=(training.volume_feature,),
    )
