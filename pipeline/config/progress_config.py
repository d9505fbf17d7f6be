"""The ``progress:`` section of ``config.yaml``: how long stages show their progress (:mod:`ichpipe.progress`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ProgressConfig"]


@dataclass(frozen=True)
class ProgressConfig:
    """Progress of discovery, decoding, segmentation and writing on stderr (``run``, ``inspect``, ``batch``).

    On a terminal each running stage draws a bar; otherwise (a log file, cron)
    a stage that runs longer than ``interval_s`` prints a line every
    ``interval_s`` seconds and one when it ends. Stdout is never used, so
    ``--json`` output stays clean. It does not change any result (the batch
    ledger ignores this section).

    Parameters
    ----------
    interval_s:
        Seconds between two progress lines when stderr is not a terminal
        (0: a line at every step).
    """

    interval_s: float = 10.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.interval_s) and self.interval_s >= 0):
            raise ValueError(f"Argument 'interval_s' must be a number of seconds >= 0; got {self.interval_s!r}.")
