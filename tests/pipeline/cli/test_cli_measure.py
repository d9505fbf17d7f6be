from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner, Result
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from ichpipe.dicom_io import assemble_series, scan_study
from ichpipe.dicom_io.seg import write_seg
from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.jobs import measure_mask as measure_job
from ichpipe.pipeline.measure.nifti_masks import LPS_FROM_RAS

REPORT_KEYS = {
    "patient_id", "study_instance_uid", "series_instance_uid", "accession_number", "acquisition_datetime",
    "geometry", "hematoma", "segmenter", "outputs", "timings_s",
}
GEOMETRY_KEYS = {"n_slices", "pixel_spacing_mm", "slice_spacing_mm", "gantry_tilt_deg", "uniform_spacing",
                 "missing_slices", "warnings"}
HEMATOMA_KEYS = {"volume_ml", "abc2_ml", "n_voxels", "max_area_slice_index", "abc2", "slice_areas_mm2"}


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def study_mask(path: Path, *, n_slices: int = 12, tilt_deg: float = 0.0, size: int = 16,
               box=(slice(2, 7), slice(3, 9), slice(4, 12))) -> tuple[Path, int]:
    """A NIfTI mask built by hand for the `make_series` grid (0.5 mm pixels, 5 mm along the normal)."""
    t = math.radians(tilt_deg)
    lps = np.eye(4)
    lps[:3, 0] = [0.5, 0.0, 0.0]
    lps[:3, 1] = [0.0, 0.5 * math.cos(t), -0.5 * math.sin(t)]
    lps[:3, 2] = [0.0, 0.0, 5.0 / math.cos(t)]  # along the table, as dcm2niix writes a tilted stack
    data = np.zeros((size, size, n_slices), dtype=np.uint8)  # i = column, j = row, k = slice
    k, j, i = box
    data[i, j, k] = 1
    img = nib.Nifti1Image(data, LPS_FROM_RAS @ lps)
    img.set_sform(LPS_FROM_RAS @ lps, code=1)
    nib.save(img, path)
    return path, int(data.sum())


