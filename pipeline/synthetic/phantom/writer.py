"""DICOM files of a phantom study: CT Image Storage series, distractors, transfer syntaxes.

Every file is a complete Part 10 file (preamble, file meta) written with
pydicom. Pixel values are stored as one of several rescale variants seen on
real scanners (:data:`RESCALE_VARIANTS`); a reader that applies
``HU = stored * RescaleSlope + RescaleIntercept`` recovers the phantom's HU to
within the variant's quantum (1 HU, or 0.5 HU for ``scaled``). File names are
hashes of the SOPInstanceUID: they do not sort in slice order.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    SecondaryCaptureImageStorage,
)
from pydicom.valuerep import format_number_as_ds

from ichpipe import __version__
from ichpipe.pipeline.synthetic.phantom.identity import StudyIdentity
from ichpipe.pipeline.synthetic.phantom.render import HU_MAX, HU_MIN
from ichpipe.pipeline.synthetic.phantom.spec import RescaleName, TransferSyntaxName

__all__ = [
    "MANUFACTURER",
    "RESCALE_VARIANTS",
    "TRANSFER_SYNTAX_UIDS",
    "EncodedPixels",
    "ImageRecord",
    "SeriesInfo",
    "encode_hu",
    "write_image",
]

MANUFACTURER = "ichpipe phantom"

TRANSFER_SYNTAX_UIDS: dict[str, UID] = {
    "explicit": ExplicitVRLittleEndian,
    "implicit": ImplicitVRLittleEndian,
    "rle": RLELossless,
    "jpeg2000": JPEG2000Lossless,
    "jpegls": JPEGLSLossless,
}

_ENCODING_PLUGIN = {"rle": "", "jpeg2000": "pylibjpeg", "jpegls": "pyjpegls"}


@dataclass(frozen=True)
class _RescaleVariant:
    signed: bool
    bits_stored: int
    slope: float
    intercepts: tuple[float, ...]
    padding: int
    quantum_hu: float


#: How each ``rescale`` option stores HU. ``per_slice`` cycles its intercepts over the slices.
RESCALE_VARIANTS: dict[str, _RescaleVariant] = {
    "standard": _RescaleVariant(True, 16, 1.0, (-1024.0,), -2000, 1.0),
    "unsigned": _RescaleVariant(False, 12, 1.0, (-1024.0,), 0, 1.0),
    "zero_intercept": _RescaleVariant(True, 16, 1.0, (0.0,), -1500, 1.0),
    "scaled": _RescaleVariant(True, 16, 0.5, (-1024.0,), -2000, 0.5),
    "per_slice": _RescaleVariant(True, 16, 1.0, (-1024.0, -1000.0, 0.0, -2048.0), -3000, 1.0),
}


@dataclass(frozen=True)
class EncodedPixels:
    """Stored values of one image and the tags that turn them back into HU."""

    stored: npt.NDArray[np.integer[Any]]
    slope: float
    intercept: float
    bits_stored: int
    signed: bool
    padding_value: int | None


def encode_hu(
    hu: npt.NDArray[np.float32],
    *,
    rescale: RescaleName,
    slice_index: int = 0,
    padding: npt.NDArray[np.bool_] | None = None,
) -> EncodedPixels:
    """Quantise HU to stored values for one rescale variant.

    Parameters
    ----------
    hu:
        HU image (clipped to [-1024, 3071] first).
    rescale:
        A key of :data:`RESCALE_VARIANTS`.
    slice_index:
        Picks the intercept of the ``per_slice`` variant.
    padding:
        Pixels to write as PixelPaddingValue (outside the scan field).

    Raises
    ------
    ValueError
        If ``rescale`` is unknown.
    """
    if rescale not in RESCALE_VARIANTS:
        raise ValueError(f"Argument 'rescale' must be one of {', '.join(RESCALE_VARIANTS)}; got {rescale!r}.")
    v = RESCALE_VARIANTS[rescale]
    intercept = v.intercepts[slice_index % len(v.intercepts)]
    clipped = np.clip(np.asarray(hu, dtype=np.float64), HU_MIN, HU_MAX)
    stored = np.rint((clipped - intercept) / v.slope)
    dtype = np.int16 if v.signed else np.uint16
    if padding is not None:
        stored = np.where(padding, float(v.padding), stored)
    low, high = (-(2 ** (v.bits_stored - 1)), 2 ** (v.bits_stored - 1) - 1) if v.signed else (0, 2**v.bits_stored - 1)
    if stored.min() < low or stored.max() > high:
        raise ValueError(f"Argument 'rescale' {rescale!r} cannot hold these HU in {v.bits_stored} bits.")
    return EncodedPixels(
        stored=stored.astype(dtype),
        slope=v.slope,
        intercept=intercept,
        bits_stored=v.bits_stored,
        signed=v.signed,
        padding_value=v.padding if padding is not None else None,
    )


@dataclass(frozen=True)
class SeriesInfo:
    """Series-level values shared by every image of one series."""

    role: str
    series_instance_uid: UID
    series_number: int
    description: str
    image_type: tuple[str, ...]
    sop_class_uid: UID
    kernel: str | None
    window: tuple[float, float]
    series_datetime: datetime
    acquisition_datetime: datetime


@dataclass(frozen=True)
class ImageRecord:
    """What was written for one image."""

    role: str
    path: str
    sop_instance_uid: str
    instance_number: int
    planned_index: int | None
    position: tuple[float, float, float] | None


def _ds(value: float) -> str:
    return format_number_as_ds(float(value))


def _da(when: datetime) -> str:
    return when.strftime("%Y%m%d")


def _tm(when: datetime) -> str:
    return when.strftime("%H%M%S")


def _base_dataset(identity: StudyIdentity, series: SeriesInfo, sop_uid: UID, instance_number: int) -> Dataset:
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = series.sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"ICHPIPE_{__version__}"[:16]
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = list(series.image_type)
    ds.SOPClassUID = series.sop_class_uid
    ds.SOPInstanceUID = sop_uid
    study = identity.study_datetime
    content = series.acquisition_datetime + timedelta(seconds=20)
    ds.StudyDate = _da(study)
    ds.SeriesDate = _da(series.series_datetime)
    ds.AcquisitionDate = _da(series.acquisition_datetime)
    ds.ContentDate = _da(content)
    ds.AcquisitionDateTime = series.acquisition_datetime.strftime("%Y%m%d%H%M%S.%f")
    ds.StudyTime = _tm(study)
    ds.SeriesTime = _tm(series.series_datetime)
    ds.AcquisitionTime = _tm(series.acquisition_datetime)
    ds.ContentTime = _tm(content)
    ds.AccessionNumber = identity.accession_number
    ds.Modality = "CT"
    ds.Manufacturer = MANUFACTURER
    ds.InstitutionName = "ichpipe synthetic data"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "HEAD WITHOUT CONTRAST (PHANTOM)"
    ds.SeriesDescription = series.description
    ds.ManufacturerModelName = "synthetic head CT"
    ds.PatientName = identity.patient_name
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = identity.patient_birth_date.strftime("%Y%m%d")
    ds.PatientSex = identity.patient_sex
    ds.BodyPartExamined = "HEAD"
    ds.SoftwareVersions = f"ichpipe {__version__}"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = identity.study_instance_uid
    ds.SeriesInstanceUID = series.series_instance_uid
    ds.StudyID = identity.study_id
    ds.SeriesNumber = series.series_number
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = instance_number
    return ds


def _set_ct_image(
    ds: Dataset,
    *,
    identity: StudyIdentity,
    series: SeriesInfo,
    position: Sequence[float],
    orientation: Sequence[float],
    pixel_spacing: tuple[float, float],
    slice_thickness: float,
    slice_location: float,
    tilt_deg: float,
    spacing_between_slices: float | None,
    frame_of_reference: bool = True,
) -> None:
    ds.SliceThickness = _ds(slice_thickness)
    ds.KVP = "120"
    if spacing_between_slices is not None:
        ds.SpacingBetweenSlices = _ds(spacing_between_slices)
    ds.DataCollectionDiameter = "500"
    ds.ReconstructionDiameter = _ds(pixel_spacing[1] * int(ds.get("Columns", 512)))
    ds.GantryDetectorTilt = _ds(tilt_deg)
    ds.TableHeight = "140"
    ds.RotationDirection = "CW"
    ds.ExposureTime = "1000"
    ds.XRayTubeCurrent = "250"
    if series.kernel is not None:
        ds.ConvolutionKernel = series.kernel
    if frame_of_reference:
        ds.FrameOfReferenceUID = identity.frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
    ds.ImagePositionPatient = [_ds(v) for v in position]
    ds.ImageOrientationPatient = [_ds(v) for v in orientation]
    ds.SliceLocation = _ds(slice_location)
    ds.PixelSpacing = [_ds(pixel_spacing[0]), _ds(pixel_spacing[1])]


def _set_pixels(ds: Dataset, pixels: EncodedPixels, *, window: tuple[float, float],
                photometric: str = "MONOCHROME2") -> None:
    """Pixel module. MONOCHROME1 stores the same values as MONOCHROME2: it only tells the
    display to invert after the Modality and VOI LUTs (PS3.3 C.7.6.3.1.2); HU are unchanged."""
    rows, columns = pixels.stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = pixels.bits_stored
    ds.HighBit = pixels.bits_stored - 1
    ds.PixelRepresentation = 1 if pixels.signed else 0
    if pixels.padding_value is not None:
        ds.add_new(0x00280120, "SS" if pixels.signed else "US", pixels.padding_value)
    ds.WindowCenter = _ds(window[0])
    ds.WindowWidth = _ds(window[1])
    ds.RescaleIntercept = _ds(pixels.intercept)
    ds.RescaleSlope = _ds(pixels.slope)
    ds.RescaleType = "HU"
    ds.PixelData = pixels.stored.tobytes()
    ds["PixelData"].VR = "OW"


def _save(ds: Dataset, path: Path, transfer_syntax: TransferSyntaxName, arr: npt.NDArray[np.generic]) -> None:
    """Encode in ``transfer_syntax`` and write ``path`` atomically (temporary name, then rename)."""
    uid = TRANSFER_SYNTAX_UIDS[transfer_syntax]
    if uid.is_compressed:
        ds.compress(uid, arr, encoding_plugin=_ENCODING_PLUGIN[transfer_syntax], generate_instance_uid=False)
    else:
        ds.file_meta.TransferSyntaxUID = uid
    tmp = path.with_name(f".{path.name}.tmp")
    ds.save_as(tmp, enforce_file_format=True)
    os.replace(tmp, path)


def file_name(sop_uid: str) -> str:
    """A file name that does not sort in slice order: 16 hex digits of the UID's hash."""
    return hashlib.sha1(sop_uid.encode("ascii")).hexdigest()[:16].upper()


