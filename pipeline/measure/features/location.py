"""Where a hematoma lies: hemisphere and supra- or infratentorial, without an atlas.

The head (voxels above ``head_min_hu``, largest connected part, found on a
~3-mm in-plane subsample) gives a frame:

* **midline**: the plane through the head's centroid whose normal is the
  head's in-plane minor axis (heads are longer front to back than side to
  side, so this follows a small yaw), pointed to the patient's left (+x in
  LPS). When the head is nearly round in-plane (axis ratio < 1.1) the
  patient x axis is used instead;
* **vertex**: the most superior head point (LPS +z), known only when the
  scan covers the top of the head (the top slice with head holds less than
  35 % of the largest head cross-section); otherwise the infratentorial
  share is ``None``;
* **posterior**: the in-plane major axis, pointed to patient posterior (+y).

Features (``None`` when the mask is empty or no head is found):

``location_left_fraction``
    Share of the hematoma volume on the patient's left of the midline (0-1).
``location_midline_distance_mm``
    Distance of the hematoma's centroid from the midline plane.
``location_infratentorial_fraction``
    Share of the hematoma volume more than ``tentorium_below_vertex_mm``
    below the vertex **and** posterior to the coronal plane
    ``posterior_margin_mm`` in front of the head's centroid: a rough
    stand-in for "below the tentorium" (posterior fossa: cerebellum,
    brainstem). It is a heuristic on head geometry, not an atlas; check it
    against your own data before relying on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ichpipe.pipeline.measure.features.grid import Grid, mask_indices
from ichpipe.pipeline.segment.intracranial import largest_component

__all__ = ["LOCATION_FEATURES", "HeadFrame", "find_head_frame", "location_features"]

FloatArray = npt.NDArray[np.float64]

#: The location features.
LOCATION_FEATURES: tuple[str, ...] = (
    "location_left_fraction",
    "location_midline_distance_mm",
    "location_infratentorial_fraction",
)

_SUBSAMPLE_MM = 3.0
_ROUND_HEAD_RATIO = 1.1
_TOP_AREA_FRACTION = 0.35
_LEFT = np.array([1.0, 0.0, 0.0])
_POSTERIOR = np.array([0.0, 1.0, 0.0])


@dataclass(frozen=True)
class HeadFrame:
    """Midline, posterior direction and vertex of a head in patient coordinates.

    Attributes
    ----------
    centroid:
        Volume centroid of the head (LPS mm).
    left:
        Unit normal of the midline plane, towards the patient's left.
    posterior:
        Unit in-plane direction towards the patient's back.
    vertex_z_mm:
        Patient-superior coordinate of the top of the head, or ``None`` when
        the scan does not reach it.
    """

    centroid: FloatArray
    left: FloatArray
    posterior: FloatArray
    vertex_z_mm: float | None


def _oriented(vector: FloatArray, reference: FloatArray) -> FloatArray:
    v = vector / np.linalg.norm(vector)
    return np.asarray(-v if float(v @ reference) < 0 else v)


def find_head_frame(hu: npt.NDArray[np.floating], grid: Grid, *, head_min_hu: float = -300.0) -> HeadFrame | None:
    """The head's midline, posterior axis and vertex; ``None`` when no head is found.

    Parameters
    ----------
    hu:
        HU volume (slices, rows, columns) on ``grid``.
    grid:
        Voxel-to-patient mapping.
    head_min_hu:
        Threshold between air and head.
    """
    if hu.ndim != 3 or hu.shape[0] != grid.n_slices:
        raise ValueError(f"Argument 'hu' must have shape (slices, rows, columns) on the grid; got {hu.shape}.")
    step = max(1, round(_SUBSAMPLE_MM / min(grid.pixel_spacing_mm)))
    head = largest_component(np.asarray(hu[:, ::step, ::step] > head_min_hu))
    if not head.any():
        return None
    k, r, c = np.nonzero(head)
    pts = grid.points(k, r * step, c * step)
    w = grid.voxel_volumes_mm3[k]
    centroid = (w[:, None] * pts).sum(axis=0) / w.sum()

    basis = np.stack([grid.row_direction, grid.column_direction])  # (2, 3), orthonormal in-plane axes
    uv = (pts - centroid) @ basis.T
    cov = (w[:, None] * uv).T @ uv / w.sum()
    eigval, eigvec = np.linalg.eigh(cov)  # ascending
    if eigval[0] > 0 and eigval[1] / eigval[0] >= _ROUND_HEAD_RATIO:
        left = _oriented(eigvec[:, 0] @ basis, _LEFT)
        posterior = _oriented(eigvec[:, 1] @ basis, _POSTERIOR)
    else:
        left = _oriented(_LEFT - (_LEFT @ grid.normal) * grid.normal, _LEFT)
        posterior = _oriented(np.cross(grid.normal, left), _POSTERIOR)

    areas = np.bincount(k, minlength=head.shape[0]).astype(np.float64)
    with_head = np.flatnonzero(areas)
    superior = np.array([grid.slice_position(i)[2] for i in with_head])
    top = int(with_head[int(np.argmax(superior))])
    vertex = float(pts[:, 2].max()) if areas[top] < _TOP_AREA_FRACTION * areas.max() else None
    return HeadFrame(centroid=np.asarray(centroid), left=left, posterior=posterior, vertex_z_mm=vertex)


def location_features(
    mask: npt.NDArray[np.bool_],
    grid: Grid,
    frame: HeadFrame | None,
    *,
    tentorium_below_vertex_mm: float = 100.0,
    posterior_margin_mm: float = 10.0,
) -> dict[str, float | None]:
    """Hemisphere and infratentorial share of a hematoma (see the module docstring).

    Parameters
    ----------
    mask:
        Boolean (slices, rows, columns) array on ``grid``.
    grid:
        Voxel-to-patient mapping.
    frame:
        The head frame from :func:`find_head_frame` (``None``: every feature is ``None``).
    tentorium_below_vertex_mm, posterior_margin_mm:
        The infratentorial heuristic's two distances.
    """
    out: dict[str, float | None] = dict.fromkeys(LOCATION_FEATURES)
    if mask.dtype != np.bool_ or mask.ndim != 3 or mask.shape[0] != grid.n_slices:
        raise ValueError("Argument 'mask' must be a boolean (slices, rows, columns) array on the grid.")
    if frame is None or not mask.any():
        return out
    k, r, c = mask_indices(mask)
    pts = grid.points(k, r, c)
    w = grid.voxel_volumes_mm3[k]
    total = float(w.sum())
    side = (pts - frame.centroid) @ frame.left
    out["location_left_fraction"] = float(w[side > 0].sum()) / total
    centre = (w[:, None] * pts).sum(axis=0) / total
    out["location_midline_distance_mm"] = abs(float((centre - frame.centroid) @ frame.left))
    if frame.vertex_z_mm is not None:
        low = pts[:, 2] < frame.vertex_z_mm - tentorium_below_vertex_mm
        back = (pts - frame.centroid) @ frame.posterior > -posterior_margin_mm
        out["location_infratentorial_fraction"] = float(w[low & back].sum()) / total
    return out
