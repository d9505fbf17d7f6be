"""Dataset manifest (patient-level split) and the three readers: DICOM + SEG, NIfTI pairs, PNG slices."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from ichpipe.dicom_io.seg import write_seg
from ichpipe.errors import DicomInputError, UsageError
from ichpipe.pipeline.datasets import load_case, pair_nifti_folders
from ichpipe.pipeline.datasets.dicom_seg import read_dicom_case, read_dicom_series
from ichpipe.pipeline.datasets.manifest import (
    ManifestEntry,
    assign_splits,
    check_patient_split,
    read_manifest,
    write_manifest,
)
from ichpipe.pipeline.datasets.nifti_pairs import read_nifti_case
from ichpipe.pipeline.datasets.png_slices import natural_key, read_png_case
from ichpipe.pipeline.measure.nifti_masks import write_nifti_mask
from ichpipe.pipeline.measure.volume import measure_hematoma

# --------------------------------------------------------------------------- manifest


def _entry(case: str, patient: str, split: str, tmp: Path) -> ManifestEntry:
    return ManifestEntry(
        case_id=case, patient_id=patient, split=split, format="nifti",  # type: ignore[arg-type]
        image=tmp / f"{case}.nii.gz", mask=tmp / f"{case}_mask.nii.gz", source="test",
    )


def test_manifest_round_trip_with_relative_paths(tmp_path: Path) -> None:
    entries = [_entry("a", "p1", "train", tmp_path), _entry("b", "p2", "test", tmp_path)]
    path = write_manifest(tmp_path / "manifest.csv", entries)
    text = path.read_text(encoding="utf-8")
    assert "a.nii.gz" in text and str(tmp_path) not in text  # relative inside the folder
    back = read_manifest(path)
    assert [e.case_id for e in back.entries] == ["a", "b"]
    assert back.entries[0].image == (tmp_path / "a.nii.gz").resolve()
    assert back.split("test")[0].patient_id == "p2"
    assert back.patients() == ("p1", "p2")


def test_manifest_refuses_a_patient_in_two_splits(tmp_path: Path) -> None:
    entries = [_entry("a", "p1", "train", tmp_path), _entry("b", "p1", "test", tmp_path)]
    with pytest.raises(UsageError, match="patient 'p1' in both 'train' and 'test'"):
        check_patient_split(entries)
    (tmp_path / "m.csv").write_text(
        "case_id,patient_id,split,format,image,mask\na,p1,train,nifti,a.nii,am.nii\nb,p1,val,nifti,b.nii,bm.nii\n",
        encoding="utf-8",
    )
    with pytest.raises(UsageError, match="p1"):
        read_manifest(tmp_path / "m.csv")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("case_id,patient_id,split,image\na,p,train,x\n", "lacks the column"),
        ("case_id,patient_id,split,format,image\na,p,holdout,nifti,x\n", "line 2.*split"),
        ("case_id,patient_id,split,format,image\na,p,train,jpeg,x\n", "line 2.*format"),
        ("case_id,patient_id,split,format,image,pixel_spacing_mm\na,p,train,png,x,wide\n", "pixel_spacing_mm"),
        ("case_id,patient_id,split,format,image\na,p,train,nifti,x\na,q,train,nifti,y\n", "twice"),
    ],
)
def test_manifest_errors_name_the_problem(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "m.csv").write_text(text, encoding="utf-8")
    with pytest.raises(UsageError, match=match):
        read_manifest(tmp_path / "m.csv")


def test_assign_splits_is_per_patient_and_seeded() -> None:
    patients = [f"p{i // 3}" for i in range(60)]  # 20 patients, 3 cases each
    splits = assign_splits(patients, val_fraction=0.2, test_fraction=0.25, seed=7)
    assert set(splits) == set(patients)  # one split per patient, so no patient in two splits
    counts = {s: list(splits.values()).count(s) for s in ("train", "val", "test")}
    assert counts == {"train": 11, "val": 4, "test": 5}
    assert assign_splits(patients, val_fraction=0.2, test_fraction=0.25, seed=7) == splits
    assert assign_splits(patients, val_fraction=0.2, test_fraction=0.25, seed=8) != splits
    assert set(assign_splits(["a", "b"], val_fraction=0.0, test_fraction=1.0).values()) == {"test"}
    with pytest.raises(ValueError, match="val_fraction"):
        assign_splits(patients, val_fraction=1.5)
    with pytest.raises(ValueError, match="add up"):
        assign_splits(patients, val_fraction=0.6, test_fraction=0.6)


# --------------------------------------------------------------------------- NIfTI pairs


def _affine_ras(spacing: tuple[float, float, float]) -> np.ndarray:
    # LPS i -> +x, j -> +y, k -> +z (as DICOM -> NIfTI converters write it), in RAS
    return np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])


def _write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    nib.save(img, path)


def test_nifti_pair_reads_hu_mask_and_geometry(tmp_path: Path) -> None:
    hu = np.zeros((6, 5, 4), dtype=np.int16)  # (i, j, k) = (columns, rows, slices)
    hu[:, :, 2] = 70
    hu[1, 3, 0] = -1000
    mask = np.zeros_like(hu, dtype=np.uint8)
    mask[2:4, 1:3, 2] = 1
    affine = _affine_ras((0.5, 0.5, 5.0))
    _write_nifti(tmp_path / "c.nii.gz", hu, affine)
    _write_nifti(tmp_path / "c_mask.nii.gz", mask, affine)
    case = read_nifti_case(tmp_path / "c.nii.gz", tmp_path / "c_mask.nii.gz", case_id="c", patient_id="p")
    assert case.image.shape == (4, 5, 6) and case.mask.shape == (4, 5, 6)
    assert case.image[0, 3, 1] == -1000 and np.all(case.image[2] == 70)
    assert case.mask.sum() == 4 and case.mask[2, 1:3, 2:4].all()
    assert case.geometry is not None and case.geometry.slice_spacing_mm == pytest.approx(5.0)
    assert measure_hematoma(case.mask, case.geometry).volume_ml == pytest.approx(4 * 0.25 * 5.0 / 1000.0)


def test_nifti_pair_with_reversed_k_keeps_image_and_mask_together(tmp_path: Path) -> None:
    hu = np.zeros((4, 4, 3), dtype=np.int16)
    hu[..., 0] = 10
    hu[..., 2] = 30
    mask = (hu == 30).astype(np.uint8)
    affine = _affine_ras((1.0, 1.0, 5.0))
    affine[:3, 2] = [0.0, 0.0, -5.0]  # k runs towards the feet
    _write_nifti(tmp_path / "i.nii", hu, affine)
    _write_nifti(tmp_path / "m.nii", mask, affine)
    case = read_nifti_case(tmp_path / "i.nii", tmp_path / "m.nii", case_id="r", patient_id="p")
    assert np.all(case.image[0] == 30) and case.mask[0].all() and not case.mask[1:].any()


def test_nifti_pair_refuses_other_grids(tmp_path: Path) -> None:
    _write_nifti(tmp_path / "i.nii", np.zeros((4, 4, 3), dtype=np.int16), _affine_ras((1.0, 1.0, 5.0)))
    _write_nifti(tmp_path / "m.nii", np.zeros((4, 4, 3), dtype=np.uint8), _affine_ras((1.0, 1.0, 2.5)))
    with pytest.raises(DicomInputError, match="different affines"):
        read_nifti_case(tmp_path / "i.nii", tmp_path / "m.nii", case_id="x", patient_id="p")
    with pytest.raises(ValueError, match="mask"):
        read_nifti_case(tmp_path / "i.nii", None, case_id="x", patient_id="p")


def test_pair_nifti_folders_matches_names(tmp_path: Path) -> None:
    (tmp_path / "ct_scans").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ("049", "050", "051"):
        _write_nifti(tmp_path / "ct_scans" / f"{name}.nii", np.zeros((2, 2, 2), np.int16), np.eye(4))
    for name in ("049", "051"):
        _write_nifti(tmp_path / "masks" / f"{name}.nii", np.zeros((2, 2, 2), np.uint8), np.eye(4))
    rows = pair_nifti_folders(tmp_path / "ct_scans", tmp_path / "masks", source="physionet")
    assert [r.case_id for r in rows] == ["049", "051"]
    assert rows[0].mask == tmp_path / "masks" / "049.nii" and rows[0].format == "nifti"


# --------------------------------------------------------------------------- PNG slices (the seed's format)


def test_png_case_orders_slices_and_reads_labels(tmp_path: Path) -> None:
    images, labels = tmp_path / "img", tmp_path / "lab"
    images.mkdir()
    labels.mkdir()
    for value, name in ((10, "s1.png"), (20, "s2.png"), (30, "s10.png")):
        Image.fromarray(np.full((8, 8), value, dtype=np.uint8)).save(images / name)
    label = np.zeros((8, 8, 3), dtype=np.uint8)
    label[2:4, 2:5] = (255, 0, 0)  # an RGB label, as Labelme exports
    Image.fromarray(label).save(labels / "s10.png")
    palette = Image.fromarray(np.zeros((8, 8), dtype=np.uint8), mode="L").convert("P")
    palette.save(labels / "s1.png")
    case = read_png_case(images, labels, case_id="c", patient_id="p", pixel_spacing_mm=0.5, slice_thickness_mm=5.0)
    assert case.intensity == "grey"
    assert [float(case.image[k, 0, 0]) for k in range(3)] == [10.0, 20.0, 30.0]  # s1, s2, s10
    assert case.mask.sum() == 6 and case.mask[2, 2:4, 2:5].all()  # s2 has no label file: empty
    assert case.geometry is not None
    assert measure_hematoma(case.mask, case.geometry).volume_ml == pytest.approx(6 * 0.25 * 5.0 / 1000.0)
    assert natural_key("s2.png") < natural_key("s10.png")


def test_png_case_without_matching_labels_is_refused(tmp_path: Path) -> None:
    images, labels = tmp_path / "img", tmp_path / "lab"
    images.mkdir()
    labels.mkdir()
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(images / "a.png")
    Image.fromarray(np.ones((4, 4), dtype=np.uint8)).save(labels / "other.png")
    with pytest.raises(DicomInputError, match="same file names"):
        read_png_case(images, labels, case_id="c", patient_id="p")
    no_geometry = read_png_case(images, None, case_id="c", patient_id="p")
    assert no_geometry.geometry is None and not no_geometry.labelled


# --------------------------------------------------------------------------- DICOM + SEG / NIfTI mask


def test_dicom_case_with_seg_and_with_nifti_mask(make_series: Callable[..., Path], tmp_path: Path) -> None:
    def slice_hu(i: int) -> np.ndarray:
        img = np.full((16, 16), 30.0)
        if i in (4, 5):
            img[5:9, 6:10] = 70.0
        return img

    study = make_series(hu=slice_hu, name="study")
    volume = read_dicom_series(study)
    truth = volume.hu >= 60.0
    seg = write_seg(truth, volume, tmp_path / "truth_seg.dcm", algorithm_name="test", algorithm_version="1")
    case = read_dicom_case(study, seg, case_id="d", patient_id="p")
    assert case.ct is not None and case.intensity == "hu"
    np.testing.assert_array_equal(case.mask, truth)
    assert case.geometry is not None
    np.testing.assert_allclose(case.geometry.offsets_mm, volume.geometry.offsets_mm)
    expected_ml = 2 * 16 * 0.25 * 5.0 / 1000.0
    assert measure_hematoma(case.mask, case.geometry).volume_ml == pytest.approx(expected_ml)
    nifti = write_nifti_mask(tmp_path / "mask.nii.gz", truth, volume.geometry)
    entry = ManifestEntry(case_id="d2", patient_id="p", split="test", format="dicom", image=study, mask=nifti)
    np.testing.assert_array_equal(load_case(entry).mask, truth)
    unlabelled = read_dicom_case(study, None, case_id="d3", patient_id="p")
    assert not unlabelled.labelled and not unlabelled.mask.any()
