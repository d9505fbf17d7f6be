"""The ground-truth mask as DICOM SEG, through ``ichpipe.dicom_io.seg`` (highdicom).

:func:`dicom_seg_writer` is a :class:`~ichpipe.pipeline.synthetic.phantom.truth.SegWriter`:
it assembles the phantom's main series with the project's reader, checks
that the reader's slices are the mask's slices (same positions, same order),
and writes one BINARY segment "Hemorrhage" (every hematoma label merged)
referencing those slices. The SEG's UIDs derive from the main series UID,
so they are the same on every run. The volume in ``truth.json`` never comes
from here: it is the phantom's own count.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.uid import generate_uid

from ichpipe import __version__
from ichpipe.errors import OutputError

__all__ = ["dicom_seg_writer"]


def dicom_seg_writer(source_files: Sequence[Path], labels: npt.NDArray[np.uint8], out_path: Path) -> Path:
    """Write the hematoma labels as a DICOM SEG on the main series (see the module docstring).

    Parameters
    ----------
    source_files:
        The main series' files, one per mask slice, in mask order.
    labels:
        Label mask (slices, rows, columns); every non-zero label is hematoma.
    out_path:
        The SEG file to write.

    Raises
    ------
    OutputError
        If the reader does not assemble the main series onto the mask's
        slices, or highdicom cannot build the SEG.
    """
    from ichpipe.dicom_io.assemble import assemble_series
    from ichpipe.dicom_io.seg import write_seg
    from ichpipe.dicom_io.study import scan_study

    if not source_files:
        raise OutputError("The phantom wrote no main-series file to reference from a DICOM SEG.")
    first = pydicom.dcmread(source_files[0], stop_before_pixels=True)
    series_uid = str(first.SeriesInstanceUID)
    expected = np.array(
        [[float(v) for v in pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient] for p in source_files]
    )
    with scan_study(Path(source_files[0]).parent) as scan:
        matches = [s for s in scan.series if s.series.series_uid == series_uid]
        if len(matches) != 1:
            raise OutputError(f"The reader found {len(matches)} series with UID {series_uid}; expected one.")
        volume = assemble_series(matches[0].series)
        positions = np.asarray(volume.geometry.positions, dtype=np.float64)
        if positions.shape != expected.shape or not np.allclose(positions, expected, atol=1e-4):
            raise OutputError(
                f"The reader assembled series {series_uid} on other slices than the phantom's mask;"
                " the DICOM SEG cannot be aligned."
            )
        return write_seg(
            labels > 0,
            volume,
            out_path,
            algorithm_name="ichpipe phantom ground truth",
            algorithm_version=__version__,
            series_number=900,
            series_description="Phantom ground-truth hematoma",
            series_instance_uid=generate_uid(entropy_srcs=["ichpipe-phantom-seg", series_uid, "series"]),
            sop_instance_uid=generate_uid(entropy_srcs=["ichpipe-phantom-seg", series_uid, "sop"]),
            manufacturer="ichpipe phantom",
            content_label="GROUND_TRUTH",
            content_description="Synthetic ground truth (ichpipe phantom), not a patient",
        )
