from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ichpipe.dicom_io.geometry import VolumeGeometry, compute_geometry
from ichpipe.errors import DicomInputError, OutputError
from ichpipe.pipeline.measure.nifti_masks import (
    LPS_FROM_RAS,
    AlignmentConfig,
    align_nifti_mask,
    load_nifti_mask,
    read_nifti_mask,
    write_nifti_mask,
)
from ichpipe.pipeline.measure.volume import measure_hematoma


def make_geometry(offsets, *, tilt_deg: float = 0.0, rows: int = 12, columns: int = 10,
                  spacing=(0.6, 0.8), origin=(-3.0, -4.0, 10.0)) -> VolumeGeometry:
    t = math.radians(tilt_deg)
    orientation = (1.0, 0.0, 0.0, 0.0, math.cos(t), -math.sin(t))
    positions = np.array([[origin[0], origin[1], origin[2] + z / math.cos(t)] for z in offsets])
    return compute_geometry(orientation=orientation, positions=positions, pixel_spacing=spacing,
                            rows=rows, columns=columns, header_tilt_deg=tilt_deg or None)


def blob(geo: VolumeGeometry, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = rng.random((geo.n_slices, geo.rows, geo.columns)) > 0.6
    mask[0, 0, 0], mask[-1, -1, -1] = True, False  # asymmetric, so flips are caught
    return mask


def save(path: Path, data: np.ndarray, affine_ras: np.ndarray, *, codes: int = 1) -> Path:
    img = nib.Nifti1Image(data, affine_ras)
    img.set_sform(affine_ras, code=codes)
    img.set_qform(affine_ras if codes else None, code=codes)
    nib.save(img, path)
    return path


@pytest.mark.parametrize("tilt", [0.0, 18.5])
def test_write_then_read_keeps_mask_and_geometry(tmp_path: Path, tilt: float) -> None:
    geo = make_geometry(np.arange(7) * 5.0, tilt_deg=tilt)
    mask = blob(geo)
    path = write_nifti_mask(tmp_path / "m.nii.gz", mask, geo)
    assert not [p for p in tmp_path.iterdir() if p.name != "m.nii.gz"]  # no temporary left behind
    back = read_nifti_mask(path)
    assert np.array_equal(back.mask, mask)
    g = back.geometry
    assert g.pixel_spacing_mm == pytest.approx(geo.pixel_spacing_mm)
    assert g.slice_spacing_mm == pytest.approx(5.0, abs=1e-4)
    assert abs(g.gantry_tilt_deg) == pytest.approx(tilt, abs=1e-3)
    assert np.allclose(g.positions, geo.positions, atol=1e-3)
    expected = measure_hematoma(mask, geo).volume_ml
    assert measure_hematoma(back.mask, g).volume_ml == pytest.approx(expected, rel=1e-5)
    # and it aligns back onto the series it was written for
    aligned = align_nifti_mask(path, geo)
    assert np.array_equal(aligned.mask, mask) and aligned.warnings == ()


def test_header_conversion_ras_to_lps(tmp_path: Path) -> None:
    # i along -x RAS (= +L), j along -y RAS (= +P): the DICOM axial convention
    affine = np.array([[-0.5, 0, 0, 100.0], [0, -0.7, 0, 90.0], [0, 0, 3.0, -20.0], [0, 0, 0, 1]])
    data = np.zeros((8, 6, 4), dtype=np.uint8)  # i, j, k = columns, rows, slices
    data[5, 2, 1] = 1
    m = read_nifti_mask(save(tmp_path / "a.nii", data, affine))
    assert m.mask.shape == (4, 6, 8)
    assert m.mask[1, 2, 5]
    g = m.geometry
    assert np.allclose(g.row_direction, [1, 0, 0]) and np.allclose(g.column_direction, [0, 1, 0])
    assert g.pixel_spacing_mm == pytest.approx((0.7, 0.5))
    assert np.allclose(g.positions[0], [-100.0, -90.0, -20.0])
    assert g.slice_spacing_mm == pytest.approx(3.0)


def test_k_against_normal_is_reversed_with_a_warning(tmp_path: Path) -> None:
    affine = np.diag([-1.0, -1.0, -2.0, 1.0])  # k runs against i x j
    data = np.zeros((4, 4, 5), dtype=np.uint8)
    data[1, 1, 0] = 1
    m = read_nifti_mask(save(tmp_path / "r.nii.gz", data, affine))
    assert m.mask[4, 1, 1] and m.mask.sum() == 1
    assert np.all(np.diff(m.geometry.offsets_mm) > 0)
    assert any("reverse order" in w for w in m.warnings)


def test_oblique_unsheared_header_warns_about_tilt_over_read(tmp_path: Path) -> None:
    t = math.radians(20.0)
    lps = np.eye(4)
    lps[:3, 1] = [0, math.cos(t), -math.sin(t)]
    lps[:3, 2] = np.cross(lps[:3, 0], lps[:3, 1]) * 5.0 / math.cos(t)
    m = read_nifti_mask(save(tmp_path / "o.nii.gz", np.ones((3, 3, 3), np.uint8), LPS_FROM_RAS @ lps))
    assert any("oblique (20.0 deg" in w and "6.4 %" in w for w in m.warnings)


def test_labels_merge_and_probability_maps_are_refused(tmp_path: Path) -> None:
    data = np.zeros((4, 4, 3), dtype=np.int16)
    data[0, 0, 0], data[1, 1, 1] = 1, 2
    m = read_nifti_mask(save(tmp_path / "l.nii.gz", data, np.eye(4)))
    assert m.mask.sum() == 2
    assert any("2 labels" in w for w in m.warnings)
    prob = np.full((4, 4, 3), 0.3, dtype=np.float32)
    with pytest.raises(DicomInputError, match="probability map"):
        read_nifti_mask(save(tmp_path / "p.nii.gz", prob, np.eye(4)))
    with pytest.raises(DicomInputError, match="a 3D mask"):
        read_nifti_mask(save(tmp_path / "4d.nii.gz", np.zeros((4, 4, 3, 2), np.uint8), np.eye(4)))
    (tmp_path / "bad.nii.gz").write_bytes(b"not a nifti at all")
    with pytest.raises(DicomInputError, match="could not be read as NIfTI"):
        read_nifti_mask(tmp_path / "bad.nii.gz")
    with pytest.raises(DicomInputError, match="does not exist"):
        load_nifti_mask(tmp_path / "missing.nii.gz")


def test_no_orientation_header_only_warns_but_alignment_refuses(tmp_path: Path) -> None:
    path = save(tmp_path / "n.nii", np.ones((10, 12, 3), np.uint8), np.diag([0.8, 0.6, 5.0, 1.0]), codes=0)
    m = read_nifti_mask(path)
    assert any("no orientation" in w for w in m.warnings)
    geo = make_geometry(np.arange(3) * 5.0)
    with pytest.raises(DicomInputError, match="no orientation"):
        align_nifti_mask(path, geo)


def test_align_reorients_flipped_and_permuted_axes(tmp_path: Path) -> None:
    geo = make_geometry(np.arange(6) * 4.0)
    mask = blob(geo, seed=3)
    path = write_nifti_mask(tmp_path / "m.nii.gz", mask, geo)
    img = nib.load(path)
    assert isinstance(img, nib.Nifti1Image)
    # the same voxels stored with j flipped, then i and j swapped (a reoriented copy)
    data = np.asarray(img.dataobj)[:, ::-1, :]
    affine = img.affine.copy()
    affine[:3, 3] += (data.shape[1] - 1) * affine[:3, 1]
    affine[:3, 1] *= -1
    data = data.transpose(1, 0, 2)
    affine = affine[:, [1, 0, 2, 3]]
    other = save(tmp_path / "o.nii.gz", np.ascontiguousarray(data), affine)
    aligned = align_nifti_mask(other, geo)
    assert np.array_equal(aligned.mask, mask)
    assert any("reoriented" in w for w in aligned.warnings)


def test_align_accepts_sitk_style_table_step_on_tilted_series(tmp_path: Path) -> None:
    geo = make_geometry(np.arange(6) * 5.0, tilt_deg=20.0)
    mask = blob(geo, seed=1)
    lps = geo.affine_lps()
    lps[:3, 2] = geo.normal * 5.0 / math.cos(math.radians(20.0))  # SimpleITK: distance between positions
    path = save(tmp_path / "s.nii.gz", mask.transpose(2, 1, 0).astype(np.uint8), LPS_FROM_RAS @ lps)
    aligned = align_nifti_mask(path, geo)
    assert np.array_equal(aligned.mask, mask)
    assert any("matched by index" in w for w in aligned.warnings)
    # measured on the DICOM geometry: not inflated
    assert measure_hematoma(aligned.mask, aligned.geometry).volume_ml == pytest.approx(
        measure_hematoma(mask, geo).volume_ml
    )


def test_align_mismatches_say_what_differs(tmp_path: Path) -> None:
    geo = make_geometry(np.arange(6) * 5.0)
    path = write_nifti_mask(tmp_path / "m.nii.gz", blob(geo), geo)
    with pytest.raises(DicomInputError, match=r"it has 6 slices of 12 x 10 .* the series 5 slices"):
        align_nifti_mask(path, make_geometry(np.arange(5) * 5.0))
    with pytest.raises(DicomInputError, match=r"row spacing 0\.6000 mm differs from the series. 0\.5000 mm"):
        align_nifti_mask(path, make_geometry(np.arange(6) * 5.0, spacing=(0.5, 0.8)))
    with pytest.raises(DicomInputError, match=r"first voxel lies at .* 2.00 mm from"):
        align_nifti_mask(path, make_geometry(np.arange(6) * 5.0, origin=(-3.0, -2.0, 10.0)))
    with pytest.raises(DicomInputError, match=r"slice step is 5\.000 mm"):
        align_nifti_mask(path, make_geometry(np.arange(6) * 3.0))
    # a looser tolerance accepts the 2 mm shift
    loose = AlignmentConfig(position_tolerance_mm=2.5)
    assert align_nifti_mask(path, make_geometry(np.arange(6) * 5.0, origin=(-3.0, -2.0, 10.0)), tolerance=loose)
    with pytest.raises(ValueError, match="Argument 'position_tolerance_mm'"):
        AlignmentConfig(position_tolerance_mm=0.0)


def test_uneven_stack_is_written_with_median_spacing_and_still_aligns(tmp_path: Path) -> None:
    offsets = np.array([0.0, 4.0, 8.0, 12.0, 19.0, 26.0, 33.0])
    geo = make_geometry(offsets)
    mask = blob(geo, seed=2)
    path = write_nifti_mask(tmp_path / "u.nii", mask, geo)
    img = nib.load(path)
    assert isinstance(img, nib.Nifti1Image)
    zooms = img.header.get_zooms()
    assert zooms[2] == pytest.approx(geo.slice_spacing_mm)
    aligned = align_nifti_mask(path, geo)
    assert measure_hematoma(aligned.mask, aligned.geometry).volume_ml == pytest.approx(
        measure_hematoma(mask, geo).volume_ml
    )


def test_write_refuses_bad_arguments_and_unwritable_folder(tmp_path: Path) -> None:
    geo = make_geometry(np.arange(3) * 5.0)
    mask = blob(geo)
    with pytest.raises(ValueError, match=r"Argument .path. must end in \.nii"):
        write_nifti_mask(tmp_path / "m.png", mask, geo)
    with pytest.raises(ValueError, match="Argument 'mask' must be a boolean array"):
        write_nifti_mask(tmp_path / "m.nii", mask.astype(np.uint8), geo)
    with pytest.raises(OutputError, match="Cannot write"):
        write_nifti_mask(tmp_path / "no" / "such" / "m.nii", mask, geo)
