"""Worker processes that never outlive the batch that started them, and what earlier runs left behind.

- :func:`die_with_parent` (called first thing in every pool worker): on Linux
  the kernel sends the worker SIGKILL when its parent dies (``prctl
  PR_SET_PDEATHSIG`` through ctypes, so ``kill -9`` of the batch takes its
  workers with it); everywhere a watchdog thread checks the parent's pid once
  a second and ends the worker when it changed. A worker killed mid-study
  leaves only its private staging folder, which the next run removes; its
  series lock dies with it.
- :func:`register_worker` / :func:`find_stale_workers`: each worker writes
  ``OUT/.ichpipe/workers/<pid>.json`` (pid, parent pid, process start time,
  run id); the next run reports any that is still alive without its parent
  (it should not exist: the report names it so that an operator can end it)
  and removes the files of dead ones.

The parent-death signal is tied to the *thread* that started the worker:
the pool starts its workers from the thread that submits the studies (the
main thread of ``ichpipe batch`` and ``watch``), which lives as long as the
pool.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["StaleWorker", "die_with_parent", "find_stale_workers", "process_start_time", "register_worker"]

log = logging.getLogger(__name__)

#: prctl option: signal to deliver to this process when its parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1
#: How often the watchdog looks at the parent's pid.
WATCHDOG_INTERVAL_S = 1.0


def _set_parent_death_signal(sig: int) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies; False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0
    except (OSError, AttributeError) as exc:
        log.debug("prctl(PR_SET_PDEATHSIG) is not available: %s", exc)
        return False


def _watchdog(parent_pid: int, interval_s: float) -> None:
    while True:
        time.sleep(interval_s)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)


def die_with_parent(parent_pid: int, *, interval_s: float = WATCHDOG_INTERVAL_S) -> None:
    """Make this (worker) process end when ``parent_pid`` ends, however it ends.

    Parameters
    ----------
    parent_pid:
        The pid of the process that started this one (``os.getpid()`` there).
    interval_s:
        How often the watchdog checks the parent.
    """
    _set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=_watchdog, args=(parent_pid, interval_s), daemon=True,
                     name="ichpipe-parent-watchdog").start()


def process_start_time(pid: int) -> str | None:
    """The start time of process ``pid`` as the kernel counts it (Linux ``/proc``), or None if unknown.

    Two processes with the same pid (a pid reused) have different start times.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def _alive(pid: int, start_time: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if start_time is not None:
        return process_start_time(pid) == start_time
    return True


def register_worker(folder: Path, *, run_id: str, parent_pid: int) -> Path | None:
    """Record this worker in ``folder`` (``<pid>.json``); a failure only loses the record."""
    pid = os.getpid()
    record = {"pid": pid, "parent_pid": parent_pid, "start_time": process_start_time(pid),
              "parent_start_time": process_start_time(parent_pid), "run_id": run_id}
    path = folder / f"{pid}.json"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
    except OSError as exc:
        log.debug("could not record worker %d in %s: %s", pid, folder, exc)
        return None
    return path


@dataclass(frozen=True)
class StaleWorker:
    """A worker of an earlier run still alive although the run that started it is gone."""

    pid: int
    run_id: str

    def describe(self) -> str:
        """One sentence for the log and the summary."""
        return (f"worker process {self.pid} of the earlier batch {self.run_id} is still running without its"
                f" parent; end it (kill {self.pid}) if it does not exit by itself")


def find_stale_workers(folder: Path) -> list[StaleWorker]:
    """Workers recorded in ``folder`` that outlived their run; records of dead workers are removed."""
    stale: list[StaleWorker] = []
    if not folder.is_dir():
        return stale
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text())
            pid, parent = int(record["pid"]), int(record["parent_pid"])
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            continue
        if not _alive(pid, record.get("start_time")):
            path.unlink(missing_ok=True)
            continue
        if _alive(parent, record.get("parent_start_time")):
            continue  # a worker of a run still going on
        stale.append(StaleWorker(pid=pid, run_id=str(record.get("run_id", "?"))))
    return stale
