"""The batch run's QC page: ``OUT/batch-runs/<run id>.html`` (see :mod:`ichpipe.pipeline.outputs.qc_html`).

One card and one table row per study of the run, processed now or earlier
(skipped as done: its outputs are still there), with the key image, volume,
ABC/2, quality flags and, for a follow-up, the change since the baseline and
the expansion verdict; failed studies show their error.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import BinaryIO

from ichpipe.atomic import atomic_write
from ichpipe.pipeline.batch.summary import BatchReport
from ichpipe.pipeline.outputs.qc_html import QCRow, render_qc_page, row_from_report, short_uids

__all__ = ["write_qc_page"]

log = logging.getLogger(__name__)

_SHOWN = ("processed", "delivered", "failed", "skipped", "skipped_failed")


def _row(item_label: str, status: str, output_dir: str | None, error: str | None) -> QCRow:
    folder = Path(output_dir) if output_dir else None
    report_path = folder / "report.json" if folder else None
    if report_path is not None and report_path.is_file():
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("QC page: cannot read %s: %s", report_path, exc)
        else:
            return row_from_report(report, label=item_label, status=status, folder=folder,
                                   link=report_path.as_uri())
    return QCRow(label=item_label, status=status, flags=[error] if error else [])


def write_qc_page(report: BatchReport, folder: Path) -> Path:
    """Write the run's QC page into ``folder`` (atomically) and return its path.

    Raises
    ------
    ichpipe.errors.OutputError
        If the file cannot be written.
    """
    rows = [_row(short_uids(i.label), i.status, i.output_dir, i.error) for i in report.items if i.status in _SHOWN]
    counts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in report.counts.items() if n) or "no studies"
    page = render_qc_page(
        rows,
        title=f"ichpipe batch {report.run_id}",
        subtitle=f"{counts}; segmenter {report.segmenter or '?'}; "
                 + (f"case list {report.case_list}" if report.case_list else f"inbox {report.inbox}"),
        footer="Research use only; not for diagnosis. Volumes are planimetric, measured on each series' own"
               " geometry; ABC/2 is the bedside estimate.",
    )
    data = page.encode("utf-8")

    def write(fh: BinaryIO) -> None:
        fh.write(data)

    path = atomic_write(folder / f"{report.run_id}.html", write)
    report.summary_files["html"] = str(path)
    return path
