"""Tiny DeepMedic networks with BLAST-CT v1's geometry, shared by the network and the segmenter tests."""

from __future__ import annotations

import torch

from ichpipe.models.deepmedic import DeepMedic

__all__ = ["tiny_deepmedic", "tiny_deepmedic_net"]


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
