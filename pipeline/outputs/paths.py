"""Output paths built from UIDs only, validated; output folders made and, after a failed run, removed.

Free-text tags (PatientName, SeriesDescription, AccessionNumber...) never reach
a path: a value like ``../../etc`` could otherwise escape the output folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from ichpipe.errors import DicomInputError, OutputError

__all__ = ["make_output_dirs", "remove_empty_dirs", "series_output_dir", "validate_uid"]

_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def validate_uid(uid: str, *, what: str) -> str:
    """Return ``uid`` if it is a valid DICOM UID (digits and dots, at most 64 characters).

    Raises
    ------
    DicomInputError
        If it is empty, too long or holds other characters.
    """
    if not uid or len(uid) > 64 or not _UID.match(uid):
        shown = uid if len(uid) <= 80 else uid[:77] + "..."
        raise DicomInputError(
            f"{what} {shown!r} is not a valid DICOM UID (digits and dots, at most 64 characters);"
            " refusing to build an output path from it."
        )
    return uid


def series_output_dir(out: Path, study_uid: str, series_uid: str) -> Path:
    """``OUT/<StudyInstanceUID>/<SeriesInstanceUID>/`` with both UIDs validated."""
    return Path(out) / validate_uid(study_uid, what="StudyInstanceUID") / validate_uid(
        series_uid, what="SeriesInstanceUID"
    )


def make_output_dirs(out_dir: Path) -> list[Path]:
    """Create ``out_dir`` and its missing parents; return the folders created (deepest first)."""
    created: list[Path] = []
    folder = out_dir
    while not folder.exists():
        created.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot create output folder {out_dir}: {exc.strerror or exc}.") from exc
    return created


def remove_empty_dirs(folders: list[Path]) -> None:
    """Remove the folders a failed run created, deepest first, where they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            break  # not empty (another run's files) or gone: leave it and its parents
