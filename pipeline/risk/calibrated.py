"""One recipe for every model: inner folds, refit, calibration and threshold from out-of-fold predictions.

:class:`CalibratedModel` wraps any :class:`~ichpipe.pipeline.risk.tabular_baselines.Classifier`.
Fitting it on a set of training patients:

1. splits them into ``n_splits`` stratified inner folds; a base model is
   fitted on each inner training part and predicts its held-out part, which
   gives every training patient an **out-of-fold** probability;
2. fits the final base model on all the training patients: a model with a
   ``refit(..., inner=models)`` method (the network) uses the inner models
   (the network: the median best epoch); any other model is simply fitted;
3. fits the calibration (:class:`~ichpipe.pipeline.risk.calibration.PlattScaling`)
   on the out-of-fold probabilities;
4. chooses the decision threshold on the out-of-fold base-model outputs
   (``prevalence``: flag as many as expand; ``youden``; ``youden_capped``).
   The flag compares the base model's output with ``threshold_raw``: the
   calibration is monotone, so this is the same as comparing calibrated
   probabilities, except when the calibration is flat (slope 0, no usable
   out-of-fold ranking), where only the raw output can still rank.

Out-of-fold probabilities are those of models that did not see the patient,
so the calibration and threshold are what a new patient would get, not what
an over-fitted model says about its own training patients. The outer
cross-validation (:func:`ichpipe.pipeline.risk.cross_validation.cross_validate`) fits a
:class:`CalibratedModel` per outer fold, so its calibration and threshold
never see the test fold; the shipped checkpoint is one
:class:`CalibratedModel` fitted on every labelled patient.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ichpipe.pipeline.config.predictor_config import Calibration, ThresholdRule
from ichpipe.pipeline.risk.calibration import PlattScaling, prevalence_threshold, youden_threshold_capped
from ichpipe.pipeline.risk.cross_validation import youden_threshold
from ichpipe.pipeline.risk.cv import inner_folds
from ichpipe.pipeline.risk.tabular_baselines import Classifier

__all__ = ["CalibratedModel", "choose_threshold"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Seed offset between inner folds (as the old threshold folds used).
_INNER_SEED_STEP = 7919


def choose_threshold(p: FloatArray, y: IntArray, *, rule: ThresholdRule, cap: float) -> float:
    """The decision threshold of out-of-fold probabilities ``p`` under ``rule``."""
    prevalence = float(np.mean(y))
    if rule == "prevalence":
        return prevalence_threshold(p, prevalence)
    if rule == "youden_capped":
        return youden_threshold_capped(p, y, prevalence=prevalence, cap=cap)
    return youden_threshold(y, p)


class CalibratedModel:
    """A base model with inner-fold refit, calibration and threshold (see the module docstring).

    Parameters
    ----------
    make:
        Builds an unfitted base model.
    n_splits:
        Inner folds.
    calibration:
        ``platt`` or ``none``.
    threshold_rule, flag_cap:
        How the threshold is chosen (see :func:`choose_threshold`).
    refit:
        Let a base model with a ``refit`` method use the inner models (the
        network's epoch count); ``False`` fits the final base model plainly.
    """

    def __init__(
        self,
        make: Callable[[], Classifier],
        *,
        n_splits: int = 5,
        calibration: Calibration = "platt",
        threshold_rule: ThresholdRule = "prevalence",
        flag_cap: float = 1.5,
        refit: bool = True,
    ) -> None:
        if n_splits < 2:
            raise ValueError(f"Argument 'n_splits' must be at least 2; got {n_splits}.")
        self._make = make
        self._n_splits = n_splits
        self._calibration_method = calibration
        self._rule = threshold_rule
        self._cap = flag_cap
        self._refit = refit
        self.name = make().name
        self.base: Any = None
        self.calibration = PlattScaling()
        self.threshold = float("nan")
        self.threshold_raw = float("nan")
        self.oof_raw: FloatArray = np.zeros(0)
        self.oof: FloatArray = np.zeros(0)

    def fit(self, x: FloatArray, y: IntArray, feature_names: Sequence[str], *, seed: int) -> CalibratedModel:
        """Inner folds, final base model, calibration and threshold on these training rows only.

        Raises
        ------
        ValueError
            If a class has fewer patients than inner folds.
        """
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.int64)
        oof = np.full(len(y), np.nan)
        inner: list[Any] = []
        for k, (fit, held) in enumerate(inner_folds(y, n_splits=self._n_splits, seed=seed)):
            model = self._make().fit(x[fit], y[fit], feature_names, seed=seed + _INNER_SEED_STEP * (k + 1))
            oof[held] = model.predict_proba(x[held])
            inner.append(model)
        base = self._make()
        if self._refit and hasattr(base, "refit"):
            base.refit(x, y, feature_names, seed=seed, inner=inner)
        else:
            base.fit(x, y, feature_names, seed=seed)
        self.base = base
        self.oof_raw = oof
        self.calibration = PlattScaling.fit(oof, y) if self._calibration_method == "platt" else PlattScaling()
        self.oof = self.calibration.apply(oof)
        self.threshold_raw = choose_threshold(oof, y, rule=self._rule, cap=self._cap)
        self.threshold = float(self.calibration.apply(np.asarray([self.threshold_raw]))[0])
        return self

    def predict_raw(self, x: FloatArray) -> FloatArray:
        """The base model's probability (before calibration)."""
        if self.base is None:
            raise ValueError(f"Model '{self.name}' is not fitted; call fit first.")
        return np.asarray(self.base.predict_proba(x), dtype=np.float64)

    def predict_proba(self, x: FloatArray) -> FloatArray:
        """Calibrated probability of expansion per row."""
        return self.calibration.apply(self.predict_raw(x))

    def flag(self, x: FloatArray) -> npt.NDArray[np.bool_]:
        """Whether each row is at or above the decision threshold."""
        return np.asarray(self.predict_raw(x) >= self.threshold_raw)
