"""Pieces of the study report shared by ``ichpipe measure`` and ``ichpipe run``.

The report's contract is in ``DESIGN.md`` ("Command-line contract"):
identity fields (``patient_id``, ``study_instance_uid``,
``series_instance_uid``, ``accession_number``, ``acquisition_datetime``),
``geometry``, ``hematoma``, ``segmenter``, ``outputs`` and ``timings_s``.
Fields may be added, never renamed or dropped.

The report carries the PatientID because it is the result for that patient;
logs never print it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from pydicom.dataset import Dataset

from ichpipe import __version__
from ichpipe.dicom_io.geometry import VolumeGeometry
from ichpipe.pipeline.measure.volume import HematomaMeasurement

__all__ = [
    "SegmenterInfo",
    "StageTimer",
    "StudyIdentity",
    "acquisition_datetime",
    "build_study_report",
    "parse_dicom_datetime",
    "study_identity",
]

_DA = re.compile(r"^(\d{4})\.?(\d{2})\.?(\d{2})$")
_TM = re.compile(r"^(\d{2})(?::?(\d{2})(?::?(\d{2})(?:\.(\d{1,6}))?)?)?$")
_DT = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?([+-]\d{4})?$")
_TZ = re.compile(r"^([+-])(\d{2})(\d{2})$")

#: Sources of the acquisition time, most specific first.
_LEVELS: tuple[tuple[str, ...], ...] = (
    ("AcquisitionDateTime",),
    ("AcquisitionDate", "AcquisitionTime"),
    ("SeriesDate", "SeriesTime"),
    ("StudyDate", "StudyTime"),
)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    s = str(value).strip()
    return s or None


def _tz(value: str | None) -> timezone | None:
    if not value:
        return None
    m = _TZ.match(value)
    if not m:
        return None
    sign = -1 if m.group(1) == "-" else 1
    hours, minutes = int(m.group(2)), int(m.group(3))
    if hours > 14 or minutes > 59:
        return None
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _clock(hh: str | None, mm: str | None, ss: str | None, frac: str | None) -> tuple[int, int, int, int] | None:
    h, m, s = int(hh or 0), int(mm or 0), min(int(ss or 0), 59)  # DICOM allows a leap second "60"
    if h > 23 or m > 59:
        return None
    return h, m, s, int((frac or "0").ljust(6, "0"))


def parse_dicom_datetime(
    *, dt: str | None = None, da: str | None = None, tm: str | None = None, tz_offset: str | None = None
) -> datetime | date | None:
    """Parse DICOM DT, or DA + TM, into a ``datetime`` (a ``date`` when there is no time).

    Parameters
    ----------
    dt:
        A DT value (``YYYYMMDDHHMMSS.FFFFFF&ZZXX``, trailing parts optional).
    da, tm:
        A DA value (``YYYYMMDD``, legacy ``YYYY.MM.DD``) and a TM value
        (``HHMMSS.FFFFFF``, trailing parts optional, legacy ``HH:MM:SS``); used
        when ``dt`` is empty.
    tz_offset:
        TimezoneOffsetFromUTC (``+HHMM``), applied when the value has none.

    Returns
    -------
    datetime, date or None
        ``None`` when the values are empty or malformed.
    """
    dt, da, tm = _text(dt), _text(da), _text(tm)
    default_tz = _tz(_text(tz_offset))
    try:
        if dt:
            m = _DT.match(dt)
            if not m:
                return None
            year, month, day, hh, mm, ss, frac, zone = m.groups()
            if hh is None:
                return date(int(year), int(month or 1), int(day or 1))
            clock = _clock(hh, mm, ss, frac)
            if clock is None:
                return None
            tzinfo = _tz(zone) if zone else default_tz
            return datetime(int(year), int(month or 1), int(day or 1), *clock, tzinfo=tzinfo)
        if not da:
            return None
        md = _DA.match(da)
        if not md:
            return None
        day_value = date(int(md.group(1)), int(md.group(2)), int(md.group(3)))
        mt = _TM.match(tm) if tm else None
        if not mt:
            return day_value
        clock = _clock(*mt.groups())
        if clock is None:
            return day_value
        return datetime(day_value.year, day_value.month, day_value.day, *clock, tzinfo=default_tz)
    except ValueError:  # e.g. month 13 or day 31 in a 30-day month: treated as absent
        return None


def _iso(value: datetime | date) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds" if value.microsecond else "seconds")
    return value.isoformat()


def _naive(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    return datetime(value.year, value.month, value.day)


def acquisition_datetime(datasets: Sequence[Dataset]) -> str | None:
    """When the images were acquired, as ISO 8601, or ``None``.

    Sources, most specific first: AcquisitionDateTime; AcquisitionDate +
    AcquisitionTime; SeriesDate + SeriesTime; StudyDate + StudyTime. The first
    source giving a date *and* a time in any dataset wins (else the first
    giving a date); among the datasets the earliest value is returned (the
    start of the acquisition). TimezoneOffsetFromUTC is appended when present.

    Parameters
    ----------
    datasets:
        The series' headers (e.g. every slice), or a single header in a list.
    """
    parsed: list[list[datetime | date]] = []
    for keywords in _LEVELS:
        values: list[datetime | date] = []
        for ds in datasets:
            tz = _text(ds.get("TimezoneOffsetFromUTC"))
            if len(keywords) == 1:
                value = parse_dicom_datetime(dt=_text(ds.get(keywords[0])), tz_offset=tz)
            else:
                value = parse_dicom_datetime(da=_text(ds.get(keywords[0])), tm=_text(ds.get(keywords[1])),
                                             tz_offset=tz)
            if value is not None:
                values.append(value)
        parsed.append(values)
    for want_time in (True, False):
        for values in parsed:
            chosen = [v for v in values if isinstance(v, datetime) or not want_time]
            if chosen:
                return _iso(min(chosen, key=_naive))
    return None


@dataclass(frozen=True)
class StudyIdentity:
    """Who and what a report is about (the contract's identity fields)."""

    patient_id: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    accession_number: str | None = None
    acquisition_datetime: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        """The identity fields, ``None`` where unknown."""
        return {
            "patient_id": self.patient_id,
            "study_instance_uid": self.study_instance_uid,
            "series_instance_uid": self.series_instance_uid,
            "accession_number": self.accession_number,
            "acquisition_datetime": self.acquisition_datetime,
        }


def study_identity(
    datasets: Sequence[Dataset], *, study_uid: str | None = None, series_uid: str | None = None
) -> StudyIdentity:
    """Identity fields of a series from its headers.

    Parameters
    ----------
    datasets:
        The series' headers in volume order (``[s.dataset for s in volume.slices]``).
    study_uid, series_uid:
        Override the UIDs read from the first header (an assembled part of a
        split series keeps its own UIDs).

    Raises
    ------
    ValueError
        If ``datasets`` is empty.
    """
    if not datasets:
        raise ValueError("Argument 'datasets' must hold at least one DICOM header.")
    first = datasets[0]
    return StudyIdentity(
        patient_id=_text(first.get("PatientID")),
        study_instance_uid=study_uid or _text(first.get("StudyInstanceUID")),
        series_instance_uid=series_uid or _text(first.get("SeriesInstanceUID")),
        accession_number=_text(first.get("AccessionNumber")),
        acquisition_datetime=acquisition_datetime(datasets),
    )


@dataclass(frozen=True)
class SegmenterInfo:
    """What produced the mask: a network (with its checkpoint's SHA-256) or an external mask."""

    name: str
    checkpoint_sha256: str | None = None
    version: str | None = __version__

    def to_dict(self) -> dict[str, str | None]:
        """The report's ``segmenter`` object."""
        return {"name": self.name, "checkpoint_sha256": self.checkpoint_sha256, "version": self.version}


@dataclass
class StageTimer:
    """Wall-clock seconds per stage, for the report's ``timings_s``.

    Examples
    --------
    >>> timer = StageTimer()
    >>> with timer.stage("load"):
    ...     pass
    >>> sorted(timer.to_dict())
    ['load']
    """

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the ``with`` block and add it to stage ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + (time.perf_counter() - start)

    def to_dict(self) -> dict[str, float]:
        """Stage -> seconds, rounded to 0.1 ms."""
        return {k: round(v, 4) for k, v in self.seconds.items()}


def build_study_report(
    *,
    identity: StudyIdentity | None,
    geometry: VolumeGeometry,
    hematoma: HematomaMeasurement,
    segmenter: SegmenterInfo,
    outputs: Mapping[str, str] | None = None,
    timings: StageTimer | Mapping[str, float] | None = None,
    warnings: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the study report (contract fields first, then ``extra``).

    Parameters
    ----------
    identity:
        Identity fields; ``None`` (no study) gives nulls.
    geometry:
        The geometry the hematoma was measured on.
    hematoma:
        The measurement.
    segmenter:
        What produced the mask.
    outputs:
        Output name -> path.
    timings:
        Seconds per stage.
    warnings:
        Everything noteworthy (geometry, mask alignment...), de-duplicated in order.
    extra:
        Further fields, added after the contract's (they cannot replace them).

    Raises
    ------
    ValueError
        If ``extra`` tries to replace a contract field.
    """
    times = timings.to_dict() if isinstance(timings, StageTimer) else dict(timings or {})
    report: dict[str, Any] = {
        **(identity or StudyIdentity()).to_dict(),
        "geometry": geometry.to_dict(),
        "hematoma": hematoma.to_dict(),
        "segmenter": segmenter.to_dict(),
        "outputs": {str(k): str(v) for k, v in (outputs or {}).items()},
        "timings_s": {str(k): round(float(v), 4) for k, v in times.items()},
        "warnings": list(dict.fromkeys(warnings)),
        "ichpipe_version": __version__,
    }
    clash = sorted(set(extra or {}) & set(report))
    if clash:
        raise ValueError(f"Argument 'extra' must not replace report fields; it holds {', '.join(clash)}.")
    report.update(extra or {})
    return report
