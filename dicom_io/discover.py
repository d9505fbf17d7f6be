"""Find DICOM files by content and read their headers.

A file is DICOM when it has the ``DICM`` prefix after the 128-byte preamble,
or, for preamble-less files, when it parses as a dataset that starts with a
group 0x0008 element. File names and extensions are never trusted. Headers are
read with ``stop_before_pixels`` so the scan stays fast; pixel data is read
later, only for the selected series.

A study may also be given as a DICOMDIR file (its records name the files) or a
``.zip`` archive (see :mod:`ichpipe.dicom_io.sources`).
"""

from __future__ import annotations

import itertools
import logging
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError

from ichpipe.dicom_io._privacy import remember_identifiers
from ichpipe.errors import DicomInputError
from ichpipe.progress import stage

__all__ = [
    "DICOMDIR_SOP_CLASS",
    "PARSE_ERRORS",
    "DiscoveryConfig",
    "DiscoveryResult",
    "SkippedFile",
    "describe_error",
    "discover",
    "iter_files",
    "read_header",
]

log = logging.getLogger(__name__)

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"


@dataclass(frozen=True)
class DiscoveryConfig:
    """Limits and switches for scanning a study folder or archive.

    Parameters
    ----------
    follow_symlinks:
        Follow symbolic links while walking (links never leave the study root).
    max_files:
        Refuse a study with more candidate files than this.
    max_file_bytes:
        Files larger than this are skipped as not a single DICOM slice.
    max_zip_bytes:
        Largest total uncompressed size of a zipped study.
    max_zip_ratio:
        Largest compression ratio of a zip member (a zip bomb has a huge one).
    """

    follow_symlinks: bool = False
    max_files: int = 20000
    max_file_bytes: int = 2 * 1024**3
    max_zip_bytes: int = 4 * 1024**3
    max_zip_ratio: float = 200.0

    def __post_init__(self) -> None:
        for name in ("max_files", "max_file_bytes", "max_zip_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Argument '{name}' must be positive.")
        if self.max_zip_ratio <= 1:
            raise ValueError("Argument 'max_zip_ratio' must be greater than 1.")


@dataclass(frozen=True)
class SkippedFile:
    """A file that was looked at and left out, with the reason."""

    path: Path
    reason: str


@dataclass
class DiscoveryResult:
    """Headers of the DICOM files found, and what was skipped."""

    headers: list[tuple[Path, Dataset]] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    directories: list[Path] = field(default_factory=list)
    n_examined: int = 0


def iter_files(root: Path, *, follow_symlinks: bool = False) -> Iterator[Path]:
    """Yield regular files under ``root`` in a stable (sorted) order.

    Symbolic links are skipped unless ``follow_symlinks``; even then a link
    whose target lies outside ``root`` is skipped (logged), and a folder
    reached twice (a link loop, or two links to one folder) is walked once.
    """
    root = Path(root)
    if root.is_file():
        yield root
        return
    real_root = root.resolve()
    visited = {real_root}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=follow_symlinks):
        kept = []
        for d in sorted(dirnames):
            sub = Path(dirpath) / d
            if sub.is_symlink() and not (follow_symlinks and sub.resolve().is_relative_to(real_root)):
                if follow_symlinks:
                    log.warning("skipping %s: symbolic link points outside the study folder", sub)
                continue
            real = sub.resolve()
            if real in visited:
                log.warning("skipping %s: folder already scanned (symbolic link loop or second link)", sub)
                continue
            visited.add(real)
            kept.append(d)
        dirnames[:] = kept
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_symlink():
                if not follow_symlinks:
                    continue
                target = path.resolve()
                if not target.is_relative_to(real_root):
                    log.warning("skipping %s: symbolic link points outside the study folder", path)
                    continue
            if path.is_file():
                yield path


def _looks_like_dicom(head: bytes) -> bool:
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    # Preamble-less (raw) dataset: first tag in group 0x0002 or 0x0008, little endian.
    return len(head) >= 8 and head[1] == 0 and head[0] in (0x02, 0x08) and head[3] == 0


