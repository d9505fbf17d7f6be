"""``ichpipe batch --list cases.csv``: a research cohort's cases named in a table instead of found in an inbox.

The list is a CSV file with a header row (column order is free; other
columns are ignored, so a cohort's own table can be used as it is):

======================== ======== =============================================================
column                   required what it holds
======================== ======== =============================================================
``path``                 yes      a NIfTI CT (``.nii``, ``.nii.gz``), a study folder, a DICOMDIR
                                  or a ``.zip``; relative paths are relative to the list's folder
``case_id``              no       the cohort's name for the case (unique; use a pseudonym: it is
                                  shown in logs, the summary and the QC page)
``patient_id``           no       NIfTI only: the patient; the case is then recorded in the
                                  results store (timeline, expansion) like a DICOM series
``accession_number``     no       NIfTI only: the scan's accession number (``accession`` also works)
``acquisition_datetime`` no       NIfTI only: ISO 8601 date and time (``2024-03-01T08:30``) or a
                                  date alone (``acquisition_time`` also works)
======================== ======== =============================================================

A NIfTI file has no header to take these from; a DICOM study takes them from
its headers, and values given for a DICOM row are ignored (with a warning).

Each row becomes one job (a study folder holding several studies, several),
processed by the same machinery as an inbox: the ledger (a re-run skips
what is done with the same input, config and checkpoint; changing a NIfTI
row's patient, accession or time redoes it), per-series locks, staging, the
run summary and QC page. A row whose file is missing or unreadable fails
alone, with its reason, and is tried again once the file changes. Problems
with the list itself (no ``path`` column, a duplicate case ID or path, a
time that is not ISO 8601) stop the command before anything runs (exit 2),
naming every bad row.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ichpipe.dicom_io._privacy import remember_values
from ichpipe.dicom_io.discover import iter_files
from ichpipe.errors import UsageError
from ichpipe.pipeline.batch.inbox import InboxScan, StudyJob, find_studies
from ichpipe.pipeline.batch.ledger import fingerprint
from ichpipe.pipeline.config import Config
from ichpipe.pipeline.jobs.nifti_study import CaseIdentity
from ichpipe.pipeline.measure.nifti_masks import is_nifti_path

__all__ = ["CASE_LIST_COLUMNS", "CaseRow", "find_cases", "read_case_list"]

log = logging.getLogger(__name__)

#: The columns read, and the other names each one may go by.
CASE_LIST_COLUMNS: dict[str, tuple[str, ...]] = {
    "path": (),
    "case_id": (),
    "patient_id": (),
    "accession_number": ("accession",),
    "acquisition_datetime": ("acquisition_time",),
}
_NIFTI_ONLY = ("patient_id", "accession_number", "acquisition_datetime")
_MAX_PROBLEMS = 20


@dataclass(frozen=True)
class CaseRow:
    """One row of a case list.

    Attributes
    ----------
    line:
        Its line in the file (the header is line 1).
    path:
        The case, absolute.
    case:
        Its case ID and, for a NIfTI case, patient, accession and time.
    """

    line: int
    path: Path
    case: CaseIdentity

    @property
    def is_nifti(self) -> bool:
        """Whether the row names a NIfTI file (by its name: it may not exist yet)."""
        return is_nifti_path(self.path)

    @property
    def label(self) -> str:
        """How logs name the case: ``case <case_id>`` or ``row <line>`` (never the path)."""
        return f"case {self.case.case_id}" if self.case.case_id else f"row {self.line}"


def _columns(header: list[str], source: Path) -> dict[str, str]:
    """Our column name -> the header's name for it."""
    names = {h.strip().lower(): h for h in header if h}
    found: dict[str, str] = {}
    for column, aliases in CASE_LIST_COLUMNS.items():
        for name in (column, *aliases):
            if name in names:
                found[column] = names[name]
                break
    if "path" not in found:
        raise UsageError(f"The case list {source} has no 'path' column (its header: {', '.join(header) or 'empty'});"
                         " name each case's NIfTI file or study folder in a column called path.")
    return found


