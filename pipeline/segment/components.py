"""Binary-mask helpers of the intracranial finder and the threshold baseline; plain numpy/scipy.

In-plane closing, 2D components, small holes, and 3D (26-connected)
components found by a slice-by-slice union-find, so that no int32 label
volume is ever allocated (600 slices of 512 x 512 would need 630 MB for it).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe.errors import UsageError

__all__ = [
    "closing_2d",
    "components_at_least_3d",
    "drop_small_2d",
    "fill_small_holes_2d",
    "largest_2d",
    "largest_component_3d",
    "mask_volume_ml",
]

BoolArray = npt.NDArray[np.bool_]


def closing_2d(mask: BoolArray, radius_mm: float, spacing: tuple[float, float]) -> BoolArray:
    """In-plane closing by an octagon of about ``radius_mm`` (padded, so the border does not erode).

    Alternating 3x3 square and cross steps approximate a disk at a fraction
    of the cost of one pass with a large disk.
    """
    steps = round(radius_mm / min(spacing))
    if steps <= 0:
        return mask
    pad = steps + 1
    out = np.pad(mask, pad)
    for i in range(steps):
        out = ndimage.binary_dilation(out, structure=_SQUARE if i % 2 == 0 else _CROSS)
    for i in range(steps):
        out = ndimage.binary_erosion(out, structure=_SQUARE if i % 2 == 0 else _CROSS, border_value=1)
    return np.asarray(out[pad:-pad, pad:-pad])


_SQUARE = np.ones((3, 3), dtype=bool)
_CROSS = ndimage.generate_binary_structure(2, 1)
_EIGHT = np.ones((3, 3), dtype=bool)

#: Largest label-pair table (cells) :func:`_overlap_pairs` marks; above it, pair codes are sorted instead.
_TABLE_LIMIT = 1 << 22


def largest_2d(mask: BoolArray) -> BoolArray:
    """The largest 8-connected component of a plane."""
    labels, n = ndimage.label(mask, structure=_EIGHT)
    if n <= 1:
        return mask.copy() if n == 1 else np.zeros_like(mask)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    return np.asarray(labels == int(np.argmax(sizes)))


def drop_small_2d(mask: BoolArray, min_pixels: int) -> BoolArray:
    """A plane without its 8-connected components smaller than ``min_pixels``."""
    if min_pixels <= 1 or not mask.any():
        return mask
    labels, n = ndimage.label(mask, structure=_EIGHT)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_pixels
    keep[0] = False
    return np.asarray(keep[labels])


def _overlap_pairs(previous: npt.NDArray[np.int32], n_previous: int, labels: npt.NDArray[np.int32],
                   n: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Pairs (label on the previous slice, label on this one) that touch through the nine in-plane shifts.

    Works on the bounding box of both planes' labelled pixels, and marks
    pairs in an (n_previous + 1) x (n + 1) table when that is small (no sort),
    else de-duplicates pair codes with :func:`numpy.unique`.
    """
    either = (previous > 0) | (labels > 0)
    rows_any, cols_any = np.flatnonzero(either.any(axis=1)), np.flatnonzero(either.any(axis=0))
    box = (slice(max(0, int(rows_any[0]) - 1), int(rows_any[-1]) + 2),
           slice(max(0, int(cols_any[0]) - 1), int(cols_any[-1]) + 2))
    prev, lab = previous[box], labels[box]
    rows, cols = lab.shape
    table = np.zeros((n_previous + 1, n + 1), dtype=bool) if (n_previous + 1) * (n + 1) <= _TABLE_LIMIT else None
    codes: list[npt.NDArray[np.int64]] = []
    for sy in (-1, 0, 1):
        for sx in (-1, 0, 1):
            a = prev[max(0, sy) : rows + min(0, sy), max(0, sx) : cols + min(0, sx)]
            b = lab[max(0, -sy) : rows + min(0, -sy), max(0, -sx) : cols + min(0, -sx)]
            both = (a > 0) & (b > 0)
            if table is not None:
                table[a[both], b[both]] = True
            elif both.any():
                codes.append(np.unique(a[both].astype(np.int64) * (n + 1) + b[both]))
    if table is not None:
        found_a, found_b = np.nonzero(table)
        return found_a, found_b
    if not codes:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    code = np.unique(np.concatenate(codes))
    return code // (n + 1), code % (n + 1)


