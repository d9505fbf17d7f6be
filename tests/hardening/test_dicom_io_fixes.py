"""One test per bug the hardening work found in ``dicom_io`` (each failed before its fix)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hardening_corpus import edit_files
from pydicom.uid import RLELossless, generate_uid

from ichpipe.dicom_io.assemble import MAX_FILE_PIXEL_BYTES, _pixel_budget_problem, assemble_series
from ichpipe.dicom_io.discover import DiscoveryConfig, describe_error, iter_files, read_header
from ichpipe.dicom_io.seg import build_seg
from ichpipe.dicom_io.series import Series, group_series
from ichpipe.dicom_io.study import scan_study
from ichpipe.errors import DicomInputError, GeometryError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom")

MakeSeries = Callable[..., Path]


def _files(folder: Path) -> list[Path]:
    """Files sorted along z (make_series shuffles the names)."""
    return sorted(folder.iterdir(), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))


def _only_series(folder: Path) -> list[Series]:
    headers = [(p, read_header(p)) for p in sorted(folder.iterdir())]
    groups = group_series(headers)
    return groups


def test_nan_pixel_spacing_is_a_clear_geometry_error(make_series: MakeSeries) -> None:
    folder = make_series()
    edit_files(_files(folder), lambda ds: setattr(ds, "PixelSpacing", ["NaN", "0.5"]))
    (series,) = _only_series(folder)
    with pytest.raises(GeometryError, match=r"^Series [0-9.]+: .* no usable PixelSpacing; cannot place the slices"):
        assemble_series(series)


def test_non_orthogonal_orientation_error_names_the_series(make_series: MakeSeries) -> None:
    folder = make_series()
    edit_files(_files(folder), lambda ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 0.1, 0.995, 0]))
    (series,) = _only_series(folder)
    with pytest.raises(GeometryError, match=rf"^Series {series.key}: ImageOrientationPatient row and column are not"):
        assemble_series(series)


def test_absurd_pixel_spacing_is_refused(make_series: MakeSeries) -> None:
    folder = make_series()
    edit_files(_files(folder), lambda ds: setattr(ds, "PixelSpacing", ["1e200", "1e200"]))
    (series,) = _only_series(folder)
    with pytest.raises(GeometryError, match=r"at most 100 mm"):
        assemble_series(series)


@pytest.mark.parametrize("value", ["1e308", "-1e9", "inf"])
def test_absurd_position_makes_the_slice_unusable(make_series: MakeSeries, value: str) -> None:
    folder = make_series()
    edit_files(_files(folder)[5:6], lambda ds: setattr(ds, "ImagePositionPatient", ["0", "0", value]))
    (series,) = _only_series(folder)
    volume = assemble_series(series)
    assert volume.hu.shape[0] == 11
    assert any("no usable ImagePositionPatient" in w for w in volume.warnings)


def test_orientation_with_a_binary_vr_is_not_read_as_numbers(make_series: MakeSeries) -> None:
    folder = make_series()

    def change(ds: pydicom.Dataset) -> None:
        del ds.ImageOrientationPatient
        ds.add_new(0x00200037, "OB", b"\x01\x00\x00\x00\x01\x00")  # six bytes that would read as 1,0,0,0,1,0

    edit_files(_files(folder), change)
    (series,) = _only_series(folder)
    assert series.slices[0].orientation is None


@pytest.mark.parametrize(("tag", "value"), [("RescaleSlope", "NaN"), ("RescaleSlope", 0), ("RescaleIntercept", "inf")])
def test_unusable_rescale_skips_the_slice(make_series: MakeSeries, tag: str, value: object) -> None:
    folder = make_series()
    edit_files(_files(folder)[4:5], lambda ds: setattr(ds, tag, value))
    (series,) = _only_series(folder)
    volume = assemble_series(series)
    assert volume.hu.shape[0] == 11
    assert any("is not a usable rescale" in w for w in volume.warnings)
    assert np.allclose(volume.hu, 40.0)  # no slice converted with a guessed slope of 1


@pytest.mark.parametrize(
    ("change", "note"),
    [
        (lambda b: b[: len(b) // 2], r"pixel data unreadable \(ValueError: The number of bytes"),
        (lambda b: b + b, r"pixel data has shape \(2, 16, 16\), header says 16x16"),
    ],
    ids=["short", "long_by_a_frame"],
)
def test_pixel_data_length_mismatch_skips_the_slice(make_series: MakeSeries, change: Callable[[bytes], bytes],
                                                    note: str) -> None:
    folder = make_series()
    edit_files(_files(folder)[3:4], lambda ds: setattr(ds, "PixelData", change(ds.PixelData)))
    (series,) = _only_series(folder)
    volume = assemble_series(series)
    assert volume.hu.shape[0] == 11
    assert any(re.search(note, w) for w in volume.warnings), volume.warnings


def test_absurd_frame_count_is_refused_before_decoding(make_series: MakeSeries,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_series()
    bad = _files(folder)[3]
    ds = pydicom.dcmread(bad)
    ds.compress(RLELossless)
    ds.NumberOfFrames = 2**31 - 1  # decoding would allocate 1 TiB (MemoryError before the fix)
    ds.save_as(bad)
    decoded: list[str] = []
    original = pydicom.Dataset.pixel_array

    def spy(self: pydicom.Dataset) -> np.ndarray:
        decoded.append(str(self.SOPInstanceUID))
        return original.fget(self)  # type: ignore[attr-defined]

    monkeypatch.setattr(pydicom.Dataset, "pixel_array", property(spy))
    (series,) = _only_series(folder)
    volume = assemble_series(series)
    assert volume.hu.shape[0] == 11
    assert str(ds.SOPInstanceUID) not in decoded and len(decoded) == 11
    assert any("NumberOfFrames 2147483647 is outside 1..10000; refusing to decode" in w for w in volume.warnings)


def test_pixel_budget_counts_every_factor() -> None:
    ds = pydicom.Dataset()
    ds.Rows = ds.Columns = 4096
    ds.NumberOfFrames = 10000
    ds.SamplesPerPixel, ds.BitsAllocated = 1, 16
    assert _pixel_budget_problem(ds) == (
        f"decoded pixel data would take {4096 * 4096 * 10000 * 2} bytes, more than {MAX_FILE_PIXEL_BYTES}"
    )
    ds.NumberOfFrames = 1
    assert _pixel_budget_problem(ds) is None


def test_padding_value_with_a_wrong_vr_skips_the_slice(make_series: MakeSeries) -> None:
    folder = make_series()
    edit_files(_files(folder)[2:3], lambda ds: ds.add_new(0x00280120, "LO", "none"))
    (series,) = _only_series(folder)
    volume = assemble_series(series)  # ValueError from int('none') before the fix
    assert volume.hu.shape[0] == 11
    assert any("cannot be converted to HU" in w for w in volume.warnings)


@pytest.mark.parametrize(("vr", "value"), [("LO", "many"), ("US", [16, 16])], ids=["text", "multivalued"])
def test_rows_with_a_wrong_vr_does_not_crash(make_series: MakeSeries, vr: str, value: object) -> None:
    folder = make_series()

    def change(ds: pydicom.Dataset) -> None:
        del ds.Rows
        ds.add_new(0x00280010, vr, value)

    edit_files(_files(folder)[2:3], change)
    main, odd = _only_series(folder)  # ValueError / TypeError from int() before the fix
    assert (len(main.slices), odd.slices[0].rows) == (11, 0)
    with pytest.raises(DicomInputError, match=r"matrix 0x16 is outside 1\.\.4096"):
        assemble_series(odd)


def test_mixed_frame_of_reference_splits_the_series(make_series: MakeSeries) -> None:
    folder = make_series()
    frame = generate_uid()
    edit_files(_files(folder)[:4], lambda ds: setattr(ds, "FrameOfReferenceUID", frame))
    main, other = _only_series(folder)
    assert (len(main.slices), len(other.slices)) == (8, 4)
    assert "FrameOfReferenceUID changes" in main.split_reason


def test_one_series_uid_under_two_studies_gets_two_keys(make_series: MakeSeries) -> None:
    folder = make_series()
    edit_files(_files(folder)[:1], lambda ds: setattr(ds, "StudyInstanceUID", generate_uid()))
    parts = _only_series(folder)
    assert len({p.key for p in parts}) == 2 == len(parts)
    assert all("also appears under another StudyInstanceUID" in p.split_reason for p in parts)
    with scan_study(folder) as scan:
        assert scan.selected is not None and len(scan.selected.series.slices) == 11


@pytest.mark.parametrize("same_position", [True, False])
def test_one_sop_instance_uid_with_different_pixels_is_refused(make_series: MakeSeries, same_position: bool) -> None:
    folder = make_series()
    files = _files(folder)
    a, b = pydicom.dcmread(files[5]), pydicom.dcmread(files[5] if same_position else files[6])
    b.SOPInstanceUID = b.file_meta.MediaStorageSOPInstanceUID = a.SOPInstanceUID
    b.PixelData = (np.frombuffer(b.PixelData, dtype=np.int16) + 50).astype(np.int16).tobytes()
    b.save_as(folder / "other" if same_position else files[6])
    (series,) = _only_series(folder)
    with pytest.raises(DicomInputError, match=rf"SOPInstanceUID {a.SOPInstanceUID} is used by 2 files with different"):
        assemble_series(series)


def test_identical_copy_is_still_kept_once(make_series: MakeSeries) -> None:
    folder = make_series()
    (folder / "copy").write_bytes(_files(folder)[5].read_bytes())
    (series,) = _only_series(folder)
    volume = assemble_series(series)
    assert volume.hu.shape[0] == 12 and any("is a copy of" in w for w in volume.warnings)


def test_files_repeating_one_position_do_not_count_as_slices(make_series: MakeSeries) -> None:
    folder = make_series()
    edit_files(_files(folder), lambda ds: setattr(ds, "ImagePositionPatient", [0.0, 0.0, 0.0]))
    with scan_study(folder) as scan:
        assert scan.selected is None  # 12 files, but one position: enough_slices fails
        assert scan.series[0].attributes["n_slices"] == 1


def test_symlink_loop_is_walked_once(make_series: MakeSeries) -> None:
    folder = make_series()
    os.symlink(folder, folder / "loop", target_is_directory=True)
    files = list(iter_files(folder, follow_symlinks=True))
    assert len(files) == 12
    with scan_study(folder, discovery=DiscoveryConfig(follow_symlinks=True)) as scan:
        assert scan.n_examined == 12


def test_corrupt_value_fails_while_reading_the_header(make_series: MakeSeries) -> None:
    folder = make_series()
    path = _files(folder)[0]
    raw = bytearray(path.read_bytes())
    at = raw.find(b"\x20\x00\x52\x00UI")  # FrameOfReferenceUID: give it an unknown VR
    raw[at + 4 : at + 6] = b"\x55\x13"
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"^NotImplementedError: .*Unknown Value Representation") as info:
        read_header(path)  # before the fix the header read fine and access crashed later
    assert "\n" not in str(info.value)


def test_describe_error_keeps_one_line() -> None:
    exc = ValueError("first line\nTraceback (most recent call last):\n  more")
    assert describe_error(exc) == "ValueError: first line"
    assert describe_error(RuntimeError("x" * 500)).endswith("...")


def test_seg_is_written_when_slice_thickness_is_nan(make_series: MakeSeries) -> None:
    folder = make_series()
    edit_files(_files(folder), lambda ds: setattr(ds, "SliceThickness", "NaN"))
    (series,) = _only_series(folder)
    volume = assemble_series(series)
    mask = np.zeros(volume.hu.shape, dtype=bool)
    mask[5, 4:8, 4:8] = True
    seg = build_seg(mask, volume, algorithm_name="test", algorithm_version="1")  # OutputError before the fix
    measures = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert float(measures.SliceThickness) == pytest.approx(5.0)
    assert str(volume.first.SliceThickness).lower() == "nan"  # the source header is left as it was


def _rle_middle(folder: Path, change: Callable[[pydicom.Dataset], object]) -> None:
    path = _files(folder)[6]
    ds = pydicom.dcmread(path)
    ds.compress(RLELossless)
    change(ds)
    ds.save_as(path)


def test_fewer_rle_fragments_than_frames_skips_the_slice(make_series: MakeSeries) -> None:
    folder = make_series()
    _rle_middle(folder, lambda ds: setattr(ds, "NumberOfFrames", 2))
    (series,) = _only_series(folder)
    volume = assemble_series(series)  # StopIteration escaped the decoder before the fix
    assert volume.hu.shape[0] == 11
    assert any("pixel data unreadable (StopIteration" in w for w in volume.warnings), volume.warnings


def test_rust_decoder_panic_is_a_clear_error(make_series: MakeSeries) -> None:
    folder = make_series()
    _rle_middle(folder, lambda ds: setattr(ds, "Columns", 15))  # pylibjpeg-rle indexes out of bounds
    odd = next(s for s in _only_series(folder) if s.slices[0].columns == 15)
    # pyo3's PanicException derives from BaseException: it went through every `except Exception`
    with pytest.raises(DicomInputError, match=r"no slice's pixel data could be decoded .*PanicException"):
        assemble_series(odd)
