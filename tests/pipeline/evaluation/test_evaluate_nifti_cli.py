"""``ichpipe evaluate`` on NIfTI pairs in the PhysioNet CT-ICH layout (``ct_scans/NNN.nii`` + ``masks/NNN.nii``).

Two phantom studies are written as such pairs: the CT by nibabel from the
assembled DICOM volume, the mask is the phantom's own ``truth_mask.nii.gz``
(made from the phantom's model, never through ichpipe's readers). The
manifest is written by hand with relative paths, as a user would.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from ichpipe.dicom_io.assemble import assemble_series
from ichpipe.dicom_io.study import scan_study
from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.measure.nifti_masks import LPS_FROM_RAS
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, load_truth, write_phantom_study


def _physionet_pair(tmp_path: Path, name: str, spec: PhantomSpec) -> float:
    """Write ``ct_scans/<name>.nii`` and ``masks/<name>.nii`` of a phantom; return its true volume in mL."""
    study = tmp_path / "studies" / name
    write_phantom_study(study, spec)
    with scan_study(study) as scan:
        volume = assemble_series(scan.require_selected().series)
    (tmp_path / "data" / "ct_scans").mkdir(parents=True, exist_ok=True)
    (tmp_path / "data" / "masks").mkdir(parents=True, exist_ok=True)
    affine = LPS_FROM_RAS @ volume.geometry.affine_lps()
    ct = nib.Nifti1Image(np.rint(volume.hu).astype(np.int16).transpose(2, 1, 0), affine)
    ct.set_sform(affine, code=1)
    nib.save(ct, tmp_path / "data" / "ct_scans" / f"{name}.nii")
    mask = nib.load(study / "truth_mask.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(mask.dataobj).astype(np.uint8), mask.affine, mask.header),
             tmp_path / "data" / "masks" / f"{name}.nii")
    shutil.rmtree(study / "DICOM")
    return float(load_truth(study).volume_ml)


def test_evaluate_scores_the_threshold_method_on_physionet_style_nifti_pairs(tmp_path: Path) -> None:
    truths = {
        "049": _physionet_pair(tmp_path, "049", PhantomSpec(seed=61, rows=96, columns=96, n_slices=14,
                                                             volume_ml=12.0, noise_hu=3.0)),
        "050": _physionet_pair(tmp_path, "050", PhantomSpec(seed=62, rows=96, columns=96, n_slices=14,
                                                             volume_ml=25.0, noise_hu=3.0)),
    }
    manifest = tmp_path / "data" / "manifest.csv"
    manifest.write_text("case_id,patient_id,split,format,image,mask,source\n" + "".join(
        f"{n},P{n},test,nifti,ct_scans/{n}.nii,masks/{n}.nii,physionet-layout phantom\n" for n in truths))
    result = CliRunner().invoke(cli, ["evaluate", "--data", str(manifest), "--segmenter", "threshold",
                                      "--out", str(tmp_path / "eval"), "--json"])
    assert result.exit_code == 0, result.output
    summary = {row["model"]: row for row in json.loads(result.stdout)["summary"] if row["group"] == "all"}
    assert summary["threshold"]["n_cases"] == 2
    cases = list(csv.DictReader(io.StringIO((tmp_path / "eval" / "cases.csv").read_text())))
    by_case = {r["case_id"]: r for r in cases if r["model"] == "threshold"}
    for name, truth_ml in truths.items():
        row = by_case[name]
        # the reference volume comes from the NIfTI mask and header: the phantom's own truth
        assert float(row["true_ml"]) == pytest.approx(truth_ml, rel=1e-4)
        # the classical method finds the phantom's hematoma (50-90 HU blood in 40 HU brain, 3 HU noise);
        # measured 2026-12-04: Dice 1.000 on both (0.987 and 0.994 when the test was written)
        assert float(row["dice"]) > 0.95
        assert float(row["predicted_ml"]) == pytest.approx(truth_ml, rel=0.05)
    table = (tmp_path / "eval" / "table.md").read_text()
    assert "threshold" in table and "ABC/2" in table


def test_evaluate_reports_detection_per_kind_of_blood_from_masks_beside_the_mask(tmp_path: Path) -> None:
    """``masks/NNN_<kind>.nii`` beside ``masks/NNN.nii``: the phantom's hematoma as one kind, and a block of
    normal brain labelled as another (no method finds blood there), so one kind is detected and one is not."""
    _physionet_pair(tmp_path, "051", PhantomSpec(seed=63, rows=96, columns=96, n_slices=14, volume_ml=15.0,
                                                 noise_hu=3.0))
    masks = tmp_path / "data" / "masks"
    whole = nib.load(masks / "051.nii")
    data = np.asarray(whole.dataobj) > 0
    nib.save(nib.Nifti1Image(data.astype(np.uint8), whole.affine, whole.header), masks / "051_intraparenchymal.nii")
    brain = np.zeros_like(data)
    xs, _, zs = np.nonzero(data)
    z = int(np.median(zs))
    x0 = 48 - 5 if xs.mean() > 48 else 48 + 5  # a 10 x 10 x 3 block of brain near the centre, off the hematoma
    brain[x0 - 5:x0 + 5, 43:53, z - 1:z + 2] = True
    brain &= ~data
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), whole.affine, whole.header), masks / "051_subdural.nii")
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), whole.affine, whole.header), masks / "051_old_v2.nii")
    manifest = tmp_path / "data" / "manifest.csv"
    manifest.write_text("case_id,patient_id,split,format,image,mask,source\n"
                        "051,P051,test,nifti,ct_scans/051.nii,masks/051.nii,phantom with kinds\n")
    result = CliRunner().invoke(cli, ["evaluate", "--data", str(manifest), "--segmenter", "threshold",
                                      "--out", str(tmp_path / "eval"), "--json"])
    assert result.exit_code == 0, result.output
    by_kind = {row["kind"]: row for row in json.loads(result.stdout)["by_kind"]}
    assert set(by_kind) == {"intraparenchymal", "subdural"}  # "old_v2" is not a kind name
    assert (by_kind["intraparenchymal"]["detected"], by_kind["intraparenchymal"]["cases"]) == (1, 1)
    assert (by_kind["subdural"]["detected"], by_kind["subdural"]["cases"]) == (0, 1)
    assert by_kind["subdural"]["mean_recall"] < 0.05 < 0.9 < by_kind["intraparenchymal"]["mean_recall"]
    (row,) = csv.DictReader(io.StringIO((tmp_path / "eval" / "cases.csv").read_text()))
    assert float(row["recall:intraparenchymal"]) == pytest.approx(by_kind["intraparenchymal"]["mean_recall"])
    table = (tmp_path / "eval" / "table.md").read_text()
    assert "## Detection by kind" in table and "| threshold | 1/1 (" in table and "| 0/1 (" in table


def test_evaluate_flags_counts_wrong_volumes_flagged_and_silent(tmp_path: Path) -> None:
    # measured: the threshold method reads the 3 HU-noise phantom exactly and the 12 HU-noise one at 37.5 of 12 mL
    for name, noise in (("052", 3.0), ("053", 12.0)):
        _physionet_pair(tmp_path, name, PhantomSpec(seed=61, rows=96, columns=96, n_slices=14, volume_ml=12.0,
                                                     noise_hu=noise))
    manifest = tmp_path / "data" / "manifest.csv"
    manifest.write_text("case_id,patient_id,split,format,image,mask,source\n"
                        "052,P052,test,nifti,ct_scans/052.nii,masks/052.nii,phantom\n"
                        "053,P053,test,nifti,ct_scans/053.nii,masks/053.nii,phantom\n")
    result = CliRunner().invoke(cli, ["evaluate", "--data", str(manifest), "--segmenter", "threshold", "--flags",
                                      "--json", "--out", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    flags = json.loads(result.stdout)["flags"]
    assert flags["wrong_volume"] == {"error_ml": 1.0, "error_share": 0.25}
    (score,) = flags["scores"]
    assert (score["model"], score["n_cases"], score["n_wrong"]) == ("threshold", 2, 1)
    rows = {r["case_id"]: r for r in csv.DictReader(io.StringIO((tmp_path / "eval" / "cases.csv").read_text()))}
    assert float(rows["053"]["predicted_ml"]) > 1.25 * float(rows["053"]["true_ml"])
    assert all(r["flags"] != "" for r in rows.values())  # the checks ran: codes or "none"
    silent = rows["053"]["flags"] == "none"
    assert (score["n_silent"], score["n_wrong_flagged"]) == ((1, 0) if silent else (0, 1))
    assert [s[0] for s in score["silent"]] == (["053"] if silent else [])
    table = (tmp_path / "eval" / "table.md").read_text()
    assert "## Quality flags against wrong volumes" in table
    assert ("- threshold: 053 " in table) == silent


def test_evaluate_flags_needs_a_manifest_and_a_valid_tolerance(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["evaluate", "--boxes", str(tmp_path), "--flags"])
    assert result.exit_code == 2 and "--flags goes with --data" in result.output
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("case_id,patient_id,split,format,image,mask\n")
    result = CliRunner().invoke(cli, ["evaluate", "--data", str(manifest), "--flags", "--wrong-volume", "-1,0.2"])
    assert result.exit_code == 2 and "--wrong-volume must be ML,SHARE" in result.output
