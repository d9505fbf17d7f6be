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
    open_store,
    record_batch,
)

__all__ = [
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

    def require(self, column: str | None, key: str) -> None:
        if column is None:
            return
        if column not in self.header:
            raise ConfigError(
                f"Column '{column}' (mapping key {key}) is not in {self.path.name}; "
                f"its columns are: {', '.join(self.header[:40])}{' ...' if len(self.header) > 40 else ''}."
            )
        if self.header.count(column) > 1:
            raise ConfigError(f"Column '{column}' (mapping key {key}) occurs twice in {self.path.name}.")


def _read_csv(path: Path, encoding: str) -> _Csv:
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
    return _Csv(path=path, header=tuple(header), rows=tuple(rows))


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


def _parse_datetime(text: str, fmt: str) -> datetime:
    if fmt == "iso":
        return datetime.fromisoformat(text)
    if fmt == "dicom":
        digits = text.split(".")[0]
        return datetime.strptime(digits.ljust(14, "0")[:14], "%Y%m%d%H%M%S")
    return datetime.strptime(text, fmt)


def _datetime(table: _Csv, index: int, column: str, fmt: str) -> datetime | None:
    text = table.rows[index].get(column, "")
    if text == "":
        return None
    try:
        return _parse_datetime(text, fmt).replace(tzinfo=None)
    except ValueError:
        raise TimelineError(
            f"{_where(table, index, column)}: {text!r} is not a date-time in the '{fmt}' format "
            "(set datetime_format in the mapping)."
        ) from None


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
class ImportedTables:
    """What :func:`read_tables` found, checked and ready to record."""

    measurements: tuple[MeasurementRecord, ...]
    clinical: tuple[ClinicalRecord, ...]
    warnings: tuple[str, ...]
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
        for name, column in g.features.items():
            table.require(column, f"{section}.scans[{i}].features.{name}")
    return groups


def _read_times(path: Path, mapping: TimelineMapping) -> dict[_ScanKey, datetime]:
    spec = mapping.times
    if spec is None:
        raise ConfigError(f"A times table ({path.name}) was given but the mapping has no 'times' section.")
    table = _read_csv(path, mapping.encoding)
    groups = _groups(spec, table, "times")
    times: dict[_ScanKey, datetime] = {}
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


def _read_volumes(
    path: Path, mapping: TimelineMapping, scan_times: Mapping[_ScanKey, datetime], times_name: str | None
) -> tuple[list[MeasurementRecord], set[_ScanKey], int, int]:
    """Return the scans, the times used, the number of rows and of scans without a volume."""
    spec = mapping.volumes
    if spec is None:
        raise ConfigError(f"A volumes table ({path.name}) was given but the mapping has no 'volumes' section.")
    table = _read_csv(path, mapping.encoding)
    groups = _groups(spec, table, "volumes")
    if not any(g.datetime for g in groups) and times_name is None:
        raise ConfigError("The volumes mapping names no datetime column, so a times table (--times) is needed.")
    factor = VOLUME_UNITS[spec.volume_unit]
    seen: dict[_ScanKey, tuple[float, int]] = {}
    used: set[_ScanKey] = set()
    records: list[MeasurementRecord] = []
    no_volume = 0
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
                no_volume += 1
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
            when = _datetime(table, index, g.datetime, mapping.datetime_format) if g.datetime else None
            if when is None:
                when = scan_times.get(key)
                if when is None:
                    where = f"column '{g.datetime}'" if g.datetime else f"the times table ({times_name or 'none'})"
                    raise TimelineError(
                        f"{_where(table, index, g.accession)}: no date-time for this accession number in {where}."
                    )
                used.add(key)
            features = {name: _clinical_value(table.rows[index][col]) for name, col in g.features.items()}
            records.append(
                MeasurementRecord(
                    patient_id=pid,
                    issuer_of_patient_id=issuer,
                    series_instance_uid=imported_series_uid(pid, accession, issuer),
                    accession_number=accession,
                    acquisition_datetime=when,
                    volume_ml=volume * factor,
                    features=features or None,
                    segmenter=f"import:{path.name}",
                    source="import",
                )
            )
    return records, used, len(table.rows), no_volume


def _read_clinical(
    path: Path, mapping: TimelineMapping, scans: list[MeasurementRecord]
) -> tuple[list[ClinicalRecord], list[str]]:
    """Return the clinical records and the file rows whose first-scan accession disagrees."""
    spec = mapping.clinical
    if spec is None:
        raise ConfigError(f"A clinical table ({path.name}) was given but the mapping has no 'clinical' section.")
    table = _read_csv(path, mapping.encoding)
    for key in ("patient", "issuer", "onset_to_first_scan_h", "onset_datetime", "first_scan_accession"):
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
        if spec.first_scan_accession:
            stated = table.rows[index][spec.first_scan_accession]
            first = first_scans.get((pid, issuer))
            if stated and first is not None and stated != first.accession_number:
                mismatched.append(str(index + 2))
        extra = {column: _clinical_value(table.rows[index][column]) for column in spec.extra}
        records.append(
            ClinicalRecord(
                patient_id=pid,
                issuer_of_patient_id=issuer,
                onset_datetime=onset,
                onset_to_first_scan_h=hours,
                clinical=extra or None,
                source=path.name,
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
    warnings: list[str] = []
    scan_times = _read_times(times, mapping) if times is not None else {}
    records: list[MeasurementRecord] = []
    used: set[_ScanKey] = set()
    n_rows = 0
    if volumes is not None:
        records, used, n_rows, no_volume = _read_volumes(
            volumes, mapping, scan_times, times.name if times is not None else None
        )
        if no_volume:
            warnings.append(f"{no_volume} scan(s) in {volumes.name} have an accession number but no volume; skipped.")
    clinical_records: list[ClinicalRecord] = []
    if clinical is not None:
        clinical_records, mismatched = _read_clinical(clinical, mapping, records)
        if mismatched:
            warnings.append(
                f"{clinical.name} row(s) {', '.join(mismatched)}: the first-scan accession number differs from "
                "the earliest scan by date-time in the imported tables; the onset interval is applied to the "
                "earliest scan."
            )
    return ImportedTables(
        measurements=tuple(records),
        clinical=tuple(clinical_records),
        warnings=tuple(warnings),
        n_volume_rows=n_rows,
        n_times_unused=len(set(scan_times) - used),
    )


# ---------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportReport:
    """What an import wrote."""

    store: str
    mapping: str
    n_patients: int
    n_scans: int
    n_clinical: int
    n_times_unused: int
    warnings: tuple[str, ...]

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
            "warnings": list(self.warnings),
        }


def record_tables(store: Store, tables: ImportedTables, *, mapping_name: str) -> ImportReport:
    """Record tables read by :func:`read_tables` in ``store`` (one transaction)."""
    record_batch(store, measurements=tables.measurements, clinical=tables.clinical)
    patients = {(m.patient_id, m.issuer_of_patient_id) for m in tables.measurements}
    log.info("Imported %d scans of %d patients and %d clinical rows.",
             len(tables.measurements), len(patients), len(tables.clinical))
    return ImportReport(
        store=store.location,
        mapping=mapping_name,
        n_patients=len(patients),
        n_scans=len(tables.measurements),
        n_clinical=len(tables.clinical),
        n_times_unused=tables.n_times_unused,
        warnings=tables.warnings,
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
