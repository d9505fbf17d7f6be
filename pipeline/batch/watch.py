"""``ichpipe watch``: a long-running alternative to cron that polls the inbox.

Each cycle is one :func:`ichpipe.pipeline.batch.runner.run_batch` (same ledger, same
locks, so ``watch`` and cron runs can even overlap safely); between cycles it
sleeps ``batch.poll_interval_s``. SIGTERM or SIGINT asks it to stop: the
study being processed is finished, no new one starts, and it exits 0. A
second signal stops at once (outputs are written atomically, so even that
leaves nothing half-written; the interrupted study is redone next time).

Idle cycles write no summary files; cycles that did something do.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from types import FrameType

from ichpipe.errors import ConfigError, IchpipeError, UsageError
from ichpipe.pipeline.batch.options import BatchOptions
from ichpipe.pipeline.batch.runner import BatchProgress, run_batch
from ichpipe.pipeline.batch.summary import BatchReport
from ichpipe.pipeline.config import Config

__all__ = ["StopRequest", "stop_on_signals", "watch"]

log = logging.getLogger(__name__)


class StopRequest(threading.Event):
    """A stop flag that remembers why it was set (``SIGTERM``, ``SIGINT``)."""

    def __init__(self) -> None:
        super().__init__()
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        """Set the flag, keeping the first reason."""
        self.reason = self.reason or reason
        self.set()


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """Set ``stop`` on SIGTERM/SIGINT while inside the block (main thread only); a second signal interrupts.

    The first signal stops new work at once (running studies finish); the
    second raises ``KeyboardInterrupt``, which abandons the running studies
    (the batch still writes its summary).
    """
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            raise KeyboardInterrupt(f"second {name}")
        log.warning("%s received: no new study starts; finishing the running ones (send it again to stop at once)",
                    name)
        if isinstance(stop, StopRequest):
            stop.request(name)
        else:
            stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def watch(
    options: BatchOptions,
    config: Config,
    *,
    stop: threading.Event | None = None,
    progress: Callable[[], BatchProgress | None] | None = None,
    on_cycle: Callable[[BatchReport], None] | None = None,
    max_cycles: int | None = None,
) -> int:
    """Poll the inbox until stopped; return the exit status (0 after a graceful stop).

    Parameters
    ----------
    options:
        As for a batch; ``write_summary`` becomes ``"auto"``.
    config:
        The configuration (``batch.poll_interval_s`` sets the pause).
    stop:
        Set it to stop (the caller installs signal handlers with
        :func:`stop_on_signals`); ``None`` makes a private one.
    progress:
        Makes a progress receiver for each cycle.
    on_cycle:
        Called with each cycle's report.
    max_cycles:
        Stop after this many cycles (tests); ``None`` runs until stopped.

    Raises
    ------
    ichpipe.errors.UsageError, ichpipe.errors.ConfigError
        Bad folders or settings: not worth retrying, the service stops (exit status 2).
    """
    if max_cycles is not None and max_cycles < 1:
        raise ValueError(f"Argument 'max_cycles' must be at least 1 or None; got {max_cycles}.")
    stop = stop or threading.Event()
    options = replace(options, write_summary="auto")
    interval = config.batch.poll_interval_s
    cycles = 0
    log.info("watching %s every %.0f s", options.inbox, interval)
    while not stop.is_set():
        cycles += 1
        try:
            report = run_batch(options, config, progress=progress() if progress else None,
                               should_stop=stop.is_set, stop_reason=lambda: getattr(stop, "reason", None))
        except (UsageError, ConfigError):
            raise
        except IchpipeError as exc:
            log.error("watch cycle %d failed: %s; trying again in %.0f s", cycles, exc, interval)
        except Exception as exc:
            log.error("watch cycle %d failed with an unexpected %s: %s; trying again in %.0f s", cycles,
                      type(exc).__name__, exc, interval, exc_info=True)
        else:
            if report.did_work:
                log.info("%s", report.line())
            if on_cycle is not None:
                on_cycle(report)
        if max_cycles is not None and cycles >= max_cycles:
            break
        stop.wait(interval)
    log.info("watch stopped after %d cycle(s)", cycles)
    return 0
