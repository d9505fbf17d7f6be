"""The predictor's feature table and labels: from the results store, the contest tables or CSV.

A :class:`FeatureTable` has one row per patient (the first scan and the
clinical record) and named numeric columns; ``NaN`` marks a missing value.
Its ``feature_space`` names the units and conventions of the imaging columns:

``ichpipe-ibsi/1``
    Computed by ``ichpipe run`` (:mod:`ichpipe.pipeline.measure.features`): mm and HU.
``contest-2023e/1``
    The contest tables: table2 volumes (mL) and vascular-territory ratios;
    table3 radiomics, whose shape values are in **voxel units** (their
    VoxelVolume is a voxel count; table2's volume / VoxelVolume runs from 1.6
    to 3.0 mm^3) and whose intensities are **not HU** (hematoma means
    86-193). Imported timelines in the store carry the table2 part.

A model is trained on one feature space and refuses another.

Column names
------------
Clinical fields keep their schema names (:mod:`ichpipe.pipeline.serial.clinical`). Imaging
columns are prefixed by the region: ``HM_`` (hematoma) and ``ED_``
(perihematomal edema, contest only): ``HM_volume_ml``, ``HM_ACA_R_Ratio``,
``HM_original_shape_MeshVolume``, ``HM_original_firstorder_Entropy`` (the
contest's ``NCCT_`` image-type prefix is dropped so both sources share
pyradiomics' names), ``HM_location_left_fraction``...

CSV layout
----------
``patient_id`` first, then ``feature_space`` (optional), then one column per
feature; empty cells are missing. Labels: ``patient_id`` and ``label`` (1
expanded, 0 not, empty undetermined), the layout ``ichpipe expansion --csv``
writes.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from ichpipe.atomic import atomic_write
from ichpipe.errors import PredictorInputError
from ichpipe.pipeline.measure.features.extract import FEATURE_SPACE as IBSI_FEATURE_SPACE
from ichpipe.pipeline.serial.clinical import (
    ClinicalMapping,
    clinical_feature_names,
    is_leaky_name,
    read_clinical_csv,
)
from ichpipe.pipeline.serial.expansion import ExpansionRule

__all__ = [
    "CONTEST_FEATURE_SPACE",
    "FEATURE_SPACE_COLUMN",
    "IBSI_FEATURE_SPACE",
    "PATIENT_COLUMN",
    "FeatureTable",
    "LabelledTable",
    "contest_feature_table",
    "contest_labels",
    "labelled",
    "read_features_csv",
    "read_label_rule",
    "read_labels_csv",
    "write_features_csv",
    "write_labels_csv",
]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

#: Feature space of the contest tables.
CONTEST_FEATURE_SPACE = "contest-2023e/1"
#: Patient ID column of the CSVs.
PATIENT_COLUMN = "patient_id"
#: Optional feature-space column of the features CSV.
FEATURE_SPACE_COLUMN = "feature_space"

_TERRITORIES = ("ACA", "MCA", "PCA", "Pons_Medulla", "Cerebellum")
#: Vascular-territory ratio columns of the contest's table2, per region.
TERRITORY_RATIOS: tuple[str, ...] = tuple(
    f"{region}_{territory}_{side}_Ratio"
    for region in ("HM", "ED")
    for side in ("R", "L")
    for territory in _TERRITORIES
)


@dataclass(frozen=True)
class FeatureTable:
    """One row per patient, named numeric columns (``NaN`` = missing).

    Raises
    ------
    ValueError
        If shapes disagree, a patient or feature occurs twice, or a column
        name looks like an outcome, label or split (leakage guard).
    """

    patient_ids: tuple[str, ...]
    feature_names: tuple[str, ...]
    values: FloatArray
    feature_space: str | None = None
    notes: tuple[str, ...] = field(default=())
    #: Why values of a patient are missing, where the builder knows (e.g. no table3 row): ID -> sentences.
    reasons: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        if values.shape != (len(self.patient_ids), len(self.feature_names)):
            raise ValueError(
                f"Argument 'values' must have shape ({len(self.patient_ids)}, {len(self.feature_names)}); "
                f"got {values.shape}."
            )
        if len(set(self.patient_ids)) != len(self.patient_ids):
            raise ValueError("Argument 'patient_ids' must name each patient once (one row per patient).")
        if len(set(self.feature_names)) != len(self.feature_names):
            raise ValueError("Argument 'feature_names' must name each feature once.")
        leaky = [n for n in self.feature_names if is_leaky_name(n)]
        if leaky:
            raise ValueError(
                f"Argument 'feature_names' holds {', '.join(leaky)}, which look like outcomes, labels or "
                "data splits; those are never predictor inputs."
            )
        if np.isinf(values).any():
            raise ValueError("Argument 'values' must hold finite numbers or NaN (missing).")
        object.__setattr__(self, "values", values)

    @property
    def n_patients(self) -> int:
        """Number of rows."""
        return len(self.patient_ids)

    def rows(self, patient_ids: Sequence[str]) -> FeatureTable:
        """The rows of ``patient_ids``, in that order.

        Raises
        ------
        PredictorInputError
            If a patient is not in the table (the message gives how many, not who).
        """
        index = {pid: i for i, pid in enumerate(self.patient_ids)}
        absent = [p for p in patient_ids if p not in index]
        if absent:
            raise PredictorInputError(f"{len(absent)} requested patient(s) are not in the feature table.")
        rows = [index[p] for p in patient_ids]
        reasons = {p: self.reasons[p] for p in patient_ids if p in self.reasons}
        return FeatureTable(tuple(patient_ids), self.feature_names, self.values[rows], self.feature_space, self.notes,
                            reasons)

    def columns(self, names: Sequence[str]) -> FeatureTable:
        """The columns ``names``, in that order.

        Raises
        ------
        PredictorInputError
            Naming every column that is not in the table.
        """
        index = {n: j for j, n in enumerate(self.feature_names)}
        absent = [n for n in names if n not in index]
        if absent:
            raise PredictorInputError(
                f"The feature table lacks {len(absent)} required feature(s): {', '.join(absent)}."
            )
        cols = [index[n] for n in names]
        return FeatureTable(self.patient_ids, tuple(names), self.values[:, cols], self.feature_space, self.notes,
                            self.reasons)

    def column(self, name: str) -> FloatArray:
        """One column's values."""
        return np.asarray(self.columns([name]).values[:, 0])


