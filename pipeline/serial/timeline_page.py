"""``ichpipe timeline --patient ID --html FILE``: the patient's timeline as a static QC page.

One card and one row per scan (earliest first): key image (found under the
run outputs' folder ``OUT/<StudyInstanceUID>/<SeriesInstanceUID>/`` when it is
there), volume, ABC/2, change since the baseline, whether that change meets
the expansion rule, quality flags; the patient's verdict in the subtitle and
the timeline plot below the table when one was drawn. Built with
:func:`ichpipe.pipeline.outputs.qc_html.render_qc_page`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO

from ichpipe.atomic import atomic_write
from ichpipe.pipeline.outputs.paths import series_output_dir
from ichpipe.pipeline.outputs.qc_html import QCRow, render_qc_page, row_from_report, thumbnail_data_uri
from ichpipe.pipeline.serial.timeline_reports import TimelineReport

__all__ = ["write_timeline_page"]


def _report(folder: Path) -> dict[str, Any] | None:
    try:
        loaded = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def write_timeline_page(report: TimelineReport, path: Path, *, outputs_root: Path | None) -> Path:
    """Write the timeline page of ``report`` to ``path`` atomically; key images from ``outputs_root``.

    Raises
    ------
    ichpipe.errors.OutputError
        If the file cannot be written.
    """
    timeline, result = report.timeline, report.expansion
    rule = result.rule
    base = timeline.scans[0].volume_ml if timeline.scans else 0.0
    rows = []
    for scan in timeline.scans:
        label = f"#{scan.index} {scan.accession_number or scan.series_instance_uid[-12:]}"
        folder = None
        if outputs_root is not None and scan.study_instance_uid:
            folder = series_output_dir(outputs_root, scan.study_instance_uid, scan.series_instance_uid)
        stored = _report(folder) if folder is not None else None
        row = row_from_report(stored, label=label, folder=folder) if stored else QCRow(label=label)
        hours = timeline.hours(scan)
        if scan.index == 0:
            verdict, delta = "baseline", None
        else:
            delta = scan.volume_ml - base
            pct = 100.0 * delta / base if base > 0 else None
            within = rule.window_h is None or hours <= rule.window_h
            verdict = ("expanded" if rule.criteria_met(delta, pct) else "not_expanded") if within else "after_window"
        rows.append(QCRow(label=label, status="scan", volume_ml=scan.volume_ml, abc2_ml=scan.abc2_ml, delta_ml=delta,
                          expansion=verdict, flags=row.flags, when=f"{scan.acquisition_datetime:%Y-%m-%d %H:%M}"
                          f" ({hours:.1f} h)", image=row.image))
    plot = ""
    if report.plot_path is not None:
        uri = thumbnail_data_uri(report.plot_path, width=900)
        plot = f'<p><img src="{uri}" alt="timeline plot"></p>' if uri else ""
    page = render_qc_page(
        rows,
        title=f"ichpipe timeline, patient {timeline.patient_id}",
        subtitle=f"expansion ({rule.name}: {rule.describe()}): {result.status.replace('_', ' ')}. {result.reason}",
        footer="Research use only; not for diagnosis. Hours from "
               + ("onset." if timeline.time_origin == "onset" else "the first scan (onset unknown)."),
        extra_html=plot,
    )
    data = page.encode("utf-8")

    def write(fh: BinaryIO) -> None:
        fh.write(data)

    return atomic_write(path, write)
