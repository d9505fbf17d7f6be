"""Where a study comes from: a folder, a single DICOMDIR file, or a ``.zip``.

:func:`open_study` hides the difference: it yields a
:class:`~ichpipe.dicom_io.discover.DiscoveryResult` whose files stay readable until the
``with`` block ends (a zip is extracted to a private temporary folder, with
limits against zip bombs and path traversal, and removed afterwards).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from ichpipe.dicom_io.discover import (
    PARSE_ERRORS,
    DiscoveryConfig,
    DiscoveryResult,
    SkippedFile,
    describe_error,
    discover,
    read_header,
)
from ichpipe.errors import DicomInputError
from ichpipe.progress import stage

__all__ = ["open_study"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20

_DICOMDIR_ERRORS: tuple[type[Exception], ...] = (InvalidDicomError, OSError, ValueError, EOFError, *PARSE_ERRORS)


def _extract_zip(archive: Path, dest: Path, cfg: DiscoveryConfig) -> None:
    """Extract ``archive`` into ``dest`` safely.

    Member names are replaced by their index (no path from the archive reaches
    the file system); declared and actual sizes are checked against
    ``max_zip_bytes`` and ``max_zip_ratio`` while streaming.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DicomInputError(f"{archive} is not a readable zip archive ({exc}).") from exc
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > cfg.max_files:
            raise DicomInputError(
                f"{archive} holds {len(members)} files, more than discovery.max_files={cfg.max_files}."
            )
        declared = sum(m.file_size for m in members)
        if declared > cfg.max_zip_bytes:
            raise DicomInputError(
                f"{archive} would unpack to {declared} bytes, more than discovery.max_zip_bytes;"
                " refusing (possible zip bomb)."
            )
        total = 0
        for i, member in enumerate(members):
            limit = max(member.compress_size, 1) * cfg.max_zip_ratio
            written = 0
            target = dest / f"{i:06d}.dcm"
            try:
                with zf.open(member) as src, open(target, "wb") as out:
                    while chunk := src.read(_CHUNK):
                        written += len(chunk)
                        total += len(chunk)
                        if written > max(limit, 1 << 20) or total > cfg.max_zip_bytes:
                            raise DicomInputError(
                                f"{archive}: member #{i} expands beyond the allowed size"
                                " (discovery.max_zip_ratio / max_zip_bytes); refusing (possible zip bomb)."
                            )
                        out.write(chunk)
            except (zipfile.BadZipFile, EOFError, OSError, RuntimeError) as exc:
                log.warning("skipping member #%d of %s: %s", i, archive, exc)
                target.unlink(missing_ok=True)


def _dicomdir_files(dicomdir: Path) -> list[Path]:
    """Files referenced by the IMAGE records of a DICOMDIR, resolved on disk."""
    try:
        ds = pydicom.dcmread(dicomdir, force=True)
        refs = [record.get("ReferencedFileID") for record in ds.get("DirectoryRecordSequence", [])]
    except _DICOMDIR_ERRORS as exc:
        raise DicomInputError(f"{dicomdir} is not a readable DICOMDIR ({describe_error(exc)}).") from exc
    root = dicomdir.parent.resolve()
    found: list[Path] = []
    for ref in refs:
        if not ref:
            continue
        parts = [str(p) for p in (ref if isinstance(ref, list | pydicom.multival.MultiValue) else [ref])]
        # IDs are relative to the file-set root; media often hold the DICOMDIR in a
        # sub-folder, so try dropping leading components until a file exists.
        for start in range(len(parts)):
            candidate = root.joinpath(*parts[start:])
            if candidate.is_file() and candidate.resolve().is_relative_to(root):
                found.append(candidate)
                break
        else:
            log.warning("%s: referenced file %s not found", dicomdir, "/".join(parts))
    return found


def _discover_files(files: list[Path], cfg: DiscoveryConfig) -> DiscoveryResult:
    result = DiscoveryResult()
    with stage("reading headers", total=len(files)) as progress:
        for path in files:
            result.n_examined += 1
            try:
                result.headers.append((path, read_header(path)))
            except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError) as exc:
                result.skipped.append(SkippedFile(path, f"unreadable ({describe_error(exc)})"))
            progress.advance()
    return result


def _is_dicomdir(path: Path) -> bool:
    if path.name.upper() == "DICOMDIR":
        return True
    try:
        ds = read_header(path)
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return False
    return "DirectoryRecordSequence" in ds


@contextlib.contextmanager
def open_study(path: Path, *, config: DiscoveryConfig | None = None) -> Iterator[DiscoveryResult]:
    """Discover the DICOM headers of a study given as a folder, DICOMDIR or zip.

    Parameters
    ----------
    path:
        A folder (scanned recursively by content), a DICOMDIR file, a ``.zip``
        archive of a study, or a single DICOM file.
    config:
        Discovery limits.

    Yields
    ------
    DiscoveryResult
        The headers; their files stay readable inside the ``with`` block.

    Raises
    ------
    DicomInputError
        If ``path`` does not exist or an archive is unreadable or too large.
    """
    cfg = config or DiscoveryConfig()
    path = Path(path)
    if not path.exists():
        raise DicomInputError(f"Study path {path} does not exist.")
    if path.is_file() and zipfile.is_zipfile(path):
        tmp = Path(tempfile.mkdtemp(prefix="ichpipe-zip-"))
        try:
            _extract_zip(path, tmp, cfg)
            yield discover(tmp, config=cfg)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    if path.is_file() and _is_dicomdir(path):
        yield _discover_files(_dicomdir_files(path), cfg)
        return
    yield discover(path, config=cfg)
