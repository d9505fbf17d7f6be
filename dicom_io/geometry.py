"""Slice geometry: sorting along the normal, spacing, gantry tilt, gaps, thickness.

The rules (``DESIGN.md``, "Geometry rules"):

* the slice normal is ``n = row x col`` from ImageOrientationPatient;
* slices are sorted by the projection of ImagePositionPatient on ``n``;
* slice spacing is measured **along the normal**, never as the distance
  between positions (with gantry tilt that distance is longer by 1/cos(tilt));
* each slice's own thickness is half the distance to each neighbour along the
  normal, so a voxel's volume is pixel area x that thickness and uneven
  protocols and gaps are measured without resampling;
* a gap wider than ``gap_factor`` x the local spacing counts as missing slices;
  the stretch a missing slice stood for is shared by its two neighbours (half
  the gap each);
* an end slice has one neighbour; beyond it, it stands for half its *local*
  spacing (the spacing of the slices around it, gaps left out), which mirrors
  its neighbour unless that neighbour lies across a gap. So the thicknesses
  tile the slab the acquisition covered, from half a spacing below the first
  slice to half a spacing above the last, even when the slice next to an end
  is missing (mirroring the gap would reach half a gap past the scan).

Why the local spacing and not the header's SliceThickness for that outer half:
SliceThickness is the reconstructed width, which exceeds the spacing in an
overlapping reconstruction (5 mm slices every 2.5 mm), so using it would make
an end slice thicker next to a gap than in the same stack without one; the
local spacing gives the same end slice the same thickness with or without a
missing neighbour. A two-protocol stack (GE's 4 mm / 7 mm) changes spacing in
blocks of many slices, so its end slices sit in a block whose spacing is their
own and nothing changes for it. A lone end slice at a very different spacing
cannot be told from a dropped neighbour by the positions: it is reported as a
gap (with the warning) and measured as one.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ichpipe.errors import GeometryError

__all__ = [
    "MAX_PIXEL_SPACING_MM",
    "GeometryConfig",
    "VolumeGeometry",
    "compute_geometry",
    "slice_normal",
    "slice_thickness_from_offsets",
]

FloatArray = npt.NDArray[np.float64]

#: Largest PixelSpacing (mm) accepted; a CT pixel is well under 5 mm, so larger values are corrupt headers.
MAX_PIXEL_SPACING_MM = 100.0


@dataclass(frozen=True)
class GeometryConfig:
    """Tolerances used when assembling a series.

    Parameters
    ----------
    orientation_tolerance:
        Largest difference between two slices' direction cosines that still
        counts as the same orientation; larger splits the series.
    orthogonality_tolerance:
        Largest |row . col| accepted for ImageOrientationPatient.
    duplicate_tolerance_mm:
        Two slices closer than this along the normal are duplicates; one is kept.
    gap_factor:
        A gap wider than this factor x the local spacing is reported as missing
        slices (and in warnings).
    uneven_tolerance_mm:
        Spacings differing by more than this make a series non-uniform.
    padding_hu:
        HU written where PixelPaddingValue marks padding (outside the scan field).
    """

    orientation_tolerance: float = 1e-3
    orthogonality_tolerance: float = 1e-3
    duplicate_tolerance_mm: float = 0.01
    gap_factor: float = 1.5
    uneven_tolerance_mm: float = 0.05
    padding_hu: float = -1024.0

    def __post_init__(self) -> None:
        if self.gap_factor <= 1.0:
            raise ValueError(f"Argument 'gap_factor' must be greater than 1; got {self.gap_factor}.")
        for name in ("orientation_tolerance", "orthogonality_tolerance", "duplicate_tolerance_mm",
                     "uneven_tolerance_mm"):
            if getattr(self, name) < 0:
                raise ValueError(f"Argument '{name}' must not be negative.")


def slice_normal(orientation: Sequence[float], *, tolerance: float = 1e-3) -> FloatArray:
    """Return the unit normal ``row x col`` of an ImageOrientationPatient value.

    Raises
    ------
    GeometryError
        If the value does not hold six finite numbers describing two
        orthogonal unit vectors (within ``tolerance``).
    """
    iop = np.asarray(orientation, dtype=np.float64)
    if iop.shape != (6,) or not np.all(np.isfinite(iop)):
        raise GeometryError(f"ImageOrientationPatient must hold 6 finite numbers; got {list(orientation)}.")
    row, col = iop[:3], iop[3:]
    nr, nc = np.linalg.norm(row), np.linalg.norm(col)
    if abs(nr - 1) > 0.01 or abs(nc - 1) > 0.01:
        raise GeometryError(f"ImageOrientationPatient direction cosines are not unit vectors: {list(orientation)}.")
    row, col = row / nr, col / nc
    if abs(float(row @ col)) > tolerance:
        raise GeometryError(f"ImageOrientationPatient row and column are not orthogonal: {list(orientation)}.")
    n = np.cross(row, col)
    return n / np.linalg.norm(n)


def slice_thickness_from_offsets(
    offsets: FloatArray, *, single_slice_mm: float | None = None, gap_factor: float = 1.5
) -> FloatArray:
    """Each slice's own thickness along the normal (see the module docstring for the rules).

    Inside the stack: half the distance to each neighbour. An end slice: half
    the distance to its only neighbour, plus half its local spacing outward,
    which is that same distance unless the neighbour lies across a gap (a gap
    wider than ``gap_factor`` x the spacing around it). A uniform stack of
    ``n`` slices ``s`` apart gets ``n`` x ``s``, with or without missing slices.

    Parameters
    ----------
    offsets:
        Sorted positions along the normal (mm), shape (n,).
    single_slice_mm:
        Thickness to use when there is only one slice (SliceThickness).
    gap_factor:
        A step wider than this factor x the local spacing is a gap (missing
        slices), as in :class:`GeometryConfig`.

    Raises
    ------
    GeometryError
        If there is only one slice and no usable ``single_slice_mm``.
    ValueError
        If ``gap_factor`` is not greater than 1.

    Examples
    --------
    Slice 1 of a 5 mm stack is missing; slice 0 keeps 2.5 mm below itself:

    >>> slice_thickness_from_offsets(np.array([0.0, 10.0, 15.0, 20.0])).tolist()
    [7.5, 7.5, 5.0, 5.0]
    """
    if not gap_factor > 1.0:
        raise ValueError(f"Argument 'gap_factor' must be greater than 1; got {gap_factor}.")
    offsets = np.asarray(offsets, dtype=np.float64)
    n = offsets.shape[0]
    if n == 0:
        return np.zeros(0)
    if n == 1:
        if single_slice_mm is None or not (math.isfinite(single_slice_mm) and single_slice_mm > 0):
            raise GeometryError("A single-slice series has no spacing and no usable SliceThickness.")
        return np.array([float(single_slice_mm)])
    gaps = np.diff(offsets)
    half = gaps / 2.0
    thickness = np.empty(n)
    thickness[1:-1] = half[:-1] + half[1:]
    thickness[0] = half[0] + _spacing_without_gap(gaps, 0, gap_factor) / 2.0
    thickness[-1] = half[-1] + _spacing_without_gap(gaps, gaps.size - 1, gap_factor) / 2.0
    return thickness


@dataclass(frozen=True)
class VolumeGeometry:
    """Geometry of an assembled series, slices in sorted order along the normal.

    Attributes
    ----------
    rows, columns:
        Matrix size.
    pixel_spacing_mm:
        (row spacing, column spacing): distance between rows, between columns.
    row_direction, column_direction, normal:
        Unit vectors in patient coordinates (LPS), ``normal = row x column``.
    positions:
        ImagePositionPatient of each slice, shape (n, 3).
    offsets_mm:
        Projection of each position on the normal, increasing.
    slice_thickness_mm:
        Each slice's own thickness along the normal (see module docstring).
    slice_spacing_mm:
        Median spacing between consecutive slices along the normal.
    gantry_tilt_deg:
        Angle between the normal and the line through the positions; signed as
        the header's GantryDetectorTilt where present.
    uniform_spacing:
        Whether every spacing equals the median within tolerance.
    missing_slices:
        Slices estimated missing from gaps wider than gap_factor x local spacing.
    warnings:
        Human-readable notes (uneven spacing, gaps, tilt, duplicates...).
    """

    rows: int
    columns: int
    pixel_spacing_mm: tuple[float, float]
    row_direction: FloatArray
    column_direction: FloatArray
    normal: FloatArray
    positions: FloatArray
    offsets_mm: FloatArray
    slice_thickness_mm: FloatArray
    slice_spacing_mm: float
    gantry_tilt_deg: float
    uniform_spacing: bool
    missing_slices: int
    warnings: tuple[str, ...]

    @property
    def n_slices(self) -> int:
        """Number of slices."""
        return int(self.offsets_mm.shape[0])

    @property
    def pixel_area_mm2(self) -> float:
        """Area of one pixel in mm^2."""
        return float(self.pixel_spacing_mm[0] * self.pixel_spacing_mm[1])

    @property
    def voxel_volumes_ml(self) -> FloatArray:
        """Volume of one voxel of each slice, in mL (pixel area x thickness / 1000)."""
        return self.pixel_area_mm2 * self.slice_thickness_mm / 1000.0

    def affine_lps(self) -> FloatArray:
        """4x4 voxel (column, row, slice) -> LPS mm matrix of the first slice's frame.

        The slice axis uses the normal x median spacing; exact per-slice
        positions are in ``positions`` (use them for non-uniform stacks).
        """
        a = np.eye(4)
        a[:3, 0] = self.row_direction * self.pixel_spacing_mm[1]
        a[:3, 1] = self.column_direction * self.pixel_spacing_mm[0]
        a[:3, 2] = self.normal * self.slice_spacing_mm
        a[:3, 3] = self.positions[0]
        return a

    def to_dict(self) -> dict[str, object]:
        """The contract's geometry fields as JSON-ready values."""
        return {
            "n_slices": self.n_slices,
            "rows": self.rows,
            "columns": self.columns,
            "pixel_spacing_mm": [round(float(v), 6) for v in self.pixel_spacing_mm],
            "slice_spacing_mm": round(float(self.slice_spacing_mm), 4),
            "gantry_tilt_deg": round(float(self.gantry_tilt_deg), 3),
            "uniform_spacing": bool(self.uniform_spacing),
            "missing_slices": int(self.missing_slices),
            "slice_thickness_mm": [round(float(t), 4) for t in self.slice_thickness_mm],
            "warnings": list(self.warnings),
        }


