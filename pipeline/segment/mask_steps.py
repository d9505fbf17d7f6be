"""The steps on the main network's thresholded mask that read HU, not a network.

:class:`~ichpipe.pipeline.segment.inference.NetworkSegmenter` runs them in this order after the
intracranial restriction: components that are not blood dropped (:func:`without_not_blood`), faint
components grown into the network's looser call (:func:`with_faint_growth`), and, after the end-slice
and extra-axial networks, the looser call beside the blood measured (:func:`with_loose_call`) and the
partial-volume rim added (:func:`with_edge_rim`); between those, bleeds and collections are grown beyond
their end slices while clot density lies under them (:func:`with_dense_ends`). Each returns a new
:class:`~ichpipe.pipeline.segment.segmenter.SegmentationResult` whose ``details`` say what it did.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.pipeline.config.anatomy_config import AnatomyConfig
from ichpipe.pipeline.config.inference_config import InferenceConfig
from ichpipe.pipeline.segment.calcified import calcified_components
from ichpipe.pipeline.segment.components import (
    bounding_box,
    components_at_least_3d,
    components_by_median_3d,
    drop_not_blood,
    grow_into,
    mask_volume_ml,
)
from ichpipe.pipeline.segment.edge_rim import grow_rim
from ichpipe.pipeline.segment.end_extension import continue_dense_ends, fill_between_slices
from ichpipe.pipeline.segment.intracranial import IntracranialResult
from ichpipe.pipeline.segment.segmenter import SegmentationResult

__all__ = ["kept_inside", "space_kept", "with_dense_ends", "with_edge_rim", "with_faint_growth", "with_loose_call",
           "without_calcified", "without_not_blood"]

BoolArray = npt.NDArray[np.bool_]


def space_kept(intracranial: IntracranialResult | None, config: InferenceConfig) -> BoolArray | None:
    """The intracranial space when ``config`` restricts to it and it is known, else ``None`` (anywhere)."""
    return intracranial.mask if config.restrict_to_intracranial and intracranial is not None else None


def kept_inside(region: BoolArray, intracranial: IntracranialResult | None, config: InferenceConfig) -> BoolArray:
    """``region`` within the intracranial space when ``config`` restricts to it and it is known."""
    space = space_kept(intracranial, config)
    return region if space is None else region & space


def with_edge_rim(result: SegmentationResult, found: BoolArray, volume: CTVolume,
                  intracranial: IntracranialResult | None, config: InferenceConfig,
                  anatomy: AnatomyConfig) -> SegmentationResult:
    """``result`` with the partial-volume rim of ``found`` (:func:`grow_rim`; ``details["edge_rim"]``)."""
    if config.rim_mm is None:
        raise ValueError("Argument 'config' must set rim_mm to grow a rim.")
    rim = grow_rim(found, volume.hu, pixel_spacing_mm=volume.geometry.pixel_spacing_mm, rim_mm=config.rim_mm,
                   min_hu=config.rim_min_hu, max_hu=anatomy.brain_hu[1], bone_hu=anatomy.bone_min_hu,
                   allowed=kept_inside(~result.mask, intracranial, config))
    details = {"rim_mm": config.rim_mm, "min_hu": config.rim_min_hu, "steps": rim.steps}
    return result.with_addition(volume, "edge_rim", result.mask | rim.added, rim.added, **details)


def with_dense_ends(result: SegmentationResult, volume: CTVolume, intracranial: IntracranialResult | None,
                    config: InferenceConfig, anatomy: AnatomyConfig) -> SegmentationResult:
    """``result`` grown beyond its bleeds' lower end slices (with ``fill_end_slice``, the default, those end slices
    filled first), and with ``toward: both`` (the default) beyond their upper ones where clot density covers
    ``head_min_cover`` of the end's blood, while clot density lies under them (``inference.dense_ends``,
    :func:`continue_dense_ends`; ``details["dense_ends"]``); then, with ``fill_between_rounds``, each slice of the
    blood filled over clot density under the blood on the slices beside it (:func:`fill_between_slices`)."""
    dense = config.dense_ends
    if dense.min_hu is None:
        raise ValueError("Argument 'config' must set dense_ends.min_hu to grow bleeds at their ends.")
    geometry = volume.geometry
    # the clot-density test both the walks and the fill read
    density: dict[str, Any] = {"pixel_spacing_mm": geometry.pixel_spacing_mm, "hu_band": (dense.min_hu, dense.max_hu),
                               "hu_range": anatomy.brain_hu, "radius_mm": dense.radius_mm, "edge_mm": dense.edge_mm,
                               "min_area_mm2": dense.min_area_mm2, "allowed": space_kept(intracranial, config)}
    walk = partial(continue_dense_ends, hu=volume.hu, offsets_mm=geometry.offsets_mm, depth_mm=dense.depth_mm,
                   **density)
    # the slice order's way to the feet (one slice: no end to walk beyond either way)
    feet = 1 if geometry.positions[-1, 2] < geometry.positions[0, 2] else -1
    grown = walk(mask=result.mask, step=feet, fill_end=dense.fill_end_slice)
    added = grown.added
    if dense.toward == "both":  # toward the head too, where a clot must go on under most of its section
        up = walk(mask=grown.mask, step=-feet, min_cover=dense.head_min_cover)
        added = added | up.added
    if dense.fill_between_rounds:  # then each slice under the blood beside it
        between = fill_between_slices(result.mask | added, volume.hu, rounds=dense.fill_between_rounds,
                                      head_step=-feet, **density)
        added = added | between.added
    return result.with_addition(volume, "dense_ends", result.mask | added, added,
                                slices_extended=int(added.any(axis=(1, 2)).sum()))


def with_faint_growth(result: SegmentationResult, loose: BoolArray, volume: CTVolume,
                      intracranial: IntracranialResult | None, config: InferenceConfig,
                      anatomy: AnatomyConfig) -> SegmentationResult:
    """``result`` with its faint components (median under ``faint_max_median_hu``) grown into ``loose``.

    The growth is 26-connected, intracranial, from ``faint_min_hu`` to the top of ``anatomy.brain_hu``
    (120 HU: no calcification or bone). Where the mask holds an acute component (not faint) of at least
    ``faint_beside_acute_ml``, faint components smaller than that do not grow (pieces of brain the network
    calls beside a dense bleed). ``details["faint_growth"]`` says what it added and how many faint
    components it left as they were (``small_beside_acute``).
    """
    if config.faint_max_median_hu is None:
        raise ValueError("Argument 'config' must set faint_max_median_hu to grow faint blood.")
    seeds, n = components_by_median_3d(result.mask, volume.hu, below=config.faint_max_median_hu)
    held = 0
    if n and config.faint_beside_acute_ml is not None:
        seeds, held = _small_faint_held(result.mask, seeds, volume.geometry.voxel_volumes_ml,
                                        config.faint_beside_acute_ml)
        n -= held
    if n == 0 and not held:
        return result
    grown = np.zeros_like(result.mask)
    if n:  # not into oedema or CSF, nor into calcification or bone (over the top of anatomy.brain_hu)
        hu = volume.hu
        region = kept_inside(loose & ~result.mask & (hu >= config.faint_min_hu) & (hu <= anatomy.brain_hu[1]),
                             intracranial, config)
        grown = grow_into(seeds, region) & region
    return result.with_addition(volume, "faint_growth", result.mask | grown, grown, components_grown=n,
                                small_beside_acute=held)


def _small_faint_held(mask: BoolArray, faint: BoolArray, voxel_ml: npt.ArrayLike,
                      limit_ml: float) -> tuple[BoolArray, int]:
    """``faint`` without its components under ``limit_ml`` when ``mask`` holds another (acute) component of at
    least ``limit_ml``, and how many it left out."""
    if not components_at_least_3d(mask & ~faint, voxel_ml, limit_ml).any():
        return faint, 0
    large = components_at_least_3d(faint, voxel_ml, limit_ml)
    small = faint & ~large
    box = bounding_box(small)
    if box is None:
        return faint, 0
    return large, int(ndimage.label(small[box], structure=np.ones((3, 3, 3), dtype=bool))[1])


def with_loose_call(result: SegmentationResult, loose: BoolArray, volume: CTVolume,
                    intracranial: IntracranialResult | None, config: InferenceConfig) -> SegmentationResult:
    """``result`` with ``details["loose_call"]``: how uncertain the blood's edge is.

    The mL of the main network's call at ``loose_threshold`` that touches the final blood
    (26-connected) and is not blood already, plus what the faint growth took of it (so the figure does
    not shrink when it grows).
    """
    region = kept_inside(loose & ~result.mask, intracranial, config)
    beside = grow_into(result.mask, region) & region if result.mask.any() else np.zeros_like(region)
    details = dict(result.details)
    grown_ml = float((details.get("faint_growth") or {}).get("added_ml") or 0.0)
    beside_ml = mask_volume_ml(beside, volume.geometry.voxel_volumes_ml) + grown_ml
    details["loose_call"] = {"threshold": config.loose_threshold, "beside_ml": round(beside_ml, 4)}
    return replace(result, details=details)


def without_not_blood(result: SegmentationResult, volume: CTVolume, config: InferenceConfig,
                      anatomy: AnatomyConfig) -> SegmentationResult:
    """``result`` without components denser than blood and small pieces on bone's edge (:func:`drop_not_blood`)."""
    kept, removed = drop_not_blood(result.mask, volume.hu, pixel_spacing_mm=volume.geometry.pixel_spacing_mm,
                                   voxel_volumes_ml=volume.geometry.voxel_volumes_ml,
                                   max_median_hu=anatomy.brain_hu[1], bone_hu=anatomy.bone_min_hu,
                                   bone_edge_max_ml=config.bone_edge_max_ml, bone_edge_share=config.bone_edge_share)
    return replace(result, mask=kept, details={**result.details, **removed}) if removed else result


