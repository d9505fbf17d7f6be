"""Stand-ins for networks in the segmenter tests: a tiny random checkpoint and fake runners."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ichpipe.models.checkpoint import save_checkpoint
from ichpipe.models.registry import build_model

__all__ = ["KWARGS", "Grey", "Seen", "TwoLevel", "tiny_checkpoint"]

KWARGS = {"base_channels": 4, "num_heads": 2, "input_size": 64}


def tiny_checkpoint(path: Path, window: dict[str, float]) -> Path:
    """A random-weight ``sa_cbam_unet_slim`` (64 x 64) saved at ``path`` with ``window``."""
    torch.manual_seed(0)
    net = build_model("sa_cbam_unet_slim", **KWARGS)
    return save_checkpoint(path, net, name="sa_cbam_unet_slim", model_kwargs=KWARGS, input_size=(64, 64),
                           window=window, normalisation={"scale": 1 / 255, "offset": 0.0},
                           training_data="random weights (test)")


class Grey:
    """Stands in for a network: 0.9 where the input shows ``grey`` or any of ``more`` (0-1), else 0."""

    def __init__(self, grey: float | None, *more: float) -> None:
        self.greys, self.images = ([] if grey is None else [grey, *more]), 0

    def run(self, images: np.ndarray) -> np.ndarray:
        self.images += len(images)
        shown = np.zeros(images[:, :1].shape, dtype=bool)
        for grey in self.greys:
            shown |= np.abs(images[:, :1] - grey) < 0.02
        return np.where(shown, 0.9, 0.0).astype(np.float32)


class TwoLevel:
    """Stands in for a network: 0.9 where the input shows ``sure``, 0.4 where it shows ``loose``, else 0."""

    def __init__(self, sure: float, loose: float) -> None:
        self.sure, self.loose = sure, loose

    def run(self, images: np.ndarray) -> np.ndarray:
        grey = images[:, :1]
        return np.where(np.abs(grey - self.sure) < 0.02, 0.9,
                        np.where(np.abs(grey - self.loose) < 0.02, 0.4, 0.0)).astype(np.float32)


class Seen:
    """Stands in for a network: 'probability' = input grey level; every batch it is shown is kept."""

    def __init__(self) -> None:
        self.images: list[np.ndarray] = []

    def run(self, images: np.ndarray) -> np.ndarray:
        self.images.append(images.copy())
        return images[:, :1].copy()
