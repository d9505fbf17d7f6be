"""Detection metrics for slices that carry boxes instead of masks (real data such as PHE-SICH).

Without a blood mask, a segmenter can still be scored on what the boxes say:

* **box hit rate** (:func:`box_hit_rate`): a box around a haemorrhage is *hit* when the predicted
  mask holds at least ``min_pixels`` pixels inside it (default 20 on the 512x512 grid);
* **false-positive slice rate** (:func:`false_positive_slice_rate`): among the slices at least
  ``min_distance`` slices away from every boxed slice of the patient (default 3: the boxes
  cover the slices where the bleed was outlined, and a clot often reaches a slice or two
  beyond), the share holding a predicted connected component (8-connected) of at least
  ``min_component_px`` pixels (default 50).

Boxes are ``(x0, y0, x1, y1)`` in pixels, inclusive on both ends (Pascal VOC), or any object
with those four attributes. Masks are 2D boolean arrays on the grid the boxes refer to.
:class:`DetectionCount` results add up (``a + b``) to pool patients.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = [
    "DetectionCount",
    "box_hit",
    "box_hit_rate",
    "false_positive_slice_rate",
    "largest_component_px",
    "negative_slice_indices",
]

BoolArray = npt.NDArray[np.bool_]
BoxLike = Any  # (x0, y0, x1, y1) or an object with x0, y0, x1, y1

_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class DetectionCount:
    """A count of events out of a total (box hits out of boxes, FP slices out of negative slices).

    Attributes
    ----------
    events:
        Boxes hit, or slices with a false positive.
    total:
        Boxes, or negative slices, scored.
    """

    events: int
    total: int

    def __post_init__(self) -> None:
        if self.total < 0 or not 0 <= self.events <= self.total:
            raise ValueError(f"Arguments 'events' and 'total' must satisfy 0 <= events <= total; got {self}.")

    @property
    def rate(self) -> float:
        """``events / total``; NaN when nothing was scored."""
        return self.events / self.total if self.total else math.nan

    def __add__(self, other: DetectionCount) -> DetectionCount:
        return DetectionCount(self.events + other.events, self.total + other.total)


def _coords(box: BoxLike) -> tuple[int, int, int, int]:
    if all(hasattr(box, k) for k in ("x0", "y0", "x1", "y1")):
        x0, y0, x1, y1 = box.x0, box.y0, box.x1, box.y1
    else:
        try:
            x0, y0, x1, y1 = box
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Argument 'box' must be (x0, y0, x1, y1); got {box!r}.") from exc
    x0, y0, x1, y1 = (int(v) for v in (x0, y0, x1, y1))
    if x1 < x0 or y1 < y0:
        raise ValueError(f"Argument 'box' must have x1 >= x0 and y1 >= y0; got {(x0, y0, x1, y1)}.")
    return x0, y0, x1, y1


def _check_mask(mask: BoolArray, name: str = "mask") -> None:
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.ndim != 2:
        raise ValueError(f"Argument '{name}' must be a 2D boolean numpy array.")


def box_hit(mask: BoolArray, box: BoxLike, *, min_pixels: int = 20) -> bool:
    """Whether ``mask`` has at least ``min_pixels`` pixels inside ``box`` (clipped to the image).

    Raises
    ------
    ValueError
        If ``mask`` is not a 2D boolean array, ``box`` is malformed, or ``min_pixels`` < 1.

    Examples
    --------
    >>> m = np.zeros((10, 10), dtype=bool); m[2:6, 2:7] = True
    >>> box_hit(m, (0, 0, 4, 4), min_pixels=9), box_hit(m, (0, 0, 4, 4), min_pixels=10)
    (True, False)
    """
    _check_mask(mask)
    if min_pixels < 1:
        raise ValueError(f"Argument 'min_pixels' must be at least 1; got {min_pixels}.")
    x0, y0, x1, y1 = _coords(box)
    inside = mask[max(y0, 0) : y1 + 1, max(x0, 0) : x1 + 1]
    return int(np.count_nonzero(inside)) >= min_pixels


def box_hit_rate(
    masks: Sequence[BoolArray], boxes: Sequence[Iterable[BoxLike]], *, min_pixels: int = 20
) -> DetectionCount:
    """Boxes hit (:func:`box_hit`) out of all boxes, over slices with their boxes.

    Parameters
    ----------
    masks:
        Predicted mask of each slice.
    boxes:
        The boxes of each slice (same order; a slice may have none).
    min_pixels:
        Predicted pixels a box must hold to count as hit.

    Raises
    ------
    ValueError
        If ``masks`` and ``boxes`` differ in length, or an element is malformed.

    Examples
    --------
    >>> m = np.zeros((10, 10), dtype=bool); m[0:5, 0:5] = True
    >>> box_hit_rate([m, m], [[(0, 0, 9, 9)], [(6, 6, 9, 9)]]).rate
    0.5
    """
    if len(masks) != len(boxes):
        raise ValueError(f"Arguments 'masks' and 'boxes' must have one entry per slice; got {len(masks)} and"
                         f" {len(boxes)}.")
    hits = total = 0
    for mask, slice_boxes in zip(masks, boxes, strict=True):
        for box in slice_boxes:
            total += 1
            hits += int(box_hit(mask, box, min_pixels=min_pixels))
    return DetectionCount(hits, total)


def largest_component_px(mask: BoolArray) -> int:
    """Pixels of the largest 8-connected component of a 2D mask (0 when empty).

    Examples
    --------
    >>> m = np.zeros((6, 6), dtype=bool); m[0, 0] = m[1, 1] = m[4:6, 4:6] = True
    >>> largest_component_px(m)
    4
    """
    _check_mask(mask)
    if not mask.any():
        return 0
    labels, n = ndimage.label(mask, structure=_EIGHT)
    return int(np.bincount(labels.ravel())[1:].max()) if n else 0


def negative_slice_indices(
    n_slices: int, boxed: Iterable[int], *, min_distance: int = 3, exclude: Iterable[int] = ()
) -> list[int]:
    """Slices at least ``min_distance`` slices from every boxed slice, minus ``exclude`` (e.g. blank slices).

    With no boxed slice every slice (but ``exclude``) is negative.

    Raises
    ------
    ValueError
        If ``n_slices`` is negative, ``min_distance`` < 1, or a boxed index is outside the patient.

    Examples
    --------
    >>> negative_slice_indices(10, [4], min_distance=3)
    [0, 1, 7, 8, 9]
    """
    if n_slices < 0:
        raise ValueError(f"Argument 'n_slices' must not be negative; got {n_slices}.")
    if min_distance < 1:
        raise ValueError(f"Argument 'min_distance' must be at least 1; got {min_distance}.")
    boxed_list = sorted({int(b) for b in boxed})
    if any(not 0 <= b < n_slices for b in boxed_list):
        raise ValueError(f"Argument 'boxed' holds slice indices outside 0..{n_slices - 1}: {boxed_list}.")
    skip = {int(e) for e in exclude}
    return [
        k for k in range(n_slices)
        if k not in skip and all(abs(k - b) >= min_distance for b in boxed_list)
    ]


def false_positive_slice_rate(
    masks: Sequence[BoolArray],
    boxed: Iterable[int],
    *,
    min_distance: int = 3,
    min_component_px: int = 50,
    exclude: Iterable[int] = (),
) -> DetectionCount:
    """Negative slices of one patient holding a predicted component of ``min_component_px`` or more.

    Parameters
    ----------
    masks:
        Predicted mask of every slice of the patient, in slice order (the distance to a box is
        counted in these positions).
    boxed:
        Positions of the slices that carry a box.
    min_distance:
        A negative slice is at least this many slices from every boxed slice.
    min_component_px:
        Smallest 8-connected predicted component that makes a slice a false positive.
    exclude:
        Positions never scored (blank padding slices, slices whose labels are in doubt).

    Raises
    ------
    ValueError
        If an argument is out of range or a mask is not a 2D boolean array.

    Examples
    --------
    >>> empty = np.zeros((8, 8), dtype=bool); spot = empty.copy(); spot[:8, :7] = True
    >>> false_positive_slice_rate([spot, empty, empty, empty, spot, empty, empty, spot], [3], min_distance=3)
    DetectionCount(events=2, total=3)
    """
    if min_component_px < 1:
        raise ValueError(f"Argument 'min_component_px' must be at least 1; got {min_component_px}.")
    negatives = negative_slice_indices(len(masks), boxed, min_distance=min_distance, exclude=exclude)
    events = sum(1 for k in negatives if largest_component_px(masks[k]) >= min_component_px)
    return DetectionCount(events, len(negatives))
