"""Opening the results store: SQLite (WAL, busy timeout, ``BEGIN IMMEDIATE``) or an SQLAlchemy URL.

Write transactions are retried on lock conflicts; a store is migrated to the current schema when
it is opened.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from ichpipe.errors import StoreError
from ichpipe.pipeline.config.store_config import StoreConfig
from ichpipe.pipeline.serial.store.migrations import MIGRATIONS, SCHEMA_VERSION, schema_version_table

__all__ = ["Store", "open_store", "schema_version", "utc_now"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def utc_now() -> datetime:
    """Now in UTC, without a time zone (how the store's timestamp columns hold it)."""
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
        return self._transaction(work, write=True)

    def read(self, work: Callable[[Connection], T]) -> T:
        """Run ``work(conn)`` in one read transaction, retrying on lock conflicts.

        In WAL mode readers rarely wait, but they can meet a lock while another process creates the
        store or switches it to WAL (two cron runs starting together), so they retry like writers.

        Raises
        ------
        ichpipe.errors.StoreError
            When the store stayed locked through every retry, or the database refused the read.
        """
        return self._transaction(work, write=False)

    def _transaction(self, work: Callable[[Connection], T], *, write: bool) -> T:
        what = "Writing to" if write else "Reading"
        attempts = self.config.retries + 1
        delay = 0.05
        for attempt in range(1, attempts + 1):
            try:
                with self.connect(write=write) as conn:
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
                raise StoreError(f"{what} the results store {self.location} failed: {exc.orig}.") from exc
            except SQLAlchemyError as exc:
                raise StoreError(f"{what} the results store {self.location} failed: {exc}.") from exc
        raise StoreError(f"{what} the results store {self.location} failed.")  # pragma: no cover


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
                    version=version, applied_at=utc_now(), description=description
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