#: What pydicom may raise on a corrupt header besides the usual OSError/ValueError/EOFError
#: (struct.error: a short binary value; RuntimeError: RecursionError on absurdly nested sequences,
#: NotImplementedError on an unknown VR; BytesLengthException: a value of the wrong length;
#: StopIteration: fewer encapsulated fragments than NumberOfFrames says).
PARSE_ERRORS: tuple[type[Exception], ...] = (struct.error, RuntimeError, LookupError, TypeError, AttributeError,
                                             OverflowError, BytesLengthException, StopIteration)


def describe_error(exc: BaseException, *, limit: int = 200) -> str:
    """``Type: first line of the message`` (pydicom messages can hold a whole traceback), shortened."""
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    if len(first) > limit:
        first = first[: limit - 3] + "..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _convert_every_element(ds: Dataset) -> None:
    """Decode every element now (pydicom decodes lazily), so a corrupt value fails here, not later."""

    def touch(dataset: Dataset, elem: DataElement) -> None:
        return None

    ds.walk(touch)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        meta.walk(touch)


def read_header(path: Path) -> Dataset:
    """Read one file's header (no pixel data).

    Raises
    ------
    pydicom.errors.InvalidDicomError
        If the file is not DICOM.
    OSError, ValueError, EOFError
        If the file is truncated or corrupt (callers catch and skip); any
        other parser failure is raised as ``ValueError`` naming its type.
        Every element is decoded here, so that a corrupt value (an unknown
        VR, a wrong length) fails while reading rather than later on access.
    """
    with open(path, "rb") as fh:
        head = fh.read(132)
    if not _looks_like_dicom(head):
        raise InvalidDicomError("no DICM prefix and no DICOM dataset at the start of the file")
    force = head[128:132] != b"DICM"
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=force)
        _convert_every_element(ds)
    except PARSE_ERRORS as exc:
        raise ValueError(describe_error(exc)) from exc
    remember_identifiers(ds)
    return ds


def discover(root: Path, *, config: DiscoveryConfig | None = None) -> DiscoveryResult:
    """Scan ``root`` (a folder or a single file) for DICOM headers.

    Non-DICOM files are skipped quietly (counted); DICOM files that cannot be
    parsed are skipped with a reason; DICOMDIR files are listed in
    ``directories`` rather than treated as images.
    """
    cfg = config or DiscoveryConfig()
    result = DiscoveryResult()
    # listed first (cheap) so that progress has a total; stops one past the limit
    paths = list(itertools.islice(iter_files(Path(root), follow_symlinks=cfg.follow_symlinks), cfg.max_files + 1))
    if len(paths) > cfg.max_files:
        raise DicomInputError(
            f"{root} holds more than {cfg.max_files} files; point --study at one study"
            " or raise discovery.max_files in the config."
        )
    with stage("reading headers", total=len(paths)) as progress:
        for path in paths:
            result.n_examined += 1
            _examine(path, cfg, result)
            progress.advance()
    return result


def _examine(path: Path, cfg: DiscoveryConfig, result: DiscoveryResult) -> None:
    """Read one file's header into ``result`` (a header, a DICOMDIR, or a skipped file with its reason)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        result.skipped.append(SkippedFile(path, f"cannot stat: {exc.strerror}"))
        return
    if size > cfg.max_file_bytes:
        result.skipped.append(SkippedFile(path, f"larger than {cfg.max_file_bytes} bytes"))
        return
    try:
        ds = read_header(path)
    except InvalidDicomError:
        result.skipped.append(SkippedFile(path, "not DICOM"))
        return
    except (OSError, ValueError, EOFError, KeyError, TypeError, IndexError, OverflowError) as exc:
        reason = f"unreadable DICOM header ({describe_error(exc)})"
        log.warning("skipping %s: %s", path, reason)
        result.skipped.append(SkippedFile(path, reason))
        return
    sop_class = str(getattr(ds.get("file_meta", Dataset()), "MediaStorageSOPClassUID", "") or "")
    if sop_class == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
        result.directories.append(path)
        return
    result.headers.append((path, ds))
