"""Acute-blood density against the inner table that the segmenter did not mark (flag ``blood_at_skull_missed``).

The network reads each slice through the brain window (W80/L40): acute blood (55-90 HU) and
bone are both white there, so a subdural or epidural collection lying on the inner table can
look like a thicker skull, and a bleed against the bone can lose its outer part. The threshold
baseline does not cover it either: its cores may not start within ``rim_mm`` (5 mm) of the
intracranial edge. On the project's phantoms the network missed half of an acute epidural lens
(xa-4-0000) and parts of bleeds against the bone (synth-2-0004, the real-Philips-background
studies), and on a real acute subdural it found nothing.

This check finds, slice by slice, the intracranial voxels that

1. have acute-blood density after a light in-plane smoothing (``blood_hu``),
2. are not a calcification or its halo, and lie at least ``blood_margin_mm`` from the blood
   the segmenter marked (the partial-volume rim of a found bleed is not a missed bleed),
3. survive an in-plane opening of diameter ``min_thickness_mm`` (the inner table's
   partial-volume and beam-hardening rim, the cortical ribbon and the falx are thinner),
4. belong to a piece that touches bone (within ``contact_mm`` of voxels at or above the bone
   threshold): blood *against the skull*, not a hyperdense spot anywhere,
5. and that piece is at least ``min_length_mm`` long in the slice (the diagonal of its bounding
   box): a crescent or lens along the table, not a pocket of partial volume or a venous sinus,

on slices whose intracranial area is at least ``min_area_fraction`` of the largest, counting only
voxels that are intracranial on both neighbouring slices too (walls cut obliquely by the slab,
the skull base, the posterior fossa and the vertex, hold beam hardening, as in the threshold
baseline's rim rule). At least ``min_ml`` of it raises the flag; the
volume is reported either way (``quality.measurements.unsegmented_at_skull_ml``). The voxels are
**not** added to the hematoma: the check says the volume may be too small, it does not correct it.

Measured (2026-12-02, the shipped default as segmenter, `MODEL_CARD.md` "Robustness"): of the 42
phantom studies of the card's two synthetic sets it counts voxels in 5, and every counted voxel
is true blood the network had missed (1.2-6.5 mL); none in the other 37. The real GE normal head
has none (pockets of 15-20 mm along the table there hold 0.6 mL: ``min_length_mm`` 20 keeps them
out), the Philips head phantom none; none of the 51 real PHE-SICH patients (PNG stacks, bone
saturated) is flagged. Those two real sets were used to set ``min_length_mm`` and
``min_area_fraction`` (the transverse sinuses of one patient read 1.25 mL at 0.4), so they are
not an independent test of its false alarms.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe.pipeline.quality.flags import QualityFlag, slice_range_text
from ichpipe.pipeline.segment.components import dilate_octagon, open_octagon

__all__ = ["check_blood_at_skull", "octagon_steps", "pieces_along_table", "unsegmented_at_skull", "walls_kept"]

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.floating]


def octagon_steps(radius_mm: float, spacing: tuple[float, float]) -> int:
    """Pixels of an octagon of about ``radius_mm`` (at least 1: coarse pixels ask for a thicker piece)."""
    return max(1, round(radius_mm / min(spacing)))


def walls_kept(intracranial: BoolArray, z: int, box: tuple[slice, ...]) -> BoolArray:
    """The pixels of slice ``z`` (within ``box``) that are intracranial on both neighbouring slices.

    A wall cut obliquely by the slab (skull base, posterior fossa, vertex) lies outside the
    intracranial space on a neighbouring slice, and beam hardening with it; an end slice has no
    neighbour on one side, so nothing on it is kept.
    """
    if z <= 0 or z >= intracranial.shape[0] - 1:
        return np.zeros(intracranial[z][box].shape, dtype=bool)
    return intracranial[z - 1][box] & intracranial[z + 1][box]


def pieces_along_table(thick: BoolArray, bone: BoolArray, walls: BoolArray, *, contact: int,
                       pixel_spacing_mm: tuple[float, float], min_length_mm: float) -> BoolArray:
    """The pieces of ``thick`` (one slice) that lie against the skull and run along it.

    A piece (8-connected) is kept when it comes within ``contact`` pixels (an octagon) of ``bone`` and
    its voxels on ``walls`` span at least ``min_length_mm`` (the diagonal of their bounding box); only
    those voxels are returned. ``walls``: the voxels that are intracranial on both neighbouring slices
    (a wall cut obliquely by the slab is not). Used by ``blood_at_skull_missed`` and
    :mod:`~ichpipe.pipeline.quality.hypodense_at_skull`.

    >>> thick = np.zeros((6, 40), dtype=bool); thick[1:4, 2:38] = True; thick[5, 0:3] = True
    >>> bone = np.zeros_like(thick); bone[0, :] = True
    >>> int(pieces_along_table(thick, bone, np.ones_like(thick), contact=1, pixel_spacing_mm=(1.0, 1.0),
    ...                        min_length_mm=20.0).sum())  # the long band; the short piece is away from bone
    108
    """
    kept = np.zeros(thick.shape, dtype=bool)
    at_bone = thick & dilate_octagon(bone, contact)
    if not at_bone.any():
        return kept
    labels, _ = ndimage.label(thick)
    touching = np.unique(labels[at_bone])
    labels[~walls] = 0
    for piece, where in enumerate(ndimage.find_objects(labels), start=1):
        if where is None or piece not in touching:
            continue
        rr, cc = np.nonzero(labels[where] == piece)
        if rr.size == 0:
            continue
        length = math.hypot((rr.max() - rr.min() + 1) * pixel_spacing_mm[0],
                            (cc.max() - cc.min() + 1) * pixel_spacing_mm[1])
        if length >= min_length_mm:
            kept[where] |= labels[where] == piece
    return kept


def unsegmented_at_skull(
    hu: FloatArray,
    intracranial: BoolArray,
    blood: BoolArray,
    pixel_spacing_mm: tuple[float, float],
    slice_thickness_mm: float | npt.ArrayLike,
    *,
    bone_hu: float = 300.0,
    blood_hu: tuple[float, float] = (55.0, 90.0),
    calcification_hu: float = 130.0,
    smooth_mm: float = 0.6,
    min_thickness_mm: float = 3.0,
    contact_mm: float = 3.0,
    blood_margin_mm: float = 3.0,
    min_area_fraction: float = 0.7,
    min_length_mm: float = 20.0,
) -> tuple[float, dict[int, float]]:
    """Volume (mL) of acute-blood density against the inner table outside ``blood``, and mL per slice.

    Parameters
    ----------
    hu:
        HU volume (slices, rows, columns); read one slice at a time.
    intracranial, blood:
        The intracranial space and the segmenter's (restricted) hematoma mask.
    pixel_spacing_mm, slice_thickness_mm:
        (row, column) spacing and each slice's thickness along the normal (or one value).
    bone_hu:
        The bone threshold of the intracranial finder; ``inf`` (no bone told) returns 0.
    blood_hu, calcification_hu, smooth_mm, min_thickness_mm, contact_mm, blood_margin_mm, min_area_fraction,
    min_length_mm:
        See the module docstring and
        :class:`~ichpipe.pipeline.config.quality_config.BloodAtSkullConfig`.

    Raises
    ------
    ValueError
        If the arrays' shapes differ or ``blood_hu`` is not (low, high).
    """
    if hu.shape != intracranial.shape or blood.shape != intracranial.shape or hu.ndim != 3:
        raise ValueError(f"Arguments 'hu', 'intracranial' and 'blood' must be 3D of one shape; got {hu.shape},"
                         f" {intracranial.shape} and {blood.shape}.")
    if not blood_hu[0] < blood_hu[1]:
        raise ValueError(f"Argument 'blood_hu' must be (low, high) with low < high; got {blood_hu!r}.")
    n = hu.shape[0]
    if not math.isfinite(bone_hu) or not intracranial.any():
        return 0.0, {}
    spacing = (float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1]))
    thickness = np.broadcast_to(np.asarray(slice_thickness_mm, dtype=np.float64), (n,))
    area = intracranial.reshape(n, -1).sum(axis=1)
    opening = octagon_steps(0.5 * min_thickness_mm, spacing)
    contact = octagon_steps(contact_mm, spacing)
    margin = octagon_steps(blood_margin_mm, spacing)
    halo = octagon_steps(1.5, spacing)
    sigma = (smooth_mm / spacing[0], smooth_mm / spacing[1])
    pad = opening + contact + margin + 2
    least = (2 * opening + 1) ** 2 // 2  # fewer candidate pixels cannot hold a piece of the minimum thickness
    per_slice: dict[int, float] = {}
    for z in np.flatnonzero(area >= min_area_fraction * area.max()):
        inside = intracranial[z]
        rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
        box = (slice(max(0, int(rows[0]) - pad), int(rows[-1]) + 1 + pad),
               slice(max(0, int(cols[0]) - pad), int(cols[-1]) + 1 + pad))
        plane = np.asarray(hu[z][box], dtype=np.float32)
        inside = inside[box]
        rough = inside & (plane >= blood_hu[0] - 15.0) & (plane <= blood_hu[1] + 15.0)
        if rough.sum() < least:
            continue
        smooth = ndimage.gaussian_filter(plane, sigma)
        candidate = inside & (smooth >= blood_hu[0]) & (smooth <= blood_hu[1])
        calcified = inside & (plane >= calcification_hu)
        if calcified.any():
            candidate &= ~dilate_octagon(calcified, halo)
        found = blood[z][box]
        if found.any():
            candidate &= ~dilate_octagon(found, margin)
        thick = open_octagon(candidate, opening)
        if not thick.any():
            continue
        voxels = int(pieces_along_table(thick, plane >= bone_hu, walls_kept(intracranial, int(z), box),
                                        contact=contact, pixel_spacing_mm=spacing, min_length_mm=min_length_mm).sum())
        if voxels:
            per_slice[int(z)] = voxels * spacing[0] * spacing[1] * float(thickness[z]) / 1000.0
    return float(sum(per_slice.values())), per_slice


def check_blood_at_skull(volume_ml: float, per_slice: dict[int, float], *, min_ml: float = 1.0) -> list[QualityFlag]:
    """Flag ``blood_at_skull_missed`` when at least ``min_ml`` of :func:`unsegmented_at_skull` was found.

    >>> check_blood_at_skull(0.2, {4: 0.2})
    []
    >>> [f.code for f in check_blood_at_skull(3.5, {10: 1.5, 11: 2.0})]
    ['blood_at_skull_missed']
    """
    if volume_ml < min_ml:
        return []
    where = slice_range_text(sorted(per_slice))
    return [QualityFlag(
        "blood_at_skull_missed",
        f"{volume_ml:.1f} mL of acute-blood density against the inner table ({where}) was not segmented:"
        " extra-axial blood (subdural, epidural) or the outer part of a bleed may be missed; the volume may be"
        " too small.",
        round(volume_ml, 3), min_ml)]
