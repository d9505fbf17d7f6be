"""Group headers into series and describe each slice's geometry.

Files are grouped by StudyInstanceUID, then SeriesInstanceUID; a series whose
orientation, matrix size or FrameOfReferenceUID changes is split into parts (``UID#2``, ``UID#3``...)
so that each part can be assembled into one volume. Enhanced (multi-frame) CT
files contribute one :class:`SliceHeader` per frame. File names and
InstanceNumber are never used for ordering.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID

from ichpipe.errors import GeometryError

__all__ = [
    "MAX_POSITION_MM",
    "Series",
    "SliceHeader",
    "group_series",
    "series_attributes",
    "slice_headers",
    "split_by_geometry",
]

log = logging.getLogger(__name__)

_ATTRIBUTE_KEYWORDS = (
    "Modality",
    "ImageType",
    "ConvolutionKernel",
    "SliceThickness",
    "SeriesNumber",
    "SeriesDescription",
    "BodyPartExamined",
    "Manufacturer",
    "ManufacturerModelName",
)


#: Largest |coordinate| (mm) of ImagePositionPatient taken as real; beyond it a position is unusable.
MAX_POSITION_MM = 1e5


def _floats(value: Any, n: int, *, limit: float = math.inf) -> tuple[float, ...] | None:
    """``n`` finite numbers with ``|v| <= limit``, or ``None`` (absent, wrong VR, NaN, wrong count)."""
    if value is None or isinstance(value, bytes | bytearray | str):
        # bytes: a wrong VR (OB/UN) whose bytes would read as small integers;
        # str: a single text value (wrong VR) that is not a list of numbers
        return None
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError, OverflowError):
        return None
    if len(out) != n or not all(math.isfinite(v) and abs(v) <= limit for v in out):
        return None
    return out


def _float(value: Any, default: float | None = None) -> float | None:
    if value is None or value == "":
        return default
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        return default
    return out if math.isfinite(out) else default


def _int(value: Any, default: int = 0) -> int:
    """An integer attribute (Rows, InstanceNumber...); ``default`` when absent or not one integer."""
    if value is None or value == "" or isinstance(value, bytes | bytearray):
        return default
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        return default
    return int(out) if math.isfinite(out) and out == int(out) else default


def _rescale(value: Any, default: float, *, nonzero: bool) -> float:
    """A rescale value: ``default`` when absent, NaN when present but unusable (the slice is then skipped)."""
    if value is None or value == "":
        return default
    out = _float(value)
    if out is None or (nonzero and out == 0.0):
        return math.nan
    return out


def _first(ds: Dataset, sequence: str, keyword: str) -> Any:
    seq = ds.get(sequence)
    if seq:
        return seq[0].get(keyword)
    return None


@dataclass(frozen=True)
class SliceHeader:
    """One image plane: a classic single-frame file, or one frame of a multi-frame file.

    Attributes
    ----------
    path:
        The file.
    frame:
        Frame index (0-based) in a multi-frame file, ``None`` for single-frame.
    dataset:
        The file's header (no pixel data); shared by all frames of a file.
    orientation, position, pixel_spacing:
        Geometry, or ``None`` where the header lacks it.
    rows, columns:
        Matrix size.
    slope, intercept:
        Modality rescale for this plane; NaN when the header holds an unusable
        value (not a number, infinite, or a zero slope), so that the plane is
        skipped rather than converted with a guessed rescale.
    frame_of_reference_uid:
        FrameOfReferenceUID (positions of two frames of reference cannot be compared).
    """

    path: Path
    frame: int | None
    dataset: Dataset
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    orientation: tuple[float, ...] | None
    position: tuple[float, ...] | None
    pixel_spacing: tuple[float, ...] | None
    rows: int
    columns: int
    slope: float
    intercept: float
    frame_of_reference_uid: str = ""

    @property
    def label(self) -> str:
        """File name, with the frame number for multi-frame files."""
        return self.path.name if self.frame is None else f"{self.path.name}[frame {self.frame + 1}]"


def slice_headers(path: Path, ds: Dataset) -> list[SliceHeader]:
    """Describe the image planes of one file (one per frame for enhanced CT)."""
    common: dict[str, Any] = {
        "path": path,
        "dataset": ds,
        "study_uid": str(ds.get("StudyInstanceUID", "") or ""),
        "series_uid": str(ds.get("SeriesInstanceUID", "") or ""),
        "sop_instance_uid": str(ds.get("SOPInstanceUID", "") or ""),
        "frame_of_reference_uid": str(ds.get("FrameOfReferenceUID", "") or ""),
        "rows": _int(ds.get("Rows")),
        "columns": _int(ds.get("Columns")),
    }
    n_frames = max(1, _int(ds.get("NumberOfFrames"), 1))
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is None:
        return [
            SliceHeader(
                frame=None,
                orientation=_floats(ds.get("ImageOrientationPatient"), 6),
                position=_floats(ds.get("ImagePositionPatient"), 3, limit=MAX_POSITION_MM),
                pixel_spacing=_floats(ds.get("PixelSpacing"), 2),
                slope=_rescale(ds.get("RescaleSlope"), 1.0, nonzero=True),
                intercept=_rescale(ds.get("RescaleIntercept"), 0.0, nonzero=False),
                **common,
            )
        ]
    shared = (ds.get("SharedFunctionalGroupsSequence") or [Dataset()])[0]
    out = []
    for i in range(min(n_frames, len(per_frame))):
        frame = per_frame[i]

        def pick(seq: str, kw: str, frame: Dataset = frame) -> Any:
            value = _first(frame, seq, kw)
            return value if value is not None else _first(shared, seq, kw)

        out.append(
            SliceHeader(
                frame=i,
                orientation=_floats(pick("PlaneOrientationSequence", "ImageOrientationPatient"), 6),
                position=_floats(pick("PlanePositionSequence", "ImagePositionPatient"), 3, limit=MAX_POSITION_MM),
                pixel_spacing=_floats(pick("PixelMeasuresSequence", "PixelSpacing"), 2),
                slope=_rescale(pick("PixelValueTransformationSequence", "RescaleSlope"), 1.0, nonzero=True),
                intercept=_rescale(pick("PixelValueTransformationSequence", "RescaleIntercept"), 0.0,
                                   nonzero=False),
                **common,
            )
        )
    return out


@dataclass
class Series:
    """Slices of one series (or one consistent part of a split series)."""

    study_uid: str
    series_uid: str
    key: str
    slices: list[SliceHeader]
    split_reason: str = ""

    @property
    def first(self) -> Dataset:
        """Header of the first file (for series-level tags)."""
        return self.slices[0].dataset

    @property
    def sop_class_uid(self) -> str:
        """SOP Class UID of the first file."""
        ds = self.first
        value = ds.get("SOPClassUID") or getattr(ds.get("file_meta", Dataset()), "MediaStorageSOPClassUID", "")
        return str(value or "")


def _orientation_key(orientation: tuple[float, ...] | None, tolerance: float) -> tuple[int, ...] | None:
    if orientation is None:
        return None
    step = max(tolerance, 1e-6) * 10
    return tuple(round(v / step) for v in orientation)


def group_series(
    headers: Iterable[tuple[Path, Dataset]], *, orientation_tolerance: float = 1e-3
) -> list[Series]:
    """Group headers by study and series, splitting on orientation, size or frame-of-reference changes.

    Parameters
    ----------
    headers:
        ``(path, header)`` pairs from discovery.
    orientation_tolerance:
        Direction cosines closer than about this count as the same orientation.

    Returns
    -------
    list of Series
        Ordered by study UID, series UID and part.
    """
    groups: dict[tuple[str, str], list[SliceHeader]] = defaultdict(list)
    for path, ds in headers:
        for sh in slice_headers(path, ds):
            if not sh.series_uid:
                log.warning("skipping %s: no SeriesInstanceUID", path)
                continue
            groups[(sh.study_uid, sh.series_uid)].append(sh)
    out: list[Series] = []
    # Keys stay unique even when one SeriesInstanceUID turns up under two
    # StudyInstanceUIDs (a corrupt or hand-edited export): parts are numbered on.
    n_parts: dict[str, int] = defaultdict(int)
    for (study, series), slices in sorted(groups.items()):
        parts: dict[tuple[Any, ...], list[SliceHeader]] = defaultdict(list)
        for sh in slices:
            part = (_orientation_key(sh.orientation, orientation_tolerance), sh.rows, sh.columns,
                    sh.frame_of_reference_uid)
            parts[part].append(sh)
        ordered = sorted(parts.items(), key=lambda kv: -len(kv[1]))
        for _, members in ordered:
            n_parts[series] += 1
            key = series if n_parts[series] == 1 else f"{series}#{n_parts[series]}"
            reasons = []
            if len(ordered) > 1:
                reasons.append(
                    f"series split in {len(ordered)} parts because orientation, matrix size or"
                    " FrameOfReferenceUID changes;"
                    f" this part: {members[0].rows}x{members[0].columns}, {len(members)} slice(s)"
                )
            if sum(1 for st, se in groups if se == series) > 1:
                reasons.append(f"SeriesInstanceUID {series} also appears under another StudyInstanceUID;"
                               f" this part belongs to study {study}")
            out.append(Series(study, series, key, members, "; ".join(reasons)))
    return out


def _axial_deviation_deg(orientation: tuple[float, ...] | None) -> float | None:
    if orientation is None:
        return None
    row = np.asarray(orientation[:3])
    col = np.asarray(orientation[3:])
    n = np.cross(row, col)
    norm = float(np.linalg.norm(n))
    if norm == 0:
        return None
    return math.degrees(math.acos(min(1.0, abs(float(n[2])) / norm)))


def series_attributes(series: Series) -> dict[str, Any]:
    """Attributes the selection rules look at: DICOM keywords plus derived values."""
    ds = series.first
    attrs: dict[str, Any] = {}
    for kw in _ATTRIBUTE_KEYWORDS:
        value = ds.get(kw)
        if value is None and kw in ("ConvolutionKernel", "SliceThickness"):
            shared = (ds.get("SharedFunctionalGroupsSequence") or [Dataset()])[0]
            value = _first(shared, "CTReconstructionSequence", kw) or _first(shared, "PixelMeasuresSequence", kw)
        if value is None or value == "":
            continue
        if isinstance(value, list | tuple | MultiValue):
            attrs[kw] = [str(v) for v in value]
        elif kw == "ImageType":  # single-valued (or mangled) ImageType: still a list of values
            attrs[kw] = str(value).split("\\")
        elif kw in ("SliceThickness", "SeriesNumber"):
            attrs[kw] = _float(value)
        else:
            attrs[kw] = str(value)
    if isinstance(attrs.get("ConvolutionKernel"), list):
        attrs["ConvolutionKernel"] = "\\".join(attrs["ConvolutionKernel"])
    attrs["n_slices"] = len({(s.sop_instance_uid, s.frame) for s in series.slices})
    attrs["axial_deviation_deg"] = _axial_deviation_deg(series.slices[0].orientation)
    first = series.slices[0]
    if first.pixel_spacing is not None:  # the reconstructed field: rows and columns times their pixel size
        field_mm = max(first.rows * first.pixel_spacing[0], first.columns * first.pixel_spacing[1])
        attrs["field_of_view_mm"] = round(field_mm, 1)
    sop = series.sop_class_uid
    attrs["sop_class_name"] = UID(sop).name if sop else None
    return attrs


def split_by_geometry(
    slices: Sequence[SliceHeader], *, series_label: str
) -> tuple[list[SliceHeader], list[str]]:
    """Keep the slices that can be placed; describe the ones that cannot.

    Raises
    ------
    GeometryError
        If no slice has ImagePositionPatient, ImageOrientationPatient and PixelSpacing.
    """
    kept: list[SliceHeader] = []
    dropped: list[str] = []
    first_problem = ""
    for sh in slices:
        missing = [
            name
            for name, value in (
                ("ImagePositionPatient", sh.position),
                ("ImageOrientationPatient", sh.orientation),
                ("PixelSpacing", sh.pixel_spacing),
            )
            if value is None
        ]
        if missing:
            first_problem = first_problem or f"{sh.label} has no usable {', '.join(missing)}"
            dropped.append(f"skipped {sh.label}: no usable {', '.join(missing)}")
        else:
            kept.append(sh)
    if not kept:
        raise GeometryError(
            f"Series {series_label}: {first_problem}; cannot place the slices."
            " Re-export the series from the scanner or PACS with full geometry."
        )
    return kept, dropped
