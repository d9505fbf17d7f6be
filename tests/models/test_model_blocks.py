"""Building blocks: CBAM parts, positional encoding, attention bottleneck, decoder."""

from __future__ import annotations

import math

import pytest
import torch

from ichpipe.models import (
    CBAM,
    ChannelAttention,
    DecoderBlock,
    PositionalEncoding2D,
    ResidualEncoderBlock,
    SelfAttentionBottleneck,
    SpatialAttention,
    sinusoidal_encoding_2d,
)


def test_channel_attention_scales_each_channel_by_one_factor_in_0_1() -> None:
    x = torch.rand(2, 16, 8, 8) + 0.1
    ratio = ChannelAttention(16, reduction=4)(x) / x
    assert torch.allclose(ratio, ratio[..., :1, :1].expand_as(ratio), atol=1e-6)
    assert torch.all((ratio > 0) & (ratio < 1))
    # and the factors differ between channels
    assert ratio[0, :, 0, 0].std() > 0


def test_spatial_attention_scales_each_position_by_one_factor_in_0_1() -> None:
    x = torch.rand(2, 6, 8, 8) + 0.1
    ratio = SpatialAttention(kernel_size=3)(x) / x
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-6)
    assert torch.all((ratio > 0) & (ratio < 1))
    assert ratio[0, 0].std() > 0


def test_cbam_applies_channel_then_spatial_attention() -> None:
    cbam = CBAM(8, reduction=2, kernel_size=3)
    x = torch.rand(1, 8, 8, 8)
    torch.testing.assert_close(cbam(x), cbam.spatial(cbam.channel(x)))
    assert isinstance(CBAM(8, channel=False, spatial=False).channel, torch.nn.Identity)
    off = CBAM(8, channel=False, spatial=False)
    assert torch.equal(off(x), x)
    assert sum(p.numel() for p in off.parameters()) == 0


def test_sinusoidal_encoding_values() -> None:
    pe = sinusoidal_encoding_2d(8, 3, 5)
    assert pe.shape == (1, 8, 3, 5)
    rows = torch.arange(3, dtype=torch.float32)
    cols = torch.arange(5, dtype=torch.float32)
    # channel 0/1: sin/cos of the row at frequency 1; channel 4/5: same for the column
    torch.testing.assert_close(pe[0, 0, :, 0], torch.sin(rows))
    torch.testing.assert_close(pe[0, 1, :, 0], torch.cos(rows))
    torch.testing.assert_close(pe[0, 4, 0, :], torch.sin(cols))
    torch.testing.assert_close(pe[0, 5, 0, :], torch.cos(cols))
    # channel 2: second frequency 1/10000^(2/4)
    torch.testing.assert_close(pe[0, 2, :, 0], torch.sin(rows / math.sqrt(10000.0)))
    # rows do not depend on the column and vice versa
    assert torch.equal(pe[0, :4, :, 0:1].expand(4, 3, 5), pe[0, :4])


def test_sinusoidal_encoding_needs_a_multiple_of_4_channels() -> None:
    with pytest.raises(ValueError, match="Argument 'channels' must be a multiple of 4"):
        sinusoidal_encoding_2d(6, 4, 4)


def test_positional_encoding_kinds_and_state() -> None:
    fixed = PositionalEncoding2D(8, grid_size=(2, 2), kind="sinusoidal")
    learned = PositionalEncoding2D(8, grid_size=(2, 2), kind="learned")
    assert "pe" not in fixed.state_dict()  # recomputed, not stored
    assert "pe" in learned.state_dict()
    x = torch.zeros(1, 8, 4, 6)  # another grid: recomputed / resized
    torch.testing.assert_close(fixed(x), sinusoidal_encoding_2d(8, 4, 6))
    assert learned(x).shape == (1, 8, 4, 6)
    with pytest.raises(ValueError, match="Argument 'x' must have 8 channels"):
        fixed(torch.zeros(1, 4, 2, 2))
    with pytest.raises(ValueError, match="Argument 'kind'"):
        PositionalEncoding2D(8, grid_size=(2, 2), kind="none")  # type: ignore[arg-type]


def test_attention_bottleneck_sees_position_through_the_encoding() -> None:
    # A constant feature map: without a positional encoding every token is the
    # same and so is every output position; with it, positions differ.
    sa = SelfAttentionBottleneck(16, grid_size=(4, 4), num_heads=4).eval()
    x = torch.ones(1, 16, 4, 4)
    with torch.no_grad():
        y = sa(x)
        tokens = torch.ones(1, 16, 16).transpose(1, 2)
        no_pe, _ = sa.attn(sa.norm(tokens), sa.norm(tokens), sa.norm(tokens))
    assert y.shape == x.shape
    assert (y[0, :, 0, 0] - y[0, :, 3, 3]).abs().max() > 1e-4
    assert (no_pe[0, 0] - no_pe[0, 15]).abs().max() < 1e-6


