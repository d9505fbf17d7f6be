"""Slice planes of a synthetic series: orientation, positions, tilt, uneven spacing, drops.

Positions and orientation are rounded to what DICOM's DS strings can hold
*before* they are used, so the anatomy is sampled at exactly the voxel
centres a reader will compute from the written headers, and the truth is
computed from the same numbers.

This module is the phantom's own oracle: it does not import ``dicom_io``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydicom.valuerep import format_number_as_ds

__all__ = [
    "StackPlan",
    "ds_round",
    "plan_gaps",
    "plan_stack",
    "plan_thickness",
    "rng_for",
]

FloatArray = npt.NDArray[np.float64]


def rng_for(seed: int, *keys: object) -> np.random.Generator:
    """A random generator for one purpose, independent of every other purpose.

    Parameters
    ----------
    seed:
        The phantom's seed.
    keys:
        What the numbers are for (``"anatomy"``, ``"noise", 3``...); each
        distinct key gives an independent stream, so adding a distractor
        series never changes the main series' noise.
    """
    import zlib

    words = [int(seed) & 0xFFFFFFFF, (int(seed) >> 32) & 0xFFFFFFFF]
    words += [zlib.crc32(repr(k).encode("utf-8")) for k in keys]
    return np.random.default_rng(words)


def ds_round(value: float, decimals: int = 6) -> float:
    """``value`` rounded to ``decimals`` and as it reads back from a DICOM DS string (16 characters)."""
    return float(format_number_as_ds(round(float(value), decimals) + 0.0))


def plan_gaps(
    *, n_slices: int, spacing_mm: float, uneven_spacing_mm: tuple[float, float] | None
) -> FloatArray:
    """Gaps between consecutive planned slices along the normal (mm), length ``n_slices - 1``.

    With ``uneven_spacing_mm = (lower, upper)`` the lower ``n_slices // 2``
    slices are ``lower`` mm apart and the rest ``upper`` mm apart; the step
    between the two blocks is ``(lower + upper) / 2``, so that each slice's
    slab (as thick as its block's spacing, :func:`plan_thickness`) meets the
    next: the plan covers its slab without a hole or an overlap.
    """
    if n_slices < 2:
        raise ValueError("Argument 'n_slices' must be at least 2 to have gaps.")
    if uneven_spacing_mm is None:
        return np.full(n_slices - 1, float(spacing_mm))
    lower, upper = uneven_spacing_mm
    n_lower = n_slices // 2 - 1
    n_upper = n_slices - 2 - n_lower
    return np.array([lower] * n_lower + [(lower + upper) / 2.0] + [upper] * n_upper, dtype=np.float64)


def plan_thickness(
    *, n_slices: int, spacing_mm: float, uneven_spacing_mm: tuple[float, float] | None
) -> FloatArray:
    """Each planned slice's nominal thickness (SliceThickness): its block's spacing, so the slabs tile the plan.

    The phantom's ground-truth volume counts each planned slice's hematoma
    pixels over this thickness (see :mod:`ichpipe.pipeline.synthetic.phantom.truth`).
    """
    if uneven_spacing_mm is None:
        return np.full(n_slices, float(spacing_mm))
    lower, upper = uneven_spacing_mm
    n_lower = n_slices // 2
    return np.array([lower] * n_lower + [upper] * (n_slices - n_lower), dtype=np.float64)


@dataclass(frozen=True)
class StackPlan:
    """The planned slices of one axial series, as they will be written.

    Attributes
    ----------
    rows, columns:
        Matrix size.
    pixel_spacing_mm:
        Square pixel size (as written).
    orientation:
        ImageOrientationPatient as written (row cosines, then column cosines).
    positions:
        ImagePositionPatient of every planned slice as written, shape (n, 3),
        increasing along the normal.
    nominal_thickness_mm:
        SliceThickness written in each planned slice's header.
    tilt_deg:
        The requested signed gantry tilt (GantryDetectorTilt).
    dropped:
        Planned indices whose file is not written.
    duplicated:
        Planned indices written twice.
    """

    rows: int
    columns: int
    pixel_spacing_mm: float
    orientation: tuple[float, float, float, float, float, float]
    positions: FloatArray
    nominal_thickness_mm: FloatArray
    tilt_deg: float
    dropped: tuple[int, ...] = ()
    duplicated: tuple[int, ...] = ()

    @property
    def n_planned(self) -> int:
        """Number of planned slices (including a dropped one)."""
        return int(self.positions.shape[0])

    @property
    def row_direction(self) -> FloatArray:
        """Direction of increasing column index (unit vector, LPS)."""
        v = np.asarray(self.orientation[:3], dtype=np.float64)
        return v / np.linalg.norm(v)

    @property
    def column_direction(self) -> FloatArray:
        """Direction of increasing row index (unit vector, LPS)."""
        v = np.asarray(self.orientation[3:], dtype=np.float64)
        return v / np.linalg.norm(v)

    @property
    def normal(self) -> FloatArray:
        """Slice normal ``row x column``."""
        n = np.cross(self.row_direction, self.column_direction)
        return n / np.linalg.norm(n)

    @property
    def offsets_mm(self) -> FloatArray:
        """Projection of each planned position on the normal."""
        return self.positions @ self.normal

    @property
    def written(self) -> tuple[int, ...]:
        """Planned indices that have (at least) one file, in order along the normal."""
        return tuple(i for i in range(self.n_planned) if i not in self.dropped)

    def voxel_centres(self, index: int) -> FloatArray:
        """Patient coordinates (LPS, mm) of every voxel centre of planned slice ``index``.

        Returns
        -------
        numpy.ndarray
            Shape (rows, columns, 3): centre of pixel (r, c) is
            ``IPP + c * dx * row_direction + r * dy * column_direction``.
        """
        return plane_points(
            origin=self.positions[index],
            row_direction=self.row_direction,
            column_direction=self.column_direction,
            rows=self.rows,
            columns=self.columns,
            spacing_mm=(self.pixel_spacing_mm, self.pixel_spacing_mm),
        )


def plane_points(
    *,
    origin: FloatArray,
    row_direction: FloatArray,
    column_direction: FloatArray,
    rows: int,
    columns: int,
    spacing_mm: tuple[float, float],
) -> FloatArray:
    """Voxel centres of one image plane, shape (rows, columns, 3).

    ``spacing_mm`` is DICOM's PixelSpacing order: (between rows, between columns).
    """
    r = np.arange(rows, dtype=np.float64)[:, None, None] * spacing_mm[0]
    c = np.arange(columns, dtype=np.float64)[None, :, None] * spacing_mm[1]
    return origin[None, None, :] + c * row_direction[None, None, :] + r * column_direction[None, None, :]


def plan_stack(
    *,
    rows: int,
    columns: int,
    pixel_spacing_mm: float,
    gaps_mm: FloatArray,
    tilt_deg: float,
    centre: FloatArray,
    nominal_thickness_mm: FloatArray | None = None,
    dropped: tuple[int, ...] = (),
    duplicated: tuple[int, ...] = (),
) -> StackPlan:
    """Plan an axial (possibly tilted) stack whose middle image is centred on ``centre``.

    Parameters
    ----------
    rows, columns, pixel_spacing_mm:
        Matrix and pixel size.
    gaps_mm:
        Gaps between consecutive slices **along the normal**.
    tilt_deg:
        Signed gantry tilt: orientation row ``(1, 0, 0)``, column
        ``(0, cos t, -sin t)``; the table steps along +z by ``gap / cos t``.
    centre:
        LPS point on which the image centres of the slab are centred.
    nominal_thickness_mm:
        SliceThickness per slice (:func:`plan_thickness`); default: the gap
        before each slice (the first slice: the gap after it).
    dropped, duplicated:
        Planned indices not written / written twice.
    """
    gaps = np.asarray(gaps_mm, dtype=np.float64)
    t = math.radians(tilt_deg)
    # A zero tilt must write exact 0/1 cosines, not 6e-17.
    cos_t, sin_t = (1.0, 0.0) if tilt_deg == 0 else (math.cos(t), math.sin(t))
    orientation_raw = (1.0, 0.0, 0.0, 0.0, cos_t, -sin_t)
    orientation = tuple(ds_round(v, 9) for v in orientation_raw)
    row = np.asarray(orientation[:3])
    col = np.asarray(orientation[3:])
    offsets = np.concatenate([[0.0], np.cumsum(gaps)])
    offsets -= (offsets[0] + offsets[-1]) / 2.0
    centres = np.asarray(centre, dtype=np.float64)[None, :] + np.outer(offsets / cos_t, [0.0, 0.0, 1.0])
    half_w = (columns - 1) / 2.0 * pixel_spacing_mm
    half_h = (rows - 1) / 2.0 * pixel_spacing_mm
    raw_positions = centres - half_w * row[None, :] - half_h * col[None, :]
    # A tilted table moves along z only: x and y of every position are the same.
    positions = np.vectorize(ds_round)(raw_positions)
    if nominal_thickness_mm is None:
        # Each slice's block spacing: the gap before it (the first slice: the gap after it).
        nominal = np.concatenate([gaps[:1], gaps])
    else:
        nominal = np.asarray(nominal_thickness_mm, dtype=np.float64)
    return StackPlan(
        rows=rows,
        columns=columns,
        pixel_spacing_mm=ds_round(pixel_spacing_mm),
        orientation=(orientation[0], orientation[1], orientation[2], orientation[3], orientation[4], orientation[5]),
        positions=positions,
        nominal_thickness_mm=nominal,
        tilt_deg=float(tilt_deg),
        dropped=tuple(dropped),
        duplicated=tuple(duplicated),
    )
