"""Importing tables measured elsewhere: long and wide layouts, mapping files, row errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ichpipe.errors import ConfigError, TimelineError
from ichpipe.pipeline.config.store_config import StoreConfig
from ichpipe.pipeline.serial.expansion import PRESETS, evaluate_timelines
from ichpipe.pipeline.serial.import_mappings import (
    ScanColumns,
    TimelineMapping,
    list_mappings,
    load_mapping,
    long_mapping,
)
from ichpipe.pipeline.serial.store import get_clinical, list_measurements, open_store
from ichpipe.pipeline.serial.timeline import load_timeline, load_timelines
from ichpipe.pipeline.serial.timeline_import import ImportOptions, import_tables, read_tables, run_import


def write(path: Path, text: str) -> Path:
    path.write_text(text.lstrip("\n"), encoding="utf-8")
    return path


LONG = """
pid,acc,when,vol_ml,note
P1,A1,2024-03-01 08:00:00,10.0,x
P1,A2,2024-03-01 20:00:00,17.5,
P2,B1,2024-03-02 09:30:00,30.0,
P2,B2,2024-03-05 09:30:00,60.0,
"""

CLIN = """
pid,onset_h
P1,2.0
P2,1.5
"""


@pytest.fixture
def store_config(tmp_path: Path) -> StoreConfig:
    return StoreConfig(path=str(tmp_path / "s.sqlite"))


def test_long_layout_from_column_names(tmp_path: Path, store_config: StoreConfig) -> None:
    mapping = long_mapping(patient="pid", accession="acc", volume="vol_ml", datetime_column="when",
                           onset_to_first_scan_h="onset_h")
    report = run_import(ImportOptions(store=store_config, mapping=mapping, volumes=write(tmp_path / "v.csv", LONG),
                                      clinical=write(tmp_path / "c.csv", CLIN)))
    assert (report.n_patients, report.n_scans, report.n_clinical) == (2, 4, 2)
    with open_store(store_config, create=False) as store:
        t = load_timeline(store, "P1")
        assert [s.accession_number for s in t.scans] == ["A1", "A2"]
        assert [s.hours_from_onset for s in t.scans] == pytest.approx([2.0, 14.0])
        assert all(m.source == "import" for m in list_measurements(store))
        summary = evaluate_timelines(load_timelines(store), PRESETS["contest_2023e"])
    by_id = {r.patient_id: r for r in summary.results}
    assert by_id["P1"].status == "expanded" and by_id["P1"].expansion_hours == pytest.approx(14.0)
    assert by_id["P2"].status == "undetermined"  # its follow-up is 73.5 h from onset


def test_reimport_replaces_rows(tmp_path: Path, store_config: StoreConfig) -> None:
    mapping = long_mapping(patient="pid", accession="acc", volume="vol_ml", datetime_column="when")
    volumes = write(tmp_path / "v.csv", LONG)
    with open_store(store_config) as store:
        import_tables(store, mapping=mapping, volumes=volumes)
        write(tmp_path / "v.csv", LONG.replace("17.5", "18.5"))
        import_tables(store, mapping=mapping, volumes=volumes)
        rows = list_measurements(store)
    assert len(rows) == 4
    assert sorted(m.volume_ml for m in rows if m.patient_id == "P1") == [10.0, 18.5]


WIDE = """
ID,first_acc,vol,fu1_acc,vol.1,ed.1,fu2_acc,vol.2,ed.2,ed
S1,100,10000,101,17000,5,102,9000,6,4
S2,200,20000,,,,,,,3
"""

TIMES = """
ID,t0_acc,t0,t1_acc,t1,t2_acc,t2,t3_acc,t3
S1,100,2020-01-01 10:00:00,101,2020-01-01 16:00:00,102,2020-01-03 10:00:00,,
S2,200,2020-02-01 10:00:00,201,2020-02-01 12:00:00,,,,
"""

WIDE_MAPPING = """
name: wide-test
volumes:
  patient: ID
  volume_unit: mm3
  scans:
    - accession: first_acc
      volume: vol
      features: {edema: ed}
    - repeat: [1, 2]
      accession: "fu{n}_acc"
      volume: "vol.{n}"
      features: {edema: "ed.{n}"}
times:
  patient: ID
  scans:
    - {accession: t0_acc, datetime: t0}
    - {repeat: [1, 3], accession: "t{n}_acc", datetime: "t{n}"}
