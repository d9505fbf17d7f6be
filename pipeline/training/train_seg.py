"""Train a registered segmentation network on a manifest (``ichpipe train seg``).

The seed's recipe: binary cross-entropy (on logits), RMSProp, learning rate
1e-4, batch 2, 50 epochs, shift and flip augmentation; soft Dice + BCE is
available. Slices go through the inference pre-processing
(:mod:`ichpipe.pipeline.training.transforms`), MONAI ``CacheDataset`` and
``DataLoader`` hold them, and the random transforms crop, shift, flip and
jitter them.

Each epoch: one pass over the training slices (or ``steps_per_epoch``
steps), then the validation Dice (all validation slices with hematoma and as
many without, whole resized slices, threshold 0.5; pooled over slices).
Written to ``OUT``:

``last.pt`` / ``best.pt``
    ichpipe checkpoints (:func:`ichpipe.models.checkpoint.save_checkpoint`) of the
    last epoch and of the best validation Dice (lowest training loss when
    there is no validation split). The network is trained on logits and
    saved with its sigmoid on, so inference reads probabilities.
``train_state.pt``
    Optimiser, epoch, history and the last weights, for ``--resume``
    (``torch.load(..., weights_only=True)``).
``history.csv``, ``curves.png``
    Loss and Dice per epoch.

Runs are seeded: weights from ``seed``, and each epoch's shuffling and
augmentation from ``(seed, epoch)``, so a resumed run draws what the
uninterrupted run would have drawn.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from monai.data import CacheDataset, DataLoader
from monai.losses import DiceLoss
from torch import nn
from tqdm import tqdm

from ichpipe.atomic import atomic_write
from ichpipe.dicom_io.window import WindowPreset
from ichpipe.errors import CheckpointError, UsageError
from ichpipe.models.checkpoint import save_checkpoint
from ichpipe.models.registry import get_model_spec
from ichpipe.pipeline.config.training_config import TrainingConfig
from ichpipe.pipeline.datasets import load_case
from ichpipe.pipeline.datasets.manifest import Manifest, ManifestEntry, read_manifest
from ichpipe.pipeline.segment.inference import resolve_device
from ichpipe.pipeline.training.curves import plot_curves, write_history_csv
from ichpipe.pipeline.training.transforms import (
    prepare_case_slices,
    select_slices,
    training_transforms,
    validation_transforms,
)

__all__ = [
    "BEST_NAME",
    "LAST_NAME",
    "NORMALISATION",
    "STATE_NAME",
    "TrainResult",
    "build_training_model",
    "load_slice_items",
    "train_segmenter",
]

log = logging.getLogger(__name__)

BEST_NAME = "best.pt"
LAST_NAME = "last.pt"
STATE_NAME = "train_state.pt"
_STATE_FORMAT = "ichpipe-train-state"
_STATE_VERSION = 1

#: How windowed grey levels (0-255) become the network input; stored in every checkpoint.
NORMALISATION: dict[str, float] = {"scale": 1.0 / 255.0, "offset": 0.0}

#: Settings a resumed run must share with the run it continues.
_RESUME_MUST_MATCH = ("model", "batch_size", "input_size", "crop_size", "loss", "optimizer", "window")


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced.

    Attributes
    ----------
    out_dir:
        The run folder.
    best_checkpoint, last_checkpoint:
        The two checkpoints.
    history:
        One dict per epoch (see :data:`ichpipe.pipeline.training.curves.HISTORY_COLUMNS`).
    best_epoch:
        Epoch of ``best.pt``.
    best_val_dice:
        Its validation Dice (``None`` without a validation split).
    epochs_run:
        Epochs trained by this call (0 when a resumed run was already complete).
    n_train_slices, n_val_slices:
        Slices in the two sets.
    """

    out_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    history: tuple[dict[str, Any], ...]
    best_epoch: int
    best_val_dice: float | None
    epochs_run: int
    n_train_slices: int
    n_val_slices: int

    @property
    def seconds_per_epoch(self) -> float:
        """Mean wall time of the epochs in the history (training + validation + saving)."""
        times = [float(r["seconds"]) for r in self.history if r.get("seconds") is not None]
        return float(np.mean(times)) if times else math.nan