@dataclass(frozen=True)
class LabelledTable:
    """The patients of a feature table that have a determined label.

    Attributes
    ----------
    table:
        Those rows only.
    y:
        Their labels (1 expanded, 0 not expanded).
    n_undetermined:
        Patients of the table whose label is undetermined (excluded).
    n_unlabelled:
        Patients of the table absent from the labels (excluded).
    """

    table: FeatureTable
    y: npt.NDArray[np.int64]
    n_undetermined: int
    n_unlabelled: int


def labelled(table: FeatureTable, labels: Mapping[str, int | None]) -> LabelledTable:
    """Keep the patients with a determined label (undetermined ones are never negatives).

    Raises
    ------
    PredictorInputError
        If no patient has a determined label.
    """
    keep = [p for p in table.patient_ids if labels.get(p) is not None]
    n_undetermined = sum(1 for p in table.patient_ids if p in labels and labels[p] is None)
    n_unlabelled = sum(1 for p in table.patient_ids if p not in labels)
    if not keep:
        raise PredictorInputError("No patient of the feature table has a determined label (1 or 0).")
    y = np.asarray([int(labels[p]) for p in keep], dtype=np.int64)  # type: ignore[arg-type]  # None filtered
    return LabelledTable(table.rows(keep), y, n_undetermined, n_unlabelled)


# ---------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------


