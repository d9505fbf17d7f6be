"""Clinical predictor inputs: one documented schema, and mappings from other tables to it.

The schema (:data:`CLINICAL_FIELDS`) lists every clinical value the expansion
predictor may use, with its kind, unit and **when it is known**:

``baseline``
    Known at the first scan (demographics, history, onset-to-scan time,
    admission blood pressure). These are features.
``post_baseline``
    Decided or measured after the first scan (treatments). They can reflect
    the expansion itself (a drain placed because the hematoma grew), so they
    are features only with ``predictor.allow_post_baseline: true``.

Outcomes (e.g. the modified Rankin Scale at 90 days), the contest's
train/test split and identifiers are never fields: a mapping that tries to
map such a column is refused (:data:`LEAKAGE_PATTERNS`), and a mapping lists
the columns it deliberately leaves out, with why (``excluded``).

A **mapping** (YAML) says which column of a CSV gives each field::

    name: my_site
    encoding: utf-8            # utf-8-sig for files written by Excel
    patient: PatientID         # the patient ID column (as in DICOM PatientID)
    fields:
      age_years: {column: Age}
      sex_male: {column: Sex, values: {M: 1, F: 0}}    # text -> number
      sbp_mmhg: {column: BP, split: "/", part: 0}      # "180/90" -> 180
      dbp_mmhg: {column: BP, split: "/", part: 1}      # "180/90" -> 90
      hx_hypertension: {column: HTN}
    excluded:                  # columns never used, and why
      mRS90: outcome

Shipped mappings live in ``pipeline/serial/mappings/clinical/`` (``contest_2023e``:
the contest's table1). Empty cells are missing values (``None``).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import yaml

from ichpipe.errors import ConfigError, PredictorInputError
from ichpipe.pipeline.config.loader import build_dataclass

__all__ = [
    "CLINICAL_FIELDS",
    "LEAKAGE_PATTERNS",
    "MAPPINGS_DIR",
    "ClinicalField",
    "ClinicalMapping",
    "FieldSource",
    "clinical_feature_names",
    "is_leaky_name",
    "list_clinical_mappings",
    "load_clinical_mapping",
    "map_clinical_row",
    "read_clinical_csv",
]

Kind = Literal["number", "binary", "ordinal"]
Timing = Literal["baseline", "post_baseline"]

#: Folder of the shipped mappings.
MAPPINGS_DIR = Path(__file__).resolve().parent / "mappings" / "clinical"


@dataclass(frozen=True)
class ClinicalField:
    """One clinical input of the predictor.

    Attributes
    ----------
    name:
        Feature name.
    kind:
        ``number``, ``binary`` (0/1) or ``ordinal`` (small integers).
    timing:
        ``baseline`` (known at the first scan) or ``post_baseline``.
    unit:
        Unit, or ``""``.
    low, high:
        Plausible range; a value outside it is refused as a data error.
    description:
        What it is.
    """

    name: str
    kind: Kind
    timing: Timing
    unit: str
    low: float
    high: float
    description: str


def _binary(name: str, description: str, timing: Timing = "baseline") -> ClinicalField:
    return ClinicalField(name, "binary", timing, "", 0.0, 1.0, description)


#: Every clinical field, in feature order.
CLINICAL_FIELDS: tuple[ClinicalField, ...] = (
    ClinicalField("age_years", "number", "baseline", "years", 0.0, 120.0, "Age at admission."),
    _binary("sex_male", "Sex: 1 male, 0 female."),
    ClinicalField("pre_mrs", "ordinal", "baseline", "", 0.0, 5.0, "Modified Rankin Scale before the hemorrhage."),
    _binary("hx_hypertension", "History of hypertension."),
    _binary("hx_stroke", "History of stroke."),
    _binary("hx_diabetes", "History of diabetes."),
    _binary("hx_atrial_fibrillation", "History of atrial fibrillation."),
    _binary("hx_coronary_disease", "History of coronary heart disease."),
    _binary("hx_smoking", "Smoking history."),
    _binary("hx_alcohol", "Alcohol use history."),
    ClinicalField("onset_to_scan_h", "number", "baseline", "h", 0.0, 720.0,
                  "Hours from symptom onset to the first scan."),
    ClinicalField("sbp_mmhg", "number", "baseline", "mmHg", 40.0, 330.0, "Systolic blood pressure at admission."),
    ClinicalField("dbp_mmhg", "number", "baseline", "mmHg", 20.0, 220.0, "Diastolic blood pressure at admission."),
    _binary("tx_ventricular_drainage", "Ventricular drainage (treatment, after the first scan).", "post_baseline"),
    _binary("tx_hemostatic", "Hemostatic therapy (after the first scan).", "post_baseline"),
    _binary("tx_icp_lowering", "Intracranial-pressure-lowering therapy (after the first scan).", "post_baseline"),
    _binary("tx_antihypertensive", "Antihypertensive therapy (after the first scan).", "post_baseline"),
    _binary("tx_sedation_analgesia", "Sedation or analgesia (after the first scan).", "post_baseline"),
    _binary("tx_antiemetic_gastroprotection", "Antiemetic or gastric protection (after the first scan).",
            "post_baseline"),
    _binary("tx_neurotrophic", "Neurotrophic drugs (after the first scan).", "post_baseline"),
)

_FIELDS = {f.name: f for f in CLINICAL_FIELDS}

#: Column or feature names that are outcomes, labels or splits: never inputs (case-insensitive regexes).
LEAKAGE_PATTERNS: tuple[str, ...] = (
    r"90\s*天",                 # "90天mRS": 90-day outcome
    r"mrs.*(90|day|discharge|follow)",
    r"(90|day|discharge|follow).*mrs",
    r"outcome",
    r"death|mortality|died|dead",
    r"discharge",
    r"follow[-_ ]?up|随访",
    r"expan|扩张|growth|label",
    r"数据集|split|fold",
    r"gos\b|glasgow\s*outcome",
)


def is_leaky_name(name: str) -> bool:
    """Whether ``name`` looks like an outcome, a label or a data split (see :data:`LEAKAGE_PATTERNS`).

    Examples
    --------
    >>> is_leaky_name("90天mRS"), is_leaky_name("脑出血前mRS评分"), is_leaky_name("age_years")
    (True, False, False)
    """
    text = name.strip().lower()
    return any(re.search(pattern, text) for pattern in LEAKAGE_PATTERNS)


def clinical_feature_names(*, allow_post_baseline: bool = False) -> tuple[str, ...]:
    """The clinical fields usable as features (baseline only unless ``allow_post_baseline``)."""
    return tuple(f.name for f in CLINICAL_FIELDS if allow_post_baseline or f.timing == "baseline")


@dataclass(frozen=True)
class FieldSource:
    """Where one field comes from in a table.

    Parameters
    ----------
    column:
        Column name.
    values:
        Text to number, for coded columns (``{男: 1, 女: 0}``).
    split:
        Separator for a column holding several numbers (``"180/90"``).
    part:
        Which part after ``split`` (0-based).
    """

    column: str
    values: Mapping[str, float] | None = None
    split: str | None = None
    part: int = 0

    def __post_init__(self) -> None:
        if not self.column.strip():
            raise ValueError("column must name a column of the table.")
        if self.part < 0:
            raise ValueError(f"part must be 0 or more; got {self.part}.")
        if self.split is not None and not self.split:
            raise ValueError("split must be a non-empty separator or null.")


@dataclass(frozen=True)
class ClinicalMapping:
    """A clinical table's layout (see the module docstring).

    Raises
    ------
    ValueError
        (as :class:`ichpipe.errors.ConfigError` through :func:`load_clinical_mapping`)
        for an unknown field, a field mapped from an excluded column, or a
        column that looks like an outcome, label or split.
    """

    name: str
    patient: str
    fields: Mapping[str, FieldSource]
    encoding: str = "utf-8"
    description: str = ""
    excluded: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        unknown = sorted(set(self.fields) - set(_FIELDS))
        if unknown:
            raise ValueError(
                f"fields names {', '.join(unknown)}, which the clinical schema does not have; "
                f"known fields: {', '.join(_FIELDS)}."
            )
        for name, source in self.fields.items():
            if source.column in self.excluded:
                raise ValueError(
                    f"field {name} comes from column {source.column!r}, which the mapping excludes "
                    f"({self.excluded[source.column]})."
                )
            if is_leaky_name(source.column):
                raise ValueError(
                    f"field {name} comes from column {source.column!r}, which looks like an outcome, "
                    "a label or a data split; such columns are never predictor inputs."
                )


def list_clinical_mappings() -> list[str]:
    """Names of the shipped mappings."""
    return sorted(p.stem for p in MAPPINGS_DIR.glob("*.yaml"))


def load_clinical_mapping(name_or_path: str | Path) -> ClinicalMapping:
    """Load a shipped mapping by name, or a YAML file.

    Raises
    ------
    ichpipe.errors.ConfigError
        If the file is missing or invalid (the message names the key).
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = MAPPINGS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"Clinical mapping {name_or_path!r} not found; give a YAML file or one of: "
            f"{', '.join(list_clinical_mappings())}."
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"Cannot read clinical mapping {path}: {exc}.") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(f"Clinical mapping {path} must be a YAML mapping.")
    return build_dataclass(ClinicalMapping, data, prefix=f"{path.name}")


