"""Writing generated cases: NIfTI images, DICOM + SEG truths, and the atomic move into place."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from ichpipe import __version__
from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.dicom_io.geometry import VolumeGeometry
from ichpipe.dicom_io.seg import write_seg
from ichpipe.errors import DicomInputError, OutputError
from ichpipe.pipeline.datasets.dicom_seg import read_dicom_series
from ichpipe.pipeline.datasets.manifest import ManifestEntry
from ichpipe.pipeline.measure.nifti_masks import LPS_FROM_RAS
from ichpipe.pipeline.synthetic.recipes import F32, BoolArray

__all__ = ["WrittenCase", "finish_case", "write_dicom_with_seg", "write_nifti_image"]


def write_nifti_image(path: Path, hu: F32, geometry: VolumeGeometry) -> Path:
    """Write ``hu`` (slices, rows, columns) as an int16 NIfTI on ``geometry``, atomically.

    The affine is the one :func:`ichpipe.pipeline.measure.nifti_masks.write_nifti_mask` writes
    for an evenly spaced, untilted series, so image and mask share it.

    Raises
    ------
    ValueError
        If the shape does not match or the series is tilted or unevenly spaced.
    OutputError
        If the file cannot be written.
    """
    if hu.shape != (geometry.n_slices, geometry.rows, geometry.columns):
        raise ValueError(f"Argument 'hu' has shape {hu.shape}; the geometry is {geometry.n_slices} slices.")
    if abs(geometry.gantry_tilt_deg) > 0.01 or not geometry.uniform_spacing:
        raise ValueError("Argument 'geometry' is tilted or unevenly spaced; write such a study as DICOM.")
    affine = LPS_FROM_RAS @ geometry.affine_lps()
    data = np.clip(np.rint(hu), -32768, 32767).astype(np.int16).transpose(2, 1, 0)
    img = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    img.header.set_xyzt_units("mm")
    tmp_dir = Path(tempfile.mkdtemp(prefix=".nifti-", dir=path.parent))
    try:
        tmp = tmp_dir / path.name
        nib.save(img, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"Cannot write {path}: {exc.strerror or exc}.") from exc
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return path


def write_dicom_with_seg(case_dir: Path, mask: BoolArray) -> CTVolume:
    """Read back the series written to ``case_dir/DICOM`` and write ``truth_seg.dcm`` of ``mask`` on it.

    Raises
    ------
    DicomInputError
        If the series does not read back with the mask's shape.
    """
    volume = read_dicom_series(case_dir / "DICOM")
    if volume.hu.shape != mask.shape:
        raise DicomInputError(f"{case_dir.name}: the written series reads back as {volume.hu.shape}, not {mask.shape}.")
    write_seg(
        mask, volume, case_dir / "truth_seg.dcm",
        algorithm_name="ichpipe train data (synthetic ground truth)", algorithm_version=__version__,
        series_description="Synthetic ground truth (ichpipe train data)",
        content_description="Synthetic ground-truth hematoma mask; research use only",
    )
    return volume


@dataclass
class WrittenCase:
    """A case written by a generator: its manifest row and its record in ``dataset.json``."""

    entry: ManifestEntry
    record: dict[str, Any] = field(default_factory=dict)


def finish_case(tmp: Path, final: Path) -> None:
    """Move the case built in ``tmp`` to ``final`` (replacing it), with the user's umask applied."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp made it private
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
