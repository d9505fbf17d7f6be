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
``prespecified``
    L2 logistic regression on six predictors named by the literature before
    looking at this data (:data:`PRESPECIFIED`): hours from onset to CT,
    baseline volume, shape irregularity, density heterogeneity, hypodensity
    (the last three derived scale-free from the radiomics), systolic pressure.
``logistic_l1``
    L1 logistic regression on every feature; its penalty is chosen by an
    inner 5-fold log-loss on the training rows, so the feature selection
    happens inside each fold.

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
    "PRESPECIFIED",
    "Classifier",
    "DerivedModel",
    "L1Selected",
    "SklearnModel",
    "balanced_weights",
    "derived_columns",
    "gradient_boosting",
    "l1_logistic",
    "logistic_regression",
    "prespecified_columns",
    "prespecified_logistic",
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


#: The pre-specified predictors (literature, not chosen on this data): hours from onset to CT, baseline
#: volume, shape irregularity, density heterogeneity, hypodensity, systolic blood pressure.
PRESPECIFIED: tuple[str, ...] = (
    "onset_to_scan_h",
    "HM_volume_ml",
    "HM_shape_irregularity",
    "HM_density_heterogeneity",
    "HM_hypodensity",
    "sbp_mmhg",
)
#: Table columns the derived ones are computed from.
_DERIVED_FROM: dict[str, tuple[str, ...]] = {
    "HM_shape_irregularity": ("HM_original_shape_Sphericity",),
    "HM_density_heterogeneity": ("HM_original_firstorder_Variance", "HM_original_firstorder_Mean"),
    "HM_hypodensity": ("HM_original_firstorder_Median", "HM_original_firstorder_10Percentile"),
}


def prespecified_columns() -> tuple[str, ...]:
    """The table columns the pre-specified predictors are computed from."""
    return tuple(c for w in PRESPECIFIED for c in _DERIVED_FROM.get(w, (w,)))


def derived_columns(x: FloatArray, feature_names: Sequence[str], wanted: Sequence[str]) -> FloatArray:
    """The ``wanted`` columns of ``x``, computing the derived ones (scale-free, so non-HU intensities do).

    ``HM_shape_irregularity`` = 1 - sphericity; ``HM_density_heterogeneity`` =
    SD / mean of the hematoma's intensities (coefficient of variation);
    ``HM_hypodensity`` = (median - 10th percentile) / median (how far the
    darkest tenth of the clot lies below its median).

    Raises
    ------
    ValueError
        If a column (or what a derived one needs) is absent.
    """
    names = list(feature_names)
    a = np.asarray(x, dtype=np.float64)
    need = [c for w in wanted for c in _DERIVED_FROM.get(w, (w,))]
    absent = [c for c in need if c not in names]
    if absent:
        raise ValueError(f"Features {', '.join(absent)} are absent from the table.")

    def col(name: str) -> FloatArray:
        return np.asarray(a[:, names.index(name)])

    out = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for w in wanted:
            if w == "HM_shape_irregularity":
                v = 1.0 - col("HM_original_shape_Sphericity")
            elif w == "HM_density_heterogeneity":
                v = np.sqrt(col("HM_original_firstorder_Variance")) / col("HM_original_firstorder_Mean")
            elif w == "HM_hypodensity":
                median = col("HM_original_firstorder_Median")
                v = (median - col("HM_original_firstorder_10Percentile")) / median
            else:
                v = col(w)
            out.append(np.where(np.isfinite(v), v, np.nan))
    return np.asarray(np.column_stack(out))