def write_image(
    *,
    directory: Path,
    root: Path,
    identity: StudyIdentity,
    series: SeriesInfo,
    pixels: EncodedPixels,
    instance_number: int,
    sop_uid: UID,
    transfer_syntax: TransferSyntaxName,
    planned_index: int | None = None,
    position: Sequence[float] | None = None,
    orientation: Sequence[float] | None = None,
    pixel_spacing: tuple[float, float] | None = None,
    slice_thickness: float | None = None,
    slice_location: float | None = None,
    tilt_deg: float = 0.0,
    spacing_between_slices: float | None = None,
    extra: Dataset | None = None,
    photometric: str = "MONOCHROME2",
    frame_of_reference: bool = True,
) -> ImageRecord:
    """Write one image file and return what was written.

    A CT image gets the geometry tags (``position``, ``orientation``,
    ``pixel_spacing``, ``slice_thickness``, ``slice_location`` required);
    a secondary capture leaves them out. ``extra`` elements are copied in last.
    ``photometric`` is the PhotometricInterpretation (the stored values do not
    change with it); ``frame_of_reference=False`` leaves FrameOfReferenceUID out.
    """
    ds = _base_dataset(identity, series, sop_uid, instance_number)
    rows, columns = pixels.stored.shape
    ds.Rows, ds.Columns = rows, columns
    if series.sop_class_uid == CTImageStorage:
        if position is None or orientation is None or pixel_spacing is None or slice_thickness is None:
            raise ValueError("Arguments 'position', 'orientation', 'pixel_spacing' and 'slice_thickness' are"
                             " needed for a CT image.")
        _set_ct_image(
            ds,
            identity=identity,
            series=series,
            position=position,
            orientation=orientation,
            pixel_spacing=pixel_spacing,
            slice_thickness=slice_thickness,
            slice_location=slice_location if slice_location is not None else 0.0,
            tilt_deg=tilt_deg,
            spacing_between_slices=spacing_between_slices,
            frame_of_reference=frame_of_reference,
        )
    _set_pixels(ds, pixels, window=series.window, photometric=photometric)
    if "LOCALIZER" in series.image_type:
        # RescaleType HU is for reconstructed images, not a projection scout.
        del ds.RescaleType
    if series.sop_class_uid == SecondaryCaptureImageStorage:
        ds.ConversionType = "WSD"
        # Type 2C without a plane position: axial tiles, rows to the patient's left, columns posterior.
        ds.PatientOrientation = ["L", "P"]
    if extra is not None:
        for element in extra:
            ds[element.tag] = element
    path = directory / file_name(sop_uid)
    _save(ds, path, transfer_syntax, pixels.stored)
    return ImageRecord(
        role=series.role,
        path=path.relative_to(root).as_posix(),
        sop_instance_uid=str(sop_uid),
        instance_number=instance_number,
        planned_index=planned_index,
        position=None if position is None else (float(position[0]), float(position[1]), float(position[2])),
    )
