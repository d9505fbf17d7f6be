"""First-order (histogram) statistics of the HU inside a mask (IBSI / pyradiomics definitions).

Names are pyradiomics' (``original_firstorder_<Name>``; the contest's table3
prefixes them with ``NCCT_``). With ``X`` the HU of the ``N`` voxels in the
mask, ``c`` the ``voxel_array_shift`` and ``p_i`` the share of voxels in bin
``i`` of width ``w`` (bin = ``floor(X / w)``, the bins pyradiomics' fixed bin
width gives):

=============================  ===================================================
``Energy``                     ``sum (X + c)^2``
``TotalEnergy``                ``sum (X + c)^2 * voxel volume`` (mm^3; each voxel its own)
``Entropy``                    ``-sum p_i log2(p_i + eps)``, ``eps`` = 2.2e-16
``Uniformity``                 ``sum p_i^2``
``Minimum`` / ``Maximum``      extremes
``10Percentile`` / ...         ``numpy.percentile`` (linear interpolation)
``Median``                     ``numpy.median``
``InterquartileRange``         ``P75 - P25``
``Range``                      ``Maximum - Minimum``
``Mean``                       mean
``MeanAbsoluteDeviation``      ``mean |X - mean|``
``RobustMeanAbsoluteDeviation``  the same over the voxels with ``P10 <= X <= P90``
``RootMeanSquared``            ``sqrt(mean (X + c)^2)``
``Variance``                   ``mean (X - mean)^2`` (population)
``Skewness``                   ``m3 / m2^1.5`` (0 when the variance is 0, as pyradiomics)
``Kurtosis``                   ``m4 / m2^2`` (not excess: 3 for a normal; 0 when flat)
=============================  ===================================================

Every voxel counts once (as in pyradiomics), also on uneven stacks.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["FIRSTORDER_FEATURES", "FIRSTORDER_PREFIX", "firstorder_features"]

#: Prefix of every first-order feature name.
FIRSTORDER_PREFIX = "original_firstorder_"

#: The first-order features (the contest's table3 order, TotalEnergy added).
FIRSTORDER_FEATURES: tuple[str, ...] = (
    "10Percentile",
    "90Percentile",
    "Energy",
    "Entropy",
    "InterquartileRange",
    "Kurtosis",
    "Maximum",
    "MeanAbsoluteDeviation",
    "Mean",
    "Median",
    "Minimum",
    "Range",
    "RobustMeanAbsoluteDeviation",
    "RootMeanSquared",
    "Skewness",
    "TotalEnergy",
    "Uniformity",
    "Variance",
)

_EPS = 2.2e-16


def firstorder_features(
    values: npt.ArrayLike,
    *,
    bin_width: float = 25.0,
    voxel_array_shift: float = 0.0,
    voxel_volumes_mm3: npt.ArrayLike | float = 1.0,
) -> dict[str, float | None]:
    """First-order statistics of ``values`` (the HU of the voxels in a mask).

    Parameters
    ----------
    values:
        One value per voxel (any shape; flattened).
    bin_width:
        Histogram bin width for Entropy and Uniformity.
    voxel_array_shift:
        Added before Energy, TotalEnergy and RootMeanSquared.
    voxel_volumes_mm3:
        The volume of each voxel (one number for all, or one per value), for TotalEnergy.

    Returns
    -------
    dict
        Feature name to value; every value is ``None`` when there are no voxels.

    Raises
    ------
    ValueError
        If ``bin_width`` is not positive, a value is not finite, or the voxel
        volumes do not match the values.

    Examples
    --------
    >>> f = firstorder_features([10.0, 20.0, 30.0, 40.0], bin_width=25.0)
    >>> f["original_firstorder_Mean"], f["original_firstorder_Uniformity"]
    (25.0, 0.5)
    """
    if not math.isfinite(bin_width) or bin_width <= 0:
        raise ValueError(f"Argument 'bin_width' must be a positive number; got {bin_width!r}.")
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    out: dict[str, float | None] = {FIRSTORDER_PREFIX + name: None for name in FIRSTORDER_FEATURES}
    if x.size == 0:
        return out
    if not np.all(np.isfinite(x)):
        raise ValueError("Argument 'values' must hold finite numbers only.")
    if np.ndim(voxel_volumes_mm3) == 0:
        vols = np.full(x.shape, float(np.asarray(voxel_volumes_mm3)))
    else:
        vols = np.asarray(voxel_volumes_mm3, dtype=np.float64).reshape(-1)
    if vols.shape != x.shape:
        raise ValueError(
            f"Argument 'voxel_volumes_mm3' must be one number or one per value ({x.size}); got {vols.size}."
        )

    mean = float(x.mean())
    dev = x - mean
    m2 = float(np.mean(dev**2))
    p10, p25, p75, p90 = (float(v) for v in np.percentile(x, [10, 25, 75, 90]))
    shifted2 = (x + voxel_array_shift) ** 2
    robust = x[(x >= p10) & (x <= p90)]
    bins = np.floor(x / bin_width).astype(np.int64)
    _, counts = np.unique(bins, return_counts=True)
    p = counts / x.size

    values_out = {
        "10Percentile": p10,
        "90Percentile": p90,
        "Energy": float(shifted2.sum()),
        "Entropy": float(-np.sum(p * np.log2(p + _EPS))),
        "InterquartileRange": p75 - p25,
        "Kurtosis": float(np.mean(dev**4)) / m2**2 if m2 > 0 else 0.0,
        "Maximum": float(x.max()),
        "MeanAbsoluteDeviation": float(np.mean(np.abs(dev))),
        "Mean": mean,
        "Median": float(np.median(x)),
        "Minimum": float(x.min()),
        "Range": float(x.max() - x.min()),
        "RobustMeanAbsoluteDeviation": float(np.mean(np.abs(robust - robust.mean()))),
        "RootMeanSquared": math.sqrt(float(shifted2.mean())),
        "Skewness": float(np.mean(dev**3)) / m2**1.5 if m2 > 0 else 0.0,
        "TotalEnergy": float(np.sum(shifted2 * vols)),
        "Uniformity": float(np.sum(p**2)),
        "Variance": m2,
    }
    out.update({FIRSTORDER_PREFIX + name: value for name, value in values_out.items()})
    return out
