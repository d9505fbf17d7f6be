"""DICOM Segmentation (SEG) of the hematoma: write with highdicom, read back onto a volume.

:func:`build_seg` turns a binary mask aligned to a :class:`~ichpipe.dicom_io.assemble.CTVolume`
into a highdicom :class:`~highdicom.seg.Segmentation` (BINARY, one segment
"Hemorrhage", algorithm type AUTOMATIC) that references exactly the source
instances the volume was assembled from: a slice skipped as corrupt is not
referenced. Empty frames are kept by default so that viewers (OHIF, 3D
Slicer) find one frame per source slice. highdicom needs only the source
headers, not their pixel data, so the headers kept in the volume are passed
as they are.

:func:`write_seg` writes it atomically; :func:`read_seg_mask` reads a SEG
(ours or another tool's) back into a boolean mask aligned to a volume,
matching each frame to its source slice by the referenced SOP Instance UID,
or else by its position.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import numpy.typing as npt
import pydicom
import pydicom.valuerep
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from ichpipe import __version__
from ichpipe.dicom_io._atomic import write_dataset_atomic
from ichpipe.dicom_io._privacy import no_person_name_warnings
from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.dicom_io.deidentify import deidentified_copy
from ichpipe.errors import DicomInputError, OutputError

log = logging.getLogger(__name__)

__all__ = [
    "DISPLAY_ONLY",
    "HEMORRHAGE_CATEGORY",
    "HEMORRHAGE_TYPE",
    "SEGMENTATION_SOP_CLASS_UIDS",
    "build_seg",
    "checked_display_values",
    "read_seg_mask",
    "write_seg",
]

#: Segmented property category: SCT 49755003 "Morphologically abnormal structure".
HEMORRHAGE_CATEGORY: Code = Code("49755003", "SCT", "Morphologically Abnormal Structure")
#: Segmented property type: SCT 50960005 "Hemorrhage".
HEMORRHAGE_TYPE: Code = Code("50960005", "SCT", "Hemorrhage")
#: Anatomic region of the segment: SCT 12738006 "Brain".
_BRAIN: Code = Code("12738006", "SCT", "Brain")
#: Algorithm family default: DCM 123110 "Artificial Intelligence" (CID 7162).
_ARTIFICIAL_INTELLIGENCE: Code = Code("123110", "DCM", "Artificial Intelligence")

#: SOP Class UIDs read by :func:`read_seg_mask`: Segmentation and Label Map Segmentation Storage.
SEGMENTATION_SOP_CLASS_UIDS: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.66.4": "Segmentation Storage",
    "1.2.840.10008.5.1.4.1.1.66.7": "Label Map Segmentation Storage",
}
_LABELMAP_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.66.7"

# Patient and study attributes highdicom reads from the first source image
# with attribute access; all are Type 2 in the CT IOD, yet anonymised exports
# often drop them. Missing ones are added empty to a copy of the header.
_TYPE2_FROM_SOURCE = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)


def _check_mask(mask: npt.ArrayLike, volume: CTVolume) -> npt.NDArray[np.bool_]:
    arr = np.asarray(mask)
    if arr.shape != volume.hu.shape:
        raise ValueError(
            f"Argument 'mask' must have the volume's shape {volume.hu.shape} (slices, rows, columns);"
            f" got {arr.shape}."
        )
    if arr.dtype == np.bool_:
        return arr
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"Argument 'mask' must be boolean or integer with values 0 and 1; got dtype {arr.dtype}.")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 1):
        raise ValueError(
            f"Argument 'mask' must hold only 0 and 1; found values from {int(arr.min())} to {int(arr.max())}."
        )
    return arr.astype(bool)


def _positive(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return out if math.isfinite(out) and out > 0 else None


#: Attributes copied from the source only for display (who, when): an invalid value is left empty in our
#: objects with a warning, never a failed study (a malformed birth date once failed every retry).
DISPLAY_ONLY = {"PatientBirthDate": "DA", "PatientBirthTime": "TM", "StudyDate": "DA", "StudyTime": "TM",
                "PatientSex": "CS", "PatientAge": "AS"}


def _valid_display_value(keyword: str, value: Any) -> bool:
    text = str(value or "").strip()
    if not text:
        return True
    vr = DISPLAY_ONLY[keyword]
    try:
        if vr == "DA":
            return pydicom.valuerep.DA(text) is not None
        if vr == "TM":
            return pydicom.valuerep.TM(text) is not None
    except (ValueError, TypeError, OverflowError):
        return False
    if vr == "CS":
        return text in ("M", "F", "O")
    return len(text) == 4 and text[:3].isdigit() and text[3] in "DWMY"


def checked_display_values(ds: Dataset) -> Dataset:
    """``ds``, or a shallow copy of it whose invalid display-only values (:data:`DISPLAY_ONLY`) are empty.

    The source is never changed; each value left out is logged (by keyword, never by value).
    """
    bad = []
    for keyword in DISPLAY_ONLY:
        try:
            value = ds.get(keyword)
        except (ValueError, TypeError, OverflowError):
            value = "?invalid"
        if value is not None and not _valid_display_value(keyword, value):
            bad.append(keyword)
    if not bad:
        return ds
    out = Dataset()
    for elem in ds:
        out.add(elem)
    for keyword in bad:
        setattr(out, keyword, None)
        log.warning("%s of the source is not a valid value; left empty in the outputs", keyword)
    return out


def _header_for_highdicom(ds: Dataset, *, slice_thickness_mm: float | None = None) -> Dataset:
    """A shallow copy of ``ds`` with missing Type 2 patient/study attributes added empty.

    highdicom copies SliceThickness and SpacingBetweenSlices into the SEG and
    cannot encode NaN or infinity: an unusable SliceThickness is replaced by
    ``slice_thickness_mm`` (the spacing measured along the normal), an
    unusable SpacingBetweenSlices is left out. The volume's headers are left
    untouched: elements are shared, the top-level mapping is new, and
    replaced elements are new elements.
    """
    out = Dataset()
    for elem in checked_display_values(ds):
        out.add(elem)
    for keyword in _TYPE2_FROM_SOURCE:
        if keyword not in out:
            setattr(out, keyword, None)
    for keyword in ("SliceThickness", "SpacingBetweenSlices"):
        if keyword in out and out[keyword].value not in (None, "") and _positive(out[keyword].value) is None:
            del out[keyword]
            if keyword == "SliceThickness":
                setattr(out, keyword, round(slice_thickness_mm, 6) if slice_thickness_mm else None)
    return out


def _complete_deidentification(ds: Dataset) -> None:
    """Give an empty DeidentificationMethod a value where the standard requires one.

    Some de-identified sources say PatientIdentityRemoved YES with an empty
    DeidentificationMethod and no code sequence (Type 1C violated); highdicom
    copies that into the SEG. State plainly that the method is unknown.
    """
    if (
        str(ds.get("PatientIdentityRemoved", "") or "").upper() == "YES"
        and not ds.get("DeidentificationMethod")
        and not ds.get("DeidentificationMethodCodeSequence")
    ):
        ds.DeidentificationMethod = "Not recorded in the source images"


def _source_images(volume: CTVolume) -> tuple[list[Dataset], list[hd.PlanePositionSequence] | None]:
    """Source headers for highdicom, and explicit plane positions for a multi-frame source."""
    files = {s.sop_instance_uid for s in volume.slices}
    multiframe = [s for s in volume.slices if s.frame is not None]
    if not multiframe:
        first, *rest = (s.dataset for s in volume.slices)
        return [_header_for_highdicom(first, slice_thickness_mm=volume.geometry.slice_spacing_mm), *rest], None
    if len(multiframe) != len(volume.slices) or len(files) != 1:
        raise OutputError(
            f"Series {volume.series_uid}: the volume is assembled from {len(files)} file(s)"
            f" ({len(multiframe)} of {len(volume.slices)} slices are frames of multi-frame files);"
            " a DICOM SEG written by highdicom can reference either single-frame images or exactly"
            " one multi-frame image. Export the series as one enhanced CT file or as classic slices."
        )
    # One enhanced CT file: its frames may be sorted or partly skipped in the
    # volume, so pass each plane's position; highdicom matches them to the
    # source frames and references those.
    positions = [
        hd.PlanePositionSequence(
            coordinate_system=hd.CoordinateSystemNames.PATIENT,
            image_position=[float(v) for v in s.position or ()],
        )
        for s in volume.slices
    ]
    return [_header_for_highdicom(volume.slices[0].dataset)], positions


def build_seg(
    mask: npt.ArrayLike,
    volume: CTVolume,
    *,
    algorithm_name: str,
    algorithm_version: str,
    algorithm_family: Code | hd.sr.CodedConcept = _ARTIFICIAL_INTELLIGENCE,
    omit_empty_frames: bool = False,
    segment_label: str = "Hemorrhage",
    segmented_property_category: Code | hd.sr.CodedConcept = HEMORRHAGE_CATEGORY,
    segmented_property_type: Code | hd.sr.CodedConcept = HEMORRHAGE_TYPE,
    display_color: str = "red",
    series_number: int = 901,
    series_description: str = "ICH hematoma segmentation (ichpipe)",
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
    instance_number: int = 1,
    manufacturer: str = "ichpipe",
    manufacturer_model_name: str = "ichpipe",
    software_versions: str | Sequence[str] = __version__,
    device_serial_number: str = "1",
    content_label: str = "HEMORRHAGE",
    content_description: str | None = "Automatic hematoma segmentation; research use, not for diagnosis",
    content_creator_name: str | None = None,
) -> hd.seg.Segmentation:
    """Build a BINARY DICOM SEG of ``mask`` on the source CT of ``volume``.

    Parameters
    ----------
    mask:
        Hematoma mask, bool or 0/1 integers, shape ``volume.hu.shape``
        (slices in volume order, sorted along the normal).
    volume:
        The assembled CT the mask was computed on; its slice headers are the
        source images (no pixel data needed).
    algorithm_name, algorithm_version:
        Identify the segmenter (e.g. network name and checkpoint version).
    algorithm_family:
        Coded algorithm family (CID 7162); default DCM 123110 "Artificial Intelligence".
    omit_empty_frames:
        If False (default), keep one frame per source slice, empty or not, so
        that viewers align the SEG slice by slice. If True, keep only frames
        with hematoma (when the mask is empty, all frames are kept).
    segment_label, segmented_property_category, segmented_property_type:
        The segment; default "Hemorrhage", SCT 49755003 / SCT 50960005.
    display_color:
        Recommended display colour (a CSS colour name).
    series_number, series_description, series_instance_uid, sop_instance_uid, instance_number:
        Identity of the new SEG series and instance (UIDs generated when ``None``).
    manufacturer, manufacturer_model_name, software_versions, device_serial_number:
        Equipment that creates the SEG (this software).
    content_label, content_description, content_creator_name:
        Content identification (label: upper case, at most 16 characters).

    Returns
    -------
    highdicom.seg.Segmentation
        The SEG instance, in the study of ``volume``.

    Raises
    ------
    ValueError
        If ``mask`` does not match the volume or is not binary, or an
        algorithm name or version is empty.
    OutputError
        If the source headers cannot support a SEG (several multi-frame
        files, inconsistent orientation, ...), with highdicom's reason.
    """
    binary = _check_mask(mask, volume)
    if not algorithm_name.strip():
        raise ValueError("Argument 'algorithm_name' must not be empty.")
    if not algorithm_version.strip():
        raise ValueError("Argument 'algorithm_version' must not be empty.")
    # pydicom stores several values from a list (a tuple draws a warning)
    versions: Any = software_versions if isinstance(software_versions, str) else list(software_versions)
    try:
        color = hd.color.CIELabColor.from_string(display_color)
    except (ValueError, KeyError) as exc:
        raise ValueError(f"Argument 'display_color' must be a CSS colour name; got {display_color!r}.") from exc
    sources, plane_positions = _source_images(volume)
    try:
        algorithm = hd.AlgorithmIdentificationSequence(
            name=algorithm_name, version=algorithm_version, family=algorithm_family
        )
        segment = hd.seg.SegmentDescription(
            segment_number=1,
            segment_label=segment_label,
            segmented_property_category=segmented_property_category,
            segmented_property_type=segmented_property_type,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            anatomic_regions=[_BRAIN],
            display_color=color,
        )
        with no_person_name_warnings():
            seg = hd.seg.Segmentation(
                source_images=sources,
                pixel_array=binary.view(np.uint8),
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=[segment],
                series_instance_uid=series_instance_uid or generate_uid(),
                series_number=series_number,
                sop_instance_uid=sop_instance_uid or generate_uid(),
                instance_number=instance_number,
                manufacturer=manufacturer,
                manufacturer_model_name=manufacturer_model_name,
                software_versions=versions,
                device_serial_number=device_serial_number,
                content_label=content_label,
                content_description=content_description,
                content_creator_name=content_creator_name,
                plane_positions=plane_positions,
                omit_empty_frames=omit_empty_frames,
                series_description=series_description,
            )
    except (ValueError, TypeError, AttributeError) as exc:
        raise OutputError(
            f"Series {volume.series_uid}: highdicom could not build the DICOM SEG ({type(exc).__name__}: {exc})."
        ) from exc
    _complete_deidentification(seg)
    return seg


def write_seg(
    mask: npt.ArrayLike,
    volume: CTVolume,
    path: str | os.PathLike[str],
    *,
    algorithm_name: str,
    algorithm_version: str,
    deidentify: bool = False,
    **options: Any,
) -> Path:
    """Build a DICOM SEG with :func:`build_seg` and write it atomically to ``path``.

    Parameters
    ----------
    mask, volume, algorithm_name, algorithm_version:
        As for :func:`build_seg`.
    path:
        Output file; its folder must exist. Build it from UIDs, never from
        free-text tags.
    deidentify:
        Write a de-identified copy (:func:`ichpipe.dicom_io.deidentify.deidentified_copy`:
        the PS3.15 Basic Profile, UIDs kept); the source headers are untouched.
    **options:
        Any keyword-only option of :func:`build_seg` (``omit_empty_frames``,
        ``series_number``, ``series_description``, ``manufacturer``,
        ``content_creator_name``, ``software_versions``, ...).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If an argument is invalid (see :func:`build_seg`).
    OutputError
        If the SEG cannot be built from these sources, or the file cannot be
        written (read-only folder, disk full); no partial file is left.
    """
    seg = build_seg(mask, volume, algorithm_name=algorithm_name, algorithm_version=algorithm_version, **options)
    out: Dataset = deidentified_copy(seg) if deidentify else seg
    return write_dataset_atomic(out, path, what="DICOM SEG")


# --------------------------------------------------------------------- reading


def _item(seq: Any) -> Dataset | None:
    return seq[0] if seq else None


def _functional(frame: Dataset, shared: Dataset, sequence: str) -> Dataset | None:
    """The first item of a functional group macro, per-frame first, then shared."""
    item = _item(frame.get(sequence))
    return item if item is not None else _item(shared.get(sequence))


def _frame_numbers(value: Any) -> list[int]:
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        return [int(value)]
    return [int(v) for v in value]


def _source_refs(frame: Dataset) -> list[tuple[str, int | None]]:
    """(ReferencedSOPInstanceUID, ReferencedFrameNumber or None) of a frame's derivation sources."""
    refs: list[tuple[str, int | None]] = []
    for derivation in frame.get("DerivationImageSequence") or []:
        for src in derivation.get("SourceImageSequence") or []:
            uid = str(src.get("ReferencedSOPInstanceUID", "") or "")
            if not uid:
                continue
            numbers = _frame_numbers(src.get("ReferencedFrameNumber"))
            if numbers:
                refs.extend((uid, n) for n in numbers)
            else:
                refs.append((uid, None))
    return refs


