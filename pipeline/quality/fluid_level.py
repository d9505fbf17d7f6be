"""A horizontal fluid level at the top of the blood (flag ``fluid_level``).

A bleed that does not clot (a patient on anticoagulants, a clotting disorder) separates: the cells
settle to the dependent part, dense, and a layer of serum lies above them, near or under brain
density, with a straight, horizontal level between the two. Both are the haematoma, and a
reference drawn by people takes in both; the networks and the threshold baseline find the dense
part only. On phantom bleeds whose upper half was set to 30 HU (``MODEL_CARD.md``, "A fluid level
at the top of the blood") 32.6 mL read 16.8 and 46.6 read 24.2, with no flag.

What is looked for is the level itself. The direction of gravity comes from the header's Patient
Position (supine, prone or decubitus; supine when it is missing) and the image orientation; on each
slice, for each piece of the segmented blood of at least ``min_piece_mm2``, the piece's upper edge
(its highest pixel in each column) is read, and

1. its most common height, within ``_FLAT_TOL_MM`` (one pixel of a 512 matrix; none on coarser
   pixels, where a round top is flat to the pixel), along the longest run of columns (a gap of one
   column allowed) is the candidate level, kept when the run is at least ``min_chord_mm`` long and at
   least ``min_width_share`` of the piece's width ``depth_mm`` below it (a round top, even a large
   one, is much narrower than the piece a few mm lower; a level cuts the piece where its walls run
   down),
2. the tissue ``band_mm`` above the level along the run has a median of ``above_hu`` (20-45 HU:
   serum; the CSF above blood layering in a ventricle is darker) and the blood ``band_mm`` below
   it is at least ``min_step_hu`` denser.

Levels at the same height (within ``height_tol_mm`` in patient space) are grouped across slices;
the flag is raised when a group spans at least two slices and its plane (each slice's run times
its thickness) covers ``min_area_mm2``. The check says the volume may be too low; it adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe.dicom_io.geometry import VolumeGeometry
from ichpipe.pipeline.quality.flags import QualityFlag, slice_range_text

__all__ = ["FluidLevel", "check_fluid_level", "find_fluid_level", "gravity_direction"]

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.floating]

#: Gravity in patient space (LPS: +x left, +y posterior) for each DICOM Patient Position's lying part.
_GRAVITY = {"S": (0.0, 1.0, 0.0), "P": (0.0, -1.0, 0.0), "DR": (-1.0, 0.0, 0.0), "DL": (1.0, 0.0, 0.0)}
_MIN_ALIGNMENT = 0.9  # gravity must lie within ~25 deg of an image axis
_FLAT_TOL_MM = 0.5  # a flat edge's rows may differ by this (whole pixels)


@dataclass(frozen=True)
class LevelOnSlice:
    """A flat upper edge found on one slice."""

    slice: int
    height_mm: float
    chord_mm: float
    area_mm2: float
    above_hu: float
    below_hu: float


@dataclass(frozen=True)
class FluidLevel:
    """The largest group of flat upper edges at one height.

    Attributes
    ----------
    area_mm2:
        The level's plane: each slice's flat run times that slice's thickness (0 when none).
    slices:
        The slices (volume order) of the group.
    above_hu, below_hu:
        Median HU above and below the level, over the group (``None`` when none).
    gravity:
        Where gravity was taken from: ``"supine"``, ``"prone"``, ``"decubitus right"``, ``"decubitus left"``,
        ``"supine (assumed)"``, or ``"not along an image axis"`` (nothing was looked for).
    """

    area_mm2: float
    slices: tuple[int, ...]
    above_hu: float | None
    below_hu: float | None
    gravity: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"area_mm2": round(self.area_mm2, 1), "slices": list(self.slices), "above_hu": self.above_hu,
                "below_hu": self.below_hu, "gravity": self.gravity}


def gravity_direction(patient_position: str | None) -> tuple[npt.NDArray[np.float64], str]:
    """Gravity in patient space (LPS) for a DICOM Patient Position, and its name.

    >>> gravity_direction("FFP")[1], gravity_direction(None)[1]
    ('prone', 'supine (assumed)')
    """
    text = (patient_position or "").strip().upper()
    lying = text[2:] if text[:2] in ("HF", "FF") else ""
    names = {"S": "supine", "P": "prone", "DR": "decubitus right", "DL": "decubitus left"}
    if lying in _GRAVITY:
        return np.array(_GRAVITY[lying]), names[lying]
    return np.array(_GRAVITY["S"]), "supine (assumed)"


def find_fluid_level(
    mask: BoolArray,
    hu: FloatArray,
    geometry: VolumeGeometry,
    *,
    patient_position: str | None = None,
    min_piece_mm2: float = 20.0,
    min_chord_mm: float = 8.0,
    min_width_share: float = 0.75,
    depth_mm: float = 4.0,
    band_mm: float = 3.0,
    above_hu: tuple[float, float] = (20.0, 45.0),
    min_step_hu: float = 20.0,
    height_tol_mm: float = 1.0,
) -> FluidLevel:
    """Find the largest horizontal level at the top of the segmented blood.

    Parameters
    ----------
    mask:
        The segmented blood (slices, rows, columns).
    hu:
        HU volume, the same shape.
    geometry:
        The volume's geometry (orientation, positions, spacing, thickness).
    patient_position:
        DICOM Patient Position (``HFS``, ``FFP``, ``HFDR`` ...); ``None``: supine assumed.
    min_piece_mm2, min_chord_mm, min_width_share, depth_mm, band_mm, above_hu, min_step_hu, height_tol_mm:
        See :class:`~ichpipe.pipeline.config.quality_artifact_config.FluidLevelConfig`.

    Returns
    -------
    FluidLevel
        The largest group (area 0 and no slices when none).
    """
    if mask.shape != hu.shape:
        raise ValueError(f"Argument 'hu' must have the shape of 'mask' {mask.shape}; got {hu.shape}.")
    gravity, named = gravity_direction(patient_position)
    down_rows = float(np.dot(geometry.column_direction, gravity))  # moving down the rows, along gravity
    down_columns = float(np.dot(geometry.row_direction, gravity))
    if max(abs(down_rows), abs(down_columns)) < _MIN_ALIGNMENT:
        return FluidLevel(0.0, (), None, None, "not along an image axis")
    by_rows = abs(down_rows) >= abs(down_columns)
    sign = down_rows if by_rows else down_columns
    spacing = geometry.pixel_spacing_mm
    # (along gravity, across) spacing, and each slice turned so that gravity points down its rows
    step, across = (spacing[0], spacing[1]) if by_rows else (spacing[1], spacing[0])
    down = np.asarray(geometry.column_direction if by_rows else geometry.row_direction, dtype=np.float64) * step
    found: list[LevelOnSlice] = []
    for z in np.flatnonzero(mask.any(axis=(1, 2))):
        plane, values = (mask[z], hu[z]) if by_rows else (mask[z].T, hu[z].T)
        if sign < 0:
            plane, values = plane[::-1], values[::-1]
        for level in _levels_on_slice(np.asarray(plane), np.asarray(values, dtype=np.float64), (step, across),
                                      min_piece_mm2=min_piece_mm2, min_chord_mm=min_chord_mm,
                                      min_width_share=min_width_share, depth_mm=depth_mm, band_mm=band_mm,
                                      above_hu=above_hu, min_step_hu=min_step_hu):
            row, chord, above, below = level
            original = row if sign > 0 else plane.shape[0] - 1 - row
            height = float(np.dot(geometry.positions[z] + original * down, gravity))
            found.append(LevelOnSlice(int(z), height, chord, chord * float(geometry.slice_thickness_mm[z]), above,
                                      below))
    return _largest_group(found, height_tol_mm, named)


def _levels_on_slice(
    plane: BoolArray, values: npt.NDArray[np.float64], spacing: tuple[float, float], *, min_piece_mm2: float,
    min_chord_mm: float, min_width_share: float, depth_mm: float, band_mm: float, above_hu: tuple[float, float],
    min_step_hu: float,
) -> list[tuple[int, float, float, float]]:
    """(row, chord mm, HU above, HU below) of each piece's flat upper edge; gravity points down the rows."""
    step, across = spacing
    labels, _ = ndimage.label(plane)
    out: list[tuple[int, float, float, float]] = []
    band, deep = max(1, round(band_mm / step)), max(1, round(depth_mm / step))
    for piece, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        part = labels[box] == piece
        if part.sum() * step * across < min_piece_mm2:
            continue
        has = part.any(axis=0)
        top = np.where(has, part.argmax(axis=0), -1)  # highest pixel of each column
        row = int(np.bincount(top[has]).argmax())
        flat = has & (np.abs(top - row) <= int(_FLAT_TOL_MM / step + 1e-6))
        first, length = _longest_run(flat)
        chord = length * across
        below_row = row + deep
        width = float(part[below_row].sum()) * across if below_row < part.shape[0] else 0.0
        if chord < min_chord_mm or width <= 0 or chord < min_width_share * width:
            continue
        r0, c0 = box[0].start + row, box[1].start + first
        columns = slice(c0, c0 + length)
        above = values[max(0, r0 - band):max(0, r0 - 1), columns]
        below = values[r0 + 1:r0 + band, columns][plane[r0 + 1:r0 + band, columns]]
        if not above.size or not below.size:
            continue
        hu_above, hu_below = float(np.median(above)), float(np.median(below))
        if above_hu[0] <= hu_above <= above_hu[1] and hu_below - hu_above >= min_step_hu:
            out.append((r0, chord, hu_above, hu_below))
    return out


