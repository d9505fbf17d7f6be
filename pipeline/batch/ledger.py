"""The batch ledger: fingerprints of studies and what ``ichpipe batch`` did with them.

The ledger is the ``batch_ledger`` table of the results store (schema version
3, see :mod:`ichpipe.pipeline.serial.store`). One row per job key:

``series:<SeriesInstanceUID>``
    A study whose selected series is known (the usual case).
``study:<StudyInstanceUID>``
    A study with readable DICOM but no usable series (e.g. MR only).
``path:<absolute path>``
    A zip archive, or a folder of the inbox with no readable DICOM image.

A row says which **fingerprint** (sorted SOPInstanceUIDs with file sizes and
modification times), **config hash** and **checkpoint SHA-256** the outcome
belongs to. A study is skipped when all three match a ``done`` row whose
outputs are still on disk; a changed series, config or checkpoint is redone.
The row is written last, after the outputs are in place, so a run killed at
any point is simply redone by the next run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ichpipe.pipeline.config import Config, to_plain
from ichpipe.pipeline.serial.store import Store, batch_ledger_table
from ichpipe.pipeline.serial.store.connection import utc_now

__all__ = [
    "RESULT_INDEPENDENT_SECTIONS",
    "Decision",
    "LedgerEntry",
    "LedgerRow",
    "config_hash",
    "decide",
    "fingerprint",
    "get_rows",
    "known_study_uids",
    "list_ledger",
    "record_entry",
]

#: Config sections that do not change what a study's outputs hold: a change
#: there does not make the ledger redo studies.
RESULT_INDEPENDENT_SECTIONS = frozenset({"store", "expansion", "batch", "pacs", "progress"})


def fingerprint(entries: Iterable[tuple[str, int, int]]) -> str:
    """SHA-256 over sorted ``(identifier, size in bytes, mtime in ns)`` entries.

    The identifier is the SOPInstanceUID (or, for files without one, the
    path). The order of the entries does not matter.

    Examples
    --------
    >>> fingerprint([("1.2", 10, 5), ("1.1", 20, 6)]) == fingerprint([("1.1", 20, 6), ("1.2", 10, 5)])
    True
    """
    digest = hashlib.sha256()
    for ident, size, mtime_ns in sorted(entries):
        digest.update(f"{ident}\t{size}\t{mtime_ns}\n".encode())
    return digest.hexdigest()


def config_hash(config: Config, *, segmenter: str) -> str:
    """SHA-256 of every config value that can change a study's outputs, plus the segmenter name.

    Sections in :data:`RESULT_INDEPENDENT_SECTIONS` and ``outputs.directory``
    (the output root is compared separately) are left out. Sections added by
    later versions count by default: the ledger errs towards redoing work.
    """
    plain = to_plain(config)
    relevant = {k: v for k, v in plain.items() if k not in RESULT_INDEPENDENT_SECTIONS}
    outputs = dict(relevant.get("outputs", {}))
    outputs.pop("directory", None)
    relevant["outputs"] = outputs
    text = json.dumps({"segmenter": segmenter, "config": relevant}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class LedgerEntry:
    """What one job's outcome writes into the ledger (``attempts`` is counted by the store)."""

    job_key: str
    kind: str
    source: str
    status: str
    fingerprint: str
    n_instances: int
    config_hash: str
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    retry: bool = False
    segmenter: str | None = None
    checkpoint_sha256: str | None = None
    output_dir: str | None = None
    volume_ml: float | None = None
    error_type: str | None = None
    error: str | None = None
    delivered_at: datetime | None = None
    delivery_error: str | None = None
    run_id: str | None = None
    ichpipe_version: str | None = None
    duration_s: float | None = None

    def __post_init__(self) -> None:
        if self.status not in ("done", "failed"):
            raise ValueError(f"Argument 'status' must be 'done' or 'failed'; got {self.status!r}.")
        if self.kind not in ("series", "study", "path"):
            raise ValueError(f"Argument 'kind' must be 'series', 'study' or 'path'; got {self.kind!r}.")


@dataclass(frozen=True, kw_only=True)
class LedgerRow(LedgerEntry):
    """A ledger row as read back: an entry plus how often it was attempted and when."""

    attempts: int
    processed_at: datetime