def _fmt(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def write_features_csv(table: FeatureTable, path: Path) -> Path:
    """Write ``table`` as CSV (atomically): ``patient_id``, ``feature_space``, features."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([PATIENT_COLUMN, FEATURE_SPACE_COLUMN, *table.feature_names])
    for pid, row in zip(table.patient_ids, table.values, strict=True):
        writer.writerow([pid, table.feature_space or "", *(_fmt(v) for v in row)])
    data = buf.getvalue().encode("utf-8")

    def write(fh: BinaryIO) -> None:
        fh.write(data)

    return atomic_write(path, write)


def _read_rows(path: Path, what: str) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with Path(path).open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            return list(reader.fieldnames or []), list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PredictorInputError(f"Cannot read the {what} {path}: {exc}.") from exc


def read_features_csv(path: Path) -> FeatureTable:
    """Read a features CSV (layout in the module docstring).

    Raises
    ------
    PredictorInputError
        If the file is unreadable, lacks ``patient_id``, repeats a patient,
        mixes feature spaces, holds a leaky column name, or a cell is not a
        number (the message names the file row and column, never the patient).
    """
    name = Path(path).name
    header, rows = _read_rows(path, "features table")
    if PATIENT_COLUMN not in header:
        raise PredictorInputError(f"The features table {name} has no '{PATIENT_COLUMN}' column.")
    features = [c for c in header if c not in (PATIENT_COLUMN, FEATURE_SPACE_COLUMN)]
    if not features:
        raise PredictorInputError(f"The features table {name} has no feature columns.")
    ids: list[str] = []
    values = np.full((len(rows), len(features)), np.nan)
    spaces: set[str] = set()
    for i, row in enumerate(rows):
        pid = (row.get(PATIENT_COLUMN) or "").strip()
        if not pid:
            raise PredictorInputError(f"{name} row {i + 2}: the patient ID is empty.")
        ids.append(pid)
        space = (row.get(FEATURE_SPACE_COLUMN) or "").strip()
        if space:
            spaces.add(space)
        for j, col in enumerate(features):
            cell = (row.get(col) or "").strip()
            if cell == "":
                continue
            try:
                v = float(cell)
            except ValueError:
                raise PredictorInputError(f"{name} row {i + 2}, column {col!r}: {cell!r} is not a number.") from None
            if not math.isfinite(v):
                raise PredictorInputError(f"{name} row {i + 2}, column {col!r}: {cell!r} is not a finite number.")
            values[i, j] = v
    if len(spaces) > 1:
        raise PredictorInputError(f"The features table {name} mixes feature spaces: {', '.join(sorted(spaces))}.")
    try:
        return FeatureTable(tuple(ids), tuple(features), values, spaces.pop() if spaces else None)
    except ValueError as exc:
        raise PredictorInputError(f"The features table {name} cannot be used: {exc}") from exc


def read_labels_csv(path: Path) -> dict[str, int | None]:
    """Read labels: ``patient_id`` and ``label`` (1, 0 or empty = undetermined).

    ``ichpipe expansion --csv`` writes this layout (extra columns are ignored).

    Raises
    ------
    PredictorInputError
        If a column is missing, a patient repeats or a label is not 1, 0 or empty.
    """
    name = Path(path).name
    header, rows = _read_rows(path, "labels table")
    for col in (PATIENT_COLUMN, "label"):
        if col not in header:
            raise PredictorInputError(f"The labels table {name} has no '{col}' column.")
    out: dict[str, int | None] = {}
    for i, row in enumerate(rows, start=2):
        pid = (row.get(PATIENT_COLUMN) or "").strip()
        if not pid:
            raise PredictorInputError(f"{name} row {i}: the patient ID is empty.")
        if pid in out:
            raise PredictorInputError(f"{name} row {i}: the patient occurs twice.")
        cell = (row.get("label") or "").strip()
        if cell not in ("", "0", "1", "0.0", "1.0"):
            raise PredictorInputError(f"{name} row {i}: label {cell!r} must be 1, 0 or empty (undetermined).")
        out[pid] = None if cell == "" else int(float(cell))
    return out


def read_label_rule(path: Path) -> str | None:
    """The expansion rule named in a labels CSV's ``rule`` column (``None`` without one)."""
    header, rows = _read_rows(path, "labels table")
    if "rule" not in header:
        return None
    rules = sorted({(r.get("rule") or "").strip() for r in rows} - {""})
    return "; ".join(rules) or None


def write_labels_csv(labels: Mapping[str, int | None], path: Path, *, rule: str | None = None) -> Path:
    """Write labels as ``patient_id,label[,rule]`` (atomically; undetermined as an empty cell)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([PATIENT_COLUMN, "label", *(["rule"] if rule else [])])
    for pid in sorted(labels):
        value = labels[pid]
        writer.writerow([pid, "" if value is None else int(value), *([rule] if rule else [])])
    data = buf.getvalue().encode("utf-8")

    def write(fh: BinaryIO) -> None:
        fh.write(data)

    return atomic_write(path, write)


# ---------------------------------------------------------------------------
# Contest tables
# ---------------------------------------------------------------------------

_T1, _T2 = "table1_clinical.csv", "table2_volumes_locations.csv"
_T3 = {"HM": "table3_radiomics_Hemo.csv", "ED": "table3_radiomics_ED.csv"}
_APPENDIX = "appendix1_accession_times.csv"


def _contest_number(row: Mapping[str, str], column: str, where: str) -> float:
    cell = (row.get(column) or "").strip()
    if cell == "":
        return math.nan
    try:
        return float(cell)
    except ValueError:
        raise PredictorInputError(f"{where}, column {column!r}: {cell!r} is not a number.") from None


def _radiomics_name(column: str) -> str | None:
    """table3 column -> pyradiomics name (``NCCT_`` prefix dropped); ``None`` for non-features."""
    if column.startswith("original_shape_"):
        return column
    if column.startswith("NCCT_original_firstorder_"):
        return column[len("NCCT_") :]
    return None


def contest_feature_table(
    contest_dir: Path,
    *,
    clinical_mapping: ClinicalMapping,
    allow_post_baseline: bool = False,
) -> FeatureTable:
    """The feature table of every contest patient (table1 + table2 first scan + table3 first accession).

    The first scan is table2's ``首次检查流水号`` (appendix1 agrees; table1's
    first-scan accession is wrong for one patient, see the timeline mapping).
    Outcomes (90-day mRS), the contest split and identifiers are never read
    as features (the clinical mapping excludes them).

    A patient whose first accession has no table3 row (or who has no table1
    row) gets empty (``NaN``) values there, and the table's ``reasons`` say
    so; :func:`~ichpipe.pipeline.risk.missing_features.apply_missing_policy`
    then keeps, drops or refuses such patients (``ichpipe features --missing``).

    Raises
    ------
    PredictorInputError
        If a table is missing or unreadable.
    """
    root = Path(contest_dir)
    for name in (_T1, _T2, *_T3.values()):
        if not (root / name).is_file():
            raise PredictorInputError(f"The contest folder {root} has no {name}.")
    clinical = read_clinical_csv(root / _T1, clinical_mapping)
    clinical_names = [
        n for n in clinical_feature_names(allow_post_baseline=allow_post_baseline) if n in clinical_mapping.fields
    ]

    _header2, rows2 = _read_rows(root / _T2, "contest table2")
    radiomics: dict[str, dict[str, dict[str, str]]] = {}
    radiomics_names: dict[str, list[tuple[str, str]]] = {}
    for region, fname in _T3.items():
        header3, rows3 = _read_rows(root / fname, f"contest {fname}")
        radiomics[region] = {(r.get("流水号") or "").strip(): r for r in rows3}
        radiomics_names[region] = [(c, n) for c in header3 if (n := _radiomics_name(c)) is not None]

    names: list[str] = list(clinical_names)
    names += ["HM_volume_ml", "ED_volume_ml", *TERRITORY_RATIOS]
    for region in ("HM", "ED"):
        names += [f"{region}_{n}" for _, n in radiomics_names[region]]

    ids: list[str] = []
    rows: list[list[float]] = []
    reasons: dict[str, tuple[str, ...]] = {}
    for i, row in enumerate(rows2, start=2):
        pid = (row.get("ID") or "").strip()
        where = f"{_T2} row {i}"
        accession = (row.get("首次检查流水号") or "").strip()
        why: list[str] = [] if pid in clinical else [f"no row in {_T1}"]
        values = [clinical.get(pid, {}).get(n) for n in clinical_names]
        out = [math.nan if v is None else float(v) for v in values]
        out.append(_contest_number(row, "HM_volume", where) / 1000.0)
        out.append(_contest_number(row, "ED_volume", where) / 1000.0)
        out += [_contest_number(row, c, where) for c in TERRITORY_RATIOS]
        for region in ("HM", "ED"):
            r3 = radiomics[region].get(accession)
            if r3 is None:
                why.append(f"its first-scan accession has no row in {_T3[region]}")
                out += [math.nan] * len(radiomics_names[region])
                continue
            out += [_contest_number(r3, c, f"{_T3[region]} accession row") for c, _ in radiomics_names[region]]
        ids.append(pid)
        rows.append(out)
        if why:
            reasons[pid] = tuple(why)
    missing_clinical = sum(1 for p in ids if p not in clinical)
    notes = (f"{missing_clinical} patient(s) of table2 have no table1 row",) if missing_clinical else ()
    return FeatureTable(tuple(ids), tuple(names), np.asarray(rows, dtype=np.float64), CONTEST_FEATURE_SPACE, notes,
                        reasons)


def contest_labels(contest_dir: Path, *, rule: ExpansionRule) -> dict[str, int | None]:
    """Expansion labels of the contest patients under ``rule`` (the timeline code, not a re-implementation).

    The tables go through ``ichpipe timeline import``'s ``contest_2023e``
    mapping into a temporary results store; the timelines are evaluated with
    ``rule`` (1 expanded, 0 not, ``None`` undetermined).
    """
    from ichpipe.pipeline.config.store_config import StoreConfig
    from ichpipe.pipeline.serial.expansion import evaluate_timelines, labels_by_patient
    from ichpipe.pipeline.serial.import_mappings import load_mapping
    from ichpipe.pipeline.serial.store import open_store
    from ichpipe.pipeline.serial.timeline import load_timelines
    from ichpipe.pipeline.serial.timeline_import import ImportOptions, run_import

    root = Path(contest_dir)
    with tempfile.TemporaryDirectory(prefix="ichpipe-contest-") as tmp:
        store = StoreConfig(path=str(Path(tmp) / "contest.sqlite"))
        run_import(
            ImportOptions(
                store=store,
                mapping=load_mapping("contest_2023e"),
                volumes=root / _T2,
                times=root / _APPENDIX,
                clinical=root / _T1,
            )
        )
        with open_store(store, create=False) as s:
            return labels_by_patient(evaluate_timelines(load_timelines(s), rule))
