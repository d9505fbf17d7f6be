"""The store's schema (SQLAlchemy tables at :data:`SCHEMA_VERSION`) and one migration per version.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateColumn

from ichpipe.pipeline.serial.store.records import patient_scan_key

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "batch_ledger_table"]

#: Schema version this code writes; :func:`~ichpipe.pipeline.serial.store.connection.open_store` migrates
#: older stores up to it.
SCHEMA_VERSION = 4


metadata = sa.MetaData()

schema_version_table = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", sa.DateTime, nullable=False),
    sa.Column("description", sa.String, nullable=False),
)


def _measurements_v1_columns() -> list[sa.Column[Any]]:
    """The columns of ``measurements`` as schema version 1 created them (fresh objects per call)."""
    return [
        sa.Column("series_instance_uid", sa.String, primary_key=True),
        sa.Column("patient_id", sa.String, nullable=False),
        sa.Column("accession_number", sa.String, nullable=True),
        sa.Column("study_instance_uid", sa.String, nullable=True),
        sa.Column("acquisition_datetime", sa.DateTime, nullable=True),
        sa.Column("volume_ml", sa.Float, nullable=False),
        sa.Column("abc2_ml", sa.Float, nullable=True),
        sa.Column("segmenter", sa.String, nullable=True),
        sa.Column("segmenter_version", sa.String, nullable=True),
        sa.Column("checkpoint_sha256", sa.String, nullable=True),
        sa.Column("features", sa.JSON, nullable=True),
        sa.Column("recorded_at", sa.DateTime, nullable=False),
    ]


measurements_table = sa.Table(
    "measurements",
    metadata,
    *_measurements_v1_columns(),
    # version 2
    sa.Column("issuer_of_patient_id", sa.String, nullable=False, server_default=""),
    sa.Column("source", sa.String, nullable=False, server_default="dicom"),
    sa.Column("preferred", sa.Boolean, nullable=False, server_default=sa.true()),
    # version 4
    sa.Column("quality_flags", sa.JSON, nullable=True),
    sa.Column("preferred_by", sa.String, nullable=True),
    sa.Column("acquisition_precision", sa.String, nullable=True),
    sa.Column("source_path", sa.String, nullable=True),
)

def _patients_v2_columns() -> list[sa.Column[Any]]:
    """The columns of ``patients`` as schema version 2 created them (fresh objects per call)."""
    return [
        sa.Column("patient_id", sa.String, primary_key=True),
        sa.Column("issuer_of_patient_id", sa.String, primary_key=True, server_default=""),
        sa.Column("onset_datetime", sa.DateTime, nullable=True),
        sa.Column("onset_to_first_scan_h", sa.Float, nullable=True),
        sa.Column("clinical", sa.JSON, nullable=True),
        sa.Column("source", sa.String, nullable=True),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    ]


patients_table = sa.Table(
    "patients",
    metadata,
    *_patients_v2_columns(),
    # version 4
    sa.Column("surgery_datetime", sa.DateTime, nullable=True),
)

#: Columns that schema version 4 adds, per table.
_V4_COLUMNS = {
    "measurements": ("quality_flags", "preferred_by", "acquisition_precision", "source_path"),
    "patients": ("surgery_datetime",),
}


def _batch_ledger_v3_columns() -> list[sa.Column[Any]]:
    """The columns of ``batch_ledger`` as schema version 3 created them (fresh objects per call)."""
    return [
        sa.Column("job_key", sa.String, primary_key=True),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("study_instance_uid", sa.String, nullable=True),
        sa.Column("series_instance_uid", sa.String, nullable=True),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("retry", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("fingerprint", sa.String, nullable=False),
        sa.Column("n_instances", sa.Integer, nullable=False),
        sa.Column("config_hash", sa.String, nullable=False),
        sa.Column("segmenter", sa.String, nullable=True),
        sa.Column("checkpoint_sha256", sa.String, nullable=True),
        sa.Column("output_dir", sa.String, nullable=True),
        sa.Column("volume_ml", sa.Float, nullable=True),
        sa.Column("error_type", sa.String, nullable=True),
        sa.Column("error", sa.String, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("delivered_at", sa.DateTime, nullable=True),
        sa.Column("delivery_error", sa.String, nullable=True),
        sa.Column("run_id", sa.String, nullable=True),
        sa.Column("ichpipe_version", sa.String, nullable=True),
        sa.Column("duration_s", sa.Float, nullable=True),
        sa.Column("processed_at", sa.DateTime, nullable=False),
    ]


batch_ledger_table = sa.Table(
    "batch_ledger",
    metadata,
    *_batch_ledger_v3_columns(),
    sa.Index("ix_batch_ledger_study", "study_instance_uid"),
)


_ix_patient_accession = sa.Index(
    "ix_measurements_patient_accession",
    measurements_table.c.patient_id,
    measurements_table.c.issuer_of_patient_id,
    measurements_table.c.accession_number,
)


def _migrate_to_v1(conn: Connection) -> None:
    """Version 1: ``schema_version`` and ``measurements`` as ``run`` first wrote them."""
    md = sa.MetaData()
    sa.Table(
        "measurements",
        md,
        *_measurements_v1_columns(),
        sa.Index("ix_measurements_patient", "patient_id"),
    )
    md.create_all(conn)


def _add_column(conn: Connection, table: str, column: sa.Column[Any]) -> None:
    ddl = CreateColumn(column).compile(dialect=conn.dialect)
    conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {ddl}")


def _migrate_to_v2(conn: Connection) -> None:
    """Version 2: issuer, source and preferred-series mark; the ``patients`` table.

    Version 1 stores may hold several series of one accession; the latest
    recorded of each accession keeps the ``preferred`` mark.
    """
    for name in ("issuer_of_patient_id", "source", "preferred"):
        col = measurements_table.c[name]
        _add_column(conn, "measurements", sa.Column(name, col.type, nullable=False,
                                                    server_default=col.server_default.arg))  # type: ignore[union-attr]
    _ix_patient_accession.create(conn)
    sa.Table("patients", sa.MetaData(), *_patients_v2_columns()).create(conn)
    # One preferred series per (patient, accession): the latest recorded.
    rows = conn.execute(
        sa.select(
            measurements_table.c.series_instance_uid,
            measurements_table.c.patient_id,
            measurements_table.c.accession_number,
            measurements_table.c.study_instance_uid,
            measurements_table.c.recorded_at,
        )
    ).all()
    latest: dict[tuple[str, str], tuple[datetime, str]] = {}
    for uid, pid, acc, study, recorded in rows:
        key = (pid, patient_scan_key(acc, study, uid))
        if key not in latest or (recorded, uid) > latest[key]:
            latest[key] = (recorded, uid)
    keep = {uid for _, uid in latest.values()}
    demote = [uid for uid, *_ in rows if uid not in keep]
    for chunk in range(0, len(demote), 500):
        conn.execute(
            sa.update(measurements_table)
            .where(measurements_table.c.series_instance_uid.in_(demote[chunk:chunk + 500]))
            .values(preferred=False)
        )


def _migrate_to_v3(conn: Connection) -> None:
    """Version 3: the ``batch_ledger`` table of ``ichpipe batch``."""
    md = sa.MetaData()
    sa.Table("batch_ledger", md, *_batch_ledger_v3_columns(),
             sa.Index("ix_batch_ledger_study", "study_instance_uid"))
    md.create_all(conn)


def _migrate_to_v4(conn: Connection) -> None:
    """Version 4: like-with-like comparison, explicit preferred series, time precision, surgery.

    ``measurements`` gains ``quality_flags`` (JSON list of ``{code, message,
    value}``), ``preferred_by`` (``user`` | ``auto``), ``acquisition_precision``
    (``datetime`` | ``date``) and ``source_path``; ``patients`` gains
    ``surgery_datetime``. (The segmenter name and checkpoint SHA-256 of each
    measurement are columns since version 1.) Existing preferred series are
    marked ``auto``: no user had a command to choose one before. The precision
    of existing rows stays unknown (``NULL``); the timeline treats a time of
    exactly 00:00:00 in such a row as possibly date-only.
    """
    tables = {"measurements": measurements_table, "patients": patients_table}
    for table_name, columns in _V4_COLUMNS.items():
        for name in columns:
            col = tables[table_name].c[name]
            _add_column(conn, table_name, sa.Column(name, col.type, nullable=True))
    conn.execute(
        sa.update(measurements_table)
        .where(measurements_table.c.preferred.is_(sa.true()))
        .values(preferred_by="auto")
    )


#: Migration functions keyed by the version they produce, applied in order.
MIGRATIONS: Mapping[int, tuple[str, Callable[[Connection], None]]] = MappingProxyType(
    {
        1: ("measurements table", _migrate_to_v1),
        2: ("issuer, source, preferred series; patients table", _migrate_to_v2),
        3: ("batch ledger table", _migrate_to_v3),
        4: ("quality flags, preferred_by, acquisition precision, source path; surgery time", _migrate_to_v4),
    }
)
