"""Expansion compares like with like: one method, clean volumes, no surgery, known time.

Every test builds a situation where the old rule (compare whatever was recorded) gave a verdict
that the data do not support, and checks the verdict the rule gives now.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ichpipe.pipeline.config.store_config import StoreConfig
from ichpipe.pipeline.serial.expansion import PRESETS, ExpansionResult, evaluate_expansion
from ichpipe.pipeline.serial.store import (
    ClinicalRecord,
    MeasurementRecord,
    StoredMeasurement,
    list_measurements,
    measurement_from_report,
    open_store,
    quality_flags_from_report,
    record_measurement,
    release_preferred,
    set_preferred,
    upsert_clinical,
)
from ichpipe.pipeline.serial.timeline import build_timeline, load_timeline

T0 = datetime(2024, 3, 1, 8, 0, 0)
RULE = PRESETS["contest_2023e"]
NET = ("sa_cbam_unet_slim", "a" * 64)
CRANIOTOMY = {"code": "intracranial_open_ring", "message": "the skull ring is open (craniotomy?)", "value": 0.31}


def scan(hours: float, volume: float, *, method: tuple[str | None, str | None] = NET,
         flags: tuple[dict[str, Any], ...] = (), precision: str | None = "datetime", accession: str | None = None,
         uid: str | None = None, when: datetime | None = None) -> StoredMeasurement:
    return StoredMeasurement(
        patient_id="P1",
        series_instance_uid=uid or f"1.{hours:g}.{volume:g}",
        accession_number=accession or f"A{hours:g}",
        acquisition_datetime=when or T0 + timedelta(hours=hours),
        volume_ml=volume,
        segmenter=method[0],
        checkpoint_sha256=method[1],
        quality_flags=flags,
        acquisition_precision=precision,
        recorded_at=datetime(2025, 1, 1),
    )


def verdict(series: list[StoredMeasurement], clinical: ClinicalRecord | None = None) -> ExpansionResult:
    if clinical is None:
        clinical = ClinicalRecord(patient_id="P1", onset_to_first_scan_h=2.0)
    return evaluate_expansion(build_timeline("P1", series, clinical), RULE)


# ----------------------------------------------------------------------------- methods


def test_a_change_of_method_never_reads_as_expansion() -> None:
    # Network baseline 14.8 mL, threshold follow-up 21.0 mL: +6.2 mL from the method alone.
    r = verdict([scan(0, 14.8), scan(12, 21.0, method=("threshold", None))])
    assert r.status == "undetermined" and r.label is None
    assert r.reason.startswith("Methods differ")
    assert "14.80 mL (sa_cbam_unet_slim@aaaaaaaa)" in r.reason and "21.00 mL (threshold)" in r.reason
    assert r.first_expansion is None and r.largest_growth is None  # no cross-method growth reported
    assert [e.problem_code for e in r.unusable] == ["methods_differ"]
    assert "remeasure" in r.reason


def test_a_change_of_method_never_reads_as_no_expansion() -> None:
    # The threshold method over-reads the baseline: 25 mL vs the network's 20 mL at follow-up.
    r = verdict([scan(0, 25.0, method=("threshold", None)), scan(12, 20.0)])
    assert r.status == "undetermined"


def test_another_checkpoint_of_the_same_network_is_another_method() -> None:
    r = verdict([scan(0, 14.8), scan(12, 21.0, method=(NET[0], "b" * 64))])
    assert r.status == "undetermined" and r.unusable[0].problem_code == "methods_differ"


def test_same_method_scans_still_decide_when_one_differs() -> None:
    # A clean same-method follow-up that expanded decides, whatever the other one says.
    r = verdict([scan(0, 14.8), scan(6, 16.0, method=("threshold", None)), scan(12, 22.0)])
    assert r.status == "expanded" and r.first_expansion is not None
    assert r.first_expansion.accession_number == "A12"
    # ... but a same-method follow-up that did not expand cannot rule out the other one.
    r = verdict([scan(0, 14.8), scan(6, 21.0, method=("threshold", None)), scan(12, 15.0)])
    assert r.status == "undetermined"


def test_the_hint_names_a_series_measured_like_the_baseline() -> None:
    # Accession A12 was measured both ways; the threshold series is the preferred one.
    base = scan(0, 14.8)
    thr = scan(12, 21.0, method=("threshold", None), accession="A12", uid="2.1")
    net = scan(12, 15.1, accession="A12", uid="2.2")
    object.__setattr__(net, "preferred", False)
    r = verdict([base, thr, net])
    assert r.status == "undetermined"
    assert "ichpipe timeline prefer --accession A12 --series 2.2" in r.reason


# ----------------------------------------------------------------------------- flags and surgery


def test_a_post_craniotomy_flagged_follow_up_is_undetermined() -> None:
    # After a craniotomy the follow-up reads 3 mL: it must not count as "not expanded".
    r = verdict([scan(0, 30.0), scan(20, 3.0, flags=(CRANIOTOMY,))])
    assert r.status == "undetermined" and r.label is None
    assert "intracranial_open_ring" in r.reason and "craniotomy" in r.reason
    assert r.unusable[0].problem_code == "quality_flags"


def test_a_clean_expansion_before_a_flagged_scan_still_counts() -> None:
    r = verdict([scan(0, 20.0), scan(6, 30.0), scan(20, 3.0, flags=(CRANIOTOMY,))])
    assert r.status == "expanded" and r.expansion_hours == pytest.approx(8.0)


def test_a_flagged_baseline_compares_with_nothing() -> None:
    r = verdict([scan(0, 20.0, flags=(CRANIOTOMY,)), scan(12, 20.5)])
    assert r.status == "undetermined" and "baseline" in r.reason


def test_surgery_time_makes_later_scans_post_surgical() -> None:
    clinical = ClinicalRecord(patient_id="P1", onset_to_first_scan_h=2.0, surgery_datetime=T0 + timedelta(hours=10))
    r = verdict([scan(0, 30.0), scan(20, 12.0)], clinical)
    assert r.status == "undetermined" and r.unusable[0].problem_code == "post_surgical"
    assert "post-surgical" in r.reason
    # A follow-up before the surgery is a natural-history volume.
    r = verdict([scan(0, 30.0), scan(6, 31.0), scan(20, 12.0)], clinical)
    assert r.status == "undetermined"  # the post-surgical one cannot be ruled out as an expansion...
    r = verdict([scan(0, 30.0), scan(6, 40.0), scan(20, 12.0)], clinical)
    assert r.status == "expanded"  # ... but an earlier clean expansion stands


def test_an_imported_post_surgical_mark_counts() -> None:
    mark = {"code": "post_surgical", "message": "marked in ops.csv", "value": True}
    r = verdict([scan(0, 30.0), scan(20, 12.0, flags=(mark,))])
    assert r.status == "undetermined" and "post-surgical (marked in ops.csv)" in r.reason


# ----------------------------------------------------------------------------- time


def test_a_date_only_follow_up_near_the_window_edge_is_undetermined() -> None:
    # Onset 2 h before the first scan (08:00). A follow-up on day 3 with no time of day lies between
    # 42 h and 66 h from onset: it grew, but may lie outside the 48-h window.
    day3 = datetime(2024, 3, 3)
    r = verdict([scan(0, 20.0), scan(40, 30.0, precision="date", when=day3)])
    assert r.status == "undetermined" and r.unusable[0].problem_code == "time_uncertain"
    assert r.unusable[0].hours_range == pytest.approx((42.0, 66.0))
    # The same follow-up without growth cannot make the patient "not expanded" either.
    r = verdict([scan(0, 20.0), scan(40, 20.5, precision="date", when=day3)])
    assert r.status == "undetermined" and "may lie after it" in r.reason
    # Day 2 (18 h to 42 h from onset) is surely inside: it counts.
    r = verdict([scan(0, 20.0), scan(30, 30.0, precision="date", when=datetime(2024, 3, 2))])
    assert r.status == "expanded"


def test_a_legacy_midnight_time_is_treated_as_date_only() -> None:
    # Before schema 4 a date-only DICOM time was stored as 00:00:00 with no precision.
    t = build_timeline("P1", [scan(0, 20.0), scan(40, 30.0, precision=None, when=datetime(2024, 3, 3))],
                       ClinicalRecord(patient_id="P1", onset_to_first_scan_h=2.0))
    assert not t.scans[1].time_known and t.scans[1].hours_high - t.scans[1].hours_low == pytest.approx(24.0)


def test_an_undated_scan_that_grew_leaves_the_verdict_undetermined() -> None:
    undated = StoredMeasurement(patient_id="P1", series_instance_uid="9.9", accession_number="AX",
                                acquisition_datetime=None, volume_ml=40.0, segmenter=NET[0],
                                checkpoint_sha256=NET[1], recorded_at=datetime(2025, 1, 1))
    r = verdict([scan(0, 20.0), scan(12, 20.5), undated])
    assert r.status == "undetermined" and "without acquisition time" in r.reason


@pytest.mark.parametrize(
    ("series", "clinical", "origin"),
    [
        ([scan(0, 20.0)], None, "symptom onset"),
        ([scan(0, 20.0), scan(12, 30.0)], ClinicalRecord(patient_id="P1"), "the first scan"),
        ([scan(0, 20.0), scan(12, 20.0)], None, "symptom onset"),
    ],
)
def test_every_verdict_says_where_its_window_starts(series: list[StoredMeasurement],
                                                    clinical: ClinicalRecord | None, origin: str) -> None:
    r = verdict(series, clinical)
    assert r.origin_text.startswith(origin) and r.to_dict()["time_origin_text"] == r.origin_text


# ----------------------------------------------------------------------------- the store


def _report(uid: str, accession: str, when: str | None, volume: float, **extra: Any) -> dict[str, Any]:
    return {
        "patient_id": "P1", "study_instance_uid": f"{uid}.0", "series_instance_uid": uid,
        "accession_number": accession, "acquisition_datetime": when,
        "hematoma": {"volume_ml": volume, "abc2_ml": None},
        "segmenter": {"name": NET[0], "checkpoint_sha256": NET[1], "version": "0.1.0"},
        **extra,
    }


def test_reports_carry_method_flags_and_time_precision_into_the_store(tmp_path: Path) -> None:
    config = StoreConfig(path=str(tmp_path / "s.sqlite"))
    flagged = _report("1.2", "A2", "2024-03-02", 3.0, quality={"flags": [CRANIOTOMY], "checked": True})
    with open_store(config) as store:
        record_measurement(store, measurement_from_report(_report("1.1", "A1", "2024-03-01T08:00:00", 30.0),
                                                          source_path="/data/s1"))
        record_measurement(store, measurement_from_report(flagged))
        rows = {m.series_instance_uid: m for m in list_measurements(store)}
        timeline = load_timeline(store, "P1")
    assert rows["1.1"].method == NET and rows["1.1"].source_path == "/data/s1"
    assert rows["1.1"].acquisition_precision == "datetime" and rows["1.2"].acquisition_precision == "date"
    assert [dict(f) for f in rows["1.2"].quality_flags] == [CRANIOTOMY]
    assert evaluate_expansion(timeline, RULE).status == "undetermined"


def test_a_scan_grown_by_the_end_slice_network_is_not_compared_with_one_measured_without_it(tmp_path: Path
                                                                                          ) -> None:
    """Same network and checkpoint, but the follow-up's mask was grown at the bleed's ends (+0.6 mL on
    1.5 mL = 40 %): without the end-slice network in the method, that would read as expansion."""
    config = StoreConfig(path=str(tmp_path / "s.sqlite"))
    ends = {"end_extension": {"checkpoint_sha256": "4a9d6869" + "0" * 56, "threshold": 0.2}}
    with open_store(config) as store:
        record_measurement(store, measurement_from_report(_report("1.1", "A1", "2024-03-01T08:00:00", 1.5)))
        record_measurement(store, measurement_from_report(
            _report("1.2", "A2", "2024-03-01T14:00:00", 2.1, segmenter_details=ends)))
        rows = {m.series_instance_uid: m for m in list_measurements(store)}
        timeline = load_timeline(store, "P1")
    assert rows["1.1"].segmenter == NET[0] and rows["1.2"].segmenter == f"{NET[0]}+ends:4a9d6869"
    assert rows["1.2"].checkpoint_sha256 == NET[1]
    result = evaluate_expansion(timeline, RULE)
    assert result.status == "undetermined" and "methods differ" in result.reason


def test_end_slice_growth_held_to_the_end_slice_blood_is_its_own_method(tmp_path: Path) -> None:
    """The same end-slice network with and without ``end_slice_hu`` (an older version) measure differently
    (1.88 against 1.48 mL on the real IVH example): they are not compared."""
    config = StoreConfig(path=str(tmp_path / "s.sqlite"))
    digest = "4a9d6869" + "0" * 56
    old = {"end_extension": {"checkpoint_sha256": digest, "threshold": 0.2}}
    new = {"end_extension": {"checkpoint_sha256": digest, "threshold": 0.2, "end_slice_hu": 45.0}}
    with open_store(config) as store:
        record_measurement(store, measurement_from_report(
            _report("1.1", "A1", "2024-03-01T08:00:00", 1.9, segmenter_details=old)))
        record_measurement(store, measurement_from_report(
            _report("1.2", "A2", "2024-03-01T14:00:00", 1.5, segmenter_details=new)))
        rows = {m.series_instance_uid: m for m in list_measurements(store)}
        timeline = load_timeline(store, "P1")
    assert rows["1.1"].segmenter == f"{NET[0]}+ends:4a9d6869"
    assert rows["1.2"].segmenter == f"{NET[0]}+ends:4a9d6869:hu45"
    result = evaluate_expansion(timeline, RULE)
    assert result.status == "undetermined" and "methods differ" in result.reason


def test_a_scan_with_extra_axial_additions_is_its_own_method(tmp_path: Path) -> None:
    """The extra-axial step adds collections against the table: a scan measured with it is not compared with
    one measured without it."""
    config = StoreConfig(path=str(tmp_path / "s.sqlite"))
    ends = {"end_extension": {"checkpoint_sha256": "4a9d6869" + "0" * 56, "end_slice_hu": 45.0}}
    both = {**ends, "extra_axial": {"checkpoint_sha256": "5b7a" + "1" * 60, "threshold": 0.5}}
    with open_store(config) as store:
        record_measurement(store, measurement_from_report(
            _report("1.1", "A1", "2024-03-01T08:00:00", 1.5, segmenter_details=ends)))
        record_measurement(store, measurement_from_report(
            _report("1.2", "A2", "2024-03-01T14:00:00", 9.5, segmenter_details=both)))
        rows = {m.series_instance_uid: m for m in list_measurements(store)}
        timeline = load_timeline(store, "P1")
    assert rows["1.2"].segmenter == f"{NET[0]}+ends:4a9d6869:hu45+xa:5b7a1111"
    result = evaluate_expansion(timeline, RULE)
    assert result.status == "undetermined" and "methods differ" in result.reason


def test_an_unreadable_quality_block_is_kept_as_a_flag() -> None:
    assert quality_flags_from_report({}) == ()
    assert quality_flags_from_report({"quality": {"flags": []}}) == ()
    (flag,) = quality_flags_from_report({"quality": {"flags": "HU implausible"}})
    assert flag["code"] == "quality_unreadable"


def test_a_users_choice_of_series_survives_new_runs(tmp_path: Path) -> None:
    config = StoreConfig(path=str(tmp_path / "s.sqlite"))

    def rec(uid: str) -> MeasurementRecord:
        return MeasurementRecord(patient_id="P1", series_instance_uid=uid, accession_number="A1",
                                 acquisition_datetime=T0, volume_ml=10.0)

    def marks() -> dict[str, tuple[bool, str | None]]:
        return {m.series_instance_uid: (m.preferred, m.preferred_by) for m in list_measurements(store)}

    with open_store(config) as store:
        assert record_measurement(store, rec("1.1")) is True
        assert record_measurement(store, rec("1.2")) is True  # no choice yet: the latest run is used
        assert marks() == {"1.1": (False, None), "1.2": (True, "auto")}
        set_preferred(store, "1.1", accession_number="A1")
        assert marks() == {"1.1": (True, "user"), "1.2": (False, None)}
        assert record_measurement(store, rec("1.3")) is False  # a new run never demotes the choice
        assert record_measurement(store, rec("1.1")) is True  # re-running the chosen series keeps it
        assert marks() == {"1.1": (True, "user"), "1.2": (False, None), "1.3": (False, None)}
        assert load_timeline(store, "P1").scans[0].series_instance_uid == "1.1"
        assert release_preferred(store, "1.1") == "1.1"  # 1.1 was recorded last
        assert marks()["1.1"] == (True, "auto")
        with pytest.raises(Exception, match="belongs to accession number A1"):
            set_preferred(store, "1.2", accession_number="A9")


def test_a_clinical_table_without_surgery_keeps_the_recorded_surgery(tmp_path: Path) -> None:
    config = StoreConfig(path=str(tmp_path / "s.sqlite"))
    with open_store(config) as store:
        upsert_clinical(store, [ClinicalRecord(patient_id="P1", surgery_datetime=T0)])
        upsert_clinical(store, [ClinicalRecord(patient_id="P1", onset_to_first_scan_h=2.0)])
        record_measurement(store, MeasurementRecord(patient_id="P1", series_instance_uid="1.1",
                                                    acquisition_datetime=T0, volume_ml=1.0))
        t = load_timeline(store, "P1")
    assert t.surgery_datetime == T0 and t.onset_to_first_scan_h == 2.0
