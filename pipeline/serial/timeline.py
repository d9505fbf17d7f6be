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
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
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
    "Timeline",
    "TimelineScan",
    "build_timeline",
    "load_timeline",
    "load_timelines",
    "scan_key",
    "select_per_scan",
]

TimeOrigin = Literal["onset", "first_scan"]

#: Disagreement (hours) between an onset date-time and the onset-to-first-scan
#: interval beyond which the timeline notes it.
_ONSET_TOLERANCE_H = 0.5


def scan_key(measurement: StoredMeasurement) -> str:
    """Identify the scan a series belongs to: its accession, else its study, else itself."""
    if measurement.accession_number:
        return f"accession:{measurement.accession_number}"
    if measurement.study_instance_uid:
        return f"study:{measurement.study_instance_uid}"
    return f"series:{measurement.series_instance_uid}"


def select_per_scan(series: Iterable[StoredMeasurement]) -> list[tuple[StoredMeasurement, int]]:
    """Resolve several series of one scan to one: the preferred one, else the latest recorded.

    Returns
    -------
    list of (StoredMeasurement, int)
        One chosen series per scan key, with how many series that scan had.
    """
    groups: dict[str, list[StoredMeasurement]] = defaultdict(list)
    for m in series:
        groups[scan_key(m)].append(m)
    chosen: list[tuple[StoredMeasurement, int]] = []
    for members in groups.values():
        best = max(members, key=lambda m: (m.preferred, m.recorded_at, m.series_instance_uid))
        chosen.append((best, len(members)))
    return chosen


@dataclass(frozen=True)
class TimelineScan:
    """One scan on a patient's timeline (the series chosen for its accession number)."""

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
    quality_flags: tuple[Mapping[str, Any], ...] = ()

    @property
    def flag_codes(self) -> list[str]:
        """The codes of the scan's quality flags (its volume may be wrong), each once."""
        return list(dict.fromkeys(str(f.get("code")) for f in self.quality_flags))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {
            "index": self.index,
            "accession_number": self.accession_number,
            "series_instance_uid": self.series_instance_uid,
            "study_instance_uid": self.study_instance_uid,
            "acquisition_datetime": self.acquisition_datetime.isoformat(),
            "hours_from_first_scan": round(self.hours_from_first_scan, 4),
            "hours_from_onset": None if self.hours_from_onset is None else round(self.hours_from_onset, 4),
            "volume_ml": self.volume_ml,
            "abc2_ml": self.abc2_ml,
            "n_series": self.n_series,
            "source": self.source,
            "segmenter": self.segmenter,
            "quality_flags": [dict(f) for f in self.quality_flags],
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

    def hours(self, scan: TimelineScan) -> float:
        """Hours of ``scan`` from the time origin (onset, else the first scan)."""
        if scan.hours_from_onset is not None:
            return scan.hours_from_onset
        return scan.hours_from_first_scan

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {
            "patient_id": self.patient_id,
            "issuer_of_patient_id": self.issuer_of_patient_id,
            "time_origin": self.time_origin,
            "onset_source": self.onset_source,
            "onset_datetime": None if self.onset_datetime is None else self.onset_datetime.isoformat(),
            "onset_to_first_scan_h": self.onset_to_first_scan_h,
            "scans": [s.to_dict() for s in self.scans],
            "undated": [
                {"series_instance_uid": m.series_instance_uid, "accession_number": m.accession_number,
                 "volume_ml": m.volume_ml}
                for m in self.undated
            ],
            "notes": list(self.notes),
        }


def _hours(delta_seconds: float) -> float:
    return delta_seconds / 3600.0


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
        The patient's clinical record (onset), or ``None``.
    """
    notes: list[str] = []
    chosen = select_per_scan(series)
    dated = sorted(
        ((m, n) for m, n in chosen if m.acquisition_datetime is not None),
        key=lambda mn: (mn[0].acquisition_datetime, mn[0].accession_number or "", mn[0].series_instance_uid),
    )
    undated = tuple(m for m, _ in chosen if m.acquisition_datetime is None)
    if undated:
        notes.append(
            f"{len(undated)} scan(s) have no acquisition date-time and are left off the timeline."
        )
    n_multi = sum(1 for _, n in chosen if n > 1)
    if n_multi:
        notes.append(
            f"{n_multi} accession(s) have several measured series; the preferred (else latest recorded) "
            "series of each is used."
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

    scans: list[TimelineScan] = []
    first_time = dated[0][0].acquisition_datetime if dated else None
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

    for i, (m, n) in enumerate(dated):
        when = m.acquisition_datetime
        if when is None or first_time is None:  # pragma: no cover - filtered above
            continue
        from_first = _hours((when - first_time).total_seconds())
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
                n_series=n,
                source=m.source,
                segmenter=m.segmenter,
                quality_flags=m.quality_flags,
            )
        )
    origin: TimeOrigin = "onset" if onset_source is not None else "first_scan"
    if origin == "first_scan":
        notes.append("No onset time in the clinical data: hours are counted from the first scan.")
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
