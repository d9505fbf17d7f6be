"""Linking a patient's serial scans: one scan per accession number, ordered in time.

A patient is a PatientID, optionally with its IssuerOfPatientID. Each scan is
identified by its accession number (检查流水号); where several series of one
accession were measured, the series marked *preferred* in the store is used
(else the latest recorded one). A scan without an accession number is
identified by its StudyInstanceUID.

Time is counted in hours from symptom onset when the clinical data give it,
either as an onset date-time or as hours from onset to the first scan (the
earliest scan of the patient in the store). Without either, hours are counted
from the first scan and the timeline says so in its notes.

Each scan carries what the expansion rule needs to compare like with like:
how it was measured (segmenter and checkpoint SHA-256), its quality flags,
whether it is post-surgical (a ``post_surgical`` flag from an imported table,
or acquired after the patient's recorded surgery time), and the range of hours
it may lie at: a scan whose time of day is unknown (a date-only acquisition
date-time, stored as 00:00) may lie anywhere in that day, so its hours are an
interval (``hours_low`` .. ``hours_high``), never silently midnight.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from ichpipe.errors import TimelineError, UsageError
from ichpipe.pipeline.serial.store import (
    ClinicalRecord,
    Store,
    StoredMeasurement,
    get_clinical,
    list_clinical,
    list_measurements,
)

__all__ = [
    "POST_SURGICAL_CODE",
    "SeriesAlternative",
    "Timeline",
    "TimelineScan",
    "build_timeline",
    "load_timeline",
    "load_timelines",
    "method_label",
    "scan_key",
    "select_per_scan",
]

TimeOrigin = Literal["onset", "first_scan"]

#: Disagreement (hours) between an onset date-time and the onset-to-first-scan
#: interval beyond which the timeline notes it.
_ONSET_TOLERANCE_H = 0.5

#: How long a day-only acquisition time may lie after the stored 00:00.
_DAY_H = 24.0

#: Quality-flag code that marks a post-surgical scan (imported tables set it).
POST_SURGICAL_CODE = "post_surgical"


def method_label(segmenter: str | None, checkpoint_sha256: str | None) -> str:
    """A short name of a measuring method, e.g. ``sa_cbam_unet_slim@3f2a9c1b`` or ``threshold``."""
    name = segmenter or "unknown method"
    return f"{name}@{checkpoint_sha256[:8]}" if checkpoint_sha256 else name


def scan_key(measurement: StoredMeasurement) -> str:
    """Identify the scan a series belongs to: its accession, else its study, else itself."""
    if measurement.accession_number:
        return f"accession:{measurement.accession_number}"
    if measurement.study_instance_uid:
        return f"study:{measurement.study_instance_uid}"
    return f"series:{measurement.series_instance_uid}"


def _per_scan(series: Iterable[StoredMeasurement]) -> list[tuple[StoredMeasurement, list[StoredMeasurement]]]:
    """Each scan's chosen series (preferred, else latest recorded) and its other series."""
    groups: dict[str, list[StoredMeasurement]] = defaultdict(list)
    for m in series:
        groups[scan_key(m)].append(m)
    out = []
    for members in groups.values():
        best = max(members, key=lambda m: (m.preferred, m.recorded_at, m.series_instance_uid))
        out.append((best, [m for m in members if m is not best]))
    return out


def select_per_scan(series: Iterable[StoredMeasurement]) -> list[tuple[StoredMeasurement, int]]:
    """Resolve several series of one scan to one: the preferred one, else the latest recorded.

    Returns
    -------
    list of (StoredMeasurement, int)
        One chosen series per scan key, with how many series that scan had.
    """
    return [(best, 1 + len(others)) for best, others in _per_scan(series)]


@dataclass(frozen=True)
class SeriesAlternative:
    """Another recorded series of the same scan (not the one used)."""

    series_instance_uid: str
    volume_ml: float
    segmenter: str | None
    checkpoint_sha256: str | None
    n_quality_flags: int

    @property
    def method(self) -> tuple[str | None, str | None]:
        """(segmenter, checkpoint SHA-256)."""
        return (self.segmenter, self.checkpoint_sha256)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {
            "series_instance_uid": self.series_instance_uid,
            "volume_ml": self.volume_ml,
            "segmenter": self.segmenter,
            "checkpoint_sha256": self.checkpoint_sha256,
            "method": method_label(self.segmenter, self.checkpoint_sha256),
            "n_quality_flags": self.n_quality_flags,
        }


