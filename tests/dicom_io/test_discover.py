from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
from pydicom.fileset import FileSet

from ichpipe.dicom_io import scan_study
from ichpipe.dicom_io.discover import DiscoveryConfig, discover
from ichpipe.errors import DicomInputError


def test_non_dicom_files_skipped_and_extensions_ignored(make_series) -> None:
    folder = make_series(offsets=list(range(0, 60, 5)))
    (folder / "notes.txt").write_text("not an image")
    (folder / "fake.dcm").write_bytes(b"\0" * 200)
    result = discover(folder)
    assert len(result.headers) == 12
    assert {s.path.name for s in result.skipped} == {"notes.txt", "fake.dcm"}


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(DicomInputError, match="No readable DICOM image found"):
        with scan_study(tmp_path):
            pass


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DicomInputError, match="does not exist"):
        with scan_study(tmp_path / "nope"):
            pass


def test_zip_of_a_study(make_series, tmp_path: Path) -> None:
    folder = make_series(offsets=list(range(0, 60, 5)))
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in folder.iterdir():
            zf.write(f, f"../../evil/{f.name}")  # hostile names never reach the disk
    with scan_study(archive) as scan:
        assert scan.require_selected().geometry.n_slices == 12
    assert not (tmp_path.parent / "evil").exists()


def test_zip_bomb_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.dcm", b"\0" * (50 * 1024 * 1024))
    with pytest.raises(DicomInputError, match="zip bomb"):
        with scan_study(archive, discovery=DiscoveryConfig(max_zip_ratio=100.0)):
            pass


def test_dicomdir_lists_the_files(make_series, tmp_path: Path) -> None:
    folder = make_series(offsets=list(range(0, 60, 5)))
    fs = FileSet()
    for f in sorted(folder.iterdir()):
        fs.add(str(f))
    media = tmp_path / "media"
    fs.write(media)
    with scan_study(media / "DICOMDIR") as scan:
        assert scan.require_selected().geometry.n_slices == 12


def test_symlink_outside_root_is_not_followed(make_series, tmp_path: Path) -> None:
    folder = make_series(offsets=list(range(0, 60, 5)), name="inside")
    outside = make_series(offsets=list(range(0, 60, 5)), name="outside")
    os.symlink(outside, folder / "link")
    assert len(discover(folder).headers) == 12
    assert len(discover(folder, config=DiscoveryConfig(follow_symlinks=True)).headers) == 12


def test_too_many_files_refused(make_series) -> None:
    folder = make_series(offsets=list(range(0, 60, 5)))
    with pytest.raises(DicomInputError, match="more than 5 files"):
        discover(folder, config=DiscoveryConfig(max_files=5))
