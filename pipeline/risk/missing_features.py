"""Patients with missing features: who lacks what, and what to do with them (``ichpipe features --missing``).

A feature table marks a missing value as ``NaN``: a patient whose first
accession has no radiomics row in the contest's table3, a clinical value the
table leaves empty, a first scan recorded without imaging features. The
policy decides:

``empty``
    keep the patient with empty cells (the default); ``ichpipe
    predict-expansion`` then refuses those patients unless ``--impute``.
``drop``
    leave such patients out of the table.
``fail``
    stop, naming every such patient and what each lacks.

Whatever the policy, :class:`MissingReport` lists every patient with missing
values, grouped (``HM radiomics``, ``clinical``...) with the reason where the
table's builder knows it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ichpipe.errors import PredictorInputError
from ichpipe.pipeline.risk.feature_table import FeatureTable
from ichpipe.pipeline.serial.clinical import clinical_feature_names

__all__ = [
    "MISSING_POLICIES",
    "MissingPolicy",
    "MissingReport",
    "PatientMissing",
    "apply_missing_policy",
    "feature_group",
    "missing_by_patient",
]

MissingPolicy = Literal["empty", "drop", "fail"]

#: The policies of ``ichpipe features --missing``.
MISSING_POLICIES: tuple[str, ...] = ("empty", "drop", "fail")

_CLINICAL = frozenset(clinical_feature_names(allow_post_baseline=True))

#: How many names of a group are listed before only the count is given.
_LIST_AT_MOST = 4


def feature_group(name: str) -> str:
    """The group a feature belongs to, for reports: ``HM radiomics``, ``clinical``, ``territory ratios``...

    Examples
    --------
    >>> feature_group("HM_original_shape_Sphericity"), feature_group("sbp_mmhg"), feature_group("ED_MCA_L_Ratio")
    ('HM radiomics', 'clinical', 'territory ratios')
    """
    if name in _CLINICAL:
        return "clinical"
    region, _, rest = name.partition("_")
    if region in ("HM", "ED") and rest.startswith("original_"):
        return f"{region} radiomics"
    if region in ("HM", "ED") and rest.endswith("_Ratio"):
        return "territory ratios"
    if region in ("HM", "ED"):
        return f"{region} imaging"
    return "other"


@dataclass(frozen=True)
class PatientMissing:
    """What one patient lacks."""

    patient_id: str
    missing: tuple[str, ...]
    reasons: tuple[str, ...] = ()

    def groups(self) -> dict[str, list[str]]:
        """Missing features by group."""
        out: dict[str, list[str]] = {}
        for name in self.missing:
            out.setdefault(feature_group(name), []).append(name)
        return out

    def describe(self) -> str:
        """One line: ``31 HM radiomics, clinical: sbp_mmhg (its first-scan accession has no row in ...)``."""
        parts = []
        for group, names in self.groups().items():
            if len(names) <= _LIST_AT_MOST:
                parts.append(f"{group}: {', '.join(names)}")
            else:
                parts.append(f"{len(names)} {group} features")
        why = f" ({'; '.join(self.reasons)})" if self.reasons else ""
        return f"{len(self.missing)} missing - {'; '.join(parts)}{why}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {"patient_id": self.patient_id, "n_missing": len(self.missing),
                "missing": {g: n for g, n in self.groups().items()}, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class MissingReport:
    """Every patient with missing values, and what the policy did."""

    policy: str
    patients: tuple[PatientMissing, ...]
    dropped: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """One line per patient (``sub101: 62 missing - ...``), then what was done."""
        out = [f"{p.patient_id}: {p.describe()}" for p in self.patients]
        if self.patients:
            done = {"empty": "kept with empty cells (predict-expansion needs --impute for them)",
                    "drop": f"left out of the table ({len(self.dropped)})",
                    "fail": "refused"}[self.policy]
            out.append(f"{len(self.patients)} patient(s) with missing features: {done}.")
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {"policy": self.policy, "patients": [p.to_dict() for p in self.patients],
                "dropped": list(self.dropped)}


def missing_by_patient(table: FeatureTable, patients: Iterable[str] | None = None) -> list[PatientMissing]:
    """Every patient of ``table`` (or of ``patients``) with at least one missing value."""
    wanted = None if patients is None else set(patients)
    out = []
    for i, pid in enumerate(table.patient_ids):
        if wanted is not None and pid not in wanted:
            continue
        gaps = np.isnan(table.values[i])
        if gaps.any():
            names = tuple(n for n, gap in zip(table.feature_names, gaps, strict=True) if gap)
            out.append(PatientMissing(pid, names, tuple(table.reasons.get(pid, ()))))
    return out


def apply_missing_policy(table: FeatureTable, policy: str) -> tuple[FeatureTable, MissingReport]:
    """Keep, drop or refuse the patients with missing values.

    Raises
    ------
    ValueError
        If ``policy`` is not one of :data:`MISSING_POLICIES`.
    PredictorInputError
        With ``fail``, naming every patient with missing values and what each lacks.
    """
    if policy not in MISSING_POLICIES:
        raise ValueError(f"Argument 'policy' must be one of {', '.join(MISSING_POLICIES)}; got {policy!r}.")
    patients = tuple(missing_by_patient(table))
    if policy == "fail" and patients:
        detail = "; ".join(f"{p.patient_id}: {p.describe()}" for p in patients)
        raise PredictorInputError(
            f"{len(patients)} patient(s) have missing features ({detail}). Use --missing empty to keep them with "
            "empty cells or --missing drop to leave them out."
        )
    if policy == "drop" and patients:
        gone = {p.patient_id for p in patients}
        kept = [p for p in table.patient_ids if p not in gone]
        if not kept:
            raise PredictorInputError("Every patient has missing features; --missing drop would leave none.")
        return table.rows(kept), MissingReport(policy, patients, tuple(sorted(gone)))
    return table, MissingReport(policy, patients)
