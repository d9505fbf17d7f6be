"""All the checks of one study, run in order on what ``run`` computed: :func:`assess_quality`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np

from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.pipeline.config.quality_config import QualityConfig
from ichpipe.pipeline.quality.blood_checks import (
    UntouchedPieces,
    check_blend_side,
    check_blood_density,
    check_hypodense_part,
    check_low_density_collection,
    check_skull_base_missed,
    check_uncertain_edge,
    check_untouched_blood,
)
from ichpipe.pipeline.quality.checks import (
    check_blood_at_edge,
    check_blood_outside_mask,
    check_clipping,
    check_disagreement,
    check_domain,
    check_hu_levels,
    check_image_noise,
    check_intracranial,
)
from ichpipe.pipeline.quality.coverage import check_coverage, check_field_of_view, field_edge, scan_ends
from ichpipe.pipeline.quality.dural_mass import check_dural_based_mass, domes_on_table
from ichpipe.pipeline.quality.flags import QualityReport
from ichpipe.pipeline.quality.fluid_level import check_fluid_level, find_fluid_level
from ichpipe.pipeline.quality.hypodense_at_skull import check_hypodense_at_skull, hypodense_at_skull
from ichpipe.pipeline.quality.inner_table import check_blood_at_skull, unsegmented_at_skull
from ichpipe.pipeline.quality.metal import check_metal, metal_in_head
from ichpipe.pipeline.quality.skipped_slice import check_skipped_slice, skipped_slice
from ichpipe.pipeline.segment.components import mask_volume_ml
from ichpipe.pipeline.segment.intracranial import IntracranialResult
from ichpipe.pipeline.segment.segmenter import SegmentationResult
from ichpipe.pipeline.segment.threshold import ThresholdSegmenter

__all__ = ["assess_quality"]


def assess_quality(
    volume: CTVolume,
    intracranial: IntracranialResult,
    segmentation: SegmentationResult,
    *,
    volumes_ml: Mapping[str, float] | None = None,
    skull_base_missed_ml: float | None = None,
    untouched: UntouchedPieces | None = None,
    bone_min_hu: float = 300.0,
    config: QualityConfig | None = None,
) -> QualityReport:
    """Run every quality check on one study.

    Parameters
    ----------
    volume:
        The assembled CT.
    intracranial:
        The intracranial space the mask was restricted to, with its method and measurements.
    segmentation:
        The main segmenter's result (mask, and what the restriction removed).
    volumes_ml:
        Volume per segmenter name when a cross-check ran beside the main
        segmenter (two or more entries), for ``segmenter_disagreement``.
    skull_base_missed_ml:
        What the threshold baseline beside a network found and the network did not on the slices the
        intracranial finder reached across a failed slice (``None``: not measured), for
        ``skull_base_blood_missed``.
    untouched:
        The baseline's pieces beside a network that the network does not touch, off those slices (``None``:
        not measured), for ``blood_missed_by_network``.
    bone_min_hu:
        The bone threshold of the ``anatomy`` config (a maximum below it: no bone in the image).
    config:
        Thresholds and options; see :class:`~ichpipe.pipeline.config.quality_config.QualityConfig`.

    Returns
    -------
    QualityReport
        Flags in the order of the checks, the finder's method and measurements, and the volumes compared.
    """
    cfg = config or QualityConfig()
    geo = volume.geometry
    m = intracranial.measurements
    report = QualityReport(intracranial=dict(m))
    edge = field_edge(intracranial.mask, volume.hu, geo.pixel_spacing_mm, band_mm=cfg.coverage.field_band_mm)
    cut = check_field_of_view(edge, min_edge_mm=cfg.coverage.min_field_edge_mm)
    space_flags = check_intracranial(
        intracranial_ml=intracranial.volume_ml,
        head_ml=intracranial.head_volume_ml,
        max_gap_deg=float(m.get("bridged_max_gap_deg") or 0.0),
        n_bridged_slices=int(m.get("n_slices_bridged") or 0),
        n_outline_slices=int(m.get("n_slices_outline") or 0),
        bone_share=float(m.get("bone_share_median") or 0.0),
        **asdict(cfg.intracranial),
    )
    if cut and _open_where_cut(intracranial, edge.touched_slices, cfg.intracranial.open_gap_deg):
        space_flags = [f for f in space_flags if f.code != "skull_open"]  # the cut opened the ring, not missing bone
    report.add(space_flags, "intracranial")
    ends = scan_ends(intracranial.mask, segmentation.mask, geo.pixel_spacing_mm, geo.normal)
    report.add(check_coverage(ends, min_blood_mm2=cfg.coverage.min_blood_mm2, max_end_share=cfg.coverage.max_end_share),
               "coverage")
    report.add(cut, "field_of_view")
    report.add(check_hu_levels(volume.hu, intracranial.mask, **asdict(cfg.hu_levels)), "hu_levels")
    report.add(check_clipping(volume.hu, bone_hu=bone_min_hu, **asdict(cfg.clipping)), "clipping")
    measurements: dict[str, Any] = {"scan_ends": [e.to_dict() for e in ends],
                                    "field_edge": edge.to_dict(cfg.coverage.min_field_edge_mm)}
    streaked: set[int] = set()  # metal's slices and their neighbours: not read for contrast enhancement
    if cfg.metal.min_ml is not None:
        metal = metal_in_head(volume.hu, intracranial.mask, geo.pixel_spacing_mm, geo.voxel_volumes_ml,
                              metal_hu=cfg.metal.metal_hu, margin_mm=cfg.metal.margin_mm)
        flagged = check_metal(metal, min_ml=cfg.metal.min_ml)
        report.add(flagged, "metal")
        measurements["metal_in_head"] = metal.to_dict()
        if flagged:
            streaked = {z + d for z in metal.slices for d in (-1, 0, 1)}
    # where the image was clipped below bone, bone is at the clip value (math.inf: no bone can be told)
    bone_hu = intracranial.levels.bone_threshold_hu
    # air bounds blood where bone closes the ring (in a skull-stripped export air may stand where the skull was)
    closed = () if intracranial.skull_stripped else [
        z for z, f in enumerate(intracranial.slices) if f.method == "closed" and f.bone_share >= 0.5]
    report.add(check_blood_at_edge(segmentation.mask, intracranial.mask, volume.hu, geo.pixel_spacing_mm,
                                   bone_hu=bone_hu, air_slices=closed, **asdict(cfg.blood_edge)), "blood_edge")
    report.add(check_blood_outside_mask(unrestricted_ml=segmentation.unrestricted_ml,
                                        removed_ml=segmentation.removed_ml, **asdict(cfg.blood_outside)),
               "blood_outside")
    report.add(check_blood_density(segmentation.mask, volume.hu, geo.voxel_volumes_ml, **asdict(cfg.blood_density)),
               "blood_density")
    if cfg.fluid_level.min_area_mm2 is not None and segmentation.mask.any():
        level = asdict(cfg.fluid_level)
        min_area = level.pop("min_area_mm2")
        found = find_fluid_level(segmentation.mask, volume.hu, geo, patient_position=_patient_position(volume), **level)
        report.add(check_fluid_level(found, min_area_mm2=min_area), "fluid_level")
        measurements["fluid_level"] = found.to_dict()
    if cfg.skipped_slice.min_area_mm2 is not None and segmentation.mask.any():
        skip = cfg.skipped_slice
        hole = skipped_slice(segmentation.mask, geo.pixel_spacing_mm, slack_mm=skip.slack_mm, max_run=skip.max_run)
        report.add(check_skipped_slice(hole, min_area_mm2=skip.min_area_mm2), "skipped_slice")
        measurements["skipped_slice"] = hole.to_dict()
    shape = cfg.dural_mass
    if shape.min_ml is not None and segmentation.mask.any():
        domes = domes_on_table(segmentation.mask, intracranial.mask, geo.pixel_spacing_mm, geo.slice_spacing_mm,
                               geo.voxel_volumes_ml, start_mm=shape.start_mm, band_mm=shape.band_mm,
                               min_ml=shape.min_ml)
        report.add(check_dural_based_mass(domes, min_base_mm2=shape.min_base_mm2, max_overhang=shape.max_overhang,
                                          dome_range=shape.dome_range), "dural_mass")
        measurements["table_domes"] = [d.to_dict() for d in domes]
    mask_ml = mask_volume_ml(segmentation.mask, geo.voxel_volumes_ml)
    if "loose_call" in segmentation.details:
        # against the volume before the faint growth, which took part of the loose call (beside_ml counts it),
        # and before the enclosed hypodense parts and the partial-volume rim (inference.enclosed_close_mm, rim_mm),
        # which the edge measure does not see
        grown_ml = sum(float((segmentation.details.get(key) or {}).get("added_ml") or 0.0)
                       for key in ("faint_growth", "enclosed_fill", "edge_rim"))
        report.add(check_uncertain_edge(segmentation.details["loose_call"], mask_ml - grown_ml,
                                        **asdict(cfg.uncertain_edge)), "uncertain_edge")
    if "blend_side" in segmentation.details:
        report.add(check_blend_side(segmentation.details["blend_side"], mask_ml, **asdict(cfg.blend_side)),
                   "blend_side")
    if "image_noise" in segmentation.details:
        report.add(check_image_noise(segmentation.details["image_noise"], **asdict(cfg.image_noise)), "image_noise")
    if "extra_axial" in segmentation.details:
        report.add(check_low_density_collection(segmentation.details["extra_axial"]), "extra_axial")
        report.add(check_hypodense_part(segmentation.details["extra_axial"], **asdict(cfg.hypodense_part)),
                   "hypodense_part")
    if math.isfinite(bone_hu) and not intracranial.skull_stripped:
        skull = asdict(cfg.blood_at_skull)
        min_ml = skull.pop("min_ml")
        missed_ml, per_slice = unsegmented_at_skull(volume.hu, intracranial.mask, segmentation.mask,
                                                    geo.pixel_spacing_mm, geo.slice_thickness_mm, bone_hu=bone_hu,
                                                    **skull)
        report.add(check_blood_at_skull(missed_ml, per_slice, min_ml=min_ml), "blood_at_skull")
        measurements["unsegmented_at_skull_ml"] = round(missed_ml, 3)
        hypo = asdict(cfg.hypodense_at_skull)
        flag_at = {key: hypo.pop(key) for key in ("min_ml", "max_other_share")}
        if flag_at["min_ml"] is not None:
            hypodense = hypodense_at_skull(volume.hu, intracranial.mask, segmentation.mask, geo, bone_hu=bone_hu,
                                           **hypo)
            report.add(check_hypodense_at_skull(hypodense, **flag_at), "hypodense_at_skull")
            measurements["hypodense_at_skull_ml"] = hypodense.to_dict()
    if segmentation.unrestricted_ml is not None:
        measurements["unrestricted_ml"] = segmentation.unrestricted_ml
        measurements["removed_outside_intracranial_ml"] = segmentation.removed_ml
    if skull_base_missed_ml is not None:
        report.add(check_skull_base_missed(skull_base_missed_ml, min_ml=cfg.skull_base.min_ml), "skull_base")
        measurements["skull_base"] = {"slices": list(intracranial.reached_slices),
                                      "baseline_only_ml": round(skull_base_missed_ml, 3)}
    if untouched is not None:
        report.add(check_untouched_blood(untouched, min_ml=cfg.missed_blood.min_ml), "missed_blood")
        measurements["untouched_by_network"] = untouched.to_dict()
    if volumes_ml is not None and len(volumes_ml) >= 2:
        report.add(check_disagreement(dict(volumes_ml), baseline=ThresholdSegmenter.name, **asdict(cfg.disagreement)),
                   "disagreement")
        measurements["volumes_ml"] = {k: round(float(v), 3) for k, v in volumes_ml.items()}
    # the skull base's thin bones, reached across a failed slice, read at enhanced-vessel density too
    skull_base = set(intracranial.reached_slices)
    report.add(check_domain(volume.hu, intracranial.mask, geo.pixel_spacing_mm, geo.slice_thickness_mm, geo.normal,
                            intracranial_ml=intracranial.volume_ml, unread_slices=sorted(streaked | skull_base),
                            bone_hu=bone_hu if math.isfinite(bone_hu) else bone_min_hu, **asdict(cfg.domain)),
               "domain")
    report.measurements.update(measurements)
    return report


def _patient_position(volume: CTVolume) -> str | None:
    """The series' Patient Position (HFS, FFP, HFDR ...), ``None`` without a header (NIfTI, PNG)."""
    if not volume.slices:
        return None
    value = volume.first.get("PatientPosition")
    return str(value) if value else None


def _open_where_cut(intracranial: IntracranialResult, cut_slices: tuple[int, ...], open_gap_deg: float) -> bool:
    """Whether each kept slice bridged across ``open_gap_deg`` or more touches the cut (or lies beside it)."""
    near = {z + d for z in cut_slices for d in (-1, 0, 1)}
    kept = np.any(intracranial.mask, axis=(1, 2))  # a bridged slice the 3D steps dropped bounds nothing
    opened = [z for z, f in enumerate(intracranial.slices)
              if f.method == "bridged" and f.max_gap_deg >= open_gap_deg and kept[z]]
    return all(z in near for z in opened)
