"""``ichpipe run --study CASE.nii.gz``: the main job on a NIfTI CT (research cohorts: BLAST-CT, TotalSegmentator users).

The geometry comes from the NIfTI header alone
(:func:`ichpipe.pipeline.measure.nifti_masks.header_geometry`): one slice step,
so a gantry-tilted or unevenly spaced acquisition converted to NIfTI is
measured only as exactly as the converter placed its slices (the report's
warnings say so, as ``ichpipe measure`` does for a NIfTI mask). Voxel values
are taken as HU after the header's scaling (``scl_slope``/``scl_inter``).

There are no DICOM instances to reference, so no SEG, key image Secondary
Capture or SR is written: the mask goes to ``mask.nii.gz`` (on the input's
grid and affine), beside ``key_image.png`` and ``report.json``, in
``OUT/nifti/<file name>-<first 12 hex digits of the file's SHA-256>/``. The
report says ``input.format: nifti`` and which outputs were skipped and why.

A NIfTI file has no patient, accession or time. Without a
:class:`CaseIdentity` (``ichpipe run``) the identity fields are null and
nothing is recorded in the results store. ``ichpipe batch --list`` gives each
case its row's ``case_id``, ``patient_id``, ``accession_number`` and
``acquisition_datetime``: they go into the report, and a case with a patient
ID is recorded in the store like a DICOM series, under a series UID derived
from the patient and case IDs (:meth:`CaseIdentity.series_uid`), so that its
timeline and expansion verdicts work as for DICOM studies.
"""

from __future__ import annotations

import logging
import re
import uuid
import zlib
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

from ichpipe.dicom_io.assemble import MAX_MATRIX, CTVolume
from ichpipe.dicom_io.geometry import GeometryConfig
from ichpipe.errors import DicomInputError, OutputError
from ichpipe.models.hashing import file_sha256
from ichpipe.pipeline.config import Config
from ichpipe.pipeline.jobs.study_outputs import OutputRun, key_image, remove_outputs, write_json, write_png
from ichpipe.pipeline.measure.nifti_masks import LPS_FROM_RAS, header_geometry, is_nifti_path, write_nifti_mask
from ichpipe.pipeline.outputs.report import StudyIdentity

if TYPE_CHECKING:
    from ichpipe.pipeline.jobs.run_study import StudyAnalysis

__all__ = [
    "NIFTI_CAVEAT",
    "SKIPPED_FOR_NIFTI",
    "CaseIdentity",
    "is_nifti_input",
    "load_nifti_ct",
    "normalise_acquisition_time",
    "write_nifti_outputs",
]

log = logging.getLogger(__name__)

#: The warning every NIfTI-input report carries.
NIFTI_CAVEAT = (
    "input is NIfTI: the geometry comes from its header, which holds one slice step, so a gantry-tilted or"
    " unevenly spaced acquisition is measured only as exactly as the converter placed its slices; run on the"
    " DICOM study for the exact geometry"
)
#: Outputs ``run`` does not write for a NIfTI input, and why.
SKIPPED_FOR_NIFTI = {
    "seg": "a DICOM SEG must reference DICOM source instances; the input is NIfTI (mask.nii.gz written instead)",
    "secondary_capture": "a DICOM key image belongs to a DICOM study; the input is NIfTI (key_image.png written)",
    "sr": "a DICOM SR must reference DICOM evidence; the input is NIfTI (report.json holds the measurements)",
}
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_NIFTI_NAMESPACE = uuid.UUID("5c0b8f5e-2f7d-4a39-9d55-1c3e8f0a6b21")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def normalise_acquisition_time(text: str) -> str:
    """An ISO 8601 date (``2024-03-01``) or date and time (``2024-03-01T08:30``, ``2024-03-01 08:30:15``) as ISO text.

    A date alone stays a date (its time of day is unknown, never midnight).

    Raises
    ------
    ValueError
        If ``text`` is neither.

    Examples
    --------
    >>> normalise_acquisition_time("2024-03-01 08:30")
    '2024-03-01T08:30:00'
    >>> normalise_acquisition_time("2024-03-01")
    '2024-03-01'
    """
    value = text.strip()
    try:
        if _DATE_ONLY.match(value):
            return date.fromisoformat(value).isoformat()
        if "T" not in value and " " not in value:
            raise ValueError(value)
        return datetime.fromisoformat(value).isoformat()
    except ValueError:
        raise ValueError(f"Argument 'text' must be an ISO 8601 date or date and time (2024-03-01T08:30);"
                         f" got {text!r}.") from None


