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
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from ichpipe.atomic import atomic_write

__all__ = ["STATUSES", "BatchReport", "JobOutcome", "Status", "prune_summaries", "write_summary"]

log = logging.getLogger(__name__)

Status = Literal["processed", "delivered", "failed", "skipped", "skipped_failed", "waiting", "locked", "cancelled"]

#: Every status, in the order the summary counts them.
#:
#: ``processed`` done in this run; ``delivered`` done earlier, sent to the PACS
#: in this run; ``failed`` failed in this run (processing or delivery);
#: ``skipped`` done earlier with the same instances, config and checkpoint;
#: ``skipped_failed`` failed earlier on the same input (not retried);
#: ``waiting`` still arriving (settle time); ``locked`` another run holds it;
#: ``cancelled`` not started because the run was asked to stop.
STATUSES: tuple[Status, ...] = ("processed", "delivered", "failed", "skipped", "skipped_failed", "waiting",
                                "locked", "cancelled")

CSV_FIELDS = ("status", "key", "label", "study_instance_uid", "series_instance_uid", "n_instances", "volume_ml",
              "quality_flags", "output_dir", "duration_s", "attempts", "error_type", "error", "source")


@dataclass(frozen=True, kw_only=True)
class JobOutcome:
    """What happened to one study in one run (no patient names or IDs).

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

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"Argument 'status' must be one of {', '.join(STATUSES)}; got {self.status!r}.")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        out = asdict(self)
        out["quality_flags"] = None if self.quality_flags is None else list(self.quality_flags)
        return out

    def csv_row(self) -> dict[str, Any]:
        """The CSV summary's row: empty cells for unknown values, flags joined by ``;``."""
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
    items:
        One outcome per study (and per entry still arriving).
    pull_error:
        Why the PACS pull failed, if it did.
    summary_files:
        Where the CSV and JSON summaries were written.
    """

    run_id: str
    inbox: str
    out: str
    started_at: str
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
        """0 when nothing failed in this run, 1 when a study (or the PACS pull) failed."""
        return 1 if self.failed or self.pull_error else 0

    @property
    def did_work(self) -> bool:
        """Whether this run processed, delivered or failed anything."""
        counts = self.counts
        return bool(counts["processed"] or counts["delivered"] or counts["failed"] or self.pull_error)

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary."""
        return {
            "run_id": self.run_id,
            "inbox": self.inbox,
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
            "pull_error": self.pull_error,
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


def prune_summaries(folder: Path, *, keep: int) -> int:
    """Remove all but the newest ``keep`` run summaries (by run id) in ``folder``; return how many runs.

    ``keep == 0`` keeps everything.
    """
    if keep <= 0 or not folder.is_dir():
        return 0
    runs = sorted({p.stem for p in folder.glob("*.json") if not p.name.startswith(".")})
    removed = 0
    for run_id in runs[:-keep]:
        for suffix in (".json", ".csv", ".html"):
            try:
                (folder / f"{run_id}{suffix}").unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not remove an old batch summary %s%s: %s", run_id, suffix, exc)
        removed += 1
    return removed