def without_calcified(result: SegmentationResult, loose: BoolArray | None, volume: CTVolume,
                      intracranial: IntracranialResult, config: InferenceConfig
                      ) -> tuple[SegmentationResult, BoolArray | None]:
    """``result`` without its components that are mostly calcification and without the calcified parts of
    the others (:func:`calcified_components`; ``details["calcified"]`` whenever there was blood: also the
    largest share of a component near a dense focus), and the looser call ``loose`` without them and their
    shoulders (no faint growth into them, no faint edge measured there)."""
    settings = config.calcified
    if settings.min_share is None:
        raise ValueError("Argument 'config' must set calcified.min_share to drop calcified components.")
    found = calcified_components(result.mask, volume.hu, intracranial.mask,
                                 pixel_spacing_mm=volume.geometry.pixel_spacing_mm, **asdict(settings))
    if not found.shares:
        return result, loose
    voxel_ml = volume.geometry.voxel_volumes_ml
    details = {"components_removed": found.count, "removed_ml": round(found.removed_ml(voxel_ml), 4),
               "parts_removed_ml": round(found.parts_ml(voxel_ml), 4), "largest_share": max(found.shares),
               "min_share": settings.min_share}
    if found.count or found.parts.any():  # the calcified components, and the foci with their shoulders
        dropped = found.mask | found.shoulder
        result = replace(result, mask=result.mask & ~dropped)
        loose = None if loose is None else loose & ~dropped
    return replace(result, details={**result.details, "calcified": details}), loose
