"""Atomic file writes shared by every layer.

The content goes to a hidden temporary name in the target folder, is flushed
and fsync'd, then renamed over the final name with ``os.replace``. A crash, a
full disk or a read-only folder leaves either the complete file or no file at
all under the final name, never half of one, and no temporary file behind.
The file gets the usual permissions (``0666`` less the umask).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ichpipe.errors import OutputError

__all__ = ["atomic_write"]

log = logging.getLogger(__name__)


def _remove_quietly(tmp: Path) -> None:
    try:
        tmp.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        log.warning("could not remove temporary file %s after a failed write: %s", tmp, exc)


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[BinaryIO], object], *, what: str | None = None
) -> Path:
    """Call ``write`` on a temporary file next to ``path``, then rename it to ``path``.

    Parameters
    ----------
    path:
        Final file name; its folder must exist.
    write:
        Writes the whole content to the binary file object it is given.
    what:
        What is written (``"DICOM SEG"``), for error messages; ``None`` names the file only.

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
    >>> tmp = tempfile.TemporaryDirectory()
    >>> out = pathlib.Path(tmp.name) / "x.bin"
    >>> atomic_write(out, lambda f: f.write(b"abc")).read_bytes()
    b'abc'
    >>> tmp.cleanup()
    """
    final = Path(path)
    if not final.parent.is_dir():
        if what is None:
            raise OutputError(f"Cannot write '{final}': folder '{final.parent}' does not exist; create it first.")
        raise OutputError(f"Could not write the {what} to {final}: folder '{final.parent}' does not exist.")
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.part")
    try:
        with open(tmp, "xb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except OSError as exc:
        _remove_quietly(tmp)
        reason = exc.strerror or str(exc)
        if what is None:
            raise OutputError(f"Cannot write '{final}': {reason}.") from exc
        raise OutputError(
            f"Could not write the {what} to {final}: {reason}."
            " Check that the folder exists, is writable and has free space."
        ) from exc
    except BaseException:
        _remove_quietly(tmp)
        raise
    return final
