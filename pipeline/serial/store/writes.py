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
from ichpipe.pipeline.serial.store.connection import Store, utc_now
from ichpipe.pipeline.serial.store.migrations import measurements_table, patients_table
from ichpipe.pipeline.serial.store.records import ClinicalRecord, MeasurementRecord

__all__ = [
    "record_batch",
    "record_measurement",
    "record_measurements",
    "release_preferred",
    "set_preferred",
    "upsert_clinical",
]


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
        "preferred_by": "auto" if record.preferred else None,
        "recorded_at": recorded_at,
        "quality_flags": [dict(f) for f in record.quality_flags] or None,
        "acquisition_precision": record.acquisition_precision,
        "source_path": record.source_path,
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


def _same_scan(accession: str | None, study_uid: str | None) -> sa.ColumnElement[bool] | None:
    """The condition selecting the series of one scan (accession, else study); ``None`` for neither."""
    m = measurements_table.c
    if accession:
        return m.accession_number == accession
    if study_uid:
        return sa.and_(m.accession_number.is_(None), m.study_instance_uid == study_uid)
    return None


def _user_choice(conn: Connection, patient_id: str, issuer: str, accession: str | None,
                 study_uid: str | None) -> str | None:
    """The series a user chose for this scan (``ichpipe timeline prefer``), or ``None``."""
    m = measurements_table.c
    same_scan = _same_scan(accession, study_uid)
    if same_scan is None:
        return None
    uid = conn.execute(
        sa.select(m.series_instance_uid)
        .where(m.patient_id == patient_id, m.issuer_of_patient_id == issuer, same_scan,
               m.preferred.is_(sa.true()), m.preferred_by == "user")
        .limit(1)
    ).scalar()
    return None if uid is None else str(uid)


def _write_measurement(conn: Connection, record: MeasurementRecord, recorded_at: datetime) -> bool:
    """Upsert one series; return whether it is the one used for its scan afterwards.

    A user's choice (``preferred_by = 'user'``) is never taken away by a run:
    re-recording the chosen series keeps the mark, and a new series of the same
    scan is recorded without it.
    """
    row = _measurement_row(record, recorded_at)
    if not record.preferred:
        # A re-record with preferred=False must not take the mark away from this series.
        _upsert(conn, measurements_table, row, ("series_instance_uid",), ("preferred", "preferred_by"))
        used = conn.execute(
            sa.select(measurements_table.c.preferred)
            .where(measurements_table.c.series_instance_uid == record.series_instance_uid)
        ).scalar()
        return bool(used)
    chosen = _user_choice(conn, record.patient_id, record.issuer_of_patient_id, record.accession_number,
                          record.study_instance_uid)
    if chosen == record.series_instance_uid:
        row.update(preferred=True, preferred_by="user")
    elif chosen is not None:
        row.update(preferred=False, preferred_by=None)
    _upsert(conn, measurements_table, row, ("series_instance_uid",))
    if chosen is None:
        _demote_siblings(conn, record.patient_id, record.issuer_of_patient_id,
                         record.accession_number, record.study_instance_uid,
                         record.series_instance_uid)
    return chosen is None or chosen == record.series_instance_uid


