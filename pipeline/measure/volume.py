"""Hematoma volume from the DICOM geometry, and automated ABC/2.

Planimetric volume
------------------
``volume_ml`` is the sum over slices of the hematoma area on that slice
(pixel count x pixel area, in the slice plane) times **that slice's own
thickness along the normal** (:attr:`ichpipe.dicom_io.geometry.VolumeGeometry.slice_thickness_mm`:
half the distance to each neighbour). This is the seed's "slice thickness x
sum of areas", generalised so that gantry tilt (the table step is longer than
the spacing along the normal), uneven spacing and missing slices are measured
without resampling and without the 1/cos(tilt) over-read.

Automated ABC/2 (Tada / Kothari)
--------------------------------
The bedside estimate is computed from the mask the way a reader would on the
images:

* **Which voxels.** The bedside method is applied to the main hematoma, so by
  default (``abc2_component="largest"``) A, B and C come from the largest
  3D connected component (26-connectivity: touching faces, edges or corners
  across slices). ``"all"`` uses every hematoma voxel. The planimetric
  ``volume_ml`` always counts every voxel; ``component_volume_ml`` reports the
  planimetric volume of the voxels ABC/2 used, so the two errors (shape of
  the estimate vs. choice of voxels) can be told apart.
* **A**: on the slice where those voxels have the largest area, the longest
  diameter (maximum Feret diameter) in mm, measured edge to edge: each pixel
  is the rectangle it covers (row spacing x column spacing, so anisotropic
  pixels are handled), and A is the largest distance between two corners of
  the convex hull of those rectangles.
* **B**: the extent of that slice's region along the in-plane direction
  perpendicular to A (caliper width perpendicular to A), in mm. For an
  ellipse this is the minor axis; for a concave outline it may exceed the
  longest perpendicular chord a reader would draw.
* **C**: ``abc2_c_method="count"`` (default; "C from the slices with hematoma
  times spacing"): the sum of the own thicknesses along the normal of the
  slices holding those voxels; with uniform spacing this is the number of
  slices x the spacing. ``"kothari"``: a slice counts fully when its area is
  >= 75 % of the largest, half when it is >= 25 %, not at all below 25 %
  (Kothari et al., Stroke 1996), each weight times the slice's own thickness.
* ``abc2_ml = A x B x C / 2 / 1000``. For an ellipsoid with axes A, B, C the
  true volume is pi/6 x A x B x C, so ABC/2 (which takes pi = 3) reads 3/pi =
  95.5 % of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.spatial import ConvexHull

from ichpipe.dicom_io.geometry import VolumeGeometry
from ichpipe.pipeline.config.measure_config import MeasureConfig

__all__ = ["ABC2Estimate", "HematomaMeasurement", "feret_diameters_mm", "measure_hematoma"]

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class ABC2Estimate:
    """The automated ABC/2 estimate and its diameters.

    Attributes
    ----------
    a_mm, b_mm, c_mm:
        Longest diameter, extent perpendicular to it (both on ``slice_index``),
        and the craniocaudal extent along the normal.
    volume_ml:
        ``a_mm * b_mm * c_mm / 2 / 1000``.
    slice_index:
        Slice (in geometry order) where A and B were measured; ``None`` when empty.
    n_slices:
        Slices holding the voxels used (before any Kothari weighting).
    c_slice_weight:
        Sum of the slice weights that make C (equals ``n_slices`` for ``"count"``).
    c_method, component:
        The conventions used (see :class:`MeasureConfig`).
    component_volume_ml:
        Planimetric volume of the voxels used (the largest component, or all).
    n_components:
        Number of 3D connected components (26-connectivity) in the mask.
    """

    a_mm: float
    b_mm: float
    c_mm: float
    volume_ml: float
    slice_index: int | None
    n_slices: int
    c_slice_weight: float
    c_method: str
    component: str
    component_volume_ml: float
    n_components: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (lengths rounded to 0.001 mm, volumes to 0.0001 mL)."""
        return {
            "a_mm": round(self.a_mm, 3),
            "b_mm": round(self.b_mm, 3),
            "c_mm": round(self.c_mm, 3),
            "volume_ml": round(self.volume_ml, 4),
            "slice_index": self.slice_index,
            "n_slices": self.n_slices,
            "c_slice_weight": self.c_slice_weight,
            "c_method": self.c_method,
            "component": self.component,
            "component_volume_ml": round(self.component_volume_ml, 4),
            "n_components": self.n_components,
        }


