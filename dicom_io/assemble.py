"""Assemble a series into a Hounsfield-unit volume with exact geometry.

Slices are sorted along the normal, duplicates resolved (one kept, the choice
explained), pixel data decoded (any transfer syntax pydicom's plugins handle:
RLE, JPEG lossless and baseline, JPEG-LS, JPEG 2000), converted to HU slice
by slice with that slice's RescaleSlope/RescaleIntercept (the Modality LUT),
with PixelPaddingValue set to ``padding_hu``. PhotometricInterpretation plays
no part: MONOCHROME1 only tells a display to invert grey levels after the
Modality and VOI LUTs (PS3.3 C.7.6.3.1.2), so the HU of a MONOCHROME1 image
are ``stored * slope + intercept`` exactly as for MONOCHROME2 (what
``pydicom.pixels.apply_modality_lut`` returns). A slice whose
pixel data cannot be decoded is skipped with a warning; the series is still
assembled when what remains is consistent, and the gap shows in the geometry.

Hostile or corrupt headers are refused before any buffer is allocated: a
matrix beyond :data:`MAX_MATRIX`, more than :data:`MAX_FRAMES` frames, or a
file whose decoded pixels would exceed :data:`MAX_FILE_PIXEL_BYTES`. A slice
with an unusable RescaleSlope/RescaleIntercept (NaN, infinite, zero or
negative slope, or one that puts any pixel beyond +/- :data:`MAX_ABS_HU`, such
as a slope of 1e30) is skipped rather than converted with a guessed rescale;
when every slice is, the series fails with a message naming the values. Two files that claim
the same SOPInstanceUID with different content make the series unusable (an
instance UID must name one image, and a SEG references images by it).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset

from ichpipe.dicom_io.discover import PARSE_ERRORS, describe_error
from ichpipe.dicom_io.geometry import GeometryConfig, VolumeGeometry, compute_geometry, slice_normal
from ichpipe.dicom_io.series import Series, SliceHeader, _int, split_by_geometry
from ichpipe.errors import DicomInputError, GeometryError
from ichpipe.progress import stage

__all__ = [
    "MAX_ABS_HU",
    "MAX_FILE_PIXEL_BYTES",
    "MAX_FRAMES",
    "MAX_MATRIX",
    "CTVolume",
    "assemble_series",
    "header_geometry",
]

log = logging.getLogger(__name__)

#: Largest Rows or Columns accepted before any pixel buffer is allocated.
MAX_MATRIX = 4096
#: Largest NumberOfFrames of one file accepted before its pixel data is decoded.
MAX_FRAMES = 10000
#: A rescale that puts any stored value beyond +/- this many HU is not a CT rescale (air is -1000 HU;
#: extended-scale CT of metal stops near +30 000 HU), e.g. a RescaleSlope of 1e30: the slice is skipped.
MAX_ABS_HU = 100_000.0
#: Largest decoded pixel data of one file (Rows x Columns x samples x frames x bytes), checked before decoding.
MAX_FILE_PIXEL_BYTES = 4 * 1024**3

# What pydicom may raise on a corrupt file or pixel data (see discover.PARSE_ERRORS).
_PIXEL_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError, EOFError, *PARSE_ERRORS)


@dataclass(frozen=True)
class CTVolume:
    """A series as a HU volume, sorted along the normal.

    Attributes
    ----------
    hu:
        float32 array of shape (slices, rows, columns) in Hounsfield units.
    geometry:
        Positions, spacing along the normal, per-slice thickness, tilt, gaps.
    slices:
        The header of each slice, in volume order (for SEG references).
    study_uid, series_uid:
        Identifiers of the assembled series.
    warnings:
        Everything noteworthy: geometry notes, skipped and duplicate slices.
    """

    hu: npt.NDArray[np.float32]
    geometry: VolumeGeometry
    slices: tuple[SliceHeader, ...]
    study_uid: str
    series_uid: str
    warnings: tuple[str, ...]

    @property
    def first(self) -> Dataset:
        """Header of the first slice (patient, study and series tags)."""
        return self.slices[0].dataset


def _sort_and_deduplicate(
    slices: Sequence[SliceHeader], normal: npt.NDArray[np.float64], tolerance: float
) -> tuple[list[SliceHeader], list[str]]:
    """Sort by projection on the normal and keep one slice per position."""
    offsets = {id(s): float(np.dot(np.asarray(s.position), normal)) for s in slices}
    keyed = sorted(slices, key=lambda s: (offsets[id(s)], s.sop_instance_uid, s.frame or 0))
    kept: list[SliceHeader] = []
    notes: list[str] = []
    for sh in keyed:
        if not kept or offsets[id(sh)] - offsets[id(kept[-1])] > tolerance:
            kept.append(sh)
            continue
        prev = kept[-1]
        if sh.sop_instance_uid == prev.sop_instance_uid and sh.frame == prev.frame:
            notes.append(
                f"duplicate file {sh.label} is a copy of {prev.label} (same SOPInstanceUID); kept {prev.label}"
            )
            continue
        # Different instances at one position: keep the later reconstruction
        # (higher InstanceNumber), as a re-sent image replaces the earlier one.
        n_prev = _int(prev.dataset.get("InstanceNumber"))
        n_this = _int(sh.dataset.get("InstanceNumber"))
        keep, drop = (sh, prev) if n_this > n_prev else (prev, sh)
        kept[-1] = keep
        notes.append(
            f"duplicate position: {sh.label} and {prev.label} lie at the same place along the normal;"
            f" kept {keep.label} (higher InstanceNumber), dropped {drop.label}"
        )
    return kept, notes


def _file_digest(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None


def _check_instance_uids(slices: Sequence[SliceHeader], label: str) -> None:
    """Refuse a series in which one SOPInstanceUID (and frame) names files with different content.

    Identical copies are fine (they are de-duplicated later); different images
    under one UID are not: which one is "the" image is unknowable, and a SEG
    referencing the UID would be ambiguous.
    """
    paths: dict[tuple[str, int | None], set[str]] = defaultdict(set)
    for sh in slices:
        if sh.sop_instance_uid:
            paths[(sh.sop_instance_uid, sh.frame)].add(str(sh.path))
    for (uid, _), files in sorted(paths.items(), key=lambda kv: kv[0][0]):
        if len(files) < 2:
            continue
        digests = {_file_digest(f) for f in files}
        if len(digests) > 1:
            names = ", ".join(sorted(Path(f).name for f in files)[:4])
            raise DicomInputError(
                f"Series {label}: SOPInstanceUID {uid} is used by {len(files)} files with different content"
                f" ({names}); an instance UID must name one image. Remove the wrong file or re-export the series."
            )


def _is_decoder_panic(exc: BaseException) -> bool:
    """Whether ``exc`` is a panic of a Rust decoder plugin (pylibjpeg-rle...).

    pyo3 raises ``pyo3_runtime.PanicException``, which derives from
    BaseException, not Exception, when malformed compressed data makes the
    decoder index out of bounds.
    """
    return type(exc).__name__ == "PanicException" and type(exc).__module__ == "pyo3_runtime"


def _pixel_budget_problem(ds: Dataset) -> str | None:
    """Why decoding ``ds``'s pixel data would be refused (absurd size), or ``None``; reads the header only."""
    rows, cols = _int(ds.get("Rows")), _int(ds.get("Columns"))
    frames = _int(ds.get("NumberOfFrames"), 1)
    samples = _int(ds.get("SamplesPerPixel"), 1)
    bits = _int(ds.get("BitsAllocated"), 16)
    if not (0 < rows <= MAX_MATRIX and 0 < cols <= MAX_MATRIX):
        return f"matrix {rows}x{cols} is outside 1..{MAX_MATRIX}"
    if not 0 < frames <= MAX_FRAMES:
        return f"NumberOfFrames {frames} is outside 1..{MAX_FRAMES}"
    if not (0 < samples <= 4 and 0 < bits <= 64):
        return f"SamplesPerPixel {samples} / BitsAllocated {bits} are not a pixel format"
    size = rows * cols * samples * frames * math.ceil(bits / 8)
    if size > MAX_FILE_PIXEL_BYTES:
        return f"decoded pixel data would take {size} bytes, more than {MAX_FILE_PIXEL_BYTES}"
    return None


