"""Metal inside the skull (flag ``metal_artifact``).

A clip, a coil, the metal of a ventricular drain or a pressure probe attenuates the beam so
strongly that the reconstruction streaks: bright lines at blood density across the brain, and dark
bands that blot out a clot beside the metal. Neither segmenter was trained on them. On phantom bleeds
with simulated metal (``MODEL_CARD.md``, "Metal in the head") the reported volume moved by up to
several mL, in both directions, with no other flag; on the real GE normal head a simulated clip
raised ``out_of_domain_contrast`` alone (its streaks are at enhanced-vessel density), which names the
wrong cause.

Metal is told from bone by density: voxels at or above ``metal_hu`` (3,000 HU; dense petrous bone
reaches 2,121 HU on the real GE head, the phantoms' bone less, and a 12-bit reconstruction saturates
metal at 3,071 HU). Only metal in or beside the intracranial space counts: within ``margin_mm`` (in
plane; a drain's path through its burr hole) of the convex hull of the intracranial space on its
slice and the two neighbouring ones. The hull, because the finder leaves metal out as bone and a
coil's bloom and streaks at bone density can cut a channel from it to the skull (no hole is left to
fill); the neighbours, because the finder may lose the metal's slice to its streaks. Dental fillings
and the plates and screws on the outer table of a craniotomy lie outside. The flag is raised from
``min_ml`` of metal there. It says the volume may be wrong; it corrects nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.spatial import ConvexHull

from ichpipe.pipeline.quality.flags import QualityFlag, slice_range_text
from ichpipe.pipeline.segment.components import erode_3x3

__all__ = ["MetalFinding", "check_metal", "metal_in_head"]

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.floating]


@dataclass(frozen=True)
class MetalFinding:
    """Metal found in or beside the intracranial space.

    Attributes
    ----------
    volume_ml:
        Volume of the metal voxels counted.
    slices:
        Indices (in volume order) of the slices that hold them.
    max_hu:
        The densest of them (``None`` when there is none).
    """

    volume_ml: float
    slices: tuple[int, ...]
    max_hu: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"volume_ml": round(self.volume_ml, 4), "slices": list(self.slices), "max_hu": self.max_hu}


def metal_in_head(
    hu: FloatArray,
    intracranial: BoolArray,
    pixel_spacing_mm: tuple[float, float],
    voxel_volumes_ml: npt.ArrayLike,
    *,
    metal_hu: float = 3000.0,
    margin_mm: float = 3.0,
) -> MetalFinding:
    """Find the metal in or beside the intracranial space.

    Parameters
    ----------
    hu:
        HU volume (slices, rows, columns).
    intracranial:
        The intracranial space, the same shape.
    pixel_spacing_mm:
        (row spacing, column spacing).
    voxel_volumes_ml:
        Volume of one voxel of each slice (its own thickness), shape (slices,).
    metal_hu, margin_mm:
        See :class:`~ichpipe.pipeline.config.quality_artifact_config.MetalConfig`.

    Returns
    -------
    MetalFinding
        Volume, slices and peak density of the metal counted.

    Examples
    --------
    >>> hu = np.zeros((2, 40, 40), dtype=np.float32)
    >>> inside = np.zeros(hu.shape, dtype=bool)
    >>> inside[:, 5:35, 5:35] = True
    >>> hu[1, 20, 20] = 3071.0
    >>> inside[1, 20, 20] = False  # the finder leaves metal out, as bone
    >>> metal_in_head(hu, inside, (1.0, 1.0), [0.005, 0.005]).slices
    (1,)
    """
    if hu.shape != intracranial.shape:
        raise ValueError(f"Argument 'intracranial' must have the shape of 'hu' {hu.shape}; got {intracranial.shape}.")
    if margin_mm < 0:
        raise ValueError(f"Argument 'margin_mm' must not be negative; got {margin_mm}.")
    per_slice = np.broadcast_to(np.asarray(voxel_volumes_ml, dtype=np.float64), (hu.shape[0],))
    spacing = np.array([float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1])])
    has_space = np.asarray(intracranial.any(axis=(1, 2)), dtype=bool)
    volume, slices, peak = 0.0, [], None
    for z in range(hu.shape[0]):
        plane = np.asarray(hu[z])
        neighbours = [k for k in (z - 1, z, z + 1) if 0 <= k < hu.shape[0] and has_space[k]]
        if not neighbours or not plane.size or float(plane.max()) < metal_hu:
            continue
        dense = np.argwhere(plane >= metal_hu)
        space = np.concatenate([_outline(intracranial[k]) for k in neighbours])
        near = dense[_hull_distance_mm(space * spacing, dense * spacing) <= margin_mm]
        if len(near):
            volume += len(near) * float(per_slice[z])
            slices.append(int(z))
            top = float(plane[near[:, 0], near[:, 1]].max())
            peak = top if peak is None else max(peak, top)
    return MetalFinding(volume, tuple(slices), None if peak is None else round(peak, 1))


def _outline(plane: BoolArray) -> npt.NDArray[np.intp]:
    """(row, column) of the plane's True pixels that have a False 4-neighbour."""
    return np.argwhere(plane & ~erode_3x3(plane, square=False))


def _hull_distance_mm(points: FloatArray, queries: FloatArray) -> FloatArray:
    """Distance (mm, 0 inside) of each query from the convex hull of ``points``, largest over the hull's sides.

    The largest signed distance to a side's line: exact inside and beside a side, an underestimate
    near a corner (never more than the true distance). Fewer than three distinct points: their
    bounding box.

    >>> square = np.array([[0.0, 0.0], [0.0, 10.0], [10.0, 0.0], [10.0, 10.0]])
    >>> _hull_distance_mm(square, np.array([[5.0, 5.0], [5.0, 13.0]])).round(6).tolist()
    [0.0, 3.0]
    """
    if len(np.unique(points, axis=0)) >= 3 and np.linalg.matrix_rank(points - points[0]) == 2:
        eq = ConvexHull(points).equations  # unit normal (outward), offset: n . p + c > 0 outside
        far = (queries @ eq[:, :2].T + eq[:, 2]).max(axis=1)
    else:
        low, high = points.min(axis=0), points.max(axis=0)
        far = np.maximum(low - queries, queries - high).max(axis=1)
    return np.maximum(far, 0.0)


def check_metal(finding: MetalFinding, *, min_ml: float = 0.005) -> list[QualityFlag]:
    """Flag ``metal_artifact`` when at least ``min_ml`` of metal is in or beside the intracranial space.

    Examples
    --------
    >>> check_metal(MetalFinding(0.02, (3, 4), 3071.0))[0].code
    'metal_artifact'
    >>> check_metal(MetalFinding(0.0, (), None))
    []
    """
    if finding.volume_ml < min_ml or not finding.slices:
        return []
    where = slice_range_text(finding.slices)
    return [QualityFlag(
        "metal_artifact",
        f"{1000 * finding.volume_ml:.0f} mm^3 of metal (up to {finding.max_hu:.0f} HU) in the head on {where} (a clip,"
        " coil, drain or probe?): its streaks can read as blood or hide it, so the volume may be wrong.",
        round(finding.volume_ml, 4), min_ml)]