@dataclass(frozen=True)
class HematomaMeasurement:
    """Planimetric volume and automated ABC/2 of one hematoma mask.

    Attributes
    ----------
    volume_ml:
        Sum over slices of area x that slice's own thickness along the normal.
    n_voxels:
        Hematoma voxels.
    max_area_slice_index:
        Slice (geometry order) with the largest hematoma area; ``None`` when empty.
    slice_areas_mm2:
        Hematoma area on each slice, in geometry order.
    abc2:
        The automated ABC/2 estimate.
    """

    volume_ml: float
    n_voxels: int
    max_area_slice_index: int | None
    slice_areas_mm2: tuple[float, ...]
    abc2: ABC2Estimate
    config: MeasureConfig = field(default_factory=MeasureConfig)

    @property
    def abc2_ml(self) -> float:
        """ABC/2 volume in mL."""
        return self.abc2.volume_ml

    def to_dict(self) -> dict[str, Any]:
        """The report's ``hematoma`` object (contract fields first)."""
        return {
            "volume_ml": round(self.volume_ml, 4),
            "abc2_ml": round(self.abc2.volume_ml, 4),
            "n_voxels": self.n_voxels,
            "max_area_slice_index": self.max_area_slice_index,
            "abc2": self.abc2.to_dict(),
            "slice_areas_mm2": [round(a, 3) for a in self.slice_areas_mm2],
        }


def _check_mask(mask: npt.NDArray[Any], geometry: VolumeGeometry) -> BoolArray:
    if not isinstance(mask, np.ndarray):
        raise ValueError(f"Argument 'mask' must be a numpy array; got {type(mask).__name__}.")
    if mask.dtype != np.bool_:
        raise ValueError(
            f"Argument 'mask' must be a boolean array; got dtype {mask.dtype} (convert it with mask != 0)."
        )
    expected = (geometry.n_slices, geometry.rows, geometry.columns)
    if mask.shape != expected:
        raise ValueError(
            f"Argument 'mask' has shape {mask.shape}; the geometry needs (slices, rows, columns) = {expected}."
        )
    return mask


def feret_diameters_mm(region: BoolArray, pixel_spacing_mm: tuple[float, float]) -> tuple[float, float]:
    """Longest diameter of a 2D region and its extent perpendicular to it, in mm.

    Pixels are the rectangles they cover (edge to edge), so a single pixel
    measures (its diagonal, ...) and anisotropic spacing is exact.

    Parameters
    ----------
    region:
        2D boolean array (rows, columns); must hold at least one pixel.
    pixel_spacing_mm:
        (row spacing, column spacing) in mm.

    Returns
    -------
    tuple of float
        (A, B): the maximum Feret diameter, and the caliper width along the
        direction perpendicular to it.
    """
    if region.ndim != 2 or not region.any():
        raise ValueError("Argument 'region' must be a 2D boolean array holding at least one pixel.")
    rows = np.flatnonzero(region.any(axis=1))
    cols = np.flatnonzero(region.any(axis=0))
    r0, c0 = int(rows[0]), int(cols[0])
    crop = region[r0 : int(rows[-1]) + 1, c0 : int(cols[-1]) + 1]
    # Only boundary pixels can contribute hull corners.
    boundary = crop & ~ndimage.binary_erosion(crop, border_value=0)
    rr, cc = np.nonzero(boundary)
    rr, cc = rr + r0, cc + c0
    dr, dc = pixel_spacing_mm
    corners_r = (rr[:, None] + np.array([-0.5, -0.5, 0.5, 0.5])[None, :]).ravel() * dr
    corners_c = (cc[:, None] + np.array([-0.5, 0.5, -0.5, 0.5])[None, :]).ravel() * dc
    points = np.unique(np.column_stack([corners_c, corners_r]), axis=0)
    hull = points[ConvexHull(points).vertices]
    diff = hull[:, None, :] - hull[None, :, :]
    dist2 = np.einsum("ijk,ijk->ij", diff, diff)
    i, j = np.unravel_index(int(np.argmax(dist2)), dist2.shape)
    a = float(np.sqrt(dist2[i, j]))
    u = (hull[j] - hull[i]) / a
    perpendicular = np.array([-u[1], u[0]])
    proj = hull @ perpendicular
    b = float(proj.max() - proj.min())
    return a, b


