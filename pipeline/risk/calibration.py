"""Probability calibration, decision thresholds and the performance statement of a predictor.

Everything here is fitted on **out-of-fold** predictions (a model's
predictions for training patients it did not see), never on the patients a
model was fitted on:

* :class:`PlattScaling`: ``p_cal = sigmoid(a * logit(p) + b)``, a two-parameter
  logistic recalibration (Platt 1999). It repairs what class weighting does
  to probabilities (balanced weighting pulls them towards 0.5) and shrinks
  the spread of a model whose ranking does not carry over to unseen patients
  (slope ``a`` near 0: every patient near the prevalence). The slope is
  never negative: a model whose out-of-fold ranking runs backwards has no
  usable ranking, and gets ``a = 0`` (everyone the out-of-fold prevalence)
  rather than an inverted one.
* :func:`prevalence_threshold`: the threshold at which the out-of-fold
  flagged fraction equals the prevalence of the training patients, so the
  share of patients flagged "expanding" matches how many expand.
* :func:`youden_threshold_capped`: Youden's J restricted to thresholds that
  flag at most ``cap`` x the prevalence (for comparison).
* :func:`calibration_slope_intercept`: logistic calibration slope (``y`` on
  ``logit(p)``) and calibration-in-the-large (intercept with ``logit(p)`` as
  offset): slope 1 and intercept 0 are perfect; slope < 1 means too extreme
  predictions, intercept < 0 predictions too high on average.
* :func:`performance_statement`: the sentence printed beside every
  prediction, from the cross-validated AUC and its interval.

This module needs NumPy only (no torch, no scikit-learn): inference imports it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "PlattScaling",
    "calibration_slope_intercept",
    "flagged_fraction",
    "logit",
    "performance_statement",
    "prevalence_threshold",
    "youden_threshold_capped",
]

FloatArray = npt.NDArray[np.float64]

#: Probabilities are clipped to [_EPS, 1 - _EPS] before the logit (|logit| <= 13.8).
_EPS = 1e-6


def logit(p: npt.ArrayLike) -> FloatArray:
    """``log(p / (1 - p))`` of probabilities clipped to ``[1e-6, 1 - 1e-6]``."""
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.asarray(np.log(q) - np.log1p(-q))


def _sigmoid(z: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0))))


def _logistic_fit(
    x: FloatArray, y: FloatArray, *, offset: FloatArray | None = None, ridge: float = 1e-4, iterations: int = 100
) -> FloatArray:
    """Newton-Raphson of ``y ~ sigmoid(b + w x + offset)``; returns ``[b, w]`` (``w`` absent if ``x`` is None-like).

    ``x`` has shape (n, k) with k in {0, 1}; a small ridge on ``w`` keeps a
    separable or constant input finite.
    """
    n, k = x.shape
    design = np.column_stack([np.ones(n), x])
    beta = np.zeros(k + 1)
    off = np.zeros(n) if offset is None else offset
    penalty = np.diag([0.0] + [ridge] * k)
    for _ in range(iterations):
        p = _sigmoid(design @ beta + off)
        w = p * (1.0 - p)
        grad = design.T @ (y - p) - penalty @ beta
        hess = (design * w[:, None]).T @ design + penalty + 1e-12 * np.eye(k + 1)
        step = np.linalg.solve(hess, grad)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-9:
            break
    return np.asarray(beta)


@dataclass(frozen=True)
class PlattScaling:
    """``p_cal = sigmoid(slope * logit(p) + intercept)``, fitted on out-of-fold predictions.

    Attributes
    ----------
    slope, intercept:
        The fitted recalibration (identity: 1 and 0).
    """

    slope: float = 1.0
    intercept: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.slope) and math.isfinite(self.intercept)):
            raise ValueError("Arguments 'slope' and 'intercept' must be finite numbers.")

    @classmethod
    def fit(cls, p: npt.ArrayLike, y: npt.ArrayLike) -> PlattScaling:
        """Logistic regression of the labels on ``logit(p)`` (slope clipped at 0, see the module docstring).

        Raises
        ------
        ValueError
            If shapes disagree or ``y`` lacks a class.
        """
        probs = np.asarray(p, dtype=np.float64)
        labels = np.asarray(y, dtype=np.float64)
        if probs.ndim != 1 or probs.shape != labels.shape or probs.size == 0:
            raise ValueError("Arguments 'p' and 'y' must be 1D arrays of the same, non-zero length.")
        if labels.min() == labels.max():
            raise ValueError("Argument 'y' must hold both classes to fit a calibration.")
        b, a = _logistic_fit(logit(probs)[:, None], labels)
        if a <= 0.0:  # no usable ranking: everyone gets the prevalence
            rate = float(labels.mean())
            return cls(slope=0.0, intercept=math.log(rate / (1.0 - rate)))
        return cls(slope=float(a), intercept=float(b))

    def apply(self, p: npt.ArrayLike) -> FloatArray:
        """Calibrated probabilities."""
        return _sigmoid(self.slope * logit(p) + self.intercept)

    def to_metadata(self) -> dict[str, Any]:
        """Plain values for a checkpoint."""
        return {"method": "platt", "slope": self.slope, "intercept": self.intercept}

    @classmethod
    def from_metadata(cls, data: Mapping[str, Any]) -> PlattScaling:
        """The calibration stored by :meth:`to_metadata`.

        Raises
        ------
        ValueError
            If the entry is not a Platt calibration or is malformed.
        """
        if data.get("method") != "platt":
            raise ValueError(f"Unknown calibration method {data.get('method')!r}; expected 'platt'.")
        try:
            return cls(slope=float(data["slope"]), intercept=float(data["intercept"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"The stored calibration is incomplete ({exc}).") from exc


def flagged_fraction(p: npt.ArrayLike, threshold: float) -> float:
    """Share of predictions at or above ``threshold``."""
    return float(np.mean(np.asarray(p, dtype=np.float64) >= threshold))


def prevalence_threshold(p: npt.ArrayLike, prevalence: float) -> float:
    """The threshold at which the share of ``p >= t`` is closest to ``prevalence``.

    Candidate thresholds are the predictions themselves and one just above the
    largest (flag nobody); ties that cannot be split are resolved towards the
    smaller flagged share, so a model whose predictions are all equal flags
    nobody rather than everybody.

    Raises
    ------
    ValueError
        If ``p`` is empty or ``prevalence`` is not in (0, 1).
    """
    probs = np.sort(np.asarray(p, dtype=np.float64))[::-1]
    if probs.size == 0:
        raise ValueError("Argument 'p' must hold at least one prediction.")
    if not 0.0 < prevalence < 1.0:
        raise ValueError(f"Argument 'prevalence' must be in (0, 1); got {prevalence}.")
    candidates = np.append(np.unique(probs), np.nextafter(probs[0], np.inf))
    shares = np.array([np.mean(probs >= t) for t in candidates])
    gap = np.abs(shares - prevalence)
    best = np.flatnonzero(gap <= gap.min() + 1e-12)
    return float(candidates[best[np.argmax(candidates[best])]])


def youden_threshold_capped(p: npt.ArrayLike, y: npt.ArrayLike, *, prevalence: float, cap: float = 1.5) -> float:
    """Youden's J maximised over thresholds that flag at most ``cap * prevalence`` of the patients.

    Raises
    ------
    ValueError
        If ``y`` lacks a class, or ``cap`` is below 1.
    """
    probs = np.asarray(p, dtype=np.float64)
    labels = np.asarray(y, dtype=np.int64)
    if labels.min() == labels.max():
        raise ValueError("Argument 'y' must hold both classes to choose a threshold.")
    if cap < 1.0:
        raise ValueError(f"Argument 'cap' must be at least 1; got {cap}.")
    best_t, best_j = prevalence_threshold(probs, prevalence), -math.inf
    for t in np.unique(probs):
        flagged = probs >= t
        if flagged.mean() > cap * prevalence:
            continue
        j = flagged[labels == 1].mean() - flagged[labels == 0].mean()
        if j > best_j + 1e-12:
            best_t, best_j = float(t), float(j)
    return best_t


def calibration_slope_intercept(p: npt.ArrayLike, y: npt.ArrayLike) -> tuple[float, float]:
    """Calibration slope and calibration-in-the-large of predictions ``p`` against labels ``y``.

    Returns
    -------
    tuple of (slope, intercept)
        ``slope``: coefficient of ``logit(p)`` in a logistic regression of
        ``y`` (1 is ideal); ``intercept``: intercept of a logistic regression
        with ``logit(p)`` as offset (0 is ideal; < 0: predictions too high).

    Raises
    ------
    ValueError
        If ``y`` lacks a class.
    """
    labels = np.asarray(y, dtype=np.float64)
    if labels.min() == labels.max():
        raise ValueError("Argument 'y' must hold both classes.")
    z = logit(p)
    _, slope = _logistic_fit(z[:, None], labels, ridge=0.0)
    (citl,) = _logistic_fit(np.zeros((z.size, 0)), labels, offset=z, ridge=0.0)
    return float(slope), float(citl)


def performance_statement(performance: Mapping[str, Any] | None) -> str:
    """The sentence printed with every prediction, from the stored cross-validated performance.

    Parameters
    ----------
    performance:
        ``{"cv_auc", "cv_auc_ci_low", "cv_auc_ci_high", "n_patients", "n_expanded", "protocol"}``
        as stored in a checkpoint, or ``None`` when the checkpoint carries none.
    """
    if not performance or performance.get("cv_auc") is None:
        return (
            "This model carries no cross-validated performance, so nothing shows it discriminates: "
            "do not use this probability for decisions."
        )
    auc = float(performance["cv_auc"])
    low = float(performance["cv_auc_ci_low"])
    high = float(performance["cv_auc_ci_high"])
    where = ""
    if performance.get("n_patients") is not None:
        where = f", {int(performance['n_patients'])} patients"
        if performance.get("n_expanded") is not None:
            where += f", {int(performance['n_expanded'])} expanded"
    head = f"This model's cross-validated AUC is {auc:.2f} (95 % CI {low:.2f}-{high:.2f}{where})"
    if low <= 0.5 <= high:
        return head + ", which does not exclude chance: do not use this probability for decisions."
    if high < 0.5:
        return head + ", below chance (no usable ranking): do not use this probability for decisions."
    return (
        head + "; research use only: it has not been validated on patients from another source, "
        "so do not use this probability for decisions."
    )
