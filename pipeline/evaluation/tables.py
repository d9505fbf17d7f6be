"""Evaluation tables: per-case and summary CSV, and Markdown shaped like the seed's Tables 1-2.

Seed 000's Table 1 has one row per model and the columns RVD, Dice and IoU;
its Table 2 the columns volume RMSE and MAE (mL). :func:`markdown_tables`
writes both, plus one combined table with the ABC/2 errors, for every case
group.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Sequence
from pathlib import Path

from ichpipe.atomic import atomic_write
from ichpipe.pipeline.evaluation.evaluate import ABC2_REFERENCE, CaseResult, SummaryRow

__all__ = ["cases_csv", "markdown_tables", "summary_csv", "write_text"]


def _cell(value: object, digits: int = 3) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.{digits}f}"
    return str(value)


def _csv(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v, 6) for v in row])
    return buffer.getvalue()


def _flags_cell(flags: Sequence[str] | None) -> str:
    """``a;b``, ``none`` when the checks ran and raised nothing, empty when they did not run."""
    if flags is None:
        return ""
    return ";".join(flags) or "none"


def cases_csv(results: Sequence[CaseResult]) -> str:
    """Per-case CSV text: one row per case and segmenter, volumes in mL; ``recall:KIND`` per kind of blood.

    ``flags``: the quality flag codes ``run`` raises (``evaluate --flags``), ``none``, or empty when not run.
    """
    names = [f.name for f in dataclasses.fields(CaseResult) if f.name not in ("kind_recall", "flags")]
    kinds = sorted({k for r in results for k in r.kind_recall})
    header = [*names, "error_ml", "flags", *(f"recall:{k}" for k in kinds)]
    return _csv(header, [[*(getattr(r, n) for n in names), r.error_ml, _flags_cell(r.flags),
                          *(r.kind_recall.get(k, "") for k in kinds)] for r in results])


def summary_csv(rows: Sequence[SummaryRow]) -> str:
    """Summary CSV text: one row per segmenter and case group."""
    names = [f.name for f in dataclasses.fields(SummaryRow)]
    return _csv(names, [[getattr(r, n) for n in names] for r in rows])


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def markdown_tables(rows: Sequence[SummaryRow], *, title: str = "Evaluation") -> str:
    """Markdown: per case group, Table 1 (RVD, Dice, IoU), Table 2 (volume RMSE, MAE) and a combined table.

    The ABC/2 reference row (the formula on the true mask) appears in the
    volume tables only.
    """
    out = [f"# {title}", ""]
    groups = list(dict.fromkeys(r.group for r in rows))
    for group in groups:
        chosen = [r for r in rows if r.group == group]
        models = [r for r in chosen if r.model != ABC2_REFERENCE]
        n = max((r.n_cases for r in chosen), default=0)
        out += [f"## Cases: {group} (n = {n})", ""]
        out += ["Table 1. Segmentation (mean over cases; RVD over cases with hematoma).", ""]
        out += _table(
            ["Model", "RVD", "Dice", "IoU"],
            [[r.model, _cell(r.rvd), _cell(r.dice), _cell(r.iou)] for r in models],
        )
        out += ["", "Table 2. Hematoma volume (mL).", ""]
        out += _table(
            ["Model", "RMSE", "MAE", "Bias"],
            [[r.model, _cell(r.rmse_ml), _cell(r.mae_ml), _cell(r.bias_ml)] for r in chosen],
        )
        out += ["", "All metrics.", ""]
        out += _table(
            ["Model", "n", "Dice (SD)", "IoU", "RVD", "Vol. RMSE", "Vol. MAE", "ABC/2 MAE", "s / case"],
            [
                [
                    r.model, str(r.n_cases),
                    "" if math.isnan(r.dice) else f"{r.dice:.3f} ({r.dice_sd:.3f})",
                    _cell(r.iou), _cell(r.rvd), _cell(r.rmse_ml, 2), _cell(r.mae_ml, 2), _cell(r.abc2_mae_ml, 2),
                    _cell(r.seconds_per_case, 1),
                ]
                for r in chosen
            ],
        )
        out.append("")
    out += [
        "Dice and IoU per case in 3D; RVD = |V_pred - V_true| / V_true; volumes from the series geometry"
        " (per-slice thickness along the normal). ABC/2 MAE: automated ABC/2 of the predicted mask against the"
        f" true volume; '{ABC2_REFERENCE}': the formula applied to the true mask.",
        "",
    ]
    return "\n".join(out)


def write_text(path: Path, text: str, *, what: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda fh: fh.write(data), what=what)
