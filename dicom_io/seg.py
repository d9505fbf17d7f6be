"""DICOM Segmentation (SEG) of the hematoma: write with highdicom, read back onto a volume.

:func:`build_seg` turns a binary mask aligned to a :class:`~ichpipe.dicom_io.assemble.CTVolume`
into a highdicom :class:`~highdicom.seg.Segmentation` (BINARY, one segment
"Hemorrhage", algorithm type AUTOMATIC) that references exactly the source
instances the volume was assembled from: a slice skipped as corrupt is not
referenced. Empty frames are kept by default so that viewers (OHIF, 3D
Slicer) find one frame per source slice. highdicom needs only the source
headers, not their pixel data, so the headers kept in the volume are passed
as they are.

:func:`write_seg` writes it atomically; :func:`read_seg_mask` (in
:mod:`ichpipe.dicom_io.seg_read`, re-exported here) reads a SEG (ours or
another tool's) back into a boolean mask aligned to a volume, matching each
frame to its source slice by the referenced SOP Instance UID, or else by its
position.

Metadata that tells runs and models apart: ContentCreatorName, the
algorithm's parameters (``checkpoint_sha256=...``) in the segment's
AlgorithmIdentificationSequence, SeriesDate/SeriesTime of the run, and the
series number and description the caller chooses
(:mod:`ichpipe.pipeline.outputs.series_naming`). Where the source slices'
SliceThickness differs (a real GE head has 4 and 7 mm slices), the Pixel
Measures functional group is written per frame with each frame's own
thickness instead of one shared value.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import numpy.typing as npt
import pydicom
import pydicom.valuerep
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from ichpipe import __version__
from ichpipe.dicom_io._atomic import set_series_datetime, write_dataset_atomic
from ichpipe.dicom_io._privacy import no_person_name_warnings
from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.dicom_io.deidentify import deidentified_copy
from ichpipe.dicom_io.frame_of_reference import frame_of_reference, with_frame_of_reference
from ichpipe.dicom_io.seg_read import SEGMENTATION_SOP_CLASS_UIDS, read_seg_mask
from ichpipe.errors import OutputBuildError

log = logging.getLogger(__name__)

__all__ = [
    "ARTIFICIAL_INTELLIGENCE",
    "DISPLAY_ONLY",
    "HEMORRHAGE_CATEGORY",
    "HEMORRHAGE_TYPE",
    "MORPHOLOGICAL_OPERATIONS",
    "SEGMENTATION_SOP_CLASS_UIDS",
    "build_seg",
    "checked_display_values",
    "read_seg_mask",
    "source_headers",
    "write_seg",
]

#: Segmented property category: SCT 49755003 "Morphologically abnormal structure".
HEMORRHAGE_CATEGORY: Code = Code("49755003", "SCT", "Morphologically Abnormal Structure")
#: Segmented property type: SCT 50960005 "Hemorrhage".
HEMORRHAGE_TYPE: Code = Code("50960005", "SCT", "Hemorrhage")
#: Anatomic region of the segment: SCT 12738006 "Brain".
_BRAIN: Code = Code("12738006", "SCT", "Brain")
#: Algorithm family of a trained network: DCM 123110 "Artificial Intelligence" (CID 7162).
ARTIFICIAL_INTELLIGENCE: Code = Code("123110", "DCM", "Artificial Intelligence")
#: Algorithm family of the classical threshold baseline (HU band, median filter, opening, components,
#: geodesic growth): DCM 123104 "Morphological Operations" (CID 7162, Surface Processing Algorithm
#: Families); not "Artificial Intelligence" and not "Manual Processing" (123109): no person drew it.
MORPHOLOGICAL_OPERATIONS: Code = Code("123104", "DCM", "Morphological Operations")


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
    """Source headers for highdicom, and explicit plane positions for a multi-frame source.

    A header without FrameOfReferenceUID is given the derived one
    (:func:`~ichpipe.dicom_io.frame_of_reference.frame_of_reference`) in a copy; the
    volume's headers are left untouched.
    """
    files = {s.sop_instance_uid for s in volume.slices}
    multiframe = [s for s in volume.slices if s.frame is not None]
    for_uid, _ = frame_of_reference(volume)
    if not multiframe:
        return source_headers(volume), None
    if len(multiframe) != len(volume.slices) or len(files) != 1:
        raise OutputBuildError(
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
    return [_header_for_highdicom(with_frame_of_reference(volume.slices[0].dataset, for_uid))], positions


def source_headers(volume: CTVolume) -> list[Dataset]:
    """The distinct source headers of ``volume`` in volume order, ready for highdicom.

    The first has its missing Type 2 patient and study attributes added empty
    (see :func:`_header_for_highdicom`); an enhanced CT source gives one header.
    Headers without FrameOfReferenceUID get the derived one in a copy
    (:func:`~ichpipe.dicom_io.frame_of_reference.frame_of_reference`).
    """
    for_uid, _ = frame_of_reference(volume)
    seen: dict[str, Dataset] = {}
    for s in volume.slices:
        seen.setdefault(s.sop_instance_uid, with_frame_of_reference(s.dataset, for_uid))
    first, *rest = seen.values()
    return [_header_for_highdicom(first, slice_thickness_mm=volume.geometry.slice_spacing_mm), *rest]


def _frame_thicknesses(seg: Dataset, volume: CTVolume) -> list[float] | None:
    """Each SEG frame's source SliceThickness (measured thickness where the header has none), or ``None``.

    Frames are matched to slices by their position along the normal.
    """
    geo = volume.geometry
    per_frame = seg.get("PerFrameFunctionalGroupsSequence") or []
    values: list[float] = []
    for item in per_frame:
        plane = (item.get("PlanePositionSequence") or [None])[0]
        if plane is None or plane.get("ImagePositionPatient") is None:
            return None
        position = np.asarray([float(v) for v in plane.ImagePositionPatient], dtype=np.float64)
        index = int(np.argmin(np.abs(geo.offsets_mm - float(position @ geo.normal))))
        header = _positive(volume.slices[index].dataset.get("SliceThickness"))
        values.append(round(header if header is not None else float(geo.slice_thickness_mm[index]), 6))
    return values


def _per_frame_pixel_measures(seg: Dataset, volume: CTVolume) -> bool:
    """Move Pixel Measures into each frame when the source slices' thickness varies; return whether it did.

    SpacingBetweenSlices is dropped then: it is not one value for an uneven stack.
    """
    shared = (seg.get("SharedFunctionalGroupsSequence") or [None])[0]
    measures = None if shared is None else (shared.get("PixelMeasuresSequence") or [None])[0]
    thicknesses = _frame_thicknesses(seg, volume)
    if measures is None or not thicknesses or len(set(thicknesses)) < 2:
        return False
    for item, thickness in zip(seg.PerFrameFunctionalGroupsSequence, thicknesses, strict=True):
        own = Dataset()
        own.PixelSpacing = measures.PixelSpacing
        own.SliceThickness = thickness
        item.PixelMeasuresSequence = [own]
    del shared.PixelMeasuresSequence
    return True


def build_seg(
    mask: npt.ArrayLike,
    volume: CTVolume,
    *,
    algorithm_name: str,
    algorithm_version: str,
    algorithm_family: Code | hd.sr.CodedConcept = ARTIFICIAL_INTELLIGENCE,
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
    content_creator_name: str | None = "ichpipe^",
    algorithm_parameters: dict[str, str] | None = None,
    series_datetime: datetime | None = None,
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
        Coded algorithm family (CID 7162): :data:`ARTIFICIAL_INTELLIGENCE` (default) or, for the threshold
        baseline, :data:`MORPHOLOGICAL_OPERATIONS`. SegmentAlgorithmType is AUTOMATIC (no user interaction).
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
    algorithm_parameters:
        Written into the segment's AlgorithmIdentificationSequence
        (AlgorithmParameters), e.g. ``{"checkpoint_sha256": "..."}`` so that a
        retrained model gives a different header.
    series_datetime:
        SeriesDate and SeriesTime of the SEG series (when this run made it); default now.

    Returns
    -------
    highdicom.seg.Segmentation
        The SEG instance, in the study of ``volume``.

    Raises
    ------
    ValueError
        If ``mask`` does not match the volume or is not binary, or an
        algorithm name or version is empty.
    OutputBuildError
        If the source headers cannot support a SEG (several multi-frame
        files, inconsistent orientation, ...), with highdicom's reason (an
        :class:`~ichpipe.errors.OutputError`). A missing FrameOfReferenceUID is
        not such a case: a derived one is used
        (:func:`~ichpipe.dicom_io.frame_of_reference.frame_of_reference`).
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
            name=algorithm_name, version=algorithm_version, family=algorithm_family,
            parameters=dict(algorithm_parameters) if algorithm_parameters else None,
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
        raise OutputBuildError(
            f"Series {volume.series_uid}: highdicom could not build the DICOM SEG ({type(exc).__name__}: {exc})."
        ) from exc
    _complete_deidentification(seg)
    set_series_datetime(seg, series_datetime)
    _per_frame_pixel_measures(seg, volume)
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
