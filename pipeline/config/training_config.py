"""The ``training:`` section: defaults of ``ichpipe train seg`` (the seed's recipe, sized for CPU)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ichpipe.pipeline.config.inference_config import Device

__all__ = ["LossName", "OptimizerName", "SelectBy", "TrainingConfig"]

LossName = Literal["bce", "dice_bce"]
OptimizerName = Literal["rmsprop", "adam"]
SelectBy = Literal["val_dice", "val_loss"]


@dataclass(frozen=True)
class TrainingConfig:
    """How ``ichpipe train seg`` trains a segmenter.

    The seed's recipe is binary cross-entropy, RMSProp, learning rate 1e-4,
    batch 2, 50 epochs, shift and flip augmentation on 512x512 slices. The
    defaults keep all of it except the pixel grid: 256x256 slices and
    160x160 crops, so that the slim network trains on a CPU.

    Parameters
    ----------
    model:
        Registry name of the network.
    epochs:
        Epochs to train (a resumed run continues up to this number).
    batch_size:
        Slices (crops) per step.
    learning_rate:
        Optimiser learning rate.
    optimizer:
        ``rmsprop`` (seed) or ``adam``.
    loss:
        ``bce`` (seed: binary cross-entropy on logits) or ``dice_bce`` (soft Dice + BCE).
    input_size:
        Slices are resized to ``input_size x input_size`` (the checkpoint's
        ``input_size``; inference resizes to it too).
    crop_size:
        Training crops (a multiple of 16, at most ``input_size``).
    window:
        Name of the window preset (``windows.presets``) slices are shown through.
    positive_fraction:
        Share of crops centred on hematoma (when the slice has some).
    negatives_per_positive:
        Slices without hematoma kept per slice with hematoma, per case.
    steps_per_epoch:
        Optimiser steps per epoch; 0 = one pass over the training slices.
    max_val_slices:
        Validation slices at most (hematoma slices first).
    augment:
        Flips, small rotations/zooms and intensity jitter (the crop's shift is always on).
    seed:
        Seed of the model's initial weights, slice choice and augmentation.
    device:
        ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    threads:
        CPU threads for torch (0 keeps torch's default).
    source_mix:
        Share of the drawn training crops per sampling group, as ``GROUP=SHARE`` items
        (:mod:`ichpipe.pipeline.training.weighting`); empty: every slice equally often.
    select_by:
        What makes ``best.pt``: the highest validation Dice (``val_dice``) or the lowest
        validation loss (``val_loss``, weighted by label confidence like the training loss).
    save_every:
        Also keep the checkpoint of every ``save_every``-th epoch (``epoch_NNN.pt``); 0: only
        best and last.
    brain_only_prob:
        Share of training crops shown skull-stripped (everything outside the inner table at the
        window's bottom, as some exports are); 0 turns it off.
    slice_context_mm:
        0: the network sees one slice. Positive: it sees three (2.5D): the slices about this far
        below and above along the normal, and the slice
        (:mod:`ichpipe.pipeline.segment.slice_context`); the model is built with 3 input channels
        and the checkpoint records the distance.
    """

    model: str = "sa_cbam_unet_slim"
    epochs: int = 50
    batch_size: int = 2
    learning_rate: float = 1e-4
    optimizer: OptimizerName = "rmsprop"
    loss: LossName = "bce"
    input_size: int = 256
    crop_size: int = 160
    window: str = "brain"
    positive_fraction: float = 0.67
    negatives_per_positive: float = 0.5
    steps_per_epoch: int = 0
    max_val_slices: int = 300
    augment: bool = True
    seed: int = 0
    device: Device = "auto"
    threads: int = 0
    source_mix: tuple[str, ...] = ()
    select_by: SelectBy = "val_dice"
    save_every: int = 0
    brain_only_prob: float = 0.0
    slice_context_mm: float = 0.0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "input_size", "crop_size", "max_val_slices"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Argument '{name}' must be a positive integer; got {value!r}.")
        for name in ("steps_per_epoch", "seed", "threads", "save_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"Argument '{name}' must be a non-negative integer; got {value!r}.")
        if self.input_size % 16 or self.crop_size % 16:
            raise ValueError(
                f"Arguments 'input_size' and 'crop_size' must be multiples of 16; got {self.input_size} and"
                f" {self.crop_size}."
            )
        if self.crop_size > self.input_size:
            raise ValueError(
                f"Argument 'crop_size' ({self.crop_size}) must not exceed 'input_size' ({self.input_size})."
            )
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"Argument 'learning_rate' must be positive; got {self.learning_rate!r}.")
        if self.optimizer not in ("rmsprop", "adam"):
            raise ValueError(f"Argument 'optimizer' must be 'rmsprop' or 'adam'; got {self.optimizer!r}.")
        if self.loss not in ("bce", "dice_bce"):
            raise ValueError(f"Argument 'loss' must be 'bce' or 'dice_bce'; got {self.loss!r}.")
        if not (math.isfinite(self.slice_context_mm) and self.slice_context_mm >= 0):
            raise ValueError(f"Argument 'slice_context_mm' must be 0 or positive; got {self.slice_context_mm!r}.")
        if not 0.0 <= self.brain_only_prob <= 1.0:
            raise ValueError(f"Argument 'brain_only_prob' must be in [0, 1]; got {self.brain_only_prob!r}.")
        if not 0.0 <= self.positive_fraction <= 1.0:
            raise ValueError(f"Argument 'positive_fraction' must be in [0, 1]; got {self.positive_fraction!r}.")
        if not self.negatives_per_positive >= 0:
            raise ValueError(
                f"Argument 'negatives_per_positive' must not be negative; got {self.negatives_per_positive!r}."
            )
        if self.select_by not in ("val_dice", "val_loss"):
            raise ValueError(f"Argument 'select_by' must be 'val_dice' or 'val_loss'; got {self.select_by!r}.")
        if not isinstance(self.source_mix, tuple) or not all(isinstance(m, str) and "=" in m for m in self.source_mix):
            raise ValueError(
                "Argument 'source_mix' must be a list of GROUP=SHARE texts (e.g. phe-sich=0.4);"
                f" got {self.source_mix!r}."
            )
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"Argument 'device' must be 'auto', 'cpu' or 'cuda'; got {self.device!r}.")
