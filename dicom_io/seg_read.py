"""Read a DICOM SEG (ours or another tool's) back into a boolean mask aligned to a volume.

:func:`read_seg_mask` matches each frame to its source slice by the referenced
SOP Instance UID, or else by its position. Split from :mod:`ichpipe.dicom_io.seg`
(which re-exports it) to keep each module short.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.errors import DicomInputError

__all__ = ["SEGMENTATION_SOP_CLASS_UIDS", "read_seg_mask"]

#: SOP Class UIDs read by :func:`read_seg_mask`: Segmentation and Label Map Segmentation Storage.
SEGMENTATION_SOP_CLASS_UIDS: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.66.4": "Segmentation Storage",
    "1.2.840.10008.5.1.4.1.1.66.7": "Label Map Segmentation Storage",
}
_LABELMAP_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.66.7"

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
