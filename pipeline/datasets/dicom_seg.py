"""Cases stored as DICOM: a study folder and its label as DICOM SEG (or a NIfTI mask on the series).

The study is scanned and its axial series selected and assembled exactly as
``ichpipe run`` does (:mod:`ichpipe.dicom_io`), so the HU, the slice order along the
normal and the geometry a volume is measured with are the pipeline's own.
The label is put on that series' grid: a DICOM SEG through
:func:`ichpipe.dicom_io.seg.read_seg_mask` (frames matched by referenced SOP
instance), a NIfTI mask through :func:`ichpipe.pipeline.measure.nifti_masks.align_nifti_mask`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ichpipe.dicom_io.assemble import CTVolume, assemble_series
from ichpipe.dicom_io.discover import DiscoveryConfig
from ichpipe.dicom_io.geometry import GeometryConfig
from ichpipe.dicom_io.seg import read_seg_mask
from ichpipe.dicom_io.selection import SelectionConfig
from ichpipe.dicom_io.study import scan_study
from ichpipe.errors import DicomInputError
from ichpipe.pipeline.datasets.case import CaseVolume
from ichpipe.pipeline.jobs.measure_mask import mask_format
from ichpipe.pipeline.measure.nifti_masks import align_nifti_mask

__all__ = ["read_dicom_case", "read_dicom_series"]


def read_dicom_series(
    study: Path,
    *,
    discovery: DiscoveryConfig | None = None,
    selection: SelectionConfig | None = None,
    geometry: GeometryConfig | None = None,
) -> CTVolume:
    """Scan ``study``, select its axial head-CT series and assemble it.

    Raises
    ------
    DicomInputError
        If the folder holds no readable DICOM image or no series passes selection.
    """
    with scan_study(Path(study), discovery=discovery, selection=selection, geometry=geometry) as scan:
        chosen = scan.require_selected()
        return assemble_series(chosen.series, config=geometry)


def read_dicom_case(
    study: Path,
    mask: Path | None,
    *,
    case_id: str,
    patient_id: str,
    source: str = "",
    discovery: DiscoveryConfig | None = None,
    selection: SelectionConfig | None = None,
    geometry: GeometryConfig | None = None,
) -> CaseVolume:
    """Read a DICOM study and its label.

    Parameters
    ----------
    study:
        Study folder, DICOMDIR or zip.
    mask:
        DICOM SEG of the selected series, or a NIfTI mask aligned to it;
        ``None`` for an unlabelled case (an all-False mask).
    case_id, patient_id, source:
        From the manifest.
    discovery, selection, geometry:
        The pipeline's settings (defaults when ``None``).

    Raises
    ------
    DicomInputError
        If the study or the mask cannot be read, or the mask does not fit the series.
    """
    volume = read_dicom_series(study, discovery=discovery, selection=selection, geometry=geometry)
    if mask is None:
        labels = np.zeros(volume.hu.shape, dtype=bool)
    elif mask_format(Path(mask)) == "dicom-seg":
        labels = np.asarray(read_seg_mask(mask, volume), dtype=bool)
    else:
        labels = align_nifti_mask(Path(mask), volume.geometry).mask
    if labels.shape != volume.hu.shape:
        raise DicomInputError(
            f"Case {case_id}: mask {Path(mask).name if mask else ''} has shape {labels.shape}; the series is"
            f" {volume.hu.shape}."
        )
    return CaseVolume(
        case_id=case_id,
        patient_id=patient_id,
        image=volume.hu,
        mask=np.ascontiguousarray(labels, dtype=bool),
        geometry=volume.geometry,
        intensity="hu",
        source=source,
        ct=volume,
        labelled=mask is not None,
    )
