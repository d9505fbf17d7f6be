"""The dataset manifest: one CSV row per case, with a patient-level split.

Columns (a header row is required; order is free; extra columns are kept in
:attr:`ManifestEntry.extra`):

==================== ======== ===============================================================
column               required what it holds
==================== ======== ===============================================================
``case_id``          yes      unique name of the case (a study, a NIfTI pair, a PNG folder)
``patient_id``       yes      the patient; every case of one patient must be in one split
``split``            yes      ``train``, ``val`` or ``test``
``format``           yes      ``dicom`` (study folder + DICOM SEG or NIfTI mask),
                              ``nifti`` (NIfTI image in HU + NIfTI mask) or
                              ``png`` (folder of 8-bit brain-window PNG slices + folder of
                              binary PNG labels, the seed's format)
``image``            yes      study folder, NIfTI file or PNG folder
``mask``             no       DICOM SEG / NIfTI file or PNG label folder (empty: no label)
``pixel_spacing_mm`` no       PNG only: pixel size, for volumes (the PNGs carry no geometry)
``slice_thickness_mm`` no     PNG only: slice spacing, for volumes
``source``           no       free text: where the case comes from (generator kind, dataset)
==================== ======== ===============================================================

Optional columns read by training (kept in :attr:`ManifestEntry.extra`; the paths are
resolved like ``image``):

============================ ==========================================================================
column                       what it holds
============================ ==========================================================================
``ignore``                   PNG only: folder of masks with the slices' file names; non-zero pixels
                             are left out of the training loss (uncertain label edges)
``slice_weights``            PNG only: CSV ``file,weight``; each slice's weight in the loss (label
                             confidence, 0-1; slices not listed weigh 1)
``neighbours``               PNG only: folder with ``below/`` and ``above/``, each holding a PNG per
                             slice (same file name): the slices next to it in its original stack,
                             for 2.5D training (``training.slice_context_mm``) when the case holds
                             only some slices of a stack
``sampling_group``           group of the training mix (``training.source_mix``); default: ``source``
                             up to its first ``:``
``negatives_per_positive``   slices without blood kept per slice with blood for this case
                             (overrides ``training.negatives_per_positive``)
============================ ==========================================================================

Relative paths are relative to the manifest's folder. Slices of one patient
never end up in two splits: :func:`check_patient_split` refuses such a
manifest, and :func:`assign_splits` draws the split per patient.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from ichpipe.atomic import atomic_write
from ichpipe.errors import UsageError

__all__ = [
    "MANIFEST_COLUMNS",
    "PATH_COLUMNS",
    "CaseFormat",
    "Manifest",
    "ManifestEntry",
    "Split",
    "assign_splits",
    "check_patient_split",
    "read_manifest",
    "write_manifest",
]

Split = Literal["train", "val", "test"]
CaseFormat = Literal["dicom", "nifti", "png"]

_SPLITS: tuple[str, ...] = get_args(Split)
_FORMATS: tuple[str, ...] = get_args(CaseFormat)

#: Columns written by :func:`write_manifest`, in order.
MANIFEST_COLUMNS: tuple[str, ...] = (
    "case_id",
    "patient_id",
    "split",
    "format",
    "image",
    "mask",
    "pixel_spacing_mm",
    "slice_thickness_mm",
    "source",
)
_REQUIRED = ("case_id", "patient_id", "split", "format", "image")

#: Optional columns holding paths: resolved like ``image`` on reading, written relative on writing.
PATH_COLUMNS: tuple[str, ...] = ("ignore", "slice_weights", "neighbours")


@dataclass(frozen=True)
class ManifestEntry:
    """One case of a manifest.

    Parameters
    ----------
    case_id:
        Unique name of the case.
    patient_id:
        The patient it belongs to.
    split:
        ``train``, ``val`` or ``test``.
    format:
        ``dicom``, ``nifti`` or ``png``.
    image:
        Study folder, NIfTI image or PNG slice folder (absolute once read).
    mask:
        DICOM SEG or NIfTI mask, or PNG label folder; ``None`` when unlabelled.
    pixel_spacing_mm, slice_thickness_mm:
        PNG cases only: the geometry the PNG files do not carry.
    source:
        Free-text origin of the case.
    extra:
        Any other columns of the CSV row.
    """

    case_id: str
    patient_id: str
    split: Split
    format: CaseFormat
    image: Path
    mask: Path | None = None
    pixel_spacing_mm: float | None = None
    slice_thickness_mm: float | None = None
    source: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("case_id", "patient_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"Argument '{name}' must be a non-empty string; got {value!r}.")
        if self.split not in _SPLITS:
            raise ValueError(f"Argument 'split' must be one of {', '.join(_SPLITS)}; got {self.split!r}.")
        if self.format not in _FORMATS:
            raise ValueError(f"Argument 'format' must be one of {', '.join(_FORMATS)}; got {self.format!r}.")
        for name in ("pixel_spacing_mm", "slice_thickness_mm"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"Argument '{name}' must be a positive number or None; got {value!r}.")


@dataclass(frozen=True)
class Manifest:
    """The cases of a manifest file.

    Attributes
    ----------
    path:
        The CSV it was read from (``None`` when built in memory).
    entries:
        Every case, in file order.
    """

    path: Path | None
    entries: tuple[ManifestEntry, ...]

    def split(self, name: Split) -> tuple[ManifestEntry, ...]:
        """The cases of one split, in file order.

        Raises
        ------
        ValueError
            If ``name`` is not a split name.
        """
        if name not in _SPLITS:
            raise ValueError(f"Argument 'name' must be one of {', '.join(_SPLITS)}; got {name!r}.")
        return tuple(e for e in self.entries if e.split == name)

    def patients(self, name: Split | None = None) -> tuple[str, ...]:
        """Distinct patient IDs (of one split, or of all), in first-seen order."""
        seen: dict[str, None] = {}
        for e in self.entries:
            if name is None or e.split == name:
                seen.setdefault(e.patient_id, None)
        return tuple(seen)


def _float_or_none(text: str, column: str, where: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{where}: column '{column}' holds {text!r}, which is not a number.") from None
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{where}: column '{column}' must be a positive number; got {text!r}.")
    return value


def _resolve(text: str, base: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else (base / path)


def check_patient_split(entries: Iterable[ManifestEntry]) -> None:
    """Refuse cases whose patient appears in two splits, or duplicate case IDs.

    Raises
    ------
    UsageError
        (a ``ValueError``) naming the first patient found in two splits, or the
        first repeated ``case_id``.
    """
    split_of: dict[str, str] = {}
    cases: set[str] = set()
    for e in entries:
        if e.case_id in cases:
            raise UsageError(f"Argument 'entries' lists case_id {e.case_id!r} twice; case IDs must be unique.")
        cases.add(e.case_id)
        first = split_of.setdefault(e.patient_id, e.split)
        if first != e.split:
            raise UsageError(
                f"Argument 'entries' puts patient {e.patient_id!r} in both '{first}' and '{e.split}'; every"
                " case (and slice) of one patient must be in one split."
            )


def read_manifest(path: str | Path) -> Manifest:
    """Read and check a manifest CSV.

    Parameters
    ----------
    path:
        The CSV file; relative paths in it are taken relative to its folder.

    Returns
    -------
    Manifest

    Raises
    ------
    UsageError
        If the file is missing, lacks a required column, has an invalid value
        (the message names the row and column), or puts one patient in two splits.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"Manifest {path} does not exist or is not a file; write one with `ichpipe train data`.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"Manifest {path} cannot be read as UTF-8 text ({exc}).") from exc
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in (reader.fieldnames or [])]
    missing = [c for c in _REQUIRED if c not in columns]
    if missing:
        raise UsageError(
            f"Manifest {path} lacks the column(s) {', '.join(missing)}; it needs at least {', '.join(_REQUIRED)}."
        )
    base = path.resolve().parent
    entries: list[ManifestEntry] = []
    for number, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        where = f"Manifest {path.name}, line {number}"
        if not any(row.values()):
            continue
        mask_text = row.get("mask", "")
        try:
            entry = ManifestEntry(
                case_id=row["case_id"],
                patient_id=row["patient_id"],
                split=row["split"],  # type: ignore[arg-type]  # checked in __post_init__
                format=row["format"],  # type: ignore[arg-type]
                image=_resolve(row["image"], base),
                mask=_resolve(mask_text, base) if mask_text else None,
                pixel_spacing_mm=_float_or_none(row.get("pixel_spacing_mm", ""), "pixel_spacing_mm", where),
                slice_thickness_mm=_float_or_none(row.get("slice_thickness_mm", ""), "slice_thickness_mm", where),
                source=row.get("source", ""),
                extra={
                    k: (str(_resolve(v, base)) if k in PATH_COLUMNS and v else v)
                    for k, v in row.items()
                    if k not in MANIFEST_COLUMNS
                },
            )
        except ValueError as exc:
            raise UsageError(f"{where}: {exc}") from exc
        entries.append(entry)
    if not entries:
        raise UsageError(f"Manifest {path} lists no case.")
    try:
        check_patient_split(entries)
    except UsageError as exc:
        raise UsageError(f"Manifest {path}: {exc}") from exc
    return Manifest(path, tuple(entries))


