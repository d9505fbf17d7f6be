"""DICOM series of generated training studies: new CT series, and real series with new pixels.

Generated studies are synthetic: the patient is fictitious (``PatientName``
``SYNTHETIC^TRAINING``) and the series says so (``DerivationDescription``).
A real series copied with a lesion inserted keeps the source's headers
(geometry, rescale, padding, vendor) and gets new UIDs, so it can never be
mistaken for the original. Every file is written atomically; file names
are slice numbers, never free text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian

from ichpipe import __version__
from ichpipe.atomic import atomic_write
from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.errors import DicomInputError

__all__ = ["SyntheticIdentity", "copy_series_with_pixels", "write_ct_series"]

F32 = npt.NDArray[np.float32]

_DERIVATION = "Synthetic training study written by ichpipe train data; not a patient image"


@dataclass(frozen=True)
class SyntheticIdentity:
    """Identity of a generated study, with UIDs derived from ``key`` (same key, same UIDs).

    Attributes
    ----------
    key:
        Unique text of the study (generator seed and case).
    patient_id:
        Fictitious patient ID.
    acquired:
        Study and acquisition date and time.
    """

    key: str
    patient_id: str
    acquired: datetime = datetime(2026, 1, 1, 8, 0, 0)

    def uid(self, *parts: object) -> UID:
        """A deterministic UID for the study, series, frame of reference or an instance.

        ``2.25.`` followed by 128 bits of a SHA-256 of the key and ``parts``
        (the UUID-derived root of PS3.5 B.2), so the same study always gets
        the same UIDs.
        """
        text = "\0".join(["ichpipe-train-data", self.key, *map(str, parts)])
        return UID(f"2.25.{int(hashlib.sha256(text.encode('utf-8')).hexdigest()[:32], 16)}")

    @property
    def accession_number(self) -> str:
        """A 16-character accession number derived from the key."""
        return "SY" + hashlib.sha256(self.key.encode("utf-8")).hexdigest()[:14].upper()


def _save(ds: FileDataset, path: Path) -> None:
    atomic_write(path, lambda fh: ds.save_as(fh, enforce_file_format=True), what="DICOM image")


def _identity_tags(ds: Dataset, identity: SyntheticIdentity, *, description: str) -> None:
    ds.PatientName = "SYNTHETIC^TRAINING"
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = identity.uid("study")
    ds.SeriesInstanceUID = identity.uid("series")
    ds.FrameOfReferenceUID = identity.uid("frame")
    ds.StudyID = "1"
    ds.AccessionNumber = identity.accession_number
    date, time = identity.acquired.strftime("%Y%m%d"), identity.acquired.strftime("%H%M%S")
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = time
    ds.SeriesDescription = description[:64]
    ds.DerivationDescription = _DERIVATION
    ds.BurnedInAnnotation = "NO"


def write_ct_series(
    folder: Path,
    hu: F32,
    *,
    positions: npt.NDArray[np.float64],
    orientation: Sequence[float],
    pixel_spacing_mm: tuple[float, float],
    thickness_mm: Sequence[float],
    identity: SyntheticIdentity,
    description: str = "Synthetic head CT (ichpipe train data)",
    gantry_tilt_deg: float = 0.0,
) -> list[Path]:
    """Write ``hu`` (slices, rows, columns) as a CT Image Storage series, one file per slice.

    Pixels are stored as int16 with RescaleIntercept -1024 (HU clipped to
    [-1024, 31743]).

    Raises
    ------
    ValueError
        If the positions or thicknesses do not match the slices.
    OutputError
        If a file cannot be written.
    """
    n, rows, columns = hu.shape
    if positions.shape != (n, 3) or len(thickness_mm) != n:
        raise ValueError(
            f"Arguments 'positions' and 'thickness_mm' must have one entry per slice ({n}); got"
            f" {positions.shape} and {len(thickness_mm)}."
        )
    folder.mkdir(parents=True, exist_ok=True)
    stored = np.clip(np.rint(hu + 1024.0), 0, 32767).astype(np.int16)
    normal = np.cross(np.asarray(orientation[:3], dtype=np.float64), np.asarray(orientation[3:], dtype=np.float64))
    paths: list[Path] = []
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = identity.uid("image", k)
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"{k + 1:04d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        _identity_tags(ds, identity, description=description)
        ds.Modality = "CT"
        ds.Manufacturer = "ichpipe synthetic"
        ds.SoftwareVersions = __version__
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ConvolutionKernel = "STANDARD"
        ds.BodyPartExamined = "HEAD"
        ds.SeriesNumber = 2
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [f"{v:.6f}" for v in positions[k]]
        ds.ImageOrientationPatient = [f"{v:.9f}" for v in orientation]
        ds.PixelSpacing = [f"{pixel_spacing_mm[0]:.9g}", f"{pixel_spacing_mm[1]:.9g}"]
        ds.SliceThickness = f"{float(thickness_mm[k]):.6g}"
        ds.SliceLocation = f"{float(positions[k] @ normal):.6f}"
        ds.GantryDetectorTilt = f"{gantry_tilt_deg:.4g}"
        ds.KVP = "120"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = rows, columns
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter, ds.WindowWidth = "40", "80"
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        _save(ds, path)
        paths.append(path)
    return paths


def copy_series_with_pixels(
    volume: CTVolume,
    hu: F32,
    folder: Path,
    *,
    identity: SyntheticIdentity,
    description: str,
) -> list[Path]:
    """Write a copy of ``volume``'s series whose pixels are ``hu``, under new UIDs.

    Every source file is read again in full; its pixels become ``hu`` of that
    slice stored with the file's own rescale, padding pixels (those equal to
    PixelPaddingValue) stay as they were, and the transfer syntax becomes
    explicit VR little endian.

    Raises
    ------
    DicomInputError
        If a source file cannot be read, is multi-frame, or ``hu`` has another shape.
    OutputError
        If a file cannot be written.
    """
    if hu.shape != volume.hu.shape:
        raise DicomInputError(f"Argument 'hu' has shape {hu.shape}; the series is {volume.hu.shape}.")
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for k, header in enumerate(volume.slices):
        if header.frame is not None:
            raise DicomInputError(f"{header.path.name} is a multi-frame file; only single-frame series are copied.")
        try:
            ds = pydicom.dcmread(header.path)
            original = ds.pixel_array
        except (OSError, ValueError, AttributeError, pydicom.errors.InvalidDicomError) as exc:
            raise DicomInputError(f"{header.path} cannot be read again to copy it ({exc}).") from exc
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
        signed = int(ds.get("PixelRepresentation", 0)) == 1
        bits = int(ds.get("BitsStored", 16))
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        values = np.clip(np.rint((hu[k] - intercept) / slope), low, high)
        padding = ds.get("PixelPaddingValue")
        if padding is not None:
            values = np.where(original == int(padding), original, values)
        ds.PixelData = values.astype(np.int16 if signed else np.uint16).tobytes()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        sop = identity.uid("image", k)
        ds.SOPInstanceUID = sop
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        _identity_tags(ds, identity, description=description)
        for keyword in ("OtherPatientIDs", "InstitutionName", "ReferringPhysicianName", "OperatorsName"):
            if keyword in ds:
                delattr(ds, keyword)
        path = folder / f"{k + 1:04d}.dcm"
        _save(ds, path)
        paths.append(path)
    return paths
