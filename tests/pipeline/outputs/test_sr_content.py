"""The SR content taken from a study report's ``serial`` block."""

from __future__ import annotations

from ichpipe.pipeline.outputs.sr_content import serial_change_from_report


def _report(**serial: object) -> dict[str, object]:
    block = {"is_baseline": False, "time_point_order": 2, "baseline_volume_ml": 10.0,
             "delta_ml": 7.0, "delta_pct": 70.0, "hours_since_baseline": 6.0, "expansion": "undetermined"}
    block.update(serial)
    return {"serial": block}


def test_change_between_scans_measured_the_same_way_is_carried() -> None:
    change = serial_change_from_report(_report(same_method_as_baseline=True))
    assert change is not None and change.delta_ml == 7.0 and change.delta_pct == 70.0


def test_change_between_two_methods_is_not_carried() -> None:
    """Baseline by one segmenter, follow-up by another: the difference is the methods', not the hematoma's."""
    change = serial_change_from_report(_report(same_method_as_baseline=False))
    assert change is not None
    assert change.delta_ml is None and change.delta_pct is None
    assert change.verdict == "undetermined"
