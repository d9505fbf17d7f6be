"""``run`` with quality flags, a missing Frame of Reference, an output that cannot be built, a failed run."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from ichpipe.errors import DicomInputError, OutputBuildError, StoreError
from ichpipe.pipeline.config import load_config
from ichpipe.pipeline.jobs import run_study as run_job
from ichpipe.pipeline.jobs.run_study import RunOptions, run_study
from ichpipe.pipeline.jobs.study_outputs import OutputRun, key_image_caption, seg_content_description
from ichpipe.pipeline.quality import QualityFlag
from ichpipe.pipeline.serial.store import list_measurements, open_store
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study

SMALL = {"seed": 3, "rows": 128, "columns": 128, "touch_skull": True, "volume_ml": 30.0}


def _config(tmp_path: Path, extra: str = ""):
    path = tmp_path / "cfg.yaml"
    path.write_text(f"store:\n  path: {tmp_path / 'store.sqlite'}\n{extra}")
    return load_config(path)


def _study(tmp_path: Path, name: str, **options: object) -> Path:
    study = tmp_path / name
    write_phantom_study(study, PhantomSpec(**SMALL, **options))  # type: ignore[arg-type]
    return study


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_series_without_frame_of_reference_is_measured_and_written_whole(tmp_path: Path) -> None:
    study = _study(tmp_path, "nofor", frame_of_reference=False)
    config = _config(tmp_path)
    result = run_study(RunOptions(study=study, out=tmp_path / "out", segmenter="threshold"), config)
    report = result.report
    truth = json.loads((study / "truth.json").read_text())
    assert truth["frame_of_reference_uid"] is None
    assert report["hematoma"]["volume_ml"] == pytest.approx(truth["hematoma"]["volume_ml"], rel=0.05)
    assert {"seg", "key_image_png", "secondary_capture", "report"} <= set(report["outputs"])
    derived = report["frame_of_reference"]
    assert derived["derived"] is True
    assert derived["uid"] == generate_uid(entropy_srcs=["ichpipe derived Frame of Reference",
                                                        report["series_instance_uid"]])
    assert any("FrameOfReferenceUID" in w for w in report["warnings"])
    seg = pydicom.dcmread(report["outputs"]["seg"])
    assert seg.FrameOfReferenceUID == derived["uid"]
    with open_store(config.store) as store:
        rows = list_measurements(store, patient_id=report["patient_id"])
    assert [r.volume_ml for r in rows] == [pytest.approx(report["hematoma"]["volume_ml"])]
    if shutil.which("dciodvfy"):
        checked = subprocess.run(["dciodvfy", "-new", report["outputs"]["seg"]], capture_output=True, text=True,
                                 timeout=120)
        errors = [line for line in (checked.stdout + checked.stderr).splitlines() if line.startswith("Error")]
        assert errors == []


def test_a_seg_that_cannot_be_built_is_skipped_with_a_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ichpipe.pipeline.jobs import study_outputs

    def refuse(*args: object, **kwargs: object) -> None:
        raise OutputBuildError("highdicom could not build the DICOM SEG (ValueError: test).")

    monkeypatch.setattr(study_outputs, "build_seg", refuse)
    study = _study(tmp_path, "plain")
    result = run_study(RunOptions(study=study, out=tmp_path / "out", segmenter="threshold"), _config(tmp_path))
    report = result.report
    assert "seg" not in report["outputs"] and "seg" in report["outputs_skipped"]
    assert [f["code"] for f in report["quality"]["flags"]] == ["output_skipped"]
    assert {"key_image.png", "key_image_sc.dcm", "report.json", "sr.dcm"} == set(_files(result.output_dir))
    assert report["hematoma"]["volume_ml"] > 25.0


def test_a_failed_run_leaves_no_file_and_no_empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_store(report: object, config: object, **kwargs: object) -> None:
        raise StoreError("the store cannot be written (test)")

    monkeypatch.setattr(run_job, "_record", broken_store)
    study = _study(tmp_path, "plain")
    out = tmp_path / "out"
    with pytest.raises(StoreError, match="cannot be written"):
        run_study(RunOptions(study=study, out=out, segmenter="threshold"), _config(tmp_path))
    assert not out.exists() or list(out.rglob("*")) == []


def test_flagged_run_writes_everything_and_strict_only_changes_the_exit_code(tmp_path: Path) -> None:
    study = _study(tmp_path, "stripped", export="skull_air_stripped")
    config = _config(tmp_path)
    lenient = run_study(RunOptions(study=study, out=tmp_path / "a", segmenter="threshold"), config)
    strict = run_study(RunOptions(study=study, out=tmp_path / "b", segmenter="threshold", strict=True), config)
    assert lenient.exit_code == 0 and strict.exit_code == 1
    assert {"skull_absent", "hu_no_air"} <= {f.code for f in strict.flags}
    assert _files(lenient.output_dir) == _files(strict.output_dir)
    report = json.loads((strict.output_dir / "report.json").read_text())
    assert report["quality"]["flagged"] is True
    assert report["quality"]["intracranial"]["method"].startswith("closed ring of stripped-skull voxels")
    seg = pydicom.dcmread(strict.output_dir / "seg.dcm")
    assert "FLAGGED" in seg.SeriesDescription and "skull_absent" in seg.ContentDescription
    sc = pydicom.dcmread(strict.output_dir / "key_image_sc.dcm")
    assert "FLAGGED" in sc.SeriesDescription and "No skull in the image" in sc.DerivationDescription
    with open_store(config.store) as store:
        assert len(list_measurements(store, patient_id=report["patient_id"])) == 1


def test_threshold_is_labelled_a_baseline_in_report_and_seg(tmp_path: Path) -> None:
    study = _study(tmp_path, "plain")
    result = run_study(RunOptions(study=study, out=tmp_path / "out", segmenter="threshold"), _config(tmp_path))
    segmenter = result.report["segmenter"]
    assert segmenter["baseline"] is True and "baseline" in segmenter["kind"]
    seg = pydicom.dcmread(result.output_dir / "seg.dcm")
    item = seg.SegmentSequence[0]
    algorithm = item.SegmentationAlgorithmIdentificationSequence[0]
    family = algorithm.AlgorithmFamilyCodeSequence[0]
    assert (family.CodeValue, family.CodingSchemeDesignator) == ("123104", "DCM")  # Morphological Operations
    assert family.CodeMeaning != "Artificial Intelligence"
    assert item.SegmentAlgorithmType == "AUTOMATIC"
    assert algorithm.AlgorithmName == "ichpipe-threshold-baseline"
    assert "threshold baseline" in seg.SeriesDescription
    assert result.report["quality"]["flags"] == []


def test_rescale_slope_1e30_is_a_clear_error_not_0_ml(tmp_path: Path) -> None:
    study = _study(tmp_path, "plain")
    for f in (study / "DICOM").iterdir():
        ds = pydicom.dcmread(f)
        if ds.Modality == "CT":
            ds.RescaleSlope = "1e30"
            ds.save_as(f)
    with pytest.raises(DicomInputError, match=r"no slice has a usable RescaleSlope/RescaleIntercept.*1e\+30"):
        run_study(RunOptions(study=study, out=tmp_path / "out", segmenter="threshold"), _config(tmp_path))
    assert not (tmp_path / "out").exists()


def test_one_absurd_rescale_skips_that_slice_with_a_warning(tmp_path: Path) -> None:
    study = _study(tmp_path, "plain")
    victim = next(f for f in sorted((study / "DICOM").iterdir())
                  if pydicom.dcmread(f, stop_before_pixels=True).get("InstanceNumber") == 3)
    ds = pydicom.dcmread(victim)
    ds.RescaleSlope = "1e30"
    ds.save_as(victim)
    result = run_study(RunOptions(study=study, out=tmp_path / "out", segmenter="threshold"), _config(tmp_path))
    assert any("not a CT rescale" in w for w in result.report["warnings"])
    assert result.report["geometry"]["n_slices"] == 31


def test_captions_and_descriptions_carry_the_flags() -> None:
    from ichpipe.dicom_io.geometry import compute_geometry
    from ichpipe.pipeline.measure.volume import measure_hematoma

    geometry = compute_geometry(orientation=(1, 0, 0, 0, 1, 0), positions=np.array([[0, 0, 5.0 * k] for k in range(4)]),
                                pixel_spacing=(1.0, 1.0), rows=8, columns=8)
    mask = np.zeros((4, 8, 8), dtype=bool)
    mask[1:3, 2:5, 2:5] = True
    measurement = measure_hematoma(mask, geometry)
    flags = [QualityFlag("skull_open", "The bone ring is open."), QualityFlag("hu_clipped", "Clipped.")]
    when = datetime(2026, 3, 2, 8, 5)
    network = {"name": "sa_cbam_unet_slim", "baseline": False, "checkpoint_sha256": "ab" * 32}
    lines = key_image_caption(measurement, OutputRun(segmenter=network, when=when, flags=flags))
    assert any("QUALITY FLAGS: skull_open, hu_clipped" in line for line in lines)
    assert lines[-1].startswith("Research use only")
    assert "Quality flags: none" in key_image_caption(measurement, OutputRun(segmenter=network, when=when))
    baseline = OutputRun(segmenter={"name": "threshold", "baseline": True}, when=when, flags=flags)
    assert "Baseline: misses blood < 50 HU" in key_image_caption(measurement, baseline)
    series = baseline.identity("seg")["series_description"]
    assert series == "ichpipe SEG threshold baseline FLAGGED 2026-03-02 08:05" and len(series) <= 64
    long_name = OutputRun(segmenter=network, when=when, flags=flags).identity("sc")["series_description"]
    assert "FLAGGED" in long_name and len(long_name) <= 64
    content = seg_content_description(flags * 5)
    assert len(content) <= 64 and content.startswith("FLAGGED: skull_open, hu_clipped")
    assert content.endswith("not for diagnosis")


def test_missing_checkpoint_message_says_the_threshold_method_is_a_baseline(tmp_path: Path) -> None:
    from ichpipe.errors import CheckpointError
    from ichpipe.pipeline.jobs.run_study import build_segmenter

    options = RunOptions(study=tmp_path, checkpoint=tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"classical HU-threshold baseline, not a trained model: it misses blood"
                                              r" below 50 HU"):
        build_segmenter(options, _config(tmp_path))


def test_a_nifti_ct_gets_the_same_quality_block(tmp_path: Path) -> None:
    """run on a NIfTI CT (a skull- and air-stripped phantom converted by hand): flags as for DICOM."""
    import nibabel as nib

    from ichpipe.dicom_io import assemble_series, scan_study
    from ichpipe.pipeline.measure.nifti_masks import LPS_FROM_RAS

    study = _study(tmp_path, "stripped", export="skull_air_stripped")
    with scan_study(study) as scan:
        volume = assemble_series(scan.require_selected().series)
    affine = np.linalg.inv(LPS_FROM_RAS) @ volume.geometry.affine_lps()
    nib.save(nib.Nifti1Image(np.ascontiguousarray(volume.hu.transpose(2, 1, 0)), affine), tmp_path / "ct.nii.gz")
    result = run_study(RunOptions(study=tmp_path / "ct.nii.gz", out=tmp_path / "out", segmenter="threshold",
                                  strict=True), _config(tmp_path))
    assert result.report["input"]["format"] == "nifti"
    assert {"skull_absent", "hu_no_air"} <= set(result.report["quality"]["codes"])
    assert result.exit_code == 1
    assert result.report["hematoma"]["volume_ml"] == pytest.approx(30.0, rel=0.1)
