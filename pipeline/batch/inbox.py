"""Find the studies in an inbox folder, and which ones are still arriving.

The inbox holds studies in any layout: one folder per study (what a DICOM
receiver such as ``storescp --sort-on-study-uid`` or ``ichpipe``'s own PACS
pull writes), nested patient/study folders, loose files, or ``.zip``
archives. Files are recognised by content and grouped by StudyInstanceUID
(a study spread over several folders is still one study); each study's
series is selected exactly as ``ichpipe run`` selects it, and the study
becomes one :class:`StudyJob` keyed by that series.

**Settle time.** A top-level entry of the inbox (a folder, a zip, or the loose
files in the inbox itself) whose newest file changed less than ``settle_s``
seconds ago (modification or status-change time, so files copied with their
old times count too) is still arriving and is left for the next run.

**Names.** Folder and file names often hold a patient's name or ID: logs,
labels and summaries name an inbox entry by UID or by ``<inbox>/#<digest>``
(see :func:`source_alias`), the path itself only with ``--log-phi``.

Names starting with a dot are ignored (receivers write partial files and
folders under such names, and ``ichpipe``'s own pull does).
"""

from __future__ import annotations

import logging
import time
import zipfile
from collections import defaultdict
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydicom.errors import InvalidDicomError

from ichpipe.dicom_io.discover import DICOMDIR_SOP_CLASS, iter_files, read_header
from ichpipe.dicom_io.study import scan_files
from ichpipe.errors import DicomInputError, UsageError
from ichpipe.logs import current_settings, path_digest, register_path_alias
from ichpipe.pipeline.batch.ledger import fingerprint
from ichpipe.pipeline.config import Config
from ichpipe.progress import track

if TYPE_CHECKING:
    from ichpipe.pipeline.jobs.nifti_study import CaseIdentity

__all__ = ["InboxScan", "JobKind", "StudyJob", "WaitingEntry", "find_studies", "source_alias"]

log = logging.getLogger(__name__)

JobKind = Literal["series", "study", "path"]

_HEADER_ERRORS = (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError, IndexError, OverflowError)


@dataclass(frozen=True, kw_only=True)
class StudyJob:
    """One study of the inbox, ready to be processed (picklable: only paths and text).

    Attributes
    ----------
    key:
        Ledger key: ``series:<UID>``, ``study:<UID>`` or ``path:<absolute path>``.
    kind:
        ``series`` (a series was selected), ``study`` (readable DICOM but no
        usable series) or ``path`` (a zip, or a folder without readable DICOM).
    source:
        What ``run`` gets as ``--study``: the inbox entry holding the study.
    files:
        The study's files, or ``None`` for all of ``source`` (zip, path jobs).
    study_uid, series_uid:
        As found in the headers (``None`` where unknown).
    fingerprint:
        See :func:`ichpipe.pipeline.batch.ledger.fingerprint`.
    n_instances:
        Instances (files) the fingerprint covers.
    label:
        How logs name the job: UIDs, or the inbox entry by :attr:`source_alias`
        (folder and file names often hold a patient's name or ID; the path
        itself only with ``--log-phi``).
    case:
        A case of ``batch --list`` (:mod:`~ichpipe.pipeline.batch.case_list`): its case ID and, for a
        NIfTI case, patient, accession and time; ``None`` for an inbox study.
    source_alias:
        How ``source`` is shown: ``<inbox>`` or ``<inbox>/#<digest of its path in the inbox>``.
    """

    key: str
    kind: JobKind
    source: Path
    files: tuple[Path, ...] | None
    study_uid: str | None
    series_uid: str | None
    fingerprint: str
    n_instances: int
    label: str
    case: CaseIdentity | None = None
    source_alias: str = "<inbox>"


@dataclass(frozen=True)
class WaitingEntry:
    """A top-level inbox entry still arriving (changed within the settle time)."""

    source: Path
    label: str
    age_s: float


@dataclass(frozen=True)
class InboxScan:
    """The studies found in an inbox."""

    inbox: Path
    jobs: tuple[StudyJob, ...]
    waiting: tuple[WaitingEntry, ...]
    n_files: int


@dataclass
class _FileInfo:
    path: Path
    unit: Path
    size: int
    mtime_ns: int
    sop_uid: str


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _entries(inbox: Path) -> Iterator[tuple[Path, list[Path]]]:
    """Top-level entries (unit path, their files); loose files form the unit ``inbox`` itself."""
    loose: list[Path] = []
    for entry in sorted(inbox.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and not entry.is_symlink():
            yield entry, [f for f in iter_files(entry) if not _hidden(f, entry)]
        elif entry.is_file() and not entry.is_symlink():
            if _is_zip(entry):
                yield entry, [entry]
            else:
                loose.append(entry)
    if loose:
        yield inbox, loose


def _is_zip(path: Path) -> bool:
    return path.suffix.lower() == ".zip" and zipfile.is_zipfile(path)


def _newest_change(files: list[Path]) -> float:
    newest = 0.0
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue
        newest = max(newest, st.st_mtime, st.st_ctime)
    return newest


def _looks_like_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) >= 132 and head[128:132] == b"DICM"


def _rel(path: Path, inbox: Path) -> str:
    rel = path.relative_to(inbox).as_posix()
    return rel if rel != "." else "(inbox)"


def source_alias(path: Path, inbox: Path) -> str:
    """How an inbox entry is named where a path could show patient data: ``<inbox>/#<digest>``."""
    rel = path.relative_to(inbox).as_posix()
    return "<inbox>" if rel == "." else f"<inbox>/#{path_digest(rel)}"