def _rescale_problem(stored: npt.NDArray[Any], sh: SliceHeader) -> str | None:
    """Why ``sh``'s RescaleSlope/RescaleIntercept cannot be a CT rescale of ``stored``, or ``None``."""
    if not (math.isfinite(sh.slope) and math.isfinite(sh.intercept)) or sh.slope <= 0:
        return "is not a usable rescale (finite numbers, a positive slope)"
    lo, hi = float(np.min(stored)), float(np.max(stored))
    extreme = max(abs(lo * sh.slope + sh.intercept), abs(hi * sh.slope + sh.intercept))
    if not extreme <= MAX_ABS_HU:
        return (f"maps the stored values {lo:g}..{hi:g} to {extreme:.3g} HU, beyond +/-{MAX_ABS_HU:g} HU:"
                " not a CT rescale")
    return None


def _stored_to_hu(
    ds: Dataset, stored: npt.NDArray[Any], sh: SliceHeader, padding_hu: float
) -> npt.NDArray[np.float32]:
    """HU of one plane: the Modality LUT (``stored * slope + intercept``), then padding.

    PhotometricInterpretation is deliberately ignored (see the module docstring).
    """
    hu = stored.astype(np.float32)
    if sh.slope != 1.0:
        hu *= np.float32(sh.slope)
    if sh.intercept != 0.0:
        hu += np.float32(sh.intercept)
    pad = ds.get("PixelPaddingValue")
    if pad is not None:
        limit = ds.get("PixelPaddingRangeLimit")
        if limit is not None:
            lo_p, hi_p = sorted((int(pad), int(limit)))
            mask = (stored >= lo_p) & (stored <= hi_p)
        else:
            mask = stored == int(pad)
        hu[mask] = np.float32(padding_hu)
    return hu


