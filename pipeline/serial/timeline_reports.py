"""The jobs behind ``ichpipe timeline`` and ``ichpipe expansion``: store in, report out.

Each job takes one frozen options object and returns a report that renders
itself as text, JSON-ready values or CSV and says which exit status it means.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ichpipe.errors import TimelineError
from ichpipe.pipeline.config.store_config import StoreConfig
from ichpipe.pipeline.serial.expansion import (
    ExpansionResult,
    ExpansionRule,
    ExpansionSummary,
    evaluate_expansion,
    evaluate_timelines,
)
from ichpipe.pipeline.serial.store import open_store
from ichpipe.pipeline.serial.timeline import Timeline, TimelineScan, load_timeline, load_timelines, method_label

__all__ = [
    "EXPANSION_CSV_COLUMNS",
    "ExpansionOptions",
    "ExpansionReport",
    "TimelineOptions",
    "TimelineReport",
    "show_timeline",
    "summarize_expansion",
]


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "" if value is None else format(value, fmt)


@dataclass(frozen=True, kw_only=True)
class TimelineOptions:
    """What ``ichpipe timeline --patient ID`` does."""

    store: StoreConfig
    rule: ExpansionRule
    patient_id: str
    issuer_of_patient_id: str | None = None
    plot_path: Path | None = None


@dataclass(frozen=True)
class TimelineReport:
    """One patient's timeline and expansion verdict."""

    timeline: Timeline
    expansion: ExpansionResult
    plot_path: Path | None

    @property
    def exit_code(self) -> int:
        """0: a timeline was built (an undetermined verdict is a result, not a failure)."""
        return 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        out = self.timeline.to_dict()
        out["rule"] = self.expansion.rule.to_dict()
        out["expansion"] = self.expansion.to_dict()
        out["plot"] = None if self.plot_path is None else str(self.plot_path)
        return out

    def to_text(self) -> str:
        """A table of the scans and the verdict, for a terminal."""
        t = self.timeline
        r = self.expansion
        onset = (
            f"hours from onset (onset {t.onset_to_first_scan_h:.2f} h before the first scan, "
            f"from {t.onset_source})"
            if t.time_origin == "onset" and t.onset_to_first_scan_h is not None
            else "hours from the first scan (onset unknown)"
        )
        issuer = f" (issuer {t.issuer_of_patient_id})" if t.issuer_of_patient_id else ""
        lines = [f"Patient {t.patient_id}{issuer}: {len(t.scans)} scan(s); {onset}."]
        if t.surgery_datetime is not None:
            lines.append(f"Surgery recorded at {t.surgery_datetime.isoformat(sep=' ')}.")
        hdr = "h onset" if t.time_origin == "onset" else "h first"
        lines.append(f"  {'#':>2}  {'accession':<18} {'acquired':<19}  {hdr:>11}  {'volume mL':>9}  "
                     f"{'delta mL':>9}  {'delta %':>8}  method / series used")
        base = t.scans[0] if t.scans else None
        window = r.rule.window_h
        for s in t.scans:
            if s.index == 0 or base is None:
                dml, dpct = "baseline", ""
            else:
                grown = s.volume_ml - base.volume_ml
                dml = f"{grown:+.2f}"
                dpct = f"{100.0 * grown / base.volume_ml:+.1f}" if base.volume_ml > 0 else "n/a"
                if s.method != base.method:
                    dml, dpct = "(method)", ""
            hours = (f"{s.hours_low:.1f}~{s.hours_high:.1f}" if s.hours_high - s.hours_low > 1e-9
                     else f"{t.hours(s):.2f}")
            when = (s.acquisition_datetime.isoformat(sep=" ") if s.time_known
                    else f"{s.acquisition_datetime.date().isoformat()} (no time)")
            flag = "" if window is None or s.hours_low <= window else "  (after window)"
            lines.append(
                f"  {s.index:>2}  {(s.accession_number or '-'):<18} {when:<19}  {hours:>11}  {s.volume_ml:>9.2f}  "
                f"{dml:>9}  {dpct:>8}  {s.method_label}; {_choice(s)}{flag}"
            )
            for problem in s.problems:
                lines.append(f"      ! {problem}")
            for alt in s.alternatives:
                lines.append(f"      also series {alt.series_instance_uid}: {alt.volume_ml:.2f} mL "
                             f"({method_label(alt.segmenter, alt.checkpoint_sha256)})")
        verdict = r.status.replace("_", " ")
        lines.append(f"Expansion ({r.rule.name}: {r.rule.describe()}): {verdict}. {r.reason}")
        lines.append(f"Window counted from {r.origin_text}.")
        lines.extend(f"Note: {n}" for n in r.notes)
        if self.plot_path is not None:
            lines.append(f"Plot: {self.plot_path}")
        return "\n".join(lines)


