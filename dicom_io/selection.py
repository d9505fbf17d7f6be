"""Rule-based series selection, with rules as data (MONAI Deploy style).

Each rule looks at one attribute of a candidate series, either a DICOM keyword
read from its first instance (``Modality``, ``ImageType``, ``ConvolutionKernel``,
``SliceThickness``...) or a derived value (``n_slices``, ``axial_deviation_deg``,
``sop_class_name``), and applies one operator. Every candidate gets a verdict
for every rule, so ``ichpipe inspect`` can say why a series was or was not chosen.

Candidates that pass all *rules* are ranked by the *preferences* (each a rule
too; passing an earlier preference outranks passing any later ones), then by
the documented tie-break: slice thickness closest to ``preferred_thickness_mm``,
more slices, lower SeriesNumber, then SeriesInstanceUID (so the choice is
deterministic).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Candidate",
    "Rule",
    "RuleVerdict",
    "SelectionConfig",
    "SelectionResult",
    "default_preferences",
    "default_rules",
    "select_series",
]

Operator = Literal["equals", "in", "contains_all", "contains_none", "range", "regex", "not_regex"]


@dataclass(frozen=True)
class Rule:
    """One selection rule.

    Parameters
    ----------
    name:
        Short identifier shown in verdicts (``modality_ct``).
    attribute:
        DICOM keyword of the first instance, or a derived attribute:
        ``n_slices``, ``axial_deviation_deg``, ``sop_class_name``, ``field_of_view_mm`` (rows and
        columns times their pixel size, the larger),
        ``geometry_valid`` (``yes`` when positions, orientation and spacing
        make a consistent volume).
    op:
        ``equals`` (case-insensitive text), ``in`` (one of ``values``),
        ``contains_all`` / ``contains_none`` (multi-valued attributes such as
        ImageType, case-insensitive), ``range`` (``low <= x <= high``, either
        bound may be null), ``regex`` / ``not_regex`` (Python regular
        expression searched in the text value).
    values:
        Operands: one item for ``equals``/``regex``/``not_regex``, two for
        ``range`` (use null for an open bound), any number otherwise.
    missing:
        Verdict when the attribute is absent: ``fail`` (default) or ``pass``.
    """

    name: str
    attribute: str
    op: Operator
    values: tuple[str | float | None, ...] = ()
    missing: Literal["fail", "pass"] = "fail"

    def __post_init__(self) -> None:
        if self.op == "range" and len(self.values) != 2:
            raise ValueError(f"Rule '{self.name}': op 'range' needs 'values' [low, high].")
        if self.op in ("equals", "regex", "not_regex") and len(self.values) != 1:
            raise ValueError(f"Rule '{self.name}': op '{self.op}' needs exactly one value.")
        if self.op in ("regex", "not_regex"):
            try:
                re.compile(str(self.values[0]))
            except re.error as exc:
                raise ValueError(f"Rule '{self.name}': invalid regular expression: {exc}.") from exc

    def evaluate(self, attributes: Mapping[str, Any]) -> RuleVerdict:
        """Apply the rule to a candidate's attributes."""
        value = attributes.get(self.attribute)
        if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
            ok = self.missing == "pass"
            return RuleVerdict(self.name, ok, f"{self.attribute} is absent ({self.missing} by rule)")
        ok = _apply(self.op, value, self.values)
        shown = "\\".join(map(str, value)) if isinstance(value, list | tuple) else value
        if isinstance(shown, float):
            shown = f"{shown:.4g}"
        expect = _describe(self.op, self.values)
        return RuleVerdict(self.name, ok, f"{self.attribute}={shown} {'' if ok else 'not '}{expect}")


def _as_list(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v).strip().upper() for v in value]
    return [str(value).strip().upper()]


def _apply(op: Operator, value: Any, operands: Sequence[Any]) -> bool:
    if op == "equals":
        return str(value).strip().upper() == str(operands[0]).strip().upper()
    if op == "in":
        return str(value).strip().upper() in {str(o).strip().upper() for o in operands}
    if op == "contains_all":
        have = set(_as_list(value))
        return all(str(o).upper() in have for o in operands)
    if op == "contains_none":
        have = set(_as_list(value))
        return not any(str(o).upper() in have for o in operands)
    if op == "range":
        try:
            x = float(value)
        except (TypeError, ValueError):
            return False
        low, high = operands
        return (low is None or x >= float(low)) and (high is None or x <= float(high))
    text = "\\".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    found = re.search(str(operands[0]), text) is not None
    return found if op == "regex" else not found


def _describe(op: Operator, operands: Sequence[Any]) -> str:
    if op == "range":
        low, high = operands
        if low is None:
            return f"<= {high}"
        if high is None:
            return f">= {low}"
        return f"in [{low}, {high}]"
    if op == "equals":
        return f"== {operands[0]}"
    if op == "in":
        return f"in {{{', '.join(map(str, operands))}}}"
    if op == "contains_all":
        return f"contains all of {', '.join(map(str, operands))}"
    if op == "contains_none":
        return f"contains none of {', '.join(map(str, operands))}"
    if op == "regex":
        return f"matches /{operands[0]}/"
    return f"avoids /{operands[0]}/"


