"""Slice context (2.5D): neighbour choice, inference with three channels, widening a one-slice network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ichpipe.errors import CheckpointError
from ichpipe.models.checkpoint import load_model, save_checkpoint
from ichpipe.models.onnx_export import export_checkpoint_onnx
from ichpipe.models.registry import build_model
from ichpipe.pipeline.config.inference_config import InferenceConfig
from ichpipe.pipeline.segment.inference import NetworkSegmenter
from ichpipe.pipeline.segment.slice_context import neighbour_indices
from ichpipe.pipeline.training.initial_weights import widen_input_channels
from ichpipe.pipeline.training.transforms import RandSwapNeighboursd

KWARGS = {"base_channels": 4, "num_heads": 2, "input_size": 64}
WINDOW = {"width": 80.0, "level": 40.0}
NORM = {"scale": 1 / 255, "offset": 0.0}


def _checkpoint(path: Path, *, channels: int, context_mm: float | None, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    kwargs = {**KWARGS, "in_channels": channels}
    net = build_model("sa_cbam_unet_slim", **kwargs)
    return save_checkpoint(path, net, name="sa_cbam_unet_slim", model_kwargs=kwargs, input_size=(64, 64),
                           window=WINDOW, normalisation=NORM, training_data="random weights (test)",
                           slice_context_mm=context_mm)


# --------------------------------------------------------------------------- which neighbour


def test_neighbours_are_about_the_distance_away_on_each_side() -> None:
    thick = neighbour_indices(np.arange(6) * 5.0, context_mm=5.0)
    assert thick.tolist() == [[0, 1], [0, 2], [1, 3], [2, 4], [3, 5], [4, 5]]
    thin = neighbour_indices(np.arange(20) * 0.625, context_mm=5.0)
    assert thin[10].tolist() == [2, 18] and thin[3].tolist() == [0, 11] and thin[19].tolist() == [11, 19]
    uneven = neighbour_indices([0.0, 4.0, 5.0, 10.0, 20.0], context_mm=5.0)
    assert uneven[0].tolist() == [0, 2] and uneven[3].tolist() == [2, 4] and uneven[4].tolist() == [3, 4]
    assert neighbour_indices([7.5], context_mm=5.0).tolist() == [[0, 0]]


def test_neighbours_refuse_bad_arguments() -> None:
    with pytest.raises(ValueError, match="'context_mm' must be positive"):
        neighbour_indices([0.0, 5.0], context_mm=0.0)
    with pytest.raises(ValueError, match="'offsets_mm' must be 1-D"):
        neighbour_indices(np.zeros((2, 2)), context_mm=5.0)


def test_swap_augmentation_turns_the_context_upside_down_only() -> None:
    image = torch.arange(3, dtype=torch.float32)[:, None, None].expand(3, 2, 2).clone()
    swap = RandSwapNeighboursd("image", prob=1.0)
    assert swap({"image": image})["image"][:, 0, 0].tolist() == [2.0, 1.0, 0.0]
    one = torch.ones(1, 2, 2)
    assert torch.equal(swap({"image": one})["image"], one)
    with pytest.raises(ValueError, match="'prob' must be in"):
        RandSwapNeighboursd("image", prob=2.0)


# --------------------------------------------------------------------------- checkpoints


def test_context_needs_a_three_channel_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'slice_context_mm' must be positive and the model must take 3"):
        _checkpoint(tmp_path / "one.pt", channels=1, context_mm=5.0)
    three_without = _checkpoint(tmp_path / "three.pt", channels=3, context_mm=None)
    with pytest.raises(CheckpointError, match="takes 3 input channel"):
        NetworkSegmenter(three_without, config=InferenceConfig(device="cpu", runtime="torch"))


class _Below:
    """Stands in for the network: 'probability' = the grey level of the slice below (channel 0)."""

    def run(self, images: np.ndarray) -> np.ndarray:
        if images.shape[1] != 3:
            raise ValueError(f"expected three channels, got {images.shape}")
        return images[:, :1].copy()


def test_inference_feeds_each_slice_with_its_neighbours(tmp_path: Path, head_volume) -> None:
    ckpt = _checkpoint(tmp_path / "ctx.pt", channels=3, context_mm=5.0)
    seg = NetworkSegmenter(ckpt, config=InferenceConfig(device="cpu", runtime="torch"))
    assert seg.slice_context_mm == 5.0 and seg.describe()["slice_context_mm"] == 5.0
    seg.runner = _Below()
    probs = seg.probabilities(head_volume)
    below = neighbour_indices(head_volume.geometry.offsets_mm, context_mm=5.0)[:, 0]
    blob = [i for i in range(12) if head_volume.hu[i, 30, 26] > 60]
    for i in range(12):
        expected = 70 / 80 if below[i] in blob else 0.5  # the slice below's grey level at the blob's centre
        assert probs[i, 30, 26] == pytest.approx(expected, abs=0.01), i
    assert sorted(i for i in range(12) if probs[i, 30, 26] > 0.8) != blob  # shifted by one slice


def test_onnx_export_of_a_context_checkpoint_matches_pytorch(tmp_path: Path, head_volume) -> None:
    ckpt = _checkpoint(tmp_path / "ctx.pt", channels=3, context_mm=5.0, seed=2)
    export_checkpoint_onnx(ckpt)
    by_torch = NetworkSegmenter(ckpt, config=InferenceConfig(device="cpu", runtime="torch", bf16=False))
    by_onnx = NetworkSegmenter(ckpt, config=InferenceConfig(device="cpu", runtime="onnxruntime"))
    assert by_onnx.runtime == "onnxruntime" and by_onnx.slice_context_mm == 5.0
    np.testing.assert_allclose(by_onnx.probabilities(head_volume), by_torch.probabilities(head_volume), atol=1e-4)


# --------------------------------------------------------------------------- from one slice to three


def test_widened_network_computes_what_the_one_slice_network_did(tmp_path: Path) -> None:
    one, _ = load_model(_checkpoint(tmp_path / "one.pt", channels=1, context_mm=None, seed=4))
    three = build_model("sa_cbam_unet_slim", **{**KWARGS, "in_channels": 3})
    three.load_state_dict(widen_input_channels(dict(one.state_dict()), three.state_dict()))
    x = torch.rand(2, 1, 64, 48, generator=torch.Generator().manual_seed(0))
    context = torch.cat([torch.rand_like(x), x, torch.rand_like(x)], dim=1)  # neighbours: anything
    with torch.inference_mode():
        torch.testing.assert_close(three.eval()(context), one.eval()(x), atol=1e-5, rtol=0)
    # an unrelated shape mismatch is left for load_state_dict to report
    other = build_model("sa_cbam_unet_slim", **{**KWARGS, "base_channels": 8, "in_channels": 3})
    with pytest.raises(RuntimeError, match="size mismatch"):
        other.load_state_dict(widen_input_channels(dict(one.state_dict()), other.state_dict()))
