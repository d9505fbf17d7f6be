"""Labelled CT datasets for training and evaluation: a manifest and three readers.

* :mod:`~ichpipe.pipeline.datasets.manifest`: the CSV of cases with a patient-level split;
* :mod:`~ichpipe.pipeline.datasets.dicom_seg`: DICOM study + DICOM SEG (or NIfTI mask);
* :mod:`~ichpipe.pipeline.datasets.nifti_pairs`: NIfTI image + NIfTI mask (PhysioNet CT-ICH, HemSeg);
* :mod:`~ichpipe.pipeline.datasets.png_slices`: the seed's 8-bit PNG slices + binary PNG labels.

:func:`load_case` reads any manifest row into a :class:`~ichpipe.pipeline.datasets.case.CaseVolume`.

Used by both training and evaluation (hence a package of its own). May import
:mod:`ichpipe.dicom_io` and the mask readers of :mod:`ichpipe.pipeline.measure`
and :mod:`ichpipe.pipeline.jobs.measure_mask`; never training code.
"""

from __future__ import annotations

from pathlib import Path

from ichpipe.pipeline.datasets.case import CaseVolume
from ichpipe.pipeline.datasets.dicom_seg import read_dicom_case
from ichpipe.pipeline.datasets.manifest import (
    Manifest,
    ManifestEntry,
    assign_splits,
    check_patient_split,
    read_manifest,
    write_manifest,
)
from ichpipe.pipeline.datasets.nifti_pairs import pair_nifti_folders, read_nifti_case
from ichpipe.pipeline.datasets.png_slices import read_png_case

__all__ = [
    "CaseVolume",
    "Manifest",
    "ManifestEntry",
    "assign_splits",
    "check_patient_split",
    "load_case",
    "pair_nifti_folders",
    "read_dicom_case",
    "read_manifest",
    "read_nifti_case",
    "read_png_case",
    "write_manifest",
]


def load_case(entry: ManifestEntry) -> CaseVolume:
    """Read the case a manifest row describes, with the reader of its format.

    Raises
    ------
    ichpipe.errors.DicomInputError
        If its files cannot be read or do not fit together.
    ValueError
        If the row's format is unknown or a NIfTI case has no mask.
    """
    if entry.format == "dicom":
        return read_dicom_case(
            entry.image, entry.mask, case_id=entry.case_id, patient_id=entry.patient_id, source=entry.source
        )
    if entry.format == "nifti":
        return read_nifti_case(
            entry.image, entry.mask, case_id=entry.case_id, patient_id=entry.patient_id, source=entry.source
        )
    if entry.format == "png":
        return read_png_case(
            entry.image,
            entry.mask,
            case_id=entry.case_id,
            patient_id=entry.patient_id,
            pixel_spacing_mm=entry.pixel_spacing_mm,
            slice_thickness_mm=entry.slice_thickness_mm,
            source=entry.source,
            ignore=Path(entry.extra["ignore"]) if entry.extra.get("ignore") else None,
            slice_weights=Path(entry.extra["slice_weights"]) if entry.extra.get("slice_weights") else None,
            neighbours=Path(entry.extra["neighbours"]) if entry.extra.get("neighbours") else None,
        )
    raise ValueError(f"Argument 'entry' has format {entry.format!r}; known formats: dicom, nifti, png.")
