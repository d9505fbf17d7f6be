"""Atomic file writing and file hashing for model files.

A checkpoint or exported model is written to a temporary file in the target
folder, flushed to disk and renamed over the target with :func:`os.replace`,
so a crash never leaves a half-written file under the final name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ichpipe.errors import OutputError

__all__ = ["atomic_write", "file_sha256"]


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write`` on a temporary file next to ``path``, then rename it to ``path``.

    Parameters
    ----------
    path:
        Final file name; its folder must exist.
    write:
        Writes the whole content to the binary file object it is given.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ichpipe.errors.OutputError
        If the folder is missing or the file cannot be written; no file is
        left behind under either name.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "x.bin"
    >>> atomic_write(out, lambda f: f.write(b"abc")).read_bytes()
    b'abc'
    """
    target = Path(path)
    folder = target.parent
    if not folder.is_dir():
        raise OutputError(
            f"Cannot write '{target}': folder '{folder}' does not exist; create it first."
        )
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OutputError(f"Cannot write '{target}': {exc.strerror or exc}.") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"Cannot write '{target}': {exc.strerror or exc}.") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def file_sha256(path: str | os.PathLike[str], *, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, as 64 lowercase hex digits.

    This is the ``checkpoint_sha256`` of the study report.

    Parameters
    ----------
    path:
        The file.
    chunk_size:
        Bytes read at a time.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "empty"
    >>> _ = p.write_bytes(b"")
    >>> file_sha256(p)[:16]
    'e3b0c44298fc1c14'
    """
    if chunk_size < 1:
        raise ValueError(f"Argument 'chunk_size' must be positive; got {chunk_size}.")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
