"""Calcifications the networks call blood: components made of foci denser than acute blood.

Physiological calcifications of the basal ganglia (globus pallidus), the dentate nuclei and the falx
are common on the CT of older patients, the people who have strokes. On 4-5 mm slices a cluster of
small calcifications reads as a patch of 60-140 HU with brighter specks: the shipped network, which
learnt only pineal and choroid-plexus calcifications as hard negatives, calls such a patch painted
into the real GE head blood (0.9-3.5 mL on a normal head, with no flag but a false
``out_of_domain_contrast``; ``bench/calcifications.py``, ``MODEL_CARD.md``). Its median stays under
``anatomy.brain_hu``'s top (120 HU), so
:func:`~ichpipe.pipeline.segment.components.drop_dense_components_3d` keeps it.

What tells it from a clot is its foci: an acute clot is 50-90 HU (up to about 100 HU when it retracts),
so no part of it, once smoothed in plane against noise, reaches ``min_hu`` (110 HU) and stands
``min_contrast_hu`` (30 HU) above the clot's median (a dense clot's noise on thin slices does not); a
calcified patch is mostly such foci and the partial-volume shoulder round them. A component of the networks' mask
with at least ``min_share`` of its voxels within ``margin_mm`` (in plane) of such a focus is not
counted; in the other components the voxels that near a focus are not counted either (a calcified
globus pallidus beside a putaminal clot, which the network calls as one piece with it). Foci within
``edge_mm`` of the intracranial edge do not count (the inner table's partial volume beside a
collection against it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe.pipeline.segment.components import bounding_box, disk_2d, mask_volume_ml
from ichpipe.pipeline.segment.intracranial import plane_depth_mm

__all__ = ["CalcifiedComponents", "calcified_components"]

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.floating]


@dataclass(frozen=True)
class CalcifiedComponents:
    """What :func:`calcified_components` found.

    Attributes
    ----------
    mask:
        The components that are calcification (bool, the mask's shape).
    count:
        How many components they are.
    shares:
        Each component's share of voxels near a focus, for every component of the mask (for the report).
    parts:
        The voxels near a focus in the other components (bool): a calcification beside or inside a clot
        and its partial-volume shoulder, not blood either.
    shoulder:
        Every voxel near a focus, in the mask or not (bool): where a looser call is not blood either.
    """

    mask: BoolArray
    count: int
    shares: tuple[float, ...]
    parts: BoolArray
    shoulder: BoolArray

    def removed_ml(self, voxel_volumes_ml: npt.ArrayLike) -> float:
        """The volume of the calcified components (mL)."""
        return mask_volume_ml(self.mask, voxel_volumes_ml)

    def parts_ml(self, voxel_volumes_ml: npt.ArrayLike) -> float:
        """The volume of the calcified parts of the other components (mL)."""
        return mask_volume_ml(self.parts, voxel_volumes_ml)


def calcified_components(
    mask: BoolArray,
    hu: FloatArray,
    intracranial: BoolArray,
    *,
    pixel_spacing_mm: tuple[float, float],
    min_hu: float = 110.0,
    min_contrast_hu: float = 30.0,
    margin_mm: float = 2.0,
    edge_mm: float = 3.0,
    smooth_mm: float = 1.5,
    min_share: float = 0.5,
) -> CalcifiedComponents:
    """The 26-connected components of ``mask`` that are mostly calcification (see the module's docstring).

    Parameters
    ----------
    mask:
        The networks' blood, bool (slices, rows, columns).
    hu:
        The volume in HU, the mask's shape.
    intracranial:
        The intracranial space, the mask's shape.
    pixel_spacing_mm:
        Row and column spacing.
    min_hu, min_contrast_hu:
        A focus: a voxel of the component whose in-plane median over ``smooth_mm`` is at least ``min_hu``
        and at least ``min_contrast_hu`` above the component's median (a dense clot's noise on thin slices
        is not a focus).
    margin_mm:
        A component's voxel lies near a focus within this distance in plane (the partial-volume shoulder).
    edge_mm:
        Foci closer than this (in plane) to the intracranial edge do not count.
    smooth_mm:
        Width of the in-plane median (odd pixels, at least 1).
    min_share:
        A component with at least this share of its voxels near a focus is calcification.

    Examples
    --------
    >>> hu = np.full((2, 40, 40), 40.0); space = np.ones(hu.shape, dtype=bool)
    >>> hu[:, 8:14, 8:14] = 150.0; hu[:, 25:35, 25:35] = 75.0  # a dense focus; a clot
    >>> blood = np.zeros(hu.shape, dtype=bool); blood[:, 6:16, 6:16] = True; blood[:, 25:35, 25:35] = True
    >>> found = calcified_components(blood, hu, space, pixel_spacing_mm=(0.5, 0.5))
    >>> found.count, bool(found.mask[0, 7, 7]), bool(found.mask[0, 30, 30]), int(found.parts.sum())
    (1, True, False, 0)
    """
    if mask.shape != hu.shape or mask.shape != intracranial.shape or mask.ndim != 3:
        raise ValueError(f"Arguments 'mask', 'hu' and 'intracranial' must be 3D of one shape; got {mask.shape},"
                         f" {hu.shape} and {intracranial.shape}.")
    if not 0.0 < min_share <= 1.0:
        raise ValueError(f"Argument 'min_share' must lie in (0, 1]; got {min_share!r}.")
    out = np.zeros(mask.shape, dtype=bool)
    size = max(1, round(smooth_mm / float(pixel_spacing_mm[0]))) | 1
    box = bounding_box(mask, margin=size + int(np.ceil(margin_mm / min(pixel_spacing_mm))))
    if box is None:
        return CalcifiedComponents(out, 0, (), out.copy(), out.copy())
    crop = mask[box]
    labels, n = ndimage.label(crop, structure=np.ones((3, 3, 3), dtype=bool))
    index = np.arange(1, n + 1)
    values = np.asarray(hu[box], dtype=np.float32)
    medians = np.asarray(ndimage.median(values, labels, index), dtype=np.float32)
    floor = np.maximum(min_hu, np.concatenate([[np.inf], medians + min_contrast_hu]))[labels]
    focus = crop & (ndimage.median_filter(values, size=(1, size, size)) >= floor)
    for z in np.flatnonzero(focus.any(axis=(1, 2))):
        focus[z] &= plane_depth_mm(intracranial[box[0]][z], pixel_spacing_mm)[box[1:]] >= edge_mm
    shoulder = ndimage.binary_dilation(focus, structure=disk_2d(margin_mm, pixel_spacing_mm)[None])
    near = shoulder & crop
    counts = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    shares = np.bincount(labels[near], minlength=n + 1)[1:] / counts
    calcified = index[shares >= min_share]
    out[box] = np.isin(labels, calcified)
    parts, around = np.zeros(mask.shape, dtype=bool), np.zeros(mask.shape, dtype=bool)
    parts[box], around[box] = near & ~out[box], shoulder
    return CalcifiedComponents(out, len(calcified), tuple(round(float(s), 3) for s in shares), parts, around)