"""


def test_wide_layout_with_a_times_table(tmp_path: Path, store_config: StoreConfig) -> None:
    mapping_path = write(tmp_path / "m.yaml", WIDE_MAPPING)
    options = ImportOptions(store=store_config, mapping=load_mapping(mapping_path),
                            volumes=write(tmp_path / "w.csv", WIDE), times=write(tmp_path / "t.csv", TIMES))
    report = run_import(options)
    assert (report.n_patients, report.n_scans, report.n_times_unused) == (2, 4, 1)
    with open_store(store_config, create=False) as store:
        t = load_timeline(store, "S1")
        assert [(s.accession_number, s.volume_ml) for s in t.scans] == [("100", 10.0), ("101", 17.0), ("102", 9.0)]
        assert t.time_origin == "first_scan"
        rows = {m.accession_number: m for m in list_measurements(store)}
    assert rows["101"].features == {"edema": 5} and rows["100"].features == {"edema": 4}


def test_json_mapping_and_shipped_mapping_names(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"volumes": {"patient": "p", "scans": [{"accession": "a", "volume": "v"}]}}))
    mapping = load_mapping(path)
    assert mapping.volumes is not None and mapping.volumes.scans[0] == ScanColumns(accession="a", volume="v")
    assert "contest_2023e" in list_mappings()
    assert load_mapping("contest_2023e").volumes is not None


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("volumes:\n  patient: p\n  scans: []\n", "at least one group"),
        ("volumes:\n  patient: p\n  scans:\n    - {accession: a}\n", "volume column"),
        ("volumes:\n  patient: p\n  scans:\n    - {accession: a, volume: v, repeat: [1, 3]}\n", "must contain"),
        ("volumes:\n  patient: p\n  colour: red\n  scans:\n    - {accession: a, volume: v}\n", "colour"),
        ("volumes:\n  patient: p\n  volume_unit: litres\n  scans:\n    - {accession: a, volume: v}\n",
         "volume_unit"),
        ("name: nothing\n", "volumes section, a clinical section"),
    ],
)
def test_bad_mapping_files_are_config_errors(tmp_path: Path, text: str, match: str) -> None:
    path = write(tmp_path / "m.yaml", text)
    with pytest.raises(ConfigError, match=match) as info:
        load_mapping(path)
    assert info.value.exit_code == 2


def test_unknown_mapping_name() -> None:
    with pytest.raises(ConfigError, match="neither a file nor a shipped mapping"):
        load_mapping("no_such_mapping")


def test_missing_column_names_key_and_file(tmp_path: Path) -> None:
    mapping = long_mapping(patient="pid", accession="acc", volume="volume", datetime_column="when")
    with pytest.raises(ConfigError, match=r"Column 'volume' \(mapping key volumes.scans\[0\].volume\) is not in v.csv"):
        read_tables(mapping=mapping, volumes=write(tmp_path / "v.csv", LONG))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (LONG.replace("17.5", "lots"), r"v.csv row 3, column 'vol_ml': 'lots' is not a number"),
        (LONG.replace("2024-03-01 20:00:00", "yesterday"), r"row 3, column 'when': 'yesterday' is not a date-time"),
        (LONG.replace("P1,A2,2024-03-01 20:00:00,17.5", "P1,A1,2024-03-01 20:00:00,17.5"),
         "already has a different volume"),
        (LONG.replace("P1,A2", "P1,"), "volume is given without an accession"),
        (LONG.replace("17.5", "-1"), "negative"),
        (LONG.replace("P2,B1", ",B1"), "patient ID is empty"),
    ],
)
def test_bad_rows_name_file_row_and_column(tmp_path: Path, text: str, match: str) -> None:
    mapping = long_mapping(patient="pid", accession="acc", volume="vol_ml", datetime_column="when")
    with pytest.raises(TimelineError, match=match) as info:
        read_tables(mapping=mapping, volumes=write(tmp_path / "v.csv", text))
    assert info.value.exit_code == 1


def test_scan_without_a_time_is_an_error_and_nothing_is_written(tmp_path: Path, store_config: StoreConfig) -> None:
    mapping = load_mapping(write(tmp_path / "m.yaml", WIDE_MAPPING))
    times = write(tmp_path / "t.csv", TIMES.replace("102,2020-01-03 10:00:00", ",,"))
    options = ImportOptions(store=store_config, mapping=mapping, volumes=write(tmp_path / "w.csv", WIDE), times=times)
    with pytest.raises(TimelineError, match=r"w.csv row 2, column 'fu2_acc': no date-time"):
        run_import(options)
    assert not Path(store_config.path).exists()


def test_clinical_only_and_onset_datetime(tmp_path: Path, store_config: StoreConfig) -> None:
    clinical = write(tmp_path / "c.csv", "pid,onset,age\nP1,2024-03-01T05:30:00,71\n")
    mapping = TimelineMapping(
        volumes=None,
        clinical=long_mapping(patient="pid", onset_datetime="onset").clinical,
    )
    run_import(ImportOptions(store=store_config, mapping=mapping, clinical=clinical))
    with open_store(store_config, create=False) as store:
        c = get_clinical(store, "P1")
    assert c is not None and c.onset_datetime is not None and c.onset_datetime.hour == 5


def test_long_mapping_needs_both_volume_columns() -> None:
    with pytest.raises(ValueError, match="accession and its volume"):
        long_mapping(patient="p", accession="a")


SURGERY = """
pid,acc,when,vol_ml,after_op
P1,A1,2024-03-01 08:00:00,30.0,0
P1,A2,2024-03-01 20:00:00,8.0,yes
P2,B1,2024-03-02 09:30:00,30.0,
P2,B2,2024-03-03,31.0,
P4,D1,2024-03-02 09:30:00,30.0,
P4,D2,2024-03-02,31.0,
P3,C1,2024-03-02 09:30:00,30.0,
P3,C2,2024-03-03 09:30:00,12.0,
"""

SURGERY_CLIN = """
pid,onset_h,op_time
P1,2.0,
P2,1.0,
P3,1.0,2024-03-02 23:00:00
P4,1.0,
"""


def test_surgery_marks_and_date_only_times(tmp_path: Path, store_config: StoreConfig) -> None:
    mapping = long_mapping(patient="pid", accession="acc", volume="vol_ml", datetime_column="when",
                           onset_to_first_scan_h="onset_h", post_surgical="after_op", surgery_datetime="op_time")
    report = run_import(ImportOptions(store=store_config, mapping=mapping,
                                      volumes=write(tmp_path / "v.csv", SURGERY),
                                      clinical=write(tmp_path / "c.csv", SURGERY_CLIN)))
    (dateonly,) = [w for w in report.warnings if "no time of day" in w.text]
    assert dateonly.patients == ("P2", "P4")
    with open_store(store_config, create=False) as store:
        results = {r.patient_id: r for r in evaluate_timelines(load_timelines(store), PRESETS["contest_2023e"]).results}
        rows = {m.accession_number: m for m in list_measurements(store)}
    # P1: the table marks A2 post-surgical: 30 -> 8 mL is not "not expanded".
    assert [f["code"] for f in rows["A2"].quality_flags] == ["post_surgical"] and not rows["A1"].quality_flags
    assert results["P1"].status == "undetermined" and "post-surgical" in results["P1"].reason
    # P2: a date-only follow-up the day after the first scan (15.5-39.5 h) is surely inside 48 h: it counts.
    assert rows["B2"].acquisition_precision == "date" and rows["B1"].acquisition_precision == "datetime"
    assert results["P2"].status == "not_expanded"
    # P4: a date-only scan on the first scan's day: which one is the baseline is unknown.
    assert results["P4"].status == "undetermined" and "Which scan came first is unknown" in results["P4"].reason
    # P3: operated at 23:00 on day 1; the follow-up next morning is post-surgical.
    assert results["P3"].status == "undetermined" and results["P3"].unusable[0].problem_code == "post_surgical"


def test_a_bad_yes_no_cell_names_row_and_column(tmp_path: Path) -> None:
    mapping = long_mapping(patient="pid", accession="acc", volume="vol_ml", datetime_column="when",
                           post_surgical="after_op")
    bad = write(tmp_path / "v.csv", "pid,acc,when,vol_ml,after_op\nP1,A1,2024-03-01 08:00:00,3,maybe\n")
    with pytest.raises(TimelineError, match=r"v.csv row 2, column 'after_op': 'maybe' is not a yes/no value"):
        read_tables(mapping=mapping, volumes=bad)


def test_a_contest_file_given_to_the_wrong_option_is_named(tmp_path: Path) -> None:
    # table1 (clinical) given as --volumes: the error says which file the mapping expected there.
    clinical = write(tmp_path / "table1_clinical.csv", "ID,年龄\nsub001,60\n")
    with pytest.raises(ConfigError, match=r"expects table2_volumes_locations\.csv for this table"):
        read_tables(mapping=load_mapping("contest_2023e"), volumes=clinical)
