"""The results store: one row per measured series, one per patient's clinical data.

SQLite by default (a file, WAL journal, ``busy_timeout`` and retried write
transactions so that several ``ichpipe run`` processes can record at once);
any SQLAlchemy URL (PostgreSQL) instead. The schema is versioned: the table
``schema_version`` lists every migration applied, and :data:`MIGRATIONS` holds
one function per version, applied in order in one transaction when a store is
opened. A new store goes through the same migrations as an old one.

Tables (schema version 3):

``measurements``
    Keyed on ``series_instance_uid``; recording a series again replaces its
    row (an upsert). ``preferred`` marks the one series used for its
    accession number when several were measured.
``patients``
    Keyed on (``patient_id``, ``issuer_of_patient_id``): onset date-time or
    hours from onset to the first scan, and further clinical values as JSON.
``batch_ledger``
    Keyed on ``job_key`` (``series:<UID>``, ``study:<UID>`` or ``path:<file>``):
    what ``ichpipe batch`` did with each study of an inbox, with the
    fingerprint of its instances, the config hash and checkpoint digest it ran
    with, and the outcome (see :mod:`ichpipe.pipeline.batch.ledger`).

Series of imported tables (no images) get a deterministic UID
``2.25.<uuid5>`` derived from patient, issuer and accession number
(:func:`imported_series_uid`), so importing twice replaces, never duplicates.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.schema import CreateColumn

from ichpipe.errors import StoreError
from ichpipe.pipeline.config.store_config import StoreConfig

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "ClinicalRecord",
    "MeasurementRecord",
    "Store",
    "StoredMeasurement",
    "batch_ledger_table",
    "get_clinical",
    "imported_series_uid",
    "list_clinical",
    "list_measurements",
    "list_patients",
    "measurement_from_report",
    "open_store",
    "record_batch",
    "record_measurement",
    "record_measurements",
    "schema_version",
    "set_preferred",
    "upsert_clinical",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Schema version this code writes; :func:`open_store` migrates older stores up to it.
SCHEMA_VERSION = 3

#: Namespace of the UUIDs behind :func:`imported_series_uid` (fixed forever).
_IMPORT_NAMESPACE = uuid.UUID("5b0f3c3e-6a1d-4c57-9d0e-2f4b8a1c7e65")

# ---------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------


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
        the same accession lose the mark). With ``False`` the mark stays where
        it is; an accession with no marked series uses its latest recorded one.
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

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "patient_id", _check_text(self.patient_id, "patient_id", required=True))
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
    """A row of ``measurements`` as read back: a record plus when it was written."""

    recorded_at: datetime


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
    """

    patient_id: str
    issuer_of_patient_id: str = ""
    onset_datetime: datetime | None = None
    onset_to_first_scan_h: float | None = None
    clinical: Mapping[str, Any] | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "patient_id", _check_text(self.patient_id, "patient_id", required=True))
        set_(
            self,
            "issuer_of_patient_id",
            _check_text(self.issuer_of_patient_id, "issuer_of_patient_id", required=False) or "",
        )
        set_(self, "onset_datetime", _naive(self.onset_datetime, "onset_datetime"))
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