@dataclass(frozen=True)
class RuleVerdict:
    """The result of one rule on one candidate."""

    rule: str
    passed: bool
    detail: str

    def __str__(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'} {self.rule}: {self.detail}"


def default_rules() -> tuple[Rule, ...]:
    """The built-in rules (mirrored in ``config.yaml``)."""
    return (
        Rule("modality_ct", "Modality", "equals", ("CT",)),
        Rule("ct_image_storage", "sop_class_name", "in", ("CT Image Storage", "Enhanced CT Image Storage")),
        Rule("original_primary", "ImageType", "contains_all", ("ORIGINAL", "PRIMARY")),
        Rule("not_localizer", "ImageType", "contains_none", ("LOCALIZER", "SCOUT", "SURVIEW", "TOPOGRAM")),
        Rule("axial", "axial_deviation_deg", "range", (None, 30.0)),
        Rule("enough_slices", "n_slices", "range", (10.0, None)),
        Rule("slice_thickness", "SliceThickness", "range", (0.5, 10.0), missing="pass"),
        Rule("geometry_valid", "geometry_valid", "equals", ("yes",)),
    )


def default_preferences() -> tuple[Rule, ...]:
    """The built-in preferences: soft-tissue kernels before bone/sharp kernels, axial images, a head's field.

    ``head_field``: a field of view of at most 320 mm (a head's, not a trauma protocol's body field of
    the same head: the same slices at twice the pixel size).
    """
    return (
        Rule(
            "soft_tissue_kernel",
            "ConvolutionKernel",
            "not_regex",
            (r"(?i)bone|lung|sharp|edge|detail|^(YC|YD|YE|EB|FC3\d|FC5\d|FC8\d)$|H[6-9]\d|J[6-9]\d|Br6\d|Hr6\d",),
            missing="pass",
        ),
        Rule("image_type_axial", "ImageType", "contains_all", ("AXIAL",), missing="fail"),
        Rule("head_field", "field_of_view_mm", "range", (None, 320.0), missing="pass"),
    )


@dataclass(frozen=True)
class SelectionConfig:
    """Series-selection settings: hard rules, soft preferences and the tie-break."""

    rules: tuple[Rule, ...] = field(default_factory=default_rules)
    preferences: tuple[Rule, ...] = field(default_factory=default_preferences)
    preferred_thickness_mm: float = 5.0


@dataclass(frozen=True)
class Candidate:
    """A series offered for selection: its UID and the attributes rules look at."""

    series_instance_uid: str
    attributes: Mapping[str, Any]
    key: str = ""

    @property
    def ident(self) -> str:
        """Unique identifier (series UID, plus the split suffix if any)."""
        return self.key or self.series_instance_uid


@dataclass(frozen=True)
class SelectionResult:
    """Verdicts for every candidate and the chosen one (``None`` if none passed)."""

    verdicts: Mapping[str, tuple[RuleVerdict, ...]]
    preference_verdicts: Mapping[str, tuple[RuleVerdict, ...]]
    ranking: tuple[str, ...]
    selected: str | None

    def reasons(self, ident: str) -> list[str]:
        """Human-readable reasons for one candidate, selection outcome last."""
        lines = [str(v) for v in self.verdicts[ident]]
        lines += [f"prefer {v}" for v in self.preference_verdicts.get(ident, ())]
        if ident == self.selected:
            lines.append("SELECTED: passed every rule and ranked first")
        elif ident in self.ranking:
            lines.append(f"not selected: passed every rule but ranked #{self.ranking.index(ident) + 1}")
        else:
            failed = [v.rule for v in self.verdicts[ident] if not v.passed]
            lines.append(f"not selected: failed {', '.join(failed)}")
        return lines


def select_series(candidates: Sequence[Candidate], config: SelectionConfig) -> SelectionResult:
    """Apply the rules to every candidate and pick the best one.

    Parameters
    ----------
    candidates:
        The series of one study (or of a whole folder).
    config:
        Rules, preferences and tie-break settings.

    Returns
    -------
    SelectionResult
        Every verdict, the ranking of the candidates that passed every rule,
        and the selected one (``None`` when none passed).
    """
    verdicts: dict[str, tuple[RuleVerdict, ...]] = {}
    prefs: dict[str, tuple[RuleVerdict, ...]] = {}
    passing: list[Candidate] = []
    for cand in candidates:
        verdicts[cand.ident] = tuple(rule.evaluate(cand.attributes) for rule in config.rules)
        if all(v.passed for v in verdicts[cand.ident]):
            prefs[cand.ident] = tuple(rule.evaluate(cand.attributes) for rule in config.preferences)
            passing.append(cand)

    def sort_key(cand: Candidate) -> tuple[Any, ...]:
        pref_rank = tuple(0 if v.passed else 1 for v in prefs[cand.ident])
        thickness = _float_or(cand.attributes.get("SliceThickness"), math.inf)
        series_number = _float_or(cand.attributes.get("SeriesNumber"), math.inf)
        return (
            pref_rank,
            abs(thickness - config.preferred_thickness_mm),
            -int(cand.attributes.get("n_slices") or 0),
            series_number,
            cand.ident,
        )

    ranking = tuple(c.ident for c in sorted(passing, key=sort_key))
    return SelectionResult(verdicts, prefs, ranking, ranking[0] if ranking else None)


def _float_or(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default
