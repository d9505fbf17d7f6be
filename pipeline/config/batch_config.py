"""Configuration of ``ichpipe batch`` and ``ichpipe watch`` (the ``batch:`` section of ``config.yaml``).

Kept apart from the batch machinery so that loading the configuration stays
fast (no Dask, no SQLAlchemy imported).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["BatchConfig", "Executor", "OnLocked"]

Executor = Literal["local", "dask"]
OnLocked = Literal["skip", "wait"]


@dataclass(frozen=True)
class BatchConfig:
    """How a batch over an inbox runs.

    Parameters
    ----------
    settle_s:
        A top-level folder of the inbox whose newest file changed (mtime or
        ctime) less than this many seconds ago is still arriving: it is left
        for the next run.
    workers:
        Studies processed at once; above 1 a local process pool (``--workers``).
    executor:
        ``local`` (in-process or process pool) or ``dask`` (a Dask distributed
        cluster at ``scheduler``; workers need the same install and a shared
        file system).
    scheduler:
        Dask scheduler address (``tcp://host:8786``) for ``executor: dask``.
    on_locked:
        What a run does with a series another run is processing: ``skip`` it
        (left for the next run) or ``wait`` for it (up to ``lock_wait_s``).
    lock_wait_s:
        Longest wait for a series lock with ``on_locked: wait``.
    retry_failed:
        Retry studies whose input was rejected (not DICOM, no usable series)
        even though nothing changed; other failures are always retried.
    poll_interval_s:
        Seconds between two scans of the inbox in ``ichpipe watch``.
    summary_dir:
        Folder of the per-run summaries (CSV and JSON); ``null`` uses
        ``OUT/batch-runs``.
    keep_summaries:
        Summaries kept in that folder; older ones are removed (0 keeps all).
    """

    settle_s: float = 120.0
    workers: int = 1
    executor: Executor = "local"
    scheduler: str | None = None
    on_locked: OnLocked = "skip"
    lock_wait_s: float = 600.0
    retry_failed: bool = False
    poll_interval_s: float = 60.0
    summary_dir: str | None = None
    keep_summaries: int = 1000

    def __post_init__(self) -> None:
        for name in ("settle_s", "lock_wait_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"Argument '{name}' must be a number of seconds >= 0; got {value!r}.")
        if not math.isfinite(self.poll_interval_s) or self.poll_interval_s <= 0:
            raise ValueError(f"Argument 'poll_interval_s' must be a positive number of seconds; "
                             f"got {self.poll_interval_s!r}.")
        if self.workers < 1:
            raise ValueError(f"Argument 'workers' must be at least 1; got {self.workers}.")
        if self.keep_summaries < 0:
            raise ValueError(f"Argument 'keep_summaries' must be 0 (keep all) or more; got {self.keep_summaries}.")
        if self.scheduler is not None and not self.scheduler.strip():
            raise ValueError("Argument 'scheduler' must be a Dask scheduler address or null.")
        if self.summary_dir is not None and not self.summary_dir.strip():
            raise ValueError("Argument 'summary_dir' must name a folder or be null (OUT/batch-runs).")