@dataclass(frozen=True)
class TimelineScan:
    """One scan on a patient's timeline (the series chosen for its accession number).

    ``hours_low`` and ``hours_high`` bound the scan's hours from the time
    origin (onset, else the first scan): equal when the acquisition times are
    known to the second, a day apart when the time of day is unknown.
    ``preferred_by`` says why this series is the one used: ``user`` (chosen
    with ``ichpipe timeline prefer``), ``auto`` (latest run of the accession)
    or ``None`` (no series of the scan is marked; the latest recorded is used).
    """

    index: int
    accession_number: str | None
    series_instance_uid: str
    study_instance_uid: str | None
    acquisition_datetime: datetime
    volume_ml: float
    abc2_ml: float | None
    hours_from_first_scan: float
    hours_from_onset: float | None
    n_series: int
    source: str
    segmenter: str | None
    checkpoint_sha256: str | None = None
    quality_flags: tuple[Mapping[str, Any], ...] = ()
    post_surgical: str | None = None
    time_known: bool = True
    hours_low: float = 0.0
    hours_high: float = 0.0
    preferred_by: str | None = None
    alternatives: tuple[SeriesAlternative, ...] = ()
    source_path: str | None = None

    @property
    def method(self) -> tuple[str | None, str | None]:
        """How the volume was measured: (segmenter, checkpoint SHA-256)."""
        return (self.segmenter, self.checkpoint_sha256)

    @property
    def method_label(self) -> str:
        """The method as text (see :func:`method_label`)."""
        return method_label(self.segmenter, self.checkpoint_sha256)

    @property
    def problems(self) -> tuple[str, ...]:
        """Why the volume cannot be trusted as a natural-history volume (flags, surgery); empty when clean."""
        out = []
        if self.post_surgical is not None:
            out.append(self.post_surgical)
        out += [f"quality flag {f.get('code')}: {f.get('message') or f.get('value')}"
                for f in self.quality_flags if f.get("code") != POST_SURGICAL_CODE]
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {
            "index": self.index,
            "accession_number": self.accession_number,
            "series_instance_uid": self.series_instance_uid,
            "study_instance_uid": self.study_instance_uid,
            "acquisition_datetime": (self.acquisition_datetime.isoformat() if self.time_known
                                     else self.acquisition_datetime.date().isoformat()),
            "time_known": self.time_known,
            "hours_from_first_scan": round(self.hours_from_first_scan, 4),
            "hours_from_onset": None if self.hours_from_onset is None else round(self.hours_from_onset, 4),
            "hours_range": [round(self.hours_low, 4), round(self.hours_high, 4)],
            "volume_ml": self.volume_ml,
            "abc2_ml": self.abc2_ml,
            "n_series": self.n_series,
            "source": self.source,
            "segmenter": self.segmenter,
            "checkpoint_sha256": self.checkpoint_sha256,
            "method": self.method_label,
            "preferred_by": self.preferred_by,
            "quality_flags": [dict(f) for f in self.quality_flags],
            "post_surgical": self.post_surgical,
            "other_series": [a.to_dict() for a in self.alternatives],
        }


