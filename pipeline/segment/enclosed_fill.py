"""Hypodense parts a haematoma encloses: the swirl and the black hole, counted as the clot's.

An acute haematoma is often not of one density: unclotted blood and serum show as hypodense
streaks and islands inside it (the *swirl sign*), or as one hypodense area enclosed by the clot
(the *black hole sign*); both predict expansion, so they are common in exactly the studies this
tool measures twice. Clinical volumes count the whole haematoma, hypodense parts included. The
networks learnt clots of one density on phantoms: painted into the real heads of ``../shared/data``
they drew round the hypodense parts (30-45 HU), and the clot read 6-17 % low
(``bench/heterogeneous_clot.py``; ``MODEL_CARD.md``, "Hypodense parts inside a clot").

:func:`fill_enclosed` adds, slice by slice, what the blood encloses once its mask is closed by a
disk of ``close_mm`` (a gap of twice that in the ring is bridged): each enclosed piece whose median
HU is over ``min_hu`` (not CSF: a ventricle a cast of blood surrounds stays out) and whose area is
at most half the blood's on that slice (a clot's core; not the brain a ring of blood encloses near the
vertex), its voxels from ``min_hu`` to ``max_hu``. It does not
take a hypodense part on the clot's edge (the *blend sign*), which no mask encloses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.pipeline.segment.components import bounding_box
from ichpipe.pipeline.segment.segmenter import SegmentationResult

__all__ = ["EnclosedFill", "fill_enclosed", "with_enclosed_fill"]

BoolArray = npt.NDArray[np.bool_]
_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class EnclosedFill:
    """What :func:`fill_enclosed` found.

    Attributes
    ----------
    mask:
        The mask with the enclosed parts.
    added:
        The enclosed parts alone.
    pieces:
        How many enclosed pieces (2D, over all slices) were added.
    """

    mask: BoolArray
    added: BoolArray
    pieces: int


def _disk(radius: int) -> BoolArray:
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return np.asarray(x * x + y * y <= radius * radius)


def fill_enclosed(mask: BoolArray, hu: npt.NDArray[np.floating], *, pixel_spacing_mm: tuple[float, float],
                  close_mm: float, min_hu: float, max_hu: float, allowed: BoolArray | None = None) -> EnclosedFill:
    """``mask`` with the hypodense pieces it encloses in plane (after a closing by ``close_mm``).

    Parameters
    ----------
    mask:
        ``(slices, rows, columns)`` blood.
    hu:
        The CT in HU, same shape.
    pixel_spacing_mm:
        ``(row, column)`` spacing; the closing's disk has ``close_mm`` over their mean pixels of
        radius, rounded, at least one.
    close_mm:
        The closing's radius: gaps in the blood's ring up to about twice this are bridged.
    min_hu, max_hu:
        An enclosed piece is taken when its median HU is at least ``min_hu`` (CSF is not) and its
        area at most half the blood's on its slice, and of it the voxels from ``min_hu`` to ``max_hu``
        (not calcification or bone).
    allowed:
        Added voxels lie inside this (the intracranial space, not blood already), when given.

    Raises
    ------
    ValueError
        ``close_mm`` not positive, ``min_hu >= max_hu``, or shapes that differ.

    Examples
    --------
    >>> hu = np.full((1, 12, 12), 30.0); hu[0, 2:10, 2:10] = 65.0; hu[0, 5:7, 5:7] = 36.0
    >>> out = fill_enclosed(hu >= 60, hu, pixel_spacing_mm=(0.5, 0.5), close_mm=1.0, min_hu=20.0,
    ...                     max_hu=120.0)
    >>> int(out.added.sum()), out.pieces
    (4, 1)
    >>> hu[0, 5:7, 5:7] = 5.0  # CSF inside a cast of blood stays out
    >>> int(fill_enclosed(hu >= 60, hu, pixel_spacing_mm=(0.5, 0.5), close_mm=1.0, min_hu=20.0,
    ...                   max_hu=120.0).added.sum())
    0
    """
    if not close_mm > 0:
        raise ValueError(f"Argument 'close_mm' must be positive; got {close_mm!r}.")
    if not min_hu < max_hu:
        raise ValueError(f"Argument 'min_hu' must be under 'max_hu'; got {min_hu!r} and {max_hu!r}.")
    if hu.shape != mask.shape or (allowed is not None and allowed.shape != mask.shape):
        raise ValueError(f"Arguments 'mask', 'hu' and 'allowed' must share one shape; got {mask.shape},"
                         f" {hu.shape}, {None if allowed is None else allowed.shape}.")
    radius = max(1, round(close_mm / float(np.mean(pixel_spacing_mm))))
    disk = _disk(radius)
    added = np.zeros(mask.shape, dtype=bool)
    pieces = 0
    for z in np.flatnonzero(mask.any(axis=(1, 2))):
        box = bounding_box(mask[z], margin=0)
        if box is None:
            continue
        blood = np.pad(mask[z][box], radius + 1)  # room for the closing at the box's edge
        closed = ndimage.binary_closing(blood, structure=disk)
        # the holes of the closed blood, and those of the blood itself that the closing filled
        holes = (ndimage.binary_fill_holes(closed) & ~closed) | (ndimage.binary_fill_holes(blood) & ~blood)
        if not holes.any():
            continue
        # with the closing's bridges beside them, not the pockets it fills in a concave edge
        inside = ndimage.binary_propagation(holes, structure=_EIGHT, mask=(closed | holes) & ~blood)
        inside = inside[radius + 1 : -radius - 1, radius + 1 : -radius - 1]
        values = hu[z][box]
        ok = (values >= min_hu) & (values <= max_hu)
        if allowed is not None:
            ok &= allowed[z][box]
        labels, _ = ndimage.label(inside)
        area = int(mask[z].sum())
        for label, piece in enumerate(ndimage.find_objects(labels), start=1):
            if piece is None:
                continue
            this = labels[piece] == label
            if this.sum() > area / 2 or float(np.median(values[piece][this])) < min_hu:
                continue
            take = this & ok[piece]
            if take.any():
                added[z][box][piece] |= take
                pieces += 1
    return EnclosedFill(mask | added, added, pieces)


def with_enclosed_fill(result: SegmentationResult, blood: BoolArray, volume: CTVolume, *, close_mm: float,
                       min_hu: float, max_hu: float, allowed: BoolArray) -> SegmentationResult:
    """``result`` with what ``blood`` encloses (:func:`fill_enclosed`), said in ``details["enclosed_fill"]``.

    The step as the networks run it (``blood``: their own, not the extra-axial collections) and as the
    threshold baseline beside a network is given it (its whole mask), so that the two compare alike.
    ``allowed`` is where added voxels may lie (the intracranial space, not ``result``'s blood already).
    """
    filled = fill_enclosed(blood, volume.hu, pixel_spacing_mm=volume.geometry.pixel_spacing_mm, close_mm=close_mm,
                           min_hu=min_hu, max_hu=max_hu, allowed=allowed)
    return result.with_addition(volume, "enclosed_fill", result.mask | filled.added, filled.added,
                                pieces=filled.pieces)