def _relative(path: Path | None, base: Path) -> str:
    if path is None:
        return ""
    try:
        return Path(path).resolve().relative_to(base).as_posix()
    except ValueError:
        return str(Path(path).resolve())


def write_manifest(path: str | Path, entries: Sequence[ManifestEntry]) -> Path:
    """Write ``entries`` as a manifest CSV, atomically.

    Paths inside the manifest's folder are written relative to it, so the
    folder can be moved as a whole.

    Raises
    ------
    UsageError
        If ``entries`` is empty or puts one patient in two splits.
    OutputError
        If the file cannot be written.
    """
    path = Path(path)
    if not entries:
        raise UsageError("Argument 'entries' is empty; a manifest needs at least one case.")
    check_patient_split(entries)
    base = path.resolve().parent
    extra_columns = sorted({k for e in entries for k in e.extra} - set(MANIFEST_COLUMNS))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*MANIFEST_COLUMNS, *extra_columns])
    for e in entries:
        writer.writerow(
            [
                e.case_id,
                e.patient_id,
                e.split,
                e.format,
                _relative(e.image, base),
                _relative(e.mask, base),
                "" if e.pixel_spacing_mm is None else f"{e.pixel_spacing_mm:g}",
                "" if e.slice_thickness_mm is None else f"{e.slice_thickness_mm:g}",
                e.source,
                *[
                    _relative(Path(e.extra[k]), base) if k in PATH_COLUMNS and e.extra.get(k) else e.extra.get(k, "")
                    for k in extra_columns
                ],
            ]
        )
    data = buffer.getvalue().encode("utf-8")
    return atomic_write(path, lambda fh: fh.write(data), what="manifest")


