"""The ``outputs:`` section of ``config.yaml``: what ``ichpipe run`` writes."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["OutputsConfig"]


@dataclass(frozen=True)
class OutputsConfig:
    """What ``run`` writes under ``OUT/<StudyInstanceUID>/<SeriesInstanceUID>/``.

    Parameters
    ----------
    directory:
        Default output folder (``--out`` overrides it); never inside the study.
    report:
        ``report.json``: the study report.
    seg:
        ``seg.dcm``: DICOM SEG of the hematoma referencing the source slices.
    seg_keep_empty_frames:
        One SEG frame per source slice, empty ones included (viewers align it).
    key_image_png:
        ``key_image.png``: largest hematoma slice, contour, volume and ABC/2.
    secondary_capture:
        ``key_image_sc.dcm``: the key image as DICOM Secondary Capture for PACS.
    sr:
        ``sr.dcm``: DICOM SR (TID 1500 Measurement Report) with the volume,
        ABC/2 and its diameters, per-type volumes, quality flags, method,
        checkpoint digest and the change since the baseline, referencing the
        SEG's segment and the source series.
    nifti_mask:
        ``mask.nii.gz``: the mask for research tools (viewing only).
    tilt_eq:
        For a gantry-tilted or unevenly spaced series, also write the CT and
        the mask resampled onto an untilted regular grid
        (``ct_tilt_eq.nii.gz``, ``mask_tilt_eq.nii.gz``, like dcm2niix's
        ``_Tilt_Eq``) for viewers that need one; volumes are still measured
        on the native geometry.
    tilt_eq_dicom:
        With ``tilt_eq``, also write that grid as a derived CT series
        (``ct_tilt_eq/``) and a SEG on it (``seg_tilt_eq.dcm``), which 3D
        Slicer / dcmqi can load (they refuse a SEG on a tilted series).
    tilt_eq_spacing_mm:
        Slice spacing of the regular grid; ``None`` uses the series' smallest
        spacing along the normal.
    record_in_store:
        Record the measurement in the results store (serial-scan linking).
    deidentify:
        Write the report, SEG and key image without the patient's direct
        identifiers (``ichpipe run --deidentify``): DICOM PS3.15 Basic Profile
        subset with retained UIDs (see ``ichpipe.dicom_io.deidentify``); the report's
        patient_id, accession_number and acquisition_datetime become null.
        The results store still records the identified measurement.
    """

    directory: str = "ichpipe-out"
    report: bool = True
    seg: bool = True
    seg_keep_empty_frames: bool = True
    key_image_png: bool = True
    secondary_capture: bool = True
    sr: bool = True
    nifti_mask: bool = False
    tilt_eq: bool = False
    tilt_eq_dicom: bool = False
    tilt_eq_spacing_mm: float | None = None
    record_in_store: bool = True
    deidentify: bool = False

    def __post_init__(self) -> None:
        spacing = self.tilt_eq_spacing_mm
        if spacing is not None and not (math.isfinite(spacing) and 0.1 <= spacing <= 50):
            raise ValueError(f"Argument 'tilt_eq_spacing_mm' must be null or 0.1 to 50 mm; got {spacing!r}.")