class DerivedModel(SklearnModel):
    """A :class:`SklearnModel` on named (possibly derived, see :func:`derived_columns`) columns."""

    def __init__(
        self, name: str, make_estimator: Callable[[int], Any], training: TrainingConfig, *, columns: Sequence[str]
    ) -> None:
        super().__init__(name, make_estimator, training, columns=columns)
        self._names: list[str] = []

    def _select(self, x: FloatArray) -> FloatArray:
        if not self._names:
            raise ValueError(f"Model '{self.name}' is not fitted; call fit first.")
        return derived_columns(x, self._names, self._columns or ())

    def fit(self, x: FloatArray, y: IntArray, feature_names: Sequence[str], *, seed: int) -> DerivedModel:
        """Fit the transform and the estimator on the derived columns of these training rows."""
        self._names = list(feature_names)
        xs = self._select(x)
        wanted = list(self._columns or ())
        self.transform = FeatureTransform.fit(xs, wanted, log_suffixes=self._training.log_suffixes)
        weights = balanced_weights(y) if self._training.class_weight == "balanced" else None
        self.estimator = self._make(seed)
        self.estimator.fit(self.transform.apply(xs), np.asarray(y), sample_weight=weights)
        return self


def prespecified_logistic(training: TrainingConfig) -> DerivedModel:
    """L2 logistic regression (C = 1) on the :data:`PRESPECIFIED` predictors."""
    return DerivedModel(
        "prespecified",
        lambda seed: LogisticRegression(C=1.0, max_iter=10_000, random_state=seed),
        training,
        columns=PRESPECIFIED,
    )


def _l1_estimator(c: float, seed: int) -> LogisticRegression:
    """An L1 logistic regression in the spelling of the installed scikit-learn (``penalty`` is deprecated in 1.8)."""
    import sklearn

    major, minor = (int(v) for v in sklearn.__version__.split(".")[:2])
    if (major, minor) >= (1, 8):
        return LogisticRegression(C=c, l1_ratio=1.0, solver="liblinear", max_iter=10_000, random_state=seed)
    return LogisticRegression(C=c, penalty="l1", solver="liblinear", max_iter=10_000, random_state=seed)


class L1Selected:
    """L1 logistic regression whose penalty is chosen by inner stratified k-fold log-loss on the rows it is fitted on.

    Parameters
    ----------
    seed:
        Seed of the inner folds and the solver.
    cs:
        Inverse penalties tried (fixed beforehand).
    folds:
        Inner folds (fewer when the smaller class has fewer patients; a fixed
        ``C = 0.1`` when it has fewer than 2).
    """

    def __init__(self, seed: int, *, cs: Sequence[float] = tuple(np.logspace(-2.5, 0.5, 10)), folds: int = 5) -> None:
        self._seed = seed
        self._cs = tuple(float(c) for c in cs)
        self._folds = folds
        self.c_: float = float("nan")
        self.estimator_: LogisticRegression | None = None

    def fit(self, x: FloatArray, y: IntArray, sample_weight: FloatArray | None = None) -> L1Selected:
        """Choose ``C`` on inner folds of these rows, then fit on all of them."""
        from sklearn.model_selection import StratifiedKFold

        labels = np.asarray(y, dtype=np.int64)
        weights = np.ones(labels.size) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        k = min(self._folds, int(np.bincount(labels, minlength=2).min()))
        if k < 2:
            self.c_ = 0.1
        else:
            splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=self._seed)
            losses = []
            for c in self._cs:
                total = 0.0
                for a, b in splitter.split(x, labels):
                    model = _l1_estimator(c, self._seed).fit(x[a], labels[a], sample_weight=weights[a])
                    p = np.clip(model.predict_proba(x[b])[:, 1], 1e-6, 1 - 1e-6)
                    total += float(np.sum(weights[b] * -(labels[b] * np.log(p) + (1 - labels[b]) * np.log1p(-p))))
                losses.append(total)
            self.c_ = self._cs[int(np.argmin(losses))]
        self.estimator_ = _l1_estimator(self.c_, self._seed).fit(x, labels, sample_weight=weights)
        return self

    def predict_proba(self, x: FloatArray) -> FloatArray:
        """Class probabilities, as scikit-learn's."""
        if self.estimator_ is None:
            raise ValueError("The L1 model is not fitted; call fit first.")
        return np.asarray(self.estimator_.predict_proba(x), dtype=np.float64)


def l1_logistic(training: TrainingConfig) -> SklearnModel:
    """L1 logistic regression on every feature, its penalty chosen by inner 5-fold log-loss (selection in-fold)."""
    return SklearnModel("logistic_l1", lambda seed: L1Selected(seed), training)
