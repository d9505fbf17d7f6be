"""The results store: one row per measured series, one per patient's clinical data.

SQLite by default (a file, WAL journal, ``busy_timeout`` and retried write
transactions so that several ``ichpipe run`` processes can record at once);
any SQLAlchemy URL (PostgreSQL) instead. The schema is versioned: the table
``schema_version`` lists every migration applied, and :data:`MIGRATIONS` holds
one function per version, applied in order in one transaction when a store is
opened. A new store goes through the same migrations as an old one.

Tables (schema version 4):

``measurements``
    Keyed on ``series_instance_uid``; recording a series again replaces its
    row (an upsert). Each row says how the volume was measured (``segmenter``,
    ``checkpoint_sha256``), every reason it may be wrong (``quality_flags``,
    JSON list of ``{code, message, value}``), whether the acquisition time of
    day is known (``acquisition_precision``) and where the study was read from
    (``source_path``). ``preferred`` marks the one series used for its
    accession number when several were measured, and ``preferred_by`` says
    whether a user chose it (``user``, kept until the user chooses again) or
    it is the latest run (``auto``).
``patients``
    Keyed on (``patient_id``, ``issuer_of_patient_id``): onset date-time or
    hours from onset to the first scan, surgery date-time, and further
    clinical values as JSON.
``batch_ledger``
    Keyed on ``job_key`` (``series:<UID>``, ``study:<UID>`` or ``path:<file>``):
    what ``ichpipe batch`` did with each study of an inbox, with the
    fingerprint of its instances, the config hash and checkpoint digest it ran
    with, and the outcome (see :mod:`ichpipe.pipeline.batch.ledger`).

Series of imported tables (no images) get a deterministic UID
``2.25.<uuid5>`` derived from patient, issuer and accession number
(:func:`imported_series_uid`), so importing twice replaces, never duplicates.

Modules: :mod:`~ichpipe.pipeline.serial.store.records` (what is stored),
:mod:`~ichpipe.pipeline.serial.store.migrations` (tables and migrations),
:mod:`~ichpipe.pipeline.serial.store.connection` (:func:`open_store`, :class:`Store`),
:mod:`~ichpipe.pipeline.serial.store.writes` and :mod:`~ichpipe.pipeline.serial.store.queries`.
Every public name is importable from this package. May import SQLAlchemy and
:mod:`ichpipe.pipeline.config.store_config`; nothing else of the pipeline.
"""

from __future__ import annotations

from ichpipe.pipeline.serial.store.connection import Store, open_store, schema_version
from ichpipe.pipeline.serial.store.migrations import MIGRATIONS, SCHEMA_VERSION, batch_ledger_table
from ichpipe.pipeline.serial.store.queries import get_clinical, list_clinical, list_measurements, list_patients
from ichpipe.pipeline.serial.store.records import (
    ClinicalRecord,
    MeasurementRecord,
    StoredMeasurement,
    imported_series_uid,
    measurement_from_report,
    quality_flags_from_report,
)
from ichpipe.pipeline.serial.store.writes import (
    record_batch,
    record_measurement,
    record_measurements,
    release_preferred,
    set_preferred,
    upsert_clinical,
)

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
    "quality_flags_from_report",
    "record_batch",
    "record_measurement",
    "record_measurements",
    "release_preferred",
    "schema_version",
    "set_preferred",
    "upsert_clinical",
]
