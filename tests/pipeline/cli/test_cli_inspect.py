from __future__ import annotations

import json
from pathlib import Path

import pydicom
from click.testing import CliRunner

from ichpipe.pipeline.cli import cli

CONTRACT_KEYS = {
    "series_instance_uid", "selected", "reasons", "n_slices", "rows", "columns", "pixel_spacing_mm",
    "slice_spacing_mm", "gantry_tilt_deg", "uniform_spacing", "missing_slices", "warnings",
}


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_inspect_json_contract(make_series) -> None:
    study = make_series(tilt_deg=15.0)
    result = run("inspect", "--study", str(study), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    (item,) = report["series"]
    assert CONTRACT_KEYS <= set(item)
    assert item["selected"] is True
    assert abs(item["gantry_tilt_deg"] - 15.0) < 1e-3
    assert abs(item["slice_spacing_mm"] - 5.0) < 1e-3
    assert item["pixel_spacing_mm"] == [0.5, 0.5]
    assert any(r.startswith("PASS modality_ct") for r in item["reasons"])


def test_inspect_text(make_series) -> None:
    result = run("inspect", "--study", str(make_series()))
    assert result.exit_code == 0
    assert "Selected:" in result.output


def test_inspect_real_philips(shared_data: Path) -> None:
    result = run("inspect", "--study", str(shared_data / "ct-real" / "philips-ingenuity-head-phantom"), "--json")
    assert result.exit_code == 0
    series = json.loads(result.stdout)["series"]
    chosen = [s for s in series if s["selected"]]
    assert len(chosen) == 1 and chosen[0]["series_number"] == 201
    assert all(s["reasons"] for s in series)


def test_no_dicom_is_exit_1_one_line(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    result = run("inspect", "--study", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0
    assert "No readable DICOM image found" in result.stderr
    assert "Traceback" not in result.output


def test_only_non_ct_is_exit_1_with_reasons(make_series) -> None:
    study = make_series()
    for f in study.iterdir():
        ds = pydicom.dcmread(f)
        ds.Modality = "MR"
        ds.save_as(f)
    result = run("inspect", "--study", str(study), "--json")
    assert result.exit_code == 1
    item = json.loads(result.stdout)["series"][0]
    assert item["selected"] is False
    assert any(r.startswith("FAIL modality_ct") for r in item["reasons"])
    assert "no series" in result.stderr


def test_missing_study_is_exit_1(tmp_path: Path) -> None:
    result = run("inspect", "--study", str(tmp_path / "nope"))
    assert result.exit_code == 1
    assert "does not exist" in result.stderr


def test_usage_error_is_exit_2() -> None:
    assert run("inspect").exit_code == 2


def test_inspect_warns_about_a_missing_frame_of_reference(tmp_path: Path) -> None:
    from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study

    write_phantom_study(tmp_path / "s", PhantomSpec(seed=2, rows=48, columns=48, n_slices=12, frame_of_reference=False))
    result = run("inspect", "--study", str(tmp_path / "s"), "--json")
    assert result.exit_code == 0, result.output
    (item,) = [s for s in json.loads(result.stdout)["series"] if s["selected"]]
    assert any("no FrameOfReferenceUID" in w for w in item["warnings"])
    text = run("inspect", "--study", str(tmp_path / "s"))
    assert "warning: 12 of 12 slices have no FrameOfReferenceUID" in text.stdout
    write_phantom_study(tmp_path / "t", PhantomSpec(seed=2, rows=48, columns=48, n_slices=12))
    (fine,) = [s for s in json.loads(run("inspect", "--study", str(tmp_path / "t"), "--json").stdout)["series"]
               if s["selected"]]
    assert not any("FrameOfReferenceUID" in w for w in fine["warnings"])
