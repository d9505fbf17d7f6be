"""``ichpipe train``: the training commands, one click group.

``train data`` writes a synthetic labelled dataset and its manifest;
``train seg`` trains a segmentation network on a manifest. Further
subcommands (e.g. ``train predictor``) are added to :data:`train` with
``train.add_command`` or the ``@train.command()`` decorator in their own module.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ichpipe.errors import UsageError
from ichpipe.pipeline.cli._common import config_option, echo_json, handle_errors, load_cli_config

__all__ = ["parse_model_args", "train", "train_data", "train_seg"]


@click.group()
def train() -> None:
    """Make training data and train models."""


@train.command("data")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Dataset folder to write (keep it out of git: generated/ is ignored).")
@click.option("--n", "n", default=100, show_default=True, type=click.IntRange(min=0),
              help="Phantom studies.")
@click.option("--n-real", default=0, show_default=True, type=click.IntRange(min=0),
              help="Studies with lesions inserted into the real CTs of ../shared/data/ct-real.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
              help="Seed of every choice; another seed gives other patients.")
@click.option("--size", default=512, show_default=True, type=click.IntRange(64, 1024),
              help="Matrix (rows = columns) of the phantom studies.")
@click.option("--format", "fmt", default="nifti", show_default=True, type=click.Choice(["nifti", "dicom"]),
              help="Phantom studies as NIfTI image + mask, or DICOM series + DICOM SEG.")
@click.option("--shapes", default="train", show_default=True, type=click.Choice(["train", "val", "builtin"]),
              help="HemSeg-500 subset of the lesion shapes (val for held-out data), or built-in blobs.")
@click.option("--val-fraction", default=0.1, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Share of patients in the validation split.")
@click.option("--test-fraction", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Share of patients in the test split (1 for a held-out evaluation set).")
@click.option("--real", "real_backgrounds", default="ge,philips", show_default=True,
              help="Real backgrounds to use, comma-separated (ge, philips; ge-skull-base: the GE head with "
                   "lesions on its posterior fossa and temporal base only).")
@click.option("--real-split", default=None, type=click.Choice(["train", "val", "test"]),
              help="Split of the real-background patients (default: drawn like the others).")
@click.option("--n-extra-axial", default=0, show_default=True, type=click.IntRange(min=0),
              help="Studies with subdural, epidural, intraventricular (or, by --lesion-mix, subarachnoid) blood "
                   "(phantom heads and the real GE head).")
@click.option("--lesion-mix", default=None, metavar="KIND=SHARE,...",
              help="Share of each kind in the extra-axial studies [default: subdural=0.55,epidural=0.2,"
                   "intraventricular=0.25]; subarachnoid=SHARE adds blood in the sulci (the real GE head's; "
                   "a phantom's cortical CSF pockets).")
@click.option("--subdural-stages", default=None, metavar="STAGE=SHARE,...",
              help="Shares of acute, subacute, chronic and mixed subdurals [default: acute=0.6,subacute=0.25,"
                   "chronic=0.05,mixed=0.1].")
@click.option("--subacute-fraction", default=0.25, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Share of intraparenchymal blood drawn subacute (42-58 HU) instead of acute (60-85 HU).")
@click.option("--blend-fraction", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Share of the acute shaped haematomas given a less dense side of 35-50 HU (the blend sign),"
                   " counted as haematoma.")
@click.option("--blend-group", default=None, metavar="NAME",
              help="Give the studies with a blend side the training sampling group NAME (the manifest's"
                   " sampling_group column), so that `train seg --mix NAME=SHARE` sets their share.")
@click.option("--touch-skull-fraction", default=0.3, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Share of the intraparenchymal haematomas placed against the inner table (lobar bleeds cut by"
                   " it) instead of inside the brain.")
@click.option("--slice-spacing-mm", type=click.FloatRange(0.5, 10.0), default=None,
              help="Slice spacing of the phantom-head studies (same head length; default: drawn 4, 5 or 6 mm):"
                   " thin-slice test sets.")
@click.option("--noise-scale", type=click.FloatRange(0.0, 10.0, min_open=True), default=1.0, show_default=True,
              help="Multiply the phantom-head studies' drawn noise (a thin slice's: about sqrt(5 / thickness)).")
@click.option("--extra-axial-real-fraction", default=0.25, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Share of the extra-axial studies painted into the real GE head.")
@click.option("--phe-sich", "phe_sich", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Instead of synthetic studies: build the real-domain dataset from this PHE-SICH-CT-IDS folder"
                   " (e.g. ../shared/data/phe-sich-ct-ids-dev): window estimate, derived labels with confidence,"
                   " patient-level split (--seed).")
@click.option("--phe-teacher", "phe_teacher", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="--phe-sich: folder of teacher masks PPPP.npz (ichpipe evaluate --boxes --save-masks): the"
                   " training patients get teacher pseudo-labels constrained by the boxes.")
@click.option("--phe-holdout", "phe_holdout", default=None, metavar="IDS",
              help="--phe-sich: comma-separated training patients kept for model selection (split val); the"
                   " drawn validation patients become split test.")
@click.option("--phe-window", "phe_window", default=None, metavar="PRESET",
              help="--phe-sich: window preset of config.yaml the slices are re-expressed in: the window of the"
                   " network they train [default: brain, W80/L40, the default network's; extra_axial, W120/L50,"
                   " for the extra-axial network].")
@click.option("--overwrite", is_flag=True, help="Replace a dataset written in --out before.")
@click.option("--json", "as_json", is_flag=True, help="Print the dataset summary (counts, manifest) as JSON.")
@handle_errors
def train_data(
    out: Path,
    n: int,
    n_real: int,
    seed: int,
    size: int,
    fmt: str,
    shapes: str,
    val_fraction: float,
    test_fraction: float,
    real_backgrounds: str,
    real_split: str | None,
    n_extra_axial: int,
    lesion_mix: str | None,
    subdural_stages: str | None,
    subacute_fraction: float,
    blend_fraction: float,
    blend_group: str | None,
    touch_skull_fraction: float,
    slice_spacing_mm: float | None,
    noise_scale: float,
    extra_axial_real_fraction: float,
    phe_sich: Path | None,
    phe_teacher: Path | None,
    phe_holdout: str | None,
    phe_window: str | None,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Write synthetic labelled head-CT studies and their manifest.csv into OUT.

    Phantom heads with phantom hematomas, hematomas shaped like the HemSeg-500
    expert masks, intraventricular blood and calcifications; optionally lesions
    inserted into real CT backgrounds; with --n-extra-axial, subdural,
    epidural and intraventricular blood with mass effect. Without
    ../shared/data the shapes fall back to built-in blobs (a warning says so).

    With --phe-sich DIR it builds the real-domain dataset instead (PHE-SICH
    slices re-windowed to W80/L40 or --phe-window, labels derived inside the boxes, weights
    and ignore masks for the label noise; with --phe-teacher, a teacher's
    masks constrained by the boxes on the training patients); see MODEL_CARD.md.
    """
    if phe_sich is not None:
        holdout = tuple(p.strip() for p in (phe_holdout or "").split(",") if p.strip())
        _phe_data(phe_sich, out, seed=seed, teacher=phe_teacher, holdout=holdout, window=phe_window or "brain",
                  overwrite=overwrite, as_json=as_json)
        return
    if phe_teacher is not None or phe_holdout is not None or phe_window is not None:
        raise UsageError("--phe-teacher, --phe-holdout and --phe-window go with --phe-sich DIR.")
    from ichpipe.pipeline.synthetic.recipes import DEFAULT_LESION_MIX, DEFAULT_SUBDURAL_STAGES, GeneratorOptions
    from ichpipe.pipeline.synthetic.training_data import generate_dataset

    names = tuple(b.strip() for b in real_backgrounds.split(",") if b.strip())

    def items(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
        return default if text is None else tuple(m.strip() for m in text.split(",") if m.strip())

    try:
        options = GeneratorOptions(
            n=n, n_real=n_real, seed=seed, size=size, format=fmt, shapes=shapes,  # type: ignore[arg-type]
            val_fraction=val_fraction, test_fraction=test_fraction, real_backgrounds=names,
            real_split=real_split,  # type: ignore[arg-type]
            n_extra_axial=n_extra_axial, lesion_mix=items(lesion_mix, DEFAULT_LESION_MIX),
            subdural_stages=items(subdural_stages, DEFAULT_SUBDURAL_STAGES),
            extra_axial_real_fraction=extra_axial_real_fraction, subacute_fraction=subacute_fraction,
            slice_spacing_mm=slice_spacing_mm, noise_scale=noise_scale, blend_fraction=blend_fraction,
            blend_group=blend_group, touch_skull_fraction=touch_skull_fraction,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    show = sys.stderr.isatty()

    def progress(done: int, total: int, case_id: str) -> None:
        if show:
            click.echo(f"\r{done}/{total} {case_id}    ", err=True, nl=done == total)

    manifest = generate_dataset(out, options, overwrite=overwrite, progress=progress)
    summary = json.loads((manifest.parent / "dataset.json").read_text(encoding="utf-8"))
    result = {"manifest": str(manifest), "counts": summary["counts"], "shape_source": summary["shape_source"],
              "real_backgrounds": summary["real_backgrounds"]}
    if as_json:
        echo_json(result)
    else:
        counts = ", ".join(f"{k} {v}" for k, v in result["counts"].items())
        click.echo(f"wrote {manifest} ({counts}); shapes: {result['shape_source']}")


def _phe_data(root: Path, out: Path, *, seed: int, teacher: Path | None, holdout: tuple[str, ...], window: str,
              overwrite: bool, as_json: bool) -> None:
    from ichpipe.pipeline.datasets.phe_sich import build_phe_dataset

    presets = load_cli_config(None).windows.presets
    if window not in presets:
        raise UsageError(f"--phe-window must be one of the window presets of config.yaml ({', '.join(presets)});"
                         f" got {window!r}.")
    show = sys.stderr.isatty()
    result = build_phe_dataset(out, root=root, seed=seed, teacher_dir=teacher, holdout=holdout,
                               target_window=presets[window], overwrite=overwrite,
                               progress=(lambda line: click.echo(line, err=True)) if show else None)
    summary = {
        "manifest": str(result.manifest),
        "window": {"width_hu": result.window[0], "level_hu": result.window[1], "level_sd_hu": result.window[2]},
        "roles": result.roles,
        "patients": {k: list(v) for k, v in result.patients.items()},
    }
    if as_json:
        echo_json(summary)
    else:
        roles = "; ".join(f"{split}: " + ", ".join(f"{k} {v}" for k, v in sorted(r.items()))
                          for split, r in sorted(result.roles.items()))
        click.echo(f"wrote {result.manifest} (window W{result.window[0]:g}/L{result.window[1]:g}; {roles})")


def parse_model_args(values: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs to constructor arguments; values are JSON (numbers, true/false, lists) or text.

    Raises
    ------
    UsageError
        If a pair has no ``=`` or an empty key.
    """
    out: dict[str, Any] = {}
    for item in values:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--model-arg must be KEY=VALUE (e.g. base_channels=16); got {item!r}.")
        try:
            out[key.strip()] = json.loads(text)
        except ValueError:
            out[key.strip()] = text
    return out


@train.command("seg")
@click.option("--data", "data", required=True, multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Manifest CSV (train and val splits are used); repeat to train on several datasets at once.")
@click.option("--model", default=None, help="Registered segmentation network [config: training.model].")
@click.option("--model-arg", "model_args", multiple=True, metavar="KEY=VALUE",
              help="Constructor argument overriding the registry default (repeatable), e.g. base_channels=16.")
@click.option("--epochs", default=None, type=click.IntRange(min=1), help="Epochs [config: training.epochs].")
@click.option("--out", "out", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder for checkpoints and curves [default: ichpipe-out/train/<model>].")
@click.option("--batch-size", default=None, type=click.IntRange(min=1), help="[config: training.batch_size]")
@click.option("--lr", "learning_rate", default=None, type=click.FloatRange(min=0.0, min_open=True),
              help="Learning rate [config: training.learning_rate].")
@click.option("--loss", default=None, type=click.Choice(["bce", "dice_bce"]), help="[config: training.loss]")
@click.option("--optimizer", default=None, type=click.Choice(["rmsprop", "adam"]),
              help="[config: training.optimizer]")
@click.option("--input-size", default=None, type=click.IntRange(min=16), help="[config: training.input_size]")
@click.option("--crop-size", default=None, type=click.IntRange(min=16), help="[config: training.crop_size]")
@click.option("--steps-per-epoch", default=None, type=click.IntRange(min=0),
              help="0: one pass over the training slices [config: training.steps_per_epoch].")
@click.option("--seed", default=None, type=click.IntRange(min=0), help="[config: training.seed]")
@click.option("--device", default=None, type=click.Choice(["auto", "cpu", "cuda"]), help="[config: training.device]")
@click.option("--threads", default=None, type=click.IntRange(min=0), help="CPU threads [config: training.threads].")
@click.option("--no-augment", is_flag=True, help="Only the crop's shift; no flips or jitter.")
@click.option("--mix", "source_mix", default=None, metavar="GROUP=SHARE,...",
              help="Share of drawn crops per sampling group, e.g. phe-sich=0.4,extra-axial=0.3,phantom=0.3"
                   " [config: training.source_mix].")
@click.option("--select-by", default=None, type=click.Choice(["val_dice", "val_loss"]),
              help="What makes best.pt [config: training.select_by].")
@click.option("--save-every", default=None, type=click.IntRange(min=0),
              help="Also keep epoch_NNN.pt every N epochs [config: training.save_every].")
@click.option("--brain-only-prob", default=None, type=click.FloatRange(0.0, 1.0),
              help="Share of crops shown skull-stripped [config: training.brain_only_prob].")
@click.option("--slice-context-mm", default=None, type=click.FloatRange(min=0.0),
              help="2.5D: also show the slices about this far below and above (3 input channels); 0: one slice"
                   " [config: training.slice_context_mm].")
@click.option("--init", "init_checkpoint", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Fine-tune: start from this ichpipe checkpoint's weights (same model and arguments).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last finished epoch.")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON on stdout.")
@config_option
@handle_errors
def train_seg(
    data: tuple[Path, ...],
    model: str | None,
    model_args: tuple[str, ...],
    epochs: int | None,
    out: Path | None,
    batch_size: int | None,
    learning_rate: float | None,
    loss: str | None,
    optimizer: str | None,
    input_size: int | None,
    crop_size: int | None,
    steps_per_epoch: int | None,
    seed: int | None,
    device: str | None,
    threads: int | None,
    no_augment: bool,
    source_mix: str | None,
    select_by: str | None,
    save_every: int | None,
    brain_only_prob: float | None,
    slice_context_mm: float | None,
    init_checkpoint: Path | None,
    resume: bool,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """Train a segmentation network on the manifest DATA (seed recipe: BCE, RMSProp 1e-4, batch 2).

    Writes best.pt and last.pt (ichpipe checkpoints), train_state.pt (for
    --resume), history.csv and curves.png into --out. Uses CUDA when present.
    Per-slice label confidence and ignore masks of the manifest (PHE-SICH) weight
    the loss; --mix sets the share of each data source; --init fine-tunes a checkpoint
    (a one-slice checkpoint can start a --slice-context-mm run: its first convolution is
    widened to the three slices, the neighbours' weights zero).
    """
    from dataclasses import replace

    from ichpipe.pipeline.config.training_config import TrainingConfig
    from ichpipe.pipeline.training.train_seg import train_segmenter

    config = load_cli_config(config_path)
    base = getattr(config, "training", None)
    settings = base if isinstance(base, TrainingConfig) else TrainingConfig()
    changes: dict[str, Any] = {
        "model": model, "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
        "loss": loss, "optimizer": optimizer, "input_size": input_size, "crop_size": crop_size,
        "steps_per_epoch": steps_per_epoch, "seed": seed, "device": device, "threads": threads,
        "select_by": select_by, "save_every": save_every, "brain_only_prob": brain_only_prob,
        "slice_context_mm": slice_context_mm,
        "source_mix": None if source_mix is None else tuple(m.strip() for m in source_mix.split(",") if m.strip()),
    }
    try:
        settings = replace(settings, **{k: v for k, v in changes.items() if v is not None})
        if no_augment:
            settings = replace(settings, augment=False)
        window = config.windows.get(settings.window)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    run_dir = out or Path("ichpipe-out") / "train" / settings.model

    def report(record: dict[str, Any]) -> None:
        dice = record.get("val_dice")
        click.echo(
            f"epoch {record['epoch']}/{settings.epochs}: loss {record['train_loss']:.4f}"
            + (f", val Dice {dice:.4f}" if dice is not None else "")
            + f" ({record['seconds']:.0f} s)",
            err=True,
        )

    result = train_segmenter(
        list(data), run_dir, config=settings, window=window, model_overrides=parse_model_args(model_args),
        resume=resume, init_checkpoint=init_checkpoint, progress=sys.stderr.isatty(), on_epoch=report,
    )
    summary = {
        "out": str(result.out_dir),
        "best_checkpoint": str(result.best_checkpoint),
        "last_checkpoint": str(result.last_checkpoint),
        "best_epoch": result.best_epoch,
        "best_val_dice": result.best_val_dice,
        "epochs_run": result.epochs_run,
        "seconds_per_epoch": result.seconds_per_epoch,
        "n_train_slices": result.n_train_slices,
        "n_val_slices": result.n_val_slices,
    }
    if as_json:
        echo_json(summary)
    else:
        click.echo(
            f"best {result.best_checkpoint} (epoch {result.best_epoch}, val Dice {result.best_val_dice}),"
            f" {result.seconds_per_epoch:.1f} s per epoch"
        )
