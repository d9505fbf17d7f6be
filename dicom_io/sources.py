"""Where a study comes from: a folder, a single DICOMDIR file, or a ``.zip``.

:func:`open_study` hides the difference: it yields a
:class:`~ichpipe.dicom_io.discover.DiscoveryResult` whose files stay readable until the
``with`` block ends (a zip is extracted to a private temporary folder, with
limits against zip bombs and path traversal, and removed afterwards; a run
killed meanwhile leaves it behind, and :func:`sweep_stale_extractions`, which
``run`` and ``batch`` call when they start, removes it).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import time
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

__all__ = ["EXTRACTION_PREFIX", "open_study", "sweep_stale_extractions"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20

_DICOMDIR_ERRORS: tuple[type[Exception], ...] = (InvalidDicomError, OSError, ValueError, EOFError, *PARSE_ERRORS)


#: Expansion every archive may reach whatever its ratio (a small zip of a few slices compresses well).
ZIP_EXPANSION_FLOOR = 64 * 1024**2


def _extract_zip(archive: Path, dest: Path, cfg: DiscoveryConfig) -> None:
    """Extract ``archive`` into ``dest`` safely.

    Member names are replaced by their index (no path from the archive reaches
    the file system). While streaming, three limits stop a zip bomb early:
    the total size (``max_zip_bytes``), each member's compression ratio
    (``max_zip_ratio``, members under 1 MiB exempt) and the **whole archive's**
    ratio: all members together may expand to at most ``max_zip_ratio`` times
    the archive's size (at least :data:`ZIP_EXPANSION_FLOOR`), so a thousand
    small, highly compressed members cannot add up to gigabytes. More members
    than ``max_files`` (directories included) are refused unread.
    """
    try:
        zf = zipfile.ZipFile(archive)
        archive_bytes = archive.stat().st_size
    except (zipfile.BadZipFile, OSError) as exc:
        raise DicomInputError(f"{archive} is not a readable zip archive ({exc}).") from exc
    with zf:
        entries = zf.infolist()
        if len(entries) > cfg.max_files:
            raise DicomInputError(
                f"{archive} holds {len(entries)} members, more than discovery.max_files={cfg.max_files}."
            )
        members = [m for m in entries if not m.is_dir()]
        declared = sum(m.file_size for m in members)
        if declared > cfg.max_zip_bytes:
            raise DicomInputError(
                f"{archive} would unpack to {declared} bytes, more than discovery.max_zip_bytes;"
                " refusing (possible zip bomb)."
            )
        overall = min(cfg.max_zip_bytes, max(archive_bytes * cfg.max_zip_ratio, ZIP_EXPANSION_FLOOR))
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
                        if written > max(limit, 1 << 20) or total > overall:
                            raise DicomInputError(
                                f"{archive}: member #{i} expands beyond the allowed size"
                                f" ({total} bytes from a {archive_bytes}-byte archive; discovery.max_zip_ratio"
                                " / max_zip_bytes); refusing (possible zip bomb)."
                            )
                        out.write(chunk)
            except (zipfile.BadZipFile, EOFError, OSError, RuntimeError) as exc:
                log.warning("skipping member #%d of %s: %s", i, archive, exc)
                target.unlink(missing_ok=True)


#: Name prefix of the temporary folders zips are extracted to (in :func:`tempfile.gettempdir`).
EXTRACTION_PREFIX = "ichpipe-zip-"
#: A folder without an owner file older than this is an orphan of an older version or of a crash.
ORPHAN_AGE_S = 3600.0
_OWNER = ".owner"


def _hold(folder: Path) -> int:
    """Lock ``folder/.owner`` for as long as this process extracts into it (the kernel drops it at exit)."""
    fd = os.open(folder / _OWNER, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _size(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def sweep_stale_extractions(tmp_dir: Path | None = None, *, now: float | None = None) -> list[str]:
    """Remove the zip extraction folders of runs that ended without cleaning up (``kill -9``, power loss).

    A folder is stale when nobody holds its owner lock (its process is gone),
    or, without an owner file, when it is older than :data:`ORPHAN_AGE_S`.

    Returns
    -------
    list of str
        One sentence per folder removed (for the log and the batch summary).
    """
    root = Path(tmp_dir or tempfile.gettempdir())
    now = time.time() if now is None else now
    removed: list[str] = []
    try:
        candidates = sorted(p for p in root.glob(f"{EXTRACTION_PREFIX}*") if p.is_dir() and not p.is_symlink())
    except OSError:
        return removed
    for folder in candidates:
        owner = folder / _OWNER
        try:
            if owner.exists():
                fd = os.open(owner, os.O_RDWR)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # a live run is extracting into it
                finally:
                    os.close(fd)
            elif now - folder.stat().st_mtime < ORPHAN_AGE_S:
                continue
            size = _size(folder)
            shutil.rmtree(folder)
        except OSError as exc:
            log.warning("could not remove the temporary extraction folder %s of an earlier run: %s", folder, exc)
            continue
        removed.append(f"removed the temporary extraction folder {folder} of an earlier run ({size / 1e6:.1f} MB)")
    return removed


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
        tmp = Path(tempfile.mkdtemp(prefix=EXTRACTION_PREFIX))
        owner = _hold(tmp)
        try:
            _extract_zip(path, tmp, cfg)
            yield discover(tmp, config=cfg)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            os.close(owner)
        return
    if path.is_file() and _is_dicomdir(path):
        yield _discover_files(_dicomdir_files(path), cfg)
        return
    yield discover(path, config=cfg)
