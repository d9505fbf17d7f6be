"""This scan against the patient's baseline, for the report and the DICOM SR of ``ichpipe run``.

After ``run`` records a measurement, :func:`serial_block` builds the
patient's timeline from the results store (one scan per accession number,
earliest first: the first is the baseline) and says where this series stands
on it: the baseline itself, or a follow-up with its change in mL and % since
the baseline, the hours between them and the patient's expansion verdict
under the configured rule. The result is the report's ``serial`` block.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ichpipe.errors import TimelineError, UsageError
from ichpipe.pipeline.serial.expansion import ExpansionRule, evaluate_expansion
from ichpipe.pipeline.serial.store import Store
from ichpipe.pipeline.serial.timeline import load_timeline

__all__ = ["serial_block"]

log = logging.getLogger(__name__)


def serial_block(store: Store, report: Mapping[str, Any], rule: ExpansionRule) -> dict[str, Any] | None:
    """Where this report's series stands on its patient's timeline, or ``None`` when it is not on one.

    Parameters
    ----------
    store:
        The results store holding this series' measurement (record it first).
    report:
        The study report (``patient_id``, ``issuer_of_patient_id``, ``series_instance_uid``).
    rule:
        The expansion rule (``config.expansion.rule()``).

    Returns
    -------
    dict or None
        ``is_baseline``, ``time_point_order`` (1 = baseline), ``n_scans``, the
        baseline's series UID, acquisition time and volume, ``delta_ml``,
        ``delta_pct`` (``None`` when the baseline is 0 mL),
        ``hours_since_baseline``, ``expansion`` (the patient's verdict so far)
        and ``rule``. ``None`` without a patient ID, when the series is undated
        (not on the timeline) or when the ID is ambiguous.
    """
    patient = report.get("patient_id")
    series_uid = report.get("series_instance_uid")
    if not patient or not series_uid:
        return None
    try:
        timeline = load_timeline(store, str(patient), issuer_of_patient_id=report.get("issuer_of_patient_id"))
    except (TimelineError, UsageError) as exc:
        log.info("no serial comparison: %s", exc)
        return None
    scan = next((s for s in timeline.scans if s.series_instance_uid == series_uid), None)
    if scan is None:
        return None
    baseline = timeline.scans[0]
    result = evaluate_expansion(timeline, rule)
    block: dict[str, Any] = {
        "is_baseline": scan.index == 0,
        "time_point_order": scan.index + 1,
        "n_scans": len(timeline.scans),
        "baseline_series_instance_uid": baseline.series_instance_uid,
        "baseline_acquisition_datetime": baseline.acquisition_datetime.isoformat(),
        "baseline_volume_ml": baseline.volume_ml,
        "expansion": result.status,
        "rule": rule.name,
    }
    if scan.index > 0:
        delta = scan.volume_ml - baseline.volume_ml
        # a change between two methods (segmenter or checkpoint) is not a change of the hematoma
        block["same_method_as_baseline"] = scan.method == baseline.method
        block["baseline_method"] = baseline.method_label
        block.update(
            delta_ml=round(delta, 4),
            delta_pct=round(100.0 * delta / baseline.volume_ml, 3) if baseline.volume_ml > 0 else None,
            hours_since_baseline=round(scan.hours_from_first_scan, 3),
        )
    return block
