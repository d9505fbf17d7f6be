"""``ichpipe evaluate``: score checkpoints (and the threshold method) on a manifest's cases."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ichpipe.errors import UsageError
from ichpipe.pipeline.cli._common import config_option, echo_json, handle_errors, load_cli_config

if TYPE_CHECKING:  # the command imports its jobs inside, for a fast --help
    from ichpipe.pipeline.config import Config
    from ichpipe.pipeline.config.inference_config import InferenceConfig
    from ichpipe.pipeline.segment.blast_ct import BlastCtSegmenter

__all__ = ["evaluate"]


@click.command()
@click.option("--data", "data", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Manifest CSV of labelled cases (Dice, volumes): columns case_id, patient_id, split, format,"
                   " image, mask (paths relative to the CSV). format nifti = a NIfTI CT in HU + a NIfTI mask on the"
                   " same grid (PhysioNet CT-ICH ct_scans/ + masks/, HemSeg image/ + label/); dicom = study folder +"
                   " SEG or NIfTI mask; png = the seed's slice folders. Or use --boxes or --compare.")
@click.option("--boxes", "boxes", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Folder of PNG slices with VOC boxes (images/PPPP_SS.png, boxes/PPPP_SS.xml): box hit rate,"
                   " FP components outside boxes, FP slice rate.")
@click.option("--patients", default=None, help="--boxes: comma-separated patient ids (default: all).")
@click.option("--png-window", default="-20,100", show_default=True,
              help="--boxes: assumed HU of grey 0 and 255 (PHE-SICH: W120/L40, estimated from the images).")
@click.option("--png-pixel-mm", default=0.45, show_default=True, type=float, help="--boxes: assumed pixel size.")
@click.option("--png-slice-mm", default=5.0, show_default=True, type=float, help="--boxes: assumed slice distance.")
@click.option("--png-rotate", default=-1, show_default=True, type=int,
              help="--boxes: numpy.rot90 quarter turns that make the anterior point up.")
@click.option("--type", "case_type", default=None,
              help="Known haemorrhage type of the cases (iph, ivh, eah, mixed, none) for the per-type table"
                   " (--boxes default: iph).")
@click.option("--compare", "compare", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Two report.json of `ichpipe run` on one input (e.g. ichpipe and --segmenter blast_ct):"
                   " Dice, volumes, difference, per-type volumes. Give it twice.")
@click.option("--blast-weights", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="--segmenter blast_ct: folder of model_1.pt ... model_12.pt.")
@click.option("--blast-models", "blast_models", multiple=True, type=click.IntRange(1, 12),
              help="--segmenter blast_ct: models averaged (repeatable: one row each, e.g. 1 and 12).")
@click.option("--checkpoint", "checkpoints", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Checkpoint to evaluate (repeatable: one table row each, for ablations).")
@click.option("--label", "labels", multiple=True,
              help="Row name of each --checkpoint, in order [default: the checkpoint's model name].")
@click.option("--segmenter", "segmenters", multiple=True, type=click.Choice(["threshold", "blast_ct"]),
              help="Add the classical threshold segmenter, or the peer BLAST-CT v1 (--boxes, or --data cases in HU),"
                   " as a row.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test", "all"]),
              help="Which cases of the manifest to evaluate.")
@click.option("--out", "out", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for cases.csv, summary.csv and table.md.")
@click.option("--save-masks", is_flag=True,
              help="--boxes: also write each row's masks, OUT/masks/ROW/PPPP.npz in the PNG frame (teacher masks"
                   " for ichpipe train data --phe-sich --phe-teacher).")
@click.option("--flags", "with_flags", is_flag=True,
              help="--data: also run every quality check of `ichpipe run` on each case in HU and count the wrong"
                   " volumes that carry no flag (table 'Quality flags against wrong volumes', cases.csv 'flags').")
@click.option("--wrong-volume", default="1.0,0.25", show_default=True,
              help="--flags: a volume is wrong when its error is >= ML mL and >= SHARE of the true volume (ML,SHARE).")
@click.option("--by-source", is_flag=True, help="Also summarise per case source (phantom, ct-real-...).")
@click.option("--title", default="Evaluation", show_default=True, help="Title of the Markdown tables.")
@click.option("--device", default=None, type=click.Choice(["auto", "cpu", "cuda"]), help="Where networks run.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary rows as JSON instead of Markdown.")
@config_option
@handle_errors
def evaluate(
    data: Path | None,
    boxes: Path | None,
    patients: str | None,
    png_window: str,
    png_pixel_mm: float,
    png_slice_mm: float,
    png_rotate: int,
    case_type: str | None,
    compare: tuple[Path, ...],
    blast_weights: Path | None,
    blast_models: tuple[int, ...],
    checkpoints: tuple[Path, ...],
    labels: tuple[str, ...],
    segmenters: tuple[str, ...],
    split: str,
    out: Path | None,
    save_masks: bool,
    with_flags: bool,
    wrong_volume: str,
    by_source: bool,
    title: str,
    device: str | None,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """Score segmenters: on labelled cases (--data), on real slices with boxes (--boxes), or two runs (--compare).

    --data: Dice, IoU, RVD, volume RMSE/MAE (mL) and ABC/2 error of each
    segmenter on the cases of the manifest. Volumes come from each case's
    geometry (the DICOM geometry for DICOM cases; the mask's NIfTI header for
    NIfTI pairs, one slice step, so only as exact as the conversion). Prints
    the seed's Tables 1-2 as Markdown (or JSON); --out also writes the
    per-case and summary CSV.

    --boxes: box hit rate, false-positive components outside the boxes and
    false-positive slice rate per patient and pooled, with CPU seconds, under
    the stated --png-* assumptions (PNGs carry no HU, spacing or orientation).

    --compare A B: agreement of two runs on one volume when no reference mask
    exists (neither is the truth): Dice, both volumes, the difference and each
    run's per-type volumes.

    --data --flags: also every quality check of `ichpipe run` on each case
    in HU, and per segmenter the wrong volumes (--wrong-volume) that were
    flagged and those that were silent.
    """
    modes = sum(x for x in (data is not None, boxes is not None, bool(compare)))
    if modes != 1:
        raise UsageError("Give exactly one of --data MANIFEST, --boxes DIR or --compare A --compare B.")
    if with_flags and data is None:
        raise UsageError("--flags goes with --data MANIFEST (cases in HU with a reference mask).")
    if compare:
        _compare(compare, case_type, config_path, as_json)
        return
    if boxes is not None:
        _boxes(boxes, patients=patients, png=(png_window, png_pixel_mm, png_slice_mm, png_rotate),
               case_type=case_type or "iph", checkpoints=checkpoints, labels=labels, segmenters=segmenters,
               blast=(blast_weights, blast_models), device=device, out=out, title=title, as_json=as_json,
               config_path=config_path, save_masks=save_masks)
        return
    if save_masks:
        raise UsageError("--save-masks goes with --boxes DIR and --out DIR.")
    from ichpipe.pipeline.evaluation.flag_scoring import flags_markdown, parse_wrong_volume, score_flags

    try:
        tolerance = parse_wrong_volume(wrong_volume)
    except ValueError as exc:
        raise UsageError(f"--wrong-volume must be ML,SHARE with ML > 0 and SHARE >= 0 (e.g. 1.0,0.25): {exc}") from exc
    if data is None:  # narrowed for the type checker
        return
    from ichpipe.pipeline.datasets.manifest import read_manifest
    from ichpipe.pipeline.evaluation import (
        EvaluatedSegmenter,
        cases_csv,
        evaluate_cases,
        markdown_tables,
        network_row,
        summarise,
        summary_csv,
        threshold_row,
    )
    from ichpipe.pipeline.evaluation.kinds import detection_by_kind, kinds_markdown
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
    if "blast_ct" in segmenters:  # HU cases only (PNG slices: --boxes)
        rows += [EvaluatedSegmenter(name, seg, None, seg.describe()) for name, seg in
                 _blast_rows((blast_weights, blast_models), config, inference)]
    show = sys.stderr.isatty()

    def progress(done: int, total: int, case_id: str) -> None:
        if show:
            click.echo(f"\r{done}/{total} {case_id}    ", err=True, nl=done == total)

    window = config.windows.get(config.windows.default)
    analysed = dataclasses.replace(config, inference=inference) if with_flags else None
    results = evaluate_cases(entries, rows, window=window, measure=config.measure, quality=analysed,
                             progress=progress)
    summary = summarise(results, by_source=by_source)
    kinds = detection_by_kind([(r.model, r.kind_recall) for r in results])
    flag_scores = score_flags(results, tolerance=tolerance) if with_flags else []
    table = markdown_tables(summary, title=title) + ("\n" + kinds_markdown(kinds) if kinds else "")
    if flag_scores:
        table += "\n" + flags_markdown(flag_scores, tolerance=tolerance)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "cases.csv", cases_csv(results), what="per-case evaluation CSV")
        write_text(out / "summary.csv", summary_csv(summary), what="evaluation summary CSV")
        write_text(out / "table.md", table, what="evaluation tables")
    if as_json:
        payload: dict[str, Any] = {"split": split, "summary": [dataclasses.asdict(r) for r in summary],
                                   "by_kind": [dataclasses.asdict(k) for k in kinds]}
        if with_flags:
            payload["flags"] = {"wrong_volume": dataclasses.asdict(tolerance),
                                "scores": [{**dataclasses.asdict(s), "n_silent": s.n_silent} for s in flag_scores]}
        echo_json(payload)
    else:
        click.echo(table)


def _blast_rows(blast: tuple[Path | None, tuple[int, ...]], config: Config,
                inference: InferenceConfig) -> list[tuple[str, BlastCtSegmenter]]:
    """One BLAST-CT segmenter per requested model count (``blast_ct xN``), sharing the loaded models."""
    from ichpipe.pipeline.segment.blast_ct import WEIGHTS_HINT, BlastCtSegmenter

    weights, counts = blast[0], sorted(set(blast[1] or (config.blast_ct.models,)))
    if weights is None:
        raise UsageError(f"--segmenter blast_ct needs --blast-weights DIR. {WEIGHTS_HINT}")
    full = BlastCtSegmenter(weights, config=dataclasses.replace(config.blast_ct, models=max(counts)),
                            inference=inference, anatomy=config.anatomy)
    return [(f"blast_ct x{n}", full.with_models(n)) for n in counts]


def _compare(reports: tuple[Path, ...], case_type: str | None, config_path: Path | None, as_json: bool) -> None:
    from ichpipe.pipeline.evaluation.agreement import compare_reports

    if len(reports) != 2:
        raise UsageError(f"--compare needs exactly two report.json files; got {len(reports)}.")
    config = load_cli_config(config_path)
    result = compare_reports(reports[0], reports[1], case_type=case_type, measure=config.measure)
    if as_json:
        echo_json(result)
        return
    names = [result[k]["segmenter"].get("name") for k in ("a", "b")]
    click.echo(f"{names[0]} vs {names[1]} on {result['input']} (type: {case_type or 'not given'}); neither mask is"
               " a reference.")
    click.echo(f"Dice {result['dice']:.3f}; {names[0]} {result['a_ml']:.2f} mL, {names[1]} {result['b_ml']:.2f} mL,"
               f" difference {result['difference_ml']:+.2f} mL")
    for k, name in zip(("a", "b"), names, strict=True):
        types = result[k]["types"]
        if types:
            parts = ", ".join(f"{t} {v:.2f}" for t, v in types["volume_ml"].items())
            extra = ", ".join(f"{t} {v:.2f}" for t, v in types["not_counted_ml"].items())
            click.echo(f"{name} by type (mL): {parts}; not counted: {extra or 'none'}")


def _boxes(root: Path, *, patients: str | None, png: tuple[str, float, float, int], case_type: str,
           checkpoints: tuple[Path, ...], labels: tuple[str, ...], segmenters: tuple[str, ...],
           blast: tuple[Path | None, tuple[int, ...]], device: str | None, out: Path | None, title: str,
           as_json: bool, config_path: Path | None, save_masks: bool = False) -> None:
    from ichpipe.pipeline.datasets.phe_sich.phe_teacher import save_teacher_masks
    from ichpipe.pipeline.evaluation.box_slices import (
        PngAssumptions,
        box_markdown,
        list_box_patients,
        segment_box_patient,
    )
    from ichpipe.pipeline.evaluation.tables import write_text

    config = load_cli_config(config_path)
    try:
        lo, hi = (float(v) for v in png[0].split(","))
        assumptions = PngAssumptions(window_hu=(lo, hi), pixel_mm=png[1], slice_mm=png[2], rotate=png[3])
    except ValueError as exc:
        raise UsageError(f"--png-window must be LO,HI in HU and the --png-* sizes positive: {exc}") from exc
    ids = [p.strip() for p in patients.split(",") if p.strip()] if patients else None
    cohort = list_box_patients(root, patients=ids)
    inference = config.inference if device is None else dataclasses.replace(
        config.inference, device=device  # type: ignore[arg-type]
    )
    rows: list[tuple[str, Any]] = []
    if labels and len(labels) != len(checkpoints):
        raise UsageError(f"Give one --label per --checkpoint ({len(checkpoints)}); got {len(labels)}.")
    for i, path in enumerate(checkpoints):
        from ichpipe.pipeline.segment.inference import NetworkSegmenter

        seg = NetworkSegmenter(path, config=inference, anatomy=config.anatomy)
        rows.append((labels[i] if labels else seg.name, seg))
    if "threshold" in segmenters:
        from ichpipe.pipeline.segment.threshold import ThresholdSegmenter

        rows.append(("threshold", ThresholdSegmenter(config.threshold, anatomy=config.anatomy)))
    if "blast_ct" in segmenters:
        rows += _blast_rows(blast, config, inference)
    if not rows:
        raise UsageError("Nothing to evaluate: give --checkpoint, --segmenter threshold or --segmenter blast_ct.")
    if save_masks and out is None:
        raise UsageError("--save-masks needs --out DIR (the masks go to OUT/masks/ROW/PPPP.npz).")
    show = sys.stderr.isatty()
    scores = []
    for name, seg in rows:
        folder = None if out is None else out / "masks" / re.sub(r"[^A-Za-z0-9._-]+", "_", name)

        def keep(patient: Any, masks: Any, folder: Path | None = folder) -> None:
            if folder is not None:
                save_teacher_masks(folder / f"{patient.patient_id}.npz", masks)

        for k, patient in enumerate(cohort, start=1):
            scores.append(segment_box_patient(patient, seg, assumptions, name=name,
                                              on_masks=keep if save_masks else None))
            if show:
                click.echo(f"\r{name}: {k}/{len(cohort)} {patient.patient_id}    ", err=True, nl=k == len(cohort))
    table = box_markdown(scores, assumptions, title=title if title != "Evaluation" else "Box-level detection",
                         case_type=case_type)
    payload = {"assumptions": dataclasses.asdict(assumptions), "type": case_type,
               "scores": [s.to_dict() for s in scores]}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "boxes.md", table, what="box-level detection table")
        write_text(out / "boxes.json", json.dumps(payload, indent=1, default=str) + "\n",
                   what="box-level detection results")
    if as_json:
        echo_json(payload)
    else:
        click.echo(table)