def _gantry_tilt(positions: FloatArray, normal: FloatArray, header_tilt: float | None) -> float:
    if positions.shape[0] < 2:
        # one slice: only the header can say; a value no gantry tilts to (inf, nan, >= 90 deg) says nothing
        if header_tilt is None or not math.isfinite(header_tilt) or abs(header_tilt) >= 90.0:
            return 0.0
        return float(header_tilt)
    line = positions[-1] - positions[0]
    length = float(np.linalg.norm(line))
    if length == 0:
        return 0.0
    cos = min(1.0, abs(float(line @ normal)) / length)
    tilt = math.degrees(math.acos(cos))
    if tilt < 0.01:
        return 0.0
    if header_tilt is not None and header_tilt < 0:
        return -tilt
    return tilt


def _local_spacing(gaps: FloatArray, i: int, radius: int = 2) -> float:
    """Median of the gaps around gap ``i`` (excluding it), or the global median."""
    idx = [j for j in range(max(0, i - radius), min(len(gaps), i + radius + 1)) if j != i]
    if not idx:
        return float(np.median(gaps))
    return float(np.median(gaps[idx]))


def _is_gap(gaps: FloatArray, i: int, gap_factor: float) -> bool:
    """Whether step ``i`` is wider than ``gap_factor`` x the spacing around it (slices are missing there)."""
    return bool(gaps[i] > gap_factor * _local_spacing(gaps, i))


