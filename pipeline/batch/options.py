"""The options of one ``ichpipe batch`` (or one ``watch`` cycle): a frozen, validated dataclass.

Command-line values win over the config's ``batch:`` and ``pacs:`` sections;
``None`` means "as the config says".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ichpipe.pipeline.config.batch_config import Executor, OnLocked
from ichpipe.pipeline.config.inference_config import Device

__all__ = ["BatchOptions"]


@dataclass(frozen=True, kw_only=True)
class BatchOptions:
    """What the command line asks of a batch run.

    Parameters
    ----------
    inbox:
        Folder the studies arrive in (never modified, except by the PACS pull
        that writes new studies into it).
    case_list:
        Instead of an inbox, a CSV list of NIfTI files and study folders (a
        research cohort, :mod:`~ichpipe.pipeline.batch.case_list`). Exactly
        one of ``inbox`` and ``case_list`` is given.
    out:
        Output root; ``None`` uses ``outputs.directory``. Must not overlap the inbox.
    segmenter, checkpoint, device:
        As for ``ichpipe run``.
    workers:
        Studies processed at once by a local process pool (``batch.workers``).
    executor:
        ``local`` or ``dask`` (``batch.executor``).
    scheduler:
        Dask scheduler address (``batch.scheduler``).
    settle_s:
        Settle time (``batch.settle_s``).
    on_locked:
        ``skip`` or ``wait`` (``batch.on_locked``).
    pull, send:
        Pull new studies from / send outputs to the PACS (``pacs.pull``, ``pacs.send``).
    write_summary:
        Write the CSV and JSON summary of the run; ``"auto"`` only when the
        run did something (``watch`` uses it so idle polls leave no files).
    """

    inbox: Path | None = None
    case_list: Path | None = None
    out: Path | None = None
    segmenter: str | None = None
    checkpoint: Path | None = None
    device: Device | None = None
    workers: int | None = None
    executor: Executor | None = None
    scheduler: str | None = None
    settle_s: float | None = None
    on_locked: OnLocked | None = None
    pull: bool | None = None
    send: bool | None = None
    write_summary: bool | str = True

    def __post_init__(self) -> None:
        if (self.inbox is None) == (self.case_list is None):
            raise ValueError("Exactly one of the arguments 'inbox' and 'case_list' must be given; got "
                             f"{'both' if self.inbox is not None else 'neither'}.")
        if self.workers is not None and (isinstance(self.workers, bool) or self.workers < 1):
            raise ValueError(f"Argument 'workers' must be at least 1; got {self.workers!r}.")
        if self.settle_s is not None and (not math.isfinite(self.settle_s) or self.settle_s < 0):
            raise ValueError(f"Argument 'settle_s' must be a number of seconds >= 0; got {self.settle_s!r}.")
        if self.executor not in (None, "local", "dask"):
            raise ValueError(f"Argument 'executor' must be 'local' or 'dask'; got {self.executor!r}.")
        if self.on_locked not in (None, "skip", "wait"):
            raise ValueError(f"Argument 'on_locked' must be 'skip' or 'wait'; got {self.on_locked!r}.")
        if self.write_summary not in (True, False, "auto"):
            raise ValueError(f"Argument 'write_summary' must be true, false or 'auto'; got {self.write_summary!r}.")
        if self.scheduler is not None and not self.scheduler.strip():
            raise ValueError("Argument 'scheduler' must be a Dask scheduler address.")