@dataclass(frozen=True, kw_only=True)
class CaseIdentity:
    """Who and when a NIfTI case is, since the file cannot say (a row of ``ichpipe batch --list``).

    Parameters
    ----------
    case_id:
        The cohort's name for the case.
    patient_id:
        The patient; a case with one is recorded in the results store.
    accession_number:
        The scan's accession number (serial scans are linked by it).
    acquisition_datetime:
        ISO 8601 date and time, or a date alone (see :func:`normalise_acquisition_time`).

    Raises
    ------
    ValueError
        If ``acquisition_datetime`` is not ISO 8601.
    """

    case_id: str | None = None
    patient_id: str | None = None
    accession_number: str | None = None
    acquisition_datetime: str | None = None

    def __post_init__(self) -> None:
        if self.acquisition_datetime is not None:
            object.__setattr__(self, "acquisition_datetime", normalise_acquisition_time(self.acquisition_datetime))

    def series_uid(self, path: Path) -> str | None:
        """The UID that stands for the case in the store: ``2.25.<uuid5>`` of the patient and case ID (or path).

        ``None`` without a patient ID. Processing the case again (even from a
        moved or re-converted file, when it has a case ID) replaces its row.
        """
        if not self.patient_id:
            return None
        key = self.case_id or str(Path(path).resolve())
        return f"2.25.{uuid.uuid5(_NIFTI_NAMESPACE, f'ichpipe-nifti{chr(31)}{self.patient_id}{chr(31)}{key}').int}"

    def report_identity(self, path: Path) -> StudyIdentity:
        """The report's identity fields for the case read from ``path``."""
        return StudyIdentity(patient_id=self.patient_id, series_instance_uid=self.series_uid(path),
                             accession_number=self.accession_number, acquisition_datetime=self.acquisition_datetime)


def is_nifti_input(path: Path) -> bool:
    """Whether ``path`` is a NIfTI file (``.nii``, ``.nii.gz``) rather than a study."""
    return Path(path).is_file() and is_nifti_path(Path(path))


def load_nifti_ct(path: Path, *, config: GeometryConfig | None = None) -> CTVolume:
    """Read a NIfTI CT as a :class:`CTVolume` (no slice headers; UIDs empty), geometry from its header.

    Raises
    ------
    DicomInputError
        If the file is unreadable, not 3D, of implausible size, holds non-finite
        values, or its affine does not describe a slice stack.
    """
    path = Path(path)
    try:
        img = nib.load(path)
        if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
            raise DicomInputError(f"{path.name} is a {type(img).__name__}, not a NIfTI-1 or NIfTI-2 image.")
        shape = tuple(int(v) for v in img.shape)
        while len(shape) > 3 and shape[-1] == 1:
            shape = shape[:-1]
        if len(shape) != 3:
            raise DicomInputError(f"{path.name} has shape {img.shape}; a 3D CT (i, j, k) is needed.")
        if not (0 < shape[0] <= MAX_MATRIX and 0 < shape[1] <= MAX_MATRIX and 0 < shape[2] <= 4096):
            raise DicomInputError(f"{path.name} has an implausible shape {img.shape}; refusing to read it.")
        data = np.asarray(img.get_fdata(dtype=np.float32)).reshape(shape)
    except (ImageFileError, OSError, EOFError, ValueError, zlib.error) as exc:
        raise DicomInputError(f"{path.name} could not be read as NIfTI ({type(exc).__name__}: {exc}).") from exc
    if not np.all(np.isfinite(data)):
        raise DicomInputError(f"{path.name} holds NaN or infinite values; a CT in HU is needed.")
    header = img.header
    oriented = int(header["sform_code"]) > 0 or int(header["qform_code"]) > 0
    zooms = tuple(float(z) for z in header.get_zooms()[:3])
    affine = LPS_FROM_RAS @ np.asarray(img.affine, dtype=np.float64) if oriented else np.diag([*zooms, 1.0])
    geometry, flip, notes = header_geometry(affine, (shape[0], shape[1], shape[2]), oriented=oriented,
                                            zooms=(zooms[0], zooms[1], zooms[2]), name=path.name, config=config)
    if flip:
        data = data[:, :, ::-1]
    low, high = float(data.min()), float(data.max())
    if low >= -100.0 and high <= 255.0:
        notes.append(f"voxel values {low:g}..{high:g} do not look like HU (no air near -1000); if the image is"
                     " windowed or normalised, volumes and the segmentation are unreliable")
    hu = np.ascontiguousarray(data.transpose(2, 1, 0), dtype=np.float32)
    return CTVolume(hu=hu, geometry=geometry, slices=(), study_uid="", series_uid="",
                    warnings=(NIFTI_CAVEAT, *geometry.warnings, *notes))


