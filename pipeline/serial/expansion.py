"""Hematoma expansion: the rule (with named presets) and its evaluation.

A patient's hematoma *expanded* when a follow-up scan inside the window has a
volume that grew, over the baseline (the first scan), by at least the
absolute threshold (mL) **or** at least the relative threshold (% of the
baseline volume). The window is counted in hours from symptom onset; without
a known onset it is counted from the first scan (the result says so).

Per patient the result is ``expanded``, ``not_expanded`` or ``undetermined``:
undetermined when there is no follow-up inside the window (one scan only, or
every follow-up later than the window), never silently negative.

Like with like: a follow-up is compared with the baseline only when both were
measured the same way (segmenter and checkpoint SHA-256), neither carries a
quality flag, neither is post-surgical, and the follow-up surely lies inside
the window (a scan whose time of day is unknown may lie anywhere in its day).
A follow-up that fails one of these never makes a patient "not expanded": the
verdict is ``undetermined`` with the reason and both values (``methods
differ``: baseline and follow-up volumes and methods), unless a clean
follow-up met the rule. Every verdict says where its window was counted from
(onset, or the first scan when no onset was recorded).

Presets (``expansion.preset`` in ``config.yaml``):

``contest_2023e`` (also ``default``)
    >= 6 mL or >= 33 % at a follow-up within 48 h of onset: the definition of
    the 2023 contest problem E and of seed ``004`` (Yu 2024).
``trials_24h``
    >= 6 mL or >= 33 % within 24 h of onset: the same thresholds at the 24-h
    follow-up CT most hemostatic and blood-pressure trials use.
``kazui_1996``
    >= 12.5 mL or >= 40 % (V2/V1 >= 1.4), repeat CT within 120 h of onset:
    Kazui et al., Stroke 1996;27:1783-7 (the cut-points from their ROC analysis).

Any number can be overridden in the configuration
(:class:`~ichpipe.pipeline.config.expansion_config.ExpansionConfig`); ``.inf``
switches a threshold off (``window_h: .inf`` = no window).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # the evaluation only reads these; importing them would pull in SQLAlchemy
    from ichpipe.pipeline.serial.timeline import Timeline, TimelineScan

__all__ = [
    "PRESETS",
    "ExpansionEvent",
    "ExpansionResult",
    "ExpansionRule",
    "ExpansionSummary",
    "evaluate_expansion",
    "evaluate_timelines",
    "labels_by_patient",
]

Status = Literal["expanded", "not_expanded", "undetermined"]

#: Slack for float comparisons, so that a growth of exactly 6 mL (or 33 %)
#: computed from volumes in mm^3 meets an inclusive threshold.
_EPS = 1e-9


def _fmt(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class ExpansionRule:
    """A definition of hematoma expansion.

    Parameters
    ----------
    name:
        Preset name, or ``"custom"``.
    absolute_ml:
        Growth in mL that counts as expansion; ``None`` switches it off.
    relative_pct:
        Growth in % of the baseline volume that counts; ``None`` switches it off.
    window_h:
        Only follow-ups at most this many hours from onset count; ``None`` = no limit.
    inclusive:
        ``True``: growth >= threshold counts; ``False``: growth must exceed it.
    reference:
        Where the definition comes from (for reports).
    """

    name: str
    absolute_ml: float | None = 6.0
    relative_pct: float | None = 33.0
    window_h: float | None = 48.0
    inclusive: bool = True
    reference: str = ""

    def __post_init__(self) -> None:
        for key in ("absolute_ml", "relative_pct", "window_h"):
            value = getattr(self, key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
                raise ValueError(f"expansion.{key} must be a number; got {value!r}.")
            if math.isinf(value):
                object.__setattr__(self, key, None)
            elif value <= 0:
                raise ValueError(f"expansion.{key} must be > 0 (use .inf to switch it off); got {value!r}.")
        if self.absolute_ml is None and self.relative_pct is None:
            raise ValueError(
                "expansion.absolute_ml and expansion.relative_pct cannot both be off; set at least one."
            )

    def describe(self) -> str:
        """One line, e.g. ``>= 6 mL or >= 33 % within 48 h of onset``."""
        op = ">=" if self.inclusive else ">"
        parts = []
        if self.absolute_ml is not None:
            parts.append(f"{op} {_fmt(self.absolute_ml)} mL")
        if self.relative_pct is not None:
            parts.append(f"{op} {_fmt(self.relative_pct)} %")
        window = "at any follow-up" if self.window_h is None else f"within {_fmt(self.window_h)} h of onset"
        return f"growth {' or '.join(parts)} over the first scan {window}"

    def criteria_met(self, delta_ml: float, delta_pct: float | None) -> tuple[str, ...]:
        """Which criteria (``"absolute"``, ``"relative"``) a growth meets."""
        met = []
        if self.absolute_ml is not None and _meets(delta_ml, self.absolute_ml, self.inclusive):
            met.append("absolute")
        if (self.relative_pct is not None and delta_pct is not None
                and _meets(delta_pct, self.relative_pct, self.inclusive)):
            met.append("relative")
        return tuple(met)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {
            "name": self.name,
            "absolute_ml": self.absolute_ml,
            "relative_pct": self.relative_pct,
            "window_h": self.window_h,
            "inclusive": self.inclusive,
            "description": self.describe(),
            "reference": self.reference,
        }


def _meets(value: float, threshold: float, inclusive: bool) -> bool:
    return value >= threshold - _EPS if inclusive else value > threshold + _EPS


_CONTEST = ExpansionRule(
    name="contest_2023e",
    absolute_ml=6.0,
    relative_pct=33.0,
    window_h=48.0,
    reference="2023 China graduate mathematical modeling contest, problem E; Yu 2024 (seed 004)",
)

#: Named definitions of expansion (see the module docstring for sources).
PRESETS: Mapping[str, ExpansionRule] = MappingProxyType(
    {
        "contest_2023e": _CONTEST,
        "default": _CONTEST,
        "trials_24h": ExpansionRule(
            name="trials_24h",
            absolute_ml=6.0,
            relative_pct=33.0,
            window_h=24.0,
            reference="6 mL / 33 % at the 24-h follow-up CT used by most ICH trials",
        ),
        "kazui_1996": ExpansionRule(
            name="kazui_1996",
            absolute_ml=12.5,
            relative_pct=40.0,
            window_h=120.0,
            reference="Kazui et al., Stroke 1996;27:1783-7 (V2-V1 >= 12.5 mL or V2/V1 >= 1.4)",
        ),
    }
)


@dataclass(frozen=True)
class ExpansionEvent:
    """A follow-up compared with the baseline."""

    accession_number: str | None
    series_instance_uid: str
    acquisition_datetime: str
    hours_from_onset: float | None
    hours_from_first_scan: float
    volume_ml: float
    delta_ml: float
    delta_pct: float | None
    criteria: tuple[str, ...] = ()
    method: str = ""
    hours_range: tuple[float, float] | None = None
    problem: str | None = None
    problem_code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {
            "accession_number": self.accession_number,
            "series_instance_uid": self.series_instance_uid,
            "acquisition_datetime": self.acquisition_datetime,
            "hours_from_onset": None if self.hours_from_onset is None else round(self.hours_from_onset, 4),
            "hours_from_first_scan": round(self.hours_from_first_scan, 4),
            "hours_range": None if self.hours_range is None else [round(h, 4) for h in self.hours_range],
            "volume_ml": self.volume_ml,
            "delta_ml": round(self.delta_ml, 6),
            "delta_pct": None if self.delta_pct is None else round(self.delta_pct, 4),
            "criteria": list(self.criteria),
            "method": self.method,
            "problem_code": self.problem_code,
            "problem": self.problem,
        }


@dataclass(frozen=True)
class ExpansionResult:
    """The verdict for one patient under one rule.

    Attributes
    ----------
    status:
        ``expanded``, ``not_expanded`` or ``undetermined``.
    first_expansion:
        The first follow-up (in time) that met the rule, with its hours and deltas.
    largest_growth:
        The follow-up in the window with the largest absolute growth (any status).
    origin_text:
        Where the window was counted from, in words (printed with every verdict).
    unusable:
        Follow-ups inside (or possibly inside) the window that could not be
        compared with the baseline, each with its ``problem``.
    """

    patient_id: str
    issuer_of_patient_id: str
    status: Status
    reason: str
    rule: ExpansionRule
    time_origin: str
    baseline: ExpansionEvent | None
    first_expansion: ExpansionEvent | None
    largest_growth: ExpansionEvent | None
    n_scans: int
    n_followups_in_window: int
    n_followups_after_window: int
    notes: tuple[str, ...] = field(default=())
    origin_text: str = ""
    unusable: tuple[ExpansionEvent, ...] = field(default=())

    @property
    def label(self) -> int | None:
        """1 expanded, 0 not expanded, ``None`` undetermined (a training label)."""
        return {"expanded": 1, "not_expanded": 0}.get(self.status)

    @property
    def expansion_hours(self) -> float | None:
        """Hours from the time origin (onset, else first scan) to the first scan that met the rule."""
        if self.first_expansion is None:
            return None
        if self.first_expansion.hours_from_onset is not None:
            return self.first_expansion.hours_from_onset
        return self.first_expansion.hours_from_first_scan

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {
            "patient_id": self.patient_id,
            "issuer_of_patient_id": self.issuer_of_patient_id,
            "status": self.status,
            "label": self.label,
            "reason": self.reason,
            "rule": self.rule.name,
            "time_origin": self.time_origin,
            "time_origin_text": self.origin_text,
            "expansion_hours": None if self.expansion_hours is None else round(self.expansion_hours, 4),
            "baseline": None if self.baseline is None else self.baseline.to_dict(),
            "first_expansion": None if self.first_expansion is None else self.first_expansion.to_dict(),
            "largest_growth": None if self.largest_growth is None else self.largest_growth.to_dict(),
            "n_scans": self.n_scans,
            "n_followups_in_window": self.n_followups_in_window,
            "n_followups_after_window": self.n_followups_after_window,
            "unusable_followups": [e.to_dict() for e in self.unusable],
            "notes": list(self.notes),
        }


def _event(scan: TimelineScan, baseline_ml: float, rule: ExpansionRule | None, *,
           problem: tuple[str, str] | None = None) -> ExpansionEvent:
    delta = scan.volume_ml - baseline_ml
    pct = 100.0 * delta / baseline_ml if baseline_ml > 0 else None
    return ExpansionEvent(
        accession_number=scan.accession_number,
        series_instance_uid=scan.series_instance_uid,
        acquisition_datetime=(scan.acquisition_datetime.isoformat() if scan.time_known
                              else scan.acquisition_datetime.date().isoformat()),
        hours_from_onset=scan.hours_from_onset,
        hours_from_first_scan=scan.hours_from_first_scan,
        volume_ml=scan.volume_ml,
        delta_ml=delta,
        delta_pct=pct,
        criteria=rule.criteria_met(delta, pct) if rule is not None else (),
        method=scan.method_label,
        hours_range=(scan.hours_low, scan.hours_high),
        problem_code=None if problem is None else problem[0],
        problem=None if problem is None else problem[1],
    )


def _hours_text(scan: TimelineScan) -> str:
    if scan.hours_high - scan.hours_low > _EPS:
        return f"~{scan.hours_low:.1f}-{scan.hours_high:.1f} h"
    return f"{scan.hours_low:.2f} h"


def _same_method_hint(base: TimelineScan, scan: TimelineScan) -> str:
    """A way to compare like with like: another series measured the same way, else remeasure."""
    for alt in scan.alternatives:
        if alt.method == base.method and not alt.n_quality_flags:
            return (f"accession {scan.accession_number or '-'} also has series {alt.series_instance_uid} measured "
                    f"like the baseline ({alt.volume_ml:.2f} mL): `ichpipe timeline prefer --accession "
                    f"{scan.accession_number or '-'} --series {alt.series_instance_uid}`, or remeasure")
    return "measure both one way: `ichpipe timeline remeasure --patient ID`"


def _problem(base: TimelineScan, scan: TimelineScan, window_h: float | None, meets: bool) -> tuple[str, str] | None:
    """Why a follow-up cannot be compared with the baseline (code, sentence), or ``None``."""
    if scan.method != base.method:
        return ("methods_differ",
                f"undetermined: methods differ - baseline {base.volume_ml:.2f} mL ({base.method_label}) vs "
                f"this scan {scan.volume_ml:.2f} mL ({scan.method_label}); {_same_method_hint(base, scan)}")
    if scan.post_surgical is not None:
        return ("post_surgical", f"{scan.post_surgical}: not a natural-history volume")
    if scan.problems:
        return ("quality_flags", "the volume is flagged (" + "; ".join(scan.problems) + ")")
    if window_h is not None and scan.hours_high > window_h + _EPS and meets:
        return ("time_uncertain",
                f"grew enough but may lie after the {_fmt(window_h)}-h window (its time of day is unknown)")
    return None


def evaluate_expansion(timeline: Timeline, rule: ExpansionRule) -> ExpansionResult:
    """Apply ``rule`` to one patient's timeline.

    The baseline is the first (earliest) scan. Follow-ups are taken in time
    order; those later than ``rule.window_h`` hours from onset (from the first
    scan when no onset is known) are ignored. The first clean follow-up (same
    method as the baseline, no quality flag, not post-surgical, surely inside
    the window) meeting either threshold makes the patient ``expanded``;
    otherwise any follow-up that could not be compared makes the verdict
    ``undetermined``, with the reason (see the module docstring).
    """
    notes = list(timeline.notes)
    scans = timeline.scans
    origin_word = "onset" if timeline.time_origin == "onset" else "the first scan"
    window = rule.window_h

    def result(status: Status, reason: str, **kw: Any) -> ExpansionResult:
        defaults: dict[str, Any] = {
            "baseline": None,
            "first_expansion": None,
            "largest_growth": None,
            "n_followups_in_window": 0,
            "n_followups_after_window": 0,
        }
        defaults.update(kw)
        return ExpansionResult(
            patient_id=timeline.patient_id,
            issuer_of_patient_id=timeline.issuer_of_patient_id,
            status=status,
            reason=reason,
            rule=rule,
            time_origin=timeline.time_origin,
            n_scans=len(scans),
            notes=tuple(notes),
            origin_text=timeline.origin_text,
            **defaults,
        )

    if not scans:
        return result("undetermined", "No dated scan is recorded for this patient.")
    base = scans[0]
    baseline = _event(base, base.volume_ml, None)
    if base.volume_ml <= 0:
        notes.append("The baseline volume is 0 mL: only the absolute threshold can apply.")
    if window is not None and base.hours_low > window + _EPS:
        return result(
            "undetermined",
            f"The first scan is {_hours_text(base)} from {origin_word}, after the {_fmt(window)}-h window.",
            baseline=baseline,
            n_followups_after_window=len(scans) - 1,
        )
    if timeline.baseline_unknown:
        return result("undetermined", timeline.baseline_unknown, baseline=baseline)
    followups = scans[1:]
    considered = [s for s in followups if window is None or s.hours_low <= window + _EPS]
    after = len(followups) - len(considered)
    if base.problems or (window is not None and base.hours_high > window + _EPS):
        why = "; ".join(base.problems) or f"it may lie after the {_fmt(window or 0.0)}-h window (time of day unknown)"
        return result("undetermined", f"The baseline scan cannot serve as the reference: {why}.",
                      baseline=baseline, n_followups_in_window=len(considered), n_followups_after_window=after)
    events = []
    for s in considered:
        raw = _event(s, base.volume_ml, rule)
        events.append((s, _event(s, base.volume_ml, rule, problem=_problem(base, s, window, bool(raw.criteria)))))
    # Undated scans: unknown time, so possibly inside the window; harmless only when clean and not grown.
    undated_problem = False
    for m in timeline.undated:
        growth = m.volume_ml - base.volume_ml
        growth_pct = 100.0 * growth / base.volume_ml if base.volume_ml > 0 else None
        if ((m.segmenter, m.checkpoint_sha256) != base.method or m.quality_flags
                or rule.criteria_met(growth, growth_pct)):
            undated_problem = True
            notes.append(f"A scan without acquisition time ({m.volume_ml:.2f} mL) may lie inside the window.")
    sure = [(s, e) for s, e in events if e.problem is None and (window is None or s.hours_high <= window + _EPS)]
    unusable = tuple(e for _, e in events if e.problem is not None)
    # Only like-with-like comparisons give a growth worth reporting.
    largest = max((e for _, e in sure), key=lambda e: e.delta_ml, default=None)
    first = next((e for _, e in sure if e.criteria), None)
    common = {"baseline": baseline, "largest_growth": largest, "n_followups_in_window": len(considered),
              "n_followups_after_window": after, "unusable": unusable}
    if first is not None:
        pct = "n/a" if first.delta_pct is None else f"{first.delta_pct:+.1f} %"
        hours = first.hours_from_onset if first.hours_from_onset is not None else first.hours_from_first_scan
        reason = (
            f"Follow-up at {hours:.2f} h from {origin_word} grew {first.delta_ml:+.2f} mL ({pct}); "
            f"meets the {' and '.join(first.criteria)} threshold."
        )
        return result("expanded", reason, first_expansion=first, **common)
    if unusable or undated_problem:
        parts = [f"follow-up {e.accession_number or '-'} ({_hours_text(s)}): {e.problem}"
                 for s, e in events if e.problem is not None]
        if undated_problem:
            parts.append("a scan without acquisition time may lie inside the window")
        lead = "Methods differ" if any(e.problem_code == "methods_differ" for e in unusable) else "Not determinable"
        return result("undetermined", f"{lead}: " + "; ".join(parts) + ".", **common)
    if not sure:
        if not followups:
            reason = "Only one scan: no follow-up to compare with."
        elif considered:
            reason = (f"No follow-up surely within {_fmt(window or 0.0)} h of {origin_word} "
                      f"({len(considered)} may lie after it: time of day unknown).")
        else:
            reason = (
                f"No follow-up within {_fmt(window or 0.0)} h of {origin_word} "
                f"({after} later follow-up(s) ignored)."
            )
        return result("undetermined", reason, **common)
    grown = max((e for _, e in sure), key=lambda e: e.delta_ml)
    pct = "n/a" if grown.delta_pct is None else f"{grown.delta_pct:+.1f} %"
    reason = (
        f"{len(sure)} follow-up(s) within the window; the largest growth was {grown.delta_ml:+.2f} mL "
        f"({pct})."
    )
    return result("not_expanded", reason, **common)


@dataclass(frozen=True)
class ExpansionSummary:
    """Results for many patients under one rule."""

    rule: ExpansionRule
    results: tuple[ExpansionResult, ...]

    @property
    def counts(self) -> dict[str, int]:
        """How many patients have each status (and in all)."""
        counts = {"patients": len(self.results), "expanded": 0, "not_expanded": 0, "undetermined": 0}
        for r in self.results:
            counts[r.status] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {
            "rule": self.rule.to_dict(),
            "summary": self.counts,
            "patients": [r.to_dict() for r in self.results],
        }


def evaluate_timelines(timelines: Iterable[Timeline], rule: ExpansionRule) -> ExpansionSummary:
    """Apply ``rule`` to every timeline."""
    return ExpansionSummary(rule=rule, results=tuple(evaluate_expansion(t, rule) for t in timelines))


def labels_by_patient(summary: ExpansionSummary) -> dict[str, int | None]:
    """Training labels keyed by patient ID: 1 expanded, 0 not expanded, ``None`` undetermined.

    Raises
    ------
    ValueError
        If one patient ID occurs under several issuers (use ``summary.results`` then).
    """
    labels: dict[str, int | None] = {}
    for r in summary.results:
        if r.patient_id in labels:
            raise ValueError(
                "A patient ID occurs under several issuers; key the labels by "
                "(patient_id, issuer_of_patient_id) from summary.results instead."
            )
        labels[r.patient_id] = r.label
    return labels
