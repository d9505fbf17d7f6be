"""Subarachnoid blood: the CSF of the sulci and fissures of a real head replaced by blood.

Subarachnoid haemorrhage lies where the CSF around the brain is: in the sulci over the convexity,
the Sylvian and interhemispheric fissures. :func:`find_sulcal_csf` finds that CSF in a real
scan (in a phantom head, the CSF pockets of its crude cortical outline) as a fractional CSF
share per voxel; :func:`insert_subarachnoid` replaces the CSF share of each voxel in a region by
blood, which keeps the partial volume of thin sulci and the scanner's noise:
``hu + share * (blood_hu - csf_hu)``. The truth mask is ``share >= 0.5``.

Two patterns: ``convexity`` (a sector of the convexity over some slices, as after trauma or in
amyloid angiopathy) and ``diffuse`` (every sulcus and fissure within reach of the table over the
wide slices, as after an aneurysm ruptures; the basal cisterns are not painted, see
:func:`find_sulcal_csf`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe.pipeline.segment.components import disk_2d
from ichpipe.pipeline.synthetic.lesion_common import (
    F32,
    BoolArray,
    InsertedLesion,
    Spacing,
    check_inputs,
    distance_to_table,
    in_range,
    polar,
    texture,
    wide_slices,
)
from ichpipe.pipeline.synthetic.ventricular_blood import find_ventricles

__all__ = ["SUBARACHNOID_HU", "find_sulcal_csf", "insert_subarachnoid"]

#: Band of the mean HU of subarachnoid blood (acute; thin layers read lower by partial volume).
SUBARACHNOID_HU: tuple[float, float] = (50.0, 75.0)

SubarachnoidPattern = Literal["convexity", "diffuse"]


def find_sulcal_csf(
    hu: npt.NDArray[np.floating],
    intracranial: BoolArray,
    spacing: Spacing,
    *,
    csf_max_hu: float = 14.0,
    grey_hu: float = 30.0,
    max_width_mm: float = 6.0,
    min_area_mm2: float = 4.0,
    min_area_fraction: float = 0.4,
) -> F32:
    """The CSF share (0-1) of each voxel in the sulci and fissures.

    Voxels of the volume smoothed in-plane (Gaussian, sigma 0.5 mm, at least 0.7 pixel) under
    ``csf_max_hu`` are CSF, in pieces of at least ``min_area_mm2`` on their slice (not noise);
    what stays after an in-plane opening with a disk of diameter ``max_width_mm`` is wide CSF
    (ventricles, cisterns, old infarcts), which is left out with the ventricles
    (:func:`~ichpipe.pipeline.synthetic.ventricular_blood.find_ventricles`) and a 2-pixel margin.
    The rest, grown by one pixel for its partial-volume edge, gets the share
    ``(grey_hu - smoothed) / (grey_hu - csf_level)`` clipped to 0-1, ``csf_level`` being the median
    smoothed HU of the sulcal CSF. Only slices whose intracranial area is at least
    ``min_area_fraction`` of the largest (not the skull base, whose bone edges read as CSF).

    Raises
    ------
    ValueError
        If the volume and mask do not match or an argument is out of range.
    """
    check_inputs(np.asarray(hu), intracranial, spacing)
    in_range("max_width_mm", max_width_mm, 1.0, 20.0)
    in_range("min_area_fraction", min_area_fraction, 0.0, 1.0)
    in_range("min_area_mm2", min_area_mm2, 0.0, 100.0)
    if not csf_max_hu < grey_hu:
        raise ValueError(f"Argument 'csf_max_hu' must be below 'grey_hu'; got {csf_max_hu!r} and {grey_hu!r}.")
    sigma = (0.0, max(0.5 / spacing[1], 0.7), max(0.5 / spacing[2], 0.7))
    smooth = ndimage.gaussian_filter(np.asarray(hu, dtype=np.float32), sigma)
    wide = wide_slices(intracranial, min_area_fraction)
    csf = intracranial & (smooth < csf_max_hu) & (smooth > -30.0) & wide[:, None, None]
    eight = np.zeros((3, 3, 3), dtype=bool)
    eight[1] = True
    labels, _n = ndimage.label(csf, structure=eight)  # pieces on their slice
    pixels = np.bincount(labels.ravel())
    pixels[0] = 0
    csf &= (pixels * spacing[1] * spacing[2] >= min_area_mm2)[labels]
    disk = disk_2d(0.5 * max_width_mm, (spacing[1], spacing[2]))[None]
    wide_csf = ndimage.binary_opening(csf, structure=disk)
    in_plane = np.zeros((3, 3, 3), dtype=bool)
    in_plane[1] = ndimage.generate_binary_structure(2, 1)
    excluded = ndimage.binary_dilation(wide_csf | find_ventricles(hu, intracranial, spacing), structure=in_plane,
                                       iterations=2)
    sulcal = csf & ~excluded
    if not sulcal.any():
        return np.zeros(np.shape(hu), dtype=np.float32)
    level = min(float(np.median(smooth[sulcal])), grey_hu - 10.0)
    edge = ndimage.binary_dilation(sulcal, structure=np.ones((1, 3, 3), dtype=bool)) & intracranial & ~excluded
    share = np.clip((grey_hu - smooth) / (grey_hu - level), 0.0, 1.0)
    return np.where(edge, share, 0.0).astype(np.float32)


def insert_subarachnoid(
    hu: npt.NDArray[np.floating],
    intracranial: BoolArray,
    spacing: Spacing,
    *,
    pattern: SubarachnoidPattern = "convexity",
    angle_deg: float = 0.0,
    arc_deg: float = 90.0,
    centre_slice: float | None = None,
    extent_mm: float = 40.0,
    depth_mm: float = 20.0,
    spared_fraction: float = 0.25,
    level_hu: float | None = None,
    csf_share: F32 | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[F32, InsertedLesion]:
    """Replace the CSF of the sulci in a region by blood.

    Parameters
    ----------
    pattern:
        ``convexity``: the sector ``angle_deg`` +- ``arc_deg`` / 2 (the angle as in
        :func:`~ichpipe.pipeline.synthetic.lesion_common.polar`) over ``extent_mm`` of slices around
        ``centre_slice``; ``diffuse``: every direction and every slice (``angle_deg``, ``arc_deg``,
        ``centre_slice`` and ``extent_mm`` unused).
    depth_mm:
        How far from the inner table (in-plane) sulci are filled, 5-60 mm.
    spared_fraction:
        Share of the region (in smooth patches) left as CSF, 0-0.9: blood does not reach every sulcus.
    level_hu:
        Mean HU of the blood (drawn in :data:`SUBARACHNOID_HU` when ``None``).
    csf_share:
        :func:`find_sulcal_csf` of the volume, when already computed.

    Raises
    ------
    ValueError
        If no sulcal CSF lies in the region, the arrays do not match, or an argument is out of range.
    """
    check_inputs(np.asarray(hu), intracranial, spacing)
    if pattern not in ("convexity", "diffuse"):
        raise ValueError(f"Argument 'pattern' must be 'convexity' or 'diffuse'; got {pattern!r}.")
    in_range("arc_deg", arc_deg, 10.0, 360.0)
    in_range("extent_mm", extent_mm, 5.0, 300.0)
    in_range("depth_mm", depth_mm, 5.0, 60.0)
    in_range("spared_fraction", spared_fraction, 0.0, 0.9)
    rng = rng or np.random.default_rng(0)
    share = find_sulcal_csf(hu, intracranial, spacing) if csf_share is None else csf_share
    if share.shape != np.shape(hu):
        raise ValueError(f"Argument 'csf_share' has shape {share.shape}; the volume is {np.shape(hu)}.")
    region = intracranial & (distance_to_table(intracranial, spacing) <= depth_mm)
    if pattern == "convexity":
        angle, _radius = polar(intracranial, spacing)
        off = np.degrees(np.angle(np.exp(1j * (angle - np.radians(angle_deg)))))
        slices = np.arange(np.shape(hu)[0], dtype=np.float64)
        centre = float(np.shape(hu)[0] // 2) if centre_slice is None else float(centre_slice)
        near = np.abs(slices - centre) * spacing[0] <= 0.5 * extent_mm
        region &= (np.abs(off) <= 0.5 * arc_deg) & near[:, None, None]
    if spared_fraction > 0 and region.any():
        patches = texture(np.shape(hu), spacing, rng, 6.0)
        region &= patches > np.quantile(patches[region], spared_fraction)
    occ = np.where(region, share, 0.0).astype(np.float32)
    if not (occ >= 0.5).any():
        raise ValueError("No sulcal CSF lies in the region.")
    low, high = SUBARACHNOID_HU
    mean = float(rng.uniform(low, high)) if level_hu is None else float(level_hu)
    in_range("level_hu", mean, 0.0, 120.0)
    blood = mean + 3.0 * texture(np.shape(hu), spacing, rng, 4.0)
    csf_level = float(np.median(np.asarray(hu, dtype=np.float32)[occ >= 0.9])) if (occ >= 0.9).any() else 8.0
    out = (np.asarray(hu, dtype=np.float32) + occ * (blood - np.float32(csf_level))).astype(np.float32)
    mask = occ >= 0.5
    voxel_ml = spacing[0] * spacing[1] * spacing[2] / 1000.0
    return out, InsertedLesion("subarachnoid", pattern, mask, occ, mean, float(mask.sum()) * voxel_ml, 0.0)
