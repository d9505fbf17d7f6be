"""The quality checks: every measurable reason a hematoma volume may be wrong, as flags.

Each check takes plain numbers or arrays (HU volume, masks, spacings) and
returns a list of :class:`~ichpipe.pipeline.quality.flags.QualityFlag` (empty
when quiet). Every threshold is a keyword argument whose name and default are
those of the matching :mod:`ichpipe.pipeline.config.quality_config` section,
where the reasons for the defaults are written.

Memory: the HU volume is read slice by slice (histograms and counts are
accumulated), and components are found with the slice-by-slice union-find of
:mod:`ichpipe.pipeline.segment.components`; no float copy of the volume and no
int32 label volume is made, so a 600-slice study costs a few planes.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe.pipeline.quality.flags import QualityFlag
from ichpipe.pipeline.segment.components import components_at_least_3d, dilate_rect, mask_volume_ml

__all__ = [
    "check_blood_at_edge",
    "check_blood_outside_mask",
    "check_clipping",
    "check_disagreement",
    "check_domain",
    "check_hu_levels",
    "check_image_noise",
    "check_intracranial",
    "histogram_mode",
]

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.floating]


def _voxel_ml(spacing: tuple[float, float], thickness: float | npt.ArrayLike, n: int) -> npt.NDArray[np.float64]:
    t = np.broadcast_to(np.asarray(thickness, dtype=np.float64), (n,))
    return float(spacing[0]) * float(spacing[1]) * t / 1000.0


def _box(need: BoolArray, margin: int) -> tuple[slice, slice]:
    """The bounding box of ``need`` (2D, not empty) grown by ``margin`` pixels: dilations run only there."""
    rows, cols = np.flatnonzero(need.any(axis=1)), np.flatnonzero(need.any(axis=0))
    return (slice(max(0, int(rows[0]) - margin), int(rows[-1]) + 1 + margin),
            slice(max(0, int(cols[0]) - margin), int(cols[-1]) + 1 + margin))


# ----------------------------------------------------------------------------- intracranial space


def check_intracranial(
    *,
    intracranial_ml: float,
    head_ml: float,
    max_gap_deg: float,
    n_bridged_slices: int,
    n_outline_slices: int = 0,
    bone_share: float = 1.0,
    empty_ml: float = 10.0,
    min_ml: float = 300.0,
    min_head_ratio: float = 0.2,
    open_gap_deg: float = 20.0,
    open_min_slices: int = 2,
    absent_bone_share: float = 0.5,
) -> list[QualityFlag]:
    """Flags about the intracranial space the volume was restricted to.

    Parameters
    ----------
    intracranial_ml, head_ml:
        Volumes of the intracranial mask and of the head outline.
    max_gap_deg:
        Widest gap in the bone ring that was bridged (degrees).
    n_bridged_slices, n_outline_slices:
        Slices whose ring was bridged / found from the head outline only.
    bone_share:
        Median share of the ring's barrier that is bone (low for a stripped skull).
    empty_ml, min_ml, min_head_ratio, open_gap_deg, open_min_slices, absent_bone_share:
        See :class:`~ichpipe.pipeline.config.quality_config.IntracranialCheckConfig`.
    """
    flags: list[QualityFlag] = []
    if intracranial_ml < empty_ml:
        flags.append(QualityFlag(
            "intracranial_empty",
            f"No intracranial space was found ({intracranial_ml:.1f} mL); the volume was restricted to nothing.",
            round(intracranial_ml, 2), empty_ml))
        return flags
    ratio = intracranial_ml / head_ml if head_ml > 0 else 0.0
    if intracranial_ml < min_ml or ratio < min_head_ratio:
        flags.append(QualityFlag(
            "intracranial_small",
            f"The intracranial space is {intracranial_ml:.0f} mL, {100 * ratio:.0f} % of the head's volume,"
            " too small for a head; blood outside it is not counted.",
            round(ratio, 3), min_head_ratio))
    if n_bridged_slices >= open_min_slices and max_gap_deg >= open_gap_deg:
        flags.append(QualityFlag(
            "skull_open",
            f"The bone ring is open over up to {max_gap_deg:.0f} deg on {n_bridged_slices} slices (craniectomy or"
            " missing bone); the intracranial edge there was interpolated, check it.",
            round(max_gap_deg, 1), open_gap_deg))
    if n_outline_slices > 0 or bone_share < absent_bone_share:
        what = ("the head outline" if n_outline_slices > 0
                else "a ring of non-bone voxels (a skull-stripped export)")
        flags.append(QualityFlag(
            "skull_absent",
            f"No skull in the image (bone is {100 * bone_share:.0f} % of the ring); the intracranial space was taken"
            f" from {what}.",
            round(bone_share, 3), absent_bone_share))
    return flags


# ----------------------------------------------------------------------------- HU levels


def histogram_mode(counts: npt.NDArray[np.float64], low: float, *, smooth_hu: float = 5.0) -> float | None:
    """Mode of a 1 HU histogram starting at ``low``, smoothed over ``smooth_hu``; ``None`` if empty."""
    if counts.sum() <= 0:
        return None
    smooth = ndimage.uniform_filter1d(counts.astype(np.float64), max(1, round(smooth_hu)), mode="nearest")
    return float(low + int(np.argmax(smooth)) + 0.5)


def _histogram(values: FloatArray, low: float, high: float) -> npt.NDArray[np.float64]:
    """Counts in 1 HU bins from ``low`` to ``high``; the difference is taken in float64 (in float32 a value just
    under ``high`` rounds up to the bin past the last).

    >>> _histogram(np.array([-500.00003, -1100.0], dtype=np.float32), -1100.0, -500.0)[[0, -1]].tolist()
    [1.0, 1.0]
    """
    v = values[(values >= low) & (values < high)].astype(np.float64)
    n = math.ceil(high - low)
    return np.bincount(np.minimum(np.floor(v - low).astype(np.intp), n - 1), minlength=n).astype(np.float64)


def check_hu_levels(
    hu: FloatArray,
    intracranial: BoolArray,
    *,
    air_hu: tuple[float, float] = (-1050.0, -950.0),
    brain_hu: tuple[float, float] = (20.0, 45.0),
    min_air_fraction: float = 0.01,
    min_brain_fraction: float = 0.5,
    sample_step: int = 2,
) -> list[QualityFlag]:
    """Air and brain levels measured from histogram peaks (slice by slice).

    Parameters
    ----------
    hu:
        HU volume (slices, rows, columns).
    intracranial:
        Intracranial mask (for the brain level); may be empty (then only air is checked).
    air_hu, brain_hu, min_air_fraction, min_brain_fraction, sample_step:
        See :class:`~ichpipe.pipeline.config.quality_config.HuLevelsConfig`.
    """
    flags: list[QualityFlag] = []
    s = max(1, sample_step)
    lowest = float(min(float(np.min(p)) for p in hu))  # the floor value is padding or a clip, not air
    air_counts = np.zeros(600, dtype=np.float64)
    brain_counts = np.zeros(120, dtype=np.float64)
    n_sampled = n_inside = n_inside_range = 0
    for z in range(hu.shape[0]):
        plane = np.asarray(hu[z, ::s, ::s])
        n_sampled += plane.size
        air_counts += _histogram(plane[plane != lowest], -1100.0, -500.0)
        inside = plane[intracranial[z, ::s, ::s]]
        if inside.size:
            n_inside += inside.size
            counts = _histogram(inside, -20.0, 100.0)
            n_inside_range += int(counts.sum())
            brain_counts += counts
    n_air = float(air_counts.sum())
    if n_air >= min_air_fraction * max(1, n_sampled):
        air = histogram_mode(air_counts, -1100.0)
        if air is not None and not air_hu[0] <= air <= air_hu[1]:
            flags.append(QualityFlag(
                "hu_calibration",
                f"The air peak is at {air:.0f} HU, not near -1000 HU: the HU scale (rescale slope or intercept)"
                " may be wrong.",
                round(air, 1), air_hu[0] if air < air_hu[0] else air_hu[1]))
    else:
        share = n_air / max(1, n_sampled)
        flags.append(QualityFlag(
            "hu_no_air",
            f"Only {100 * share:.2f} % of the voxels are air (-1100..-500 HU): the background was masked or"
            " replaced, so the HU scale cannot be checked against air.",
            round(share, 5), min_air_fraction))
    if n_inside:
        in_range = n_inside_range / n_inside
        brain = histogram_mode(brain_counts, -20.0) if in_range >= min_brain_fraction else None
        if brain is None:
            flags.append(QualityFlag(
                "hu_calibration",
                f"Only {100 * in_range:.0f} % of the intracranial voxels lie in -20..100 HU: there is no brain peak,"
                " so the HU scale is wrong (inverted or shifted) or this is not a head.",
                round(in_range, 4), min_brain_fraction))
        elif not brain_hu[0] <= brain <= brain_hu[1]:
            flags.append(QualityFlag(
                "hu_calibration",
                f"The brain peak inside the intracranial space is at {brain:.0f} HU, outside"
                f" {brain_hu[0]:.0f}-{brain_hu[1]:.0f} HU: the HU scale is shifted or this is not brain.",
                round(brain, 1), brain_hu[0] if brain < brain_hu[0] else brain_hu[1]))
    return flags


# ----------------------------------------------------------------------------- clipping


def check_clipping(
    hu: FloatArray,
    *,
    max_fraction: float = 0.001,
    min_fraction: float = 0.01,
    min_floor_hu: float = -1000.0,
    bone_hu: float = 300.0,
    sample_step: int = 2,
) -> list[QualityFlag]:
    """Values clipped at the top (bone lost) or at the bottom above air.

    Parameters
    ----------
    hu:
        HU volume.
    bone_hu:
        A maximum below this means no bone in the image at all (a brain-window export).
    max_fraction, min_fraction, min_floor_hu, sample_step:
        See :class:`~ichpipe.pipeline.config.quality_config.ClippingConfig`.
    """
    flags: list[QualityFlag] = []
    s = max(1, sample_step)
    top = float(max(float(np.max(p)) for p in hu))
    bottom = float(min(float(np.min(p)) for p in hu))
    n = at_top = at_bottom = 0
    for z in range(hu.shape[0]):
        plane = np.asarray(hu[z, ::s, ::s])
        n += plane.size
        at_top += int(np.count_nonzero(plane == top))
        at_bottom += int(np.count_nonzero(plane == bottom))
    top_share, bottom_share = at_top / max(1, n), at_bottom / max(1, n)
    if top < bone_hu:
        flags.append(QualityFlag(
            "hu_clipped",
            f"The highest value is {top:.0f} HU, below bone ({bone_hu:.0f} HU): the image was clipped or windowed"
            " and the skull cannot be seen.",
            round(top, 1), bone_hu))
    elif top_share >= max_fraction:
        flags.append(QualityFlag(
            "hu_clipped",
            f"{100 * top_share:.2f} % of the voxels equal the maximum {top:.0f} HU: the image was clipped at the top.",
            round(top_share, 5), max_fraction))
    if bottom_share >= min_fraction and bottom > min_floor_hu:
        flags.append(QualityFlag(
            "hu_clipped",
            f"{100 * bottom_share:.1f} % of the voxels equal the minimum {bottom:.0f} HU, above air: the image was"
            " clipped at the bottom.",
            round(bottom_share, 4), min_fraction))
    return flags


# ----------------------------------------------------------------------------- blood and the mask edge


def check_blood_at_edge(
    blood: BoolArray,
    intracranial: BoolArray,
    hu: FloatArray,
    pixel_spacing_mm: tuple[float, float],
    *,
    bone_hu: float = 300.0,
    air_slices: Collection[int] = (),
    bone_search_mm: float = 3.0,
    max_fraction: float = 0.1,
    min_contact_mm: float = 10.0,
    air_max_hu: float | None = -300.0,
) -> list[QualityFlag]:
    """Blood whose surface lies on an intracranial edge that is not bone, over a long stretch.

    Against the inner table a hematoma is bounded by bone and that is fine;
    where the edge is a bridged gap, the head outline or a stripped skull, the
    blood may continue outside the mask and be cut off (``blood_at_mask_edge``).
    On ``air_slices`` (those whose ring is closed bone) air in the head bounds
    blood too (the finder leaves air out of the space; blood does not continue
    into an air-filled cavity), but blood whose edge lies within
    ``bone_search_mm`` of such air, with no bone as near, over ``min_contact_mm``
    is flagged ``blood_beside_air``: the networks never saw air inside the head.

    Parameters
    ----------
    blood, intracranial:
        The (restricted) hematoma mask and the intracranial mask.
    hu, pixel_spacing_mm:
        HU volume and (row, column) spacing in mm.
    bone_hu:
        Bone threshold, as used by the intracranial finder (the clip value when
        the image was clipped below 300 HU).
    air_slices:
        Slices on which air outside the mask bounds the blood as bone does (a
        closed bone ring, not a skull-stripped export: there air may stand where
        the skull was).
    bone_search_mm, max_fraction, min_contact_mm, air_max_hu:
        See :class:`~ichpipe.pipeline.config.quality_config.BloodEdgeConfig`.
    """
    if not blood.any():
        return []
    spacing = (float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1]))
    ry = max(1, round(bone_search_mm / spacing[0]))
    rx = max(1, round(bone_search_mm / spacing[1]))
    y, x = np.ogrid[-ry : ry + 1, -rx : rx + 1]
    reach = (y * spacing[0]) ** 2 + (x * spacing[1]) ** 2 <= bone_search_mm**2
    surface = 0
    open_contact = air_contact = 0
    air = set(air_slices) if air_max_hu is not None else set()
    for z in np.flatnonzero(blood.any(axis=(1, 2))):
        b = blood[z]
        edge = b & ~ndimage.binary_erosion(b, border_value=0)
        surface += int(edge.sum())
        at_edge = edge & ndimage.binary_dilation(~intracranial[z])
        if not (at_edge.any() or z in air):
            continue
        box = _box(edge if z in air else at_edge, max(ry, rx) + 1)
        plane = np.asarray(hu[z][box])
        bone_near = ndimage.binary_dilation(plane >= bone_hu, structure=reach)
        unbounded = at_edge[box] & ~bone_near
        if z in air:  # the blood's edge near air outside the space, with no bone as near (not a sinus)
            air_near = ndimage.binary_dilation((plane <= air_max_hu) & ~intracranial[z][box], structure=reach)
            air_contact += int((edge[box] & air_near & ~bone_near).sum())
            unbounded &= ~air_near
        open_contact += int(unbounded.sum())
    flags = []
    fraction = open_contact / surface if surface else 0.0
    length = open_contact * min(spacing)
    if fraction >= max_fraction and length >= min_contact_mm:
        flags.append(QualityFlag(
            "blood_at_mask_edge",
            f"{100 * fraction:.0f} % of the blood's edge ({length:.0f} mm) lies on an intracranial edge without bone:"
            " the blood may continue outside the mask and be cut off.",
            round(fraction, 3), max_fraction))
    length = air_contact * min(spacing)
    if length >= min_contact_mm:
        flags.append(QualityFlag(
            "blood_beside_air",
            f"{length:.0f} mm of the blood's edge lies within {bone_search_mm:g} mm of air in the head (a cavity after"
            " a clot's evacuation, a drain's track, pneumocephalus), which the networks never saw in training: on"
            " painted cavities they read the blood beside it short, or added the brain beside it, so the volume may"
            " be too low or too high.",
            round(length, 1), min_contact_mm))
    return flags


def check_blood_outside_mask(
    *,
    unrestricted_ml: float | None,
    removed_ml: float | None,
    max_ml: float = 1.0,
    max_fraction: float = 0.1,
) -> list[QualityFlag]:
    """Blood the segmenter found that the intracranial restriction removed.

    Parameters
    ----------
    unrestricted_ml:
        What the segmenter found before the restriction (``None``: it did not say).
    removed_ml:
        Of that, what lay outside the intracranial space.
    max_ml, max_fraction:
        See :class:`~ichpipe.pipeline.config.quality_config.BloodOutsideConfig`.
    """
    if unrestricted_ml is None or removed_ml is None or unrestricted_ml <= 0:
        return []
    if removed_ml >= max_ml and removed_ml / unrestricted_ml >= max_fraction:
        return [QualityFlag(
            "blood_outside_mask",
            f"{removed_ml:.1f} mL of the {unrestricted_ml:.1f} mL the segmenter found lies outside the intracranial"
            " space and was not counted.",
            round(removed_ml, 2), max_ml)]
    return []


def check_image_noise(image_noise: Mapping[str, Any], *, max_noise_hu: float | None = 5.5) -> list[QualityFlag]:
    """The image the networks read is noisier than any they learnt (``details["image_noise"]``).

    ``max_noise_hu``: see :class:`~ichpipe.pipeline.config.quality_config.ImageNoiseConfig`.

    >>> [f.code for f in check_image_noise({"noise_hu": 6.1, "slices_sampled": 12})]
    ['noisy_image']
    >>> check_image_noise({"noise_hu": 3.3, "slices_sampled": 12}), check_image_noise({"noise_hu": None})
    ([], [])
    """
    noise = image_noise.get("noise_hu")
    if max_noise_hu is None or noise is None or float(noise) <= max_noise_hu:
        return []
    return [QualityFlag(
        "noisy_image",
        f"The image the networks read has {float(noise):.1f} HU of pixel-to-pixel noise, more than the noisiest image"
        f" they learnt (at most 5.4; flag over {max_noise_hu:g}): a low-dose or thin-slice scan? On such phantoms they"
        " read bleeds low (up to a quarter) and call specks of noise; the volume may be wrong.",
        round(float(noise), 2), max_noise_hu)]


# ----------------------------------------------------------------------------- two segmenters

#: Under this the main segmenter found nothing (``inference.min_component_ml``'s default).
_NOTHING_ML = 0.05


def check_disagreement(
    volumes_ml: dict[str, float],
    *,
    min_abs_ml: float = 2.0,
    min_rel: float = 0.25,
    when_empty_ml: float | None = 0.5,
    baseline_main_min_abs_ml: float = 1.0,
    baseline_main_min_rel: float = 0.2,
    baseline: str | None = "threshold",
) -> list[QualityFlag]:
    """Two (or more) segmenters' volumes differ.

    Parameters
    ----------
    volumes_ml:
        Segmenter name -> volume (mL), the main segmenter first.
    min_abs_ml, min_rel, when_empty_ml, baseline_main_min_abs_ml, baseline_main_min_rel:
        See :class:`~ichpipe.pipeline.config.quality_config.DisagreementConfig`; the last two
        replace the first two when ``baseline`` is the main segmenter.
    baseline:
        The name of the threshold baseline among ``volumes_ml``: when it reads the least, the message
        says that it misses blood under 50 HU, so the lower reading is often the baseline's own miss
        (on the phantom sets the network beside it was right in 47 of 68 such flags; ``MODEL_CARD.md``,
        "Do the flags catch the wrong volumes?"). The flag is raised all the same.

    Examples
    --------
    >>> [f.code for f in check_disagreement({"network": 0.0, "threshold": 0.9})]
    ['segmenter_disagreement']
    >>> check_disagreement({"network": 0.9, "threshold": 0.0})  # the baseline misses blood under 50 HU
    []
    >>> check_disagreement({"network": 7.3, "threshold": 5.6})  # 1.7 mL apart: the baseline's usual shortfall
    []
    >>> [f.code for f in check_disagreement({"threshold": 5.6, "network": 7.3})]  # the baseline reported
    ['segmenter_disagreement']
    """
    if len(volumes_ml) < 2:
        return []
    main_name, main = next(iter(volumes_ml.items()))
    others = {k: v for k, v in volumes_ml.items() if k != main_name}
    found_name = max(others, key=lambda k: others[k])
    if when_empty_ml is not None and main < _NOTHING_ML and others[found_name] >= when_empty_ml:
        return [QualityFlag(
            "segmenter_disagreement",
            f"{main_name} found no blood, {found_name} found {others[found_name]:.2f} mL: blood of a kind"
            f" {main_name} does not find (subarachnoid blood in the sulci, blood under 50 HU?) may be missed.",
            round(others[found_name], 3), when_empty_ml)]
    hi_name = max(volumes_ml, key=lambda k: volumes_ml[k])
    lo_name = min(volumes_ml, key=lambda k: volumes_ml[k])
    hi, lo = volumes_ml[hi_name], volumes_ml[lo_name]
    diff = hi - lo
    rel = diff / hi if hi > 0 else 0.0
    bar_ml, bar_rel = ((baseline_main_min_abs_ml, baseline_main_min_rel) if main_name == baseline
                       else (min_abs_ml, min_rel))
    if diff >= bar_ml and rel >= bar_rel:
        why = ""
        if lo_name == baseline:
            whose = ("the volume reported is likely short" if main_name == baseline
                     else "its lower volume is often its own miss")
            why = f"; {lo_name} misses blood under 50 HU (subacute, diluted), so {whose}"
        return [QualityFlag(
            "segmenter_disagreement",
            f"The segmenters disagree: {hi_name} {hi:.1f} mL, {lo_name} {lo:.1f} mL ({100 * rel:.0f} % apart){why}.",
            round(rel, 3), bar_rel)]
    return []


# ----------------------------------------------------------------------------- training domain


def check_domain(
    hu: FloatArray,
    intracranial: BoolArray,
    pixel_spacing_mm: tuple[float, float],
    slice_thickness_mm: float | npt.ArrayLike,
    slice_normal: npt.ArrayLike,
    *,
    intracranial_ml: float | None = None,
    bone_hu: float = 300.0,
    enhanced_hu: tuple[float, float] = (150.0, 300.0),
    enhanced_ml: float = 1.5,
    enhanced_min_component_ml: float = 0.05,
    bone_margin_mm: float = 2.0,
    paediatric_ml: float = 900.0,
    paediatric_area_cm2: float = 110.0,
    max_tilt_deg: float = 25.0,
    unread_slices: Sequence[int] = (),
) -> list[QualityFlag]:
    """Contrast enhancement, a paediatric head, a non-axial orientation.

    Parameters
    ----------
    hu, intracranial:
        HU volume and intracranial mask.
    pixel_spacing_mm, slice_thickness_mm:
        (row, column) spacing and each slice's thickness (mm).
    slice_normal:
        Unit normal of the slices (row x column direction) in patient coordinates.
    intracranial_ml:
        Intracranial volume if already measured (else computed from the mask).
    bone_hu:
        Bone threshold the intracranial finder used (the clip value when the
        image was clipped below 300 HU): voxels next to bone are its edge.
    enhanced_hu, enhanced_ml, enhanced_min_component_ml, bone_margin_mm, paediatric_ml, paediatric_area_cm2, \