def _read_planes(
    ordered: Sequence[SliceHeader], padding_hu: float, out: npt.NDArray[np.float32]
) -> tuple[list[int], list[str]]:
    """Decode the pixel data of each plane into ``out[i]``; a file is read once for all its frames.

    Returns the indices of the planes decoded (in order) and notes on the others.
    """
    by_file: dict[str, list[int]] = defaultdict(list)
    for i, sh in enumerate(ordered):
        by_file[str(sh.path)].append(i)
    planes: list[int] = []
    notes: list[str] = []
    with stage("decoding slices", total=len(by_file)) as progress:
        for path, indices in by_file.items():
            _decode_file(path, indices, ordered, padding_hu, out, planes, notes)
            progress.advance()
    return sorted(planes), notes


def _decode_file(path: str, indices: list[int], ordered: Sequence[SliceHeader], padding_hu: float,
                 out: npt.NDArray[np.float32], planes: list[int], notes: list[str]) -> None:
    """Decode one file's planes into ``out``; append the planes decoded to ``planes``, notes on the others."""
    try:
        ds = pydicom.dcmread(path, force=True)
        refused = _pixel_budget_problem(ds)
        pixels = None if refused else ds.pixel_array
    except BaseException as exc:
        if not isinstance(exc, _PIXEL_ERRORS) and not _is_decoder_panic(exc):
            raise
        for i in indices:
            notes.append(f"skipped {ordered[i].label}: pixel data unreadable ({describe_error(exc)})")
        return
    if pixels is None:
        for i in indices:
            notes.append(f"skipped {ordered[i].label}: {refused}; refusing to decode its pixel data")
        return
    for i in indices:
        sh = ordered[i]
        if not (math.isfinite(sh.slope) and math.isfinite(sh.intercept)) or sh.slope <= 0:
            notes.append(
                f"skipped {sh.label}: RescaleSlope/RescaleIntercept {sh.slope:g}/{sh.intercept:g}"
                " is not a usable rescale (finite numbers, a positive slope)"
            )
            continue
        if sh.frame is not None and pixels.ndim == 3 and not 0 <= sh.frame < pixels.shape[0]:
            notes.append(f"skipped {sh.label}: the pixel data holds only {pixels.shape[0]} frame(s)")
            continue
        frame = pixels if sh.frame is None else (pixels[sh.frame] if pixels.ndim == 3 else pixels)
        if frame.shape != (sh.rows, sh.columns):
            notes.append(
                f"skipped {sh.label}: pixel data has shape {frame.shape}, header says {sh.rows}x{sh.columns}"
            )
            continue
        problem = _rescale_problem(frame, sh)
        if problem is not None:
            notes.append(f"skipped {sh.label}: RescaleSlope/RescaleIntercept {sh.slope:g}/{sh.intercept:g}"
                         f" {problem}")
            continue
        try:
            out[i] = _stored_to_hu(ds, frame, sh, padding_hu)
            planes.append(i)
        except (ValueError, TypeError, OverflowError) as exc:
            notes.append(f"skipped {sh.label}: stored values cannot be converted to HU ({describe_error(exc)})")


