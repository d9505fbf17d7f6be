"""Segmentation and volume metrics of seed 000: Dice, IoU, RVD, volume RMSE and MAE.

* Dice ``2|P n T| / (|P| + |T|)`` and IoU ``|P n T| / |P u T|`` over the voxels
  of a case (3D); both are 1 when prediction and truth are both empty.
* RVD, the relative volume difference, ``|V_P - V_T| / V_T`` (the seed's
  "Rvd", a dissimilarity: lower is better); undefined (NaN) when the truth is
  empty. Volumes are in mL from the series geometry, so with even slices it
  equals the voxel-count form ``| |P| - |T| | / |T|``.
* Volume RMSE and MAE in mL over cases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["dice_iou", "relative_volume_difference", "volume_errors"]


def dice_iou(prediction: npt.NDArray[np.bool_], truth: npt.NDArray[np.bool_]) -> tuple[float, float]:
    """Dice and IoU of two boolean masks of one shape (1.0 and 1.0 when both are empty).

    Raises
    ------
    ValueError
        If the masks are not boolean or differ in shape.

    Examples
    --------
    >>> p = np.array([1, 1, 0, 0], dtype=bool); t = np.array([0, 1, 1, 0], dtype=bool)
    >>> dice_iou(p, t)
    (0.5, 0.3333333333333333)
    """
    for name, arr in (("prediction", prediction), ("truth", truth)):
        if not isinstance(arr, np.ndarray) or arr.dtype != np.bool_:
            raise ValueError(f"Argument '{name}' must be a boolean numpy array.")
    if prediction.shape != truth.shape:
        raise ValueError(
            f"Arguments 'prediction' and 'truth' must have one shape; got {prediction.shape} and {truth.shape}."
        )
    inter = int(np.count_nonzero(prediction & truth))
    p, t = int(np.count_nonzero(prediction)), int(np.count_nonzero(truth))
    if p + t == 0:
        return 1.0, 1.0
    return 2.0 * inter / (p + t), inter / (p + t - inter)


def relative_volume_difference(predicted_ml: float, true_ml: float) -> float:
    """``|V_P - V_T| / V_T``; NaN when ``true_ml`` is 0.

    Raises
    ------
    ValueError
        If a volume is negative or not finite.

    Examples
    --------
    >>> relative_volume_difference(12.0, 10.0)
    0.2
    """
    for name, value in (("predicted_ml", predicted_ml), ("true_ml", true_ml)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"Argument '{name}' must be a finite non-negative volume; got {value!r}.")
    if true_ml == 0:
        return math.nan
    return abs(predicted_ml - true_ml) / true_ml


def volume_errors(predicted_ml: Sequence[float], true_ml: Sequence[float]) -> tuple[float, float]:
    """Root-mean-square and mean absolute volume error (mL); NaN for no case.

    Raises
    ------
    ValueError
        If the two sequences differ in length.

    Examples
    --------
    >>> volume_errors([11.0, 7.0], [10.0, 10.0])
    (2.23606797749979, 2.0)
    """
    if len(predicted_ml) != len(true_ml):
        raise ValueError(
            f"Arguments 'predicted_ml' and 'true_ml' must have one length; got {len(predicted_ml)} and"
            f" {len(true_ml)}."
        )
    if not predicted_ml:
        return math.nan, math.nan
    err = np.asarray(predicted_ml, dtype=np.float64) - np.asarray(true_ml, dtype=np.float64)
    return float(np.sqrt(np.mean(err**2))), float(np.mean(np.abs(err)))
