"""Write a DICOM dataset atomically: a temporary name in the target folder, then ``os.replace``.

A crash, a full disk or a read-only folder leaves either the complete file or
no file at all under the final name, never half of one. Failures of the file
system become :class:`~ichpipe.errors.OutputError`.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from pydicom import dcmwrite
from pydicom.dataset import Dataset
from pydicom.valuerep import DA, TM

from ichpipe.atomic import atomic_write

__all__ = ["set_series_datetime", "write_dataset_atomic"]

def write_dataset_atomic(dataset: Dataset, path: str | os.PathLike[str], *, what: str) -> Path:
    """Write ``dataset`` to ``path`` as a DICOM file (with preamble and file meta), atomically.

    Parameters
    ----------
    dataset:
        The dataset to write; it must carry ``file_meta`` (highdicom's do).
    path:
        Final file name; its folder must exist.
    what:
        What is written, for error messages (e.g. ``"DICOM SEG"``).

    Raises
    ------
    OutputError
        If the file cannot be written or renamed (missing or read-only folder,
        disk full, ...); no file is left under ``path`` or the temporary name.
    """
    return atomic_write(path, lambda fh: dcmwrite(fh, dataset, enforce_file_format=True), what=what)


def set_series_datetime(ds: Dataset, when: datetime | None = None) -> None:
    """Set SeriesDate and SeriesTime of a new output series (``when``, default now)."""
    moment = when or datetime.now()
    ds.SeriesDate = DA(moment.strftime("%Y%m%d"))
    ds.SeriesTime = TM(moment.strftime("%H%M%S"))