def _select_components_3d(mask: BoolArray, weights: npt.NDArray[np.float64], *, largest: bool,
                          min_weight: float) -> BoolArray:
    """Keep 26-connected components of ``mask`` without a 3D label volume.

    Slices are labelled one at a time (8-connected) and linked to the previous
    slice through the nine in-plane shifts (26-connectivity); a union-find over
    (slice, label) gives the components and their weights (``weights[z]`` per
    voxel of slice ``z``). Keeps the heaviest component (``largest``) or every
    component of at least ``min_weight``. Peak memory is a few planes.
    """
    if mask.ndim != 3:
        raise UsageError("Argument 'mask' must be a 3D array.")
    parent: dict[int, int] = {}

    def find(a: int) -> int:
        root = a
        while parent[root] != root:
            root = parent[root]
        while parent[a] != root:
            parent[a], a = root, parent[a]
        return root

    sizes: dict[int, float] = {}
    offsets: list[int] = []
    offset = 0
    previous: npt.NDArray[np.int32] | None = None
    n_previous = 0
    for z in range(mask.shape[0]):
        labels, n = ndimage.label(mask[z], structure=_EIGHT, output=np.int32)
        counts = np.bincount(labels.ravel(), minlength=n + 1)
        for k in range(1, n + 1):
            parent[offset + k] = offset + k
            sizes[offset + k] = float(counts[k]) * float(weights[z])
        if previous is not None and n and n_previous:
            below, here = _overlap_pairs(previous, n_previous, labels, n)
            previous_offset = offset - n_previous
            for x, y in zip(below.tolist(), here.tolist(), strict=True):
                rx, ry = find(previous_offset + x), find(offset + y)
                if rx != ry:
                    parent[ry] = rx
        offsets.append(offset)
        offset += n
        previous, n_previous = labels, n
    out = np.zeros(mask.shape, dtype=bool)
    if not parent:
        return out
    totals: dict[int, float] = {}
    for k, size in sizes.items():
        r = find(k)
        totals[r] = totals.get(r, 0.0) + size
    if largest:
        kept = {max(totals, key=lambda r: totals[r])}
    else:
        kept = {r for r, total in totals.items() if total >= min_weight}
    if not kept:
        return out
    for z in range(mask.shape[0]):
        labels, n = ndimage.label(mask[z], structure=_EIGHT, output=np.int32)
        if n == 0:
            continue
        keep = np.zeros(n + 1, dtype=bool)
        keep[1:] = [find(offsets[z] + k) in kept for k in range(1, n + 1)]
        out[z] = keep[labels]
    return out


def mask_volume_ml(mask: BoolArray, voxel_ml: npt.ArrayLike) -> float:
    """Volume of ``mask`` in mL (``voxel_ml``: one voxel's volume per slice, or one value for all)."""
    per_slice = mask.reshape(mask.shape[0], -1).sum(axis=1)
    return float(np.sum(per_slice * np.asarray(voxel_ml, dtype=np.float64)))


def largest_component_3d(mask: BoolArray) -> BoolArray:
    """The largest 26-connected component of ``mask`` (by voxel count), without a 3D label volume."""
    return _select_components_3d(mask, np.ones(mask.shape[0] if mask.ndim else 0), largest=True, min_weight=0.0)


def components_at_least_3d(mask: BoolArray, voxel_ml: npt.ArrayLike, min_ml: float) -> BoolArray:
    """``mask`` without its 26-connected components under ``min_ml`` (``voxel_ml``: one voxel's volume per slice)."""
    if min_ml <= 0 or not mask.any():
        return mask
    weights = np.broadcast_to(np.asarray(voxel_ml, dtype=np.float64), (mask.shape[0],))
    return _select_components_3d(mask, weights, largest=False, min_weight=min_ml)


def fill_small_holes_2d(plane: BoolArray, max_pixels: int) -> BoolArray:
    """A plane with its holes of at most ``max_pixels`` filled."""
    if max_pixels <= 0 or not plane.any():
        return plane
    holes = ndimage.binary_fill_holes(plane) & ~plane
    labels, n = ndimage.label(holes)
    if n == 0:
        return plane
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    small = sizes <= max_pixels
    small[0] = False
    return np.asarray(plane | small[labels])
