"""Parameter and FLOP counting."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ichpipe.models import SACBAMUNet, count_flops, count_parameters


def test_counts_of_known_layers() -> None:
    conv = nn.Conv2d(1, 2, kernel_size=3, padding=1)
    assert count_parameters(conv) == 2 * 9 + 2
    # 2 FLOPs per multiply-add: 2 outputs x 9 taps x 16 positions
    assert count_flops(conv, (1, 1, 4, 4)) == 2 * 2 * 9 * 16
    conv.weight.requires_grad_(False)
    assert count_parameters(conv, trainable_only=True) == 2


def test_unet_flops_grow_with_area_and_leave_the_mode_alone() -> None:
    net = SACBAMUNet(base_channels=4, input_size=32, sa=False, ca=False, spa=False).train()
    small = count_flops(net, (1, 1, 32, 32))
    large = count_flops(net, (1, 1, 64, 64))
    assert large == 4 * small  # convolutions only: linear in the pixel count
    assert net.training


def test_attention_matrix_products_are_counted() -> None:
    # base 4 -> 32 channels at a 2x2 bottom for a 32x32 slice: 4 tokens of 32
    def net(sa: bool) -> SACBAMUNet:
        return SACBAMUNet(base_channels=4, input_size=32, sa=sa, ca=False, spa=False, num_heads=4)

    with_sa = count_flops(net(True), (1, 1, 32, 32))
    without = count_flops(net(False), (1, 1, 32, 32))
    tokens, channels = 4, 32
    qkv = 2 * tokens * channels * 3 * channels
    scores_and_mix = 2 * (2 * tokens * tokens * channels)
    out_proj = 2 * tokens * channels * channels
    assert with_sa - without == qkv + scores_and_mix + out_proj


def test_the_counted_model_is_left_alone() -> None:
    net = nn.Linear(3, 2).train()
    before = net.weight.detach().clone()
    count_flops(net, (1, 3))
    assert net.training and net.weight.device.type == "cpu"
    assert torch.equal(net.weight, before)


def test_bad_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="Argument 'input_shape'"):
        count_flops(nn.Linear(2, 2), (0, 2))
    assert torch.get_num_threads() == 1