@dataclass(frozen=True)
class Timeline:
    """A patient's scans in time order, with where time is counted from.

    Attributes
    ----------
    scans:
        Dated scans, earliest first; the first is the baseline.
    undated:
        Chosen series without an acquisition date-time (kept out of ``scans``).
    time_origin:
        ``"onset"`` when hours are counted from symptom onset, ``"first_scan"``
        when no onset was known.
    onset_source:
        ``"onset_datetime"``, ``"onset_to_first_scan_h"`` or ``None``.
    surgery_datetime:
        When the hematoma was operated on (clinical data), or ``None``.
    notes:
        Sentences for the user (missing onset, undated scans, inconsistencies).
    """

    patient_id: str
    issuer_of_patient_id: str
    scans: tuple[TimelineScan, ...]
    undated: tuple[StoredMeasurement, ...]
    time_origin: TimeOrigin
    onset_source: str | None
    onset_datetime: datetime | None
    onset_to_first_scan_h: float | None
    notes: tuple[str, ...]
    surgery_datetime: datetime | None = None
    baseline_unknown: str | None = None

    def hours(self, scan: TimelineScan) -> float:
        """Hours of ``scan`` from the time origin (onset, else the first scan), as stored."""
        if scan.hours_from_onset is not None:
            return scan.hours_from_onset
        return scan.hours_from_first_scan

    @property
    def origin_text(self) -> str:
        """Where hours (and the expansion window) are counted from, in words."""
        if self.time_origin == "onset":
            source = {"onset_datetime": "the onset date-time",
                      "onset_to_first_scan_h": "the hours from onset to the first scan"}.get(
                self.onset_source or "", "the clinical data")
            return f"symptom onset ({source} in the clinical data)"
        return "the first scan (no onset time recorded: the window may end later than it should)"

    @property
    def methods(self) -> tuple[tuple[str | None, str | None], ...]:
        """The distinct measuring methods of the scans used, in time order of first use."""
        return tuple(dict.fromkeys(s.method for s in self.scans))

    @property
    def mixed_methods(self) -> bool:
        """Whether the scans used were measured in more than one way (segmenter or checkpoint)."""
        return len(self.methods) > 1

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {
            "patient_id": self.patient_id,
            "issuer_of_patient_id": self.issuer_of_patient_id,
            "time_origin": self.time_origin,
            "time_origin_text": self.origin_text,
            "onset_source": self.onset_source,
            "onset_datetime": None if self.onset_datetime is None else self.onset_datetime.isoformat(),
            "onset_to_first_scan_h": self.onset_to_first_scan_h,
            "surgery_datetime": None if self.surgery_datetime is None else self.surgery_datetime.isoformat(),
            "methods": [method_label(*m) for m in self.methods],
            "scans": [s.to_dict() for s in self.scans],
            "undated": [
                {"series_instance_uid": m.series_instance_uid, "accession_number": m.accession_number,
                 "volume_ml": m.volume_ml, "method": method_label(m.segmenter, m.checkpoint_sha256)}
                for m in self.undated
            ],
            "notes": list(self.notes),
        }


def _hours(delta_seconds: float) -> float:
    return delta_seconds / 3600.0


def _post_surgical(m: StoredMeasurement, surgery: datetime | None) -> str | None:
    """Why the scan is post-surgical, or ``None``."""
    for flag in m.quality_flags:
        if flag.get("code") == POST_SURGICAL_CODE:
            return f"post-surgical ({flag.get('message') or 'marked in the imported table'})"
    when = m.acquisition_datetime
    if surgery is None or when is None:
        return None
    if when >= surgery:
        return f"post-surgical (acquired after the surgery at {surgery.isoformat(sep=' ')})"
    if not m.time_known and when + timedelta(hours=_DAY_H) > surgery:
        return f"possibly post-surgical (acquired on the day of the surgery at {surgery.isoformat(sep=' ')})"
    return None


def _span(m: StoredMeasurement) -> tuple[datetime, datetime]:
    """When the scan may have been taken: one instant, or its whole day when only the date is known."""
    when = m.acquisition_datetime or datetime.min
    return when, when + timedelta(hours=0.0 if m.time_known else _DAY_H)


def _baseline_unknown(dated: Sequence[tuple[StoredMeasurement, list[StoredMeasurement]]]) -> str | None:
    """Why the first scan is not known (a date-only scan on the first scan's day), or ``None``."""
    if len(dated) < 2:
        return None
    first_low, first_high = _span(dated[0][0])
    rivals = [m.accession_number or m.series_instance_uid for m, _ in dated[1:]
              if _span(m)[0] < first_high or (first_low == first_high and _span(m)[0] <= first_low < _span(m)[1])]
    if not rivals:
        return None
    return (f"Which scan came first is unknown: accession {dated[0][0].accession_number or '-'} and "
            f"{', '.join(rivals)} were taken the same day and at least one has no time of day.")