def _longest_run(flat: BoolArray) -> tuple[int, int]:
    """Start and length of the longest run of True, a single False inside a run allowed.

    >>> _longest_run(np.array([0, 1, 1, 0, 1, 1, 0, 0, 1], dtype=bool))
    (1, 5)
    """
    best, best_start, start, last_true = 0, 0, -1, -3
    for k, value in enumerate(flat):
        if not value:
            continue
        if start < 0 or k - last_true > 2:
            start = k
        last_true = k
        if k - start + 1 > best:
            best, best_start = k - start + 1, start
    return best_start, best


def _largest_group(found: list[LevelOnSlice], tol_mm: float, gravity: str) -> FluidLevel:
    best: list[LevelOnSlice] = []
    best_area = 0.0
    for candidate in found:
        near = [f for f in found if abs(f.height_mm - candidate.height_mm) <= tol_mm]
        per_slice: dict[int, LevelOnSlice] = {}
        for f in near:  # one piece a slice: the longest run
            if f.slice not in per_slice or f.chord_mm > per_slice[f.slice].chord_mm:
                per_slice[f.slice] = f
        area = sum(f.area_mm2 for f in per_slice.values())
        if len(per_slice) >= 2 and area > best_area:
            best, best_area = sorted(per_slice.values(), key=lambda f: f.slice), area
    if not best:
        return FluidLevel(0.0, (), None, None, gravity)
    return FluidLevel(best_area, tuple(f.slice for f in best), round(float(np.median([f.above_hu for f in best])), 1),
                      round(float(np.median([f.below_hu for f in best])), 1), gravity)


def check_fluid_level(found: FluidLevel, *, min_area_mm2: float = 200.0) -> list[QualityFlag]:
    """Flag ``fluid_level`` when the largest level's plane covers at least ``min_area_mm2``.

    Examples
    --------
    >>> check_fluid_level(FluidLevel(410.0, (15, 16, 17), 31.0, 74.0, "supine"))[0].code
    'fluid_level'
    >>> check_fluid_level(FluidLevel(120.0, (15, 16), 31.0, 74.0, "supine"))
    []
    """
    if found.area_mm2 < min_area_mm2 or not found.slices:
        return []
    return [QualityFlag(
        "fluid_level",
        f"A horizontal fluid level lies at the top of the blood on {slice_range_text(found.slices)} (a flat edge of"
        f" {found.area_mm2:.0f} mm^2, {found.above_hu:.0f} HU above it, {found.below_hu:.0f} HU below): the layer"
        " above a level (the serum of a bleed on anticoagulants or with a clotting disorder) is not counted, so the"
        " volume may be too low.",
        round(found.area_mm2, 1), min_area_mm2)]
