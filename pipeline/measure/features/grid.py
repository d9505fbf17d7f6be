"""Where each voxel of a series lies in patient space, for feature computation.

A :class:`Grid` maps (fractional) voxel indices ``(slice k, row r, column c)``
to patient coordinates (LPS, mm) the way the DICOM geometry says:

    p(k, r, c) = P(k) + c * row_direction * column_spacing + r * column_direction * row_spacing

where ``P(k)`` is ImagePositionPatient of slice ``k``, linearly interpolated
between slices (and extrapolated beyond the ends with the end spacing). Uneven
spacing, gaps and gantry tilt (positions that step along a line oblique to the
normal) are therefore handled exactly, without resampling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ichpipe.dicom_io.geometry import VolumeGeometry, slice_thickness_from_offsets

__all__ = ["Grid", "mask_indices"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Grid:
    """Voxel-to-patient mapping of a stack of parallel slices.

    Attributes
    ----------
    positions:
        ImagePositionPatient of each slice, shape ``(n, 3)``, sorted along the normal.
    row_direction:
        Unit vector along which the column index grows (first IOP triplet).
    column_direction:
        Unit vector along which the row index grows (second IOP triplet).
    pixel_spacing_mm:
        ``(row spacing, column spacing)`` as in DICOM PixelSpacing.
    slice_thickness_mm:
        Each slice's own thickness along the normal (half the distance to each neighbour).
    """

    positions: FloatArray
    row_direction: FloatArray
    column_direction: FloatArray
    pixel_spacing_mm: tuple[float, float]
    slice_thickness_mm: FloatArray

    def __post_init__(self) -> None:
        positions = np.asarray(self.positions, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] != 3 or positions.shape[0] < 1:
            raise ValueError(f"Argument 'positions' must have shape (n, 3); got {positions.shape}.")
        thickness = np.asarray(self.slice_thickness_mm, dtype=np.float64)
        if thickness.shape != (positions.shape[0],) or np.any(~np.isfinite(thickness)) or np.any(thickness <= 0):
            raise ValueError("Argument 'slice_thickness_mm' must hold one positive thickness per slice.")
        if len(self.pixel_spacing_mm) != 2 or min(self.pixel_spacing_mm) <= 0:
            raise ValueError(f"Argument 'pixel_spacing_mm' must be two positive numbers; got {self.pixel_spacing_mm}.")
        object.__setattr__(self, "positions", positions)
        object.__setattr__(self, "slice_thickness_mm", thickness)
        object.__setattr__(self, "row_direction", _unit(self.row_direction, "row_direction"))
        object.__setattr__(self, "column_direction", _unit(self.column_direction, "column_direction"))
        object.__setattr__(self, "pixel_spacing_mm", (float(self.pixel_spacing_mm[0]), float(self.pixel_spacing_mm[1])))

    @classmethod
    def from_geometry(cls, geometry: VolumeGeometry) -> Grid:
        """The grid of an assembled series."""
        return cls(
            positions=np.asarray(geometry.positions, dtype=np.float64),
            row_direction=np.asarray(geometry.row_direction, dtype=np.float64),
            column_direction=np.asarray(geometry.column_direction, dtype=np.float64),
            pixel_spacing_mm=(float(geometry.pixel_spacing_mm[0]), float(geometry.pixel_spacing_mm[1])),
            slice_thickness_mm=np.asarray(geometry.slice_thickness_mm, dtype=np.float64),
        )

    @classmethod
    def axial(
        cls,
        n_slices: int,
        *,
        spacing_mm: Sequence[float],
        offsets_mm: Sequence[float] | None = None,
        origin_mm: Sequence[float] = (0.0, 0.0, 0.0),
    ) -> Grid:
        """An axial grid (identity orientation) for arrays built in code.

        Parameters
        ----------
        n_slices:
            Number of slices.
        spacing_mm:
            ``(slice spacing, row spacing, column spacing)``; the slice spacing
            is ignored when ``offsets_mm`` is given.
        offsets_mm:
            Position of each slice along the normal (patient z), increasing.
        origin_mm:
            Position of the first voxel.
        """
        if n_slices < 1:
            raise ValueError(f"Argument 'n_slices' must be at least 1; got {n_slices}.")
        dz, dy, dx = (float(v) for v in spacing_mm)
        if offsets_mm is None:
            offsets = np.arange(n_slices, dtype=np.float64) * dz
        else:
            offsets = np.asarray(offsets_mm, dtype=np.float64) - float(offsets_mm[0])
            if offsets.shape != (n_slices,) or np.any(np.diff(offsets) <= 0):
                raise ValueError("Argument 'offsets_mm' must hold n_slices strictly increasing positions.")
        positions = np.zeros((n_slices, 3))
        positions[:] = np.asarray(origin_mm, dtype=np.float64)
        positions[:, 2] += offsets
        thickness = slice_thickness_from_offsets(offsets) if n_slices > 1 else np.array([dz])
        return cls(
            positions=positions,
            row_direction=np.array([1.0, 0.0, 0.0]),
            column_direction=np.array([0.0, 1.0, 0.0]),
            pixel_spacing_mm=(dy, dx),
            slice_thickness_mm=np.asarray(thickness, dtype=np.float64),
        )

    @property
    def n_slices(self) -> int:
        """Number of slices."""
        return int(self.positions.shape[0])

    @property
    def normal(self) -> FloatArray:
        """Slice normal ``row_direction x column_direction``."""
        n = np.cross(self.row_direction, self.column_direction)
        return np.asarray(n / np.linalg.norm(n))

    @property
    def offsets_mm(self) -> FloatArray:
        """Position of each slice along the normal."""
        return np.asarray(self.positions @ self.normal)

    @property
    def voxel_volumes_mm3(self) -> FloatArray:
        """Volume of one voxel of each slice (pixel area x the slice's own thickness)."""
        return self.pixel_spacing_mm[0] * self.pixel_spacing_mm[1] * self.slice_thickness_mm

    def slice_position(self, k: npt.ArrayLike) -> FloatArray:
        """Interpolated (and end-extrapolated) ImagePositionPatient at fractional slice indices ``k``."""
        k = np.asarray(k, dtype=np.float64)
        n = self.n_slices
        if n == 1:
            step = self.normal * float(self.slice_thickness_mm[0])
            return np.asarray(self.positions[0] + k[..., None] * step)
        lo = np.clip(np.floor(k).astype(np.int64), 0, n - 2)
        t = (k - lo)[..., None]
        return np.asarray(self.positions[lo] * (1.0 - t) + self.positions[lo + 1] * t)

    def points(self, k: npt.ArrayLike, r: npt.ArrayLike, c: npt.ArrayLike) -> FloatArray:
        """Patient coordinates (LPS mm), shape ``(..., 3)``, of fractional voxel indices."""
        r = np.asarray(r, dtype=np.float64)[..., None]
        c = np.asarray(c, dtype=np.float64)[..., None]
        row_mm, col_mm = self.pixel_spacing_mm
        return np.asarray(
            self.slice_position(k) + c * (self.row_direction * col_mm) + r * (self.column_direction * row_mm)
        )

    def slice_gaps_mm(self) -> FloatArray:
        """Distance along the normal from each slice to its nearest neighbour (the thickness for one slice)."""
        n = self.n_slices
        if n == 1:
            return np.asarray(self.slice_thickness_mm.copy())
        d = np.diff(self.offsets_mm)
        nearest = np.empty(n)
        nearest[0], nearest[-1] = d[0], d[-1]
        if n > 2:
            nearest[1:-1] = np.minimum(d[:-1], d[1:])
        return nearest


def _unit(vector: npt.ArrayLike, name: str) -> FloatArray:
    v = np.asarray(vector, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(v)) if v.shape == (3,) else 0.0
    if v.shape != (3,) or not np.isfinite(norm) or norm < 1e-6:
        raise ValueError(f"Argument '{name}' must be a non-zero 3-vector; got {vector!r}.")
    return np.asarray(v / norm)


IndexArray = npt.NDArray[np.intp]


def mask_indices(mask: npt.NDArray[np.bool_]) -> tuple[IndexArray, IndexArray, IndexArray]:
    """``np.nonzero(mask)`` for a 3D mask, searched only inside its bounding box (much faster when small)."""
    if mask.ndim != 3:
        raise ValueError(f"Argument 'mask' must be 3D; got {mask.ndim} dimensions.")
    ks = np.flatnonzero(mask.any(axis=(1, 2)))
    if ks.size == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty, empty
    k0, k1 = int(ks[0]), int(ks[-1]) + 1
    sub = mask[k0:k1]
    rs = np.flatnonzero(sub.any(axis=(0, 2)))
    cs = np.flatnonzero(sub.any(axis=(0, 1)))
    r0, c0 = int(rs[0]), int(cs[0])
    k, r, c = np.nonzero(sub[:, r0 : int(rs[-1]) + 1, c0 : int(cs[-1]) + 1])
    return k + k0, r + r0, c + c0
