"""Isotropic resampling of a CT volume in its slice frame, and the way back to the DICOM grid.

A network trained at 1 mm isotropic (BLAST-CT v1) needs the volume resampled, and its
classes must come back to the native voxels, where ichpipe measures volumes exactly
(:mod:`ichpipe.pipeline.measure.volume`, each slice with its own thickness):

1. **To 1 mm** in the slice frame: in-plane bilinear per native slice (each slice with its own
   in-plane offset, so a gantry-tilted stack is de-sheared), then linear along the slice normal
   between the two native slices that bracket each 1 mm plane (uneven spacing honoured). Outside a
   slice's field of view: the volume's minimum (as BLAST-CT).
2. **Orientation** flips to BLAST-CT's "standard radiology view" (slices ascending to superior, rows
   to posterior, columns to the patient's left) are recorded in :class:`NativeGrid` ``flip``.
3. **Back**: probabilities interpolated trilinearly at every native voxel centre and their arg-max,
   or the nearest 1 mm label.

No torch here: NumPy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ichpipe.dicom_io.geometry import VolumeGeometry

__all__ = ["NativeGrid", "grid_from_geometry", "isotropic_shape", "resample_to_isotropic", "to_native_grid"]

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class NativeGrid:
    """Where the voxels of a ``(slices, rows, columns)`` volume lie, in the slice frame (mm).

    Attributes
    ----------
    z_mm
        position of each slice along the slice normal, strictly increasing.
    pixel_spacing_mm
        (row spacing, column spacing): distance between rows, between columns.
    shape
        (slices, rows, columns).
    shift_mm
        (slices, 2) in-plane offset of each slice's first pixel along the column
        direction (the rows axis) and the row direction (the columns axis); zeros for an
        untilted stack. A gantry tilt shows as offsets growing along the column direction.
    flip
        flips (slices, rows, columns) to BLAST-CT's orientation (superior, posterior, left).
    """

    z_mm: npt.NDArray[np.floating[Any]]
    pixel_spacing_mm: tuple[float, float]
    shape: tuple[int, int, int]
    shift_mm: npt.NDArray[np.floating[Any]] = field(default_factory=lambda: np.zeros((0, 2)))
    flip: tuple[bool, bool, bool] = (False, False, False)

    def __post_init__(self) -> None:
        z = np.asarray(self.z_mm, dtype=np.float64)
        if z.ndim != 1 or z.size != self.shape[0] or z.size < 1:
            raise ValueError(f"Argument 'z_mm' must hold one position per slice ({self.shape[0]}); got {z.shape}.")
        if z.size > 1 and np.any(np.diff(z) <= 0):
            raise ValueError("Argument 'z_mm' must be strictly increasing (slices sorted along the normal).")
        if len(self.pixel_spacing_mm) != 2 or min(self.pixel_spacing_mm) <= 0:
            raise ValueError(f"Argument 'pixel_spacing_mm' must be two positive numbers; got {self.pixel_spacing_mm}.")
        shift = np.asarray(self.shift_mm, dtype=np.float64)
        if shift.size == 0:
            shift = np.zeros((z.size, 2))
        if shift.shape != (z.size, 2):
            raise ValueError(f"Argument 'shift_mm' must have shape ({z.size}, 2); got {shift.shape}.")
        object.__setattr__(self, "z_mm", z)
        object.__setattr__(self, "shift_mm", shift)


def grid_from_geometry(geometry: VolumeGeometry, *, deshear: bool = True) -> NativeGrid:
    """Native grid of an assembled series from its geometry (``dicom_io`` ``VolumeGeometry``).

    Parameters
    ----------
    geometry
        the assembled series' geometry (slices sorted along the normal).
    deshear
        keep each slice's in-plane offset (true anatomy of a tilted stack); False
        stacks the slices as if untilted (sheared anatomy, as a plain series reader).

    Returns
    -------
    NativeGrid
        The grid, with the flips to BLAST-CT's orientation.

    Raises
    ------
    ValueError
        the series is not axial (slice normal closer to another patient axis).
    """
    positions = np.asarray(geometry.positions, dtype=np.float64)
    row_dir = np.asarray(geometry.row_direction, dtype=np.float64)
    col_dir = np.asarray(geometry.column_direction, dtype=np.float64)
    normal = np.asarray(geometry.normal, dtype=np.float64)
    axes = [int(np.argmax(np.abs(v))) for v in (normal, col_dir, row_dir)]
    if axes != [2, 1, 0]:
        raise ValueError(
            "Argument 'geometry' is not an axial series (slice normal, column and row directions "
            f"closest to patient axes {axes}, not [2, 1, 0]); BLAST-CT needs axial slices."
        )
    delta = positions - positions[0]
    shift = np.stack([delta @ col_dir, delta @ row_dir], axis=1) if deshear else np.zeros((len(positions), 2))
    flip = (bool(normal[2] < 0), bool(col_dir[1] < 0), bool(row_dir[0] < 0))
    return NativeGrid(z_mm=np.asarray(geometry.offsets_mm, dtype=np.float64),
                      pixel_spacing_mm=(float(geometry.pixel_spacing_mm[0]), float(geometry.pixel_spacing_mm[1])),
                      shape=(len(positions), int(geometry.rows), int(geometry.columns)), shift_mm=shift, flip=flip)


def _interp_matrix(coords: npt.NDArray[np.float64], n: int, *, tol: float = 0.5) -> FloatArray:
    """Dense (len(coords), n) linear-interpolation weights at fractional indices.

    Points within ``tol`` (half a voxel, as ITK) beyond the first or last voxel centre take the
    border value; rows of points further out are 0.
    """
    inside = (coords >= -tol) & (coords <= n - 1 + tol)
    c = np.clip(coords, 0.0, n - 1.0)
    w = np.zeros((coords.size, n), dtype=np.float32)
    if n == 1:
        w[:, 0] = 1.0
    else:
        lo = np.minimum(np.floor(c).astype(np.int64), n - 2)
        frac = (c - lo).astype(np.float32)
        idx = np.arange(coords.size)
        w[idx, lo] = 1.0 - frac
        w[idx, lo + 1] += frac
    w[~inside] = 0.0
    return w


@dataclass(frozen=True)
class _Isotropic:
    """A 1 mm grid in the slice frame: origin (z, row, col) in mm and shape."""

    origin_mm: tuple[float, float, float]
    shape: tuple[int, int, int]
    spacing_mm: float


def _isotropic_grid(grid: NativeGrid, spacing: float) -> _Isotropic:
    dr, dc = grid.pixel_spacing_mm
    _, rows, cols = grid.shape
    z0, z1 = grid.z_mm[0], grid.z_mm[-1]
    r0, r1 = grid.shift_mm[:, 0].min(), grid.shift_mm[:, 0].max() + (rows - 1) * dr
    c0, c1 = grid.shift_mm[:, 1].min(), grid.shift_mm[:, 1].max() + (cols - 1) * dc
    # as BLAST-CT's rescale: int(round(extent / spacing + 1)) points from the first voxel centre
    shape = tuple(round(float((b - a) / spacing + 1)) for a, b in ((z0, z1), (r0, r1), (c0, c1)))
    return _Isotropic((float(z0), float(r0), float(c0)), (shape[0], shape[1], shape[2]), spacing)


def resample_to_isotropic(hu: npt.ArrayLike, grid: NativeGrid, *, spacing_mm: float = 1.0,
                          fill_hu: float | None = None) -> FloatArray:
    """Resample a native volume to an isotropic grid in the slice frame (not yet flipped).

    Parameters
    ----------
    hu
        (slices, rows, columns) HU.
    grid
        where its voxels lie.
    spacing_mm
        isotropic spacing of the result.
    fill_hu
        value outside a slice's field of view (default: the volume's minimum).

    Returns
    -------
    numpy.ndarray
        float32 (Z, Y, X) volume; voxel (0, 0, 0) at the first slice's position along the normal
        and the smallest in-plane offsets.

    Examples
    --------
    >>> g = NativeGrid(z_mm=np.array([0.0, 2.0]), pixel_spacing_mm=(0.5, 0.5), shape=(2, 3, 3))
    >>> resample_to_isotropic(np.stack([np.zeros((3, 3)), np.full((3, 3), 10.0)]), g)[:, 0, 0].tolist()
    [0.0, 5.0, 10.0]
    """
    vol = np.asarray(hu, dtype=np.float32)
    if vol.shape != grid.shape:
        raise ValueError(f"Argument 'hu' has shape {vol.shape} but the grid describes {grid.shape}.")
    if spacing_mm <= 0:
        raise ValueError(f"Argument 'spacing_mm' must be positive; got {spacing_mm}.")
    fill = float(vol.min()) if fill_hu is None else float(fill_hu)
    iso = _isotropic_grid(grid, spacing_mm)
    dr, dc = grid.pixel_spacing_mm
    _, rows, cols = grid.shape
    tr = iso.origin_mm[1] + spacing_mm * np.arange(iso.shape[1])
    tc = iso.origin_mm[2] + spacing_mm * np.arange(iso.shape[2])
    planes = np.empty((grid.shape[0], iso.shape[1], iso.shape[2]), dtype=np.float32)
    for k in range(grid.shape[0]):
        wr = _interp_matrix((tr - grid.shift_mm[k, 0]) / dr, rows)
        wc = _interp_matrix((tc - grid.shift_mm[k, 1]) / dc, cols)
        covered = np.outer(wr.sum(axis=1), wc.sum(axis=1))
        planes[k] = wr @ vol[k] @ wc.T + fill * (1.0 - covered)
    tz = iso.origin_mm[0] + spacing_mm * np.arange(iso.shape[0])
    fz = np.interp(tz, grid.z_mm, np.arange(grid.shape[0], dtype=np.float64))
    lo = np.minimum(np.floor(fz).astype(np.int64), max(grid.shape[0] - 2, 0))
    hi = np.minimum(lo + 1, grid.shape[0] - 1)
    frac = (fz - lo).astype(np.float32)[:, None, None]
    return ((1.0 - frac) * planes[lo] + frac * planes[hi]).astype(np.float32)


def to_native_grid(
    prob: FloatArray, grid: NativeGrid, *, spacing_mm: float = 1.0,
    mode: Literal["probability", "nearest"] = "probability", keep_probabilities: bool = True,
) -> tuple[npt.NDArray[np.uint8], FloatArray | None]:
    """Bring isotropic class probabilities (C, Z, Y, X), slice frame, back to the native grid.

    Parameters
    ----------
    prob
        probabilities on the grid made by :func:`resample_to_isotropic` (not flipped).
    grid
        the native grid.
    spacing_mm
        spacing of ``prob``.
    mode
        "probability" interpolates the probabilities trilinearly at each native voxel
        centre and takes the arg-max; "nearest" takes the label of the nearest 1 mm voxel
        (BLAST-CT's own way back).
    keep_probabilities
        return the native-grid probabilities ("probability" mode); False saves their memory
        (5 float32 volumes of the native grid).

    Returns
    -------
    tuple of (numpy.ndarray, numpy.ndarray or None)
        (labels uint8 (slices, rows, columns), native probabilities float32 (C, slices, rows,
        columns) in "probability" mode, else None).
    """
    if mode not in ("probability", "nearest"):
        raise ValueError(f"Argument 'mode' must be 'probability' or 'nearest'; got {mode!r}.")
    iso = _isotropic_grid(grid, spacing_mm)
    if tuple(prob.shape[1:]) != iso.shape:
        raise ValueError(f"Argument 'prob' has spatial shape {tuple(prob.shape[1:])}; the grid needs {iso.shape}.")
    n, rows, cols = grid.shape
    dr, dc = grid.pixel_spacing_mm
    labels = np.empty(grid.shape, dtype=np.uint8)
    native = np.empty((prob.shape[0], *grid.shape), dtype=np.float32) \
        if mode == "probability" and keep_probabilities else None
    hard = np.argmax(prob, axis=0).astype(np.uint8) if mode == "nearest" else None
    for k in range(n):
        fz = (grid.z_mm[k] - iso.origin_mm[0]) / spacing_mm
        fr = (grid.shift_mm[k, 0] + dr * np.arange(rows) - iso.origin_mm[1]) / spacing_mm
        fc = (grid.shift_mm[k, 1] + dc * np.arange(cols) - iso.origin_mm[2]) / spacing_mm
        if hard is not None:
            iz = min(max(round(float(fz)), 0), iso.shape[0] - 1)
            ir = np.clip(np.rint(fr).astype(np.int64), 0, iso.shape[1] - 1)
            ic = np.clip(np.rint(fc).astype(np.int64), 0, iso.shape[2] - 1)
            labels[k] = hard[iz][np.ix_(ir, ic)]
            continue
        z = float(np.clip(fz, 0, iso.shape[0] - 1))
        lo = min(math.floor(z), max(iso.shape[0] - 2, 0))
        hi = min(lo + 1, iso.shape[0] - 1)
        plane = (1.0 - (z - lo)) * prob[:, lo] + (z - lo) * prob[:, hi]
        wr = _interp_matrix(np.clip(fr, 0, iso.shape[1] - 1), iso.shape[1])
        wc = _interp_matrix(np.clip(fc, 0, iso.shape[2] - 1), iso.shape[2])
        p = np.einsum("ry,cyx,kx->crk", wr, plane, wc, optimize=True)
        if native is not None:
            native[:, k] = p
        labels[k] = np.argmax(p, axis=0)
    return labels, native



def isotropic_shape(grid: NativeGrid, *, spacing_mm: float = 1.0) -> tuple[int, int, int]:
    """Shape of the isotropic grid :func:`resample_to_isotropic` makes for ``grid``."""
    return _isotropic_grid(grid, spacing_mm).shape
