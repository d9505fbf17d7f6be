"""A derived CT series on a regular grid (one file per slice), in the study of its source.

3D Slicer's DICOM SEG reader (dcmqi) refuses a SEG whose frames do not lie on
a regular, untilted grid, so a gantry-tilted series' SEG cannot be opened
there. :func:`write_derived_ct` writes the series resampled onto such a grid
as a new CT series (ImageType DERIVED\\SECONDARY\\AXIAL, same patient, study
and frame of reference as the source, DerivationDescription saying how it was
made, SourceImageSequence naming the source slices each slice was
interpolated from), so that a SEG can be made on it. Pixel values are
stored as signed 16-bit HU (slope 1, intercept 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

from ichpipe import __version__
from ichpipe.dicom_io._atomic import set_series_datetime, write_dataset_atomic
from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.errors import OutputError

__all__ = ["CT_IMAGE_STORAGE", "write_derived_ct"]

#: CT Image Storage SOP Class UID.
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"

_COPIED = ("SpecificCharacterSet", "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
           "PatientAge", "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
           "AccessionNumber", "StudyDescription", "BodyPartExamined", "PatientPosition", "KVP",
           "PatientIdentityRemoved", "DeidentificationMethod")
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "ReferringPhysicianName", "StudyID", "AccessionNumber", "KVP", "AcquisitionNumber",
          "PositionReferenceIndicator")


def _ds(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


def _template(volume: CTVolume, *, series_uid: str, series_number: int, series_description: str,
              frame_of_reference_uid: str, when: datetime) -> Dataset:
    first = volume.first
    ds = Dataset()
    for keyword in _COPIED:
        if keyword in first and first[keyword].value not in (None, ""):
            setattr(ds, keyword, first[keyword].value)
    for keyword in _TYPE2:
        if keyword not in ds:
            setattr(ds, keyword, None)
    ds.Modality = "CT"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = series_description[:64]
    set_series_datetime(ds, when)
    ds.ContentDate = ds.SeriesDate
    ds.ContentTime = ds.SeriesTime
    ds.FrameOfReferenceUID = frame_of_reference_uid
    ds.Manufacturer = "ichpipe"
    ds.ManufacturerModelName = "ichpipe"
    ds.SoftwareVersions = __version__
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter = "40"
    ds.WindowWidth = "80"
    ds.GantryDetectorTilt = "0"
    ds.BurnedInAnnotation = "NO"
    ds.ImageComments = "Resampled by ichpipe for viewing; not for diagnosis."
    return ds


def write_derived_ct(
    hu: npt.NDArray[np.floating],
    positions: npt.NDArray[np.float64],
    *,
    source: CTVolume,
    folder: Path,
    row_direction: Sequence[float],
    column_direction: Sequence[float],
    pixel_spacing_mm: tuple[float, float],
    slice_spacing_mm: float,
    source_slices: Sequence[Sequence[int]],
    derivation_description: str,
    series_number: int,
    series_description: str,
    when: datetime | None = None,
) -> list[Path]:
    """Write ``hu`` (slices, rows, columns) as a derived CT series, one file per slice, into ``folder``.

    Parameters
    ----------
    hu:
        HU values; rounded and clipped to signed 16 bits.
    positions:
        ImagePositionPatient of each slice (LPS), shape (slices, 3).
    source:
        The source series (patient, study, frame of reference; a source
        without FrameOfReferenceUID gives the derived series a new one).
    folder:
        Created if missing; files are ``000.dcm``, ``001.dcm``, ... (each written atomically).
    row_direction, column_direction, pixel_spacing_mm, slice_spacing_mm:
        The grid.
    source_slices:
        For each slice, the indices (into ``source.slices``) it was interpolated from.
    derivation_description:
        How the series was made.
    series_number, series_description:
        Identity of the new series.
    when:
        SeriesDate/Time; default now.

    Returns
    -------
    list of pathlib.Path
        The files, in slice order.

    Raises
    ------
    ValueError
        If ``positions`` or ``source_slices`` do not have one entry per slice.
    OutputError
        If a file cannot be written.
    """
    n = hu.shape[0]
    if positions.shape != (n, 3) or len(source_slices) != n:
        raise ValueError(f"Arguments 'positions' and 'source_slices' must have one entry per slice ({n}).")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot create {folder}: {exc.strerror or exc}.") from exc
    moment = when or datetime.now()
    frame_of_reference = str(source.first.get("FrameOfReferenceUID", "") or "") or generate_uid()
    template = _template(source, series_uid=generate_uid(), series_number=series_number,
                         series_description=series_description, frame_of_reference_uid=frame_of_reference,
                         when=moment)
    orientation = [_ds(float(v)) for v in (*row_direction, *column_direction)]
    pixels = np.clip(np.rint(hu), -32768, 32767).astype("<i2")
    written: list[Path] = []
    for k in range(n):
        ds = template.copy()
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = orientation
        ds.ImagePositionPatient = [_ds(float(v)) for v in positions[k]]
        ds.PixelSpacing = [_ds(pixel_spacing_mm[0]), _ds(pixel_spacing_mm[1])]
        ds.SliceThickness = _ds(slice_spacing_mm)
        ds.Rows, ds.Columns = int(hu.shape[1]), int(hu.shape[2])
        ds.DerivationDescription = derivation_description[:1024]
        refs = []
        for index in source_slices[k]:
            ref = Dataset()
            ref.ReferencedSOPClassUID = source.slices[index].dataset.SOPClassUID
            ref.ReferencedSOPInstanceUID = source.slices[index].sop_instance_uid
            refs.append(ref)
        ds.SourceImageSequence = refs
        ds.PixelData = pixels[k].tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(CT_IMAGE_STORAGE)
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.file_meta = meta
        written.append(write_dataset_atomic(ds, folder / f"{k:03d}.dcm", what="derived CT slice"))
    return written