def _largest_component(mask: BoolArray) -> tuple[BoolArray, int]:
    """The largest 26-connected component (computed on the mask's bounding box) and the component count."""
    nz = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
    box = tuple(slice(int(ix[0]), int(ix[-1]) + 1) for ix in nz)
    labels, n = ndimage.label(mask[box], structure=np.ones((3, 3, 3), dtype=bool))
    if n <= 1:
        return mask, n
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    out = np.zeros_like(mask)
    out[box] = labels == int(np.argmax(sizes))
    return out, n


def _empty(geometry: VolumeGeometry, cfg: MeasureConfig) -> HematomaMeasurement:
    abc2 = ABC2Estimate(
        a_mm=0.0, b_mm=0.0, c_mm=0.0, volume_ml=0.0, slice_index=None, n_slices=0, c_slice_weight=0.0,
        c_method=cfg.abc2_c_method, component=cfg.abc2_component, component_volume_ml=0.0, n_components=0,
    )
    return HematomaMeasurement(
        volume_ml=0.0,
        n_voxels=0,
        max_area_slice_index=None,
        slice_areas_mm2=tuple(0.0 for _ in range(geometry.n_slices)),
        abc2=abc2,
        config=cfg,
    )


def measure_hematoma(
    mask: BoolArray, geometry: VolumeGeometry, *, config: MeasureConfig | None = None
) -> HematomaMeasurement:
    """Measure a hematoma mask on its series' geometry.

    Parameters
    ----------
    mask:
        Boolean array (slices, rows, columns) aligned to ``geometry`` (slices
        in geometry order, i.e. sorted along the normal).
    geometry:
        The series geometry; each slice's own thickness along the normal is used.
    config:
        ABC/2 conventions; defaults to :class:`MeasureConfig`.

    Returns
    -------
    HematomaMeasurement
        Planimetric volume, per-slice areas and the automated ABC/2. An empty
        mask gives zeros and ``None`` slice indices.

    Raises
    ------
    ValueError
        If ``mask`` is not boolean or its shape does not match ``geometry``.
    """
    cfg = config or MeasureConfig()
    mask = _check_mask(mask, geometry)
    counts = np.count_nonzero(mask.reshape(mask.shape[0], -1), axis=1)
    n_voxels = int(counts.sum())
    if n_voxels == 0:
        return _empty(geometry, cfg)
    pixel_area = geometry.pixel_area_mm2
    thickness = np.asarray(geometry.slice_thickness_mm, dtype=np.float64)
    areas = counts * pixel_area
    volume_ml = float(np.sum(areas * thickness) / 1000.0)
    max_slice = int(np.argmax(counts))

    if cfg.abc2_component == "largest":
        used, n_components = _largest_component(mask)
        used_counts = np.count_nonzero(used.reshape(used.shape[0], -1), axis=1)
    else:
        used, n_components = mask, _largest_component(mask)[1]
        used_counts = counts
    used_areas = used_counts * pixel_area
    abc_slice = int(np.argmax(used_counts))
    a_mm, b_mm = feret_diameters_mm(used[abc_slice], geometry.pixel_spacing_mm)
    present = used_counts > 0
    if cfg.abc2_c_method == "count":
        weights = present.astype(np.float64)
    else:
        ratio = used_counts / used_counts[abc_slice]
        weights = np.where(ratio >= 0.75, 1.0, np.where(ratio >= 0.25, 0.5, 0.0))
    c_mm = float(np.sum(weights * thickness))
    abc2 = ABC2Estimate(
        a_mm=a_mm,
        b_mm=b_mm,
        c_mm=c_mm,
        volume_ml=a_mm * b_mm * c_mm / 2.0 / 1000.0,
        slice_index=abc_slice,
        n_slices=int(np.count_nonzero(present)),
        c_slice_weight=float(weights.sum()),
        c_method=cfg.abc2_c_method,
        component=cfg.abc2_component,
        component_volume_ml=float(np.sum(used_areas * thickness) / 1000.0),
        n_components=n_components,
    )
    return HematomaMeasurement(
        volume_ml=volume_ml,
        n_voxels=n_voxels,
        max_area_slice_index=max_slice,
        slice_areas_mm2=tuple(float(a) for a in areas),
        abc2=abc2,
        config=cfg,
    )
