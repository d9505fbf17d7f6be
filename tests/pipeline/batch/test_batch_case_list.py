"""``ichpipe batch --list cases.csv``: a research cohort of NIfTI files and study folders.

Cases: two NIfTI CTs of one patient (phantoms of 10 and 22 mL, written by
nibabel from the assembled DICOM volumes) with accession numbers and times
from the list, the DICOM study of the first one, a file that is not NIfTI and
a file that does not exist.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from batch_support import write_config
from click.testing import CliRunner

from ichpipe.dicom_io.assemble import assemble_series
from ichpipe.dicom_io.study import scan_study
from ichpipe.pipeline.batch.case_list import read_case_list
from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.config import load_config
from ichpipe.pipeline.measure.nifti_masks import LPS_FROM_RAS
from ichpipe.pipeline.serial.store import list_measurements, open_store
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study

HEADER = "case_id,path,patient_id,accession_number,acquisition_datetime,notes\n"


def _nifti_of(study: Path, dest: Path) -> Path:
    with scan_study(study) as scan:
        volume = assemble_series(scan.require_selected().series)
    affine = LPS_FROM_RAS @ volume.geometry.affine_lps()
    dest.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(volume.hu.transpose(2, 1, 0).astype(np.float32), affine), dest)
    return dest


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cohort")
    for name, seed, ml in (("base", 31, 10.0), ("follow", 32, 22.0)):
        spec = PhantomSpec(seed=seed, rows=64, columns=64, n_slices=12, volume_ml=ml, noise_hu=3.0)
        write_phantom_study(root / "dicom" / name, spec)
        _nifti_of(root / "dicom" / name, root / "nifti" / f"{name}.nii.gz")
    (root / "nifti" / "broken.nii.gz").write_bytes(b"not a nifti file")
    return root


def _batch(case_list: Path, out: Path, config: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(cli, ["batch", "--list", str(case_list), "--out", str(out), "--segmenter",
                                      "threshold", "--config", str(config), "--json", *extra])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout) if result.exit_code in (0, 1) else {}, result.stderr


def _by_case(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["case_id"]: item for item in summary["items"]}


def test_a_cohort_list_is_processed_incrementally_and_recorded(cohort: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "cfg.json", store=tmp_path / "store.sqlite")
    case_list = cohort / "cases.csv"
    case_list.write_text(HEADER + "\n".join([
        "c1,nifti/base.nii.gz,P1,ACC1,2024-03-01T08:00,first scan",
        "c2,nifti/follow.nii.gz,P1,ACC2,2024-03-01 20:00,",
        "c3,dicom/base,,,,the DICOM study of c1",
        "c4,nifti/broken.nii.gz,P2,ACC3,2024-03-02,",
        "c5,nifti/missing.nii.gz,P3,,,",
    ]) + "\n")
    out = tmp_path / "out"

    code, summary, _ = _batch(case_list, out, config)
    assert code == 1  # two cases failed; the others were processed all the same
    items = _by_case(summary)
    assert {c: items[c]["status"] for c in items} == {
        "c1": "processed", "c2": "processed", "c3": "processed", "c4": "failed", "c5": "failed"}
    assert "could not be read as NIfTI" in items["c4"]["error"] and "does not exist" in items["c5"]["error"]
    assert summary["case_list"] == str(case_list.resolve()) and summary["inbox"] is None

    reports = {c: json.loads((Path(items[c]["output_dir"]) / "report.json").read_text()) for c in ("c1", "c2", "c3")}
    c1, c2, c3 = reports["c1"], reports["c2"], reports["c3"]
    # the NIfTI case is the DICOM study seen through a NIfTI header: the same volume
    assert c1["hematoma"]["volume_ml"] == pytest.approx(c3["hematoma"]["volume_ml"], rel=1e-6)
    assert (c1["patient_id"], c1["accession_number"], c1["acquisition_datetime"]) == ("P1", "ACC1",
                                                                                      "2024-03-01T08:00:00")
    assert c1["input"]["case_id"] == "c1" and c1["input"]["format"] == "nifti"
    assert c1["series_instance_uid"].startswith("2.25.") and c3["input"]["format"] == "dicom"
    assert c2["hematoma"]["volume_ml"] > c1["hematoma"]["volume_ml"] + 6  # 22 vs 10 mL phantoms
    assert c2["serial"]["is_baseline"] is False and c2["serial"]["expansion"] == "expanded"

    with open_store(load_config(config).store, create=False) as store:
        p1 = list_measurements(store, patient_id="P1")
    assert sorted((m.accession_number, m.source, m.source_path) for m in p1) == [
        ("ACC1", "nifti", None), ("ACC2", "nifti", None)]
    html = Path(summary["summary_files"]["html"]).read_text()
    assert "case c1" in html and "case list" in html
    csv_lines = Path(summary["summary_files"]["csv"]).read_text().splitlines()
    assert csv_lines[0].split(",")[3] == "case_id" and any(",c4," in line for line in csv_lines)

    # again: nothing new; the failures wait for their input to change
    code, summary, _ = _batch(case_list, out, config)
    assert code == 0
    assert {c: i["status"] for c, i in _by_case(summary).items()} == {
        "c1": "skipped", "c2": "skipped", "c3": "skipped", "c4": "skipped_failed", "c5": "skipped_failed"}

    # a corrected row is redone, and only that one; a file that appears is processed
    case_list.write_text(case_list.read_text().replace("c2,nifti/follow.nii.gz,P1,ACC2,2024-03-01 20:00",
                                                       "c2,nifti/follow.nii.gz,P1,ACC9,2024-03-01 21:00"))
    _nifti_of(cohort / "dicom" / "base", cohort / "nifti" / "missing.nii.gz")
    code, summary, _ = _batch(case_list, out, config)
    statuses = {c: i["status"] for c, i in _by_case(summary).items()}
    assert statuses == {"c1": "skipped", "c2": "processed", "c3": "skipped", "c4": "skipped_failed",
                        "c5": "processed"}
    assert code == 0
    with open_store(load_config(config).store, create=False) as store:
        assert sorted(m.accession_number for m in list_measurements(store, patient_id="P1")) == ["ACC1", "ACC9"]
        assert [m.accession_number for m in list_measurements(store, patient_id="P3")] == [None]


@pytest.mark.parametrize(("rows", "match"), [
    ("case_id,file\nc1,a.nii.gz\n", "no 'path' column"),
    ("case_id,path\nc1,a.nii.gz\nc1,b.nii.gz\n", r"line 3: case_id 'c1' already on line 2"),
    ("path\na.nii.gz\n./a.nii.gz\n", "line 3: .* already on line 2"),
    ("path,acquisition_time\na.nii.gz,yesterday\n", "line 2: acquisition_datetime 'yesterday' is not an ISO 8601"),
    ("path,case_id\n,c1\n", "line 2: empty path"),
    ("path\n", "names no case"),
    ('path,case_id\n\na.nii.gz,"c\n1"\nb.nii.gz,\n,c3\n', "line 6: empty path"),  # a blank line, a 2-line value
])
def test_a_bad_list_stops_before_anything_runs(tmp_path: Path, rows: str, match: str) -> None:
    config = write_config(tmp_path / "cfg.json", store=tmp_path / "store.sqlite")
    (tmp_path / "cases.csv").write_text(rows)
    code, _, stderr = _batch(tmp_path / "cases.csv", tmp_path / "out", config)
    assert code == 2
    assert "ichpipe: error:" in stderr
    assert re.search(match, stderr), stderr
    assert not (tmp_path / "store.sqlite").exists()


def test_inbox_or_list_exactly_one_and_no_pull_with_a_list(tmp_path: Path) -> None:
    config = write_config(tmp_path / "cfg.json", store=tmp_path / "store.sqlite")
    (tmp_path / "cases.csv").write_text("path\na.nii.gz\n")
    (tmp_path / "inbox").mkdir()
    runner = CliRunner()
    neither = runner.invoke(cli, ["batch", "--config", str(config)])
    both = runner.invoke(cli, ["batch", "--inbox", str(tmp_path / "inbox"), "--list", str(tmp_path / "cases.csv"),
                               "--config", str(config)])
    pull = runner.invoke(cli, ["batch", "--list", str(tmp_path / "cases.csv"), "--out", str(tmp_path / "out"),
                               "--segmenter", "threshold", "--pull", "--config", str(config)])
    assert (neither.exit_code, both.exit_code, pull.exit_code) == (2, 2, 2)
    assert "--inbox DIR or --list" in neither.stderr and "--inbox DIR or --list" in both.stderr
    assert "does not work with --list" in pull.stderr
    watch = runner.invoke(cli, ["watch", "--config", str(config)])
    assert watch.exit_code == 2 and "--inbox" in watch.stderr


def test_values_for_a_dicom_row_are_ignored_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "study").mkdir()
    (tmp_path / "cases.csv").write_text("path,patient_id,accession\nstudy,P9,A9\nct.nii,P8,A8\n")
    rows = read_case_list(tmp_path / "cases.csv")
    assert rows[0].case.patient_id is None and rows[0].case.accession_number is None
    assert (rows[1].case.patient_id, rows[1].case.accession_number) == ("P8", "A8")
    assert rows[0].path == (tmp_path / "study").resolve() and rows[1].label == "row 3"
    assert "line 2: patient_id, accession_number ignored for a DICOM case" in caplog.text
