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
Slices are drawn uniformly, or by sampling group with ``source_mix``; the loss
is weighted per pixel by label confidence and ignore masks
(:mod:`ichpipe.pipeline.training.weighting`). ``init_checkpoint`` starts from
the weights of an ichpipe checkpoint of the same architecture (fine-tuning).
Validation loss and Dice are also recorded per sampling group
(``val_loss:<group>``, ``val_dice:<group>`` in ``history.csv``).
Written to ``OUT``:

``last.pt`` / ``best.pt``
    ichpipe checkpoints (:func:`ichpipe.models.checkpoint.save_checkpoint`) of the
    last epoch and of the best validation Dice (lowest training loss when
    there is no validation split). The network is trained on logits and
    saved with its sigmoid on, so inference reads probabilities.
``train_state.pt``
    Optimiser, epoch, history and the last weights, for ``--resume``
    (``torch.load(..., weights_only=True)``).
``epoch_NNN.pt``
    With ``save_every``, the checkpoint of every ``save_every``-th epoch.
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from monai.data import CacheDataset, DataLoader
from torch import nn
from tqdm import tqdm

from ichpipe.atomic import atomic_write
from ichpipe.dicom_io.window import WindowPreset
from ichpipe.errors import CheckpointError, UsageError
from ichpipe.models.checkpoint import save_checkpoint
from ichpipe.models.registry import get_model_spec
from ichpipe.pipeline.config.training_config import TrainingConfig
from ichpipe.pipeline.datasets import load_case
from ichpipe.pipeline.datasets.manifest import Manifest, ManifestEntry, check_patient_split, read_manifest
from ichpipe.pipeline.segment.slice_context import CONTEXT_CHANNELS
from ichpipe.pipeline.segment.torch_backend import resolve_device
from ichpipe.pipeline.training.curves import plot_curves, write_history_csv
from ichpipe.pipeline.training.initial_weights import load_initial_weights
from ichpipe.pipeline.training.transforms import (
    prepare_case_slices,
    select_slices,
    training_transforms,
    validation_transforms,
)
from ichpipe.pipeline.training.weighting import (
    LossFn,
    entry_group,
    parse_source_mix,
    sampling_weights,
    weighted_loss,
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

#: Validation slices kept from a case without hematoma (one per hematoma slice otherwise).
_VAL_MIN_NEGATIVES = 8

#: Settings a resumed run must share with the run it continues.
_RESUME_MUST_MATCH = (
    "model", "batch_size", "input_size", "crop_size", "loss", "optimizer", "window", "source_mix", "select_by",
    "slice_context_mm",
)


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
    as many without (at least 2 per case; a manifest column
    ``negatives_per_positive``, a number or ``all``, overrides it per case); validation keeps
    up to 8 slices of a case without hematoma and otherwise one slice
    without per slice with, capped at ``max_val_slices`` (hematoma slices
    first). Unlabelled cases are skipped with a log line.

    Returns the items and the number of cases used.
    """
    items: list[dict[str, Any]] = []
    used = 0
    for k, entry in enumerate(entries):
        case = load_case(entry)
        if not case.labelled:
            log.info("case %s has no mask; not used for training", entry.case_id)
            continue
        ratio = 1.0 if validation else _case_ratio(entry, config.negatives_per_positive)
        rng = np.random.default_rng([seed, k, 1 if validation else 0])
        indices = select_slices(
            case, negatives_per_positive=ratio, min_negatives=_VAL_MIN_NEGATIVES if validation else 2, rng=rng
        )
        prepared = prepare_case_slices(
            case, indices, window=window, scale=NORMALISATION["scale"], offset=NORMALISATION["offset"],
            input_size=(config.input_size, config.input_size), slice_context_mm=config.slice_context_mm or None,
        )
        group = entry_group(entry)
        items.extend({**item, "group": group} for item in prepared.items())
        used += 1
    if validation and len(items) > config.max_val_slices:
        positive = [it for it in items if float(it["label"].max()) >= 0.5]
        negative = [it for it in items if float(it["label"].max()) < 0.5]
        keep = positive[: config.max_val_slices]
        keep += negative[: max(0, config.max_val_slices - len(keep))]
        items = keep
    return items, used


def _case_ratio(entry: ManifestEntry, default: float) -> float:
    text = entry.extra.get("negatives_per_positive", "").strip()
    if not text:
        return default
    if text.lower() == "all":
        return math.inf
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise UsageError(
            f"Case {entry.case_id}: column 'negatives_per_positive' holds {text!r}; it must be a number >= 0 or 'all'."
        )
    return value


def _optimizer(name: str, params: Iterable[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.Adam(params, lr=lr)


def _validate(
    model: nn.Module, loader: DataLoader, device: torch.device, loss_fn: LossFn
) -> dict[str, tuple[float, float]]:
    """Mean (weighted) loss and pooled Dice (threshold 0.5), overall (key ``""``) and per sampling group."""
    model.eval()
    sums: dict[str, list[float]] = {}  # group -> [loss sum, n, inter, pred, true]
    with torch.inference_mode():
        for batch in loader:
            x, y, w = batch["image"].to(device), batch["label"].to(device), batch["weight"].to(device)
            logits = model(x)
            for i, group in enumerate(batch["group"]):
                loss = float(loss_fn(logits[i : i + 1], y[i : i + 1], w[i : i + 1]))
                pred = logits[i] > 0
                true = y[i] >= 0.5
                stats = (loss, 1.0, float((pred & true).sum()), float(pred.sum()), float(true.sum()))
                for key in ("", str(group)):
                    acc = sums.setdefault(key, [0.0] * 5)
                    for j, value in enumerate(stats):
                        acc[j] += value
    model.train()
    out: dict[str, tuple[float, float]] = {}
    for key, (loss_sum, n, inter, pred_sum, true_sum) in sums.items():
        dice = 1.0 if pred_sum + true_sum == 0 else 2.0 * inter / (pred_sum + true_sum)
        out[key] = (loss_sum / max(n, 1.0), dice)
    return out


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


def _read_manifests(paths: Sequence[Path]) -> tuple[Manifest, str]:
    """Read one or more manifests as one (patients checked across them) and their datasets' descriptions."""
    manifests = [read_manifest(p) for p in paths]
    entries = tuple(e for m in manifests for e in m.entries)
    try:
        check_patient_split(entries)
    except UsageError as exc:
        raise UsageError(f"Manifests {', '.join(str(p) for p in paths)} together: {exc}") from exc
    texts: list[str] = []
    for m in manifests:
        card = m.path.parent / "dataset.json" if m.path is not None else None
        description = ""
        if card is not None and card.is_file():
            try:
                description = str(json.loads(card.read_text(encoding="utf-8")).get("description", ""))
            except (OSError, ValueError) as exc:
                log.warning("cannot read %s: %s", card, exc)
        texts.append(description or f"Cases of {m.path.name if m.path else 'an in-memory manifest'}.")
    return Manifest(manifests[0].path, entries), " ".join(texts)


def _training_data_text(
    manifest: Manifest, description: str, n_cases: int, n_slices: int, config: TrainingConfig
) -> str:
    name = manifest.path.name if manifest.path else "in-memory manifest"
    text = description or f"Cases of {name}."
    if config.source_mix:
        text += f" Sampling shares: {', '.join(config.source_mix)}."
    return (
        f"{text} Training split: {n_cases} cases, {n_slices} slices ({name}). Recipe: {config.loss} loss,"
        f" {config.optimizer} lr {config.learning_rate:g}, batch {config.batch_size}, {config.input_size}x"
        f"{config.input_size} slices, {config.crop_size}x{config.crop_size} crops, shift/flip"
        f"{' + rotation/zoom/intensity jitter' if config.augment else ''} augmentation."
    )


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.default_rng([seed, epoch, 0xE90C]).integers(2**31 - 1))


