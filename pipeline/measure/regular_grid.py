"""Resample a tilted or unevenly spaced series onto an untilted regular grid, for viewers that need one.

A gantry-tilted stack is a pile of parallel slices whose positions drift
in-plane from slice to slice; an uneven stack has several spacings. Many
viewers (3D Slicer through dcmqi, most NIfTI tools) assume a regular grid:
positions along the normal at one spacing. :func:`resample_to_regular_grid`
builds that grid the way dcm2niix's ``_Tilt_Eq`` output does, without losing
what lies outside the first slice's field of view:

* axes: the series' row and column directions and the slice normal
  (orthogonal, no shear), the same pixel spacing in-plane;
* slices every ``spacing_mm`` along the normal from the first slice's offset
  (default: the smallest spacing of the series), up to the last slice;
* the matrix grows so that every native slice's in-plane drift fits;
* each voxel is linearly interpolated between the two native slices around
  it along the normal, each sampled at its own drifted in-plane position; the
  mask is interpolated the same way and kept where it is >= 0.5.

This is for viewing: ``ichpipe`` measures volumes on the native geometry, and
the resampled mask's volume differs from it by the interpolation error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe.dicom_io.geometry import VolumeGeometry

__all__ = ["RegularGrid", "needs_regular_grid", "resample_to_regular_grid"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class RegularGrid:
    """A CT volume and mask on an untilted regular grid.

    Attributes
    ----------
    hu:
        float32 (slices, rows, columns) in HU.
    mask:
        bool, same shape.
    origin:
        LPS position of voxel (0, 0, 0) (first slice, first row, first column).
    row_direction, column_direction, normal:
        Unit vectors (LPS) along columns index, rows index and slices.
    pixel_spacing_mm:
        (row spacing, column spacing), as the series'.
    slice_spacing_mm:
        Spacing between slices along the normal.
    """

    hu: npt.NDArray[np.float32]
    mask: npt.NDArray[np.bool_]
    origin: FloatArray
    row_direction: FloatArray
    column_direction: FloatArray
    normal: FloatArray
    pixel_spacing_mm: tuple[float, float]
    slice_spacing_mm: float

    @property
    def positions(self) -> FloatArray:
        """ImagePositionPatient of each slice, shape (n, 3)."""
        steps = np.arange(self.hu.shape[0], dtype=np.float64)[:, None] * self.slice_spacing_mm
        return self.origin[None, :] + steps * self.normal[None, :]

    def affine_lps(self) -> FloatArray:
        """4x4 voxel (column, row, slice) -> LPS mm matrix (orthogonal: no shear)."""
        a = np.eye(4)
        a[:3, 0] = self.row_direction * self.pixel_spacing_mm[1]
        a[:3, 1] = self.column_direction * self.pixel_spacing_mm[0]
        a[:3, 2] = self.normal * self.slice_spacing_mm
        a[:3, 3] = self.origin
        return a

    def volume_ml(self) -> float:
        """Mask volume on this grid (voxel count x voxel volume), for comparison with the native measurement."""
        voxel = self.pixel_spacing_mm[0] * self.pixel_spacing_mm[1] * self.slice_spacing_mm / 1000.0
        return float(self.mask.sum()) * voxel


def needs_regular_grid(geometry: VolumeGeometry, *, tilt_tolerance_deg: float = 0.01) -> bool:
    """Whether the series is tilted or unevenly spaced (a viewer may then misplace it)."""
    return abs(geometry.gantry_tilt_deg) > tilt_tolerance_deg or not geometry.uniform_spacing


def resample_to_regular_grid(
    hu: npt.NDArray[np.floating],
    mask: npt.NDArray[np.bool_],
    geometry: VolumeGeometry,
    *,
    spacing_mm: float | None = None,
    fill_hu: float = -1024.0,
) -> RegularGrid:
    """Resample a series and its mask onto an untilted regular grid (see the module docstring).

    Parameters
    ----------
    hu:
        (slices, rows, columns) HU, slices in geometry order.
    mask:
        Boolean mask of the same shape.
    geometry:
        The series' geometry.
    spacing_mm:
        Slice spacing of the grid; ``None`` uses the smallest spacing along the normal.
    fill_hu:
        HU of voxels outside every native slice (air).

    Raises
    ------
    ValueError
        If the shapes do not match the geometry, there is a single slice, or
        ``spacing_mm`` is not positive.
    """
    shape = (geometry.n_slices, geometry.rows, geometry.columns)
    if hu.shape != shape or mask.shape != shape:
        raise ValueError(f"Arguments 'hu' and 'mask' must have the geometry's shape {shape}; got {hu.shape}"
                         f" and {mask.shape}.")
    if geometry.n_slices < 2:
        raise ValueError("Argument 'geometry' must have at least two slices to resample between.")
    offsets = geometry.offsets_mm
    step = float(np.min(np.diff(offsets))) if spacing_mm is None else float(spacing_mm)
    if not (math.isfinite(step) and step > 0):
        raise ValueError(f"Argument 'spacing_mm' must be a positive number of mm; got {spacing_mm!r}.")
    row_mm, col_mm = geometry.pixel_spacing_mm
    rel = geometry.positions - geometry.positions[0]
    drift_u = rel @ geometry.row_direction  # mm along columns index
    drift_v = rel @ geometry.column_direction  # mm along rows index
    u0 = float(np.floor(drift_u.min() / col_mm)) * col_mm
    v0 = float(np.floor(drift_v.min() / row_mm)) * row_mm
    columns = geometry.columns + int(np.ceil((drift_u.max() - u0) / col_mm - 1e-6))
    rows = geometry.rows + int(np.ceil((drift_v.max() - v0) / row_mm - 1e-6))
    n_out = int(np.floor((offsets[-1] - offsets[0]) / step + 1e-6)) + 1
    w = offsets[0] + step * np.arange(n_out)
    index = np.arange(geometry.n_slices, dtype=np.float64)
    kf = np.interp(w, offsets, index)
    du = np.interp(w, offsets, drift_u)
    dv = np.interp(w, offsets, drift_v)
    jj, ii = np.meshgrid(np.arange(rows, dtype=np.float64), np.arange(columns, dtype=np.float64), indexing="ij")
    source = np.asarray(hu, dtype=np.float32)
    weights = mask.astype(np.float32)
    out_hu = np.empty((n_out, rows, columns), dtype=np.float32)
    out_mask = np.empty((n_out, rows, columns), dtype=bool)
    for k in range(n_out):
        a = (u0 + ii * col_mm - du[k]) / col_mm
        b = (v0 + jj * row_mm - dv[k]) / row_mm
        coords = np.stack([np.full_like(a, kf[k]), b, a])
        out_hu[k] = ndimage.map_coordinates(source, coords, order=1, mode="constant", cval=fill_hu)
        out_mask[k] = ndimage.map_coordinates(weights, coords, order=1, mode="constant", cval=0.0) >= 0.5
    origin = geometry.positions[0] + u0 * geometry.row_direction + v0 * geometry.column_direction
    return RegularGrid(out_hu, out_mask, origin, geometry.row_direction.copy(), geometry.column_direction.copy(),
                       geometry.normal.copy(), (float(row_mm), float(col_mm)), step)