def measurement_from_report(
    report: Mapping[str, Any], *, features: Mapping[str, Any] | None = None, preferred: bool = True
) -> MeasurementRecord:
    """Build a :class:`MeasurementRecord` from a study report (``run --json`` layout).

    Reads ``patient_id``, ``issuer_of_patient_id`` (optional),
    ``study_instance_uid``, ``series_instance_uid``, ``accession_number``,
    ``acquisition_datetime`` (ISO 8601 or ``None``), ``hematoma.volume_ml``,
    ``hematoma.abc2_ml``, ``segmenter.name``, ``segmenter.version``,
    ``segmenter.checkpoint_sha256`` and, unless ``features`` is given,
    ``features``.

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
    if isinstance(when, str):
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
        segmenter=segmenter.get("name"),
        segmenter_version=segmenter.get("version"),
        checkpoint_sha256=segmenter.get("checkpoint_sha256"),
        features=features if features is not None else report.get("features"),
        source="dicom",
        preferred=preferred,
    )


# ---------------------------------------------------------------------------
# Schema (current) and migrations
# ---------------------------------------------------------------------------

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
)

patients_table = sa.Table(
    "patients",
    metadata,
    sa.Column("patient_id", sa.String, primary_key=True),
    sa.Column("issuer_of_patient_id", sa.String, primary_key=True, server_default=""),
    sa.Column("onset_datetime", sa.DateTime, nullable=True),
    sa.Column("onset_to_first_scan_h", sa.Float, nullable=True),
    sa.Column("clinical", sa.JSON, nullable=True),
    sa.Column("source", sa.String, nullable=True),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

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
    patients_table.create(conn)
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
        key = (pid, _scan_key(acc, study, uid))
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


#: Migration functions keyed by the version they produce, applied in order.
MIGRATIONS: Mapping[int, tuple[str, Callable[[Connection], None]]] = MappingProxyType(
    {
        1: ("measurements table", _migrate_to_v1),
        2: ("issuer, source, preferred series; patients table", _migrate_to_v2),
        3: ("batch ledger table", _migrate_to_v3),
    }
)


def _scan_key(accession: str | None, study_uid: str | None, series_uid: str) -> str:
    """The key that identifies one scan of a patient: accession, else study, else series."""
    if accession:
        return f"accession:{accession}"
    if study_uid:
        return f"study:{study_uid}"
    return f"series:{series_uid}"


# ---------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _is_retryable(exc: DBAPIError) -> bool:
    """A lock or serialization conflict that a fresh transaction may not meet again."""
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code in ("40001", "40P01"):  # PostgreSQL serialization failure, deadlock
        return True
    message = str(orig).lower()
    return isinstance(exc, OperationalError) and ("locked" in message or "busy" in message)


@dataclass
class Store:
    """An open results store. Use :func:`open_store`; close it (or use ``with``).

    Attributes
    ----------
    engine:
        The SQLAlchemy engine.
    config:
        The :class:`StoreConfig` it was opened with.
    location:
        The database, for messages (a password in a URL is hidden).
    """

    engine: Engine
    config: StoreConfig
    location: str
    _closed: bool = field(default=False, repr=False)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the engine's connections."""
        if not self._closed:
            self.engine.dispose()
            self._closed = True

    @property
    def is_sqlite(self) -> bool:
        """Whether the store is an SQLite database."""
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def connect(self, *, write: bool = False) -> Iterator[Connection]:
        """Yield a connection inside one transaction (``BEGIN IMMEDIATE`` on SQLite when writing)."""
        with self.engine.connect() as conn:
            conn.execution_options(ichpipe_write=write)
            with conn.begin():
                yield conn

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work(conn)`` in one write transaction, retrying on lock conflicts.

        Raises
        ------
        ichpipe.errors.StoreError
            When the store stayed locked through every retry, or the database
            refused the write.
        """
        attempts = self.config.retries + 1
        delay = 0.05
        for attempt in range(1, attempts + 1):
            try:
                with self.connect(write=True) as conn:
                    return work(conn)
            except DBAPIError as exc:
                if _is_retryable(exc) and attempt < attempts:
                    log.info("Store busy (attempt %d of %d); retrying.", attempt, attempts)
                    time.sleep(delay * (1.0 + random.random()))
                    delay = min(delay * 2.0, 2.0)
                    continue
                if _is_retryable(exc):
                    raise StoreError(
                        f"The results store {self.location} stayed locked by other writers through "
                        f"{attempts} attempts; try again, or raise store.busy_timeout_s / store.retries."
                    ) from exc
                raise StoreError(f"Writing to the results store {self.location} failed: {exc.orig}.") from exc
        raise StoreError(f"Writing to the results store {self.location} failed.")  # pragma: no cover

    def read(self, work: Callable[[Connection], T]) -> T:
        """Run ``work(conn)`` in one read transaction."""
        try:
            with self.connect(write=False) as conn:
                return work(conn)
        except SQLAlchemyError as exc:
            raise StoreError(f"Reading the results store {self.location} failed: {exc}.") from exc


def _sqlite_engine(path: Path, config: StoreConfig) -> Engine:
    engine = sa.create_engine(
        f"sqlite:///{path}",
        connect_args={"timeout": config.busy_timeout_s},
    )
    _install_sqlite_hooks(engine, config)
    return engine


def _install_sqlite_hooks(engine: Engine, config: StoreConfig) -> None:
    busy_ms = int(config.busy_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's own transaction handling
        # starts transactions late and never as IMMEDIATE).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {busy_ms}")
            mode = cur.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                log.warning(
                    "SQLite refused WAL journal mode (got %s); concurrent writers will wait longer.",
                    mode[0] if mode else None,
                )
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock at once, so two writers never both
        # read and then deadlock upgrading; readers use a plain BEGIN (WAL
        # lets them run beside a writer).
        write = conn.get_execution_options().get("ichpipe_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _current_version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    value = conn.execute(sa.select(sa.func.max(schema_version_table.c.version))).scalar()
    return int(value or 0)


def _newer_schema_error(location: str, version: int) -> StoreError:
    """The error for a store whose schema ``version`` is newer than this code writes."""
    return StoreError(
        f"The results store {location} has schema version {version}, newer than this "
        f"ichpipe understands ({SCHEMA_VERSION}); upgrade ichpipe."
    )


def _migrate(store: Store, *, target: int = SCHEMA_VERSION) -> int:
    """Apply the migrations up to ``target`` in one write transaction; return the version."""

    def work(conn: Connection) -> int:
        if conn.dialect.name == "postgresql":
            # Serialise concurrent first opens of one database.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7263540061)"))
        if not sa.inspect(conn).has_table("schema_version"):
            schema_version_table.create(conn)
        current = _current_version(conn)
        if current > SCHEMA_VERSION:
            raise _newer_schema_error(store.location, current)
        for version in range(current + 1, target + 1):
            description, migrate = MIGRATIONS[version]
            migrate(conn)
            conn.execute(
                sa.insert(schema_version_table).values(
                    version=version, applied_at=_utcnow(), description=description
                )
            )
            if current:
                log.info("Results store migrated from schema version %d to %d.", version - 1, version)
        return max(current, target)

    return store.write(work)


def open_store(config: StoreConfig, *, create: bool = True, migrate_to: int = SCHEMA_VERSION) -> Store:
    """Open (and if needed create and migrate) the results store.

    Parameters
    ----------
    config:
        Where the store is (:class:`StoreConfig`).
    create:
        Create a missing SQLite file (and its folder). With ``False`` a missing
        store is an error: reading commands use this.
    migrate_to:
        Schema version to migrate to; only tests use anything but the latest.

    Raises
    ------
    ichpipe.errors.StoreError
        If the store is missing (``create=False``), cannot be opened, or has a
        schema newer than this code.
    """
    if config.url is None:
        path = Path(config.path).expanduser()
        if not path.exists():
            if not create:
                raise StoreError(
                    f"No results store at {path}; record measurements first (`ichpipe run` or "
                    "`ichpipe timeline import`), or point --store / store.path at an existing one."
                )
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"Cannot create the folder of the results store {path}: {exc}.") from exc
        engine = _sqlite_engine(path, config)
        location = str(path)
    else:
        try:
            engine = sa.create_engine(config.url, pool_pre_ping=True)
        except (SQLAlchemyError, ImportError) as exc:
            raise StoreError(f"Cannot use store.url: {exc}.") from exc
        if engine.dialect.name == "sqlite":
            _install_sqlite_hooks(engine, config)
        location = engine.url.render_as_string(hide_password=True)
    store = Store(engine=engine, config=config, location=location)
    try:
        if not create and config.url is not None:
            has = store.read(lambda conn: sa.inspect(conn).has_table("schema_version"))
            if not has:
                raise StoreError(f"The database {location} holds no ichpipe results store.")
        version = store.read(_current_version)
        if version < migrate_to:
            _migrate(store, target=migrate_to)
        elif version > SCHEMA_VERSION:
            raise _newer_schema_error(location, version)
    except StoreError:
        store.close()
        raise
    except SQLAlchemyError as exc:
        store.close()
        raise StoreError(f"Cannot open the results store {location}: {exc}.") from exc
    return store


def schema_version(store: Store) -> int:
    """Return the schema version of ``store`` (the highest migration applied)."""
    return store.read(_current_version)


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def _to_stored(row: sa.RowMapping) -> StoredMeasurement:
    return StoredMeasurement(
        patient_id=row["patient_id"],
        issuer_of_patient_id=row["issuer_of_patient_id"],
        series_instance_uid=row["series_instance_uid"],
        study_instance_uid=row["study_instance_uid"],
        accession_number=row["accession_number"],
        acquisition_datetime=row["acquisition_datetime"],
        volume_ml=row["volume_ml"],
        abc2_ml=row["abc2_ml"],
        segmenter=row["segmenter"],
        segmenter_version=row["segmenter_version"],
        checkpoint_sha256=row["checkpoint_sha256"],
        features=row["features"],
        source=row["source"],
        preferred=bool(row["preferred"]),
        recorded_at=row["recorded_at"],
    )


def list_measurements(
    store: Store, *, patient_id: str | None = None, issuer_of_patient_id: str | None = None
) -> list[StoredMeasurement]:
    """Return recorded series (all, or one patient's), by patient then acquisition time.

    ``issuer_of_patient_id=None`` matches any issuer.
    """
    m = measurements_table.c
    query = sa.select(measurements_table)
    if patient_id is not None:
        query = query.where(m.patient_id == patient_id)
    if issuer_of_patient_id is not None:
        query = query.where(m.issuer_of_patient_id == issuer_of_patient_id)
    query = query.order_by(m.patient_id, m.issuer_of_patient_id, m.acquisition_datetime,
                           m.series_instance_uid)
    rows = store.read(lambda conn: conn.execute(query).mappings().all())
    return [_to_stored(r) for r in rows]


def list_patients(store: Store) -> list[tuple[str, str]]:
    """Return every (patient_id, issuer_of_patient_id) with at least one recorded series, sorted."""
    m = measurements_table.c
    query = sa.select(m.patient_id, m.issuer_of_patient_id).distinct().order_by(
        m.patient_id, m.issuer_of_patient_id
    )
    rows = store.read(lambda conn: conn.execute(query).all())
    return [(str(p), str(i)) for p, i in rows]


def _to_clinical(row: sa.RowMapping) -> ClinicalRecord:
    return ClinicalRecord(
        patient_id=row["patient_id"],
        issuer_of_patient_id=row["issuer_of_patient_id"],
        onset_datetime=row["onset_datetime"],
        onset_to_first_scan_h=row["onset_to_first_scan_h"],
        clinical=row["clinical"],
        source=row["source"],
    )


def list_clinical(store: Store) -> dict[tuple[str, str], ClinicalRecord]:
    """Return every patient's clinical record keyed by (patient_id, issuer_of_patient_id)."""
    rows = store.read(lambda conn: conn.execute(sa.select(patients_table)).mappings().all())
    return {(r["patient_id"], r["issuer_of_patient_id"]): _to_clinical(r) for r in rows}


def get_clinical(store: Store, patient_id: str, issuer_of_patient_id: str = "") -> ClinicalRecord | None:
    """Return one patient's clinical record, or ``None``."""
    p = patients_table.c
    query = sa.select(patients_table).where(p.patient_id == patient_id,
                                      p.issuer_of_patient_id == issuer_of_patient_id)
    row = store.read(lambda conn: conn.execute(query).mappings().first())
    return _to_clinical(row) if row is not None else None
