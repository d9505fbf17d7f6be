"""A clot's less dense side, read beside the found blood by a network trained on blend signs.

An acute haematoma may show a dense part and, beyond a sharp margin, a side of 35-50 HU (the blend
sign). The main network reads such a side as the brain beside it (MODEL_CARD.md "The blend sign
measured again"); a network fine-tuned on studies made with ``ichpipe train data --blend-fraction``
reads it, but also calls brain-density tissue elsewhere. This step keeps only what bears on the
found blood: the second network's call, on the slices that hold blood, that is not blood already,
lies in the side's density range (the slice's 3x3 median: noise is
smoothed, the partial-volume ring around a dense clot is not taken) and is joined (26-connected)
to a found component whose median is dense. It is measured (``details["blend_side"]``, the
``blend_side`` quality flag) or, with ``inference.blend_side.add``, added to the blood.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.pipeline.segment.components import components_by_median_3d, grow_into, mask_volume_ml
from ichpipe.pipeline.segment.segmenter import SegmentationResult

__all__ = ["BlendSideRead", "read_blend_side", "with_blend_side", "with_uncounted_side"]

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class BlendSideRead:
    """What the blend-side network reads beside the found blood.

    Attributes
    ----------
    side:
        The voxels it reads as a dense clot's less dense side (not blood already).
    side_ml:
        Their volume.
    slices_run:
        How many slices it read.
    """

    side: BoolArray
    side_ml: float
    slices_run: int


def read_blend_side(found: BoolArray, call: Callable[[Sequence[int]], BoolArray], hu: npt.NDArray[np.floating], *,
                    voxel_volumes_ml: npt.ArrayLike, min_hu: float, max_hu: float, min_clot_median_hu: float,
                    allowed: BoolArray | None = None) -> BlendSideRead:
    """The second network's call beside ``found``'s dense components, within a side's density.

    Parameters
    ----------
    found:
        The blood found so far, shape ``(slices, rows, columns)``.
    call:
        ``call(slices)``: the network's bool call on those slices, shape ``(len(slices), rows, columns)``.
    hu:
        The volume in HU.
    voxel_volumes_ml:
        One voxel's volume per slice (or one value).
    min_hu, max_hu:
        The side's density: the slice's 3x3 median lies within it.
    min_clot_median_hu:
        Only components of ``found`` with at least this median HU are a clot's dense part.
    allowed:
        Where voxels may be read (the intracranial space); ``None``: anywhere.

    Examples
    --------
    >>> hu = np.full((3, 12, 12), 30.0); hu[1, 3:7, 3:7] = 70.0; hu[1, 3:7, 7:10] = 42.0
    >>> found = hu > 60
    >>> read = read_blend_side(found, lambda s: np.ones((len(s), 12, 12), dtype=bool), hu,
    ...                        voxel_volumes_ml=0.001, min_hu=33.0, max_hu=55.0, min_clot_median_hu=55.0)
    >>> int(read.side[1].sum()), read.slices_run  # the 12-pixel side but its outer corners (3x3 median: brain)
    (10, 1)
    """
    if found.ndim != 3 or hu.shape != found.shape:
        raise ValueError(f"Arguments 'found' and 'hu' must be 3D of one shape; got {found.shape} and {hu.shape}.")
    if not min_hu < max_hu:
        raise ValueError(f"Argument 'min_hu' must be below 'max_hu'; got {min_hu} and {max_hu}.")
    side = np.zeros(found.shape, dtype=bool)
    dense, _ = components_by_median_3d(found, hu, above=min_clot_median_hu)
    slices = [int(z) for z in np.flatnonzero(dense.reshape(dense.shape[0], -1).any(axis=1))]
    if not slices:
        return BlendSideRead(side=side, side_ml=0.0, slices_run=0)
    called = np.zeros(found.shape, dtype=bool)
    called[slices] = call(slices)
    smooth = ndimage.median_filter(hu[slices].astype(np.float32), size=(1, 3, 3))
    band = np.zeros(found.shape, dtype=bool)
    band[slices] = (smooth >= min_hu) & (smooth <= max_hu)
    region = called & band & ~found
    if allowed is not None:
        region &= allowed
    side = grow_into(dense, region) & region
    return BlendSideRead(side=side, side_ml=mask_volume_ml(side, voxel_volumes_ml), slices_run=len(slices))


def with_blend_side(result: SegmentationResult, read: BlendSideRead, volume: CTVolume, *,
                    add: bool) -> SegmentationResult:
    """``result`` with ``details["blend_side"]`` (``side_ml``, ``slices_run``, ``added_ml``); the side is added
    to the mask when ``add``."""
    counts = {"side_ml": round(read.side_ml, 4), "slices_run": read.slices_run}
    if add:
        return result.with_addition(volume, "blend_side", result.mask | read.side, read.side, **counts)
    return replace(result, details={**result.details, "blend_side": {**counts, "added_ml": 0.0}})


def with_uncounted_side(result: SegmentationResult, read: BlendSideRead, volume: CTVolume) -> SegmentationResult:
    """``result`` with ``details["blend_side"]["uncounted_ml"]``: the part of the side its final mask does not
    hold (the later steps, the partial-volume rim and the enclosed fill, take some of it in)."""
    uncounted = mask_volume_ml(read.side & ~result.mask, volume.geometry.voxel_volumes_ml)
    details = {**result.details, "blend_side": {**result.details["blend_side"], "uncounted_ml": round(uncounted, 4)}}
    return replace(result, details=details)