def _shown(path: Path, inbox: Path) -> str:
    """The entry's path inside the inbox with ``--log-phi``, else its alias (and the alias is registered)."""
    alias = source_alias(path, inbox)
    register_path_alias(path, alias)
    return _rel(path, inbox) if current_settings().log_phi else alias


def _stat_job(unit: Path, files: list[Path], inbox: Path, *, zipped: bool) -> StudyJob:
    entries = []
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue
        entries.append((f.relative_to(inbox).as_posix(), st.st_size, st.st_mtime_ns))
    key = f"path:{unit.resolve()}"
    return StudyJob(key=key, kind="path", source=unit, files=None, study_uid=None, series_uid=None,
                    fingerprint=fingerprint(entries), n_instances=len(entries),
                    label=f"{'zip' if zipped else 'folder'} {_shown(unit, inbox)}",
                    source_alias=source_alias(unit, inbox))


def find_studies(inbox: Path, *, config: Config, settle_s: float, now: float | None = None,
                 settled: Collection[Path] = ()) -> InboxScan:
    """Find every study under ``inbox``.

    Parameters
    ----------
    inbox:
        The inbox folder.
    config:
        Discovery, selection and geometry settings (as ``run`` uses them).
    settle_s:
        Settle time in seconds (see the module docstring).
    now:
        The current time (``time.time()``); tests pass their own.
    settled:
        Top-level entries known to be complete whatever their age (the
        studies this run's PACS pull renamed into place in one step).

    Raises
    ------
    ichpipe.errors.UsageError
        If ``inbox`` is not a folder, or ``settle_s`` is negative.
    """
    inbox = Path(inbox)
    if not inbox.is_dir():
        raise UsageError(f"--inbox {inbox} is not a folder; point it at the folder studies arrive in.")
    if settle_s < 0:
        raise UsageError(f"The settle time must be >= 0 seconds; got {settle_s}.")
    now = time.time() if now is None else now
    cfg = config.discovery
    done = {Path(p).resolve() for p in settled}
    jobs: list[StudyJob] = []
    waiting: list[WaitingEntry] = []
    infos: dict[str, list[_FileInfo]] = defaultdict(list)
    n_files = 0
    for unit, files in track(list(_entries(inbox)), "scanning the inbox"):
        n_files += len(files)
        if not files:
            continue
        age = now - _newest_change(files)
        if settle_s > 0 and age < settle_s and unit.resolve() not in done:
            waiting.append(WaitingEntry(unit, _shown(unit, inbox), max(age, 0.0)))
            continue
        readable = 0
        for f in files:
            if _is_zip(f):
                jobs.append(_stat_job(f, [f], inbox, zipped=True))
                readable += 1
                continue
            try:
                st = f.stat()
                if st.st_size > cfg.max_file_bytes:
                    continue
                ds = read_header(f)
            except _HEADER_ERRORS:
                continue
            sop_class = str(getattr(ds.get("file_meta"), "MediaStorageSOPClassUID", "") or "")
            if sop_class == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
                continue
            study_uid = str(ds.get("StudyInstanceUID", "") or "").strip()
            if not study_uid:
                log.warning("%s: a DICOM file without StudyInstanceUID is ignored", _shown(f, inbox))
                continue
            readable += 1
            infos[study_uid].append(_FileInfo(f, unit, st.st_size, st.st_mtime_ns,
                                              str(ds.get("SOPInstanceUID", "") or "")))
        if readable == 0 and (unit != inbox or any(_looks_like_dicom(f) for f in files)):
            jobs.append(_stat_job(unit, files, inbox, zipped=False))
    for study_uid in track(sorted(infos), "selecting series"):
        jobs.append(_study_job(study_uid, infos[study_uid], inbox, config))
    jobs.sort(key=lambda j: j.key)
    return InboxScan(inbox=inbox, jobs=tuple(jobs), waiting=tuple(waiting), n_files=n_files)


def _study_job(study_uid: str, infos: list[_FileInfo], inbox: Path, config: Config) -> StudyJob:
    units = {i.unit for i in infos}
    source = next(iter(units)) if len(units) == 1 else inbox
    alias = source_alias(source, inbox)
    register_path_alias(source, alias)
    by_path = {i.path: i for i in infos}
    files = tuple(sorted(by_path))
    selected_paths: list[Path] | None = None
    series_uid: str | None = None
    try:
        with scan_files(files, root=source, selection=config.selection, geometry=config.geometry) as scan:
            chosen = scan.selected
            if chosen is not None:
                series_uid = chosen.series.series_uid
                selected_paths = sorted({s.path for s in chosen.series.slices})
    except DicomInputError as exc:  # the headers became unreadable since the first pass
        log.warning("study %s: %s", study_uid, exc)
    covered = [by_path[p] for p in (selected_paths or files) if p in by_path]
    fp = fingerprint((i.sop_uid or i.path.relative_to(inbox).as_posix(), i.size, i.mtime_ns) for i in covered)
    if series_uid:
        return StudyJob(key=f"series:{series_uid}", kind="series", source=source, files=files,
                        study_uid=study_uid, series_uid=series_uid, fingerprint=fp,
                        n_instances=len(covered), label=f"series {series_uid}", source_alias=alias)
    return StudyJob(key=f"study:{study_uid}", kind="study", source=source, files=files, study_uid=study_uid,
                    series_uid=None, fingerprint=fp, n_instances=len(covered), label=f"study {study_uid}",
                    source_alias=alias)

