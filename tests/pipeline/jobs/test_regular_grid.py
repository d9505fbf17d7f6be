"""``outputs.tilt_eq``: a tilted or uneven series on an untilted regular grid, checked by dcmqi and dcm2niix.

What is checked:

* the resampled mask's volume is within 5 % of the native measurement (the sampling of 7 mm slices by a 4 mm grid), and
  the report's volume is the native one (resampling is for viewing only);
* the NIfTI files have an orthogonal affine (no shear) with the slice axis
  along the normal at the requested spacing;
* the derived CT series reads back as untilted (0 deg) and evenly spaced;
* **dcmqi** (``segimage2itkimage``, 3D Slicer's SEG reader) refuses the SEG of
  the tilted series ("outside image geometry", the known upstream limitation
  the README documents) and reads ``seg_tilt_eq.dcm``: its output equals
  ``mask_tilt_eq.nii.gz`` voxel for voxel, with the same affine;
* **dcm2niix** converts the derived CT series to the same grid (affine and
  voxels) as ``ct_tilt_eq.nii.gz``.

dcmqi comes from ``pip install dcmqi`` (``.ci/run`` puts it in
``.dcmqi-venv``); the dcmqi tests skip, saying so, when it is not installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from ichpipe.dicom_io.assemble import assemble_series
from ichpipe.dicom_io.geometry import compute_geometry
from ichpipe.dicom_io.study import scan_study
from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.measure.regular_grid import resample_to_regular_grid
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study

REPO = Path(__file__).resolve().parents[3]


def _tool(name: str) -> str | None:
    local = REPO / ".dcmqi-venv" / "bin" / name
    return str(local) if local.is_file() else shutil.which(name)


@pytest.fixture(scope="module")
def tilted_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("tilt_eq")
    spec = PhantomSpec(seed=7, rows=128, columns=128, n_slices=18, volume_ml=25.0, gantry_tilt_deg=15.0,
                       uneven_spacing_mm=(4.0, 7.0), patient_id="TILTEQ")
    write_phantom_study(root / "study", spec)
    cfg = root / "cfg.yaml"
    cfg.write_text(f"store:\n  path: {root / 'store.sqlite'}\noutputs:\n  tilt_eq: true\n  tilt_eq_dicom: true\n")
    result = CliRunner().invoke(cli, ["run", "--study", str(root / "study"), "--out", str(root / "out"),
                                      "--segmenter", "threshold", "--json", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    return {"root": root, "report": json.loads(result.stdout)}


def test_resampled_mask_volume_close_to_native_and_report_stays_native(tilted_run: dict) -> None:
    report = tilted_run["report"]
    outputs = report["outputs"]
    mask = nib.load(outputs["mask_tilt_eq"])
    zooms = mask.header.get_zooms()
    resampled_ml = float(np.asarray(mask.dataobj).astype(bool).sum()) * float(np.prod(zooms)) / 1000.0
    native = report["hematoma"]["volume_ml"]
    assert native > 5
    # The 4 mm grid samples the 7 mm slices, one or two grid steps per slice's slab: on these phantoms
    # (tilt 15 deg, 4/7 mm blocks, seeds 7-12) the resampled volume lies -3.4 % to +1.4 % from the native one.
    assert abs(resampled_ml - native) / native < 0.05
    affine = mask.affine[:3, :3] / np.linalg.norm(mask.affine[:3, :3], axis=0)
    assert np.allclose(affine.T @ affine, np.eye(3), atol=1e-6)  # orthogonal: no shear
    assert zooms[2] == pytest.approx(4.0)  # the smallest spacing along the normal
    assert np.allclose(mask.get_sform(), mask.get_qform(), atol=1e-4)


def test_derived_series_is_untilted_and_even(tilted_run: dict) -> None:
    with scan_study(Path(tilted_run["report"]["outputs"]["ct_tilt_eq_dicom"])) as scan:
        assert scan.selected is None  # DERIVED: ichpipe never selects its own resampled series for a run
        volume = assemble_series(scan.series[0].series)
    assert abs(volume.geometry.gantry_tilt_deg) < 0.01
    assert volume.geometry.uniform_spacing
    assert volume.geometry.slice_spacing_mm == pytest.approx(4.0, abs=1e-4)


def test_dcmqi_refuses_tilted_seg_and_reads_regular_grid_seg(tilted_run: dict, tmp_path: Path) -> None:
    exe = _tool("segimage2itkimage")
    if exe is None:
        pytest.skip("dcmqi is not installed (pip install dcmqi; .ci/run puts it in .dcmqi-venv)")
    outputs = tilted_run["report"]["outputs"]
    (tmp_path / "native").mkdir()
    native = subprocess.run([exe, "--inputDICOM", outputs["seg"], "--outputDirectory", str(tmp_path / "native"),
                             "--outputType", "nifti"], capture_output=True, text=True, timeout=300, check=False)
    assert "outside image geometry" in native.stdout + native.stderr
    assert not list((tmp_path / "native").glob("*.nii.gz"))
    (tmp_path / "eq").mkdir()
    subprocess.run([exe, "--inputDICOM", outputs["seg_tilt_eq"], "--outputDirectory", str(tmp_path / "eq"),
                    "--outputType", "nifti"], capture_output=True, text=True, timeout=300, check=True)
    read = nib.load(tmp_path / "eq" / "1.nii.gz")
    ours = nib.load(outputs["mask_tilt_eq"])
    assert read.shape == ours.shape
    assert np.allclose(read.affine, ours.affine, atol=1e-3)
    assert np.array_equal(np.asarray(read.dataobj) > 0, np.asarray(ours.dataobj) > 0)


def test_dcm2niix_converts_derived_series_to_the_same_grid(tilted_run: dict, tmp_path: Path) -> None:
    exe = shutil.which("dcm2niix")
    if exe is None:
        pytest.skip("dcm2niix (Debian package dcm2niix) is not on PATH")
    outputs = tilted_run["report"]["outputs"]
    subprocess.run([exe, "-z", "y", "-b", "n", "-f", "ct", "-o", str(tmp_path), outputs["ct_tilt_eq_dicom"]],
                   capture_output=True, text=True, timeout=300, check=True)
    theirs = nib.load(tmp_path / "ct.nii.gz")
    ours = nib.load(outputs["ct_tilt_eq"])
    assert theirs.shape == ours.shape
    # dcm2niix may flip the row axis (its usual radiological storage): compare in world space
    ours_data = np.asarray(ours.dataobj)
    theirs_data = np.asarray(theirs.dataobj)
    ornt = nib.orientations.ornt_transform(nib.io_orientation(theirs.affine), nib.io_orientation(ours.affine))
    aligned = nib.orientations.apply_orientation(theirs_data, ornt)
    moved = theirs.affine @ nib.orientations.inv_ornt_aff(ornt, theirs.shape)
    assert np.allclose(moved, ours.affine, atol=1e-3)
    assert np.array_equal(aligned, ours_data)


def test_resample_refuses_mismatched_mask() -> None:
    geo = compute_geometry(orientation=(1, 0, 0, 0, 1, 0), positions=np.array([[0, 0, 0], [0, 0, 5.0]]),
                           pixel_spacing=(1.0, 1.0), rows=4, columns=4)
    with pytest.raises(ValueError, match="must have the geometry's shape"):
        resample_to_regular_grid(np.zeros((2, 4, 4)), np.zeros((2, 4, 5), bool), geo)
    with pytest.raises(ValueError, match="spacing_mm"):
        resample_to_regular_grid(np.zeros((2, 4, 4)), np.zeros((2, 4, 4), bool), geo, spacing_mm=0.0)

