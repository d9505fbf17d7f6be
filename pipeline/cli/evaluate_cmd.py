"""``ichpipe evaluate``: score checkpoints (and the threshold method) on a manifest's cases."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from ichpipe.errors import UsageError
from ichpipe.pipeline.cli._common import config_option, echo_json, handle_errors, load_cli_config

__all__ = ["evaluate"]


@click.command()
@click.option("--data", "data", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Manifest CSV of the cases: columns case_id, patient_id, split, format, image, mask (paths"
                   " relative to the CSV). format nifti = a NIfTI CT in HU + a NIfTI mask on the same grid"
                   " (PhysioNet CT-ICH ct_scans/ + masks/, HemSeg image/ + label/); dicom = study folder +"
                   " SEG or NIfTI mask; png = the seed's slice folders.")
@click.option("--checkpoint", "checkpoints", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Checkpoint to evaluate (repeatable: one table row each, for ablations).")
@click.option("--label", "labels", multiple=True,
              help="Row name of each --checkpoint, in order [default: the checkpoint's model name].")
@click.option("--segmenter", "segmenters", multiple=True, type=click.Choice(["threshold"]),
              help="Add the classical threshold segmenter as a row.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test", "all"]),
              help="Which cases of the manifest to evaluate.")
@click.option("--out", "out", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for cases.csv, summary.csv and table.md.")
@click.option("--by-source", is_flag=True, help="Also summarise per case source (phantom, ct-real-...).")
@click.option("--title", default="Evaluation", show_default=True, help="Title of the Markdown tables.")
@click.option("--device", default=None, type=click.Choice(["auto", "cpu", "cuda"]), help="Where networks run.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary rows as JSON instead of Markdown.")
@config_option
@handle_errors
def evaluate(
    data: Path,
    checkpoints: tuple[Path, ...],
    labels: tuple[str, ...],
    segmenters: tuple[str, ...],
    split: str,
    out: Path | None,
    by_source: bool,
    title: str,
    device: str | None,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """Dice, IoU, RVD, volume RMSE/MAE (mL) and ABC/2 error of each segmenter on the cases of DATA.

    Volumes come from each case's geometry (the DICOM geometry for DICOM
    cases; the mask's NIfTI header for NIfTI pairs, one slice step, so only as
    exact as the conversion). Prints the seed's Tables 1-2 as Markdown (or
    JSON); --out also writes the per-case and summary CSV.
    """
    from ichpipe.pipeline.datasets.manifest import read_manifest
    from ichpipe.pipeline.evaluation import (
        cases_csv,
        evaluate_cases,
        markdown_tables,
        network_row,
        summarise,
        summary_csv,
        threshold_row,
    )
    from ichpipe.pipeline.evaluation.tables import write_text

    if labels and len(labels) != len(checkpoints):
        raise UsageError(f"Give one --label per --checkpoint ({len(checkpoints)}); got {len(labels)}.")
    config = load_cli_config(config_path)
    manifest = read_manifest(data)
    entries = manifest.entries if split == "all" else manifest.split(split)  # type: ignore[arg-type]
    if not entries:
        raise UsageError(f"Manifest {data} has no case in the '{split}' split; use --split to choose another.")
    inference = config.inference if device is None else dataclasses.replace(
        config.inference, device=device  # type: ignore[arg-type]  # a click.Choice of the Device names
    )
    rows = [
        network_row(path, label=labels[i] if labels else None, inference=inference, anatomy=config.anatomy)
        for i, path in enumerate(checkpoints)
    ]
    names = [r.label for r in rows]
    if len(set(names)) != len(names):
        rows = [dataclasses.replace(r, label=f"{r.label} ({p.stem})") for r, p in zip(rows, checkpoints, strict=True)]
    if "threshold" in segmenters:
        rows.append(threshold_row(config.threshold, anatomy=config.anatomy))
    show = sys.stderr.isatty()

    def progress(done: int, total: int, case_id: str) -> None:
        if show:
            click.echo(f"\r{done}/{total} {case_id}    ", err=True, nl=done == total)

    window = config.windows.get(config.windows.default)
    results = evaluate_cases(entries, rows, window=window, measure=config.measure, progress=progress)
    summary = summarise(results, by_source=by_source)
    table = markdown_tables(summary, title=title)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "cases.csv", cases_csv(results), what="per-case evaluation CSV")
        write_text(out / "summary.csv", summary_csv(summary), what="evaluation summary CSV")
        write_text(out / "table.md", table, what="evaluation tables")
    if as_json:
        echo_json({"split": split, "summary": [dataclasses.asdict(r) for r in summary]})
    else:
        click.echo(table)
