from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from ichpipe.dicom_io import assemble_series, scan_study
from ichpipe.errors import DicomInputError, GeometryError


def ramp(i: int) -> np.ndarray:
    return np.full((16, 16), float(i * 10))


def test_slices_sorted_along_normal_not_by_name(make_series) -> None:
    folder = make_series(offsets=[0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50], hu=ramp)
    with scan_study(folder) as scan:
        vol = assemble_series(scan.require_selected().series)
    assert [float(v[0, 0]) for v in vol.hu] == [i * 10.0 for i in range(11)]


def test_tilted_series_spacing_along_normal(make_series) -> None:
    folder = make_series(offsets=np.arange(12) * 5.0, tilt_deg=20.0)
    with scan_study(folder) as scan:
        geo = scan.require_selected().geometry
    assert geo.gantry_tilt_deg == pytest.approx(20.0, abs=1e-3)
    assert geo.slice_spacing_mm == pytest.approx(5.0, abs=1e-3)


def test_rescale_per_slice_and_padding(make_series, tmp_path: Path) -> None:
    folder = make_series(offsets=np.arange(12) * 5.0, hu=ramp)
    files = sorted(folder.iterdir())
    # rewrite one slice with a different slope/intercept but the same HU
    ds = pydicom.dcmread(files[3])
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    ds.RescaleSlope, ds.RescaleIntercept = 0.5, -1000.0
    stored = np.round((hu - -1000.0) / 0.5).astype(np.int16)
    stored[0, 0] = -2000
    ds.add_new(0x00280120, 'SS', -2000)  # PixelPaddingValue
    ds.PixelData = stored.tobytes()
    ds.save_as(files[3])
    with scan_study(folder) as scan:
        vol = assemble_series(scan.require_selected().series)
    idx = int(ds.InstanceNumber) - 1
    expected = ramp(idx)
    expected[0, 0] = -1024.0
    np.testing.assert_allclose(vol.hu[idx], expected)


def _modality_lut_hu(ds: pydicom.Dataset) -> np.ndarray:
    """HU as pydicom's own Modality LUT gives them (padding aside), independent of the project's code."""
    from pydicom.pixels import apply_modality_lut

    stored = ds.pixel_array
    hu = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    pad = ds.get("PixelPaddingValue")
    if pad is not None:
        hu[stored == int(pad)] = -1024.0  # GeometryConfig.padding_hu
    return hu


@pytest.mark.parametrize("rescale", ["standard", "unsigned", "scaled"])
def test_monochrome1_hu_come_from_the_modality_lut(tmp_path: Path, rescale: str) -> None:
    """MONOCHROME1 is a display inversion after the LUTs: HU are pydicom's apply_modality_lut, as for MONOCHROME2."""
    from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study

    spec = PhantomSpec(seed=5, rows=48, columns=48, n_slices=10, rescale=rescale, photometric="MONOCHROME1")  # type: ignore[arg-type]
    write_phantom_study(tmp_path / "m1", spec)
    with scan_study(tmp_path / "m1") as scan:
        vol = assemble_series(scan.require_selected().series)
    by_uid = {sh.sop_instance_uid: i for i, sh in enumerate(vol.slices)}
    checked = 0
    for f in (tmp_path / "m1" / "DICOM").iterdir():
        ds = pydicom.dcmread(f)
        if ds.SeriesInstanceUID != vol.series_uid:
            continue
        assert ds.PhotometricInterpretation == "MONOCHROME1"
        np.testing.assert_array_equal(vol.hu[by_uid[ds.SOPInstanceUID]], _modality_lut_hu(ds))
        checked += 1
    assert checked == vol.hu.shape[0] == 10
    # air around the head reads about -1000 HU, not about +1000 or -2000 (what an inversion would give)
    assert -1030.0 <= float(np.median(vol.hu[:, :3, 24])) <= -970.0