def _alternatives(others: Sequence[StoredMeasurement]) -> tuple[SeriesAlternative, ...]:
    return tuple(
        SeriesAlternative(series_instance_uid=o.series_instance_uid, volume_ml=o.volume_ml, segmenter=o.segmenter,
                          checkpoint_sha256=o.checkpoint_sha256, n_quality_flags=len(o.quality_flags))
        for o in sorted(others, key=lambda o: (o.recorded_at, o.series_instance_uid), reverse=True)
    )


def build_timeline(
    patient_id: str,
    series: Sequence[StoredMeasurement],
    clinical: ClinicalRecord | None,
    *,
    issuer_of_patient_id: str = "",
) -> Timeline:
    """Link one patient's recorded series into a timeline.

    Parameters
    ----------
    patient_id, issuer_of_patient_id:
        The patient (only series of this patient should be passed).
    series:
        The patient's recorded series (any order, possibly several per accession).
    clinical:
        The patient's clinical record (onset, surgery), or ``None``.
    """
    notes: list[str] = []
    chosen = _per_scan(series)
    dated = sorted(
        ((m, o) for m, o in chosen if m.acquisition_datetime is not None),
        key=lambda mo: (mo[0].acquisition_datetime, mo[0].accession_number or "", mo[0].series_instance_uid),
    )
    undated = tuple(m for m, _ in chosen if m.acquisition_datetime is None)
    if undated:
        notes.append(
            f"{len(undated)} scan(s) have no acquisition date-time and are left off the timeline; "
            "a verdict they could change is undetermined."
        )
    n_multi = sum(1 for _, o in chosen if o)
    if n_multi:
        notes.append(
            f"{n_multi} accession(s) have several measured series; the preferred series of each is used "
            "(chosen with `ichpipe timeline prefer`, else the latest run)."
        )
    baseline_unknown = _baseline_unknown(dated)
    if baseline_unknown:
        notes.append(baseline_unknown)
    n_dateonly = sum(1 for m, _ in dated if not m.time_known)
    if n_dateonly:
        notes.append(
            f"{n_dateonly} scan(s) have a date but no time of day; each may lie anywhere in its day, "
            "so its hours are a range (shown as ~)."
        )

    onset: datetime | None = None
    onset_source: str | None = None
    onset_h: float | None = None
    if clinical is not None and clinical.onset_datetime is not None:
        onset = clinical.onset_datetime
        onset_source = "onset_datetime"
    elif clinical is not None and clinical.onset_to_first_scan_h is not None:
        onset_h = clinical.onset_to_first_scan_h
        onset_source = "onset_to_first_scan_h"
    surgery = clinical.surgery_datetime if clinical is not None else None

    scans: list[TimelineScan] = []
    first_time = dated[0][0].acquisition_datetime if dated else None
    first_spread = 0.0 if not dated or dated[0][0].time_known else _DAY_H
    if first_time is not None and onset is not None:
        onset_h = _hours((first_time - onset).total_seconds())
        if onset_h < 0:
            notes.append(
                f"The onset date-time is {-onset_h:.2f} h after the first scan; check the clinical data."
            )
        given = clinical.onset_to_first_scan_h if clinical is not None else None
        if given is not None and abs(given - onset_h) > _ONSET_TOLERANCE_H:
            notes.append(
                f"The onset date-time puts the first scan {onset_h:.2f} h after onset, but the clinical "
                f"data give {given:.2f} h; the onset date-time is used."
            )
    elif first_time is not None and onset_h is not None and onset_h < 0:
        notes.append("The onset-to-first-scan interval is negative; check the clinical data.")

    for i, (m, others) in enumerate(dated):
        when = m.acquisition_datetime
        if when is None or first_time is None:  # pragma: no cover - filtered above
            continue
        from_first = _hours((when - first_time).total_seconds())
        spread = 0.0 if m.time_known else _DAY_H
        if onset is not None:  # hours from an onset date-time: only this scan's own time is uncertain
            low = _hours((when - onset).total_seconds())
            high = low + spread
        else:  # hours from the first scan (plus the onset interval): both scans' times count
            base = onset_h or 0.0
            low, high = (base, base) if i == 0 else (base + from_first - first_spread, base + from_first + spread)
        if scans:  # a follow-up is never earlier than the baseline
            low = max(low, scans[0].hours_low)
        scans.append(
            TimelineScan(
                index=i,
                accession_number=m.accession_number,
                series_instance_uid=m.series_instance_uid,
                study_instance_uid=m.study_instance_uid,
                acquisition_datetime=when,
                volume_ml=m.volume_ml,
                abc2_ml=m.abc2_ml,
                hours_from_first_scan=from_first,
                hours_from_onset=None if onset_h is None else onset_h + from_first,
                n_series=1 + len(others),
                source=m.source,
                segmenter=m.segmenter,
                checkpoint_sha256=m.checkpoint_sha256,
                quality_flags=m.quality_flags,
                post_surgical=_post_surgical(m, surgery),
                time_known=m.time_known,
                hours_low=low,
                hours_high=high,
                preferred_by=m.preferred_by,
                alternatives=_alternatives(others),
                source_path=m.source_path,
            )
        )
    origin: TimeOrigin = "onset" if onset_source is not None else "first_scan"
    if origin == "first_scan":
        notes.append("No onset time in the clinical data: hours are counted from the first scan.")
    if len({s.method for s in scans}) > 1:
        notes.append(
            "The scans were measured in different ways ("
            + ", ".join(method_label(*mm) for mm in dict.fromkeys(s.method for s in scans))
            + "); only scans measured like the baseline are compared. "
            "`ichpipe timeline remeasure --patient ID` measures them all one way."
        )
    return Timeline(
        patient_id=patient_id,
        issuer_of_patient_id=issuer_of_patient_id,
        scans=tuple(scans),
        undated=undated,
        time_origin=origin,
        onset_source=onset_source,
        onset_datetime=onset,
        onset_to_first_scan_h=onset_h if onset_source is not None else None,
        notes=tuple(notes),
        surgery_datetime=surgery,
        baseline_unknown=baseline_unknown,
    )


