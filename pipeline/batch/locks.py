"""Per-series lock files: two batch runs never process the same series at once.

A lock is an ``fcntl.flock`` on a file under ``OUT/.ichpipe/locks/``. The
kernel drops it when its process ends, however it ends (``kill -9``
included), so a crashed run never leaves a series locked. The holder writes
its host, PID and start time into the file (for people, not for the
locking) and removes the file while still holding the lock; a waiter that
locked a file that was removed meanwhile notices (the inode changed) and
tries again, so removal is race-free.

``flock`` works across processes of one machine and, on Linux, over NFSv4;
Dask workers on several machines need a shared file system with working
``flock`` (NFSv4, CephFS, Lustre with ``flock`` mounted).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import re
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from ichpipe.errors import OutputError

__all__ = ["SeriesLock", "acquire_lock", "lock_name"]

log = logging.getLogger(__name__)

_SAFE = re.compile(r"^[0-9.]{1,64}$")


def lock_name(job_key: str) -> str:
    """A file-name-safe name for a job key: ``series-<UID>``, ``study-<UID>`` or ``path-<hash>``.

    Raises
    ------
    ValueError
        If ``job_key`` is not ``kind:value``.
    """
    kind, sep, value = job_key.partition(":")
    if not sep or not kind or not value:
        raise ValueError(f"Argument 'job_key' must look like 'series:<UID>'; got {job_key!r}.")
    if kind in ("series", "study") and _SAFE.match(value):
        return f"{kind}-{value}"
    return f"{kind}-{hashlib.sha256(value.encode()).hexdigest()[:40]}"


class SeriesLock:
    """A held lock; release it with :meth:`release` or a ``with`` block."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        """Whether the lock is still held."""
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file and release the lock (idempotent)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not remove lock file %s: %s", self.path, exc)
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> SeriesLock:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _try_once(path: Path) -> int | None:
    """Lock ``path`` without blocking; the fd, or ``None`` if another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    try:
        same = os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        same = False
    if not same:  # removed (and maybe re-created) by the previous holder meanwhile
        os.close(fd)
        return -1
    return fd


def acquire_lock(lock_dir: Path, name: str, *, wait: bool, timeout_s: float = 600.0,
                 poll_s: float = 0.2) -> SeriesLock | None:
    """Take the lock ``name`` in ``lock_dir``.

    Parameters
    ----------
    lock_dir:
        Folder of the lock files (created if missing).
    name:
        Lock name, from :func:`lock_name`.
    wait:
        Wait for another holder to finish (up to ``timeout_s``); with
        ``False`` return ``None`` at once when the lock is held.
    timeout_s:
        Longest wait.
    poll_s:
        Pause between two attempts while waiting.

    Returns
    -------
    SeriesLock or None
        The held lock, or ``None`` if another process held it (past the timeout).

    Raises
    ------
    ichpipe.errors.OutputError
        If the lock folder or file cannot be created.
    ValueError
        If ``name`` is not a plain file name or a duration is negative.
    """
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"Argument 'name' must be a plain file name; got {name!r}.")
    if timeout_s < 0 or poll_s <= 0:
        raise ValueError("Arguments 'timeout_s' and 'poll_s' must be >= 0 and > 0.")
    path = Path(lock_dir) / f"{name}.lock"
    deadline = time.monotonic() + timeout_s
    try:
        Path(lock_dir).mkdir(parents=True, exist_ok=True)
        while True:
            fd = _try_once(path)
            if fd is not None and fd >= 0:
                stamp = f"{socket.gethostname()} pid {os.getpid()} since {datetime.now(UTC).isoformat()}\n"
                os.ftruncate(fd, 0)
                os.write(fd, stamp.encode())
                return SeriesLock(path, fd)
            if fd == -1:
                continue  # the file was replaced: retry at once
            if not wait or time.monotonic() >= deadline:
                return None
            time.sleep(poll_s)
    except OSError as exc:
        raise OutputError(f"Cannot take the lock {path}: {exc.strerror or exc}.") from exc