def _referenced_series(ds: Dataset) -> set[str]:
    return {str(item.get("SeriesInstanceUID", "")) for item in ds.get("ReferencedSeriesSequence") or []}


def _segment_numbers(ds: Dataset, labelmap: bool) -> dict[int, str]:
    out: dict[int, str] = {}
    for item in ds.get("SegmentSequence") or []:
        number = int(item.get("SegmentNumber", 0))
        if labelmap and number == 0:
            continue
        out[number] = str(item.get("SegmentLabel", "") or "")
    return out


def _pick_segment(ds: Dataset, path: Path, segment_number: int | None, labelmap: bool) -> int:
    segments = _segment_numbers(ds, labelmap)
    if not segments:
        raise DicomInputError(f"{path}: the SEG describes no segment (empty SegmentSequence).")
    if segment_number is None:
        if len(segments) > 1:
            listed = ", ".join(f"{n} {label!r}" for n, label in sorted(segments.items()))
            raise DicomInputError(
                f"{path}: the SEG holds {len(segments)} segments ({listed}); choose one with 'segment_number'."
            )
        return next(iter(segments))
    if segment_number not in segments:
        raise ValueError(
            f"Argument 'segment_number' must be one of the SEG's segments {sorted(segments)}; got {segment_number}."
        )
    return segment_number