def assign_splits(
    patient_ids: Iterable[str],
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> dict[str, Split]:
    """Draw a split for each distinct patient (never for single cases or slices).

    Patients are shuffled with ``seed``; the first ``round(n * test_fraction)``
    go to ``test``, the next ``round(n * val_fraction)`` to ``val`` and the
    rest to ``train``. A non-zero fraction gets at least one patient when
    there are at least two patients.

    Parameters
    ----------
    patient_ids:
        Patient of each case (repeats allowed).
    val_fraction, test_fraction:
        Fractions of patients in ``val`` and ``test``; their sum must be at most 1.
    seed:
        Seed of the shuffle.

    Returns
    -------
    dict
        Patient ID to split.

    Raises
    ------
    ValueError
        If a fraction is outside [0, 1] or they add up to more than 1.

    Examples
    --------
    >>> s = assign_splits(["a", "a", "b", "c", "d"], val_fraction=0.25, seed=1)
    >>> sorted(s.values()).count("val")
    1
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
            raise ValueError(f"Argument '{name}' must be between 0 and 1; got {value!r}.")
    if val_fraction + test_fraction > 1.0 + 1e-9:
        raise ValueError(
            f"Arguments 'val_fraction' and 'test_fraction' add up to {val_fraction + test_fraction:g}; at most 1."
        )
    patients = list(dict.fromkeys(patient_ids))
    n = len(patients)
    order = np.random.default_rng(seed).permutation(n)

    def count(fraction: float) -> int:
        k = round(n * fraction)
        return max(k, 1) if fraction > 0 and n >= 2 else k

    n_test = min(count(test_fraction), n)
    n_val = min(count(val_fraction), n - n_test)
    splits: dict[str, Split] = {}
    for rank, index in enumerate(order):
        splits[patients[int(index)]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return splits
