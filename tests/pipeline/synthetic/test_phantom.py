"""The synthetic study generator: readable DICOM, exact truth, geometry options, determinism, CLI.

The volume checks here recompute everything from the written files with
pydicom and nibabel alone (not ``dicom_io``, not the phantom's own helpers),
so they are an independent check of ``truth.json``.

This module is long because it covers every option of the generator end to
end (files written, then read back independently), with helpers the options
share; split it by option group when it grows.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    SecondaryCaptureImageStorage,
)
from scipy import ndimage

from ichpipe.errors import UsageError
from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.synthetic.phantom import (
    PhantomSpec,
    PhantomTruth,
    jpegls_available,
    load_truth,
    render_phantom,
    write_phantom_study,
)

SMALL: dict[str, Any] = {"rows": 128, "columns": 128, "n_slices": 12, "volume_ml": 12.0}


def small(**overrides: Any) -> PhantomSpec:
    """A fast spec: 128 x 128 x 12 slices, 12 mL."""
    return PhantomSpec(**{"seed": 11, **SMALL, **overrides})


def make(tmp: Path, name: str, spec: PhantomSpec) -> PhantomTruth:
    return write_phantom_study(tmp / name, spec)


# --------------------------------------------------------------------------- independent re-reading


def read_series(files: list[Path]) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(f) for f in files]


def load_nifti(path: Path) -> nib.Nifti1Image:
    img = nib.load(path)
    assert isinstance(img, nib.Nifti1Image)
    return img


def normal_of(ds: pydicom.Dataset) -> np.ndarray:
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    n = np.cross(iop[:3], iop[3:])
    return n / np.linalg.norm(n)


def sorted_unique(dss: Sequence[pydicom.Dataset]) -> tuple[list[pydicom.Dataset], np.ndarray]:
    """Sort along the normal, keep one slice per position; return slices and offsets."""
    n = normal_of(dss[0])
    by_offset: dict[float, tuple[float, pydicom.Dataset]] = {}
    for ds in dss:
        offset = float(np.array([float(v) for v in ds.ImagePositionPatient]) @ n)
        by_offset.setdefault(round(offset, 4), (offset, ds))
    kept = [by_offset[key] for key in sorted(by_offset)]
    return [ds for _, ds in kept], np.array([offset for offset, _ in kept])


def hu_of(ds: pydicom.Dataset) -> np.ndarray:
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def mask_of(truth: PhantomTruth) -> np.ndarray:
    """The NIfTI labels as (slice, row, column)."""
    data = np.asarray(load_nifti(truth.mask_path).dataobj)
    return np.transpose(data, (2, 1, 0))


def recomputed_volume_ml(truth: PhantomTruth) -> float:
    """The truth volume from the files: each written slice's mask pixels over its header SliceThickness.

    A dropped slice has no file: its planned pixel count and thickness come from ``truth.json``. No
    thickness rule is involved: the plan's slabs (SliceThickness) meet, so each slice stands for its own.
    """
    slices, _ = sorted_unique(read_series(truth.dicom_files("main")))
    mask = mask_of(truth)
    assert mask.shape == (len(slices), slices[0].Rows, slices[0].Columns)
    dy, dx = (float(v) for v in slices[0].PixelSpacing)
    counts = (mask > 0).reshape(mask.shape[0], -1).sum(axis=1)
    thickness = np.array([float(ds.SliceThickness) for ds in slices])
    volume = float(np.sum(counts * dx * dy * thickness))
    geometry, hematoma = truth.geometry, truth.data["hematoma"]
    for k in sorted(set(range(geometry["n_planned_slices"])) - set(geometry["planned_indices"])):
        volume += hematoma["planned_slice_voxels"][k] * dx * dy * geometry["planned_slice_thickness_mm"][k]
    return volume / 1000.0


# --------------------------------------------------------------------------- spec validation


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rows": 8}, "'rows'"),
        ({"n_slices": 2}, "'n_slices'"),
        ({"slice_spacing_mm": 0.0}, "'slice_spacing_mm'"),
        ({"gantry_tilt_deg": 45.0}, "'gantry_tilt_deg'"),
        ({"gantry_tilt_deg": math.nan}, "'gantry_tilt_deg'"),
        ({"uneven_spacing_mm": (2.0, 7.0)}, "'uneven_spacing_mm'"),
        ({"drop_slice": 0}, "'drop_slice'"),
        ({"drop_slice": 31}, "'drop_slice'"),
        ({"drop_slice": 5, "duplicate_slice": 5}, "'duplicate_slice' and 'drop_slice'"),
        ({"transfer_syntax": "jpeg"}, "'transfer_syntax'"),
        ({"rescale": "float"}, "'rescale'"),
        ({"distractors": ("scout",)}, "'distractors'"),
        ({"distractors": ("bone", "bone")}, "'distractors'"),
        ({"distractors": ("thin",), "slice_spacing_mm": 1.0}, "'distractors'"),
        ({"n_hematomas": 5}, "'n_hematomas'"),
        ({"shape": "blob"}, "'shape'"),
        ({"n_hematomas": 0, "touch_skull": True}, "'touch_skull'"),
        ({"volume_ml": 500.0}, "'volume_ml'"),
        ({"hematoma_hu": 300.0}, "'hematoma_hu'"),
        ({"noise_hu": -1.0}, "'noise_hu'"),
        ({"accession_number": "A" * 17}, "'accession_number'"),
        ({"patient_id": "a\\b"}, "'patient_id'"),
        ({"study_instance_uid": "1.2.abc"}, "'study_instance_uid'"),
        ({"acquisition_datetime": datetime.fromisoformat("2026-01-01T10:00:00+01:00")}, "'acquisition_datetime'"),
        ({"rows": 64, "columns": 64, "pixel_spacing_mm": 0.5}, "field of view"),
    ],
)
def test_spec_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PhantomSpec(**kwargs)


def test_spec_is_keyword_only_and_frozen() -> None:
    with pytest.raises(TypeError):
        PhantomSpec(1)  # type: ignore[call-arg]
    spec = PhantomSpec()
    with pytest.raises(AttributeError):
        spec.seed = 2  # type: ignore[misc]
    assert spec.resolved_pixel_spacing_mm == pytest.approx(230.0 / 512)
    assert PhantomSpec(uneven_spacing_mm=(4, 7)).nominal_thickness_mm == 7.0


# --------------------------------------------------------------------------- files and tags


REQUIRED_TAGS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate", "StudyTime",
    "AccessionNumber", "StudyID", "ReferringPhysicianName", "SeriesInstanceUID", "SeriesNumber",
    "SeriesDescription", "Modality", "FrameOfReferenceUID", "Manufacturer", "ImageType", "InstanceNumber",
    "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "KVP",
    "ConvolutionKernel", "GantryDetectorTilt", "AcquisitionDate", "AcquisitionTime", "AcquisitionDateTime",
    "ContentDate", "ContentTime", "SliceLocation", "RescaleIntercept", "RescaleSlope", "RescaleType",
    "WindowCenter", "WindowWidth", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated",
    "BitsStored", "HighBit", "PixelRepresentation", "PixelData", "SOPClassUID", "SOPInstanceUID",
)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> PhantomTruth:
    return make(tmp_path_factory.mktemp("plain"), "study", small(accession_number="ACC-1"))


def test_files_are_complete_ct_image_storage(plain: PhantomTruth) -> None:
    files = plain.dicom_files("main")
    assert len(files) == 12
    for path in files:
        assert path.read_bytes()[128:132] == b"DICM"
        ds = pydicom.dcmread(path)
        missing = [t for t in REQUIRED_TAGS if t not in ds]
        assert not missing, f"{path.name} lacks {missing}"
        assert ds.SOPClassUID == CTImageStorage
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
        assert ds.Manufacturer == "ichpipe phantom"
        assert ds.AccessionNumber == "ACC-1" == plain.accession_number
        assert ds.PatientID == plain.patient_id
        assert ds.StudyInstanceUID == plain.study_instance_uid
        assert ds.SeriesInstanceUID == plain.series_instance_uid
        assert ds.AcquisitionDateTime.startswith(plain.acquisition_datetime.strftime("%Y%m%d%H%M%S"))
    numbers = sorted(int(pydicom.dcmread(f).InstanceNumber) for f in files)
    assert numbers == list(range(1, 13))


def test_file_names_do_not_follow_slice_order(plain: PhantomTruth) -> None:
    files = plain.dicom_files("main")
    by_name = sorted(files, key=lambda p: p.name)
    by_z = sorted(files, key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    assert by_name != by_z
    assert all(not p.name.startswith(".") for p in files)
    assert not [p for p in plain.out_dir.parent.iterdir() if p.name.startswith(".")], "temporary folder left"


def test_hu_are_realistic_and_mask_sits_on_the_hematoma(plain: PhantomTruth) -> None:
    slices, _ = sorted_unique(read_series(plain.dicom_files("main")))
    hu = np.stack([hu_of(ds) for ds in slices])
    mask = mask_of(plain)
    lesion_hu = plain.data["hematoma"]["hematomas"][0]["hu"]
    inner = ndimage.binary_erosion(mask > 0, structure=np.ones((1, 3, 3)))
    assert abs(float(np.mean(hu[inner])) - lesion_hu) < 3.0
    assert 55.0 <= lesion_hu <= 85.0
    padding = int(slices[0].PixelPaddingValue)
    stored = np.stack([ds.pixel_array for ds in slices])
    air = hu[(stored != padding) & (hu < -500)]
    assert abs(float(np.mean(air)) + 1000.0) < 2.0
    assert float(hu.max()) > 1200.0  # skull tables
    brain = hu[(hu > 0) & (hu < 50) & (mask == 0)]
    assert 22.0 < float(np.median(brain)) < 42.0
    assert 3.0 < float(np.std(hu[inner])) < 8.0  # noise sigma 5 HU, slightly smoothed


def test_render_phantom_matches_the_written_files(plain: PhantomTruth) -> None:
    arrays = render_phantom(small(accession_number="ACC-1"))
    hu, field = _hu_stack(plain)
    assert arrays.hu.shape == hu.shape
    assert float(np.abs(arrays.hu - hu)[field].max()) <= 0.5 + 1e-4
    np.testing.assert_array_equal(arrays.labels, mask_of(plain))
    assert arrays.volume_ml == pytest.approx(plain.volume_ml, rel=1e-12)
    assert arrays.slice_thickness_mm == pytest.approx(plain.geometry["nominal_slice_thickness_mm"], abs=1e-6)


# --------------------------------------------------------------------------- transfer syntaxes and rescale

TS_UIDS = {
    "explicit": ExplicitVRLittleEndian,
    "implicit": ImplicitVRLittleEndian,
    "rle": RLELossless,
    "jpeg2000": JPEG2000Lossless,
    "jpegls": JPEGLSLossless,
}


def _hu_stack(truth: PhantomTruth) -> tuple[np.ndarray, np.ndarray]:
    slices, _ = sorted_unique(read_series(truth.dicom_files("main")))
    hu = np.stack([hu_of(ds) for ds in slices])
    field = np.ones(hu.shape, dtype=bool)
    if "PixelPaddingValue" in slices[0]:
        field = np.stack([ds.pixel_array != int(ds.PixelPaddingValue) for ds in slices])
    return hu, field


@pytest.fixture(scope="module")
def reference_hu(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray]:
    truth = make(tmp_path_factory.mktemp("ref"), "study", small(seed=21))
    return _hu_stack(truth)


@pytest.mark.parametrize("syntax", ["implicit", "rle", "jpeg2000", "jpegls"])
def test_transfer_syntaxes_decode_to_the_same_hu(
    syntax: str, tmp_path: Path, reference_hu: tuple[np.ndarray, np.ndarray]
) -> None:
    if syntax == "jpegls" and not jpegls_available():
        pytest.skip("no JPEG-LS encoder (pyjpegls) installed")
    truth = make(tmp_path, "study", small(seed=21, transfer_syntax=syntax, distractors=("localizer", "summary")))
    assert truth.data["transfer_syntax"]["uid"] == TS_UIDS[syntax]
    for role in ("main", "localizer", "summary"):
        for path in truth.dicom_files(role):
            ds = pydicom.dcmread(path)
            assert ds.file_meta.TransferSyntaxUID == TS_UIDS[syntax]
            assert ds.pixel_array.shape == (ds.Rows, ds.Columns)
    hu, field = _hu_stack(truth)
    np.testing.assert_array_equal(hu, reference_hu[0])
    np.testing.assert_array_equal(field, reference_hu[1])


@pytest.mark.parametrize(
    ("rescale", "quantum", "signed", "bits"),
    [("unsigned", 0.0, False, 12), ("zero_intercept", 0.0, True, 16), ("scaled", 0.5, True, 16),
     ("per_slice", 0.0, True, 16)],
)
def test_rescale_variants_recover_the_same_hu(
    rescale: str, quantum: float, signed: bool, bits: int, tmp_path: Path,
    reference_hu: tuple[np.ndarray, np.ndarray],
) -> None:
    truth = make(tmp_path, "study", small(seed=21, rescale=rescale))
    slices, _ = sorted_unique(read_series(truth.dicom_files("main")))
    assert all(int(ds.PixelRepresentation) == int(signed) and int(ds.BitsStored) == bits for ds in slices)
    intercepts = {float(ds.RescaleIntercept) for ds in slices}
    assert (len(intercepts) > 1) == (rescale == "per_slice")
    hu, field = _hu_stack(truth)
    np.testing.assert_array_equal(field, reference_hu[1])
    diff = np.abs(hu - reference_hu[0])[field]
    assert float(diff.max()) <= quantum + 1e-9
    if quantum:
        assert np.any(diff > 0)  # the 0.5 HU steps are really there


def test_padding_outside_the_scan_field(plain: PhantomTruth, tmp_path: Path) -> None:
    ds = pydicom.dcmread(plain.dicom_files("main")[0])
    assert ds["PixelPaddingValue"].VR == "SS" and int(ds.PixelPaddingValue) == -2000
    stored = ds.pixel_array
    assert stored[0, 0] == -2000 and stored[64, 64] != -2000
    unpadded = make(tmp_path, "np", small(padding=False))
    ds2 = pydicom.dcmread(unpadded.dicom_files("main")[0])
    assert "PixelPaddingValue" not in ds2
    assert float(hu_of(ds2)[0, 0]) < -900


# --------------------------------------------------------------------------- geometry and volume truth

GEOMETRY_CASES: dict[str, dict[str, Any]] = {
    "plain": {},
    "tilt": {"gantry_tilt_deg": 18.5},
    "negative_tilt": {"gantry_tilt_deg": -12.0},
    "uneven": {"uneven_spacing_mm": (4.0, 7.0)},
    "drop": {"drop_slice": 6},
    "duplicate": {"duplicate_slice": 5},
    "tilt_uneven_drop": {"gantry_tilt_deg": 18.5, "uneven_spacing_mm": (4.0, 7.0), "n_slices": 16, "drop_slice": 11},
}


@pytest.fixture(scope="module")
def geometry_studies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PhantomTruth]:
    root = tmp_path_factory.mktemp("geometry")
    return {name: make(root, name, small(**kw)) for name, kw in GEOMETRY_CASES.items()}


@pytest.mark.parametrize("case", list(GEOMETRY_CASES))
def test_truth_volume_equals_independent_recomputation(case: str, geometry_studies: dict[str, PhantomTruth]) -> None:
    truth = geometry_studies[case]
    assert truth.n_voxels > 0
    assert recomputed_volume_ml(truth) == pytest.approx(truth.volume_ml, rel=1e-9)
    assert truth.volume_ml == pytest.approx(12.0, rel=0.25)  # a 5 mm slice grid around a 12 mL target


@pytest.mark.parametrize("case", list(GEOMETRY_CASES))
def test_geometry_truth_matches_the_headers(case: str, geometry_studies: dict[str, PhantomTruth]) -> None:
    truth = geometry_studies[case]
    kw = GEOMETRY_CASES[case]
    geometry = truth.geometry
    dss = read_series(truth.dicom_files("main"))
    slices, offsets = sorted_unique(dss)
    n_planned = kw.get("n_slices", 12)
    assert len(dss) == n_planned - ("drop_slice" in kw) + ("duplicate_slice" in kw) == geometry["n_files"]
    assert geometry["n_slices"] == len(slices) == n_planned - ("drop_slice" in kw)
    assert geometry["offsets_mm"] == pytest.approx(list(offsets), abs=1e-4)
    # the plan's slabs meet: from half a slice below the first planned position to half a slice above the last
    planned_offsets, planned_thickness = geometry["planned_offsets_mm"], geometry["planned_slice_thickness_mm"]
    assert sum(planned_thickness) == pytest.approx(
        planned_offsets[-1] - planned_offsets[0] + (planned_thickness[0] + planned_thickness[-1]) / 2, abs=1e-5
    )
    tilt = kw.get("gantry_tilt_deg", 0.0)
    t = math.radians(tilt)
    iop = [float(v) for v in slices[0].ImageOrientationPatient]
    assert iop == pytest.approx([1, 0, 0, 0, math.cos(t), -math.sin(t)], abs=1e-8)
    assert float(slices[0].GantryDetectorTilt) == pytest.approx(tilt)
    assert geometry["gantry_tilt_deg"] == pytest.approx(tilt)
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in slices])
    # The table moves along z only; the step along z is the spacing / cos(tilt).
    assert np.ptp(positions[:, 0]) == 0 and np.ptp(positions[:, 1]) == 0
    gaps = np.diff(offsets)
    np.testing.assert_allclose(np.diff(positions[:, 2]) * math.cos(t), gaps, atol=1e-5)
    line = positions[-1] - positions[0]
    measured = math.degrees(math.acos(abs(line @ normal_of(slices[0])) / np.linalg.norm(line)))
    assert measured == pytest.approx(abs(tilt), abs=1e-4)
    planned = [4.0] * (n_planned // 2 - 1) + [5.5] + [7.0] * (n_planned - n_planned // 2 - 1) if (
        "uneven_spacing_mm" in kw
    ) else [5.0] * (n_planned - 1)
    if "drop_slice" in kw:
        d = kw["drop_slice"]
        planned = [*planned[: d - 1], planned[d - 1] + planned[d], *planned[d + 1 :]]
        assert geometry["dropped_slice_planned_index"] == d
    np.testing.assert_allclose(gaps, planned, atol=1e-5)
    assert geometry["slice_spacing_mm"] == pytest.approx(float(np.median(planned)), abs=1e-5)
    assert geometry["missing_slices"] == ("drop_slice" in kw)
    assert geometry["uniform_spacing"] == ("drop_slice" not in kw and "uneven_spacing_mm" not in kw)
    if "uneven_spacing_mm" in kw:
        thickness = sorted({float(ds.SliceThickness) for ds in slices})
        assert thickness == [4.0, 7.0]
    if "duplicate_slice" in kw:
        index = kw["duplicate_slice"]
        same = [ds for ds in dss if int(ds.InstanceNumber) in (index + 1, n_planned + 1)]
        assert len(same) == 2 and same[0].SOPInstanceUID != same[1].SOPInstanceUID
        assert same[0].ImagePositionPatient == same[1].ImagePositionPatient
        np.testing.assert_array_equal(same[0].pixel_array, same[1].pixel_array)
        assert geometry["duplicate_positions"] == 1


def test_mask_is_sampled_at_the_voxel_centres_of_a_tilted_stack(geometry_studies: dict[str, PhantomTruth]) -> None:
    """Recompute the ellipsoid at each voxel centre from the headers: it must equal the mask."""
    truth = geometry_studies["tilt"]
    (lesion,) = truth.data["hematoma"]["hematomas"]
    centre = np.array(lesion["center_lps_mm"])
    axes = np.array(lesion["axes_lps"]).T  # columns are the principal axes
    semi = np.array(lesion["semi_axes_mm"])
    slices, _ = sorted_unique(read_series(truth.dicom_files("main")))
    mask = mask_of(truth)
    mismatched = 0
    for k, ds in enumerate(slices):
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        ipp = np.array([float(v) for v in ds.ImagePositionPatient])
        dy, dx = (float(v) for v in ds.PixelSpacing)
        r, c = np.meshgrid(np.arange(ds.Rows), np.arange(ds.Columns), indexing="ij")
        pts = ipp + c[..., None] * dx * iop[:3] + r[..., None] * dy * iop[3:]
        u = ((pts - centre) @ axes) / semi
        inside = np.sum(u * u, axis=-1) <= 1.0
        mismatched += int(np.count_nonzero(inside != (mask[k] > 0)))
    # Values in truth.json are rounded to 1e-4 mm: allow a voxel or two exactly on the surface.
    assert mismatched <= 2
    assert truth.n_voxels > 100


def test_nifti_affine_maps_voxels_to_the_dicom_positions(geometry_studies: dict[str, PhantomTruth]) -> None:
    truth = geometry_studies["tilt"]
    img = load_nifti(truth.mask_path)
    slices, _ = sorted_unique(read_series(truth.dicom_files("main")))
    assert img.shape == (slices[0].Columns, slices[0].Rows, len(slices))
    assert img.get_data_dtype() == np.uint8
    affine = img.affine
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    for k in (0, len(slices) - 1):
        ipp = np.array([float(v) for v in slices[k].ImagePositionPatient])
        np.testing.assert_allclose(affine[:3, :3] @ [0, 0, k] + affine[:3, 3], lps_to_ras @ ipp, atol=1e-4)
        iop = np.array([float(v) for v in slices[k].ImageOrientationPatient])
        dy, dx = (float(v) for v in slices[k].PixelSpacing)
        expected = lps_to_ras @ (ipp + 7 * dx * iop[:3] + 3 * dy * iop[3:])
        np.testing.assert_allclose(affine[:3, :3] @ [7, 3, k] + affine[:3, 3], expected, atol=1e-4)


def test_dropped_slice_does_not_change_the_truth_of_what_was_scanned(
    geometry_studies: dict[str, PhantomTruth],
) -> None:
    drop = geometry_studies["drop"].data["hematoma"]
    plain = geometry_studies["plain"].data["hematoma"]
    # Same seed and hematoma on the same planned slices: the truth is the same; only the file is missing.
    assert drop["volume_ml"] == pytest.approx(plain["volume_ml"], rel=1e-12)
    assert drop["planned_slice_voxels"] == plain["planned_slice_voxels"]
    assert drop["n_voxels"] == plain["n_voxels"] - plain["planned_slice_voxels"][GEOMETRY_CASES["drop"]["drop_slice"]]
    assert drop["n_voxels"] < plain["n_voxels"]


def test_ellipsoid_voxel_volume_is_within_2_percent_of_analytic_at_default_resolution(tmp_path: Path) -> None:
    truth = write_phantom_study(tmp_path / "full", PhantomSpec(seed=4, volume_ml=30.0))
    hematoma = truth.data["hematoma"]
    assert truth.geometry["rows"] == 512 and truth.geometry["n_slices"] == 32
    assert hematoma["analytic_volume_ml"] == pytest.approx(30.0, rel=1e-6)
    assert truth.volume_ml == pytest.approx(hematoma["analytic_volume_ml"], rel=0.02)
    assert recomputed_volume_ml(truth) == pytest.approx(truth.volume_ml, rel=1e-9)


# --------------------------------------------------------------------------- hematoma options


def test_irregular_multiple_and_touching_hematomas(tmp_path: Path) -> None:
    truth = make(tmp_path, "irr", small(shape="irregular", n_hematomas=2, touch_skull=True, volume_ml=20.0,
                                        n_slices=16))
    lesions = truth.data["hematoma"]["hematomas"]
    assert [h["label"] for h in lesions] == [1, 2]
    assert all(h["analytic_volume_ml"] is None for h in lesions)
    assert truth.data["hematoma"]["analytic_volume_ml"] is None
    assert lesions[0]["touches_skull"] and lesions[0]["clipped_fraction"] > 0.02
    assert not lesions[1]["touches_skull"]
    mask = mask_of(truth)
    assert set(np.unique(mask)) == {0, 1, 2}
    assert sum(h["n_voxels"] for h in lesions) == truth.n_voxels
    assert sum(h["volume_ml"] for h in lesions) == pytest.approx(truth.volume_ml, rel=1e-9)
    for h in lesions:  # voxel volume vs Monte-Carlo volume of the continuous shape (coarse 1.8 mm x 5 mm grid)
        assert h["volume_ml"] == pytest.approx(h["model_volume_ml"], rel=0.2)
    assert recomputed_volume_ml(truth) == pytest.approx(truth.volume_ml, rel=1e-9)
    slices, _ = sorted_unique(read_series(truth.dicom_files("main")))
    hu = np.stack([hu_of(ds) for ds in slices])
    near = [ndimage.binary_dilation(mask == label, structure=np.ones((1, 5, 5))) for label in (1, 2)]
    assert np.any(hu[near[0]] > 500.0), "the touching hematoma should reach the skull"
    assert not np.any(hu[near[1]] > 500.0), "the other one should not"


def test_no_hematoma_gives_an_empty_mask(tmp_path: Path) -> None:
    truth = make(tmp_path, "none", small(n_hematomas=0, volume_ml=None))
    assert truth.volume_ml == 0.0 and truth.n_voxels == 0
    assert truth.data["hematoma"]["max_area_slice_index"] is None
    assert not mask_of(truth).any()


def test_hematoma_hu_and_edema_options(tmp_path: Path) -> None:
    truth = make(tmp_path, "hu", small(hematoma_hu=45.0, edema_mm=3.0, noise_hu=0.0))
    lesion_hu = truth.data["hematoma"]["hematomas"][0]["hu"]
    assert 40.0 <= lesion_hu <= 50.0
    slices, _ = sorted_unique(read_series(truth.dicom_files("main")))
    hu = np.stack([hu_of(ds) for ds in slices])
    mask = mask_of(truth) > 0
    inner = ndimage.binary_erosion(mask, structure=np.ones((1, 3, 3)))
    assert float(np.median(hu[inner])) == pytest.approx(lesion_hu, abs=1.0)
    rim = ndimage.binary_dilation(mask, structure=np.ones((1, 3, 3)), iterations=2) & ~mask
    assert float(np.median(hu[rim])) < 25.0  # hypodense rim, below white matter


def test_a_too_large_hematoma_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'n_slices'|'volume_ml'"):
        write_phantom_study(tmp_path / "big", small(n_slices=4, volume_ml=100.0))
    assert not (tmp_path / "big").exists()


# --------------------------------------------------------------------------- distractors


def test_distractor_series(tmp_path: Path) -> None:
    truth = make(tmp_path, "d", small(distractors=("localizer", "bone", "thin", "summary")))
    series = {s["role"]: s for s in truth.data["series"]}
    assert set(series) == {"main", "localizer", "bone", "thin", "summary"}
    assert [s["role"] for s in truth.data["series"] if s["should_select"]] == ["main"]
    assert truth.data["selected_series_instance_uid"] == series["main"]["series_instance_uid"]
    assert len({s["series_instance_uid"] for s in series.values()}) == 5
    for role in series:
        for path in truth.dicom_files(role):
            ds = pydicom.dcmread(path)
            assert ds.StudyInstanceUID == truth.study_instance_uid
            assert ds.SeriesInstanceUID == series[role]["series_instance_uid"]
    (loc,) = (pydicom.dcmread(p) for p in truth.dicom_files("localizer"))
    assert list(loc.ImageType) == ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    assert [float(v) for v in loc.ImageOrientationPatient] == [1, 0, 0, 0, 0, -1]
    assert (loc.Rows, loc.Columns) == (256, 512)
    bone = [pydicom.dcmread(p) for p in truth.dicom_files("bone")]
    assert len(bone) == 12 and {b.ConvolutionKernel for b in bone} == {"BONE"}
    assert (float(bone[0].WindowCenter), float(bone[0].WindowWidth)) == (500.0, 2000.0)
    thin = [pydicom.dcmread(p) for p in truth.dicom_files("thin")]
    _, offsets = sorted_unique(thin)
    np.testing.assert_allclose(np.diff(offsets), 1.25, atol=1e-5)
    (summary,) = (pydicom.dcmread(p) for p in truth.dicom_files("summary"))
    assert summary.SOPClassUID == SecondaryCaptureImageStorage
    assert list(summary.ImageType) == ["DERIVED", "SECONDARY"]
    # The bone kernel is noisier than the soft-tissue kernel on the same slices.
    main = sorted_unique(read_series(truth.dicom_files("main")))[0]
    bone_sorted = sorted_unique(bone)[0]
    k = 6
    brain = (hu_of(main[k]) > 10) & (hu_of(main[k]) < 50)
    assert np.std(hu_of(bone_sorted[k])[brain]) > 1.5 * np.std(hu_of(main[k])[brain])


@pytest.mark.parametrize(
    "options",
    [
        {"transfer_syntax": "jpeg2000", "rescale": "unsigned", "gantry_tilt_deg": 10.0},
        {"transfer_syntax": "implicit", "rescale": "scaled", "padding": False, "uneven_spacing_mm": (4.0, 7.0)},
    ],
    ids=["jpeg2000-unsigned-tilt", "implicit-scaled-uneven"],
)
def test_dciodvfy_finds_no_error_or_warning(options: dict[str, Any], tmp_path: Path) -> None:
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not on PATH")
    truth = make(tmp_path, "v", small(distractors=("localizer", "bone", "summary"), **options))
    for series in truth.data["series"]:
        for rel in series["files"][:2]:
            done = subprocess.run([exe, str(truth.out_dir / rel)], capture_output=True, text=True, check=False)
            lines = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith(("Error", "Warning"))]
            assert lines == [], f"{series['role']} {rel}: {lines}"


# --------------------------------------------------------------------------- determinism and serial studies


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    spec = small(distractors=("localizer", "summary"), transfer_syntax="rle")
    a = _tree(make(tmp_path, "a", spec).out_dir)
    b = _tree(make(tmp_path, "b", spec).out_dir)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []  # every file byte for byte, the NIfTI mask included


def test_different_seeds_differ(tmp_path: Path) -> None:
    a = make(tmp_path, "a", small(seed=1))
    b = make(tmp_path, "b", small(seed=2))
    assert a.study_instance_uid != b.study_instance_uid
    assert a.patient_id != b.patient_id
    assert a.data["hematoma"]["hematomas"][0]["center_lps_mm"] != b.data["hematoma"]["hematomas"][0]["center_lps_mm"]
    pa = pydicom.dcmread(a.dicom_files()[0]).pixel_array
    pb = pydicom.dcmread(b.dicom_files()[0]).pixel_array
    assert not np.array_equal(pa, pb)


def test_serial_studies_of_one_patient(tmp_path: Path) -> None:
    first = make(tmp_path, "scan1", small(seed=7, accession_number="ACC100", volume_ml=10.0,
                                          acquisition_datetime=datetime(2026, 3, 1, 8, 30)))
    second = make(tmp_path, "scan2", small(seed=7, accession_number="ACC101", volume_ml=18.0,
                                           acquisition_datetime=datetime(2026, 3, 2, 9, 15)))
    assert first.patient_id == second.patient_id
    assert first.study_instance_uid != second.study_instance_uid
    assert first.series_instance_uid != second.series_instance_uid
    assert (first.accession_number, second.accession_number) == ("ACC100", "ACC101")
    assert second.acquisition_datetime - first.acquisition_datetime == datetime(2026, 3, 2, 9, 15) - datetime(
        2026, 3, 1, 8, 30
    )
    h1, h2 = (t.data["hematoma"]["hematomas"][0] for t in (first, second))
    assert h1["center_lps_mm"] == h2["center_lps_mm"] and h1["site"] == h2["site"]
    assert h2["volume_ml"] > h1["volume_ml"] * 1.5
    ds = pydicom.dcmread(second.dicom_files()[0])
    assert ds.AcquisitionDate == "20260302" and ds.AcquisitionTime == "091500"
    assert ds.PatientID == first.patient_id


def test_explicit_identity_options(tmp_path: Path) -> None:
    truth = make(tmp_path, "id", small(patient_id="P-42", patient_name="DOE^JANE", study_instance_uid="1.2.3.4.5"))
    ds = pydicom.dcmread(truth.dicom_files()[0])
    assert (ds.PatientID, str(ds.PatientName), ds.StudyInstanceUID) == ("P-42", "DOE^JANE", "1.2.3.4.5")
    assert truth.data["study_instance_uid"] == "1.2.3.4.5"


# --------------------------------------------------------------------------- output folder


def test_output_folder_rules(tmp_path: Path) -> None:
    out = tmp_path / "study"
    make(tmp_path, "study", small())
    with pytest.raises(UsageError, match="not empty"):
        write_phantom_study(out, small(seed=12))
    replaced = write_phantom_study(out, small(seed=12), overwrite=True)
    assert load_truth(out).data["spec"]["seed"] == 12 == replaced.data["spec"]["seed"]
    assert len(list((out / "DICOM").iterdir())) == 12  # the old files are gone
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not an ichpipe phantom"):
        write_phantom_study(other, small(), overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert write_phantom_study(empty, small()).volume_ml > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "other", "study"]


# --------------------------------------------------------------------------- command line


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def test_cli_writes_a_study_and_prints_the_truth(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = run(
        "phantom", "--out", str(out), "--seed", "5", "--rows", "128", "--columns", "128", "--slices", "12",
        "--tilt", "15", "--uneven", "--drop-slice", "8", "--transfer-syntax", "rle", "--rescale", "scaled",
        "--distractors", "--shape", "irregular", "--volume-ml", "9", "--hu", "70", "--noise", "4",
        "--patient-id", "PX", "--accession", "ACC9", "--acquisition-datetime", "2026-05-04T03:02:01", "--json",
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed == json.loads((out / "truth.json").read_text())
    spec = printed["spec"]
    assert spec["gantry_tilt_deg"] == 15.0 and spec["uneven_spacing_mm"] == [4.0, 7.0] and spec["drop_slice"] == 8
    assert spec["distractors"] == ["localizer", "bone", "summary"] and spec["hematoma_hu"] == 70.0
    assert printed["patient_id"] == "PX" and printed["accession_number"] == "ACC9"
    assert printed["acquisition_datetime"] == "2026-05-04T03:02:01"
    assert printed["transfer_syntax"]["name"] == "rle" and printed["rescale"]["slope"] == 0.5
    assert printed["geometry"]["missing_slices"] == 1


def test_cli_text_output_and_errors(tmp_path: Path) -> None:
    out = tmp_path / "s"
    ok = run("phantom", "--out", str(out), "--rows", "128", "--columns", "128", "--slices", "12")
    assert ok.exit_code == 0, ok.output
    assert "hematoma volume" in ok.stdout and "PH" not in ok.stdout.split("truth:")[0]
    again = run("phantom", "--out", str(out), "--rows", "128", "--columns", "128", "--slices", "12")
    assert again.exit_code == 2 and "not empty" in again.stderr and "Traceback" not in again.output
    replaced = run("phantom", "--out", str(out), "--rows", "128", "--columns", "128", "--slices", "12",
                   "--overwrite", "--seed", "3")
    assert replaced.exit_code == 0, replaced.output
    bad_tilt = run("phantom", "--out", str(tmp_path / "t"), "--tilt", "40")
    assert bad_tilt.exit_code == 2 and "'gantry_tilt_deg'" in bad_tilt.stderr
    bad_time = run("phantom", "--out", str(tmp_path / "d"), "--acquisition-datetime", "yesterday")
    assert bad_time.exit_code == 2 and "--acquisition-datetime" in bad_time.stderr
    bad_choice = run("phantom", "--out", str(tmp_path / "c"), "--transfer-syntax", "gif")
    assert bad_choice.exit_code == 2
    assert not (tmp_path / "t").exists() and not (tmp_path / "d").exists()
