"""Tiny DeepMedic networks with BLAST-CT v1's geometry, shared by the network and the segmenter tests."""

from __future__ import annotations

import torch

from ichpipe.models.deepmedic import DeepMedic

__all__ = ["random_deepmedic_state", "tiny_deepmedic", "tiny_deepmedic_net"]


def tiny_deepmedic_net() -> DeepMedic:
    """The real geometry (3 pathways, 8 blocks, 40-voxel margin) with 2-4 channels."""
    return DeepMedic(feature_maps=(2,) * 8, fully_connected=(4, 4))


def tiny_deepmedic(seed: int = 0) -> DeepMedic:
    """A tiny network with random weights and random BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    net = tiny_deepmedic_net()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            assert m.running_mean is not None and m.running_var is not None
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


def random_deepmedic_state(seed: int) -> dict[str, torch.Tensor]:
    """A state dict with the published BLAST-CT v1 key names and shapes and random values (no real weights)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in DeepMedic().state_dict().items():
        if value.is_floating_point():
            value = torch.randn(value.shape, generator=gen) * 0.1
            if key.endswith("running_var"):
                value = value.abs() + 0.5
        state[key] = value
    return state
