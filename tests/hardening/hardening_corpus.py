"""Helpers of the hardening tests: tiny good studies, ways to break them, and the reading target.

Everything here is deterministic (seeded) and small (32x32 phantom slices,
16x16 hand-written ones) so that the whole bad-input corpus and the fuzz run
stay within the time budget of ``make test``.

The *target* is what ``ichpipe run`` and ``ichpipe inspect`` do to a study
before any model runs: :func:`read_study` scans it (discover, group, select)
and assembles every series it found. It must return normally or raise
:class:`~ichpipe.errors.IchpipeError`; anything else is a bug.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from ichpipe.dicom_io.assemble import CTVolume, assemble_series
from ichpipe.dicom_io.discover import DiscoveryConfig
from ichpipe.dicom_io.study import scan_study
from ichpipe.errors import IchpipeError
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study

__all__ = [
    "PIXEL_DATA_TAG",
    "CaseTimeout",
    "HardeningStats",
    "ReadOutcome",
    "assert_clear_message",
    "dicom_files",
    "edit_files",
    "good_phantom",
    "pixel_data_offset",
    "read_study",
    "time_limit",
    "write_minimal_series",
]

#: (7FE0,0010) PixelData as it appears in an explicit VR little endian file.
PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"

#: Identity of every phantom the hardening tests write: distinctive, so a test can grep for it.
PATIENT_NAME = "Zyxwvut^Qwertyuiop"
PATIENT_ID = "PIDQ9X7Z3K"
BIRTH_DATE = "19230405"


class CaseTimeout(Exception):
    """A case ran past its time limit (a hang); deliberately not an IchpipeError."""


@contextlib.contextmanager
def time_limit(seconds: float, *, what: str) -> Iterator[None]:
    """Raise :class:`CaseTimeout` in the main thread if the block runs longer than ``seconds``."""

    def fire(signum: int, frame: FrameType | None) -> None:
        raise CaseTimeout(f"{what} ran longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def good_phantom(folder: Path, *, seed: int = 1, n_slices: int = 12, **options: object) -> Path:
    """Write a 32x32 phantom study with a distinctive patient identity; returns ``folder``."""
    spec = PhantomSpec(seed=seed, rows=32, columns=32, n_slices=n_slices, patient_name=PATIENT_NAME,
                       patient_id=PATIENT_ID, **options)  # type: ignore[arg-type]
    write_phantom_study(folder, spec)
    for path in dicom_files(folder):
        ds = pydicom.dcmread(path)
        ds.PatientBirthDate = BIRTH_DATE
        ds.save_as(path)
    return folder


def dicom_files(folder: Path) -> list[Path]:
    """The study's DICOM files (phantoms keep them under ``DICOM/``), in a stable order."""
    root = folder / "DICOM" if (folder / "DICOM").is_dir() else folder
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def axial_files(folder: Path) -> list[Path]:
    """The files of the series to select (most files), sorted along z."""
    by_series: dict[str, list[tuple[float, Path]]] = {}
    for path in dicom_files(folder):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        z = float(ds.ImagePositionPatient[2]) if "ImagePositionPatient" in ds else 0.0
        by_series.setdefault(str(ds.SeriesInstanceUID), []).append((z, path))
    biggest = max(by_series.values(), key=len)
    return [p for _, p in sorted(biggest)]


def edit_files(files: Sequence[Path], change: Callable[[pydicom.Dataset], object]) -> None:
    """Read each file, apply ``change`` to its dataset, write it back (as written, no validation)."""
    for path in files:
        ds = pydicom.dcmread(path)
        change(ds)
        ds.save_as(path)


def pixel_data_offset(path: Path) -> int:
    """Byte offset of the PixelData element in an explicit VR little endian file."""
    raw = path.read_bytes()
    at = raw.rfind(PIXEL_DATA_TAG)
    if at < 0:
        raise ValueError(f"Argument 'path' {path} has no PixelData element.")
    return at


