"""What one batch run did: per-study outcomes, counts, the exit code, and the CSV/JSON summary.

:class:`BatchReport` decides the exit code (0: nothing failed in this run; 1:
at least one study failed, or the PACS pull failed). Usage and config errors
never get this far: they raise and exit 2.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from ichpipe.atomic import atomic_write
from ichpipe.logs import safe_text

__all__ = [
    "STATUSES",
    "SUMMARY_NAME",
    "BatchReport",
    "JobOutcome",
    "Status",
    "prune_summaries",
    "sweep_partial_summaries",
    "write_summary",
]

log = logging.getLogger(__name__)

Status = Literal["processed", "delivered", "failed", "skipped", "skipped_failed", "waiting", "locked", "cancelled",
                 "interrupted"]

#: Every status, in the order the summary counts them.
#:
#: ``processed`` done in this run; ``delivered`` done earlier, sent to the PACS
#: in this run; ``failed`` failed in this run (processing or delivery);
#: ``skipped`` done earlier with the same instances, config and checkpoint;
#: ``skipped_failed`` failed earlier on the same input (not retried);
#: ``waiting`` still arriving (settle time); ``locked`` another run holds it;
#: ``cancelled`` not started because the run was asked to stop; ``interrupted``
#: abandoned while it ran (a second SIGINT/SIGTERM); both are redone next run.
STATUSES: tuple[Status, ...] = ("processed", "delivered", "failed", "skipped", "skipped_failed", "waiting",
                                "locked", "cancelled", "interrupted")

CSV_FIELDS = ("status", "key", "label", "case_id", "study_instance_uid", "series_instance_uid", "n_instances",
              "volume_ml", "quality_flags", "output_dir", "duration_s", "attempts", "error_type", "error", "source")


@dataclass(frozen=True, kw_only=True)
class JobOutcome:
    """What happened to one study in one run (no patient names or IDs; ``case_id`` is a case list's own name).

    ``quality_flags`` holds the codes of the study's quality flags (empty: none
    raised), or ``None`` when unknown (failed, or its report is not readable);
    the CSV writes them joined by ``;``, ``none`` for an empty list.
    """

    status: Status
    key: str
    label: str
    source: str
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    n_instances: int | None = None
    volume_ml: float | None = None
    quality_flags: tuple[str, ...] | None = None
    output_dir: str | None = None
    duration_s: float | None = None
    attempts: int | None = None
    error_type: str | None = None
    error: str | None = None
    case_id: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"Argument 'status' must be one of {', '.join(STATUSES)}; got {self.status!r}.")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values; key, label, source and error masked, on one line (``safe_text``)."""
        out = asdict(self)
        for name in ("key", "label", "source", "error"):
            if out[name] is not None:
                out[name] = safe_text(out[name])
        out["quality_flags"] = None if self.quality_flags is None else list(self.quality_flags)
        return out

    def csv_row(self) -> dict[str, Any]:
        """The CSV summary's row (masked): empty cells for unknown values, flags joined by ``;``."""
        row = {k: ("" if v is None else v) for k, v in self.to_dict().items()}
        if self.quality_flags is not None:
            row["quality_flags"] = ";".join(self.quality_flags) or "none"
        return row