def build_training_model(
    name: str, *, input_size: int, overrides: Mapping[str, Any] | None = None
) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """Build registry model ``name`` for training.

    Returns the module (built with ``sigmoid=False``: it outputs logits), the
    constructor arguments it was built with, and those to save in the
    checkpoint (the same with ``sigmoid=True``, so inference gets probabilities).

    Raises
    ------
    UsageError
        If ``name`` is not a segmentation model, has no ``sigmoid`` switch, or
        an override is not one of its arguments.
    """
    spec = get_model_spec(name)
    if spec.task != "segmentation":
        raise UsageError(f"Argument 'name' is {name!r}, an {spec.task} model; `train seg` trains segmenters.")
    if "sigmoid" not in spec.defaults:
        raise UsageError(f"Model {name!r} has no 'sigmoid' switch; it cannot be trained on logits here.")
    kwargs = dict(overrides or {})
    if "input_size" in spec.defaults:
        kwargs.setdefault("input_size", input_size)
    try:
        train_kwargs = spec.resolve_kwargs({**kwargs, "sigmoid": False})
        save_kwargs = spec.resolve_kwargs({**kwargs, "sigmoid": True})
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return spec.builder(**train_kwargs), train_kwargs, save_kwargs


def load_slice_items(
    entries: Iterable[ManifestEntry],
    *,
    config: TrainingConfig,
    window: WindowPreset,
    seed: int,
    validation: bool = False,
) -> tuple[list[dict[str, Any]], int]:
    """Read cases and turn their chosen slices into MONAI data dicts.

    Training keeps every slice with hematoma and ``negatives_per_positive``
    as many without (at least 2 per case); validation keeps one slice
    without per slice with, capped at ``max_val_slices`` (hematoma slices
    first). Unlabelled cases are skipped with a log line.

    Returns the items and the number of cases used.
    """
    items: list[dict[str, Any]] = []
    used = 0
    ratio = 1.0 if validation else config.negatives_per_positive
    for k, entry in enumerate(entries):
        case = load_case(entry)
        if not case.labelled:
            log.info("case %s has no mask; not used for training", entry.case_id)
            continue
        rng = np.random.default_rng([seed, k, 1 if validation else 0])
        indices = select_slices(case, negatives_per_positive=ratio, min_negatives=2, rng=rng)
        prepared = prepare_case_slices(
            case, indices, window=window, scale=NORMALISATION["scale"], offset=NORMALISATION["offset"],
            input_size=(config.input_size, config.input_size),
        )
        items.extend(prepared.items())
        used += 1
    if validation and len(items) > config.max_val_slices:
        positive = [it for it in items if float(it["label"].max()) >= 0.5]
        negative = [it for it in items if float(it["label"].max()) < 0.5]
        keep = positive[: config.max_val_slices]
        keep += negative[: max(0, config.max_val_slices - len(keep))]
        items = keep
    return items, used


def _loss_fn(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if name == "bce":
        return lambda logits, target: F.binary_cross_entropy_with_logits(logits, target)
    dice = DiceLoss(sigmoid=True, batch=True)

    def dice_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, target) + dice(logits, target)

    return dice_bce


