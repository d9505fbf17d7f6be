"""Records of the results store, validated when built: a measured series, a patient's clinical data.

Also the deterministic UID of an imported scan and the key that identifies one scan of a patient.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

__all__ = [
    "PRECISIONS",
    "ClinicalRecord",
    "MeasurementRecord",
    "StoredMeasurement",
    "imported_series_uid",
    "measurement_from_report",
    "method_name",
    "patient_scan_key",
    "quality_flags_from_report",
]

#: Values of ``acquisition_precision``: ``datetime`` (date and time of day known), ``date`` (the day only;
#: the stored time is 00:00 of that day and the scan may have been taken at any time of it).
PRECISIONS = ("datetime", "date")

#: Namespace of the UUIDs behind :func:`imported_series_uid` (fixed forever).
_IMPORT_NAMESPACE = uuid.UUID("5b0f3c3e-6a1d-4c57-9d0e-2f4b8a1c7e65")


def _naive(value: datetime | None, name: str) -> datetime | None:
    """Drop a time-zone offset, keeping the local wall-clock time.

    DICOM times are local and usually carry no offset; all scans of one
    patient come from one site's clock, so wall-clock times compare correctly.
    """
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime or None; got {type(value).__name__}.")
    return value.replace(tzinfo=None)


def _check_text(value: object, name: str, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise ValueError(f"{name} must not be empty.")
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text; got {type(value).__name__}.")
    text = value.strip()
    if required and not text:
        raise ValueError(f"{name} must not be empty.")
    return text or None


def _check_volume(value: object, name: str, *, required: bool) -> float | None:
    if value is None:
        if required:
            raise ValueError(f"{name} must be a number of mL.")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of mL; got {value!r}.")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite volume >= 0 mL; got {value!r}.")
    return float(value)


def _frozen_json(value: Mapping[str, Any] | None, name: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a mapping of names to JSON values.")
    try:
        # Round trip: proves the values are JSON (finite numbers) and copies them.
        plain = json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must hold only JSON values (finite numbers, text, lists): {exc}.") from exc
    return MappingProxyType(plain)


def _flags(value: object) -> tuple[Mapping[str, Any], ...]:
    """Quality flags as a tuple of read-only ``{code, message, value}`` mappings (JSON values)."""
    if value is None:
        return ()
    if isinstance(value, Mapping) or isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise ValueError("quality_flags must be a list of {code, message, value} mappings.")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise ValueError(f"quality_flags[{i}] must be a mapping with code, message and value.")
        code = item.get("code")
        if not isinstance(code, str) or not code.strip():
            raise ValueError(f"quality_flags[{i}].code must be non-empty text.")
        message = item.get("message")
        flag = {"code": code.strip(), "message": "" if message is None else str(message),
                "value": item.get("value")}
        out.append(_frozen_json(flag, f"quality_flags[{i}]") or MappingProxyType({}))
    return tuple(out)


def quality_flags_from_report(report: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    """The quality flags of a study report (``report["quality"]["flags"]``), read defensively.

    A report without a ``quality`` block (older reports) has no flags. A block
    of an unexpected shape is not dropped: it becomes one flag with code
    ``quality_unreadable``, so that the volume is never taken for clean.
    """
    quality = report.get("quality")
    if quality is None:
        return ()
    flags = quality.get("flags") if isinstance(quality, Mapping) else None
    if isinstance(quality, Mapping) and flags is None:
        return ()
    try:
        return _flags(flags)
    except ValueError as exc:
        return _flags([{"code": "quality_unreadable",
                        "message": f"The report's quality block could not be read ({exc})",
                        "value": None}])


def _precision_of(text: str) -> str:
    """``date`` for an ISO 8601 date without a time of day, else ``datetime``."""
    return "date" if "T" not in text and " " not in text.strip() else "datetime"


@dataclass(frozen=True, kw_only=True)
class MeasurementRecord:
    """One measured series, as ``ichpipe run`` (or an import) records it.

    Parameters
    ----------
    patient_id:
        DICOM PatientID (0010,0020).
    series_instance_uid:
        The key: recording the same series again replaces its row.
    volume_ml:
        Hematoma volume in mL.
    acquisition_datetime:
        When the series was acquired (AcquisitionDateTime, else
        Series/Study date and time). A time-zone offset is dropped, keeping
        the wall-clock time. ``None`` keeps the series out of the timeline.
    accession_number:
        AccessionNumber (0008,0050): identifies the scan in the timeline.
        Without it the StudyInstanceUID stands in.
    issuer_of_patient_id:
        IssuerOfPatientID (0010,0021); ``""`` when absent.
    study_instance_uid, abc2_ml, segmenter, segmenter_version, checkpoint_sha256:
        As in the study report.
    features:
        Predictor features of this scan (JSON values), or ``None``.
    source:
        ``"dicom"`` for measured series, ``"import"`` for imported tables.
    preferred:
        Make this the series used for its accession number (other series of
        the same accession lose the mark), unless a user chose another series
        of that accession (``ichpipe timeline prefer``): that choice stands and
        this series is recorded beside it. With ``False`` the mark stays where
        it is; an accession with no marked series uses its latest recorded one.
    quality_flags:
        Every reason the volume may be wrong (the report's ``quality.flags``:
        ``{code, message, value}``); a flagged follow-up never counts as
        "not expanded". Imported tables add ``post_surgical`` here.
    acquisition_precision:
        ``"datetime"``, ``"date"`` (only the day is known; the stored time is
        00:00) or ``None`` (not said: stores older than schema version 4).
    source_path:
        The study folder, DICOMDIR or zip the series was read from (absolute),
        so that ``ichpipe timeline remeasure`` can run it again; ``None`` for imports.
    """

    patient_id: str
    series_instance_uid: str
    volume_ml: float
    acquisition_datetime: datetime | None
    accession_number: str | None = None
    issuer_of_patient_id: str = ""
    study_instance_uid: str | None = None
    abc2_ml: float | None = None
    segmenter: str | None = None
    segmenter_version: str | None = None
    checkpoint_sha256: str | None = None
    features: Mapping[str, Any] | None = None
    source: str = "dicom"
    preferred: bool = True
    quality_flags: tuple[Mapping[str, Any], ...] = ()
    acquisition_precision: str | None = None
    source_path: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "patient_id", _check_text(self.patient_id, "patient_id", required=True))
        set_(self, "quality_flags", _flags(self.quality_flags))
        set_(self, "source_path", _check_text(self.source_path, "source_path", required=False))
        if self.acquisition_precision is not None and self.acquisition_precision not in PRECISIONS:
            raise ValueError(
                f"acquisition_precision must be one of {', '.join(PRECISIONS)} or None; "
                f"got {self.acquisition_precision!r}."
            )
        if self.acquisition_datetime is None and self.acquisition_precision is not None:
            raise ValueError("acquisition_precision must be None when acquisition_datetime is None.")
        set_(
            self,
            "series_instance_uid",
            _check_text(self.series_instance_uid, "series_instance_uid", required=True),
        )
        set_(self, "volume_ml", _check_volume(self.volume_ml, "volume_ml", required=True))
        set_(self, "abc2_ml", _check_volume(self.abc2_ml, "abc2_ml", required=False))
        set_(
            self,
            "acquisition_datetime",
            _naive(self.acquisition_datetime, "acquisition_datetime"),
        )
        for name in ("accession_number", "study_instance_uid", "segmenter", "segmenter_version",
                     "checkpoint_sha256"):
            set_(self, name, _check_text(getattr(self, name), name, required=False))
        set_(
            self,
            "issuer_of_patient_id",
            _check_text(self.issuer_of_patient_id, "issuer_of_patient_id", required=False) or "",
        )
        set_(self, "source", _check_text(self.source, "source", required=True))
        set_(self, "features", _frozen_json(self.features, "features"))
        if not isinstance(self.preferred, bool):
            raise ValueError("preferred must be true or false.")


@dataclass(frozen=True, kw_only=True)
class StoredMeasurement(MeasurementRecord):
    """A row of ``measurements`` as read back: a record plus when it was written.

    Attributes
    ----------
    recorded_at:
        When the row was written.
    preferred_by:
        Who gave the series its ``preferred`` mark: ``"user"`` (``ichpipe
        timeline prefer``: it stays until the user chooses again), ``"auto"``
        (the latest run or import of the accession, no user choice), ``None``
        when the series is not preferred.
    """

    recorded_at: datetime
    preferred_by: str | None = None

    @property
    def method(self) -> tuple[str | None, str | None]:
        """How the volume was measured: (segmenter name, checkpoint SHA-256)."""
        return (self.segmenter, self.checkpoint_sha256)

    @property
    def time_known(self) -> bool:
        """Whether the time of day of the acquisition is known.

        ``False`` for a date-only value, and for a legacy row (precision not
        recorded) whose time is exactly 00:00:00, which is what a date-only
        value became before schema version 4.
        """
        when = self.acquisition_datetime
        if when is None:
            return False
        if self.acquisition_precision == "date":
            return False
        if self.acquisition_precision is None:
            return (when.hour, when.minute, when.second, when.microsecond) != (0, 0, 0, 0)
        return True


@dataclass(frozen=True, kw_only=True)
class ClinicalRecord:
    """Clinical data of one patient used by the timeline (onset) and kept for the predictor.

    Parameters
    ----------
    patient_id, issuer_of_patient_id:
        The patient, as in :class:`MeasurementRecord`.
    onset_datetime:
        Symptom onset; wins over ``onset_to_first_scan_h`` when both are given.
    onset_to_first_scan_h:
        Hours from onset to the patient's first (earliest) scan.
    clinical:
        Further clinical values (JSON), e.g. age and history for the predictor.
    source:
        Where the values came from (a file name), for the record.
    surgery_datetime:
        When the hematoma was operated on (craniotomy, evacuation, drain); every
        scan from then on is post-surgical and never counts as "not expanded".
    """

    patient_id: str
    issuer_of_patient_id: str = ""
    onset_datetime: datetime | None = None
    onset_to_first_scan_h: float | None = None
    clinical: Mapping[str, Any] | None = None
    source: str | None = None
    surgery_datetime: datetime | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "patient_id", _check_text(self.patient_id, "patient_id", required=True))
        set_(
            self,
            "issuer_of_patient_id",
            _check_text(self.issuer_of_patient_id, "issuer_of_patient_id", required=False) or "",
        )
        set_(self, "onset_datetime", _naive(self.onset_datetime, "onset_datetime"))
        set_(self, "surgery_datetime", _naive(self.surgery_datetime, "surgery_datetime"))
        h = self.onset_to_first_scan_h
        if h is not None:
            if isinstance(h, bool) or not isinstance(h, int | float) or not math.isfinite(h):
                raise ValueError(f"onset_to_first_scan_h must be a finite number of hours; got {h!r}.")
            set_(self, "onset_to_first_scan_h", float(h))
        set_(self, "clinical", _frozen_json(self.clinical, "clinical"))
        set_(self, "source", _check_text(self.source, "source", required=False))


def imported_series_uid(patient_id: str, accession_number: str, issuer_of_patient_id: str = "") -> str:
    """Return the deterministic ``2.25.<uuid5>`` UID that stands for an imported scan."""
    name = f"ichpipe-import\x1f{issuer_of_patient_id}\x1f{patient_id}\x1f{accession_number}"
    return f"2.25.{uuid.uuid5(_IMPORT_NAMESPACE, name).int}"


def _setting_pair(details: Mapping[str, Any], key: str, tag: str, settings: tuple[str, str], default: float) -> str:
    """``+<tag><A>:<B>`` for the step ``details[key]`` when its first setting A is set (B: the second, or
    ``default``), else ``""``: the suffix :func:`method_name` gives a step named by two settings.

    >>> _setting_pair({"edge_rim": {"rim_mm": 1.0, "min_hu": 42.0}}, "edge_rim", "rim", ("rim_mm", "min_hu"), 0.0)
    '+rim1:42'
    >>> _setting_pair({"edge_rim": {"rim_mm": None}}, "edge_rim", "rim", ("rim_mm", "min_hu"), 0.0)
    ''
    """
    step = details.get(key) or {}
    first, second = settings
    if not isinstance(step, Mapping) or step.get(first) is None:
        return ""
    return f"+{tag}{float(step[first]):g}:{float(step.get(second) or default):g}"


def method_name(name: str | None, details: Mapping[str, Any] | None) -> str | None:
    """The stored name of a measuring method: the segmenter's name, plus ``+ends:<SHA-256[:8]>`` when an
    end-slice network grew its mask (``details``: the report's ``segmenter_details`` or ``describe()``),
    ``:hu<N>`` when that growth was held to the end slice's blood (``end_slice_hu``), and
    ``+xa:<SHA-256[:8]>`` when an extra-axial network added collections against the inner table (``:ld<N>``
    when large collections under its ``min_median_hu`` were added too: ``low_density_min_ml``; ``g<P>`` when
    they were grown to its call at probability P: ``low_density_grow_threshold``; ``:c<N>`` when acute
    components had to stand N HU above the brain around them: ``min_contrast_hu``; ``:na`` when components
    were added on narrow slices too: ``narrow_slices: anchored``; ``:j<S>`` when a component joined to blood
    found away from the table had to add a share S along it, since the seventeenth session; ``:fd<N>`` when
    a large low-density one joined to found blood N mm deep or more was refused:
    ``low_density_max_found_depth_mm``, since the thirty-third session; ``:jh<N>`` when one joined to
    found blood away from the table counted as acute only from a median of N HU: ``joined_min_median_hu``,
    since the thirty-eighth session),
    ``+faint<N>:<M>p<P>`` when components under N HU grew into the call at probability P from M HU
    (``inference.faint_max_median_hu``; ``a<A>`` after it when those under A mL did not beside an acute one of A
    mL: ``faint_beside_acute_ml``, since the thirty-ninth session), ``+slab<N>`` when thin slices were shown to
    the networks as slabs of N mm (``inference.thin_slab_mm``; it changes nothing on slices 2.5 mm apart or
    more, but the method is the setting), ``+px<N>`` when a slice whose network pixel would be wider than N mm
    was read on a larger grid (``inference.max_network_pixel_mm``: a large field of view; again the setting),
    ``+up<N>:<E>`` when a head turned N degrees or more (and E times longer than wide) was read turned
    upright (``inference.upright_min_degrees``, ``upright_min_elongation``; again the setting),
    ``+vz<S>:<F>`` when sections near the vertex under a share S of the widest were read enlarged by up to
    F (``inference.vertex_zoom_share``, ``vertex_max_zoom``; again the setting; ``:h<N>`` when the main
    network's pieces there were kept only from a median of N HU: ``vertex_zoom_min_hu``, since the
    thirty-second session: a name without it was measured with or without that rule),
    ``+dense<N>:<M>`` when bleeds were grown beyond their lower end slices over pixels of N-M HU
    (``inference.dense_ends``, since the thirty-second session; ``:b`` when beyond both ends: ``toward: both``,
    ``:b<C>`` since the thirty-third when a slice toward the head had to cover a share C: ``head_min_cover``;
    ``:f`` since the thirty-fifth when the lower end slices were filled first: ``fill_end_slice``; ``:i<R>``
    since the thirty-seventh when every slice was then filled under the blood beside it in R passes:
    ``fill_between_rounds``),
    ``+blend:<SHA-256[:8]>`` when a blend-side network's reading was added to the blood
    (``inference.blend_side.add``; measured only, it changes no volume and no method),
    ``+bone<N>:<S>`` when single-slice pieces under N mL with a share S on bone's
    edge were not counted (``inference.bone_edge_max_ml``, ``bone_edge_share``), ``+calc<N>:<S>`` when
    components with a share S near foci of N HU were not counted as calcification (``inference.calcified``,
    since the thirty-fourth session), and
    ``+mirror`` when the networks ran with test-time mirroring (``inference.mirror``).

    Serial comparisons treat (name, checkpoint SHA-256) as the method, so a scan measured with the
    end-slice or extra-axial step and one measured without it, or with another ``end_slice_hu``,
    never count as measured the same way (nor one measured with and one without mirroring).

    >>> method_name("sa_cbam_unet_slim", {"end_extension": {"checkpoint_sha256": "4a9d6869bd03dbb6"}})
    'sa_cbam_unet_slim+ends:4a9d6869'
    >>> method_name("sa_cbam_unet_slim", {"end_extension": {"checkpoint_sha256": "4a9d6869bd", "end_slice_hu": 45.0}})
    'sa_cbam_unet_slim+ends:4a9d6869:hu45'
    >>> method_name("sa_cbam_unet_slim", {"extra_axial": {"checkpoint_sha256": "0123456789"}})
    'sa_cbam_unet_slim+xa:01234567'
    >>> method_name("sa_cbam_unet_slim", {"extra_axial": {"checkpoint_sha256": "01234567", "low_density_min_ml": 5}})
    'sa_cbam_unet_slim+xa:01234567:ld5'
    >>> method_name("sa_cbam_unet_slim", {"extra_axial": {"checkpoint_sha256": "01234567", "low_density_min_ml": 5,
    ...                                                   "low_density_grow_threshold": 0.3}})
    'sa_cbam_unet_slim+xa:01234567:ld5g0.3'
    >>> method_name("sa_cbam_unet_slim", {"extra_axial": {"checkpoint_sha256": "01234567", "min_contrast_hu": 15.0}})
    'sa_cbam_unet_slim+xa:01234567:c15'
    >>> method_name("sa_cbam_unet_slim", {"extra_axial": {"checkpoint_sha256": "0123", "narrow_slices": "anchored"}})
    'sa_cbam_unet_slim+xa:0123:na'
    >>> method_name("sa_cbam_unet_slim", {"extra_axial": {"checkpoint_sha256": "0123", "joined_table_share": 0.05}})
    'sa_cbam_unet_slim+xa:0123:j0.05'
    >>> method_name("sa_cbam_unet_slim", {"extra_axial": {"checkpoint_sha256": "0123", "joined_table_share": 0.05,
    ...                                                   "judged_on": "added"}})
    'sa_cbam_unet_slim+xa:0123:j0.05:a'
    >>> method_name("sa_cbam_unet_slim", {"extra_axial": {"checkpoint_sha256": "0123", "judged_on": "added",
    ...                                                   "low_density_max_found_depth_mm": 12.0}})
    'sa_cbam_unet_slim+xa:0123:a:fd12'
    >>> method_name("sa_cbam_unet_slim", {"extra_axial": {"checkpoint_sha256": "0123", "joined_min_median_hu": 56.0,
    ...                                                   "low_density_max_found_depth_mm": 12}})
    'sa_cbam_unet_slim+xa:0123:fd12:jh56'
    >>> method_name("sa_cbam_unet_slim", {"mirror": True})
    'sa_cbam_unet_slim+mirror'
    >>> method_name("sa_cbam_unet_slim", {"faint_growth": {"max_median_hu": 55.0, "min_hu": 35.0, "threshold": 0.3},
    ...                                   "mirror": True})
    'sa_cbam_unet_slim+faint55:35p0.3+mirror'
    >>> method_name("sa_cbam_unet_slim", {"faint_growth": {"max_median_hu": 55.0, "min_hu": 35.0, "threshold": 0.3,
    ...                                                    "beside_acute_ml": 1.0}})
    'sa_cbam_unet_slim+faint55:35p0.3a1'
    >>> method_name("sa_cbam_unet_slim", {"thin_slab_mm": 5.0, "mirror": True})
    'sa_cbam_unet_slim+slab5+mirror'
    >>> method_name("sa_cbam_unet_slim", {"thin_slab_mm": 5.0, "max_network_pixel_mm": 1.1})
    'sa_cbam_unet_slim+slab5+px1.1'
    >>> method_name("sa_cbam_unet_slim", {"max_network_pixel_mm": 1.1, "upright": {"min_degrees": 10.0,
    ...                                                                          "min_elongation": 1.05}})
    'sa_cbam_unet_slim+px1.1+up10:1.05'
    >>> method_name("sa_cbam_unet_slim", {"vertex_zoom": {"min_share": 1.0, "max_factor": 2.0}, "mirror": True})
    'sa_cbam_unet_slim+vz1:2+mirror'
    >>> method_name("sa_cbam_unet_slim", {"vertex_zoom": {"min_share": 0.6, "max_factor": 2.0, "min_hu": 55.0}})
    'sa_cbam_unet_slim+vz0.6:2:h55'
    >>> method_name("sa_cbam_unet_slim", {"bone_edge": {"max_ml": 1.0, "share": 0.2}, "mirror": True})
    'sa_cbam_unet_slim+bone1:0.2+mirror'
    >>> method_name("sa_cbam_unet_slim", {"calcified": {"min_hu": 110.0, "min_share": 0.5}, "mirror": True})
    'sa_cbam_unet_slim+calc110:0.5+mirror'
    >>> method_name("sa_cbam_unet_slim", {"edge_rim": {"rim_mm": 1.0, "min_hu": 42.0}, "mirror": True})
    'sa_cbam_unet_slim+rim1:42+mirror'
    >>> method_name("sa_cbam_unet_slim", {"enclosed_fill": {"close_mm": 2.0, "min_hu": 20.0}, "mirror": True})
    'sa_cbam_unet_slim+encl2:20+mirror'
    >>> method_name("sa_cbam_unet_slim", {"dense_ends": {"min_hu": 60.0, "max_hu": 90.0, "toward": "feet"}})
    'sa_cbam_unet_slim+dense60:90'
    >>> method_name("sa_cbam_unet_slim", {"dense_ends": {"min_hu": 60.0, "max_hu": 90.0, "toward": "both"}})
    'sa_cbam_unet_slim+dense60:90:b'
    >>> method_name("sa_cbam_unet_slim", {"dense_ends": {"min_hu": 60.0, "max_hu": 90.0, "toward": "both",
    ...                                                  "head_min_cover": 0.5}})
    'sa_cbam_unet_slim+dense60:90:b0.5'
    >>> method_name("sa_cbam_unet_slim", {"dense_ends": {"min_hu": 60.0, "max_hu": 90.0, "toward": "both",
    ...                                                  "head_min_cover": 0.5, "fill_end_slice": True}})
    'sa_cbam_unet_slim+dense60:90:b0.5:f'
    >>> method_name("sa_cbam_unet_slim", {"dense_ends": {"min_hu": 60.0, "max_hu": 90.0, "toward": "both",
    ...                                                  "head_min_cover": 0.5, "fill_end_slice": True,
    ...                                                  "fill_between_rounds": 2}})
    'sa_cbam_unet_slim+dense60:90:b0.5:f:i2'
    >>> method_name("sa_cbam_unet_slim", {"blend_side": {"checkpoint_sha256": "8f2c01ab99", "add": True}})
    'sa_cbam_unet_slim+blend:8f2c01ab'
    >>> method_name("sa_cbam_unet_slim", {"blend_side": {"checkpoint_sha256": "8f2c01ab99", "add": False}})
    'sa_cbam_unet_slim'
    >>> method_name("threshold", {})
    'threshold'
    """
    if not name:
        return name
    details = details or {}
    method = name
    ends = details.get("end_extension") or {}
    if isinstance(ends, Mapping) and ends.get("checkpoint_sha256"):
        method = f"{method}+ends:{str(ends['checkpoint_sha256'])[:8]}"
        hu = ends.get("end_slice_hu")
        method = method if hu is None else f"{method}:hu{float(hu):g}"
    extra = details.get("extra_axial") or {}
    if isinstance(extra, Mapping) and extra.get("checkpoint_sha256"):
        method = f"{method}+xa:{str(extra['checkpoint_sha256'])[:8]}"
        low = extra.get("low_density_min_ml")
        method = method if low is None else f"{method}:ld{float(low):g}"
        grow = extra.get("low_density_grow_threshold")
        method = method if low is None or grow is None else f"{method}g{float(grow):g}"
        contrast = extra.get("min_contrast_hu")
        method = method if contrast is None else f"{method}:c{float(contrast):g}"
        method = f"{method}:na" if extra.get("narrow_slices") == "anchored" else method
        joined = extra.get("joined_table_share")
        method = method if joined is None else f"{method}:j{float(joined):g}"
        method = f"{method}:a" if extra.get("judged_on") == "added" else method
        deep = extra.get("low_density_max_found_depth_mm")
        method = method if deep is None else f"{method}:fd{float(deep):g}"
        joined_hu = extra.get("joined_min_median_hu")
        method = method if joined_hu is None else f"{method}:jh{float(joined_hu):g}"
    blend = details.get("blend_side") or {}
    if isinstance(blend, Mapping) and blend.get("add") and blend.get("checkpoint_sha256"):
        method = f"{method}+blend:{str(blend['checkpoint_sha256'])[:8]}"
    faint = details.get("faint_growth") or {}
    if isinstance(faint, Mapping) and faint.get("max_median_hu") is not None:
        method = (f"{method}+faint{float(faint['max_median_hu']):g}:{float(faint.get('min_hu') or 0.0):g}"
                  f"p{float(faint.get('threshold') or 0.0):g}")
        if faint.get("beside_acute_ml") is not None:
            method += f"a{float(faint['beside_acute_ml']):g}"
    method += _setting_pair(details, "enclosed_fill", "encl", ("close_mm", "min_hu"), 0.0)
    method += _setting_pair(details, "edge_rim", "rim", ("rim_mm", "min_hu"), 0.0)
    dense = _setting_pair(details, "dense_ends", "dense", ("min_hu", "max_hu"), 0.0)
    ends = details.get("dense_ends") or {}
    if dense and ends.get("toward") == "both":
        cover = ends.get("head_min_cover")
        dense += ":b" if cover is None else f":b{float(cover):g}"
    if dense and ends.get("fill_end_slice"):
        dense += ":f"
    if dense and ends.get("fill_between_rounds"):
        dense += f":i{int(ends['fill_between_rounds'])}"
    method += dense
    slab = details.get("thin_slab_mm")
    if isinstance(slab, (int, float)):
        method = f"{method}+slab{float(slab):g}"
    widest = details.get("max_network_pixel_mm")
    if isinstance(widest, (int, float)):
        method = f"{method}+px{float(widest):g}"
    method += _setting_pair(details, "upright", "up", ("min_degrees", "min_elongation"), 1.0)
    method += _setting_pair(details, "vertex_zoom", "vz", ("min_share", "max_factor"), 1.0)
    zoom = details.get("vertex_zoom") or {}
    if isinstance(zoom, Mapping) and zoom.get("min_share") is not None and zoom.get("min_hu") is not None:
        method = f"{method}:h{float(zoom['min_hu']):g}"
    method += _setting_pair(details, "bone_edge", "bone", ("max_ml", "share"), 0.0)
    method += _setting_pair(details, "calcified", "calc", ("min_hu", "min_share"), 0.0)
    if details.get("mirror"):
        method = f"{method}+mirror"
    return method


def measurement_from_report(
    report: Mapping[str, Any],
    *,
    features: Mapping[str, Any] | None = None,
    preferred: bool = True,
    source_path: str | None = None,
) -> MeasurementRecord:
    """Build a :class:`MeasurementRecord` from a study report (``run --json`` layout).

    Reads ``patient_id``, ``issuer_of_patient_id`` (optional),
    ``study_instance_uid``, ``series_instance_uid``, ``accession_number``,
    ``acquisition_datetime`` (ISO 8601 or ``None``; a date without a time of
    day is recorded with ``acquisition_precision="date"``), ``hematoma.volume_ml``,
    ``hematoma.abc2_ml``, ``segmenter.name`` (with :func:`method_name`'s suffix when
    ``segmenter_details.end_extension`` names an end-slice network), ``segmenter.version``,
    ``segmenter.checkpoint_sha256``, ``quality.flags`` (optional, see
    :func:`quality_flags_from_report`) and, unless ``features`` is given,
    ``features``. ``source_path`` is where the study was read from.

    Raises
    ------
    ValueError
        If a required key is missing or a value is invalid (the message names it).
    """
    try:
        hematoma = report["hematoma"]
        volume = hematoma["volume_ml"]
    except (KeyError, TypeError):
        raise ValueError("The study report has no hematoma.volume_ml.") from None
    segmenter = report.get("segmenter") or {}
    when = report.get("acquisition_datetime")
    precision = "datetime" if isinstance(when, datetime) else None
    if isinstance(when, str):
        precision = _precision_of(when)
        try:
            when = datetime.fromisoformat(when)
        except ValueError:
            raise ValueError(
                f"The study report's acquisition_datetime {when!r} is not ISO 8601."
            ) from None
    return MeasurementRecord(
        patient_id=report.get("patient_id"),  # type: ignore[arg-type]  # checked in __post_init__
        issuer_of_patient_id=report.get("issuer_of_patient_id") or "",
        series_instance_uid=report.get("series_instance_uid"),  # type: ignore[arg-type]
        study_instance_uid=report.get("study_instance_uid"),
        accession_number=report.get("accession_number"),
        acquisition_datetime=when,
        volume_ml=volume,
        abc2_ml=hematoma.get("abc2_ml"),
        segmenter=method_name(segmenter.get("name"), report.get("segmenter_details")),
        segmenter_version=segmenter.get("version"),
        checkpoint_sha256=segmenter.get("checkpoint_sha256"),
        features=features if features is not None else report.get("features"),
        source="dicom",
        preferred=preferred,
        quality_flags=quality_flags_from_report(report),
        acquisition_precision=precision if when is not None else None,
        source_path=source_path,
    )


def patient_scan_key(accession: str | None, study_uid: str | None, series_uid: str) -> str:
    """The key that identifies one scan of a patient: accession, else study, else series."""
    if accession:
        return f"accession:{accession}"
    if study_uid:
        return f"study:{study_uid}"
    return f"series:{series_uid}"
