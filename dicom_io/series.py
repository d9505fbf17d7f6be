"""Group headers into series and describe each slice's geometry.

Files are grouped by StudyInstanceUID, then SeriesInstanceUID; a series whose
orientation or matrix size changes is split into parts (``UID#2``, ``UID#3``...)
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
from pydicom.uid import UID

from ichpipe.errors import GeometryError

__all__ = [
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


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if len(out) != n or not all(math.isfinite(v) for v in out):
        return None
    return out


def _float(value: Any, default: float | None = None) -> float | None:
    if value is None or value == "":
        return default
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out if math.isfinite(out) else default


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
        Modality rescale for this plane.
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
        "rows": int(ds.get("Rows", 0) or 0),
        "columns": int(ds.get("Columns", 0) or 0),
    }
    n_frames = int(_float(ds.get("NumberOfFrames"), 1) or 1)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is None:
        return [
            SliceHeader(
                frame=None,
                orientation=_floats(ds.get("ImageOrientationPatient"), 6),
                position=_floats(ds.get("ImagePositionPatient"), 3),
                pixel_spacing=_floats(ds.get("PixelSpacing"), 2),
                slope=_float(ds.get("RescaleSlope"), 1.0) or 1.0,
                intercept=_float(ds.get("RescaleIntercept"), 0.0) or 0.0,
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
                position=_floats(pick("PlanePositionSequence", "ImagePositionPatient"), 3),
                pixel_spacing=_floats(pick("PixelMeasuresSequence", "PixelSpacing"), 2),
                slope=_float(pick("PixelValueTransformationSequence", "RescaleSlope"), 1.0) or 1.0,
                intercept=_float(pick("PixelValueTransformationSequence", "RescaleIntercept"), 0.0) or 0.0,
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
    """Group headers by study and series, splitting on orientation or size changes.

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
    for (study, series), slices in sorted(groups.items()):
        parts: dict[tuple[Any, ...], list[SliceHeader]] = defaultdict(list)
        for sh in slices:
            parts[(_orientation_key(sh.orientation, orientation_tolerance), sh.rows, sh.columns)].append(sh)
        ordered = sorted(parts.items(), key=lambda kv: -len(kv[1]))
        for i, (_, members) in enumerate(ordered):
            key = series if i == 0 else f"{series}#{i + 1}"
            reason = ""
            if len(ordered) > 1:
                reason = (
                    f"series split in {len(ordered)} parts because orientation or matrix size changes;"
                    f" this part: {members[0].rows}x{members[0].columns}, {len(members)} slice(s)"
                )
            out.append(Series(study, series, key, members, reason))
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
        if kw == "ImageType" or (hasattr(value, "__iter__") and not isinstance(value, str)):
            attrs[kw] = [str(v) for v in value]
        elif kw in ("SliceThickness", "SeriesNumber"):
            attrs[kw] = _float(value)
        else:
            attrs[kw] = str(value)
    if isinstance(attrs.get("ConvolutionKernel"), list):
        attrs["ConvolutionKernel"] = "\\".join(attrs["ConvolutionKernel"])
    attrs["n_slices"] = len({(s.sop_instance_uid, s.frame) for s in series.slices})
    attrs["axial_deviation_deg"] = _axial_deviation_deg(series.slices[0].orientation)
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
