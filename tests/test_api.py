"""The Python API at ``ichpipe``: what it returns, what it writes (nothing unless asked), what it imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ichpipe
from ichpipe.errors import ConfigError, DicomInputError
from ichpipe.pipeline.measure.volume import measure_hematoma
from ichpipe.pipeline.serial.store import list_measurements, open_store
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, PhantomTruth, write_phantom_study


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> PhantomTruth:
    root = tmp_path_factory.mktemp("api")
    spec = PhantomSpec(seed=21, rows=96, columns=96, n_slices=14, volume_ml=14.0, distractors=("localizer",))
    return write_phantom_study(root / "study", spec)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """A config whose results store lies in ``tmp_path`` (so the test can see whether it was written)."""
    path = tmp_path / "cfg.yaml"
    path.write_text(f"store:\n  path: {tmp_path / 'store.sqlite'}\noutputs:\n  directory: {tmp_path / 'default-out'}\n")
    return path


def test_import_is_light_and_the_names_load_on_first_use() -> None:
    code = (
        "import sys, ichpipe; heavy = [m for m in ('numpy', 'torch', 'pydicom') if m in sys.modules];"
        " assert heavy == [], heavy; f = ichpipe.run_study; assert 'torch' not in sys.modules;"
        " assert 'run_study' in dir(ichpipe); print(f.__module__)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ichpipe.api"
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        _ = ichpipe.nonsense  # type: ignore[attr-defined]


def test_a_threshold_run_never_imports_torch(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; import ichpipe;"
        " from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study;"
        f" study = Path({str(tmp_path / 'study')!r});"
        " write_phantom_study(study, PhantomSpec(seed=5, rows=64, columns=64, n_slices=12));"
        " result = ichpipe.run_study(study, segmenter='threshold');"
        " print(result.report['hematoma']['n_voxels'] > 0, 'torch' in sys.modules, 'monai' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False", "False"]


def test_run_study_returns_report_and_arrays_and_writes_nothing(
    study: PhantomTruth, config_file: Path, tmp_path: Path
) -> None:
    before = sorted(p.relative_to(study.out_dir) for p in study.out_dir.rglob("*"))
    result = ichpipe.run_study(study.out_dir, config=config_file, segmenter="threshold")
    # nothing written: no output folder, no store, the study untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.yaml"]
    assert sorted(p.relative_to(study.out_dir) for p in study.out_dir.rglob("*")) == before
    assert result.output_dir is None and result.report["outputs"] == {}
    assert result.report["series_instance_uid"] == study.series_instance_uid
    assert "outputs" not in result.report["timings_s"] and "store" not in result.report["timings_s"]
    # the arrays are the series', and the report's volume is the mask's on that geometry
    assert result.mask.dtype == np.bool_ and result.mask.shape == result.hu.shape == (14, 96, 96)
    assert result.geometry is result.series.geometry and result.hu is result.series.hu
    assert result.volume_ml == pytest.approx(measure_hematoma(result.mask, result.geometry).volume_ml, abs=1e-4)
    assert result.volume_ml == pytest.approx(study.volume_ml, rel=0.05)
    assert result.abc2_ml == result.report["hematoma"]["abc2_ml"]
    assert int(result.mask.sum()) == result.report["hematoma"]["n_voxels"]


def test_run_study_records_without_writing_files_only_when_asked(
    study: PhantomTruth, config_file: Path, tmp_path: Path
) -> None:
    config = ichpipe.load_config(config_file)
    result = ichpipe.run_study(study.out_dir, config=config, segmenter="threshold", record=True)
    assert result.output_dir is None and not (tmp_path / "default-out").exists()
    with open_store(config.store) as store:
        rows = list_measurements(store)
    assert [r.series_instance_uid for r in rows] == [study.series_instance_uid]
    assert rows[0].volume_ml == pytest.approx(result.volume_ml, abs=1e-3)


def test_run_study_writes_where_asked(study: PhantomTruth, config_file: Path, tmp_path: Path) -> None:
    segmenter = ichpipe.load_segmenter("threshold")
    result = ichpipe.run_study(study.out_dir, config=config_file, segmenter=segmenter, out=tmp_path / "out")
    assert result.output_dir == tmp_path / "out" / study.study_instance_uid / study.series_instance_uid
    assert {p.name for p in result.output_dir.iterdir()} == {"report.json", "seg.dcm", "key_image.png",
                                                              "key_image_sc.dcm", "sr.dcm"}
    assert set(result.report["outputs"]) == {"report", "seg", "key_image_png", "secondary_capture", "sr"}
    assert (tmp_path / "store.sqlite").is_file()  # a written run is recorded, as outputs.record_in_store says
    # write=True without out: the config's outputs.directory
    again = ichpipe.run_study(study.out_dir, config=config_file, segmenter=segmenter, write=True, record=False)
    assert again.output_dir is not None and again.output_dir.is_relative_to(tmp_path / "default-out")


def test_run_study_refuses_options_that_do_not_apply(study: PhantomTruth) -> None:
    segmenter = ichpipe.load_segmenter("threshold")
    with pytest.raises(ValueError, match="'checkpoint' and 'device'"):
        ichpipe.run_study(study.out_dir, segmenter=segmenter, device="cpu")
    with pytest.raises(ValueError, match="Argument 'config' must be"):
        ichpipe.run_study(study.out_dir, config=42)  # type: ignore[arg-type]


def test_run_study_fails_with_a_project_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DicomInputError):
        ichpipe.run_study(tmp_path / "empty", segmenter="threshold")


def test_load_config_layers_file_and_sections(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("geometry:\n  gap_factor: 2.5\noutputs:\n  seg: false\n")
    config = ichpipe.load_config(path, outputs={"nifti_mask": True})
    assert config.geometry.gap_factor == 2.5 and not config.outputs.seg and config.outputs.nifti_mask
    assert ichpipe.load_config(str(path)).geometry.gap_factor == 2.5
    with pytest.raises(ConfigError, match=r"Unknown config key 'outputs\.sge'"):
        ichpipe.load_config(outputs={"sge": False})


def test_inspect_and_measure_mask(study: PhantomTruth) -> None:
    series = ichpipe.inspect_study(study.out_dir)
    assert [s["series_instance_uid"] for s in series if s["selected"]] == [study.series_instance_uid]
    assert len(series) == 2 and all(s["reasons"] for s in series)
    report = ichpipe.measure_mask(study.mask_path, study=study.out_dir)
    assert report["hematoma"]["n_voxels"] == study.n_voxels
    assert report["hematoma"]["volume_ml"] == pytest.approx(study.volume_ml, abs=1e-3)  # an even, complete stack


def test_run_study_on_a_nifti_ct_writes_nothing(study: PhantomTruth, tmp_path: Path, config_file: Path) -> None:
    import nibabel as nib

    from ichpipe.pipeline.measure.nifti_masks import LPS_FROM_RAS

    dicom = ichpipe.run_study(study.out_dir, config=config_file, segmenter="threshold")
    affine = LPS_FROM_RAS @ dicom.geometry.affine_lps()
    nib.save(nib.Nifti1Image(dicom.hu.transpose(2, 1, 0).astype(np.float32), affine), tmp_path / "ct.nii.gz")
    result = ichpipe.run_study(tmp_path / "ct.nii.gz", config=config_file, segmenter="threshold", record=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.yaml", "ct.nii.gz"]  # no store: no PatientID
    assert result.output_dir is None and result.report["input"]["format"] == "nifti"
    assert result.report["patient_id"] is None and result.series.slices == ()
    np.testing.assert_array_equal(result.mask, dicom.mask)
    assert result.volume_ml == pytest.approx(dicom.volume_ml, rel=1e-6)