def _choice(scan: TimelineScan) -> str:
    """Which series is used for the scan, and why."""
    if scan.n_series == 1:
        return f"series {scan.series_instance_uid}"
    why = {"user": "chosen by the user", "auto": "latest run; choose with `ichpipe timeline prefer`"}.get(
        scan.preferred_by or "", "latest recorded")
    return f"series {scan.series_instance_uid} ({why}; {scan.n_series} series)"


def show_timeline(options: TimelineOptions) -> TimelineReport:
    """Build one patient's timeline from the store, apply the rule, draw the plot if asked.

    Raises
    ------
    ichpipe.errors.StoreError
        If the store is missing or unreadable.
    ichpipe.errors.TimelineError
        If the store holds no series of that patient.
    """
    with open_store(options.store, create=False) as store:
        timeline = load_timeline(store, options.patient_id, issuer_of_patient_id=options.issuer_of_patient_id)
    result = evaluate_expansion(timeline, options.rule)
    plot = None
    if options.plot_path is not None:
        from ichpipe.pipeline.serial.timeline_plot import plot_timeline  # matplotlib only when a plot is asked for

        plot = plot_timeline(timeline, result, options.rule, options.plot_path)
    return TimelineReport(timeline=timeline, expansion=result, plot_path=plot)


@dataclass(frozen=True, kw_only=True)
class ExpansionOptions:
    """What ``ichpipe expansion`` does."""

    store: StoreConfig
    rule: ExpansionRule
    plot_dir: Path | None = None


#: Columns of ``ichpipe expansion --csv``, one row per patient.
EXPANSION_CSV_COLUMNS = (
    "patient_id",
    "issuer_of_patient_id",
    "status",
    "label",
    "rule",
    "time_origin",
    "expansion_hours",
    "baseline_accession",
    "baseline_hours_from_onset",
    "baseline_volume_ml",
    "expansion_accession",
    "expansion_hours_from_onset",
    "expansion_hours_from_first_scan",
    "expansion_volume_ml",
    "delta_ml",
    "delta_pct",
    "criteria",
    "largest_delta_ml",
    "largest_delta_pct",
    "n_scans",
    "n_followups_in_window",
    "n_followups_after_window",
    "unusable_followups",
    "reason",
)