def test_attention_bottleneck_mixes_information_globally() -> None:
    # Unlike a 3x3 conv, a change in one corner changes the opposite corner.
    sa = SelfAttentionBottleneck(16, grid_size=(8, 8), num_heads=2).eval()
    x = torch.rand(1, 16, 8, 8)
    x2 = x.clone()
    x2[0, :, 0, 0] = torch.randn(16) * 3  # not a constant shift: LayerNorm removes those
    with torch.no_grad():
        assert (sa(x)[..., 7, 7] - sa(x2)[..., 7, 7]).abs().max() > 1e-5


def _reference_bottleneck(sa: SelfAttentionBottleneck, x: torch.Tensor) -> torch.Tensor:
    """The bottleneck as it was first written: through ``nn.MultiheadAttention`` itself."""
    b, c, h, w = x.shape
    tokens = sa.norm(sa.pos(x).flatten(2).transpose(1, 2))
    out, _ = sa.attn(tokens, tokens, tokens, need_weights=False)
    return x + out.transpose(1, 2).reshape(b, c, h, w)


@pytest.mark.parametrize(("channels", "heads", "grid", "batch"), [(16, 4, (4, 4), 2), (32, 8, (6, 10), 3),
                                                                  (64, 1, (8, 8), 1)])
@pytest.mark.parametrize("train", [False, True])
def test_fused_attention_equals_multihead_attention(
    channels: int, heads: int, grid: tuple[int, int], batch: int, train: bool
) -> None:
    # random weights everywhere (biases and the learned encoding too), random input; in training
    # mode (no dropout) the gradients of the weights must agree as well
    torch.manual_seed(channels + heads)
    sa = SelfAttentionBottleneck(channels, grid_size=grid, num_heads=heads, pos_encoding="learned")
    with torch.no_grad():
        for p in sa.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    sa.train(train)
    x = torch.randn(batch, channels, *grid, requires_grad=True)
    fused = sa(x)
    ref = _reference_bottleneck(sa, x)
    assert fused.shape == ref.shape == x.shape
    torch.testing.assert_close(fused, ref, rtol=1e-5, atol=1e-5)
    assert (fused - x).abs().max() > 1e-2  # the attention branch is not trivially zero
    if train:
        g_fused = torch.autograd.grad(fused.square().sum(), [x, sa.attn.in_proj_weight, sa.attn.out_proj.weight])
        g_ref = torch.autograd.grad(ref.square().sum(), [x, sa.attn.in_proj_weight, sa.attn.out_proj.weight])
        for a, b in zip(g_fused, g_ref, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_fused_attention_under_bf16_autocast_and_channels_last() -> None:
    # the path inference takes on a CPU with native bf16: same result as fp32 to bf16 precision
    torch.manual_seed(0)
    sa = SelfAttentionBottleneck(64, grid_size=(8, 8), num_heads=8).eval()
    x = torch.randn(2, 64, 8, 8).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        ref = _reference_bottleneck(sa, x.contiguous())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = sa(x.bfloat16())
    assert low.shape == ref.shape
    torch.testing.assert_close(low.float(), ref, rtol=0.05, atol=0.1)


def test_residual_and_decoder_blocks_shapes() -> None:
    enc = ResidualEncoderBlock(3, 8, norm="instance")
    assert enc(torch.rand(2, 3, 16, 16)).shape == (2, 8, 16, 16)
    dec = DecoderBlock(16, 8, 4, norm="batch")
    assert dec(torch.rand(2, 16, 4, 4), torch.rand(2, 8, 8, 8)).shape == (2, 4, 8, 8)


@pytest.mark.parametrize(
    ("build", "pattern"),
    [
        (lambda: ChannelAttention(0), "Argument 'channels'"),
        (lambda: ChannelAttention(8, reduction=0), "Argument 'reduction'"),
        (lambda: SpatialAttention(kernel_size=6), "Argument 'kernel_size' must be odd"),
        (lambda: SelfAttentionBottleneck(10, grid_size=(2, 2), num_heads=4), "'num_heads'"),
        (lambda: SelfAttentionBottleneck(8, grid_size=(2, 2), dropout=-0.1), "'dropout'"),
        (lambda: PositionalEncoding2D(8, grid_size=(2,)), "Argument 'grid_size'"),  # type: ignore[arg-type]
        (lambda: ResidualEncoderBlock(1, 8, norm="layer"), "Argument 'norm'"),  # type: ignore[arg-type]
    ],
)
def test_bad_block_arguments_are_named(build: object, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        build()  # type: ignore[operator]