def _output_dir(out_root: Path, path: Path, digest: str) -> Path:
    stem = path.name[: -len(".nii.gz")] if path.name.lower().endswith(".nii.gz") else path.stem
    safe = _SAFE.sub("_", stem).strip("._") or "case"
    return out_root / "nifti" / f"{safe[:48]}-{digest[:12]}"


def write_nifti_outputs(analysis: StudyAnalysis, out_root: Path, config: Config) -> tuple[dict[str, Any], Path]:
    """Write the mask, key image and report of a NIfTI CT's analysis. Returns the report and its folder.

    Parameters
    ----------
    analysis:
        What :func:`~ichpipe.pipeline.jobs.run_study.analyse_study` computed on the NIfTI file.
    out_root:
        Output root; the files go to ``out_root/nifti/<name>-<digest>/``.
    config:
        The configuration (``outputs``; the report is recorded in the results
        store when ``outputs.record_in_store`` and the case has a patient ID,
        given by ``batch --list`` through ``analysis.case``).

    Raises
    ------
    ichpipe.errors.IchpipeError
        An output that cannot be written (the files of the incomplete set are removed).
    """
    from ichpipe.pipeline.jobs.run_study import deidentified, study_report

    path = Path(analysis.source["path"])
    volume, mask, measurement, timer = analysis.volume, analysis.mask, analysis.measurement, analysis.timer
    out_dir = _output_dir(out_root, path, file_sha256(path))
    run = OutputRun(segmenter=analysis.segmenter, when=datetime.now(), flags=tuple(analysis.quality.flags))
    outputs: dict[str, str] = {}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot create output folder {out_dir}: {exc.strerror or exc}.") from exc
    try:
        with timer.stage("outputs"):
            outputs["nifti_mask"] = str(write_nifti_mask(out_dir / "mask.nii.gz", mask, volume.geometry))
            if config.outputs.key_image_png:
                rgb, _ = key_image(volume, mask, measurement, config, run)
                outputs["key_image_png"] = str(write_png(out_dir / "key_image.png", rgb))
        if config.outputs.report:
            outputs["report"] = str(out_dir / "report.json")
        skipped = {k: v for k, v in SKIPPED_FOR_NIFTI.items()
                   if getattr(config.outputs, "secondary_capture" if k == "secondary_capture" else k)}
        report = study_report(analysis, config, outputs=outputs, skipped=skipped,
                              record=config.outputs.record_in_store)
        report = deidentified(report, config)
        if config.outputs.report:
            write_json(out_dir / "report.json", report)
    except OutputError:
        remove_outputs(outputs)
        raise
    return report, out_dir
