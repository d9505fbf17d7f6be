"""DICOM input speed: ichpipe's discovery + assembly against SimpleITK's series reader.

Run with ``make bench`` (or ``pytest bench/bench_dicom_io.py --benchmark-only``).
Both read the same 32 files into a 3D array; ichpipe also scans headers,
selects the series, computes geometry along the normal and converts to HU.
"""

from __future__ import annotations

from pathlib import Path

from ichpipe.dicom_io import assemble_series, discover, scan_study
from ichpipe.extras import import_extra

sitk = import_extra("SimpleITK", purpose="The DICOM input benchmark (ichpipe against SimpleITK)")


def _ichpipe_read(folder: Path) -> tuple[int, ...]:
    with scan_study(folder) as scan:
        volume = assemble_series(scan.require_selected().series)
    return volume.hu.shape


def _sitk_read(folder: Path) -> tuple[int, ...]:
    reader = sitk.ImageSeriesReader()
    names = reader.GetGDCMSeriesFileNames(str(folder))
    reader.SetFileNames(names)
    image = reader.Execute()
    return sitk.GetArrayViewFromImage(image).shape


def test_ichpipe_discover_and_assemble_32x512(benchmark, series_32: Path) -> None:
    shape = benchmark.pedantic(_ichpipe_read, args=(series_32,), rounds=7, warmup_rounds=1)
    assert shape == (32, 512, 512)


def test_simpleitk_series_reader_32x512(benchmark, series_32: Path) -> None:
    shape = benchmark.pedantic(_sitk_read, args=(series_32,), rounds=7, warmup_rounds=1)
    assert shape == (32, 512, 512)


def test_header_scan_1000_files(benchmark, folder_1000: Path) -> None:
    result = benchmark.pedantic(discover, args=(folder_1000,), rounds=3, warmup_rounds=1)
    assert len(result.headers) == 1000