def write_minimal_series(folder: Path, *, n: int, size: int = 16, spacing_mm: float = 1.0) -> list[Path]:
    """Write ``n`` minimal 16x16 CT slices of one series quickly (one dataset, re-saved)."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.Modality = "CT"
    ds.PatientID, ds.PatientName = PATIENT_ID, PATIENT_NAME
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SeriesNumber = 2
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = spacing_mm
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept, ds.RescaleSlope = -1024.0, 1.0
    ds.PixelData = np.full((size, size), 1064, dtype=np.int16).tobytes()
    paths = []
    for i in range(n):
        uid = generate_uid()
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID = uid
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [0.0, 0.0, i * spacing_mm]
        path = folder / f"{i:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


@dataclass
class HardeningStats:
    """Counts of the corpus cases and fuzz examples tried in this session."""

    corpus_cases: int = 0
    corpus_clear_errors: int = 0
    corpus_with_warnings: int = 0
    corpus_clean: int = 0
    corpus_crashes: list[str] = field(default_factory=list)
    fuzz_examples: dict[str, int] = field(default_factory=dict)
    fuzz_project_errors: int = 0
    fuzz_unexpected: list[str] = field(default_factory=list)
    fuzz_seconds: float = 0.0

    def corpus(self, *, clear_error: bool, warnings: bool) -> None:
        """Count one corpus case that did not crash."""
        self.corpus_cases += 1
        if clear_error:
            self.corpus_clear_errors += 1
        elif warnings:
            self.corpus_with_warnings += 1
        else:
            self.corpus_clean += 1

    def crash(self, case: str, error: BaseException) -> None:
        """Count one corpus case that crashed (or hung)."""
        self.corpus_cases += 1
        self.corpus_crashes.append(f"{case}: {type(error).__name__}: {error}")


@dataclass
class ReadOutcome:
    """What reading a study gave: the volumes assembled, and the project errors met."""

    selected: str | None = None
    volumes: dict[str, CTVolume] = field(default_factory=dict)
    series_errors: dict[str, IchpipeError] = field(default_factory=dict)
    study_error: IchpipeError | None = None
    skipped_files: int = 0

    @property
    def errors(self) -> list[IchpipeError]:
        """Every project error met, study-level first."""
        return ([self.study_error] if self.study_error else []) + list(self.series_errors.values())

    @property
    def warnings(self) -> list[str]:
        """Every warning of every assembled volume."""
        return [w for v in self.volumes.values() for w in v.warnings]


def read_study(path: Path, *, discovery: DiscoveryConfig | None = None) -> ReadOutcome:
    """Scan ``path`` and assemble every series found; only :class:`IchpipeError` is caught.

    Any other exception propagates: for the corpus and the fuzz tests that is
    a crash, i.e. a bug.
    """
    outcome = ReadOutcome()
    try:
        with scan_study(path, discovery=discovery) as scan:
            outcome.selected = scan.selection.selected
            outcome.skipped_files = len(scan.skipped)
            try:
                scan.require_selected()
            except IchpipeError as exc:  # what `ichpipe run` would stop with
                outcome.study_error = exc
            for summary in scan.series:
                key = summary.series.key
                try:
                    outcome.volumes[key] = assemble_series(summary.series)
                except IchpipeError as exc:
                    outcome.series_errors[key] = exc
    except IchpipeError as exc:
        outcome.study_error = exc
    return outcome


def assert_clear_message(message: str, *, places: Sequence[str]) -> None:
    """Check that an error message is one readable sentence that says where the problem is.

    Parameters
    ----------
    message:
        The message (``str(exc)``, or stderr without the ``ichpipe: error:`` prefix).
    places:
        Strings of which one must appear: the study path, a file name, "Series ".
    """
    text = message.strip()
    assert text, "empty error message"
    assert "\n" not in text, f"error message spans several lines: {text!r}"
    assert "Traceback" not in text, f"error message holds a traceback: {text!r}"
    assert 20 <= len(text) <= 2000, f"error message of {len(text)} characters: {text[:200]!r}"
    assert text.endswith((".", ".)")), f"error message is not a sentence: {text!r}"
    assert any(p and p in text for p in places), f"error message names none of {list(places)[:4]}: {text!r}"


def copy_study(src: Path, dest: Path) -> Path:
    """Copy a study folder (symlinks kept as links)."""
    shutil.copytree(src, dest, symlinks=True)
    return dest
