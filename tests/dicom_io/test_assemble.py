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


def test_monochrome1_is_inverted(make_series) -> None:
    folder = make_series(offsets=np.arange(12) * 5.0, hu=ramp)
    f = sorted(folder.iterdir())[0]
    ds = pydicom.dcmread(f)
    stored = ds.pixel_array.astype(np.int32)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.PixelData = ((-32768 + 32767) - stored).astype(np.int16).tobytes()
    ds.save_as(f)
    with scan_study(folder) as scan:
        vol = assemble_series(scan.require_selected().series)
    i = int(ds.InstanceNumber) - 1
    np.testing.assert_allclose(vol.hu[i], ramp(i))


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
