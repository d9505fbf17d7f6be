"""Head and intracranial masks from Hounsfield units (no learning involved).

Used by the classical segmenter, by network post-processing (restriction to
the intracranial space) and by inference (skip slices outside the head, crop
to the head's bounding box).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe.dicom_io.geometry import VolumeGeometry
from ichpipe.pipeline.config.anatomy_config import AnatomyConfig

__all__ = ["head_bounding_box", "head_mask", "intracranial_mask", "largest_component"]

BoolArray = npt.NDArray[np.bool_]


def largest_component(mask: BoolArray) -> BoolArray:
    """The largest 26-connected component of ``mask`` (empty stays empty)."""
    labels, n = ndimage.label(mask, structure=np.ones((3,) * mask.ndim, dtype=bool))
    if n == 0:
        return np.zeros_like(mask, dtype=bool)
    # counted slice by slice: np.bincount casts its input to int64, which for the
    # whole int32 label volume is a second, twice as large copy (1.2 GB at 600x512x512)
    sizes = np.zeros(n + 1, dtype=np.int64)
    for plane in labels.reshape(labels.shape[0], -1) if labels.ndim > 1 else labels[None]:
        sizes += np.bincount(plane, minlength=n + 1)
    sizes[0] = 0
    return np.asarray(labels == int(np.argmax(sizes)))


def head_mask(hu: npt.NDArray[np.floating], config: AnatomyConfig | None = None) -> BoolArray:
    """Voxels of the head: above ``head_min_hu``, largest component, holes filled per slice."""
    cfg = config or AnatomyConfig()
    body = largest_component(hu > cfg.head_min_hu)
    return np.stack([ndimage.binary_fill_holes(s) for s in body]) if body.size else body


def head_bounding_box(mask: BoolArray, *, margin: int = 8) -> tuple[slice, slice, slice] | None:
    """Bounding box (slices, rows, columns) of ``mask`` with an in-plane margin; ``None`` if empty."""
    if not mask.any():
        return None
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    ys = np.flatnonzero(mask.any(axis=(0, 2)))
    xs = np.flatnonzero(mask.any(axis=(0, 1)))
    return (
        slice(int(zs[0]), int(zs[-1]) + 1),
        slice(max(0, int(ys[0]) - margin), min(mask.shape[1], int(ys[-1]) + 1 + margin)),
        slice(max(0, int(xs[0]) - margin), min(mask.shape[2], int(xs[-1]) + 1 + margin)),
    )


def _disk(radius_px: int) -> BoolArray:
    r = max(0, radius_px)
    y, x = np.ogrid[-r : r + 1, -r : r + 1]
    return np.asarray(x * x + y * y <= r * r)


def _closing_2d(mask: BoolArray, radius: int) -> BoolArray:
    """In-plane closing by an octagon of about ``radius`` pixels.

    Alternating 3x3 square and cross steps approximate a disk and cost far
    less than one pass with a large disk footprint.
    """
    if radius <= 0:
        return mask
    square = np.zeros((3, 3, 3), dtype=bool)
    square[1] = True
    cross = np.zeros((3, 3, 3), dtype=bool)
    cross[1] = ndimage.generate_binary_structure(2, 1)
    steps = [square if i % 2 == 0 else cross for i in range(radius)]
    out = mask
    for step in steps:
        out = ndimage.binary_dilation(out, structure=step)
    for step in steps:
        out = ndimage.binary_erosion(out, structure=step, border_value=1)
    return np.asarray(out)


def intracranial_mask(
    hu: npt.NDArray[np.floating], geometry: VolumeGeometry, config: AnatomyConfig | None = None
) -> BoolArray:
    """Soft tissue enclosed by the skull.

    Per slice, the (closed) bone mask is hole-filled; the filled area minus
    bone, within ``brain_hu``, is intracranial. The largest 3D component is
    kept, which drops orbits, sinuses and scalp islands.
    """
    cfg = config or AnatomyConfig()
    radius = round(cfg.bone_closing_mm / min(geometry.pixel_spacing_mm))
    closed = _closing_2d(hu >= cfg.bone_min_hu, radius)
    lo, hi = cfg.brain_hu
    # slice by slice, so that only one boolean volume besides `closed` exists when labelling starts
    inside = np.empty(closed.shape, dtype=bool)
    for z, plane in enumerate(closed):
        inside[z] = ndimage.binary_fill_holes(plane) & ~plane & (hu[z] >= lo) & (hu[z] <= hi)
    del closed
    return largest_component(inside)