def _optimizer(name: str, params: Iterable[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.Adam(params, lr=lr)


def _validate(
    model: nn.Module, loader: DataLoader, device: torch.device, loss_fn: Callable[..., torch.Tensor]
) -> tuple[float, float]:
    """Mean loss and pooled Dice (threshold 0.5) over the validation slices."""
    model.eval()
    inter = pred_sum = true_sum = 0.0
    losses: list[float] = []
    with torch.inference_mode():
        for batch in loader:
            x, y = batch["image"].to(device), batch["label"].to(device)
            logits = model(x)
            losses.append(float(loss_fn(logits, y)) * x.shape[0])
            pred = logits > 0
            true = y >= 0.5
            inter += float((pred & true).sum())
            pred_sum += float(pred.sum())
            true_sum += float(true.sum())
    model.train()
    n = len(loader.dataset)  # type: ignore[arg-type]
    dice = 1.0 if pred_sum + true_sum == 0 else 2.0 * inter / (pred_sum + true_sum)
    return (float(np.sum(losses)) / max(n, 1), dice)


def _save_state(path: Path, state: dict[str, Any]) -> None:
    def write(handle: BinaryIO) -> None:
        torch.save(state, handle)

    atomic_write(path, write, what="training state")


def _load_state(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, ValueError) as exc:
        raise CheckpointError(f"Training state {path} cannot be read ({type(exc).__name__}: {exc}).") from exc
    if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
        raise CheckpointError(f"{path} is not an ichpipe training state; start a new run in another folder.")
    if int(state.get("format_version", 0)) > _STATE_VERSION:
        raise CheckpointError(f"{path} was written by a newer ichpipe; upgrade to resume it.")
    return state


def _training_data_text(manifest: Manifest, n_cases: int, n_slices: int, config: TrainingConfig) -> str:
    description = ""
    if manifest.path is not None:
        card = manifest.path.parent / "dataset.json"
        if card.is_file():
            try:
                description = str(json.loads(card.read_text(encoding="utf-8")).get("description", ""))
            except (OSError, ValueError) as exc:
                log.warning("cannot read %s: %s", card, exc)
    name = manifest.path.name if manifest.path else "in-memory manifest"
    text = description or f"Cases of {name}."
    return (
        f"{text} Training split: {n_cases} cases, {n_slices} slices ({name}). Recipe: {config.loss} loss,"
        f" {config.optimizer} lr {config.learning_rate:g}, batch {config.batch_size}, {config.input_size}x"
        f"{config.input_size} slices, {config.crop_size}x{config.crop_size} crops, shift/flip"
        f"{' + rotation/zoom/intensity jitter' if config.augment else ''} augmentation."
    )


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.default_rng([seed, epoch, 0xE90C]).integers(2**31 - 1))


def train_segmenter(
    manifest_path: Path,
    out_dir: Path,
    *,
    config: TrainingConfig,
    window: WindowPreset,
    model_overrides: Mapping[str, Any] | None = None,
    resume: bool = False,
    progress: bool = False,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train ``config.model`` on the ``train`` split of a manifest, validating on its ``val`` split.

    Parameters
    ----------
    manifest_path:
        Manifest CSV (:mod:`ichpipe.pipeline.datasets.manifest`).
    out_dir:
        Run folder (created). Without ``resume`` it must not hold a run already.
    config:
        The recipe (:class:`~ichpipe.pipeline.config.training_config.TrainingConfig`).
    window:
        HU window the slices are shown through (stored in the checkpoints).
    model_overrides:
        Constructor arguments that differ from the registry defaults (e.g. ``base_channels``).
    resume:
        Continue the run in ``out_dir`` from its last finished epoch up to ``config.epochs``.
    progress:
        Show a progress bar per epoch (on stderr).
    on_epoch:
        Called with each epoch's history row.

    Raises
    ------
    UsageError
        If the manifest has no labelled training case, ``out_dir`` already holds
        a run (without ``resume``), or a resumed run's settings differ.
    CheckpointError
        If the training state to resume cannot be read.
    """
    manifest = read_manifest(manifest_path)
    out_dir = Path(out_dir)
    state_path = out_dir / STATE_NAME
    if not resume and state_path.exists():
        raise UsageError(
            f"Output folder {out_dir} already holds a training run; pass --resume to continue it or choose"
            " another folder."
        )
    if resume and not state_path.is_file():
        raise UsageError(f"Nothing to resume: {state_path} does not exist. Run without --resume first.")
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)

    torch.manual_seed(config.seed)
    model, train_kwargs, save_kwargs = build_training_model(
        config.model, input_size=config.input_size, overrides=model_overrides
    )
    model = model.to(device)
    optimizer = _optimizer(config.optimizer, model.parameters(), config.learning_rate)
    history: list[dict[str, Any]] = []
    best_score, best_epoch, start_epoch = -math.inf, 0, 1
    if resume:
        state = _load_state(state_path)
        saved = dict(state.get("config", {}))
        changed = [k for k in _RESUME_MUST_MATCH if saved.get(k) != getattr(config, k)]
        if changed or state.get("model_kwargs") != train_kwargs:
            raise UsageError(
                f"The run in {out_dir} was made with other settings ({', '.join(changed) or 'model arguments'});"
                " resume it with the same settings, or start a new run in another folder."
            )
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        history = [dict(r) for r in state["history"]]
        best_score, best_epoch = float(state["best_score"]), int(state["best_epoch"])
        start_epoch = int(state["epoch"]) + 1
        log.info("resuming %s at epoch %d of %d", out_dir, start_epoch, config.epochs)

    train_entries = manifest.split("train")
    val_entries = manifest.split("val")
    if not train_entries:
        raise UsageError(f"Manifest {manifest_path} has no case in the 'train' split.")
    train_items, n_train_cases = load_slice_items(train_entries, config=config, window=window, seed=config.seed)
    if not train_items:
        raise UsageError(f"Manifest {manifest_path} has no labelled training slice.")
    val_items, _ = load_slice_items(val_entries, config=config, window=window, seed=config.seed, validation=True)
    if not val_items:
        log.warning("no validation split: best.pt is the epoch with the lowest training loss")
    crop = (config.crop_size, config.crop_size)
    transforms = training_transforms(crop_size=crop, positive_fraction=config.positive_fraction,
                                     augment=config.augment)
    train_ds = CacheDataset(train_items, transform=transforms, progress=False, num_workers=0)
    val_ds = CacheDataset(val_items, transform=validation_transforms(), progress=False, num_workers=0)
    val_loader = DataLoader(val_ds, batch_size=4, shuffle=False, num_workers=0)
    loss_fn = _loss_fn(config.loss)
    training_data = _training_data_text(manifest, n_train_cases, len(train_items), config)
    n_samples = config.steps_per_epoch * config.batch_size if config.steps_per_epoch else len(train_ds)
    plain_config = asdict(config)
    training_source = manifest.path.name if manifest.path else "in-memory manifest"

    epochs_run = 0
    model.train()
    for epoch in range(start_epoch, config.epochs + 1):
        started = time.perf_counter()
        epoch_seed = _epoch_seed(config.seed, epoch)
        torch.manual_seed(epoch_seed)
        transforms.set_random_state(seed=epoch_seed)
        generator = torch.Generator().manual_seed(epoch_seed)
        sampler = torch.utils.data.RandomSampler(
            train_ds, replacement=n_samples > len(train_ds), num_samples=n_samples, generator=generator
        )
        loader = DataLoader(train_ds, batch_size=config.batch_size, sampler=sampler, num_workers=0, drop_last=True)
        losses: list[float] = []
        bar = tqdm(loader, desc=f"epoch {epoch}/{config.epochs}", leave=False, disable=not progress, unit="step")
        for batch in bar:
            x, y = batch["image"].to(device), batch["label"].to(device)
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        bar.close()
        train_loss = float(np.mean(losses)) if losses else math.nan
        val_loss, val_dice = _validate(model, val_loader, device, loss_fn) if val_items else (math.nan, math.nan)
        score = val_dice if val_items else -train_loss
        improved = score > best_score
        if improved:
            best_score, best_epoch = score, epoch
        record: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": None if math.isnan(val_loss) else val_loss,
            "val_dice": None if math.isnan(val_dice) else val_dice,
            "seconds": 0.0,
            "learning_rate": config.learning_rate,
        }
        metrics = {
            "epoch": epoch,
            "train_loss": train_loss,
            **({"val_dice": val_dice, "val_loss": val_loss} if val_items else {}),
            "n_train_slices": len(train_items),
            "n_val_slices": len(val_items),
        }
        common: dict[str, Any] = {
            "name": config.model,
            "model_kwargs": save_kwargs,
            "input_size": (config.input_size, config.input_size),
            "window": window,
            "normalisation": NORMALISATION,
            "training_data": training_data,
        }
        cpu_model = model.to("cpu") if device.type != "cpu" else model
        save_checkpoint(out_dir / LAST_NAME, cpu_model, metrics=metrics, **common)
        if improved:
            save_checkpoint(out_dir / BEST_NAME, cpu_model, metrics={**metrics, "best_epoch": epoch}, **common)
        model = cpu_model.to(device)
        record["seconds"] = time.perf_counter() - started
        history.append(record)
        _save_state(
            state_path,
            {
                "format": _STATE_FORMAT,
                "format_version": _STATE_VERSION,
                "epoch": epoch,
                "config": plain_config,
                "model_kwargs": train_kwargs,
                "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer_state": optimizer.state_dict(),
                "history": history,
                "best_score": best_score,
                "best_epoch": best_epoch,
            },
        )
        write_history_csv(out_dir / "history.csv", history)
        plot_curves(out_dir / "curves.png", history, title=f"{config.model}, {training_source}")
        epochs_run += 1
        if on_epoch:
            on_epoch(record)
    if not (out_dir / BEST_NAME).is_file():
        raise UsageError(f"No epoch was trained in {out_dir}: 'epochs' ({config.epochs}) is not above the last run.")
    best_dice = None
    if val_items and best_epoch:
        best_dice = next((r["val_dice"] for r in history if r["epoch"] == best_epoch), None)
    return TrainResult(
        out_dir=out_dir,
        best_checkpoint=out_dir / BEST_NAME,
        last_checkpoint=out_dir / LAST_NAME,
        history=tuple(history),
        best_epoch=best_epoch,
        best_val_dice=best_dice,
        epochs_run=epochs_run,
        n_train_slices=len(train_items),
        n_val_slices=len(val_items),
    )
