"""Evaluate segmenters on the cases of a manifest (``ichpipe evaluate``).

Each case is read with its dataset reader, segmented by every segmenter
(network checkpoints through :class:`ichpipe.pipeline.segment.inference.NetworkSegmenter`,
exactly as ``ichpipe run`` does, and the classical threshold method), and
measured with :func:`ichpipe.pipeline.measure.volume.measure_hematoma` on the case's
geometry -- the DICOM geometry for DICOM cases (per-slice thickness along the
normal), the header's for NIfTI, the manifest's spacings for PNG slices.

Per case and segmenter: Dice, IoU, RVD, true and predicted volume, and the
automated ABC/2 of the predicted mask. The ABC/2 of the *true* mask is the
bedside formula's own error (Tada), reported as a reference row.

PNG cases are already windowed: they are turned back into pseudo-HU with the
window they were made with, and a network runs on them without the
anatomy-based steps (no head crop, no intracranial restriction), since bone
and air are clipped away in a brain-window PNG. The threshold method needs
HU and is not run on PNG cases.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.dicom_io.window import WindowPreset
from ichpipe.errors import UsageError
from ichpipe.pipeline.config import Config
from ichpipe.pipeline.config.anatomy_config import AnatomyConfig
from ichpipe.pipeline.config.inference_config import InferenceConfig
from ichpipe.pipeline.config.measure_config import MeasureConfig
from ichpipe.pipeline.config.threshold_config import ThresholdConfig
from ichpipe.pipeline.datasets import load_case
from ichpipe.pipeline.datasets.case import CaseVolume
from ichpipe.pipeline.datasets.manifest import ManifestEntry
from ichpipe.pipeline.evaluation.kinds import kind_mask_paths, kind_recalls
from ichpipe.pipeline.evaluation.metrics import dice_iou, relative_volume_difference, volume_errors
from ichpipe.pipeline.measure.volume import measure_hematoma
from ichpipe.pipeline.segment import Segmenter
from ichpipe.pipeline.segment.threshold import ThresholdSegmenter

__all__ = [
    "ABC2_REFERENCE",
    "CaseResult",
    "EvaluatedSegmenter",
    "SummaryRow",
    "evaluate_cases",
    "network_row",
    "summarise",
    "threshold_row",
]

log = logging.getLogger(__name__)

#: Label of the reference row: ABC/2 computed on the true mask.
ABC2_REFERENCE = "ABC/2 on the true mask"


@dataclass(frozen=True)
class EvaluatedSegmenter:
    """A row of the evaluation: a label and how to segment HU cases and grey (PNG) cases.

    Attributes
    ----------
    label:
        Row name in the tables.
    hu:
        Segmenter for cases in HU.
    grey:
        Segmenter for windowed PNG cases, or ``None`` when it cannot run on them.
    describe:
        Identity (name, checkpoint SHA-256) for the CSV.
    """

    label: str
    hu: Segmenter
    grey: Segmenter | None
    describe: dict[str, Any]


def network_row(
    checkpoint: Path,
    *,
    label: str | None = None,
    inference: InferenceConfig | None = None,
    anatomy: AnatomyConfig | None = None,
) -> EvaluatedSegmenter:
    """A network checkpoint as an evaluation row (the checkpoint's registry name by default).

    Raises
    ------
    ichpipe.errors.CheckpointError
        If the checkpoint cannot be loaded.
    """
    from ichpipe.pipeline.segment.inference import NetworkSegmenter

    cfg = inference or InferenceConfig()
    hu = NetworkSegmenter(Path(checkpoint), config=cfg, anatomy=anatomy)
    grey = NetworkSegmenter(
        Path(checkpoint),
        config=replace(cfg, crop_to_head=False, restrict_to_intracranial=False, skip_slices_without_head=False),
        anatomy=anatomy,
    )
    return EvaluatedSegmenter(label or hu.name, hu, grey, hu.describe())


def threshold_row(
    config: ThresholdConfig | None = None, *, anatomy: AnatomyConfig | None = None, label: str = "threshold"
) -> EvaluatedSegmenter:
    """The classical threshold segmenter as an evaluation row (HU cases only)."""
    seg = ThresholdSegmenter(config, anatomy=anatomy)
    return EvaluatedSegmenter(label, seg, None, seg.describe())


@dataclass(frozen=True)
class CaseResult:
    """One case segmented by one segmenter (volumes in mL)."""

    case_id: str
    patient_id: str
    source: str
    model: str
    dice: float
    iou: float
    rvd: float
    true_ml: float
    predicted_ml: float
    abc2_ml: float
    true_abc2_ml: float
    seconds: float
    kind_recall: Mapping[str, float] = field(default_factory=dict)  # per kind of blood (NIfTI cases with kinds)
    flags: tuple[str, ...] | None = None  # the quality flags ``run`` raises (``quality`` given, HU cases); else None

    @property
    def error_ml(self) -> float:
        """Predicted minus true volume."""
        return self.predicted_ml - self.true_ml


def _geometry_check(case: CaseVolume) -> None:
    if case.geometry is None:
        raise UsageError(
            f"Case {case.case_id} has no geometry (PNG slices without pixel_spacing_mm and slice_thickness_mm in"
            " the manifest); volumes cannot be measured."
        )


def _kind_masks(entry: ManifestEntry, case: CaseVolume) -> dict[str, Any]:
    """The case's per-kind truth masks (NIfTI cases only; :mod:`~ichpipe.pipeline.evaluation.kinds`)."""
    if entry.format != "nifti" or entry.mask is None:
        return {}
    from ichpipe.pipeline.measure.nifti_masks import read_nifti_mask

    masks = {kind: read_nifti_mask(path).mask for kind, path in kind_mask_paths(Path(entry.mask)).items()}
    for kind, mask in masks.items():
        if case.mask is None or mask.shape != case.mask.shape:
            raise UsageError(f"Case {case.case_id}: the '{kind}' mask does not have the case mask's shape.")
    return masks


def _analysed(volume: CTVolume, segmenter: Segmenter, config: Config) -> tuple[Any, tuple[str, ...], float]:
    """Mask, flag codes and intracranial + segmenting seconds of ``run``'s analysis of one volume."""
    from ichpipe.pipeline.jobs.analyse_volume import analyse_volume
    from ichpipe.pipeline.outputs.report import StageTimer

    timer = StageTimer()
    analysis = analyse_volume(volume, segmenter, config, timer=timer)
    seconds = timer.seconds.get("intracranial", 0.0) + timer.seconds.get("segment", 0.0)
    return analysis.mask, tuple(analysis.quality.codes), seconds


def evaluate_cases(
    entries: Sequence[ManifestEntry],
    rows: Sequence[EvaluatedSegmenter],
    *,
    window: WindowPreset,
    measure: MeasureConfig | None = None,
    quality: Config | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[CaseResult]:
    """Segment and score every labelled case with every row.

    Parameters
    ----------
    entries:
        Manifest rows to evaluate (unlabelled ones are skipped with a log line).
    rows:
        The segmenters.
    window:
        The window PNG cases were made with (to turn them back into pseudo-HU).
    measure:
        ABC/2 conventions.
    quality:
        When given, each case in HU is analysed as ``ichpipe run`` does it with this configuration
        (:func:`~ichpipe.pipeline.jobs.analyse_volume.analyse_volume`: the same mask, plus the
        cross-check and every quality check) and its flag codes are kept in ``CaseResult.flags``;
        ``seconds`` is then the time to find the intracranial space and segment.
    progress:
        Optional ``progress(done, total, case_id)``.

    Raises
    ------
    UsageError
        If no row is given, or a case has no geometry.
    """
    if not rows:
        raise UsageError("Nothing to evaluate: give at least one --checkpoint or --segmenter threshold.")
    mcfg = measure or MeasureConfig()
    results: list[CaseResult] = []
    for done, entry in enumerate(entries, start=1):
        case = load_case(entry)
        if not case.labelled:
            log.info("case %s has no mask; skipped", entry.case_id)
            continue
        _geometry_check(case)
        geometry = case.geometry
        if geometry is None:  # narrowed for the type checker; _geometry_check raised already
            continue
        volume = case.as_ct_volume(window)
        truth = measure_hematoma(case.mask, geometry, config=mcfg)
        kinds = _kind_masks(entry, case)
        for row in rows:
            segmenter = row.hu if case.intensity == "hu" else row.grey
            if segmenter is None:
                log.info("%s does not run on windowed PNG case %s; skipped", row.label, case.case_id)
                continue
            flags: tuple[str, ...] | None = None
            if quality is not None and case.intensity == "hu":
                predicted, flags, seconds = _analysed(volume, segmenter, quality)
            else:
                started = time.perf_counter()
                predicted = segmenter.segment(volume)
                seconds = time.perf_counter() - started
            measured = measure_hematoma(predicted, geometry, config=mcfg)
            dice, iou = dice_iou(predicted, case.mask)
            results.append(
                CaseResult(
                    case_id=case.case_id, patient_id=case.patient_id, source=case.source, model=row.label,
                    dice=dice, iou=iou, rvd=relative_volume_difference(measured.volume_ml, truth.volume_ml),
                    true_ml=truth.volume_ml, predicted_ml=measured.volume_ml, abc2_ml=measured.abc2_ml,
                    true_abc2_ml=truth.abc2_ml, seconds=seconds, kind_recall=kind_recalls(predicted, kinds),
                    flags=flags,
                )
            )
        if progress:
            progress(done, len(entries), entry.case_id)
    return results


@dataclass(frozen=True)
class SummaryRow:
    """Metrics of one segmenter over a group of cases.

    Attributes
    ----------
    model, group:
        Row label and case group (``all`` or a source kind).
    n_cases:
        Cases scored.
    dice, dice_sd, iou, rvd:
        Means over cases (RVD over cases with hematoma); Dice standard deviation.
    rmse_ml, mae_ml, bias_ml:
        Volume errors over cases (bias: mean of predicted minus true).
    abc2_rmse_ml, abc2_mae_ml:
        Errors of the automated ABC/2 of the predicted mask against the true volume.
    seconds_per_case:
        Mean segmentation time.
    """

    model: str
    group: str
    n_cases: int
    dice: float
    dice_sd: float
    iou: float
    rvd: float
    rmse_ml: float
    mae_ml: float
    bias_ml: float
    abc2_rmse_ml: float
    abc2_mae_ml: float
    seconds_per_case: float


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def _group_of(source: str) -> str:
    return source.split(":", 1)[0] if source else "unknown"


def summarise(results: Sequence[CaseResult], *, by_source: bool = False) -> list[SummaryRow]:
    """Summary rows per segmenter (and per source kind with ``by_source``), plus the ABC/2 reference.

    The reference row (:data:`ABC2_REFERENCE`) scores the ABC/2 of the true
    mask against the true volume; its Dice, IoU and RVD columns are NaN
    except RVD (the formula's relative error).
    """
    models = list(dict.fromkeys(r.model for r in results))
    groups = ["all"]
    if by_source:
        groups += sorted({_group_of(r.source) for r in results})
    rows: list[SummaryRow] = []
    for group in groups:
        chosen = [r for r in results if group == "all" or _group_of(r.source) == group]
        for model in models:
            cases = [r for r in chosen if r.model == model]
            if not cases:
                continue
            rmse, mae = volume_errors([r.predicted_ml for r in cases], [r.true_ml for r in cases])
            abc_rmse, abc_mae = volume_errors([r.abc2_ml for r in cases], [r.true_ml for r in cases])
            rows.append(
                SummaryRow(
                    model=model, group=group, n_cases=len(cases),
                    dice=float(np.mean([r.dice for r in cases])), dice_sd=float(np.std([r.dice for r in cases])),
                    iou=float(np.mean([r.iou for r in cases])), rvd=_nanmean([r.rvd for r in cases]),
                    rmse_ml=rmse, mae_ml=mae, bias_ml=float(np.mean([r.error_ml for r in cases])),
                    abc2_rmse_ml=abc_rmse, abc2_mae_ml=abc_mae,
                    seconds_per_case=float(np.mean([r.seconds for r in cases])),
                )
            )
        # the reference: each case once
        unique = list({r.case_id: r for r in chosen}.values())
        if unique:
            rmse, mae = volume_errors([r.true_abc2_ml for r in unique], [r.true_ml for r in unique])
            rvd = _nanmean([relative_volume_difference(r.true_abc2_ml, r.true_ml) for r in unique])
            bias = float(np.mean([r.true_abc2_ml - r.true_ml for r in unique]))
            rows.append(
                SummaryRow(
                    model=ABC2_REFERENCE, group=group, n_cases=len(unique), dice=math.nan, dice_sd=math.nan,
                    iou=math.nan, rvd=rvd, rmse_ml=rmse, mae_ml=mae, bias_ml=bias, abc2_rmse_ml=rmse,
                    abc2_mae_ml=mae, seconds_per_case=math.nan,
                )
            )
    return rows