def _demote_siblings(conn: Connection, patient_id: str, issuer: str, accession: str | None,
                     study_uid: str | None, series_uid: str) -> None:
    m = measurements_table.c
    same_scan = _same_scan(accession, study_uid)
    if same_scan is None:
        return
    conn.execute(
        sa.update(measurements_table)
        .where(m.patient_id == patient_id, m.issuer_of_patient_id == issuer, same_scan,
               m.series_instance_uid != series_uid, m.preferred.is_(sa.true()))
        .values(preferred=False, preferred_by=None)
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
        "surgery_datetime": record.surgery_datetime,
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

    return _record(store, m_records, c_records)[:2]


def _record(store: Store, m_records: list[MeasurementRecord],
            c_records: list[ClinicalRecord]) -> tuple[int, int, list[bool]]:
    def work(conn: Connection) -> tuple[int, int, list[bool]]:
        now = utc_now()
        used = [_write_measurement(conn, record, now) for record in m_records]
        for c in c_records:
            # A table without surgery times never erases one recorded before.
            keep = ("surgery_datetime",) if c.surgery_datetime is None else ()
            _upsert(conn, patients_table, _clinical_row(c, now), ("patient_id", "issuer_of_patient_id"), keep)
        return len(m_records), len(c_records), used

    return store.write(work)


def record_measurement(store: Store, record: MeasurementRecord) -> bool:
    """Record one measured series; recording the same SeriesInstanceUID again replaces its row.

    This is what ``ichpipe run`` calls once per measured series::

        with open_store(config.store) as store:
            record_measurement(store, measurement_from_report(report))

    Returns
    -------
    bool
        Whether the series is the one the timeline uses for its accession:
        ``False`` when a user chose another series of that accession
        (``ichpipe timeline prefer``), a choice a new run never overrides.
    """
    if not isinstance(record, MeasurementRecord):
        raise TypeError(f"record_measurement takes a MeasurementRecord; got {type(record).__name__}.")
    return _record(store, [record], [])[2][0]


def record_measurements(store: Store, records: Iterable[MeasurementRecord]) -> int:
    """Record several series in one transaction; return how many."""
    return record_batch(store, measurements=records)[0]


def upsert_clinical(store: Store, records: Iterable[ClinicalRecord]) -> int:
    """Record (or replace) patients' clinical data; return how many rows."""
    return record_batch(store, clinical=records)[1]


def set_preferred(store: Store, series_instance_uid: str, *, accession_number: str | None = None) -> None:
    """Make a recorded series the one used for its accession number: a user's choice.

    The choice is kept (``preferred_by = 'user'``) until the user chooses
    again (or :func:`release_preferred`); later runs of other series of the
    same accession are recorded beside it without taking the mark.

    Parameters
    ----------
    series_instance_uid:
        The series to use.
    accession_number:
        When given, the series must belong to this accession number (a check
        against choosing a series of another scan by mistake).

    Raises
    ------
    ichpipe.errors.StoreError
        If no series with that UID is recorded, or it belongs to another accession.
    """

    def work(conn: Connection) -> None:
        row = _series_row(conn, store, series_instance_uid)
        if accession_number is not None and row["accession_number"] != accession_number:
            raise StoreError(
                f"The series {series_instance_uid} belongs to accession number "
                f"{row['accession_number'] or '(none)'}, not to the accession number given; "
                "`ichpipe timeline --patient ID` lists each accession's series."
            )
        conn.execute(
            sa.update(measurements_table)
            .where(measurements_table.c.series_instance_uid == series_instance_uid)
            .values(preferred=True, preferred_by="user")
        )
        _demote_siblings(conn, row["patient_id"], row["issuer_of_patient_id"], row["accession_number"],
                         row["study_instance_uid"], series_instance_uid)

    store.write(work)


def release_preferred(store: Store, series_instance_uid: str) -> str:
    """Undo a user's choice for the scan of a series: its latest recorded series is used again.

    Returns
    -------
    str
        The SeriesInstanceUID now used for that scan.

    Raises
    ------
    ichpipe.errors.StoreError
        If no series with that UID is recorded.
    """

    def work(conn: Connection) -> str:
        row = _series_row(conn, store, series_instance_uid)
        m = measurements_table.c
        same_scan = _same_scan(row["accession_number"], row["study_instance_uid"])
        where = [m.patient_id == row["patient_id"], m.issuer_of_patient_id == row["issuer_of_patient_id"]]
        where.append(same_scan if same_scan is not None else m.series_instance_uid == series_instance_uid)
        latest = conn.execute(
            sa.select(m.series_instance_uid).where(*where)
            .order_by(m.recorded_at.desc(), m.series_instance_uid.desc()).limit(1)
        ).scalar_one()
        conn.execute(sa.update(measurements_table).where(*where).values(preferred=False, preferred_by=None))
        conn.execute(sa.update(measurements_table).where(m.series_instance_uid == latest)
                     .values(preferred=True, preferred_by="auto"))
        return str(latest)

    return store.write(work)


def _series_row(conn: Connection, store: Store, series_instance_uid: str) -> sa.RowMapping:
    row = conn.execute(
        sa.select(measurements_table).where(measurements_table.c.series_instance_uid == series_instance_uid)
    ).mappings().first()
    if row is None:
        raise StoreError(f"No recorded series with SeriesInstanceUID {series_instance_uid} in {store.location}.")
    return row