def _check_plane(ds: Dataset, shared: Dataset, volume: CTVolume, path: Path, tolerance_mm: float) -> None:
    """The SEG's frames must share the volume's matrix, orientation and pixel spacing."""
    geo = volume.geometry
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if (rows, cols) != (geo.rows, geo.columns):
        raise DicomInputError(
            f"{path}: SEG frames are {rows}x{cols}, the series {volume.series_uid} is {geo.rows}x{geo.columns};"
            " the SEG does not lie on this series' slices."
        )
    orientation = _item(shared.get("PlaneOrientationSequence"))
    if orientation is not None and orientation.get("ImageOrientationPatient") is not None:
        iop = np.asarray([float(v) for v in orientation.ImageOrientationPatient])
        expected = np.concatenate([geo.row_direction, geo.column_direction])
        if iop.shape != (6,) or not np.allclose(iop, expected, atol=1e-3):
            raise DicomInputError(
                f"{path}: SEG orientation {iop.round(4).tolist()} differs from the series'"
                f" {expected.round(4).tolist()}; the SEG does not lie on this series' slices."
            )
    measures = _item(shared.get("PixelMeasuresSequence"))
    if measures is not None and measures.get("PixelSpacing") is not None:
        spacing = np.asarray([float(v) for v in measures.PixelSpacing])
        # a pixel-spacing difference moves the far edge of the matrix by
        # (difference x matrix size): hold that to the position tolerance
        limit = tolerance_mm / max(geo.rows, geo.columns)
        if spacing.shape != (2,) or not np.allclose(spacing, geo.pixel_spacing_mm, rtol=0, atol=max(limit, 1e-6)):
            raise DicomInputError(
                f"{path}: SEG pixel spacing {spacing.tolist()} mm differs from the series'"
                f" {list(geo.pixel_spacing_mm)} mm; the SEG does not lie on this series' slices."
            )