def load_timeline(store: Store, patient_id: str, *, issuer_of_patient_id: str | None = None) -> Timeline:
    """Build one patient's timeline from the store.

    Parameters
    ----------
    issuer_of_patient_id:
        ``None`` accepts any issuer as long as the ID is recorded under one only.

    Raises
    ------
    ichpipe.errors.TimelineError
        If the store holds no series of that patient (exit status 1).
    ichpipe.errors.UsageError
        If the ID is recorded under several issuers and none was given.
    """
    series = list_measurements(store, patient_id=patient_id, issuer_of_patient_id=issuer_of_patient_id)
    if not series:
        raise TimelineError(
            f"The results store {store.location} holds no measurements for the patient ID given; "
            "check the ID (and --issuer), or record or import that patient's scans first."
        )
    issuers = sorted({m.issuer_of_patient_id for m in series})
    if len(issuers) > 1:
        raise UsageError(
            f"The patient ID given is recorded under {len(issuers)} issuers "
            f"({', '.join(repr(i) for i in issuers)}); choose one with --issuer."
        )
    issuer = issuers[0]
    clinical = get_clinical(store, patient_id, issuer)
    return build_timeline(patient_id, series, clinical, issuer_of_patient_id=issuer)


def load_timelines(store: Store) -> list[Timeline]:
    """Build the timeline of every patient with recorded series, sorted by patient ID."""
    by_patient: dict[tuple[str, str], list[StoredMeasurement]] = defaultdict(list)
    for m in list_measurements(store):
        by_patient[(m.patient_id, m.issuer_of_patient_id)].append(m)
    clinical = list_clinical(store)
    return [
        build_timeline(pid, by_patient[(pid, issuer)], clinical.get((pid, issuer)), issuer_of_patient_id=issuer)
        for pid, issuer in sorted(by_patient)
    ]
