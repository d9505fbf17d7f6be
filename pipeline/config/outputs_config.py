"""The ``outputs:`` section of ``config.yaml``: what ``ichpipe run`` writes."""

from __future__ import annotations

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
    nifti_mask:
        ``mask.nii.gz``: the mask for research tools (viewing only).
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
    nifti_mask: bool = False
    record_in_store: bool = True
    deidentify: bool = False