def read_seg_mask(
    path: str | os.PathLike[str],
    volume: CTVolume,
    *,
    segment_number: int | None = None,
    tolerance_mm: float = 0.01,
) -> npt.NDArray[np.bool_]:
    """Read a DICOM SEG into a boolean mask aligned to ``volume``.

    Each frame is placed on the volume slice it references (per-frame
    DerivationImageSequence > SourceImageSequence > ReferencedSOPInstanceUID,
    with ReferencedFrameNumber for an enhanced CT source); a frame without a
    usable reference is placed by its ImagePositionPatient, projected on the
    slice normal, when it lies on a slice within ``tolerance_mm``. A frame on
    a slice that is not in the volume (skipped as unreadable) is ignored when
    empty.

    Parameters
    ----------
    path:
        The SEG file.
    volume:
        The assembled CT series the SEG was made on.
    segment_number:
        Segment to read; may be left out when the SEG holds a single segment.
    tolerance_mm:
        Largest distance between a frame's position and its slice's position.

    Returns
    -------
    numpy.ndarray
        bool array of shape ``volume.hu.shape``.

    Raises
    ------
    DicomInputError
        If the file is not a readable DICOM SEG, does not reference this series
        (nor share its frame of reference), has frames that do not lie on its
        slices (orientation, matrix, spacing, or positions differ), or holds
        several segments and ``segment_number`` is not given.
    ValueError
        If ``segment_number`` is not a segment of the SEG, or ``tolerance_mm``
        is not positive.
    """
    if not tolerance_mm > 0:
        raise ValueError(f"Argument 'tolerance_mm' must be positive; got {tolerance_mm}.")
    src = Path(path)
    try:
        ds = pydicom.dcmread(src)
    except (OSError, InvalidDicomError, EOFError) as exc:
        raise DicomInputError(f"{src} cannot be read as a DICOM file ({exc}).") from exc
    sop_class = str(ds.get("SOPClassUID", "") or "")
    if sop_class not in SEGMENTATION_SOP_CLASS_UIDS:
        raise DicomInputError(f"{src} is not a DICOM Segmentation (SOPClassUID {sop_class or 'missing'}).")
    labelmap = sop_class == _LABELMAP_SOP_CLASS_UID or str(ds.get("SegmentationType", "")) == "LABELMAP"
    number = _pick_segment(ds, src, segment_number, labelmap)

    referenced = _referenced_series(ds)
    same_frame = str(ds.get("FrameOfReferenceUID", "")) == str(volume.first.get("FrameOfReferenceUID", ""))
    if referenced and volume.series_uid not in referenced:
        raise DicomInputError(
            f"{src} references series {', '.join(sorted(referenced))}, not series {volume.series_uid};"
            " pass the SEG made on this series."
        )
    if not referenced and not same_frame:
        raise DicomInputError(
            f"{src} references no series and has another FrameOfReferenceUID than series {volume.series_uid};"
            " it was not made on this series."
        )

    shared = _item(ds.get("SharedFunctionalGroupsSequence")) or Dataset()
    _check_plane(ds, shared, volume, src, tolerance_mm)
    try:
        pixels = np.asarray(ds.pixel_array)
    except (ValueError, TypeError, AttributeError, NotImplementedError, RuntimeError) as exc:
        raise DicomInputError(f"{src}: SEG pixel data cannot be decoded ({type(exc).__name__}: {exc}).") from exc
    geo = volume.geometry
    pixels = pixels.reshape(-1, geo.rows, geo.columns)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    if len(per_frame) != pixels.shape[0]:
        raise DicomInputError(
            f"{src}: {pixels.shape[0]} frame(s) of pixel data but {len(per_frame)} per-frame functional group(s)."
        )
    if str(ds.get("SegmentationType", "")) == "FRACTIONAL":
        maximum = float(ds.get("MaximumFractionalValue", 255) or 255)
        inside = pixels.astype(np.float32) >= maximum / 2.0
    elif labelmap:
        inside = pixels == number
    else:
        inside = pixels.astype(bool)

    by_reference = {
        (s.sop_instance_uid, None if s.frame is None else s.frame + 1): i for i, s in enumerate(volume.slices)
    }
    out = np.zeros(volume.hu.shape, dtype=bool)
    considered = placed = 0
    for k, frame in enumerate(per_frame):
        if not labelmap:
            ident = _functional(frame, shared, "SegmentIdentificationSequence")
            if ident is None or int(ident.get("ReferencedSegmentNumber", 0)) != number:
                continue
        considered += 1
        plane = _functional(frame, shared, "PlanePositionSequence")
        position = None
        if plane is not None and plane.get("ImagePositionPatient") is not None:
            position = np.asarray([float(v) for v in plane.ImagePositionPatient], dtype=np.float64)
        index = next((by_reference[r] for r in _source_refs(frame) if r in by_reference), None)
        if index is not None and position is not None:
            distance = float(np.linalg.norm(position - geo.positions[index]))
            if distance > tolerance_mm:
                raise DicomInputError(
                    f"{src}: frame {k + 1} references slice {index} of series {volume.series_uid} but lies"
                    f" {distance:.3f} mm from it; the SEG's frames do not lie on the source slices."
                )
        if index is None and position is not None and same_frame:
            nearest = int(np.argmin(np.abs(geo.offsets_mm - float(position @ geo.normal))))
            if float(np.linalg.norm(position - geo.positions[nearest])) <= tolerance_mm:
                index = nearest
        if index is None:
            if inside[k].any():
                where = "no position" if position is None else f"position {position.round(3).tolist()}"
                raise DicomInputError(
                    f"{src}: frame {k + 1} ({where}) holds segment pixels but matches no slice of series"
                    f" {volume.series_uid} by reference or by position; the SEG's frames do not lie on the"
                    " source slices."
                )
            continue
        out[index] |= inside[k]
        placed += 1
    if considered and not placed:
        raise DicomInputError(
            f"{src}: none of the SEG's {considered} frame(s) of segment {number} lies on a slice of series"
            f" {volume.series_uid}."
        )
    return out
