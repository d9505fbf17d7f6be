"""Write a DICOM dataset atomically: a temporary name in the target folder, then ``os.replace``.

A crash, a full disk or a read-only folder leaves either the complete file or
no file at all under the final name, never half of one. Failures of the file
system become :class:`~ichpipe.errors.OutputError`.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

from pydicom import dcmwrite
from pydicom.dataset import Dataset

from ichpipe.errors import OutputError

__all__ = ["write_dataset_atomic"]

log = logging.getLogger(__name__)


def _remove_quietly(tmp: Path) -> None:
    """Remove a temporary file after a failure; a failure to remove it is logged, not raised."""
    try:
        tmp.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        log.warning("could not remove temporary file %s after a failed write: %s", tmp, exc)


def write_dataset_atomic(dataset: Dataset, path: str | os.PathLike[str], *, what: str) -> Path:
    """Write ``dataset`` to ``path`` as a DICOM file (with preamble and file meta), atomically.

    Parameters
    ----------
    dataset:
        The dataset to write; it must carry ``file_meta`` (highdicom's do).
    path:
        Final file name; its folder must exist.
    what:
        What is written, for error messages (e.g. ``"DICOM SEG"``).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    OutputError
        If the file cannot be written or renamed (missing or read-only folder,
        disk full, ...); no file is left under ``path`` or the temporary name.
    """
    final = Path(path)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.part")
    try:
        with open(tmp, "xb") as fh:
            dcmwrite(fh, dataset, enforce_file_format=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except OSError as exc:
        _remove_quietly(tmp)
        reason = exc.strerror or str(exc)
        raise OutputError(
            f"Could not write the {what} to {final}: {reason}."
            " Check that the folder exists, is writable and has free space."
        ) from exc
    except BaseException:
        _remove_quietly(tmp)
        raise
    return final
