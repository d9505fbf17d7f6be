"""Slices where the intracranial finder failed, between slices where it found the space.

At the skull base a slice's bone ring often does not close (the orbits, the sphenoid
sinus and the petrous bones open it toward the face), so the finder finds no
intracranial space there. The slices below it, where the occipital bone closes round
the posterior fossa again, are found, but the 3D step keeps only the largest
connected piece, and one failed slice cuts the posterior fossa off: on the real GE
head of ``../shared/data`` one failed 4 mm slice left the cerebellum and both middle
cranial fossae (about 130 mL) outside the space, and a bleed painted there read
0 mL with no flag (MODEL_CARD "The posterior fossa").

:func:`bridge_failed_slices` walks away from each end of the main piece, slice by
slice. A 2D piece of a slice's own finding joins when most of it lies over what was
taken on the slice before (:data:`_REACH_MM` of slack for a gantry tilt's shift; pieces
under :data:`_MIN_PIECE_MM2` never join), so the posterior fossa joins and the face's
enclosed muscles, sinuses and orbits, which lie outside the brain above them, do not.
A run of slices with nothing that joins, at most ``max_run_mm`` long, is crossed when
a slice beyond it has a piece that joins. A crossed slice takes its brain-range voxels
over the overlap of the two slices that bracket it (with the slack), and those joined
to them over either slice (never beyond both).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe.pipeline.segment.components import dilate_octagon, grow_into

__all__ = ["BridgedSlices", "bridge_failed_slices"]

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.floating]

#: In-plane slack when a piece is laid over the slice before it: a gantry tilt shifts
#: the anatomy by up to ~1.5 mm per slice (the real GE head: 4 mm slices at 18.5 deg).
_REACH_MM = 3.0

#: Pieces smaller than this never join (a few voxels of partial volume at the vertex); the spinal
#: canal under the foramen magnum, the smallest piece worth keeping, is 4-7 cm^2 on the real heads.
_MIN_PIECE_MM2 = 50.0

_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class BridgedSlices:
    """What :func:`bridge_failed_slices` added to the main piece.

    Attributes
    ----------
    mask:
        The main piece with what joined it (bool, shape of the volume).
    crossed:
        Indices of the failed slices that were filled from their neighbours.
    joined:
        Indices of the slices whose own pieces joined beyond a crossed run.
    """

    mask: BoolArray
    crossed: tuple[int, ...]
    joined: tuple[int, ...]


def _joining(pieces: BoolArray, taken: BoolArray, min_share: float, steps: int, min_pixels: int) -> BoolArray:
    """The 2D pieces of ``pieces`` (``min_pixels`` or more) of which ``min_share`` lies over ``taken`` (dilated)."""
    if not pieces.any() or not taken.any():
        return np.zeros_like(pieces)
    labels, n = ndimage.label(pieces, structure=_EIGHT)
    reach = dilate_octagon(taken, steps)
    size = np.bincount(labels.ravel(), minlength=n + 1)
    over = np.bincount(labels[reach].ravel(), minlength=n + 1)
    keep = (over >= min_share * np.maximum(size, 1)) & (size >= min_pixels)
    keep[0] = False
    return np.asarray(keep[labels])


def bridge_failed_slices(
    candidates: BoolArray,
    main: BoolArray,
    hu: FloatArray,
    pixel_spacing_mm: tuple[float, float],
    slice_spacing_mm: Sequence[float] | npt.ArrayLike,
    *,
    brain_hu: tuple[float, float],
    max_run_mm: float,
    min_share: float = 0.5,
    fill_value: float | None = None,
) -> BridgedSlices:
    """Extend the main intracranial piece across failed slices at its ends.

    Parameters
    ----------
    candidates:
        Each slice's own intracranial finding before the 3D step (bool, slices x rows x columns).
    main:
        The largest 3D piece of ``candidates``.
    hu:
        The HU volume (a crossed slice keeps only its voxels within ``brain_hu``).
    pixel_spacing_mm:
        (row, column) spacing in mm.
    slice_spacing_mm:
        Each slice's thickness along the normal (mm), or one value for all: how long a failed run is.
    brain_hu:
        [low, high] of intracranial soft tissue (``anatomy.brain_hu``).
    max_run_mm:
        The longest run of failed slices crossed, along the normal.
    min_share:
        A slice's piece joins when at least this share of its area lies over what was taken on the slice
        before it.
    fill_value:
        A skull-stripped export's fill value (:class:`~ichpipe.pipeline.segment.intracranial.ValueLevels`):
        never taken on a crossed slice.

    Returns
    -------
    BridgedSlices
        The extended mask and which slices were crossed and joined.

    Examples
    --------
    >>> import numpy as np
    >>> c = np.zeros((5, 8, 8), dtype=bool); c[:, 2:6, 2:6] = True; c[2] = False
    >>> main = c.copy(); main[:2] = False
    >>> out = bridge_failed_slices(c, main, np.full(c.shape, 30.0), (2.0, 2.0), 5.0,
    ...                            brain_hu=(-15.0, 120.0), max_run_mm=10.0)
    >>> out.crossed, out.joined, int(out.mask.sum())
    ((2,), (0, 1), 80)
    """
    if candidates.shape != main.shape or candidates.ndim != 3:
        raise ValueError("Arguments 'candidates' and 'main' must be 3D arrays of one shape.")
    if not max_run_mm >= 0:
        raise ValueError("Argument 'max_run_mm' must not be negative.")
    if not 0.0 < min_share <= 1.0:
        raise ValueError("Argument 'min_share' must lie in (0, 1].")
    n = main.shape[0]
    spacing = np.broadcast_to(np.asarray(slice_spacing_mm, dtype=np.float64), (n,))
    steps = max(1, round(_REACH_MM / min(pixel_spacing_mm)))
    min_pixels = max(1, round(_MIN_PIECE_MM2 / (float(pixel_spacing_mm[0]) * float(pixel_spacing_mm[1]))))
    out = main.copy()
    crossed: list[int] = []
    joined: list[int] = []
    present = np.flatnonzero(main.any(axis=(1, 2)))
    if present.size == 0:
        return BridgedSlices(out, (), ())
    lo, hi = brain_hu
    for end, direction in ((int(present[0]), -1), (int(present[-1]), 1)):
        taken, bridged = main[end], False
        run: list[int] = []
        z = end + direction
        while 0 <= z < n:
            pieces = _joining(candidates[z], taken, min_share, steps, min_pixels)
            if pieces.any():
                if not run and not bridged:
                    break  # a piece beside the main one with no failed slice between: the 3D step's choice stands
                if run:
                    beyond = dilate_octagon(pieces, steps)
                    for k in run:
                        brain = (hu[k] >= lo) & (hu[k] <= hi)
                        if fill_value is not None:
                            brain &= hu[k] != fill_value
                        out[k] = grow_into(((taken & beyond) & brain)[None], ((taken | pieces) & brain)[None])[0]
                    crossed.extend(run)
                    bridged, run = True, []
                out[z] |= pieces
                joined.append(z)
                taken = out[z]
            else:
                run.append(z)
                if float(spacing[run].sum()) > max_run_mm:
                    break
            z += direction
    return BridgedSlices(out, tuple(sorted(crossed)), tuple(sorted(joined)))