max_tilt_deg:
        See :class:`~ichpipe.pipeline.config.quality_config.DomainConfig`.
    unread_slices:
        Slices not looked at for enhancement: metal's streaks lie at enhanced-vessel density
        (``metal_artifact``'s slices and their neighbours), and so do the thin, partial-volumed bones
        of the skull base (the slices the intracranial finder reached across a failed slice).
    """
    flags: list[QualityFlag] = []
    spacing = (float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1]))
    voxel_ml = _voxel_ml(spacing, slice_thickness_mm, hu.shape[0])
    skipped = set(unread_slices)
    normal = np.asarray(slice_normal, dtype=np.float64)
    norm = float(np.linalg.norm(normal))
    if norm > 0:
        tilt = math.degrees(math.acos(min(1.0, abs(float(normal[2])) / norm)))
        if tilt > max_tilt_deg:
            flags.append(QualityFlag(
                "out_of_domain_orientation",
                f"The slices are {tilt:.0f} deg from axial: the network was trained on axial slices.",
                round(tilt, 1), max_tilt_deg))
    if not intracranial.any():
        return flags
    # contrast: enhanced-range voxels inside or just around the intracranial space, away from bone
    ry, rx = max(1, round(3.0 / spacing[0])), max(1, round(3.0 / spacing[1]))
    by, bx = max(1, round(bone_margin_mm / spacing[0])), max(1, round(bone_margin_mm / spacing[1]))
    enhanced = np.zeros(hu.shape, dtype=bool)
    lo, hi = enhanced_hu[0], min(enhanced_hu[1], bone_hu)  # a clip below 300 HU moves bone down
    margin = max(ry, rx, by, bx) + 1
    for z in np.flatnonzero(intracranial.any(axis=(1, 2))):
        if int(z) in skipped:
            continue
        plane = np.asarray(hu[z])
        candidate = (plane >= lo) & (plane < hi)
        if not candidate.any():
            continue
        box = _box(candidate, margin)
        near = dilate_rect(intracranial[z][box], ry, rx)
        bone = dilate_rect(plane[box] >= bone_hu, by, bx)
        enhanced[z][box] = near & ~bone & candidate[box]
    if enhanced.any():
        amount = mask_volume_ml(components_at_least_3d(enhanced, voxel_ml, enhanced_min_component_ml), voxel_ml)
        if amount >= enhanced_ml:
            flags.append(QualityFlag(
                "out_of_domain_contrast",
                f"{amount:.1f} mL of intracranial tissue is at {lo:.0f}-{hi:.0f} HU away from bone (enhancing vessels"
                " or sinuses): the study looks contrast-enhanced, and the network saw only non-contrast CT.",
                round(amount, 2), enhanced_ml))
    del enhanced
    icv = intracranial_ml if intracranial_ml is not None else mask_volume_ml(intracranial, voxel_ml)
    area = float(max(int(p.sum()) for p in intracranial)) * spacing[0] * spacing[1] / 100.0
    if icv < paediatric_ml and area < paediatric_area_cm2:
        flags.append(QualityFlag(
            "out_of_domain_paediatric",
            f"The intracranial space is {icv:.0f} mL with a largest section of {area:.0f} cm^2, a child's size:"
            " the network saw adult heads only.",
            round(icv, 1), paediatric_ml))
    return flags