@dataclass(kw_only=True)
class BatchReport:
    """The outcome of one batch run.

    Attributes
    ----------
    run_id:
        ``<UTC time>-<host>-<pid>``, unique per run.
    inbox, case_list:
        Where the studies came from: an inbox folder, or a case list (``batch --list``; ``inbox`` is then ``None``).
    items:
        One outcome per study (and per entry still arriving).
    pull_error:
        Why the PACS pull failed, if it did.
    summary_files:
        Where the CSV and JSON summaries were written.
    """

    run_id: str
    inbox: str | None
    out: str
    started_at: str
    case_list: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    executor: str = "local"
    workers: int = 1
    segmenter: str | None = None
    checkpoint_sha256: str | None = None
    config_hash: str | None = None
    pulled: int = 0
    pull_error: str | None = None
    items: list[JobOutcome] = field(default_factory=list)
    summary_files: dict[str, str] = field(default_factory=dict)
    stopped_by: str | None = None
    leftovers: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """How many studies ended in each status (every status listed, zeros included)."""
        c = Counter(i.status for i in self.items)
        return {s: c.get(s, 0) for s in STATUSES}

    @property
    def flagged(self) -> list[JobOutcome]:
        """The studies with at least one quality flag (their volumes were still written)."""
        return [i for i in self.items if i.quality_flags]

    @property
    def failed(self) -> list[JobOutcome]:
        """The studies that failed in this run."""
        return [i for i in self.items if i.status == "failed"]

    @property
    def exit_code(self) -> int:
        """0 when nothing failed in this run; 1 when a study (or the PACS pull) failed or the run was stopped."""
        return 1 if self.failed or self.pull_error or self.stopped_by else 0

    @property
    def did_work(self) -> bool:
        """Whether this run processed, delivered or failed anything."""
        counts = self.counts
        return bool(counts["processed"] or counts["delivered"] or counts["failed"] or counts["interrupted"]
                    or self.pull_error or self.stopped_by)

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary."""
        return {
            "run_id": self.run_id,
            "inbox": self.inbox,
            "case_list": self.case_list,
            "out": self.out,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": self.duration_s,
            "executor": self.executor,
            "workers": self.workers,
            "segmenter": self.segmenter,
            "checkpoint_sha256": self.checkpoint_sha256,
            "config_hash": self.config_hash,
            "pulled": self.pulled,
            "pull_error": None if self.pull_error is None else safe_text(self.pull_error),
            "stopped_by": self.stopped_by,
            "leftovers": [safe_text(x) for x in self.leftovers],
            "exit_code": self.exit_code,
            "counts": self.counts,
            "flagged": len(self.flagged),
            "items": [i.to_dict() for i in self.items],
            "summary_files": self.summary_files,
        }

    def line(self) -> str:
        """One line for people: the counts that are not zero."""
        parts = [f"{n} {s.replace('_', ' ')}" for s, n in self.counts.items() if n]
        text = ", ".join(parts) or "no studies"
        if self.pulled:
            text += f"; {self.pulled} pulled from the PACS"
        if self.flagged:
            text += f"; {len(self.flagged)} with quality flags"
        if self.pull_error:
            text += "; the PACS pull failed"
        if self.stopped_by:
            text += f"; stopped by {self.stopped_by}"
        return f"batch {self.run_id}: {text}"


def write_summary(report: BatchReport, folder: Path) -> dict[str, str]:
    """Write ``<run_id>.json`` and ``<run_id>.csv`` into ``folder`` atomically; return their paths.

    Raises
    ------
    ichpipe.errors.OutputError
        If the folder cannot be created or the files written.
    """
    from ichpipe.errors import OutputError

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot create the summary folder {folder}: {exc.strerror or exc}.") from exc
    json_path = folder / f"{report.run_id}.json"
    csv_path = folder / f"{report.run_id}.csv"
    report.summary_files = {**report.summary_files, "json": str(json_path), "csv": str(csv_path)}
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for item in report.items:
        writer.writerow(item.csv_row())
    csv_bytes = text.getvalue().encode("utf-8")
    json_bytes = (json.dumps(report.to_dict(), indent=2) + "\n").encode("utf-8")

    def put(data: bytes) -> Any:
        def write(fh: BinaryIO) -> None:
            fh.write(data)

        return write

    atomic_write(csv_path, put(csv_bytes))
    atomic_write(json_path, put(json_bytes))
    return report.summary_files


#: Names of the summaries :func:`write_summary` writes: ``<run id>.json`` / ``.csv`` (see ``new_run_id``).
SUMMARY_NAME = re.compile(r"^(\d{8}T\d{12}Z-[A-Za-z0-9-]{1,24}-\d+)\.(json|csv|html)$")


#: A summary's temporary file (ichpipe.atomic): ``.<summary name>.<32 hex>.part``.
_PARTIAL = re.compile(r"^\.(\d{8}T\d{12}Z-[A-Za-z0-9-]{1,24}-\d+\.(?:json|csv|html))\.[0-9a-f]{32}\.part$")


def sweep_partial_summaries(folder: Path, *, older_than_s: float = 600.0) -> list[str]:
    """Remove temporary summary files a killed run left in ``folder`` (only ours, only old ones)."""
    removed: list[str] = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for path in folder.iterdir():
        if _PARTIAL.match(path.name) and path.is_file() and not path.is_symlink():
            try:
                if now - path.stat().st_mtime > older_than_s:
                    path.unlink()
                    removed.append(f"removed the unfinished summary file {path.name} of an interrupted run")
            except OSError as exc:
                log.warning("could not remove %s: %s", path, exc)
    return removed


def _is_our_summary(path: Path, run_id: str) -> bool:
    """Whether ``path`` is a JSON summary this module wrote (its name and its ``run_id`` field agree)."""
    try:
        with open(path, "rb") as fh:
            data = json.loads(fh.read(1 << 24))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("run_id") == run_id and "counts" in data


def prune_summaries(folder: Path, *, keep: int) -> int:
    """Remove all but the newest ``keep`` run summaries (by run id) in ``folder``; return how many runs.

    Only files this module wrote are touched: names ``<run id>.json``,
    ``.csv`` and ``.html`` where the JSON is a summary of that run. Anything else in
    a shared folder stays. ``keep == 0`` keeps everything.
    """
    if keep <= 0 or not folder.is_dir():
        return 0
    runs = sorted({m[1] for p in folder.iterdir() if (m := SUMMARY_NAME.match(p.name)) and m[2] == "json"
                   and p.is_file() and not p.is_symlink() and _is_our_summary(p, m[1])})
    removed = 0
    for run_id in runs[:-keep]:
        for suffix in (".json", ".csv", ".html"):
            path = folder / f"{run_id}{suffix}"
            if path.is_symlink():
                continue
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not remove an old batch summary %s%s: %s", run_id, suffix, exc)
        removed += 1
    return removed
