"""``ichpipe timeline``, ``ichpipe timeline import`` and ``ichpipe expansion`` through click."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.serial.timeline_plot import patient_digest

CONTEST = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "contest-2023E"

VOLUMES = """pid,acc,when,vol
P1,A1,2024-03-01 08:00:00,20000
P1,A2,2024-03-01 20:00:00,27500
P2,B1,2024-03-02 09:30:00,30000
P2,B2,2024-03-03 09:30:00,31000
P3,C1,2024-03-04 09:30:00,5000
"""

CLINICAL = """pid,onset_h
P1,2.0
P2,1.5
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A store with three patients imported through the CLI (long layout, column options)."""
    (tmp_path / "v.csv").write_text(VOLUMES)
    (tmp_path / "c.csv").write_text(CLINICAL)
    path = str(tmp_path / "out" / "s.sqlite")
    result = run("timeline", "import", "--store", path, "--volumes", str(tmp_path / "v.csv"),
                 "--clinical", str(tmp_path / "c.csv"), "--patient-col", "pid", "--accession-col", "acc",
                 "--volume-col", "vol", "--datetime-col", "when", "--volume-unit", "mm3",
                 "--onset-hours-col", "onset_h", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["patients"], report["scans"], report["clinical_rows"]) == (3, 5, 2)
    return path


def test_timeline_json(store: str) -> None:
    result = run("timeline", "--patient", "P1", "--store", store, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["patient_id"] == "P1" and data["time_origin"] == "onset"
    assert [s["accession_number"] for s in data["scans"]] == ["A1", "A2"]
    assert [s["hours_from_onset"] for s in data["scans"]] == [2.0, 14.0]
    assert data["expansion"]["status"] == "expanded"
    assert data["expansion"]["first_expansion"]["delta_ml"] == pytest.approx(7.5)
    assert data["rule"]["name"] == "contest_2023e"


def test_timeline_text_and_plot(store: str, tmp_path: Path) -> None:
    png = tmp_path / "plots" / "p3.png"
    result = run("timeline", "--patient", "P3", "--store", store, "--plot", str(png))
    assert result.exit_code == 0, result.output
    assert "undetermined" in result.stdout and "counted from the first scan" in result.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_timeline_rule_options(store: str) -> None:
    result = run("timeline", "--patient", "P1", "--store", store, "--json", "--window-h", "12")
    data = json.loads(result.stdout)
    assert data["rule"]["window_h"] == 12.0 and data["expansion"]["status"] == "undetermined"


def test_unknown_patient_exits_1(store: str) -> None:
    result = run("timeline", "--patient", "NOPE", "--store", store)
    assert result.exit_code == 1
    assert "no measurements for the patient ID given" in result.stderr
    assert "NOPE" not in result.stderr


def test_usage_errors_exit_2(store: str, tmp_path: Path) -> None:
    assert run("timeline", "--store", store).exit_code == 2  # neither --patient nor a subcommand
    assert run("expansion", "--store", store, "--json", "--csv").exit_code == 2
    assert run("expansion", "--store", store, "--preset", "nope").exit_code == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("expansion:\n  window_h: -3\n")
    result = run("expansion", "--store", store, "--config", str(bad))
    assert result.exit_code == 2 and "window_h" in result.stderr
    result = run("timeline", "import", "--store", store, "--volumes", str(tmp_path / "missing.csv"))
    assert result.exit_code == 2
    (tmp_path / "v.csv").write_text(VOLUMES)
    result = run("timeline", "import", "--store", store, "--volumes", str(tmp_path / "v.csv"))
    assert result.exit_code == 2 and "--mapping" in result.stderr
    result = run("timeline", "import", "--store", store, "--volumes", str(tmp_path / "v.csv"),
                 "--mapping", "no_such_mapping")
    assert result.exit_code == 2
    result = run("timeline", "import", "--store", store, "--volumes", str(tmp_path / "v.csv"),
                 "--patient-col", "pid", "--accession-col", "acc", "--volume-col", "volume_ml",
                 "--datetime-col", "when")
    assert result.exit_code == 2 and "volume_ml" in result.stderr


def test_bad_row_exits_1(tmp_path: Path) -> None:
    (tmp_path / "v.csv").write_text(VOLUMES.replace("27500", "n/a"))
    result = run("timeline", "import", "--store", str(tmp_path / "s.sqlite"), "--volumes", str(tmp_path / "v.csv"),
                 "--patient-col", "pid", "--accession-col", "acc", "--volume-col", "vol", "--datetime-col", "when")
    assert result.exit_code == 1 and "row 3, column 'vol'" in result.stderr


def test_missing_store_exits_1(tmp_path: Path) -> None:
    result = run("expansion", "--store", str(tmp_path / "none.sqlite"))
    assert result.exit_code == 1 and "No results store" in result.stderr
    assert not (tmp_path / "none.sqlite").exists()


def test_expansion_json(store: str) -> None:
    result = run("expansion", "--store", store, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["summary"] == {"patients": 3, "expanded": 1, "not_expanded": 1, "undetermined": 1}
    by_id = {p["patient_id"]: p for p in data["patients"]}
    assert by_id["P1"]["label"] == 1 and by_id["P1"]["expansion_hours"] == 14.0
    assert by_id["P2"]["label"] == 0 and by_id["P3"]["label"] is None


def test_expansion_csv_and_plots(store: str, tmp_path: Path) -> None:
    result = run("expansion", "--store", store, "--csv", "--plot-dir", str(tmp_path / "plots"))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["patient_id"], r["status"]) for r in rows] == [
        ("P1", "expanded"), ("P2", "not_expanded"), ("P3", "undetermined")]
    assert rows[0]["delta_ml"] == "7.5000" and rows[0]["criteria"] == "absolute+relative"
    # Plot file names never carry the patient ID (issue 18): a digest stands in, the ID only with --log-phi.
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(
        f"timeline_{patient_digest(pid)}.png" for pid in ("P1", "P2", "P3"))
    result = run("--log-phi", "expansion", "--store", store, "--csv", "--plot-dir", str(tmp_path / "phi"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "phi").iterdir()) == [
        "timeline_P1.png", "timeline_P2.png", "timeline_P3.png"]


def test_expansion_text_with_a_preset(store: str) -> None:
    result = run("expansion", "--store", store, "--preset", "kazui_1996")
    assert result.exit_code == 0
    # P1 grew +7.5 mL (+37.5 %): expanded under the contest rule, not under Kazui (12.5 mL / 40 %).
    assert "Rule kazui_1996" in result.stdout and "0 expanded, 2 not expanded, 1 undetermined" in result.stdout


def test_contest_import_through_the_cli(tmp_path: Path) -> None:
    if not CONTEST.is_dir():
        pytest.skip("../shared/data/contest-2023E not present")
    path = str(tmp_path / "s.sqlite")
    result = run("timeline", "import", "--store", path, "--mapping", "contest_2023e",
                 "--volumes", str(CONTEST / "table2_volumes_locations.csv"),
                 "--times", str(CONTEST / "appendix1_accession_times.csv"),
                 "--clinical", str(CONTEST / "table1_clinical.csv"))
    assert result.exit_code == 0, result.output
    # sub074's first-scan accession: a warning on stderr naming the patient, masked without --log-phi
    assert "[PatientID] (row 75)" in result.stderr and "sub074" not in result.stderr + result.stdout
    assert "no symptom-onset time" not in result.stderr  # table1 gave every onset
    result = run("expansion", "--store", path, "--json")
    data = json.loads(result.stdout)
    assert data["summary"] == {"patients": 130, "expanded": 23, "not_expanded": 73, "undetermined": 34}


def test_contest_import_warnings_name_patients_with_log_phi(tmp_path: Path) -> None:
    if not CONTEST.is_dir():
        pytest.skip("../shared/data/contest-2023E not present")
    result = run("--log-phi", "timeline", "import", "--store", str(tmp_path / "s.sqlite"), "--mapping",
                 "contest_2023e", "--volumes", str(CONTEST / "table2_volumes_locations.csv"),
                 "--times", str(CONTEST / "appendix1_accession_times.csv"),
                 "--clinical", str(CONTEST / "table1_clinical.csv"), "--json")
    assert result.exit_code == 0, result.output
    assert "sub074 (row 75)" in result.stderr
    assert any("sub074 (row 75)" in w for w in json.loads(result.stdout)["warnings"])


def test_contest_import_without_onset_warns_once_and_loudly(tmp_path: Path) -> None:
    if not CONTEST.is_dir():
        pytest.skip("../shared/data/contest-2023E not present")
    path = str(tmp_path / "s.sqlite")
    result = run("timeline", "import", "--store", path, "--mapping", "contest_2023e",
                 "--volumes", str(CONTEST / "table2_volumes_locations.csv"),
                 "--times", str(CONTEST / "appendix1_accession_times.csv"))
    assert result.exit_code == 0, result.output
    assert result.stderr.count("no symptom-onset time") == 1
    assert "130 of the 130 imported patient(s)" in result.stderr and "--clinical table1_clinical.csv" in result.stderr
    # What the warning says happens: windows from the first scan, 25 "expanded" instead of 23 on sub001-sub100.
    rows = list(csv.DictReader(io.StringIO(run("expansion", "--store", path, "--csv").stdout)))
    dev = [r for r in rows if int(r["patient_id"][3:]) <= 100]
    assert sum(r["status"] == "expanded" for r in dev) == 25
    assert {r["time_origin"] for r in rows} == {"first_scan"}
    text = run("expansion", "--store", path).stdout
    assert "[window from first scan, onset unknown]" in text
    assert "130 patient(s) have no onset time" in text


def test_import_help_says_which_contest_file_goes_where() -> None:
    result = run("timeline", "import", "--help")
    assert result.exit_code == 0
    lines = " ".join(result.stdout.split())
    for option, name in (("--volumes", "table2_volumes_locations.csv"), ("--times", "appendix1_accession_times.csv"),
                         ("--clinical", "table1_clinical.csv")):
        assert f"{option} {name}" in lines
    assert "table3_radiomics" in lines


def test_a_flagged_scan_is_marked_in_the_timeline(tmp_path: Path) -> None:
    """A follow-up recorded with quality flags (from its run report) shows them in JSON, text and the plot."""
    from ichpipe.pipeline.config.store_config import StoreConfig
    from ichpipe.pipeline.serial.store import measurement_from_report, open_store, record_measurement

    path = str(tmp_path / "s.sqlite")
    flag = {"code": "skull_open", "message": "The bone ring is open over up to 72 deg on 16 slices.", "value": 72.0}
    with open_store(StoreConfig(path=path)) as s:
        for uid, acc, when, volume, flags in (("1.1", "A1", "2024-03-01T08:00:00", 20.0, []),
                                              ("1.2", "A2", "2024-03-02T08:00:00", 4.0, [flag])):
            record_measurement(s, measurement_from_report({
                "patient_id": "PQ", "series_instance_uid": uid, "accession_number": acc,
                "acquisition_datetime": when, "hematoma": {"volume_ml": volume, "abc2_ml": volume},
                "segmenter": {"name": "threshold"}, "quality": {"flags": flags}}))
    data = json.loads(run("timeline", "--patient", "PQ", "--store", path, "--json").stdout)
    assert [[f["code"] for f in s["quality_flags"]] for s in data["scans"]] == [[], ["skull_open"]]
    png = tmp_path / "pq.png"
    text = run("timeline", "--patient", "PQ", "--store", path, "--plot", str(png))
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    (at,) = [i for i, x in enumerate(lines) if x.split()[:2] == ["1", "A2"]]
    assert lines[at + 1].strip().startswith("! quality flag skull_open")
    assert "undetermined" in text.stdout and "the volume is flagged" in text.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
