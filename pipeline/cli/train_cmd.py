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
              help="Real backgrounds to use, comma-separated (ge, philips).")
@click.option("--real-split", default=None, type=click.Choice(["train", "val", "test"]),
              help="Split of the real-background patients (default: drawn like the others).")
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
    overwrite: bool,
    as_json: bool,
) -> None:
    """Write synthetic labelled head-CT studies and their manifest.csv into OUT.

    Phantom heads with phantom hematomas, hematomas shaped like the HemSeg-500
    expert masks, intraventricular blood and calcifications; optionally lesions
    inserted into real CT backgrounds. Without ../shared/data the shapes fall
    back to built-in blobs (a warning says so).
    """
    from ichpipe.pipeline.synthetic.recipes import GeneratorOptions
    from ichpipe.pipeline.synthetic.training_data import generate_dataset

    names = tuple(b.strip() for b in real_backgrounds.split(",") if b.strip())
    try:
        options = GeneratorOptions(
            n=n, n_real=n_real, seed=seed, size=size, format=fmt, shapes=shapes,  # type: ignore[arg-type]
            val_fraction=val_fraction, test_fraction=test_fraction, real_backgrounds=names,
            real_split=real_split,  # type: ignore[arg-type]
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
@click.option("--data", "data", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Manifest CSV (train and val splits are used).")
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
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last finished epoch.")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON on stdout.")
@config_option
@handle_errors
def train_seg(
    data: Path,
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
    resume: bool,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """Train a segmentation network on the manifest DATA (seed recipe: BCE, RMSProp 1e-4, batch 2).

    Writes best.pt and last.pt (ichpipe checkpoints), train_state.pt (for
    --resume), history.csv and curves.png into --out. Uses CUDA when present.
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
        data, run_dir, config=settings, window=window, model_overrides=parse_model_args(model_args),
        resume=resume, progress=sys.stderr.isatty(), on_epoch=report,
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
