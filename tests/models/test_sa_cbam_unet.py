"""SA-CBAM U-Net: shapes for every ablation variant and width, input refusal, switches."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ichpipe.models import CBAM, ChannelAttention, SACBAMUNet, SelfAttentionBottleneck, SpatialAttention, build_model

VARIANTS = {
    "unet": (False, False, False),
    "unet_sa": (True, False, False),
    "unet_sa_ca": (True, True, False),
    "sa_cbam_unet": (True, True, True),
    "sa_cbam_unet_slim": (True, True, True),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("base", [4, 8])
@pytest.mark.parametrize("size", [(32, 32), (64, 64), (32, 48)])
def test_every_variant_and_width_keeps_the_slice_shape(
    name: str, base: int, size: tuple[int, int]
) -> None:
    net = build_model(name, base_channels=base, input_size=32, num_heads=4).eval()
    x = torch.rand(2, 1, *size)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, 1, *size)
    assert torch.all((y >= 0) & (y <= 1))


def test_channel_schedule_matches_the_seed() -> None:
    net = SACBAMUNet(base_channels=64, input_size=512)
    assert net.widths == (64, 128, 256, 512, 512)
    assert net.input_size == (512, 512)


def test_bottom_is_input_over_16_with_512_channels_for_the_seed_width() -> None:
    with torch.device("meta"):
        net = SACBAMUNet(base_channels=64, input_size=512)
        seen: list[tuple[int, ...]] = []
        handle = net.bottleneck.register_forward_hook(
            lambda _m, _i, out: seen.append(tuple(out.shape))
        )
        net.eval()(torch.empty(1, 1, 512, 512))
        handle.remove()
    assert seen == [(1, 512, 32, 32)]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_switches_build_exactly_the_ablation_modules(name: str) -> None:
    sa, ca, spa = VARIANTS[name]
    net = build_model(name, base_channels=4, input_size=32, num_heads=4)
    assert isinstance(net, SACBAMUNet)
    assert net.switches == {"sa": sa, "ca": ca, "spa": spa}
    assert isinstance(net.bottleneck, SelfAttentionBottleneck) == sa
    assert len(net.skip_attention) == 4
    for cbam in net.skip_attention:
        assert isinstance(cbam, CBAM)
        assert isinstance(cbam.channel, ChannelAttention) == ca
        assert isinstance(cbam.spatial, SpatialAttention) == spa
    has_attention_params = any(
        k.startswith(("bottleneck.", "skip_attention.")) for k in net.state_dict()
    )
    assert has_attention_params == (sa or ca or spa)


def test_plain_unet_has_fewer_parameters_than_the_full_model() -> None:
    plain = build_model("unet", base_channels=8, input_size=32, num_heads=4)
    full = build_model("sa_cbam_unet", base_channels=8, input_size=32, num_heads=4)
    n_plain = sum(p.numel() for p in plain.parameters())
    n_full = sum(p.numel() for p in full.parameters())
    assert n_plain < n_full
    # the shared part has the same names and shapes, so plain weights load into it
    shared = {k: v for k, v in full.state_dict().items() if k in plain.state_dict()}
    assert set(shared) == set(plain.state_dict())


@pytest.mark.parametrize("size", [(30, 32), (32, 40), (17, 17)])
def test_input_not_a_multiple_of_16_is_refused(size: tuple[int, int]) -> None:
    net = SACBAMUNet(base_channels=4, input_size=32, num_heads=4)
    with pytest.raises(ValueError, match=r"Argument 'x' must have height and width .* 16"):
        net(torch.zeros(1, 1, *size))


def test_non_batched_input_is_refused() -> None:
    net = SACBAMUNet(base_channels=4, input_size=32, num_heads=4)
    with pytest.raises(ValueError, match=r"Argument 'x' must be a 4-D batch"):
        net(torch.zeros(1, 32, 32))


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"input_size": 500}, r"Argument 'input_size' must be a multiple of 16"),
        ({"input_size": (32, 40)}, r"Argument 'input_size' must be a multiple of 16"),
        ({"input_size": (32,)}, r"Argument 'input_size'"),
        ({"base_channels": 0}, r"Argument 'base_channels'"),
        ({"num_heads": 3}, r"Argument 'num_heads' \(3\) must divide"),
        ({"pos_encoding": "rotary"}, r"Argument 'kind'"),
        ({"norm": "layer"}, r"Argument 'norm'"),
        ({"norm": "group", "base_channels": 4}, r"Argument 'norm' is 'group'"),
        ({"spatial_kernel_size": 4}, r"Argument 'kernel_size' must be odd"),
        ({"dropout": 1.0}, r"Argument 'dropout'"),
    ],
)
def test_bad_constructor_arguments_are_named(kwargs: dict[str, object], pattern: str) -> None:
    args: dict[str, object] = {"base_channels": 4, "input_size": 32, "num_heads": 4}
    args.update(kwargs)
    with pytest.raises(ValueError, match=pattern):
        SACBAMUNet(**args)  # type: ignore[arg-type]


def test_sigmoid_off_returns_the_logits_of_the_same_weights() -> None:
    probs = SACBAMUNet(base_channels=4, input_size=32, num_heads=4).eval()
    logits = SACBAMUNet(base_channels=4, input_size=32, num_heads=4, sigmoid=False).eval()
    logits.load_state_dict(probs.state_dict())
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.sigmoid(logits(x)), probs(x))


@pytest.mark.parametrize("pos_encoding", ["sinusoidal", "learned"])
def test_other_multiples_of_16_run_with_either_positional_encoding(pos_encoding: str) -> None:
    net = SACBAMUNet(
        base_channels=4, input_size=32, num_heads=4, pos_encoding=pos_encoding  # type: ignore[arg-type]
    ).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 1, 64, 48)).shape == (1, 1, 64, 48)


def test_one_training_step_reaches_every_parameter() -> None:
    net = SACBAMUNet(base_channels=4, input_size=32, num_heads=4, sigmoid=False).train()
    x = torch.rand(2, 1, 32, 32)
    target = (x > 0.5).float()
    loss = nn.functional.binary_cross_entropy_with_logits(net(x), target)
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_bf16_autocast_and_channels_last_agree_with_fp32() -> None:
    net = SACBAMUNet(base_channels=8, input_size=32, num_heads=4).eval()
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        ref = net(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = net(x)
        cl_net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        cl = cl_net(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(cl, ref, rtol=0, atol=1e-5)
    assert (low.float() - ref).abs().max() < 0.05
