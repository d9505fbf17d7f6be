"""Linking (timeline) and the expansion rule, on hand-made series: no database."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ichpipe.errors import ConfigError
from ichpipe.pipeline.config import load_config
from ichpipe.pipeline.config.expansion_config import ExpansionConfig
from ichpipe.pipeline.serial.expansion import (
    PRESETS,
    ExpansionRule,
    evaluate_expansion,
    evaluate_timelines,
    labels_by_patient,
)
from ichpipe.pipeline.serial.store import ClinicalRecord, StoredMeasurement
from ichpipe.pipeline.serial.timeline import build_timeline

T0 = datetime(2024, 3, 1, 8, 0, 0)
RULE = PRESETS["contest_2023e"]


def scan(hours: float, volume: float, *, accession: str | None = None, uid: str | None = None,
         preferred: bool = True, recorded: int = 0, patient: str = "P1") -> StoredMeasurement:
    acc = accession if accession is not None else f"A{hours:g}"
    return StoredMeasurement(
        patient_id=patient,
        series_instance_uid=uid or f"1.{hours:g}.{volume:g}",
        accession_number=acc,
        acquisition_datetime=T0 + timedelta(hours=hours),
        volume_ml=volume,
        preferred=preferred,
        recorded_at=datetime(2025, 1, 1) + timedelta(seconds=recorded),
    )


def onset(hours: float) -> ClinicalRecord:
    return ClinicalRecord(patient_id="P1", onset_to_first_scan_h=hours)


def verdict(series: list[StoredMeasurement], clinical: ClinicalRecord | None = None,
            rule: ExpansionRule = RULE):
    return evaluate_expansion(build_timeline("P1", series, clinical), rule)


def test_absolute_threshold_is_inclusive_even_from_mm3() -> None:
    # 20.000 mL -> 26.000 mL, volumes as mm^3 * 1e-3: exactly +6 mL must count.
    r = verdict([scan(0, 20000 * 1e-3), scan(10, 26000 * 1e-3)], onset(2.0))
    assert r.status == "expanded" and r.first_expansion is not None
    assert r.first_expansion.criteria == ("absolute",)
    assert r.expansion_hours == pytest.approx(12.0)
    assert r.first_expansion.delta_ml == pytest.approx(6.0)
    assert r.first_expansion.delta_pct == pytest.approx(30.0)
    assert verdict([scan(0, 20.0), scan(10, 25.99)], onset(2.0)).status == "not_expanded"


def test_relative_threshold_and_strict_variant() -> None:
    series = [scan(0, 3.0), scan(5, 3.99)]  # +0.99 mL = +33 %
    r = verdict(series, onset(1.0))
    assert r.status == "expanded" and r.first_expansion is not None
    assert r.first_expansion.criteria == ("relative",)
    strict = ExpansionRule(name="strict", inclusive=False)
    assert verdict(series, onset(1.0), strict).status == "not_expanded"


def test_window_counts_from_onset() -> None:
    # Onset 3 h before the first scan; follow-up 45 h after it = 48 h from onset: inside.
    assert verdict([scan(0, 10.0), scan(45, 20.0)], onset(3.0)).status == "expanded"
    # 45.5 h after the first scan = 48.5 h from onset: outside, and no other follow-up.
    r = verdict([scan(0, 10.0), scan(45.5, 20.0)], onset(3.0))
    assert r.status == "undetermined" and r.label is None
    assert r.n_followups_after_window == 1 and "48 h of onset" in r.reason


def test_follow_ups_after_the_window_are_ignored() -> None:
    r = verdict([scan(0, 10.0), scan(20, 11.0), scan(100, 30.0)], onset(2.0))
    assert r.status == "not_expanded" and r.label == 0
    assert (r.n_followups_in_window, r.n_followups_after_window) == (1, 1)
    assert r.largest_growth is not None and r.largest_growth.delta_ml == pytest.approx(1.0)


def test_first_scan_meeting_the_rule_is_reported_not_the_largest() -> None:
    r = verdict([scan(0, 10.0), scan(6, 17.0), scan(20, 40.0)], onset(1.0))
    assert r.first_expansion is not None and r.first_expansion.accession_number == "A6"
    assert r.expansion_hours == pytest.approx(7.0)
    assert r.largest_growth is not None and r.largest_growth.accession_number == "A20"


def test_onset_datetime_and_no_onset() -> None:
    clinical = ClinicalRecord(patient_id="P1", onset_datetime=T0 - timedelta(hours=4))
    t = build_timeline("P1", [scan(0, 10.0), scan(10, 11.0)], clinical)
    assert t.time_origin == "onset" and t.onset_source == "onset_datetime"
    assert [s.hours_from_onset for s in t.scans] == pytest.approx([4.0, 14.0])
    t = build_timeline("P1", [scan(0, 10.0), scan(47, 30.0)], None)
    assert t.time_origin == "first_scan" and t.scans[1].hours_from_onset is None
    assert any("counted from the first scan" in n for n in t.notes)
    r = evaluate_expansion(t, RULE)
    assert r.status == "expanded" and r.time_origin == "first_scan"
    assert r.expansion_hours == pytest.approx(47.0)


def test_one_scan_and_late_first_scan_are_undetermined() -> None:
    assert verdict([scan(0, 10.0)], onset(1.0)).status == "undetermined"
    r = verdict([scan(0, 10.0), scan(2, 30.0)], onset(50.0))
    assert r.status == "undetermined" and "after the 48-h window" in r.reason


def test_several_series_of_one_accession_resolve_to_the_preferred() -> None:
    series = [
        scan(0, 10.0, accession="ACC-1", uid="1.1"),
        scan(10, 20.0, accession="ACC-2", uid="2.1", preferred=False, recorded=5),
        scan(10, 11.0, accession="ACC-2", uid="2.2", preferred=True, recorded=1),
    ]
    t = build_timeline("P1", series, onset(1.0))
    assert [s.series_instance_uid for s in t.scans] == ["1.1", "2.2"]
    assert t.scans[1].n_series == 2
    assert evaluate_expansion(t, RULE).status == "not_expanded"
    # Without any mark, the latest recorded series wins.
    series[2] = scan(10, 11.0, accession="ACC-2", uid="2.2", preferred=False, recorded=1)
    t = build_timeline("P1", series, onset(1.0))
    assert t.scans[1].series_instance_uid == "2.1"


def test_scans_are_ordered_by_time_not_by_input() -> None:
    t = build_timeline("P1", [scan(30, 12.0), scan(0, 10.0), scan(5, 11.0)], onset(1.0))
    assert [s.accession_number for s in t.scans] == ["A0", "A5", "A30"]
    assert [s.index for s in t.scans] == [0, 1, 2]


def test_zero_baseline_uses_the_absolute_threshold_only() -> None:
    r = verdict([scan(0, 0.0), scan(5, 7.0)], onset(1.0))
    assert r.status == "expanded" and r.first_expansion is not None
    assert r.first_expansion.delta_pct is None and r.first_expansion.criteria == ("absolute",)


def test_presets_and_overrides() -> None:
    assert ExpansionConfig().rule() is PRESETS["contest_2023e"] is PRESETS["default"]
    assert ExpansionConfig(preset="trials_24h").rule().window_h == 24.0
    assert ExpansionConfig(absolute_ml=6.0).rule().name == "contest_2023e"  # same numbers: still the preset
    custom = ExpansionConfig(preset="contest_2023e", absolute_ml=12.5, window_h=24.0).rule()
    assert (custom.name, custom.absolute_ml, custom.relative_pct, custom.window_h) == ("custom", 12.5, 33.0, 24.0)
    off = ExpansionConfig(absolute_ml=float("inf"), window_h=float("inf")).rule()
    assert off.absolute_ml is None and off.window_h is None
    assert "growth >= 33 %" in off.describe() and "any follow-up" in off.describe()
    with pytest.raises(ValueError, match="cannot both be off"):
        ExpansionConfig(absolute_ml=float("inf"), relative_pct=float("inf"))
    with pytest.raises(ValueError, match="not a known preset"):
        ExpansionConfig(preset="nope")
    with pytest.raises(ValueError, match="window_h"):
        ExpansionConfig(window_h=-1.0)


def test_kazui_preset_numbers() -> None:
    k = PRESETS["kazui_1996"]
    assert (k.absolute_ml, k.relative_pct, k.window_h, k.inclusive) == (12.5, 40.0, 120.0, True)
    # +12.5 mL but only +25 %: expanded under Kazui by the absolute criterion.
    assert verdict([scan(0, 50.0), scan(60, 62.5)], onset(2.0), k).status == "expanded"
    # +7 mL (+14 %): expanded under the contest rule, not under Kazui.
    series = [scan(0, 50.0), scan(10, 57.0)]
    assert verdict(series, onset(2.0)).status == "expanded"
    assert verdict(series, onset(2.0), k).status == "not_expanded"


def test_expansion_section_in_a_config_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("expansion:\n  preset: trials_24h\n  relative_pct: 26\nstore:\n  path: x.sqlite\n")
    config = load_config(path)
    rule = config.expansion.rule()
    assert (rule.name, rule.relative_pct, rule.window_h) == ("custom", 26.0, 24.0)
    assert config.store.path == "x.sqlite"
    path.write_text("expansion:\n  preset: brouwers_12p5ml\n")
    with pytest.raises(ConfigError, match="not a known preset") as info:
        load_config(path)
    assert info.value.exit_code == 2
    path.write_text("expansion:\n  absolute_ml: six\n")
    with pytest.raises(ConfigError, match=r"expansion\.absolute_ml"):
        load_config(path)


def test_labels_by_patient() -> None:
    timelines = [
        build_timeline("P1", [scan(0, 10.0), scan(5, 20.0)], onset(1.0)),
        build_timeline("P2", [scan(0, 10.0, patient="P2"), scan(5, 10.5, patient="P2")], None),
        build_timeline("P3", [scan(0, 10.0, patient="P3")], None),
    ]
    summary = evaluate_timelines(timelines, RULE)
    assert labels_by_patient(summary) == {"P1": 1, "P2": 0, "P3": None}
    assert summary.counts == {"patients": 3, "expanded": 1, "not_expanded": 1, "undetermined": 1}
