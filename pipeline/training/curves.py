"""Training history: a CSV per epoch and a loss / Dice curve PNG, both written atomically."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ichpipe.atomic import atomic_write

__all__ = ["HISTORY_COLUMNS", "plot_curves", "write_history_csv"]

#: Columns of ``history.csv``.
HISTORY_COLUMNS: tuple[str, ...] = ("epoch", "train_loss", "val_loss", "val_dice", "seconds", "learning_rate")


def write_history_csv(path: Path, history: Sequence[Mapping[str, Any]]) -> Path:
    """Write one row per epoch (columns :data:`HISTORY_COLUMNS`, then any other keys sorted; empty where missing)."""
    extra = sorted({k for row in history for k in row} - set(HISTORY_COLUMNS))
    columns = (*HISTORY_COLUMNS, *extra)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in history:
        cells = []
        for column in columns:
            value = row.get(column)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                cells.append("")
            elif isinstance(value, float):
                cells.append(f"{value:.6g}")
            else:
                cells.append(str(value))
        writer.writerow(cells)
    data = buffer.getvalue().encode("utf-8")
    return atomic_write(path, lambda fh: fh.write(data), what="training history")


def plot_curves(path: Path, history: Sequence[Mapping[str, Any]], *, title: str = "") -> Path:
    """Plot training/validation loss and validation Dice per epoch as a PNG.

    Raises
    ------
    ValueError
        If ``history`` is empty.
    OutputError
        If the file cannot be written.
    """
    if not history:
        raise ValueError("Argument 'history' is empty; there is nothing to plot.")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    epochs = [int(r["epoch"]) for r in history]

    def series(key: str) -> list[float]:
        return [float(r[key]) if r.get(key) is not None else math.nan for r in history]

    fig = Figure(figsize=(8, 3.4), dpi=110)
    ax_loss, ax_dice = fig.subplots(1, 2)
    ax_loss.plot(epochs, series("train_loss"), "o-", ms=3, label="training")
    val_loss = series("val_loss")
    if any(not math.isnan(v) for v in val_loss):
        ax_loss.plot(epochs, val_loss, "s-", ms=3, label="validation")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.set_yscale("log")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    dice = series("val_dice")
    ax_dice.plot(epochs, dice, "o-", ms=3, color="tab:green")
    ax_dice.set_xlabel("epoch")
    ax_dice.set_ylabel("validation Dice")
    ax_dice.set_ylim(0.0, 1.0)
    ax_dice.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    data = buffer.getvalue()
    return atomic_write(path, lambda fh: fh.write(data), what="training curves PNG")