def record_entry(store: Store, entry: LedgerEntry) -> int:
    """Insert or replace the row of ``entry.job_key``; return its attempt count.

    ``attempts`` goes up by one each time (a delivery-only retry included),
    so a series processed exactly once has ``attempts == 1``.
    """
    table = batch_ledger_table

    def work(conn: Connection) -> int:
        previous = conn.execute(
            sa.select(table.c.attempts).where(table.c.job_key == entry.job_key)
        ).scalar()
        attempts = int(previous or 0) + 1
        row: dict[str, Any] = {
            field: getattr(entry, field) for field in LedgerEntry.__dataclass_fields__
        }
        row["attempts"] = attempts
        row["processed_at"] = utc_now()
        if previous is None:
            conn.execute(sa.insert(table).values(**row))
        else:
            conn.execute(sa.update(table).where(table.c.job_key == entry.job_key).values(**row))
        return attempts

    return store.write(work)


def _to_row(row: sa.RowMapping) -> LedgerRow:
    fields = set(LedgerRow.__dataclass_fields__)
    values = {k: row[k] for k in fields}
    values["retry"] = bool(values["retry"])
    return LedgerRow(**values)


def get_rows(store: Store, keys: Iterable[str]) -> dict[str, LedgerRow]:
    """The ledger rows of ``keys`` that exist, by job key."""
    wanted = sorted(set(keys))
    table = batch_ledger_table

    def work(conn: Connection) -> dict[str, LedgerRow]:
        out: dict[str, LedgerRow] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            for r in conn.execute(sa.select(table).where(table.c.job_key.in_(chunk))).mappings():
                out[r["job_key"]] = _to_row(r)
        return out

    return store.read(work)


def list_ledger(store: Store) -> list[LedgerRow]:
    """Every ledger row, by job key."""
    table = batch_ledger_table
    rows = store.read(lambda conn: conn.execute(sa.select(table).order_by(table.c.job_key)).mappings().all())
    return [_to_row(r) for r in rows]


def known_study_uids(store: Store) -> set[str]:
    """Every StudyInstanceUID the ledger has a row for (a PACS pull does not fetch these again)."""
    column = batch_ledger_table.c.study_instance_uid
    rows = store.read(lambda conn: conn.execute(sa.select(column).where(column.is_not(None)).distinct()).all())
    return {str(uid) for (uid,) in rows}


class Decision(StrEnum):
    """What a batch does with one study, given its ledger row."""

    PROCESS = "process"
    DELIVER = "deliver"
    SKIP_DONE = "skip_done"
    SKIP_FAILED = "skip_failed"


def _outputs_present(row: LedgerRow, *, out_root: Path, require_report: bool) -> bool:
    if not row.output_dir:
        return False
    folder = Path(row.output_dir)
    if not folder.is_relative_to(out_root):
        return False
    return (folder / "report.json").is_file() if require_report else folder.is_dir()


def decide(
    row: LedgerRow | None,
    *,
    fingerprint: str,
    config_hash: str,
    checkpoint_sha256: str | None,
    retry_failed: bool,
    send: bool,
    out_root: Path,
    require_report: bool,
) -> Decision:
    """Decide whether a study is processed, only delivered, or skipped.

    Parameters
    ----------
    row:
        The study's ledger row, or ``None`` if it was never seen.
    fingerprint, config_hash, checkpoint_sha256:
        What the study would be processed with now.
    retry_failed:
        Retry a failure whose input is unchanged even when it is not marked for retry.
    send:
        Outputs are to be sent to the PACS: a done study not yet delivered is delivered.
    out_root:
        The output root of this run (absolute): a study done into another
        output root is processed again.
    require_report:
        A done study counts as present only if its ``report.json`` exists
        (else only its folder must exist).
    """
    if row is None:
        return Decision.PROCESS
    same = (row.fingerprint == fingerprint and row.config_hash == config_hash
            and (row.checkpoint_sha256 or None) == (checkpoint_sha256 or None))
    if not same:
        return Decision.PROCESS
    if row.status == "failed":
        return Decision.PROCESS if (row.retry or retry_failed) else Decision.SKIP_FAILED
    if not _outputs_present(row, out_root=out_root, require_report=require_report):
        return Decision.PROCESS
    if send and row.delivered_at is None:
        return Decision.DELIVER
    return Decision.SKIP_DONE
