"""A patient's timeline as a PNG: volume against hours, with the expansion thresholds and window.

Drawn with matplotlib's object API on an Agg canvas (no display, no global
backend switch), written to a temporary name and renamed.
"""

from __future__ import annotations

import os
import re
import tempfile
from hashlib import sha256
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ichpipe.errors import OutputError
from ichpipe.logs import current_settings
from ichpipe.pipeline.serial.expansion import ExpansionResult, ExpansionRule
from ichpipe.pipeline.serial.timeline import Timeline

__all__ = ["patient_digest", "plot_file_name", "plot_timeline"]

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def patient_digest(patient_id: str, issuer_of_patient_id: str = "") -> str:
    """16 hex digits of the SHA-256 of issuer and ID: names a patient where the ID must not show."""
    return sha256(f"{issuer_of_patient_id}\x1f{patient_id}".encode()).hexdigest()[:16]


def plot_file_name(patient_id: str, issuer_of_patient_id: str = "") -> str:
    """A safe file name for a patient's plot: ``timeline_<digest>.png``.

    File names are seen by people who should not see patient IDs (directory
    listings, backups, logs of the tools that copy them), so the ID itself is
    used only with ``ichpipe --log-phi``, and then only when it is plain
    (letters, digits, ``._-``, at most 64 characters, no issuer); otherwise
    :func:`patient_digest` stands in, which also keeps any ID from naming a path.
    """
    if current_settings().log_phi and not issuer_of_patient_id and _SAFE_ID.match(patient_id):
        return f"timeline_{patient_id}.png"
    return f"timeline_{patient_digest(patient_id, issuer_of_patient_id)}.png"


def plot_timeline(timeline: Timeline, result: ExpansionResult, rule: ExpansionRule, out_path: Path) -> Path:
    """Draw ``timeline`` and the verdict under ``rule`` to ``out_path`` (PNG).

    The x axis is hours from onset (from the first scan when onset is unknown).
    Drawn: each scan's volume (a red cross on volumes with quality flags), the
    baseline, the absolute (baseline + X mL) and relative (baseline x (1 + Y %))
    thresholds, the window, and the first scan that met the rule.

    Raises
    ------
    ichpipe.errors.OutputError
        If the file cannot be written.
    """
    fig = Figure(figsize=(7.0, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    scans = timeline.scans
    xs = [timeline.hours(s) for s in scans]
    ys = [s.volume_ml for s in scans]
    origin = "onset" if timeline.time_origin == "onset" else "first scan"
    if scans:
        ax.plot(xs, ys, "-o", color="#1f4e79", label="hematoma volume", zorder=3)
        base = scans[0].volume_ml
        top = max(ys)
        ax.axhline(base, color="#7f7f7f", lw=0.8, ls=":", label=f"baseline {base:.1f} mL")
        if rule.absolute_ml is not None:
            top = max(top, base + rule.absolute_ml)
            ax.axhline(base + rule.absolute_ml, color="#c55a11", lw=1.2, ls="--",
                       label=f"baseline + {rule.absolute_ml:g} mL")
        if rule.relative_pct is not None and base > 0:
            top = max(top, base * (1.0 + rule.relative_pct / 100.0))
            ax.axhline(base * (1.0 + rule.relative_pct / 100.0), color="#7030a0", lw=1.2, ls="-.",
                       label=f"baseline + {rule.relative_pct:g} %")
        if rule.window_h is not None:
            left = min(0.0, *xs)
            ax.axvspan(left, rule.window_h, color="#e2efda", alpha=0.6, zorder=0,
                       label=f"window {rule.window_h:g} h from {origin}")
            ax.axvline(rule.window_h, color="#548235", lw=1.0)
        flagged = [s for s in scans if s.quality_flags]
        if flagged:
            ax.plot([timeline.hours(s) for s in flagged], [s.volume_ml for s in flagged], "X", ms=10,
                    color="#c00000", zorder=5, label="quality-flagged volume")
        if result.first_expansion is not None:
            hit = next((s for s in scans if s.series_instance_uid == result.first_expansion.series_instance_uid),
                       None)
            if hit is not None:
                ax.plot([timeline.hours(hit)], [hit.volume_ml], "o", ms=12, mfc="none", mec="#c00000",
                        mew=2.0, zorder=4, label="first expansion")
        ax.set_ylim(0.0, max(top, 1.0) * 1.12)
    else:
        ax.text(0.5, 0.5, "no dated scans", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"hours from {origin}")
    ax.set_ylabel("hematoma volume (mL)")
    status = result.status.replace("_", " ")
    who = (timeline.patient_id if current_settings().log_phi
           else f"#{patient_digest(timeline.patient_id, getattr(timeline, 'issuer_of_patient_id', ''))}")
    ax.set_title(f"Patient {who}: {status} ({rule.name})", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()

    out_path = Path(out_path)
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=out_path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fig.savefig(fh, format="png")
            os.replace(tmp, out_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise OutputError(f"Cannot write the timeline plot {out_path}: {exc.strerror or exc}.") from exc
    return out_path