def _parse(value: Any, source: FieldSource, spec: ClinicalField, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        number = float(value)
    elif isinstance(value, int | float):
        if source.split is not None:
            raise PredictorInputError(f"{where}: expected text with {source.split!r} in it; got {value!r}.")
        number = float(value)
    else:
        text = str(value).strip()
        if text == "":
            return None
        if source.split is not None:
            parts = text.split(source.split)
            if len(parts) <= source.part:
                raise PredictorInputError(
                    f"{where}: {text!r} has no part {source.part} when split at {source.split!r}."
                )
            text = parts[source.part].strip()
        if source.values is not None and text in source.values:
            number = float(source.values[text])
        else:
            try:
                number = float(text)
            except ValueError:
                known = f" (known codes: {', '.join(source.values)})" if source.values else ""
                raise PredictorInputError(f"{where}: {text!r} is not a number{known}.") from None
    if not math.isfinite(number) or not spec.low <= number <= spec.high:
        raise PredictorInputError(
            f"{where}: {number:g} is outside the plausible range of {spec.name} "
            f"[{spec.low:g}, {spec.high:g}] {spec.unit}".rstrip() + "."
        )
    if spec.kind in ("binary", "ordinal") and not float(number).is_integer():
        raise PredictorInputError(f"{where}: {spec.name} must be a whole number; got {number:g}.")
    return number


def map_clinical_row(
    row: Mapping[str, Any], mapping: ClinicalMapping, *, where: str = "clinical row"
) -> dict[str, float | None]:
    """Turn one table row (column name to cell) into clinical fields.

    Works on CSV rows (text) and on the JSON the timeline import keeps in the
    results store (numbers and text). A column absent from ``row`` gives
    ``None``.

    Raises
    ------
    ichpipe.errors.PredictorInputError
        If a cell cannot be read as its field (the message names the column
        and ``where``; never the patient).
    """
    out: dict[str, float | None] = {}
    for name, source in mapping.fields.items():
        spec = _FIELDS[name]
        out[name] = _parse(row.get(source.column), source, spec, f"{where}, column {source.column!r}")
    return out


def read_clinical_csv(path: Path, mapping: ClinicalMapping) -> dict[str, dict[str, float | None]]:
    """Read a clinical CSV through ``mapping``: patient ID to fields.

    Raises
    ------
    ichpipe.errors.PredictorInputError
        If the file cannot be read, a mapped column is missing, a patient
        occurs twice or a cell is invalid (messages name the file row).
    """
    try:
        with Path(path).open(encoding=mapping.encoding, newline="") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PredictorInputError(f"Cannot read the clinical table {path}: {exc}.") from exc
    needed = {mapping.patient, *(s.column for s in mapping.fields.values())}
    missing = sorted(needed - set(header))
    if missing:
        raise PredictorInputError(
            f"The clinical table {Path(path).name} lacks the column(s) {', '.join(missing)} that mapping "
            f"{mapping.name!r} needs."
        )
    out: dict[str, dict[str, float | None]] = {}
    for i, row in enumerate(rows, start=2):
        pid = (row.get(mapping.patient) or "").strip()
        if not pid:
            raise PredictorInputError(f"{Path(path).name} row {i}: the patient ID is empty.")
        if pid in out:
            raise PredictorInputError(f"{Path(path).name} row {i}: the patient occurs twice in the table.")
        out[pid] = map_clinical_row(row, mapping, where=f"{Path(path).name} row {i}")
    return out