def _plan(series: Series, cfg: GeometryConfig) -> tuple[list[SliceHeader], list[str], tuple[float, ...]]:
    """Check the matrix, drop unplaceable slices, sort along the normal, de-duplicate."""
    label = series.key
    rows, cols = series.slices[0].rows, series.slices[0].columns
    if not (0 < rows <= MAX_MATRIX and 0 < cols <= MAX_MATRIX):
        raise DicomInputError(
            f"Series {label}: matrix {rows}x{cols} is outside 1..{MAX_MATRIX}; refusing to allocate it."
        )
    placed, notes = split_by_geometry(series.slices, series_label=label)
    _check_instance_uids(placed, label)
    orientation = placed[0].orientation
    if orientation is None:  # split_by_geometry guarantees it
        raise GeometryError(f"Series {label}: no orientation.")
    normal = slice_normal(orientation, tolerance=cfg.orthogonality_tolerance)
    spacings = {tuple(round(v, 4) for v in (s.pixel_spacing or ())) for s in placed}
    if len(spacings) > 1:
        raise GeometryError(
            f"Series {label}: PixelSpacing differs between slices ({sorted(spacings)}); cannot build one volume."
        )
    ordered, dup_notes = _sort_and_deduplicate(placed, normal, cfg.duplicate_tolerance_mm)
    missing_for = sum(1 for s in ordered if not str(s.dataset.get("FrameOfReferenceUID", "") or "").strip())
    if missing_for:
        notes.append(
            f"{missing_for} of {len(ordered)} slices have no FrameOfReferenceUID (required in CT images);"
            " volumes are measured as usual, and ichpipe run writes the DICOM SEG with a Frame of Reference"
            " derived from the SeriesInstanceUID (recorded in the report)"
        )
    return ordered, notes + dup_notes, orientation


def _geometry_of(slices: Sequence[SliceHeader], orientation: tuple[float, ...], cfg: GeometryConfig) -> VolumeGeometry:
    ds0 = slices[0].dataset
    tilt = ds0.get("GantryDetectorTilt")
    thickness = ds0.get("SliceThickness")
    try:
        header_tilt = float(tilt) if tilt not in (None, "") else None
        header_thickness = float(thickness) if thickness not in (None, "") else None
    except (TypeError, ValueError):
        header_tilt, header_thickness = None, None
    return compute_geometry(
        orientation=orientation,
        positions=np.array([s.position for s in slices], dtype=np.float64),
        pixel_spacing=slices[0].pixel_spacing or (),
        rows=slices[0].rows,
        columns=slices[0].columns,
        header_tilt_deg=header_tilt,
        slice_thickness_mm=header_thickness,
        config=cfg,
    )


@contextlib.contextmanager
def _naming_series(label: str) -> Iterator[None]:
    """Prefix a geometry error that does not say which series it is about with ``Series <label>:``."""
    try:
        yield
    except GeometryError as exc:
        if str(exc).startswith("Series "):
            raise
        raise GeometryError(f"Series {label}: {exc}") from exc


def header_geometry(series: Series, *, config: GeometryConfig | None = None) -> tuple[VolumeGeometry, tuple[str, ...]]:
    """Geometry of ``series`` from headers alone (no pixel data read), with notes.

    Used by ``ichpipe inspect``; :func:`assemble_series` may drop further
    slices whose pixel data turns out unreadable.
    """
    cfg = config or GeometryConfig()
    with _naming_series(series.key):
        ordered, notes, orientation = _plan(series, cfg)
        geometry = _geometry_of(ordered, orientation, cfg)
    return geometry, tuple(notes) + geometry.warnings


def assemble_series(series: Series, *, config: GeometryConfig | None = None) -> CTVolume:
    """Assemble ``series`` into a :class:`CTVolume`.

    Parameters
    ----------
    series:
        One (part of a) series from :func:`ichpipe.dicom_io.series.group_series`.
    config:
        Geometry tolerances and the HU used for padding.

    Raises
    ------
    GeometryError
        If no slice can be placed, orientation is invalid, or pixel spacing differs between slices.
    DicomInputError
        If no slice's pixel data can be decoded, or the matrix size is absurd.
    """
    cfg = config or GeometryConfig()
    label = series.key
    with _naming_series(label):
        ordered, notes, orientation = _plan(series, cfg)
    # decoded straight into the volume (no second copy of it); compacted only if a slice was skipped
    hu = np.empty((len(ordered), ordered[0].rows, ordered[0].columns), dtype=np.float32)
    keep, read_notes = _read_planes(ordered, cfg.padding_hu, hu)
    notes += read_notes
    if not keep:
        if read_notes and all("RescaleSlope/RescaleIntercept" in n for n in read_notes):
            raise DicomInputError(
                f"Series {label}: no slice has a usable RescaleSlope/RescaleIntercept ({read_notes[0]}), so no"
                " Hounsfield unit can be computed; fix or re-export the series."
            )
        raise DicomInputError(
            f"Series {label}: no slice's pixel data could be decoded ({read_notes[0] if read_notes else 'no slices'})."
        )
    good = [ordered[i] for i in keep]
    if len(keep) < len(ordered):
        hu = hu[keep]
    with _naming_series(label):
        geometry = _geometry_of(good, orientation, cfg)
    for note in notes:
        log.warning("series %s: %s", label, note)
    return CTVolume(
        hu=hu,
        geometry=geometry,
        slices=tuple(good),
        study_uid=series.study_uid,
        series_uid=series.series_uid,
        warnings=tuple(notes) + geometry.warnings,
    )
