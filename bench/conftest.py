"""Fixtures for the benchmarks: synthetic CT series written once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from ichpipe.extras import import_extra

# the `benchmark` fixture; without it every benchmark would fail with "fixture not found"
import_extra("pytest_benchmark", purpose="make bench")


def write_series(folder: Path, *, n_slices: int, size: int = 512, spacing: float = 5.0, seed: int = 0) -> Path:
    """Write ``n_slices`` CT Image Storage files (random-named) of ``size`` x ``size`` int16."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    study, series, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
    for i in rng.permutation(n_slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.FrameOfReferenceUID = frame_of_reference
        ds.Modality, ds.PatientID, ds.SeriesNumber, ds.InstanceNumber = "CT", "BENCH", 2, int(i) + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [-125.0, -125.0, float(i) * spacing]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [0.49, 0.49]
        ds.SliceThickness = spacing
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = -1024.0, 1.0
        ds.PixelData = rng.integers(0, 2000, size=(size, size), dtype=np.int16).tobytes()
        ds.save_as(folder / f"{rng.integers(1 << 40):010x}", enforce_file_format=True)
    return folder


@pytest.fixture(scope="session")
def series_32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 32-slice 512x512 axial series."""
    return write_series(tmp_path_factory.mktemp("series32"), n_slices=32)


@pytest.fixture(scope="session")
def folder_1000(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 1,000 CT files (four 250-slice 512x512 series)."""
    root = tmp_path_factory.mktemp("files1000")
    for k in range(4):
        write_series(root / f"s{k}", n_slices=250, seed=k)
    return root
