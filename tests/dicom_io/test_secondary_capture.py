"""DICOM Secondary Capture key images (highdicom SCImage)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from ichpipe.dicom_io import CTVolume, assemble_series, build_secondary_capture, scan_study, write_secondary_capture
from ichpipe.dicom_io.secondary_capture import NOT_FOR_DIAGNOSIS
from ichpipe.errors import OutputError

SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"


def load(folder: Path) -> CTVolume:
    with scan_study(folder) as scan:
        return assemble_series(scan.require_selected().series)


def key_image(rows: int = 16, cols: int = 20) -> np.ndarray:
    """An RGB image whose three channels and both axes all differ (catches swaps and flips)."""
    r = np.arange(rows * cols, dtype=np.uint32).reshape(rows, cols)
    return np.stack([(r * 7) % 256, (r * 13 + 5) % 256, (r[::-1] * 3) % 256], axis=-1).astype(np.uint8)


def test_sc_reads_back_in_the_source_study(make_series, tmp_path: Path) -> None:
    folder = make_series(tilt_deg=18.5)
    vol = load(folder)
    image = key_image()
    out = write_secondary_capture(
        image, vol, tmp_path / "key.dcm", series_number=42, derivation_description="Slice 6 with hematoma outline"
    )
    ds = pydicom.dcmread(out)
    assert ds.SOPClassUID == SC_STORAGE
    assert ds.StudyInstanceUID == vol.study_uid
    assert ds.SeriesInstanceUID not in (vol.series_uid, "")
    assert ds.SeriesNumber == 42
    assert (ds.PatientID, str(ds.PatientName), ds.AccessionNumber) == ("TEST", "Test^Patient", "ACC1")
    assert ds.StudyDate == vol.first.StudyDate
    assert ds.PhotometricInterpretation == "RGB"
    assert (ds.Rows, ds.Columns, ds.SamplesPerPixel) == (16, 20, 3)
    np.testing.assert_array_equal(ds.pixel_array, image)
    assert ds.ImageComments == NOT_FOR_DIAGNOSIS
    assert ds.DerivationDescription.startswith("Slice 6 with hematoma outline. ")
    assert "not for diagnosis" in ds.DerivationDescription
    assert vol.series_uid in ds.DerivationDescription
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == vol.slices[0].sop_instance_uid
    assert list(ds.PatientOrientation) == ["L", "P"]
    assert ds.BurnedInAnnotation == "NO"


def test_sc_from_one_slice_header_references_it(make_series) -> None:
    vol = load(make_series())
    header = vol.slices[5].dataset
    sc = build_secondary_capture(key_image(), header, derived_from=[vol.slices[5].dataset, vol.slices[6].dataset])
    assert sc.StudyInstanceUID == header.StudyInstanceUID
    assert [item.ReferencedSOPInstanceUID for item in sc.SourceImageSequence] == [
        vol.slices[5].sop_instance_uid,
        vol.slices[6].sop_instance_uid,
    ]


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((16, 16), np.uint8), r"Argument 'image' must be an RGB array of shape \(rows, columns, 3\)"),
        (np.zeros((16, 16, 4), np.uint8), r"Argument 'image' must be an RGB array"),
        (np.zeros((16, 16, 3), np.float32), "Argument 'image' must have dtype uint8"),
    ],
    ids=["gray", "rgba", "float"],
)
def test_bad_image_is_a_value_error(make_series, tmp_path: Path, image: np.ndarray, message: str) -> None:
    vol = load(make_series())
    with pytest.raises(ValueError, match=message):
        write_secondary_capture(image, vol, tmp_path / "key.dcm")
    assert not list(tmp_path.glob("*key.dcm*"))


def test_bad_source_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="Argument 'source' must be a CTVolume or a pydicom Dataset"):
        build_secondary_capture(key_image(), "not a dataset")  # type: ignore[arg-type]


def test_failed_write_gives_output_error_and_no_file(make_series, tmp_path: Path, monkeypatch) -> None:
    vol = load(make_series())
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="Could not write the DICOM Secondary Capture to"):
        write_secondary_capture(key_image(), vol, blocker / "key.dcm")

    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def full(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OutputError, match="No space left on device"):
        write_secondary_capture(key_image(), vol, out_dir / "key.dcm")
    assert list(out_dir.iterdir()) == []


def test_dciodvfy_finds_no_error_in_sc(make_series, tmp_path: Path) -> None:
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not on PATH")
    vol = load(make_series(tilt_deg=18.5))
    out = write_secondary_capture(key_image(), vol, tmp_path / "key.dcm")
    run = subprocess.run([exe, str(out)], capture_output=True, text=True, timeout=60, check=False)
    lines = (run.stdout + run.stderr).splitlines()
    assert lines and lines[0].startswith("SCImage"), lines
    assert [line for line in lines if line.startswith("Error")] == [], "\n".join(lines)
