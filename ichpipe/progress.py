"""Progress of the long stages, one small helper for all of them.

A stage (reading headers, extracting a zip, decoding slices, segmenting,
writing outputs) says how far it is with :func:`stage`::

    with stage("reading headers", total=len(paths)) as progress:
        for path in paths:
            ...
            progress.advance()

Nothing is shown unless a :class:`ProgressDisplay` is active in the current
context (the command line opens one around ``run``, ``inspect``, ``batch`` and
``watch``), so library callers and pool workers see nothing. A display
writes to **stderr only** (stdout stays clean for ``--json``):

- on a terminal, a tqdm bar per running stage (gone when the stage ends);
- otherwise (a log file, cron, a pipe) a plain line once a stage has run for
  ``interval_s`` seconds (``progress.interval_s`` in the config, 10 s by
  default), then every ``interval_s`` seconds while it runs, and one closing
  line when such a stage ends; stages that end sooner print nothing. A
  heartbeat thread keeps the lines coming while a single item takes long
  (writing the SEG of a large series).

Stages are named by what they do and counted; a stage may name the item it
is working on (``seg.dcm``), never a path or a patient identifier.

Examples
--------
>>> import io
>>> out = io.StringIO()
>>> with ProgressDisplay(interval_s=0, tty=False, stream=out):
...     with stage("decoding slices", total=2) as progress:
...         progress.advance()
...         progress.advance()
>>> print(out.getvalue().splitlines()[-1].split(" done")[0])
ichpipe: decoding slices 2/2
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, TextIO, TypeVar

__all__ = ["DEFAULT_INTERVAL_S", "ProgressDisplay", "ProgressSink", "StageProgress", "report_to", "stage", "track"]

T = TypeVar("T")

#: Seconds between two progress lines when stderr is not a terminal.
DEFAULT_INTERVAL_S = 10.0


class ProgressSink(Protocol):
    """Receives the progress of stages (:class:`ProgressDisplay`, or a test's recorder)."""

    def started(self, progress: StageProgress) -> None:
        """A stage began (``progress.done == 0``)."""

    def advanced(self, progress: StageProgress) -> None:
        """A stage's count or current item changed."""

    def finished(self, progress: StageProgress) -> None:
        """A stage ended (completely or not)."""


_SINK: ContextVar[ProgressSink | None] = ContextVar("ichpipe_progress_sink", default=None)


class StageProgress:
    """How far one stage is; what :func:`stage` yields.

    Attributes
    ----------
    name:
        What the stage does (``"decoding slices"``).
    total:
        Items the stage will process.
    done:
        Items processed so far.
    item:
        The item being worked on, when the stage names it (``"seg.dcm"``).
    """

    def __init__(self, name: str, total: int, sink: ProgressSink | None) -> None:
        self.name = name
        self.total = total
        self.done = 0
        self.item: str | None = None
        self._sink = sink

    def advance(self, n: int = 1, *, item: str | None = None) -> None:
        """``n`` more items are done; ``item`` names the next one (optional)."""
        self.done = min(self.done + n, self.total)
        self.item = item
        if self._sink is not None:
            self._sink.advanced(self)

    def working_on(self, item: str) -> None:
        """Say which item is being processed now (its count does not change)."""
        self.item = item
        if self._sink is not None:
            self._sink.advanced(self)


@contextmanager
def report_to(sink: ProgressSink | None) -> Iterator[None]:
    """Send the progress of the stages run inside the block to ``sink`` (``None``: to nobody)."""
    token = _SINK.set(sink)
    try:
        yield
    finally:
        _SINK.reset(token)


@contextmanager
def stage(name: str, *, total: int) -> Iterator[StageProgress]:
    """Report the progress of one stage to the active display, if any.

    Parameters
    ----------
    name:
        What the stage does, for people (no paths or patient data).
    total:
        How many items it will process.

    Raises
    ------
    ValueError
        If ``name`` is empty or ``total`` negative.
    """
    if not name:
        raise ValueError("Argument 'name' must name the stage.")
    if total < 0:
        raise ValueError(f"Argument 'total' must be 0 or more; got {total}.")
    sink = _SINK.get()
    progress = StageProgress(name, int(total), sink)
    if sink is not None:
        sink.started(progress)
    try:
        yield progress
    finally:
        if sink is not None:
            sink.finished(progress)


def track(items: Sequence[T], name: str) -> Iterator[T]:
    """Yield ``items``, counting each one done when the next is asked for (a :func:`stage` over a sequence)."""
    with stage(name, total=len(items)) as progress:
        for item in items:
            yield item
            progress.advance()


@dataclass
class _Shown:
    progress: StageProgress
    started: float
    last_line: float
    printed: bool = False
    bar: Any = field(default=None)


class ProgressDisplay:
    """Shows the stages run inside its ``with`` block on stderr (see the module docstring).

    Parameters
    ----------
    interval_s:
        Seconds between two lines when not on a terminal (0: a line at every step).
    tty:
        Draw bars (``True``) or print lines (``False``); ``None`` asks whether
        the stream is a terminal.
    stream:
        Where to write; ``None`` is ``sys.stderr`` at the time of writing.
    heartbeat_s:
        How often the heartbeat looks for a stage that has printed nothing for
        ``interval_s`` (lines mode); ``None``: ``interval_s``, at least 1 s.

    Raises
    ------
    ValueError
        If ``interval_s`` or ``heartbeat_s`` is negative or not finite.
    """

    def __init__(self, *, interval_s: float = DEFAULT_INTERVAL_S, tty: bool | None = None,
                 stream: TextIO | None = None, heartbeat_s: float | None = None) -> None:
        if not (math.isfinite(interval_s) and interval_s >= 0):
            raise ValueError(f"Argument 'interval_s' must be a number of seconds >= 0; got {interval_s!r}.")
        if heartbeat_s is not None and not (math.isfinite(heartbeat_s) and heartbeat_s > 0):
            raise ValueError(f"Argument 'heartbeat_s' must be a positive number of seconds; got {heartbeat_s!r}.")
        self.interval_s = float(interval_s)
        self.heartbeat_s = float(heartbeat_s) if heartbeat_s is not None else max(self.interval_s, 1.0)
        self._stream = stream
        self.tty = bool(self.stream.isatty()) if tty is None else tty
        self._lock = threading.Lock()
        self._shown: dict[int, _Shown] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._token: Token[ProgressSink | None] | None = None

    @property
    def stream(self) -> TextIO:
        """The stream written to."""
        return self._stream if self._stream is not None else sys.stderr

    def __enter__(self) -> ProgressDisplay:
        self._token = _SINK.set(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._token is not None:
            _SINK.reset(self._token)
            self._token = None
        self.close()

    def close(self) -> None:
        """Stop the heartbeat and remove any bar still drawn."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        with self._lock:
            for shown in self._shown.values():
                if shown.bar is not None:
                    shown.bar.close()
            self._shown.clear()

    # ---------------------------------------------------------------- the sink
    def started(self, progress: StageProgress) -> None:
        """Begin showing a stage."""
        now = time.monotonic()
        shown = _Shown(progress, started=now, last_line=now)
        with self._lock:
            self._shown[id(progress)] = shown
            if self.tty:
                if progress.total > 0:
                    from tqdm import tqdm

                    shown.bar = tqdm(total=progress.total, desc=progress.name, file=self.stream, leave=False,
                                     dynamic_ncols=True, mininterval=0.2)
                return
            if self.interval_s == 0:
                self._emit(shown, now)
        self._heartbeat()

    def advanced(self, progress: StageProgress) -> None:
        """Redraw the bar, or print a line when ``interval_s`` has passed since the last one."""
        now = time.monotonic()
        with self._lock:
            shown = self._shown.get(id(progress))
            if shown is None:
                return
            if shown.bar is not None:
                shown.bar.update(progress.done - shown.bar.n)
                if progress.item:
                    shown.bar.set_postfix_str(progress.item, refresh=False)
            elif not self.tty and now - shown.last_line >= self.interval_s:
                self._emit(shown, now)

    def finished(self, progress: StageProgress) -> None:
        """Remove the bar; print a closing line for a stage that printed or took ``interval_s`` or longer."""
        now = time.monotonic()
        with self._lock:
            shown = self._shown.pop(id(progress), None)
            if shown is None:
                return
            if shown.bar is not None:
                shown.bar.close()
            elif not self.tty and (shown.printed or now - shown.started >= self.interval_s):
                self._write(f"ichpipe: {progress.name} {progress.done}/{progress.total} done in "
                            f"{now - shown.started:.1f} s")

    # ---------------------------------------------------------------- lines
    def _emit(self, shown: _Shown, now: float) -> None:
        p = shown.progress
        item = f" ({p.item})" if p.item else ""
        self._write(f"ichpipe: {p.name} {p.done}/{p.total}{item}, {now - shown.started:.0f} s")
        shown.last_line = now
        shown.printed = True

    def _write(self, line: str) -> None:
        stream = self.stream
        stream.write(line + "\n")
        stream.flush()

    def _heartbeat(self) -> None:
        """Start the thread that prints lines while a stage makes no step (lines mode only)."""
        if self.tty or self._thread is not None or self._stop.is_set():
            return
        self._thread = threading.Thread(target=self._beat, name="ichpipe-progress", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            now = time.monotonic()
            with self._lock:
                for shown in self._shown.values():
                    if now - shown.last_line >= self.interval_s:
                        self._emit(shown, now)