def test_monochrome1_phantom_stores_what_monochrome2_stores(tmp_path: Path) -> None:
    """The generator's MONOCHROME1 variant writes the same stored values and rescale as MONOCHROME2 (a real
    MONOCHROME1 CT differs only in how a display shows it), and nothing else in the pixel module."""
    from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study

    for name in ("MONOCHROME1", "MONOCHROME2"):
        spec = PhantomSpec(seed=5, rows=48, columns=48, n_slices=10, accession_number="A1",
                           photometric=name)  # type: ignore[arg-type]
        write_phantom_study(tmp_path / name, spec)

    def pixel_modules(folder: Path) -> dict[int, tuple[bytes, str, str, str]]:
        out = {}
        for f in (folder / "DICOM").iterdir():
            ds = pydicom.dcmread(f)
            if ds.Modality == "CT" and "AXIAL" in ds.ImageType and ds.SeriesNumber == 2:
                out[int(ds.InstanceNumber)] = (ds.PixelData, str(ds.RescaleSlope), str(ds.RescaleIntercept),
                                               ds.PhotometricInterpretation)
        return out

    one, two = pixel_modules(tmp_path / "MONOCHROME1"), pixel_modules(tmp_path / "MONOCHROME2")
    assert sorted(one) == sorted(two) and len(one) == 10
    for k in one:
        assert one[k][:3] == two[k][:3]
        assert (one[k][3], two[k][3]) == ("MONOCHROME1", "MONOCHROME2")


def test_corrupt_file_is_skipped_and_gap_reported(make_series) -> None:
    folder = make_series(offsets=np.arange(12) * 5.0, hu=ramp)
    victim = next(f for f in sorted(folder.iterdir()) if pydicom.dcmread(f).InstanceNumber == 6)
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) - 300])  # pixel data cut short
    with scan_study(folder) as scan:
        vol = assemble_series(scan.require_selected().series)
    assert vol.geometry.n_slices == 11
    assert vol.geometry.missing_slices == 1
    assert any("skipped" in w and victim.name in w for w in vol.warnings)


def test_duplicate_position_keeps_one_and_says_which(make_series) -> None:
    folder = make_series(offsets=np.arange(12) * 5.0, hu=ramp)
    src = sorted(folder.iterdir())[0]
    ds = pydicom.dcmread(src)
    ds.SOPInstanceUID = ds.SOPInstanceUID[:60] + ".9"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = 99
    ds.save_as(folder / "dup")
    with scan_study(folder) as scan:
        vol = assemble_series(scan.require_selected().series)
    assert vol.geometry.n_slices == 12
    assert any("kept dup" in w for w in vol.warnings)


def test_missing_geometry_everywhere_is_a_clear_error(make_series) -> None:
    folder = make_series(offsets=np.arange(12) * 5.0)
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        del ds.ImagePositionPatient
        ds.save_as(f)
    with scan_study(folder) as scan:
        summary = scan.series[0]
        assert summary.geometry is None
        assert "ImagePositionPatient" in (summary.geometry_error or "")
        with pytest.raises(GeometryError, match="ImagePositionPatient"):
            assemble_series(summary.series)


def test_mixed_matrix_sizes_split_the_series(make_series, tmp_path: Path) -> None:
    folder = make_series(offsets=np.arange(12) * 5.0)
    f = sorted(folder.iterdir())[0]
    ds = pydicom.dcmread(f)
    ds.Rows = ds.Columns = 8
    ds.PixelData = np.zeros((8, 8), dtype=np.int16).tobytes()
    ds.save_as(f)
    with scan_study(folder) as scan:
        assert len(scan.series) == 2
        assert any("split" in n for s in scan.series for n in s.notes)
        assert scan.require_selected().geometry.n_slices == 11


def test_absurd_matrix_refused_before_allocation(make_series) -> None:
    folder = make_series(offsets=np.arange(12) * 5.0)
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.Rows = 60000
        ds.save_as(f)
    with scan_study(folder) as scan:
        with pytest.raises(DicomInputError, match="refusing to allocate"):
            assemble_series(scan.series[0].series)