def read_case_list(path: Path) -> list[CaseRow]:
    """Read and check a case list (see the module docstring for the format).

    Raises
    ------
    ichpipe.errors.UsageError
        If the file cannot be read, has no ``path`` column, no row, or bad rows
        (empty path, duplicate case ID or path, a time that is not ISO 8601):
        every bad row is named.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"Cannot read the case list {path}: {exc}.") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = _columns(list(reader.fieldnames or []), path)
    base = path.resolve().parent
    rows: list[CaseRow] = []
    problems: list[str] = []
    seen_ids: dict[str, int] = {}
    seen_paths: dict[Path, int] = {}
    for raw in reader:
        line = reader.line_num  # blank lines are skipped, and a quoted value may span lines
        values = {c: (raw.get(h) or "").strip() for c, h in columns.items()}
        if not values["path"]:
            problems.append(f"line {line}: empty path")
            continue
        case_path = Path(values["path"]).expanduser()
        case_path = (case_path if case_path.is_absolute() else base / case_path).resolve()
        case_id = values.get("case_id") or None
        if case_id is not None and case_id in seen_ids:
            problems.append(f"line {line}: case_id {case_id!r} already on line {seen_ids[case_id]}")
        if case_path in seen_paths:
            problems.append(f"line {line}: {case_path} already on line {seen_paths[case_path]}")
        if case_id is not None:
            seen_ids.setdefault(case_id, line)
        seen_paths.setdefault(case_path, line)
        meta = {c: values.get(c) or None for c in _NIFTI_ONLY}
        if not is_nifti_path(case_path):
            given = [c for c in _NIFTI_ONLY if meta[c]]
            if given:
                log.warning("case list line %d: %s ignored for a DICOM case (its headers say them)", line,
                            ", ".join(given))
            meta = dict.fromkeys(_NIFTI_ONLY)
        try:
            case = CaseIdentity(case_id=case_id, **meta)
        except ValueError:
            problems.append(f"line {line}: acquisition_datetime {meta['acquisition_datetime']!r} is not an ISO 8601"
                            " date or date and time (2024-03-01T08:30 or 2024-03-01)")
            continue
        rows.append(CaseRow(line=line, path=case_path, case=case))
    if problems:
        shown = "; ".join(problems[:_MAX_PROBLEMS])
        more = f"; and {len(problems) - _MAX_PROBLEMS} more" if len(problems) > _MAX_PROBLEMS else ""
        raise UsageError(f"The case list {path} has {len(problems)} bad row(s): {shown}{more}.")
    if not rows:
        raise UsageError(f"The case list {path} names no case; add one row per NIfTI file or study folder.")
    remember_values("PatientID", [r.case.patient_id for r in rows if r.case.patient_id])
    remember_values("AccessionNumber", [r.case.accession_number for r in rows if r.case.accession_number])
    return rows


def _path_job(row: CaseRow, kind: str) -> StudyJob:
    """A job run on the whole path (a NIfTI file, a zip or DICOMDIR, or a folder without DICOM), keyed by its path.

    The fingerprint covers the files' sizes and times and, for a NIfTI case,
    the row's patient, accession and time. A missing path still makes a job:
    it fails with its reason and is redone once the path appears.
    """
    entries: list[tuple[str, int, int]] = []
    n_files = 0
    if row.path.exists():
        for f in iter_files(row.path):
            try:
                st = f.stat()
            except OSError:
                continue
            entries.append((f.as_posix(), st.st_size, st.st_mtime_ns))
            n_files += 1
    else:
        entries.append((f"missing:{row.path}", -1, 0))
    if row.is_nifti:
        entries.append((f"case:{json.dumps(dataclasses.asdict(row.case), sort_keys=True)}", 0, 0))
    return StudyJob(key=f"path:{row.path}", kind="path", source=row.path, files=None, study_uid=None,
                    series_uid=None, fingerprint=fingerprint(entries), n_instances=n_files,
                    label=f"{row.label} ({kind})", case=row.case, source_alias=f"<list>/{row.label}")


def _row_jobs(row: CaseRow, config: Config) -> list[StudyJob]:
    if row.is_nifti:
        return [_path_job(row, "nifti")]
    if not row.path.is_dir():
        return [_path_job(row, "missing" if not row.path.exists() else "file")]
    scan = find_studies(row.path, config=config, settle_s=0)
    jobs = [dataclasses.replace(j, label=f"{row.label} ({j.label})", case=row.case) for j in scan.jobs]
    return jobs or [_path_job(row, "folder")]


def find_cases(case_list: Path, *, config: Config, out_root: Path) -> InboxScan:
    """The jobs of every row of ``case_list`` (see the module docstring).

    Parameters
    ----------
    case_list:
        The CSV file.
    config:
        Discovery, selection and geometry settings (as ``run`` uses them).
    out_root:
        The output root (absolute): it may not lie inside a listed study folder.

    Raises
    ------
    ichpipe.errors.UsageError
        If the list is bad (see :func:`read_case_list`) or the output root
        lies inside a listed folder.
    """
    rows = read_case_list(case_list)
    inside = [r for r in rows if r.path.is_dir() and out_root.is_relative_to(r.path)]
    if inside:
        raise UsageError(f"The output folder {out_root} lies inside the study folder of line {inside[0].line} of"
                         f" {case_list}; choose an output folder outside every listed study.")
    jobs: dict[str, StudyJob] = {}
    for row in rows:
        for job in _row_jobs(row, config):
            if job.key in jobs:
                log.warning("%s: %s is also listed as %s; processed once", row.label, job.key.split(":")[0],
                            jobs[job.key].label)
                continue
            jobs[job.key] = job
    return InboxScan(inbox=Path(case_list), jobs=tuple(sorted(jobs.values(), key=lambda j: j.key)), waiting=(),
                     n_files=sum(j.n_instances for j in jobs.values()))