@dataclass(frozen=True)
class ExpansionReport:
    """Every patient's verdict under one rule."""

    store: str
    summary: ExpansionSummary
    plots: tuple[Path, ...] = ()

    @property
    def exit_code(self) -> int:
        """0: every patient was evaluated (undetermined ones included)."""
        return 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        out: dict[str, Any] = {"store": self.store}
        out.update(self.summary.to_dict())
        out["plots"] = [str(p) for p in self.plots]
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per patient, keyed by :data:`EXPANSION_CSV_COLUMNS`."""
        rows = []
        for r in self.summary.results:
            b, e, g = r.baseline, r.first_expansion, r.largest_growth
            rows.append({
                "patient_id": r.patient_id,
                "issuer_of_patient_id": r.issuer_of_patient_id,
                "status": r.status,
                "label": "" if r.label is None else r.label,
                "rule": r.rule.name,
                "time_origin": r.time_origin,
                "expansion_hours": _num(r.expansion_hours, ".4f"),
                "baseline_accession": b.accession_number if b else "",
                "baseline_hours_from_onset": _num(b.hours_from_onset, ".4f") if b else "",
                "baseline_volume_ml": _num(b.volume_ml, ".6g") if b else "",
                "expansion_accession": e.accession_number if e else "",
                "expansion_hours_from_onset": _num(e.hours_from_onset, ".4f") if e else "",
                "expansion_hours_from_first_scan": _num(e.hours_from_first_scan, ".4f") if e else "",
                "expansion_volume_ml": _num(e.volume_ml, ".6g") if e else "",
                "delta_ml": _num(e.delta_ml, ".4f") if e else "",
                "delta_pct": _num(e.delta_pct, ".3f") if e else "",
                "criteria": "+".join(e.criteria) if e else "",
                "largest_delta_ml": _num(g.delta_ml, ".4f") if g else "",
                "largest_delta_pct": _num(g.delta_pct, ".3f") if g else "",
                "n_scans": r.n_scans,
                "n_followups_in_window": r.n_followups_in_window,
                "n_followups_after_window": r.n_followups_after_window,
                "unusable_followups": "; ".join(f"{e.accession_number or '-'}:{e.problem_code}" for e in r.unusable),
                "reason": r.reason,
            })
        return rows

    def to_csv(self) -> str:
        """CSV text, header first."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(EXPANSION_CSV_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows())
        return buf.getvalue()

    def to_text(self) -> str:
        """One line per patient and a summary, for a terminal."""
        rule = self.summary.rule
        lines = [f"Rule {rule.name}: {rule.describe()}."]
        for r in self.summary.results:
            who = r.patient_id if not r.issuer_of_patient_id else f"{r.issuer_of_patient_id}/{r.patient_id}"
            if r.first_expansion is not None:
                e = r.first_expansion
                pct = "n/a" if e.delta_pct is None else f"{e.delta_pct:+.1f} %"
                origin = "onset" if r.time_origin == "onset" else "first scan"
                detail = f"at {r.expansion_hours:.2f} h from {origin}, {e.delta_ml:+.2f} mL ({pct})"
            else:
                detail = r.reason
            origin = "onset" if r.time_origin == "onset" else "first scan, onset unknown"
            lines.append(f"  {who}: {r.status.replace('_', ' ')} [window from {origin}] - {detail}")
        c = self.summary.counts
        lines.append(
            f"{c['patients']} patient(s): {c['expanded']} expanded, {c['not_expanded']} not expanded, "
            f"{c['undetermined']} undetermined."
        )
        codes: dict[str, int] = {}
        for r in self.summary.results:
            for code in dict.fromkeys(e.problem_code or "" for e in r.unusable):
                codes[code] = codes.get(code, 0) + 1
        if codes:
            lines.append("Follow-ups not compared (patients): " + ", ".join(
                f"{code.replace('_', ' ')} {n}" for code, n in sorted(codes.items())) + ".")
        no_onset = sum(r.time_origin != "onset" for r in self.summary.results)
        if no_onset:
            lines.append(f"{no_onset} patient(s) have no onset time: their window is counted from the first scan.")
        if self.plots:
            lines.append(f"{len(self.plots)} plot(s) written.")
        return "\n".join(lines)


def summarize_expansion(options: ExpansionOptions) -> ExpansionReport:
    """Apply the rule to every patient in the store; draw one plot per patient if asked.

    Raises
    ------
    ichpipe.errors.StoreError
        If the store is missing or unreadable.
    ichpipe.errors.TimelineError
        If the store holds no measurements at all.
    """
    with open_store(options.store, create=False) as store:
        timelines = load_timelines(store)
        location = store.location
    if not timelines:
        raise TimelineError(f"The results store {location} holds no measurements yet.")
    summary = evaluate_timelines(timelines, options.rule)
    plots: list[Path] = []
    if options.plot_dir is not None:
        from ichpipe.pipeline.serial.timeline_plot import (  # matplotlib only when asked for
            plot_file_name,
            plot_timeline,
        )

        for timeline, result in zip(timelines, summary.results, strict=True):
            name = plot_file_name(timeline.patient_id, timeline.issuer_of_patient_id)
            plots.append(plot_timeline(timeline, result, options.rule, options.plot_dir / name))
    return ExpansionReport(store=location, summary=summary, plots=tuple(plots))
