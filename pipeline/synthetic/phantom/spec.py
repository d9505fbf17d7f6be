"""The options of a synthetic head-CT study: one frozen, validated dataclass.

Every choice the generator makes that is not given here is drawn from
``seed``: the same :class:`PhantomSpec` always gives the same files, the same
UIDs and the same ``truth.json``. The seed stands for the *patient* (head
shape, hematoma site and shape); acquisition options (accession, time,
volume) change the study, so serial studies of one patient use one seed and
different ``accession_number`` / ``acquisition_datetime`` / ``volume_ml``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

__all__ = [
    "DEFAULT_DISTRACTORS",
    "DistractorName",
    "ExportName",
    "PhantomSpec",
    "PhotometricName",
    "RescaleName",
    "ShapeName",
    "TransferSyntaxName",
    "jpegls_available",
]

TransferSyntaxName = Literal["explicit", "implicit", "rle", "jpeg2000", "jpegls"]
RescaleName = Literal["standard", "unsigned", "zero_intercept", "scaled", "per_slice"]
ShapeName = Literal["ellipsoid", "irregular"]
DistractorName = Literal["localizer", "bone", "thin", "summary"]
ExportName = Literal["full", "skull_stripped", "skull_air_stripped", "brain_only"]
PhotometricName = Literal["MONOCHROME2", "MONOCHROME1"]

#: Distractor series written by ``--distractors`` (the thin series is opt-in: it is large).
DEFAULT_DISTRACTORS: tuple[DistractorName, ...] = ("localizer", "bone", "summary")

_TRANSFER_SYNTAXES: tuple[str, ...] = get_args(TransferSyntaxName)
_RESCALES: tuple[str, ...] = get_args(RescaleName)
_SHAPES: tuple[str, ...] = get_args(ShapeName)
_DISTRACTORS: tuple[str, ...] = get_args(DistractorName)
_EXPORTS: tuple[str, ...] = get_args(ExportName)
_PHOTOMETRICS: tuple[str, ...] = get_args(PhotometricName)

#: Options added after the first release: left out of :meth:`PhantomSpec.digest`
#: while at their defaults, so that every phantom written before keeps its UIDs.
_LATER_DEFAULTS: dict[str, Any] = {
    "skull_flap_deg": 0.0,
    "export": "full",
    "clip_hu": None,
    "photometric": "MONOCHROME2",
    "frame_of_reference": True,
}

#: Largest ratio between the two block spacings of an uneven stack. Above about
#: 3 the reader's gap rule (1.5 x local spacing) would call the block change a gap.
MAX_UNEVEN_RATIO = 2.5


def jpegls_available() -> bool:
    """Whether pydicom can encode JPEG-LS lossless here (needs the ``pyjpegls`` plugin)."""
    from pydicom.pixels import get_encoder
    from pydicom.uid import JPEGLSLossless

    return bool(get_encoder(JPEGLSLossless).is_available)


_UID_PATTERN = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")


def _is_uid(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 64 and _UID_PATTERN.fullmatch(value) is not None


def _check_range(name: str, value: float, low: float, high: float, *, low_open: bool = False) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"Argument '{name}' must be a finite number; got {value!r}.")
    too_low = value <= low if low_open else value < low
    if too_low or value > high:
        bracket = "(" if low_open else "["
        raise ValueError(f"Argument '{name}' must be in {bracket}{low:g}, {high:g}]; got {value!r}.")


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"Argument '{name}' must be an integer; got {value!r}.")
    if not low <= value <= high:
        raise ValueError(f"Argument '{name}' must be between {low} and {high}; got {value}.")


def _check_text(name: str, value: str | None, max_len: int) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"Argument '{name}' must be a non-empty string; got {value!r}.")
    if len(value) > max_len:
        raise ValueError(f"Argument '{name}' must be at most {max_len} characters (a DICOM limit); got {len(value)}.")
    if "\\" in value or not value.isprintable():
        raise ValueError(f"Argument '{name}' must be printable text without backslashes; got {value!r}.")


@dataclass(frozen=True, kw_only=True)
class PhantomSpec:
    """What to generate. All arguments are keyword-only and validated.

    Parameters
    ----------
    seed:
        Seed of every random choice (head shape, hematoma site, shape and
        HU, noise, UIDs). One seed is one synthetic patient.
    rows, columns:
        Matrix size of the axial series.
    n_slices:
        Number of planned slices of the axial series (before a dropped one).
    slice_spacing_mm:
        Spacing between slices **along the slice normal** (also the nominal
        SliceThickness). Ignored when ``uneven_spacing_mm`` is given.
    pixel_spacing_mm:
        Square pixel size in mm; ``None`` gives ``field_of_view_mm / max(rows, columns)``.
    field_of_view_mm:
        Reconstruction diameter used when ``pixel_spacing_mm`` is ``None``.
    gantry_tilt_deg:
        Signed gantry tilt. Orientation becomes row ``(1, 0, 0)``, column
        ``(0, cos t, -sin t)`` (as GE writes it) and the table steps along
        z by ``spacing / cos t``, so the spacing along the normal stays as asked.
    uneven_spacing_mm:
        ``(lower, upper)``: the lower ``n_slices // 2`` slices are
        ``lower`` mm apart and as thick, the rest ``upper`` mm, and the step
        between the blocks ``(lower + upper) / 2``, so the slabs meet (a
        posterior-fossa / supratentorial protocol, like GE's 4 mm / 7 mm).
    drop_slice:
        Index (0-based, in order along the normal) of a planned slice whose
        file is not written. Must be an inner slice, so the gap is visible.
        With ``uneven_spacing_mm`` drop a slice inside a block (two or more
        slices from the block change): next to it the doubled gap can look
        like the change of spacing, and a reader cannot count it as missing.
    duplicate_slice:
        Index of a planned slice written twice (same position, another
        SOPInstanceUID, later InstanceNumber).
    transfer_syntax:
        ``explicit`` (explicit VR little endian), ``implicit``, ``rle``
        (RLE lossless), ``jpeg2000`` (JPEG 2000 lossless) or ``jpegls``
        (JPEG-LS lossless; needs the ``pyjpegls`` plugin).
    rescale:
        How HU are stored: ``standard`` (int16, intercept -1024, slope 1),
        ``unsigned`` (uint16 12 bits stored, intercept -1024), ``zero_intercept``
        (int16 holding HU), ``scaled`` (int16, slope 0.5, intercept -1024),
        ``per_slice`` (int16, intercept varying from slice to slice).
    padding:
        Write pixels outside the circular scan field as PixelPaddingValue.
    distractors:
        Extra series in the same study: ``localizer`` (coronal scout),
        ``bone`` (bone-kernel reconstruction of the axial stack), ``thin``
        (1.25 mm soft-tissue reconstruction), ``summary`` (secondary-capture
        exam summary). The axial soft-tissue series is always the one to select.
    n_hematomas:
        Number of separate hematomas (0 writes a normal head).
    shape:
        ``ellipsoid`` (analytic volume known) or ``irregular`` (radially
        perturbed ellipsoid with satellite lobes).
    touch_skull:
        Place the first hematoma against the inner table; it is clipped by
        the skull (no analytic volume then).
    volume_ml:
        Target total hematoma volume in mL (split among the hematomas);
        ``None`` draws one from the seed. The exact voxel volume is in the truth.
    hematoma_hu:
        Mean hematoma attenuation; ``None`` draws 60-80 HU (acute) from the seed.
    edema_mm:
        Width of a hypodense perihematomal rim (0 for none; not part of the mask).
    noise_hu:
        Standard deviation of the (slightly correlated) Gaussian image noise.
    shading_hu:
        Amplitude of a smooth, slow intensity variation across the head.
    skull_flap_deg:
        A bone flap of this aperture (degrees, a cone around the direction
        from the head's centre to the first hematoma) is missing, as after a
        craniotomy or craniectomy: its bone becomes scalp-like tissue
        (35 HU). 0 keeps the skull closed.
    export:
        How the images were exported: ``full``; ``skull_stripped`` (every
        voxel above 150 HU set to 0, as skull-stripping tools do);
        ``skull_air_stripped`` (the skull and the air set to 0, like the real
        deepbleed example); ``brain_only`` (everything outside the inner
        table set to 0).
    clip_hu:
        Clip the stored HU at this maximum (a brain- or soft-tissue-window
        export; 320 loses the skull's density, below 300 the skull itself).
    photometric:
        PhotometricInterpretation written: ``MONOCHROME2`` or ``MONOCHROME1``
        (display inverted; the stored values and the Modality LUT, hence the
        HU, are the same, as on a real MONOCHROME1 CT).
    frame_of_reference:
        Write FrameOfReferenceUID (the Frame of Reference module); ``False``
        leaves it out, as some anonymised archives do.
    patient_id, patient_name:
        Patient identity; default from the seed (same seed, same patient).
    accession_number:
        Accession number (max 16 characters); default from all the options.
    acquisition_datetime:
        Acquisition date and time (naive, local); default from the seed.
    study_instance_uid:
        StudyInstanceUID; default derived from all the options.
    """

    seed: int = 0
    rows: int = 512
    columns: int = 512
    n_slices: int = 32
    slice_spacing_mm: float = 5.0
    pixel_spacing_mm: float | None = None
    field_of_view_mm: float = 230.0
    gantry_tilt_deg: float = 0.0
    uneven_spacing_mm: tuple[float, float] | None = None
    drop_slice: int | None = None
    duplicate_slice: int | None = None
    transfer_syntax: TransferSyntaxName = "explicit"
    rescale: RescaleName = "standard"
    padding: bool = True
    distractors: tuple[DistractorName, ...] = ()
    n_hematomas: int = 1
    shape: ShapeName = "ellipsoid"
    touch_skull: bool = False
    volume_ml: float | None = None
    hematoma_hu: float | None = None
    edema_mm: float = 0.0
    noise_hu: float = 5.0
    shading_hu: float = 0.0
    skull_flap_deg: float = 0.0
    export: ExportName = "full"
    clip_hu: float | None = None
    photometric: PhotometricName = "MONOCHROME2"
    frame_of_reference: bool = True
    patient_id: str | None = None
    patient_name: str | None = None
    accession_number: str | None = None
    acquisition_datetime: datetime | None = None
    study_instance_uid: str | None = None

    def __post_init__(self) -> None:
        _check_int("seed", self.seed, 0, 2**63 - 1)
        _check_int("rows", self.rows, 32, 2048)
        _check_int("columns", self.columns, 32, 2048)
        _check_int("n_slices", self.n_slices, 3, 1000)
        _check_range("slice_spacing_mm", self.slice_spacing_mm, 0.1, 20.0, low_open=True)
        if self.pixel_spacing_mm is not None:
            _check_range("pixel_spacing_mm", self.pixel_spacing_mm, 0.0, 5.0, low_open=True)
        _check_range("field_of_view_mm", self.field_of_view_mm, 150.0, 500.0)
        _check_range("gantry_tilt_deg", self.gantry_tilt_deg, -30.0, 30.0)
        if self.uneven_spacing_mm is not None:
            pair = tuple(self.uneven_spacing_mm)
            if len(pair) != 2:
                raise ValueError(
                    f"Argument 'uneven_spacing_mm' must be a pair (lower, upper); got {self.uneven_spacing_mm!r}."
                )
            for value in pair:
                _check_range("uneven_spacing_mm", value, 0.1, 20.0, low_open=True)
            if max(pair) / min(pair) > MAX_UNEVEN_RATIO:
                raise ValueError(
                    f"Argument 'uneven_spacing_mm' must not have one spacing more than {MAX_UNEVEN_RATIO:g}"
                    f" times the other; got {pair}."
                )
            if self.n_slices < 4:
                raise ValueError("Argument 'n_slices' must be at least 4 with 'uneven_spacing_mm'.")
            object.__setattr__(self, "uneven_spacing_mm", (float(pair[0]), float(pair[1])))
        if self.drop_slice is not None:
            _check_int("drop_slice", self.drop_slice, 1, self.n_slices - 2)
        if self.duplicate_slice is not None:
            _check_int("duplicate_slice", self.duplicate_slice, 0, self.n_slices - 1)
            if self.duplicate_slice == self.drop_slice:
                raise ValueError("Arguments 'duplicate_slice' and 'drop_slice' must name different slices.")
        if self.transfer_syntax not in _TRANSFER_SYNTAXES:
            raise ValueError(
                f"Argument 'transfer_syntax' must be one of {', '.join(_TRANSFER_SYNTAXES)};"
                f" got {self.transfer_syntax!r}."
            )
        if self.transfer_syntax == "jpegls" and not jpegls_available():
            raise ValueError(
                "Argument 'transfer_syntax' 'jpegls' needs a JPEG-LS encoder for pydicom"
                " (pip install pyjpegls); use 'jpeg2000' or 'rle' instead."
            )
        if self.rescale not in _RESCALES:
            raise ValueError(f"Argument 'rescale' must be one of {', '.join(_RESCALES)}; got {self.rescale!r}.")
        distractors = tuple(self.distractors)
        for name in distractors:
            if name not in _DISTRACTORS:
                raise ValueError(
                    f"Argument 'distractors' holds {name!r}; known distractors: {', '.join(_DISTRACTORS)}."
                )
        if len(set(distractors)) != len(distractors):
            raise ValueError(f"Argument 'distractors' names a series twice: {distractors}.")
        object.__setattr__(self, "distractors", distractors)
        if "thin" in distractors and not 2.0 <= self.nominal_thickness_mm <= 8.0:
            raise ValueError(
                "Argument 'distractors' with 'thin' needs a main slice spacing between 2 and 8 mm,"
                " so that the main series stays the one to select."
            )
        _check_int("n_hematomas", self.n_hematomas, 0, 4)
        if self.shape not in _SHAPES:
            raise ValueError(f"Argument 'shape' must be one of {', '.join(_SHAPES)}; got {self.shape!r}.")
        if self.touch_skull and self.n_hematomas == 0:
            raise ValueError("Argument 'touch_skull' needs at least one hematoma ('n_hematomas' >= 1).")
        if self.volume_ml is not None:
            _check_range("volume_ml", self.volume_ml, 0.5, 150.0)
        if self.hematoma_hu is not None:
            _check_range("hematoma_hu", self.hematoma_hu, 20.0, 120.0)
        _check_range("edema_mm", self.edema_mm, 0.0, 15.0)
        _check_range("noise_hu", self.noise_hu, 0.0, 50.0)
        _check_range("shading_hu", self.shading_hu, 0.0, 50.0)
        if self.skull_flap_deg != 0.0:
            _check_range("skull_flap_deg", self.skull_flap_deg, 20.0, 180.0)
            if self.n_hematomas == 0:
                raise ValueError("Argument 'skull_flap_deg' needs a hematoma to lie under the flap"
                                 " ('n_hematomas' >= 1).")
        if self.export not in _EXPORTS:
            raise ValueError(f"Argument 'export' must be one of {', '.join(_EXPORTS)}; got {self.export!r}.")
        if self.clip_hu is not None:
            _check_range("clip_hu", self.clip_hu, 90.0, 3071.0)
        if self.photometric not in _PHOTOMETRICS:
            raise ValueError(
                f"Argument 'photometric' must be one of {', '.join(_PHOTOMETRICS)}; got {self.photometric!r}."
            )
        if not isinstance(self.frame_of_reference, bool):
            raise ValueError(f"Argument 'frame_of_reference' must be true or false; got {self.frame_of_reference!r}.")
        _check_text("patient_id", self.patient_id, 64)
        _check_text("patient_name", self.patient_name, 64)
        _check_text("accession_number", self.accession_number, 16)
        if self.acquisition_datetime is not None:
            if not isinstance(self.acquisition_datetime, datetime):
                raise ValueError(
                    f"Argument 'acquisition_datetime' must be a datetime; got {self.acquisition_datetime!r}."
                )
            if self.acquisition_datetime.tzinfo is not None:
                raise ValueError(
                    "Argument 'acquisition_datetime' must be a local time without a UTC offset,"
                    " as DICOM stores AcquisitionDate/Time."
                )
            if not 1900 <= self.acquisition_datetime.year <= 2999:
                raise ValueError("Argument 'acquisition_datetime' must fall between the years 1900 and 2999.")
        if self.study_instance_uid is not None and not _is_uid(self.study_instance_uid):
            raise ValueError(
                f"Argument 'study_instance_uid' is not a valid DICOM UID: {self.study_instance_uid!r}."
            )
        if self.resolved_pixel_spacing_mm * max(self.rows, self.columns) < 150.0:
            raise ValueError(
                "Arguments 'rows'/'columns' x 'pixel_spacing_mm' give a field of view under 150 mm,"
                " too small for a head; use a larger pixel spacing or leave it out."
            )

    # ------------------------------------------------------------------ derived

    @property
    def resolved_pixel_spacing_mm(self) -> float:
        """The pixel size used: ``pixel_spacing_mm`` or the field of view over the matrix."""
        if self.pixel_spacing_mm is not None:
            return float(self.pixel_spacing_mm)
        return float(self.field_of_view_mm) / max(self.rows, self.columns)

    @property
    def nominal_thickness_mm(self) -> float:
        """The planned spacing along the normal; for an uneven stack, the upper (thicker) block's."""
        if self.uneven_spacing_mm is None:
            return float(self.slice_spacing_mm)
        return float(self.uneven_spacing_mm[1])

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON-ready values (datetime as ISO 8601, tuples as lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def digest(self) -> str:
        """SHA-256 (hex) of every option: the entropy source of the study's UIDs.

        Options added later are left out while at their defaults (the UIDs of
        every phantom written before stay the same).
        """
        options = {k: v for k, v in self.to_dict().items() if k not in _LATER_DEFAULTS or v != _LATER_DEFAULTS[k]}
        text = json.dumps(options, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()
