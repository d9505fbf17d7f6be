"""One assembled CT volume in, hematoma mask, volume and quality flags out (no files written).

The computing half of ``ichpipe run`` (:mod:`~ichpipe.pipeline.jobs.run_study`
adds discovery before it and the outputs after it); ``bench/robustness.py``
and the real-data tests call it directly:

1. the intracranial space, found once (:func:`~ichpipe.pipeline.segment.intracranial.find_intracranial`),
   with the method used (closed ring, bridged gap, stripped skull, head outline);
2. the main segmenter, restricted to that space;
3. the cross-check (``quality.cross_check``, :func:`cross_check_segmenter`): the
   threshold baseline on the same space beside one of ichpipe's networks,
   ichpipe's default network beside the baseline or BLAST-CT;
4. the planimetric volume and ABC/2;
5. every quality check (:func:`~ichpipe.pipeline.quality.assess.assess_quality`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.errors import CheckpointError
from ichpipe.pipeline.config import Config
from ichpipe.pipeline.config.anatomy_config import AnatomyConfig
from ichpipe.pipeline.config.inference_config import InferenceConfig
from ichpipe.pipeline.config.models_config import ModelsConfig, resolve_checkpoint
from ichpipe.pipeline.measure.volume import HematomaMeasurement, measure_hematoma
from ichpipe.pipeline.outputs.report import StageTimer
from ichpipe.pipeline.quality.assess import assess_quality
from ichpipe.pipeline.quality.blood_checks import UntouchedPieces, skull_base_missed_ml, untouched_pieces
from ichpipe.pipeline.quality.flags import QualityReport
from ichpipe.pipeline.segment import Segmenter
from ichpipe.pipeline.segment.components import mask_volume_ml
from ichpipe.pipeline.segment.enclosed_fill import with_enclosed_fill
from ichpipe.pipeline.segment.intracranial import IntracranialResult, find_intracranial_in
from ichpipe.pipeline.segment.segmenter import SegmentationResult, segment_volume
from ichpipe.pipeline.segment.threshold import ThresholdSegmenter

__all__ = ["Analysis", "analyse_volume", "cross_check_segmenter"]


@dataclass
class Analysis:
    """What was computed for one volume.

    Attributes
    ----------
    mask:
        The main segmenter's hematoma mask (bool, the volume's shape).
    measurement:
        Its planimetric volume and ABC/2.
    intracranial:
        The intracranial space, the method used and its measurements.
    segmentation:
        The main segmenter's result (with what the restriction removed).
    quality:
        The flags and the numbers behind them.
    cross_check:
        ``{"segmenter", "volume_ml", "kind"}`` of the baseline run beside a
        network, or ``None`` when none ran.
    types:
        Per-type volumes when the segmenter tells blood types apart (BLAST-CT):
        ``{"source", "counted", "volume_ml": {type: mL}, "not_counted_ml": {...}}``,
        each measured like the hematoma; ``None`` otherwise.
    """

    mask: npt.NDArray[np.bool_]
    measurement: HematomaMeasurement
    intracranial: IntracranialResult
    segmentation: SegmentationResult
    quality: QualityReport
    cross_check: dict[str, Any] | None
    types: dict[str, Any] | None = None


def analyse_volume(
    volume: CTVolume,
    segmenter: Segmenter,
    config: Config,
    *,
    timer: StageTimer | None = None,
) -> Analysis:
    """Find the intracranial space, segment, cross-check, measure and run the quality checks.

    Parameters
    ----------
    volume:
        The assembled CT.
    segmenter:
        The main segmenter (a network or the threshold baseline).
    config:
        The whole configuration (``anatomy``, ``threshold``, ``measure``, ``quality``).
    timer:
        Stage timer to add ``intracranial``, ``segment``, ``cross_check``,
        ``measure`` and ``quality`` seconds to.

    Returns
    -------
    Analysis
        Mask, measurement, intracranial space, quality flags, cross-check volume.
    """
    timer = timer or StageTimer()
    geo = volume.geometry
    with timer.stage("intracranial"):
        space = find_intracranial_in(volume.hu, geo, config.anatomy)
    with timer.stage("segment"):
        result = segment_volume(segmenter, volume, space)
    mask = result.mask
    with timer.stage("measure"):
        measurement = measure_hematoma(mask, geo, config=config.measure)
    cross_check: dict[str, Any] | None = None
    volumes: dict[str, float] | None = None
    skull_base_ml: float | None = None
    untouched: UntouchedPieces | None = None
    checker = cross_check_segmenter(segmenter, config)
    if checker is not None:
        main_described = segmenter.describe()
        with timer.stage("cross_check"):
            other = segment_volume(checker, volume, space)
            baseline_beside = isinstance(checker, ThresholdSegmenter) and not isinstance(segmenter, ThresholdSegmenter)
            fill = main_described.get("enclosed_fill")
            if baseline_beside and isinstance(fill, Mapping):
                # the network counts what its blood encloses; the baseline's mask has the same holes: alike, or
                # every swirl would widen the gap segmenter_disagreement reads
                other = with_enclosed_fill(other, other.mask, volume, close_mm=float(fill["close_mm"]),
                                           min_hu=float(fill["min_hu"]), max_hu=config.anatomy.brain_hu[1],
                                           allowed=space.mask & ~other.mask)
            other_ml = mask_volume_ml(other.mask, geo.voxel_volumes_ml)
            skull_base = space.reached_slices
            if baseline_beside:
                if skull_base:
                    # the networks never saw a bleed beyond a failed slice at the skull base: what the baseline finds
                    skull_base_ml = skull_base_missed_ml(mask, other.mask, skull_base, geo.voxel_volumes_ml)
                if config.quality.missed_blood.min_ml is not None:
                    # a bleed the network missed whole, beside one it found, hardly moves the volumes compared
                    untouched = untouched_pieces(mask, other.mask, geo.voxel_volumes_ml, skip_slices=skull_base,
                                                 min_piece_ml=config.quality.missed_blood.min_piece_ml)
            del other
        name = str(main_described.get("name") or segmenter.name)
        described = checker.describe()
        other_name = str(described.get("name") or checker.name)
        volumes = {name: measurement.volume_ml, other_name: other_ml}
        cross_check = {"segmenter": other_name, "kind": described["kind"], "volume_ml": round(other_ml, 4)}
    with timer.stage("quality"):
        quality = assess_quality(volume, space, result, volumes_ml=volumes, skull_base_missed_ml=skull_base_ml,
                                 untouched=untouched,
                                 bone_min_hu=config.anatomy.bone_min_hu, config=config.quality)
    if cross_check is not None:
        quality.measurements["cross_check"] = cross_check
    # what the network was shown that the image did not hold; what was dropped as not blood (calcification); what
    # the end-slice and extra-axial networks added; what the faint growth and the rim added; how much more the main
    # network calls at its looser threshold; the blend side read beside the blood; what clot density below a bleed's
    # end added; the image's noise; how far the head lay turned; which top slices were read enlarged
    for key in ("network_input", "head_turn", "section_zoom", "image_noise", "denser_than_blood", "calcified",
                "bone_edge_pieces", "faint_growth", "end_extension", "blend_side", "extra_axial", "dense_ends",
                "loose_call", "enclosed_fill", "edge_rim"):
        if key in result.details:
            quality.measurements[key] = result.details[key]
    return Analysis(mask=mask, measurement=measurement, intracranial=space, segmentation=result, quality=quality,
                    cross_check=cross_check, types=_types(result, volume, config))


def cross_check_segmenter(segmenter: Segmenter, config: Config) -> Segmenter | None:
    """The segmenter run beside ``segmenter`` for ``segmenter_disagreement`` (``quality.cross_check``), or ``None``.

    ``auto``: the threshold baseline beside one of ichpipe's networks, and ichpipe's default
    network (``models``) beside any other segmenter (the threshold baseline, BLAST-CT, whose
    blind spots the baseline shares: low-density subdurals); ``threshold``: the baseline beside
    any segmenter but itself; ``none``: nothing.

    Raises
    ------
    ichpipe.errors.CheckpointError
        ``auto`` beside the baseline when the default checkpoint is missing or not allow-listed
        (the message says how to choose ``quality.cross_check: threshold``).
    """
    mode = config.quality.cross_check
    if mode == "none":
        return None
    if mode == "threshold" or _is_ichpipe_network(segmenter):
        return None if isinstance(segmenter, ThresholdSegmenter) else ThresholdSegmenter(config.threshold,
                                                                                          anatomy=config.anatomy)
    return _default_network(config.models, config.inference, config.anatomy)


def _is_ichpipe_network(segmenter: Segmenter) -> bool:
    if isinstance(segmenter, ThresholdSegmenter):  # no network import for the baseline's own check
        return False
    from ichpipe.pipeline.segment.inference import NetworkSegmenter

    return isinstance(segmenter, NetworkSegmenter)


@functools.lru_cache(maxsize=2)
def _default_network(models: ModelsConfig, inference: InferenceConfig, anatomy: AnatomyConfig) -> Segmenter:
    """The default network, loaded once per configuration (a batch cross-checks every study with it)."""
    from ichpipe.pipeline.jobs.run_study import RunOptions, build_segmenter  # run_study imports this module

    options = RunOptions(study=Path("."), checkpoint=resolve_checkpoint(models.default_checkpoint))
    try:
        return build_segmenter(options, Config(models=models, inference=inference, anatomy=anatomy))
    except CheckpointError as exc:
        raise CheckpointError(
            f"quality.cross_check 'auto' runs the default network beside the threshold baseline: {exc} Set"
            " quality.cross_check to 'threshold' (no cross-check beside the baseline) or 'none'."
        ) from exc


def _types(result: SegmentationResult, volume: CTVolume, config: Config) -> dict[str, Any] | None:
    """Volume of each blood type the segmenter labelled (``details["class_masks"]``), by the same planimetry.

    The masks are removed from ``details`` once measured.
    """
    masks = result.details.pop("class_masks", None)  # measured once, then freed (a bool volume each)
    if not masks:
        return None
    counted = [name for name in masks if name != "oedema"]
    measured = {name: round(measure_hematoma(np.asarray(m, dtype=bool), volume.geometry,
                                             config=config.measure).volume_ml, 4)
                for name, m in masks.items()}
    return {
        "source": str(result.details.get("source", "segmenter classes")),
        "counted": counted,
        "volume_ml": {name: measured[name] for name in counted},
        "not_counted_ml": {name: v for name, v in measured.items() if name not in counted},
    }
