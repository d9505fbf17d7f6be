"""Hypodense tissue against the inner table on one side that the segmenter did not mark (flag ``hypodense_at_skull``).

A chronic subdural haematoma is a crescent of 0-25 HU fluid between the inner table and the
brain: darker than the brain, so neither the first network (trained on hyperdense clots) nor the
threshold baseline (50 HU and up) sees it, and the extra-axial network finds only part of some
(``MODEL_CARD.md``, "Extra-axial and intraventricular studies"). On the phantom set ``sdh-sel``
a 4 mm chronic subdural of 9.96 mL was read 0.00 mL with no flag: the one silent wrong volume of
that set. CSF lies there too (the subarachnoid space of an atrophic brain, the sulci), which is
why this check compares the two sides of the head: atrophy is symmetric, a chronic subdural is
most often on one side.

This check finds, slice by slice, the intracranial voxels that

1. are ``below_brain_hu`` (6-26 HU) darker than the brain after an in-plane smoothing of
   ``smooth_mm`` that averages intracranial voxels only (bone beside a voxel does not lift it);
   the brain's level is the median of the intracranial voxels of 15-60 HU on those slices (31 HU
   on the real GE head and the phantoms, 25-33 on the PHE-SICH patients under the assumed PNG
   window), so 5-25 HU on a brain of 31: relative, because a scanner's calibration or an assumed
   window moves CSF, white matter and a collection together (with absolute 5-25 HU, 5 of the 51
   PHE-SICH patients were flagged when their assumed window was moved 5 HU down, none with this),
2. lie within ``band_mm`` (in plane) of the intracranial space's edge (the white matter, 20-30
   HU, lies deeper) and at least ``blood_margin_mm`` from the blood the segmenter marked,
3. survive an in-plane opening of diameter ``min_thickness_mm`` (the CSF of a sulcus and the
   subarachnoid space of a young brain are thinner),
4. belong to a piece that touches bone (within ``contact_mm`` of voxels at or above the bone
   threshold) and is at least ``min_length_mm`` long in the slice (bounding-box diagonal): a
   crescent along the table,

on slices whose intracranial area is at least ``min_area_fraction`` of the largest, counting
only voxels that are intracranial on both neighbouring slices too (the walls cut obliquely by
the slab). The voxels found are summed on each side of the head's midline: the line through each
slice's intracranial centroid along the long (anterior-posterior) axis of the largest slice.
The flag is raised when one side holds at least ``min_ml`` and the other at most
``max_other_share`` of that. The volumes are reported either way
(``quality.measurements.hypodense_at_skull_ml``); the voxels are **never** added to the
haematoma: the check says the volume may be too small, it does not correct it. A collection on
both sides (bilateral chronic subdurals) is not flagged: it cannot be told from atrophy here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ichpipe.dicom_io.geometry import VolumeGeometry
from ichpipe.pipeline.quality.flags import QualityFlag, slice_range_text
from ichpipe.pipeline.quality.inner_table import octagon_steps, pieces_along_table, walls_kept
from ichpipe.pipeline.segment.components import bounding_box, dilate_octagon, erode_octagon, open_octagon, smooth_over

__all__ = ["HypodenseAtSkull", "check_hypodense_at_skull", "hypodense_at_skull"]

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.floating]

_BRAIN_HU = (15.0, 60.0)  # the brain's level is read from these voxels (not CSF, not bone) ...
_LEVEL_SLICES = 12  # ... on about this many of the slices looked at


@dataclass(frozen=True)
class HypodenseAtSkull:
    """What :func:`hypodense_at_skull` found on each side of the head.

    Attributes
    ----------
    side_ml:
        mL on each side, in the order of ``side_names``.
    side_names:
        ``("right", "left")`` (the patient's sides, from the image orientation), or ``("side 1",
        "side 2")`` when the head's short axis does not run along the patient's left-right axis (a
        round phantom, a non-axial image).
    slices:
        The slices (0-based, sorted along the normal) holding any of it.
    hu_range:
        The HU counted as hypodense (the brain's level less ``below_brain_hu``); ``None`` when nothing
        was measured (no bone told, no brain).
    """

    side_ml: tuple[float, float] = (0.0, 0.0)
    side_names: tuple[str, str] = ("right", "left")
    slices: tuple[int, ...] = ()
    hu_range: tuple[float, float] | None = None

    @property
    def more(self) -> int:
        """Index (0 or 1) of the side holding more."""
        return 0 if self.side_ml[0] >= self.side_ml[1] else 1

    def to_dict(self) -> dict[str, float]:
        """``{side name: mL}`` for the report, rounded to 0.001 mL."""
        return {name: round(ml, 3) for name, ml in zip(self.side_names, self.side_ml, strict=True)}


def _sides(largest: BoolArray, geometry: VolumeGeometry) -> tuple[FloatArray, tuple[str, str]]:
    """The head's short in-plane axis (row, column components, per mm) and the names of its two sides.

    The axis is the minor principal axis of ``largest``, the largest intracranial slice; the side its
    positive direction points to is named from the patient's x (LPS: +x is the patient's left).
    """
    rows, cols = np.nonzero(largest)
    if rows.size < 3:  # no shape to read an axis from (a speck of a space): columns, sides unnamed
        return np.array([0.0, 1.0]), ("side 1", "side 2")
    spacing = geometry.pixel_spacing_mm
    points = np.stack([rows * spacing[0], cols * spacing[1]], axis=1).astype(np.float64)
    _, vectors = np.linalg.eigh(np.cov((points - points.mean(axis=0)).T))
    axis = vectors[:, 0]
    # one step along rows moves along column_direction, one along columns along row_direction
    patient_x = float(axis[0] * geometry.column_direction[0] + axis[1] * geometry.row_direction[0])
    if abs(patient_x) < 0.7:
        return axis, ("side 1", "side 2")
    # index 0: the negative side of the axis
    return axis, (("right", "left") if patient_x > 0 else ("left", "right"))


def _brain_level(hu: FloatArray, intracranial: BoolArray, slices: npt.NDArray[np.intp]) -> float | None:
    """Median HU of the intracranial voxels of 15-60 HU (brain, not CSF, blood or bone) on about 12 of ``slices``."""
    sampled = slices[:: max(1, len(slices) // _LEVEL_SLICES)]
    pooled = np.concatenate([np.asarray(hu[z])[intracranial[z]] for z in sampled])
    brain = pooled[(pooled >= _BRAIN_HU[0]) & (pooled <= _BRAIN_HU[1])]
    return float(np.median(brain)) if brain.size else None


def hypodense_at_skull(
    hu: FloatArray,
    intracranial: BoolArray,
    blood: BoolArray,
    geometry: VolumeGeometry,
    *,
    bone_hu: float = 300.0,
    below_brain_hu: tuple[float, float] = (6.0, 26.0),
    smooth_mm: float = 1.0,
    band_mm: float = 8.0,
    min_thickness_mm: float = 3.0,
    contact_mm: float = 3.0,
    blood_margin_mm: float = 3.0,
    min_area_fraction: float = 0.7,
    min_length_mm: float = 30.0,
) -> HypodenseAtSkull:
    """Hypodense tissue in a band against the inner table, not segmented, on each side of the head.

    Parameters
    ----------
    hu:
        HU volume (slices, rows, columns); read one slice at a time.
    intracranial, blood:
        The intracranial space and the segmenter's (restricted) haematoma mask.
    geometry:
        The volume's geometry (pixel spacing, each slice's thickness, the image orientation that
        names the sides).
    bone_hu:
        The bone threshold of the intracranial finder; ``inf`` (no bone told) finds nothing.
    below_brain_hu, smooth_mm, band_mm, min_thickness_mm, contact_mm, blood_margin_mm, min_area_fraction, min_length_mm:
        See the module docstring and
        :class:`~ichpipe.pipeline.config.quality_config.HypodenseAtSkullConfig`.

    Raises
    ------
    ValueError
        If the arrays' shapes differ from each other or from ``geometry``, or ``below_brain_hu`` is not
        (least, most).

    Examples
    --------
    A head of 31 HU brain in a ring of bone, with a 7 mm crescent of 15 HU on the patient's left
    (the side of increasing columns in an axial image):

    >>> from ichpipe.pipeline.datasets.case import uniform_geometry
    >>> rr, cc = np.mgrid[:120, :100]
    >>> r = np.hypot((rr - 60) / 55, (cc - 50) / 45)
    >>> plane = np.where(r < 1.0, 31.0, np.where(r < 1.12, 1000.0, -1000.0)).astype(np.float32)
    >>> crescent = (r >= 0.85) & (r < 1.0) & (cc > 60)
    >>> plane[crescent] = 15.0
    >>> hu = np.stack([plane] * 5)
    >>> space = np.stack([r < 1.0] * 5)
    >>> found = hypodense_at_skull(hu, space, np.zeros_like(space), uniform_geometry(
    ...     n_slices=5, rows=120, columns=100, pixel_spacing_mm=1.0, slice_thickness_mm=5.0))
    >>> found.to_dict(), found.slices, float(crescent.sum() * 3 * 5.0 / 1000)  # painted on slices 1-3
    ({'right': 0.0, 'left': 13.74}, (1, 2, 3), 13.41)
    """
    n = hu.shape[0]
    if hu.ndim != 3 or hu.shape != intracranial.shape or blood.shape != intracranial.shape:
        raise ValueError(f"Arguments 'hu', 'intracranial' and 'blood' must be 3D of one shape; got {hu.shape},"
                         f" {intracranial.shape} and {blood.shape}.")
    if hu.shape != (geometry.n_slices, geometry.rows, geometry.columns):
        raise ValueError(f"Argument 'geometry' must describe the volume's shape {hu.shape}; got"
                         f" {(geometry.n_slices, geometry.rows, geometry.columns)}.")
    if not below_brain_hu[0] < below_brain_hu[1]:
        raise ValueError(f"Argument 'below_brain_hu' must be (least, most) with least < most; got {below_brain_hu!r}.")
    if not math.isfinite(bone_hu) or not intracranial.any():
        return HypodenseAtSkull()
    area = intracranial.reshape(n, -1).sum(axis=1)
    wide = np.flatnonzero(area >= min_area_fraction * area.max())
    brain = _brain_level(hu, intracranial, wide)
    if brain is None:
        return HypodenseAtSkull()
    hu_range = (brain - below_brain_hu[1], brain - below_brain_hu[0])
    spacing = (float(geometry.pixel_spacing_mm[0]), float(geometry.pixel_spacing_mm[1]))
    axis, names = _sides(intracranial[int(np.argmax(area))], geometry)
    voxel_ml = np.broadcast_to(np.asarray(geometry.voxel_volumes_ml, dtype=np.float64), (n,))
    opening = octagon_steps(0.5 * min_thickness_mm, spacing)
    band_steps = octagon_steps(band_mm, spacing)
    contact = octagon_steps(contact_mm, spacing)
    margin = octagon_steps(blood_margin_mm, spacing)
    sigma = (smooth_mm / spacing[0], smooth_mm / spacing[1])
    side_ml = [0.0, 0.0]
    slices = []
    for z in wide:
        if z == 0 or z == n - 1:
            continue  # no slice on one side: its walls cannot be told
        box = bounding_box(intracranial[z], margin=1)
        if box is None:
            continue
        inside = intracranial[z][box]
        plane = np.asarray(hu[z][box], dtype=np.float32)
        band = inside & ~erode_octagon(inside, band_steps)  # within about band_mm of the edge (an octagon, not a disc)
        smooth = smooth_over(plane, inside, sigma)
        candidate = band & (smooth >= hu_range[0]) & (smooth <= hu_range[1])
        if blood[z][box].any():
            candidate &= ~dilate_octagon(blood[z][box], margin)
        thick = open_octagon(candidate, opening)
        if not thick.any():
            continue
        kept = pieces_along_table(thick, plane >= bone_hu, walls_kept(intracranial, int(z), box), contact=contact,
                                  pixel_spacing_mm=spacing, min_length_mm=min_length_mm)
        if not kept.any():
            continue
        rows, cols = np.nonzero(inside)
        centre = (rows.mean() * spacing[0], cols.mean() * spacing[1])
        kr, kc = np.nonzero(kept)
        along = (kr * spacing[0] - centre[0]) * axis[0] + (kc * spacing[1] - centre[1]) * axis[1]
        positive = int((along > 0).sum())
        side_ml[0] += (kr.size - positive) * voxel_ml[z]
        side_ml[1] += positive * voxel_ml[z]
        slices.append(int(z))
    return HypodenseAtSkull((float(side_ml[0]), float(side_ml[1])), names, tuple(slices), hu_range)


def _side(name: str) -> str:
    """``the right``, ``the left``, ``side 1``."""
    return f"the {name}" if name in ("right", "left") else name


def check_hypodense_at_skull(found: HypodenseAtSkull, *, min_ml: float = 3.0,
                             max_other_share: float = 0.33) -> list[QualityFlag]:
    """Flag ``hypodense_at_skull`` when one side holds at least ``min_ml`` and the other at most
    ``max_other_share`` of that.

    >>> check_hypodense_at_skull(HypodenseAtSkull((0.4, 2.0), slices=(6,)))
    []
    >>> [f.code for f in check_hypodense_at_skull(HypodenseAtSkull((0.4, 6.5), slices=(6, 7, 8)))]
    ['hypodense_at_skull']
    >>> check_hypodense_at_skull(HypodenseAtSkull((4.1, 6.5), slices=(6, 7, 8)))  # both sides: atrophy?
    []
    """
    more = found.more
    more_ml, other_ml = found.side_ml[more], found.side_ml[1 - more]
    if more_ml < min_ml or other_ml > max_other_share * more_ml:
        return []
    where = slice_range_text(found.slices)
    density = "" if found.hu_range is None else f"{found.hu_range[0]:.0f} to {found.hu_range[1]:.0f} HU, "
    return [QualityFlag(
        "hypodense_at_skull",
        f"{more_ml:.1f} mL of hypodense tissue ({density}darker than the brain, >= 3 mm thick) lies against the"
        f" inner table on {_side(found.side_names[more])} ({where}) and {other_ml:.1f} mL on"
        f" {_side(found.side_names[1 - more])}, not segmented: a chronic subdural haematoma may be missed (or it"
        " is an infarct reaching the cortex, a hygroma or asymmetric atrophy); the volume may be too small.",
        round(more_ml, 3), min_ml)]
