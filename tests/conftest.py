"""Shared fixtures: the external data folder and a tiny CT series writer.

It also refuses imports of the old top-level names ``pipeline``, ``models`` and
``dicom_io``: the packages are ``ichpipe.pipeline``, ``ichpipe.models`` and
``ichpipe.dicom_io``, and ``python -m pytest`` puts the repository root on
``sys.path``, where the folders of those names would otherwise still import.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
OLD_TOP_LEVEL_NAMES = ("pipeline", "models", "dicom_io")


class _OldNamesBlocker(importlib.abc.MetaPathFinder):
    """Make ``import pipeline`` (and ``models``, ``dicom_io``) fail instead of importing the folder."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] in OLD_TOP_LEVEL_NAMES:
            raise ModuleNotFoundError(
                f"'{fullname}' is the old top-level name; import ichpipe.{fullname} instead.", name=fullname
            )
        return None


sys.meta_path.insert(0, _OldNamesBlocker())


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present (external test data)")
    return SHARED_DATA


def write_ct_slice(
    path: Path,
    *,
    pixels: np.ndarray,
    position: Sequence[float],
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
    spacing: Sequence[float] = (0.5, 0.5),
    study_uid: str,
    series_uid: str,
    instance: int = 1,
    intercept: float = -1024.0,
    slope: float = 1.0,
    extra: dict[str, object] | None = None,
) -> FileDataset:
    """Write one minimal but complete CT Image Storage file (stored = (HU - b) / m)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = study_uid[:60] + ".1"
    ds.Modality = "CT"
    ds.PatientID = "TEST"
    ds.PatientName = "Test^Patient"
    ds.StudyDate = "20260101"
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = "ACC1"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SeriesNumber = 2
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [float(v) for v in spacing]
    ds.SliceThickness = 5.0
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = intercept
    ds.RescaleSlope = slope
    for k, v in (extra or {}).items():
        setattr(ds, k, v)
    stored = np.round((pixels.astype(np.float64) - intercept) / slope).astype(np.int16)
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return ds


@pytest.fixture
def make_series(tmp_path: Path) -> Callable[..., Path]:
    """Write a small axial series; returns its folder.

    Keyword arguments: ``offsets`` (positions along z, mm), ``tilt_deg``,
    ``size``, ``hu`` (a callable slice_index -> 2D HU array), ``name``.
    """

    def make(
        *,
        offsets: Sequence[float] = tuple(range(0, 60, 5)),
        tilt_deg: float = 0.0,
        size: int = 16,
        hu: Callable[[int], np.ndarray] | None = None,
        name: str = "series",
        extra: dict[str, object] | None = None,
    ) -> Path:
        folder = tmp_path / name
        folder.mkdir(parents=True, exist_ok=True)
        study, series = generate_uid(), generate_uid()
        t = np.radians(tilt_deg)
        orientation = (1, 0, 0, 0, np.cos(t), -np.sin(t))
        rng = np.random.default_rng(0)
        names = rng.permutation(len(offsets))
        for i, z in enumerate(offsets):
            # spacing along the normal is z; with tilt the table moves z / cos(t)
            position = (0.0, 0.0, float(z) / np.cos(t))
            pixels = hu(i) if hu else np.full((size, size), 40.0)
            write_ct_slice(
                folder / f"x{names[i]:04d}",
                pixels=pixels,
                position=position,
                orientation=orientation,
                study_uid=study,
                series_uid=series,
                instance=i + 1,
                extra={"GantryDetectorTilt": tilt_deg, **(extra or {})},
            )
        return folder

    return make


def read_first(folder: Path) -> pydicom.Dataset:
    """Read the first file of a folder (helper for tests)."""
    return pydicom.dcmread(sorted(folder.iterdir())[0])
