"""Evaluation of segmenters: seed 000's metrics, box-level detection metrics, tables (``ichpipe evaluate``).

It may import the inference code (:mod:`ichpipe.pipeline.segment`,
:mod:`ichpipe.models`), :mod:`ichpipe.pipeline.measure` and the dataset readers
(:mod:`ichpipe.pipeline.datasets`); never the training code.
"""

from __future__ import annotations

from ichpipe.pipeline.evaluation.detection import (
    DetectionCount,
    box_hit,
    box_hit_rate,
    false_positive_slice_rate,
    largest_component_px,
    negative_slice_indices,
)
from ichpipe.pipeline.evaluation.evaluate import (
    ABC2_REFERENCE,
    CaseResult,
    EvaluatedSegmenter,
    SummaryRow,
    evaluate_cases,
    network_row,
    summarise,
    threshold_row,
)
from ichpipe.pipeline.evaluation.metrics import dice_iou, relative_volume_difference, volume_errors
from ichpipe.pipeline.evaluation.tables import cases_csv, markdown_tables, summary_csv

__all__ = [
    "ABC2_REFERENCE",
    "CaseResult",
    "DetectionCount",
    "EvaluatedSegmenter",
    "SummaryRow",
    "box_hit",
    "box_hit_rate",
    "cases_csv",
    "dice_iou",
    "evaluate_cases",
    "false_positive_slice_rate",
    "largest_component_px",
    "markdown_tables",
    "negative_slice_indices",
    "network_row",
    "relative_volume_difference",
    "summarise",
    "summary_csv",
    "threshold_row",
    "volume_errors",
]