def _spacing_without_gap(gaps: FloatArray, i: int, gap_factor: float) -> float:
    """Step ``i``, or the local spacing around it where step ``i`` is a gap."""
    return _local_spacing(gaps, i) if _is_gap(gaps, i, gap_factor) else float(gaps[i])


def compute_geometry(
    *,
    orientation: Sequence[float],
    positions: FloatArray,
    pixel_spacing: Sequence[float],
    rows: int,
    columns: int,
    header_tilt_deg: float | None = None,
    slice_thickness_mm: float | None = None,
    config: GeometryConfig | None = None,
) -> VolumeGeometry:
    """Compute the geometry of slices that are **already sorted** along the normal.

    Parameters
    ----------
    orientation:
        ImageOrientationPatient (six direction cosines, shared by all slices).
    positions:
        ImagePositionPatient of each slice, shape (n, 3), sorted along the normal
        with duplicates removed.
    pixel_spacing:
        PixelSpacing (row spacing, column spacing) in mm.
    rows, columns:
        Matrix size.
    header_tilt_deg:
        GantryDetectorTilt from the header (used only for the sign).
    slice_thickness_mm:
        SliceThickness from the header (used only for a single-slice series).
    config:
        Tolerances; defaults to :class:`GeometryConfig`.
    """
    cfg = config or GeometryConfig()
    spacing = tuple(float(v) for v in pixel_spacing)
    if len(spacing) != 2 or not all(math.isfinite(v) and 0 < v <= MAX_PIXEL_SPACING_MM for v in spacing):
        raise GeometryError(
            f"PixelSpacing must be two positive numbers of at most {MAX_PIXEL_SPACING_MM:g} mm;"
            f" got {list(pixel_spacing)}."
        )
    normal = slice_normal(orientation, tolerance=cfg.orthogonality_tolerance)
    iop = np.asarray(orientation, dtype=np.float64)
    row_dir = iop[:3] / np.linalg.norm(iop[:3])
    col_dir = iop[3:] / np.linalg.norm(iop[3:])
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    if not np.all(np.isfinite(pos)):
        raise GeometryError("ImagePositionPatient holds a non-finite value.")
    offsets = pos @ normal
    if np.any(np.diff(offsets) <= 0):
        raise GeometryError("Slices are not strictly increasing along the normal (sort and de-duplicate first).")
    warnings: list[str] = []
    thickness = slice_thickness_from_offsets(offsets, single_slice_mm=slice_thickness_mm, gap_factor=cfg.gap_factor)
    gaps = np.diff(offsets)
    missing = 0
    uniform = True
    if gaps.size:
        median = float(np.median(gaps))
        uniform = bool(np.all(np.abs(gaps - median) <= cfg.uneven_tolerance_mm))
        if not uniform:
            counts = Counter(round(float(g), 2) for g in gaps)
            parts = ", ".join(f"{c} of {g:g} mm" for g, c in sorted(counts.items(), key=lambda kv: kv[0]))
            wide = int(np.sum(gaps > cfg.gap_factor * median))
            note = f"uneven slice spacing along the normal: {parts}"
            if wide:
                note += f"; {wide} gap(s) wider than {cfg.gap_factor:g}x the median {median:g} mm"
            warnings.append(note)
        for i, gap in enumerate(gaps):
            if _is_gap(gaps, i, cfg.gap_factor):
                local = _local_spacing(gaps, i)
                n_missing = max(1, round(gap / local) - 1)
                missing += n_missing
                warnings.append(
                    f"gap of {gap:.2f} mm between slices {i} and {i + 1} (local spacing {local:.2f} mm):"
                    f" about {n_missing} slice(s) missing; volume there is interpolated by the"
                    " neighbours' half-gaps"
                )
    else:
        median = float(thickness[0])
    tilt = _gantry_tilt(pos, normal, header_tilt_deg)
    if abs(tilt) >= 0.01:
        table = median / math.cos(math.radians(tilt))
        warnings.append(
            f"gantry tilt {tilt:+.2f} deg: spacing {median:.3f} mm along the normal"
            f" (table step {table:.3f} mm); volumes use the spacing along the normal"
        )
    return VolumeGeometry(
        rows=int(rows),
        columns=int(columns),
        pixel_spacing_mm=(spacing[0], spacing[1]),
        row_direction=row_dir,
        column_direction=col_dir,
        normal=normal,
        positions=pos,
        offsets_mm=offsets,
        slice_thickness_mm=thickness,
        slice_spacing_mm=median,
        gantry_tilt_deg=tilt,
        uniform_spacing=uniform,
        missing_slices=missing,
        warnings=tuple(warnings),
    )