def test_measure_study_nifti_json_contract(make_series, tmp_path: Path) -> None:
    study = make_series()
    mask, n = study_mask(tmp_path / "mask.nii.gz")
    result = run("measure", "--study", str(study), "--mask", str(mask), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert REPORT_KEYS <= set(report)
    assert GEOMETRY_KEYS <= set(report["geometry"])
    assert HEMATOMA_KEYS <= set(report["hematoma"])
    h = report["hematoma"]
    assert h["n_voxels"] == n
    assert h["volume_ml"] == pytest.approx(n * 0.25 * 5.0 / 1000.0, abs=1e-4)
    assert h["max_area_slice_index"] == 2
    assert h["abc2"]["c_mm"] == pytest.approx(25.0)
    assert report["patient_id"] == "TEST"
    assert report["accession_number"] == "ACC1"
    assert report["acquisition_datetime"] == "2026-01-01T12:00:00"
    assert report["study_instance_uid"] and report["series_instance_uid"]
    assert report["segmenter"] == {"name": "external-mask", "checkpoint_sha256": None,
                                   "version": report["ichpipe_version"]}
    assert report["outputs"] == {}
    assert {"load_mask", "load_study", "measure"} <= set(report["timings_s"])
    assert report["mask"]["format"] == "nifti"


def test_measure_tilted_study_is_not_inflated(make_series, tmp_path: Path) -> None:
    study = make_series(tilt_deg=18.5)
    mask, n = study_mask(tmp_path / "mask.nii.gz", tilt_deg=18.5)
    result = run("measure", "--study", str(study), "--mask", str(mask), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["geometry"]["gantry_tilt_deg"] == pytest.approx(18.5, abs=1e-3)
    assert report["hematoma"]["volume_ml"] == pytest.approx(n * 0.25 * 5.0 / 1000.0, abs=1e-4)


def test_mismatched_mask_exits_1_with_one_line(make_series, tmp_path: Path) -> None:
    study = make_series()
    mask, _ = study_mask(tmp_path / "short.nii.gz", n_slices=11)
    result = run("measure", "--study", str(study), "--mask", str(mask), "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0
    assert "short.nii.gz does not match the series: it has 11 slices" in result.stderr
    assert "Traceback" not in result.output


def test_mask_fitting_another_series_is_measured_with_a_warning(make_series, tmp_path: Path) -> None:
    study = make_series(name="study/a", offsets=tuple(range(0, 60, 5)))
    make_series(name="study/b", offsets=tuple(range(0, 40, 5)))
    with scan_study(study.parent) as scan:
        selected = scan.require_selected()
        other = next(s for s in scan.series if s is not selected)
        n_other = other.geometry.n_slices if other.geometry else 0
    mask, _ = study_mask(tmp_path / "m.nii.gz", n_slices=n_other)
    result = run("measure", "--study", str(study.parent), "--mask", str(mask), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["series_instance_uid"] == other.series.series_uid
    assert any("does not fit the selected series" in w for w in report["warnings"])


def test_measure_mask_alone_uses_the_header(tmp_path: Path) -> None:
    mask, n = study_mask(tmp_path / "mask.nii.gz")
    result = run("measure", "--mask", str(mask), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for key in ("patient_id", "study_instance_uid", "series_instance_uid", "accession_number",
                "acquisition_datetime"):
        assert report[key] is None
    assert report["hematoma"]["volume_ml"] == pytest.approx(n * 0.25 * 5.0 / 1000.0, abs=1e-4)
    assert report["mask"]["geometry_source"] == "nifti-header"
    text = run("measure", "--mask", str(mask), "--abc2-c-method", "kothari")
    assert text.exit_code == 0
    assert "Hematoma volume: " in text.stdout and "C by kothari" in text.stdout


def _fake_dicom(path: Path, sop_class_uid: str) -> Path:
    sop_class = UID(sop_class_uid)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.save_as(path, enforce_file_format=True)
    return path


def test_usage_and_input_errors(make_series, tmp_path: Path) -> None:
    assert run("measure").exit_code == 2  # --mask is required
    seg = _fake_dicom(tmp_path / "seg.dcm", measure_job.SEG_SOP_CLASS_UID)
    alone = run("measure", "--mask", str(seg))
    assert alone.exit_code == 2 and "give --study" in alone.stderr
    ct = _fake_dicom(tmp_path / "ct.dcm", "1.2.840.10008.5.1.4.1.1.2")
    wrong = run("measure", "--mask", str(ct))
    assert wrong.exit_code == 1 and "not a Segmentation" in wrong.stderr
    (tmp_path / "notes.txt").write_text("hello")
    text = run("measure", "--mask", str(tmp_path / "notes.txt"))
    assert text.exit_code == 1 and "neither a NIfTI file" in text.stderr
    missing = run("measure", "--mask", str(tmp_path / "none.nii.gz"))
    assert missing.exit_code == 1 and "does not exist" in missing.stderr


def test_seg_without_reader_module_is_a_clear_error(make_series, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "ichpipe.dicom_io.seg", None)
    seg = _fake_dicom(tmp_path / "seg.dcm", measure_job.SEG_SOP_CLASS_UID)
    result = run("measure", "--study", str(make_series()), "--mask", str(seg))
    assert result.exit_code == 1
    assert "need ichpipe.dicom_io.seg" in result.stderr


def test_dicom_seg_mask_through_read_seg_mask(make_series, tmp_path: Path) -> None:
    study = make_series()
    with scan_study(study) as scan:
        volume = assemble_series(scan.require_selected().series)
    mask = np.zeros(volume.hu.shape, dtype=bool)
    mask[3:6, 2:8, 5:9] = True
    seg = write_seg(mask, volume, tmp_path / "seg.dcm", algorithm_name="test", algorithm_version="1")
    result = run("measure", "--study", str(study), "--mask", str(seg), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["mask"]["format"] == "dicom-seg"
    assert report["hematoma"]["n_voxels"] == int(mask.sum())
    assert report["hematoma"]["volume_ml"] == pytest.approx(mask.sum() * 0.25 * 5.0 / 1000.0, abs=1e-4)


def test_measure_reports_the_quality_of_the_study(tmp_path: Path) -> None:
    """`measure` runs the image checks of `run` on the study (the given mask as the segmentation)."""
    from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study

    write_phantom_study(tmp_path / "s", PhantomSpec(seed=3, rows=96, columns=96, touch_skull=True, volume_ml=20.0,
                                                    export="skull_air_stripped"))
    result = run("measure", "--study", str(tmp_path / "s"), "--mask", str(tmp_path / "s" / "truth_mask.nii.gz"),
                 "--json")
    assert result.exit_code == 0, result.output
    quality = json.loads(result.stdout)["quality"]
    assert {"skull_absent", "hu_no_air"} <= set(quality["codes"]) and "intracranial" in quality["checks"]
    alone = json.loads(run("measure", "--mask", str(tmp_path / "s" / "truth_mask.nii.gz"), "--json").stdout)
    assert alone["quality"]["checks"] == [] and "nothing could be checked" in alone["quality"]["note"]
