"""Import volumes measured elsewhere (CSV tables, no images) into the results store.

Three tables, each optional but ``volumes`` or ``clinical`` needed:

``volumes``
    Patient, accession number and hematoma volume of each scan, in a *long*
    layout (one row per scan) or a *wide* one (one row per patient with
    columns for the first scan and follow-ups 1..N). Optionally the scan
    date-time, and per-scan features kept for the predictor.
``times``
    Scan date-time per accession, when the volumes table has none (long or
    wide as well).
``clinical``
    Per patient: onset date-time or hours from onset to the first scan, and
    further clinical columns kept as JSON for the predictor.

The tables' columns are named by a mapping (:mod:`ichpipe.pipeline.serial.import_mappings`).

Surgery can be marked per scan (a ``post_surgical`` column of the volumes
table: ``1``, ``yes``, ``true``...) or per patient (a ``surgery_datetime``
column of the clinical table); post-surgical scans never count as "not
expanded". A date-time without a time of day is imported as date-only.

Warnings name the patients they concern (:class:`ImportNotice`); the command
line masks the IDs unless ``--log-phi``. An import that leaves patients
without an onset time says so once (:attr:`ImportReport.n_without_onset`):
their window is then counted from the first scan.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ichpipe.errors import ConfigError, TimelineError
from ichpipe.pipeline.config.store_config import StoreConfig
from ichpipe.pipeline.serial.import_mappings import VOLUME_UNITS, ScanColumns, TimelineMapping, TimesTable, VolumesTable
from ichpipe.pipeline.serial.store import (
    ClinicalRecord,
    MeasurementRecord,
    Store,
    imported_series_uid,
    list_clinical,
    open_store,
    record_batch,
)

__all__ = [
    "ImportNotice",
    "ImportOptions",
    "ImportReport",
    "ImportedTables",
    "import_tables",
    "read_tables",
    "record_tables",
    "run_import",
]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# Reading the tables
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Csv:
    path: Path
    header: tuple[str, ...]
    rows: tuple[dict[str, str], ...]  # row number in the file (header = 1) is index + 2
    expected: str | None = None  # the file the mapping expects for this table, for messages

    def require(self, column: str | None, key: str) -> None:
        if column is None:
            return
        if column not in self.header:
            hint = ""
            if self.expected and self.expected != self.path.name:
                hint = f" The mapping expects {self.expected} for this table: is the file given to the right option?"
            raise ConfigError(
                f"Column '{column}' (mapping key {key}) is not in {self.path.name}; "
                f"its columns are: {', '.join(self.header[:40])}{' ...' if len(self.header) > 40 else ''}.{hint}"
            )
        if self.header.count(column) > 1:
            raise ConfigError(f"Column '{column}' (mapping key {key}) occurs twice in {self.path.name}.")


def _read_csv(path: Path, encoding: str, expected: str | None = None) -> _Csv:
    try:
        with path.open(newline="", encoding=encoding) as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise TimelineError(f"The table {path} is empty.")
            header = [h.strip() for h in header]
            rows = []
            for values in reader:
                if not any(v.strip() for v in values):
                    continue
                rows.append({h: (values[i].strip() if i < len(values) else "") for i, h in enumerate(header)})
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"The table {path} is not {encoding} text ({exc.reason}); set 'encoding' in the mapping."
        ) from exc
    except OSError as exc:
        raise TimelineError(f"Cannot read the table {path}: {exc.strerror or exc}.") from exc
    except csv.Error as exc:
        raise TimelineError(f"The table {path} is not valid CSV: {exc}.") from exc
    return _Csv(path=path, header=tuple(header), rows=tuple(rows), expected=expected)


def _where(table: _Csv, index: int, column: str) -> str:
    return f"{table.path.name} row {index + 2}, column '{column}'"


def _number(table: _Csv, index: int, column: str) -> float | None:
    text = table.rows[index].get(column, "")
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise TimelineError(f"{_where(table, index, column)}: {text!r} is not a number.") from None
    if not math.isfinite(value):
        raise TimelineError(f"{_where(table, index, column)}: {text!r} is not a finite number.")
    return value


_Stamp = tuple[datetime, str]  # a date-time and its precision ("datetime" or "date")


def _parse_datetime(text: str, fmt: str) -> _Stamp:
    if fmt == "iso":
        value = datetime.fromisoformat(text)
        date_only = "T" not in text and " " not in text.strip()
        return value, "date" if date_only else "datetime"
    if fmt == "dicom":
        digits = text.split(".")[0]
        value = datetime.strptime(digits.ljust(14, "0")[:14], "%Y%m%d%H%M%S")
        return value, "date" if len(digits) <= 8 else "datetime"
    value = datetime.strptime(text, fmt)
    return value, "datetime" if any(code in fmt for code in ("%H", "%I", "%X", "%c", "%T", "%R")) else "date"


def _datetime(table: _Csv, index: int, column: str, fmt: str) -> _Stamp | None:
    text = table.rows[index].get(column, "")
    if text == "":
        return None
    try:
        value, precision = _parse_datetime(text, fmt)
    except ValueError:
        raise TimelineError(
            f"{_where(table, index, column)}: {text!r} is not a date-time in the '{fmt}' format "
            "(set datetime_format in the mapping)."
        ) from None
    return value.replace(tzinfo=None), precision


_TRUE = {"1", "1.0", "y", "yes", "true", "t", "x", "是", "有"}
_FALSE = {"", "0", "0.0", "n", "no", "false", "f", "否", "无"}


def _flag(table: _Csv, index: int, column: str) -> bool:
    text = table.rows[index].get(column, "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise TimelineError(
        f"{_where(table, index, column)}: {text!r} is not a yes/no value (1/0, yes/no, true/false)."
    )


def _patient(table: _Csv, index: int, column: str, issuer_column: str | None) -> tuple[str, str]:
    pid = table.rows[index].get(column, "")
    if not pid:
        raise TimelineError(f"{_where(table, index, column)}: the patient ID is empty.")
    issuer = table.rows[index].get(issuer_column, "") if issuer_column else ""
    return pid, issuer


def _clinical_value(text: str) -> Any:
    """Keep numbers as numbers, everything else as text, empty as null."""
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


@dataclass(frozen=True)
class ImportNotice:
    """A warning about some patients of an import (not a Python warning).

    ``text`` names the patients (by ID, with the file row as a locator); the
    command line masks the IDs in what it prints unless ``--log-phi``.
    """

    text: str
    patients: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.text


def _who(patients: list[str], *, limit: int = 10) -> str:
    """Patients as text: ``sub101, sub102 and 28 more``."""
    unique = list(dict.fromkeys(patients))
    shown = ", ".join(unique[:limit])
    return shown if len(unique) <= limit else f"{shown} and {len(unique) - limit} more"


@dataclass(frozen=True)
class ImportedTables:
    """What :func:`read_tables` found, checked and ready to record."""

    measurements: tuple[MeasurementRecord, ...]
    clinical: tuple[ClinicalRecord, ...]
    warnings: tuple[ImportNotice, ...]
    n_volume_rows: int
    n_times_unused: int


_ScanKey = tuple[str, str, str]  # (patient_id, issuer, accession)


def _groups(spec: VolumesTable | TimesTable, table: _Csv, section: str) -> list[ScanColumns]:
    """Expand the repeated groups and check that every named column exists."""
    table.require(spec.patient, f"{section}.patient")
    table.require(spec.issuer, f"{section}.issuer")
    groups = [g for group in spec.scans for g in group.expand()]
    for i, g in enumerate(groups):
        table.require(g.accession, f"{section}.scans[{i}].accession")
        table.require(g.volume, f"{section}.scans[{i}].volume")
        table.require(g.datetime, f"{section}.scans[{i}].datetime")
        table.require(g.post_surgical, f"{section}.scans[{i}].post_surgical")
        for name, column in g.features.items():
            table.require(column, f"{section}.scans[{i}].features.{name}")
    return groups


def _read_times(path: Path, mapping: TimelineMapping) -> dict[_ScanKey, _Stamp]:
    """Scan date-times (and their precision) by (patient, issuer, accession)."""
    spec = mapping.times
    if spec is None:
        raise ConfigError(f"A times table ({path.name}) was given but the mapping has no 'times' section.")
    table = _read_csv(path, mapping.encoding, spec.file)
    groups = _groups(spec, table, "times")
    times: dict[_ScanKey, _Stamp] = {}
    for index in range(len(table.rows)):
        pid, issuer = _patient(table, index, spec.patient, spec.issuer)
        for g in groups:
            accession = table.rows[index][g.accession]
            when = _datetime(table, index, g.datetime or "", mapping.datetime_format)
            if not accession:
                if when is not None:
                    raise TimelineError(
                        f"{_where(table, index, g.accession)}: a date-time is given without an accession number."
                    )
                continue
            if when is None:
                continue
            key = (pid, issuer, accession)
            if key in times and times[key] != when:
                raise TimelineError(
                    f"{_where(table, index, g.accession)}: the accession number has two different date-times."
                )
            times[key] = when
    return times


_SURGERY_FLAG = {"code": "post_surgical", "value": True}


def _read_volumes(
    path: Path, mapping: TimelineMapping, scan_times: Mapping[_ScanKey, _Stamp], times_name: str | None
) -> tuple[list[MeasurementRecord], set[_ScanKey], int, list[str]]:
    """Return the scans, the times used, the number of rows and the patients of scans without a volume."""
    spec = mapping.volumes
    if spec is None:
        raise ConfigError(f"A volumes table ({path.name}) was given but the mapping has no 'volumes' section.")
    table = _read_csv(path, mapping.encoding, spec.file)
    groups = _groups(spec, table, "volumes")
    if not any(g.datetime for g in groups) and times_name is None:
        raise ConfigError("The volumes mapping names no datetime column, so a times table (--times) is needed.")
    factor = VOLUME_UNITS[spec.volume_unit]
    seen: dict[_ScanKey, tuple[float, int]] = {}
    used: set[_ScanKey] = set()
    records: list[MeasurementRecord] = []
    no_volume: list[str] = []
    for index in range(len(table.rows)):
        pid, issuer = _patient(table, index, spec.patient, spec.issuer)
        for g in groups:
            vcol = g.volume or ""
            accession = table.rows[index][g.accession]
            volume = _number(table, index, vcol)
            if not accession:
                if volume is not None:
                    raise TimelineError(f"{_where(table, index, vcol)}: a volume is given without an accession number.")
                continue
            if volume is None:
                no_volume.append(pid)
                continue
            if volume < 0:
                raise TimelineError(f"{_where(table, index, vcol)}: the volume is negative.")
            key = (pid, issuer, accession)
            if key in seen:
                if seen[key][0] != volume:
                    raise TimelineError(
                        f"{_where(table, index, g.accession)}: this accession number already has a "
                        f"different volume (row {seen[key][1] + 2})."
                    )
                continue
            seen[key] = (volume, index)
            stamp = _datetime(table, index, g.datetime, mapping.datetime_format) if g.datetime else None
            if stamp is None:
                stamp = scan_times.get(key)
                if stamp is None:
                    where = f"column '{g.datetime}'" if g.datetime else f"the times table ({times_name or 'none'})"
                    raise TimelineError(
                        f"{_where(table, index, g.accession)}: no date-time for this accession number in {where}."
                    )
                used.add(key)
            features = {name: _clinical_value(table.rows[index][col]) for name, col in g.features.items()}
            flags: tuple[dict[str, Any], ...] = ()
            if g.post_surgical and _flag(table, index, g.post_surgical):
                flags = ({**_SURGERY_FLAG, "message": f"marked post-surgical in {path.name}, "
                                                      f"column '{g.post_surgical}'"},)
            records.append(
                MeasurementRecord(
                    patient_id=pid,
                    issuer_of_patient_id=issuer,
                    series_instance_uid=imported_series_uid(pid, accession, issuer),
                    accession_number=accession,
                    acquisition_datetime=stamp[0],
                    acquisition_precision=stamp[1],
                    volume_ml=volume * factor,
                    features=features or None,
                    segmenter=f"import:{path.name}",
                    source="import",
                    quality_flags=flags,
                )
            )
    return records, used, len(table.rows), no_volume


def _read_clinical(
    path: Path, mapping: TimelineMapping, scans: list[MeasurementRecord]
) -> tuple[list[ClinicalRecord], list[str]]:
    """Return the clinical records and the patients (with file row) whose first-scan accession disagrees."""
    spec = mapping.clinical
    if spec is None:
        raise ConfigError(f"A clinical table ({path.name}) was given but the mapping has no 'clinical' section.")
    table = _read_csv(path, mapping.encoding, spec.file)
    for key in ("patient", "issuer", "onset_to_first_scan_h", "onset_datetime", "first_scan_accession",
                "surgery_datetime"):
        table.require(getattr(spec, key), f"clinical.{key}")
    for i, column in enumerate(spec.extra):
        table.require(column, f"clinical.extra[{i}]")
    first_scans: dict[tuple[str, str], MeasurementRecord] = {}
    for r in sorted(scans, key=lambda r: (r.acquisition_datetime or datetime.max)):
        first_scans.setdefault((r.patient_id, r.issuer_of_patient_id), r)
    seen: set[tuple[str, str]] = set()
    records: list[ClinicalRecord] = []
    mismatched: list[str] = []
    for index in range(len(table.rows)):
        pid, issuer = _patient(table, index, spec.patient, spec.issuer)
        if (pid, issuer) in seen:
            raise TimelineError(f"{_where(table, index, spec.patient)}: the patient occurs twice in the table.")
        seen.add((pid, issuer))
        hours = _number(table, index, spec.onset_to_first_scan_h) if spec.onset_to_first_scan_h else None
        onset = _datetime(table, index, spec.onset_datetime, mapping.datetime_format) if spec.onset_datetime else None
        surgery = (_datetime(table, index, spec.surgery_datetime, mapping.datetime_format)
                   if spec.surgery_datetime else None)
        if surgery is not None and surgery[1] == "date":
            # Only the day is known: from its start on, every scan may be post-surgical.
            surgery = (surgery[0].replace(hour=0, minute=0, second=0, microsecond=0), "date")
        if spec.first_scan_accession:
            stated = table.rows[index][spec.first_scan_accession]
            first = first_scans.get((pid, issuer))
            if stated and first is not None and stated != first.accession_number:
                mismatched.append(f"{pid} (row {index + 2})")
        extra = {column: _clinical_value(table.rows[index][column]) for column in spec.extra}
        records.append(
            ClinicalRecord(
                patient_id=pid,
                issuer_of_patient_id=issuer,
                onset_datetime=None if onset is None else onset[0],
                onset_to_first_scan_h=hours,
                clinical=extra or None,
                source=path.name,
                surgery_datetime=None if surgery is None else surgery[0],
            )
        )
    return records, mismatched


def read_tables(
    *,
    mapping: TimelineMapping,
    volumes: Path | None = None,
    times: Path | None = None,
    clinical: Path | None = None,
) -> ImportedTables:
    """Read and check the tables; nothing is written.

    Raises
    ------
    ichpipe.errors.ConfigError
        If a table does not fit the mapping (missing column, no mapping section).
    ichpipe.errors.TimelineError
        If a row cannot be read (bad number or date-time, scan without a time,
        one accession with two volumes); the message names file, row and column.
    """
    if volumes is None and clinical is None:
        raise ConfigError("Give a volumes table, a clinical table, or both.")
    warnings: list[ImportNotice] = []
    scan_times = _read_times(times, mapping) if times is not None else {}
    records: list[MeasurementRecord] = []
    used: set[_ScanKey] = set()
    n_rows = 0
    if volumes is not None:
        records, used, n_rows, no_volume = _read_volumes(
            volumes, mapping, scan_times, times.name if times is not None else None
        )
        if no_volume:
            warnings.append(ImportNotice(
                f"{len(no_volume)} scan(s) in {volumes.name} have an accession number but no volume and were "
                f"skipped; patient(s) {_who(no_volume)}.", tuple(dict.fromkeys(no_volume))))
    unused = sorted(set(scan_times) - used)
    if unused and volumes is not None and times is not None:
        who = [k[0] for k in unused]
        warnings.append(ImportNotice(
            f"{len(unused)} scan time(s) in {times.name} have no volume in {volumes.name} and were not imported; "
            f"patient(s) {_who(who)}.", tuple(dict.fromkeys(who))))
    dateonly = [r.patient_id for r in records if r.acquisition_precision == "date"]
    if dateonly:
        warnings.append(ImportNotice(
            f"{len(dateonly)} scan(s) have a date but no time of day; the timeline treats each as lying anywhere "
            f"in its day (never at midnight); patient(s) {_who(dateonly)}.", tuple(dict.fromkeys(dateonly))))
    clinical_records: list[ClinicalRecord] = []
    if clinical is not None:
        clinical_records, mismatched = _read_clinical(clinical, mapping, records)
        if mismatched:
            warnings.append(ImportNotice(
                f"{clinical.name}: the first-scan accession number of patient(s) {_who(mismatched)} differs from "
                "the earliest scan by date-time in the imported tables; the onset interval is applied to the "
                "earliest scan.", tuple(m.split(" (row")[0] for m in mismatched)))
    return ImportedTables(
        measurements=tuple(records),
        clinical=tuple(clinical_records),
        warnings=tuple(warnings),
        n_volume_rows=n_rows,
        n_times_unused=len(unused),
    )


# ---------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportReport:
    """What an import wrote.

    ``n_without_onset`` counts the imported patients for whom the store now
    holds no onset time (neither a date-time nor hours to the first scan):
    their expansion window is counted from the first scan, which can let a
    later follow-up count; the command line warns about them once.
    """

    store: str
    mapping: str
    n_patients: int
    n_scans: int
    n_clinical: int
    n_times_unused: int
    warnings: tuple[ImportNotice, ...]
    n_without_onset: int = 0
    without_onset: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        """0: the import is complete (warnings do not fail it)."""
        return 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {
            "store": self.store,
            "mapping": self.mapping,
            "patients": self.n_patients,
            "scans": self.n_scans,
            "clinical_rows": self.n_clinical,
            "times_without_volume": self.n_times_unused,
            "patients_without_onset": self.n_without_onset,
            "warnings": [w.text for w in self.warnings],
        }


def record_tables(store: Store, tables: ImportedTables, *, mapping_name: str) -> ImportReport:
    """Record tables read by :func:`read_tables` in ``store`` (one transaction)."""
    record_batch(store, measurements=tables.measurements, clinical=tables.clinical)
    patients = {(m.patient_id, m.issuer_of_patient_id) for m in tables.measurements}
    log.info("Imported %d scans of %d patients and %d clinical rows.",
             len(tables.measurements), len(patients), len(tables.clinical))
    clinical = list_clinical(store)
    without = sorted(
        pid for pid, issuer in patients
        if (c := clinical.get((pid, issuer))) is None or (c.onset_datetime is None and c.onset_to_first_scan_h is None)
    )
    return ImportReport(
        store=store.location,
        mapping=mapping_name,
        n_patients=len(patients),
        n_scans=len(tables.measurements),
        n_clinical=len(tables.clinical),
        n_times_unused=tables.n_times_unused,
        warnings=tables.warnings,
        n_without_onset=len(without),
        without_onset=tuple(without),
    )


def import_tables(
    store: Store,
    *,
    mapping: TimelineMapping,
    volumes: Path | None = None,
    times: Path | None = None,
    clinical: Path | None = None,
) -> ImportReport:
    """Read the tables with ``mapping`` and record them in ``store`` in one transaction.

    Imported scans get :func:`ichpipe.pipeline.serial.store.imported_series_uid` as their
    series UID and ``source="import"``; importing again replaces them.
    """
    tables = read_tables(mapping=mapping, volumes=volumes, times=times, clinical=clinical)
    return record_tables(store, tables, mapping_name=mapping.name)


@dataclass(frozen=True, kw_only=True)
class ImportOptions:
    """What ``ichpipe timeline import`` does."""

    store: StoreConfig
    mapping: TimelineMapping
    volumes: Path | None = None
    times: Path | None = None
    clinical: Path | None = None


def run_import(options: ImportOptions) -> ImportReport:
    """Check the tables, then open (or create) the store and record them.

    Nothing is written, and no store is created, when a table fails its checks.
    """
    tables = read_tables(mapping=options.mapping, volumes=options.volumes, times=options.times,
                         clinical=options.clinical)
    with open_store(options.store, create=True) as store:
        return record_tables(store, tables, mapping_name=options.mapping.name)
