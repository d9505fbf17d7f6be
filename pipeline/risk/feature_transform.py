"""Feature preprocessing fitted on training rows only: log, median imputation, standardisation.

:meth:`FeatureTransform.fit` learns, from the training rows it is given and
nothing else, each feature's median (for imputation), mean and standard
deviation (after the fixed log transform of heavy-tailed features). The
fitted statistics are plain lists, stored in a checkpoint's metadata, so that
prediction needs nothing else (:meth:`FeatureTransform.to_metadata`,
:meth:`FeatureTransform.from_metadata`).

This module has no training code and no torch: inference imports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["FeatureTransform", "signed_log1p"]

FloatArray = npt.NDArray[np.float64]

#: A standard deviation below this counts as a constant feature (scaled by 1).
_MIN_STD = 1e-12


def signed_log1p(x: npt.ArrayLike) -> FloatArray:
    """``sign(x) log(1 + |x|)``: a log that keeps 0 at 0 and accepts negatives."""
    a = np.asarray(x, dtype=np.float64)
    return np.asarray(np.sign(a) * np.log1p(np.abs(a)))


@dataclass(frozen=True)
class FeatureTransform:
    """Fitted preprocessing of a fixed, ordered list of features.

    Attributes
    ----------
    feature_names:
        The features, in model input order.
    log_features:
        Which of them are log-transformed (``signed_log1p``) first.
    median:
        Training median of each feature (original units), used to impute.
    mean, std:
        Training mean and standard deviation (after the log), for standardisation.
    """

    feature_names: tuple[str, ...]
    log_features: tuple[bool, ...]
    median: tuple[float, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.feature_names)
        if n == 0:
            raise ValueError("Argument 'feature_names' must name at least one feature.")
        if len(set(self.feature_names)) != n:
            raise ValueError("Argument 'feature_names' must not name a feature twice.")
        for name in ("log_features", "median", "mean", "std"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Argument '{name}' must have one entry per feature ({n}).")
        if not all(np.isfinite(self.median)) or not all(np.isfinite(self.mean)) or not all(np.isfinite(self.std)):
            raise ValueError("The fitted statistics must be finite numbers.")

    @classmethod
    def fit(
        cls,
        values: npt.ArrayLike,
        feature_names: Sequence[str],
        *,
        log_suffixes: Sequence[str] = (),
    ) -> FeatureTransform:
        """Learn the statistics from training rows only.

        Parameters
        ----------
        values:
            Training rows, shape (n, p); ``NaN`` marks a missing value.
        feature_names:
            Names of the p columns.
        log_suffixes:
            Features whose name ends with one of these are log-transformed.

        Raises
        ------
        ValueError
            If shapes disagree, or a feature has no observed value in the training rows.
        """
        x = np.asarray(values, dtype=np.float64)
        names = tuple(feature_names)
        if x.ndim != 2 or x.shape[1] != len(names) or x.shape[0] < 1:
            raise ValueError(
                f"Argument 'values' must have shape (n >= 1, {len(names)}); got {x.shape}."
            )
        empty = [names[j] for j in range(x.shape[1]) if not np.any(np.isfinite(x[:, j]))]
        if empty:
            raise ValueError(
                f"Argument 'values' has no observed value for {', '.join(empty[:5])}"
                f"{' ...' if len(empty) > 5 else ''} in the training rows; drop those features."
            )
        logs = tuple(any(n.endswith(s) for s in log_suffixes) for n in names)
        median = np.nanmedian(x, axis=0)
        filled = np.where(np.isfinite(x), x, median)
        z = np.where(np.asarray(logs), signed_log1p(filled), filled)
        mean = z.mean(axis=0)
        std = z.std(axis=0)
        std = np.where(std < _MIN_STD, 1.0, std)
        return cls(
            feature_names=names,
            log_features=logs,
            median=tuple(float(v) for v in median),
            mean=tuple(float(v) for v in mean),
            std=tuple(float(v) for v in std),
        )

    def apply(self, values: npt.ArrayLike) -> FloatArray:
        """Impute missing values with the training median, log, standardise.

        Raises
        ------
        ValueError
            If ``values`` does not have one column per feature.
        """
        x = np.asarray(values, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise ValueError(
                f"Argument 'values' must have shape (n, {len(self.feature_names)}); got {x.shape}."
            )
        filled = np.where(np.isfinite(x), x, np.asarray(self.median))
        z = np.where(np.asarray(self.log_features), signed_log1p(filled), filled)
        return np.asarray((z - np.asarray(self.mean)) / np.asarray(self.std))

    def to_metadata(self) -> dict[str, Any]:
        """Plain values for a checkpoint's metadata."""
        return {
            "feature_names": list(self.feature_names),
            "log_features": list(self.log_features),
            "median": list(self.median),
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_metadata(cls, data: Mapping[str, Any]) -> FeatureTransform:
        """The transform stored by :meth:`to_metadata`.

        Raises
        ------
        ValueError
            If an entry is missing or malformed.
        """
        try:
            return cls(
                feature_names=tuple(str(v) for v in data["feature_names"]),
                log_features=tuple(bool(v) for v in data["log_features"]),
                median=tuple(float(v) for v in data["median"]),
                mean=tuple(float(v) for v in data["mean"]),
                std=tuple(float(v) for v in data["std"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"The stored feature transform is incomplete or malformed ({exc}).") from exc
