"""Writing to the results store: measurements (upserted per series, one preferred series per
accession), clinical records, a batch of both in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection

from ichpipe.errors import StoreError
from ichpipe.pipeline.serial.store.connection import Store, _utcnow
from ichpipe.pipeline.serial.store.migrations import measurements_table, patients_table
from ichpipe.pipeline.serial.store.records import ClinicalRecord, MeasurementRecord

__all__ = ["record_batch", "record_measurement", "record_measurements", "set_preferred", "upsert_clinical"]


def _measurement_row(record: MeasurementRecord, recorded_at: datetime) -> dict[str, Any]:
    return {
        "series_instance_uid": record.series_instance_uid,
        "patient_id": record.patient_id,
        "issuer_of_patient_id": record.issuer_of_patient_id,
        "accession_number": record.accession_number,
        "study_instance_uid": record.study_instance_uid,
        "acquisition_datetime": record.acquisition_datetime,
        "volume_ml": record.volume_ml,
        "abc2_ml": record.abc2_ml,
        "segmenter": record.segmenter,
        "segmenter_version": record.segmenter_version,
        "checkpoint_sha256": record.checkpoint_sha256,
        "features": dict(record.features) if record.features is not None else None,
        "source": record.source,
        "preferred": record.preferred,
        "quality_flags": [dict(f) for f in record.quality_flags] or None,
        "recorded_at": recorded_at,
    }


def _upsert(conn: Connection, table: sa.Table, row: dict[str, Any], keys: tuple[str, ...],
            keep: tuple[str, ...] = ()) -> None:
    """Insert ``row`` or replace the row with the same ``keys`` (columns in ``keep`` survive)."""
    name = conn.dialect.name
    updates = [c for c in row if c not in keys and c not in keep]
    if name in ("sqlite", "postgresql"):
        insert = sqlite_dialect.insert if name == "sqlite" else pg_dialect.insert
        stmt = insert(table).values(**row)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c[k] for k in keys],
            set_={c: stmt.excluded[c] for c in updates},
        )
        conn.execute(stmt)
        return
    where = sa.and_(*(table.c[k] == row[k] for k in keys))
    result = conn.execute(sa.update(table).where(where).values(**{c: row[c] for c in updates}))
    if result.rowcount == 0:
        conn.execute(sa.insert(table).values(**row))


def _write_measurement(conn: Connection, record: MeasurementRecord, recorded_at: datetime) -> None:
    row = _measurement_row(record, recorded_at)
    # A re-record with preferred=False must not take the mark away from this series.
    keep = () if record.preferred else ("preferred",)
    _upsert(conn, measurements_table, row, ("series_instance_uid",), keep)
    if record.preferred:
        _demote_siblings(conn, record.patient_id, record.issuer_of_patient_id,
                         record.accession_number, record.study_instance_uid,
                         record.series_instance_uid)


def _demote_siblings(conn: Connection, patient_id: str, issuer: str, accession: str | None,
                     study_uid: str | None, series_uid: str) -> None:
    m = measurements_table.c
    if accession:
        same_scan = m.accession_number == accession
    elif study_uid:
        same_scan = sa.and_(m.accession_number.is_(None), m.study_instance_uid == study_uid)
    else:
        return
    conn.execute(
        sa.update(measurements_table)
        .where(m.patient_id == patient_id, m.issuer_of_patient_id == issuer, same_scan,
               m.series_instance_uid != series_uid, m.preferred.is_(sa.true()))
        .values(preferred=False)
    )


def _clinical_row(record: ClinicalRecord, updated_at: datetime) -> dict[str, Any]:
    return {
        "patient_id": record.patient_id,
        "issuer_of_patient_id": record.issuer_of_patient_id,
        "onset_datetime": record.onset_datetime,
        "onset_to_first_scan_h": record.onset_to_first_scan_h,
        "clinical": dict(record.clinical) if record.clinical is not None else None,
        "source": record.source,
        "updated_at": updated_at,
    }


def record_batch(
    store: Store,
    *,
    measurements: Iterable[MeasurementRecord] = (),
    clinical: Iterable[ClinicalRecord] = (),
) -> tuple[int, int]:
    """Record measurements and clinical rows in one transaction (all or nothing).

    Returns
    -------
    tuple of int
        How many measurement rows and clinical rows were written (inserted or replaced).
    """
    m_records = list(measurements)
    c_records = list(clinical)
    for r in m_records:
        if not isinstance(r, MeasurementRecord):
            raise TypeError(f"record_batch takes MeasurementRecord items; got {type(r).__name__}.")
    for c in c_records:
        if not isinstance(c, ClinicalRecord):
            raise TypeError(f"record_batch takes ClinicalRecord items; got {type(c).__name__}.")

    def work(conn: Connection) -> tuple[int, int]:
        now = _utcnow()
        for record in m_records:
            _write_measurement(conn, record, now)
        for c in c_records:
            _upsert(conn, patients_table, _clinical_row(c, now), ("patient_id", "issuer_of_patient_id"))
        return len(m_records), len(c_records)

    return store.write(work)


def record_measurement(store: Store, record: MeasurementRecord) -> None:
    """Record one measured series; recording the same SeriesInstanceUID again replaces its row.

    This is what ``ichpipe run`` calls once per measured series::

        with open_store(config.store) as store:
            record_measurement(store, measurement_from_report(report))
    """
    record_batch(store, measurements=[record])


def record_measurements(store: Store, records: Iterable[MeasurementRecord]) -> int:
    """Record several series in one transaction; return how many."""
    return record_batch(store, measurements=records)[0]


def upsert_clinical(store: Store, records: Iterable[ClinicalRecord]) -> int:
    """Record (or replace) patients' clinical data; return how many rows."""
    return record_batch(store, clinical=records)[1]


def set_preferred(store: Store, series_instance_uid: str) -> None:
    """Make a recorded series the one used for its accession number.

    Raises
    ------
    ichpipe.errors.StoreError
        If no series with that UID is recorded.
    """

    def work(conn: Connection) -> None:
        row = conn.execute(
            sa.select(measurements_table).where(measurements_table.c.series_instance_uid == series_instance_uid)
        ).mappings().first()
        if row is None:
            raise StoreError(f"No recorded series with SeriesInstanceUID {series_instance_uid} in {store.location}.")
        conn.execute(
            sa.update(measurements_table)
            .where(measurements_table.c.series_instance_uid == series_instance_uid)
            .values(preferred=True)
        )
        _demote_siblings(conn, row["patient_id"], row["issuer_of_patient_id"], row["accession_number"],
                         row["study_instance_uid"], series_instance_uid)

    store.write(work)