def train_segmenter(
    manifest_path: Path | Sequence[Path],
    out_dir: Path,
    *,
    config: TrainingConfig,
    window: WindowPreset,
    model_overrides: Mapping[str, Any] | None = None,
    resume: bool = False,
    init_checkpoint: Path | None = None,
    progress: bool = False,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train ``config.model`` on the ``train`` split of a manifest, validating on its ``val`` split.

    Parameters
    ----------
    manifest_path:
        Manifest CSV (:mod:`ichpipe.pipeline.datasets.manifest`), or several, read as one (a
        patient may still be in one split only).
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
    init_checkpoint:
        Start from the weights of this ichpipe checkpoint (same model and arguments) instead of
        a random initialisation; ignored when resuming (the run's own weights are loaded).
    progress:
        Show a progress bar per epoch (on stderr).
    on_epoch:
        Called with each epoch's history row.

    Raises
    ------
    UsageError
        If the manifest has no labelled training case, ``out_dir`` already holds
        a run (without ``resume``), a resumed run's settings differ, or the
        ``source_mix`` does not fit the training groups.
    CheckpointError
        If the training state to resume, or ``init_checkpoint``, cannot be read or does not fit.
    """
    paths = [Path(manifest_path)] if isinstance(manifest_path, str | Path) else [Path(p) for p in manifest_path]
    if not paths:
        raise UsageError("Argument 'manifest_path' is empty; give at least one manifest.")
    manifest, description = _read_manifests(paths)
    where = ", ".join(str(p) for p in paths)
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
    overrides = dict(model_overrides or {})
    channels = CONTEXT_CHANNELS if config.slice_context_mm else 1
    if overrides.setdefault("in_channels", channels) != channels:
        raise UsageError(
            f"Model argument in_channels={overrides['in_channels']} does not fit slice_context_mm"
            f" {config.slice_context_mm:g} ({channels} channel(s)); leave in_channels out."
        )
    model, train_kwargs, save_kwargs = build_training_model(
        config.model, input_size=config.input_size, overrides=overrides
    )
    model = model.to(device)
    mix = parse_source_mix(config.source_mix)
    initial: dict[str, Any] | None = None
    if init_checkpoint is not None and not resume:
        initial = load_initial_weights(model, Path(init_checkpoint), name=config.model)
        log.info("initialised from %s (sha256 %s)", init_checkpoint, initial["sha256"][:12])
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
        initial = state.get("initial")
        log.info("resuming %s at epoch %d of %d", out_dir, start_epoch, config.epochs)

    train_entries = manifest.split("train")
    val_entries = manifest.split("val")
    if not train_entries:
        raise UsageError(f"Manifest {where} has no case in the 'train' split.")
    train_items, n_train_cases = load_slice_items(train_entries, config=config, window=window, seed=config.seed)
    if not train_items:
        raise UsageError(f"Manifest {where} has no labelled training slice.")
    val_items, _ = load_slice_items(val_entries, config=config, window=window, seed=config.seed, validation=True)
    if not val_items:
        log.warning("no validation split: best.pt is the epoch with the lowest training loss")
    weights = sampling_weights([str(item["group"]) for item in train_items], mix)
    crop = (config.crop_size, config.crop_size)
    transforms = training_transforms(crop_size=crop, positive_fraction=config.positive_fraction,
                                     augment=config.augment, brain_only_prob=config.brain_only_prob,
                                     slice_context=bool(config.slice_context_mm))
    train_ds = CacheDataset(train_items, transform=transforms, progress=False, num_workers=0)
    val_ds = CacheDataset(val_items, transform=validation_transforms(), progress=False, num_workers=0)
    val_loader = DataLoader(val_ds, batch_size=4, shuffle=False, num_workers=0)
    loss_fn = weighted_loss(config.loss)
    training_data = _training_data_text(manifest, description, n_train_cases, len(train_items), config)
    if initial is not None:
        training_data += f" Fine-tuned from {Path(initial['path']).name} (sha256 {initial['sha256'][:12]})."
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
        sampler: torch.utils.data.Sampler[int]
        if mix:
            sampler = torch.utils.data.WeightedRandomSampler(
                weights, num_samples=n_samples, replacement=True, generator=generator
            )
        else:
            sampler = torch.utils.data.RandomSampler(
                train_ds, replacement=n_samples > len(train_ds), num_samples=n_samples, generator=generator
            )
        loader = DataLoader(train_ds, batch_size=config.batch_size, sampler=sampler, num_workers=0, drop_last=True)
        losses: list[float] = []
        bar = tqdm(loader, desc=f"epoch {epoch}/{config.epochs}", leave=False, disable=not progress, unit="step")
        for batch in bar:
            x, y, w = batch["image"].to(device), batch["label"].to(device), batch["weight"].to(device)
            loss = loss_fn(model(x), y, w)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        bar.close()
        train_loss = float(np.mean(losses)) if losses else math.nan
        per_group = _validate(model, val_loader, device, loss_fn) if val_items else {}
        val_loss, val_dice = per_group.get("", (math.nan, math.nan))
        if not val_items:
            score = -train_loss
        else:
            score = -val_loss if config.select_by == "val_loss" else val_dice
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
        for group, (g_loss, g_dice) in sorted(per_group.items()):
            if group:
                record[f"val_loss:{group}"] = g_loss
                record[f"val_dice:{group}"] = g_dice
        metrics = {
            "epoch": epoch,
            "train_loss": train_loss,
            **({"val_dice": val_dice, "val_loss": val_loss} if val_items else {}),
            "n_train_slices": len(train_items),
            "n_val_slices": len(val_items),
            **{f"val_{kind}:{group}": value for group, pair in per_group.items() if group
               for kind, value in zip(("loss", "dice"), pair, strict=True)},
        }
        common: dict[str, Any] = {
            "name": config.model,
            "model_kwargs": save_kwargs,
            "input_size": (config.input_size, config.input_size),
            "window": window,
            "normalisation": NORMALISATION,
            "training_data": training_data,
            "slice_context_mm": config.slice_context_mm or None,
        }
        cpu_model = model.to("cpu") if device.type != "cpu" else model
        save_checkpoint(out_dir / LAST_NAME, cpu_model, metrics=metrics, **common)
        if improved:
            save_checkpoint(out_dir / BEST_NAME, cpu_model, metrics={**metrics, "best_epoch": epoch}, **common)
        if config.save_every and epoch % config.save_every == 0:
            save_checkpoint(out_dir / f"epoch_{epoch:03d}.pt", cpu_model, metrics=metrics, **common)
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
                **({"initial": initial} if initial is not None else {}),
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
