"""MONAI baselines behind the segmenter contract."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from monai.networks.nets import BasicUNet, SegResNet, UNet

from ichpipe.models import SegmentationBaseline, build_basic_unet, build_model, build_monai_unet, build_segresnet

BASELINES = {"monai_unet": UNet, "basic_unet": BasicUNet, "segresnet": SegResNet}


@pytest.mark.parametrize("name", sorted(BASELINES))
@pytest.mark.parametrize("size", [(32, 32), (64, 48)])
def test_baselines_keep_the_slice_shape_and_output_probabilities(
    name: str, size: tuple[int, int], tiny: Callable[[str], dict[str, Any]]
) -> None:
    model = build_model(name, **tiny(name)).eval()
    assert isinstance(model, SegmentationBaseline)
    assert isinstance(model.net, BASELINES[name])
    with torch.no_grad():
        y = model(torch.rand(2, 1, *size))
    assert y.shape == (2, 1, *size)
    assert torch.all((y >= 0) & (y <= 1))


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_refuse_sizes_that_are_not_multiples_of_16(
    name: str, tiny: Callable[[str], dict[str, Any]]
) -> None:
    model = build_model(name, **tiny(name))
    with pytest.raises(ValueError, match="Argument 'x' must have height and width"):
        model(torch.zeros(1, 1, 40, 32))


def test_sigmoid_off_gives_the_logits_of_the_wrapped_net() -> None:
    model = build_basic_unet(features=(4, 4, 8, 8, 16, 4), sigmoid=False).eval()
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.net(x))


@pytest.mark.parametrize(
    ("build", "pattern"),
    [
        (lambda: build_monai_unet(channels=(4, 8, 16)), "Argument 'channels' must hold 5"),
        (lambda: build_monai_unet(norm="layer"), "Argument 'norm'"),
        (lambda: build_basic_unet(features=(4, 4)), "Argument 'features' must hold 6"),
        (lambda: build_segresnet(init_filters=12), "Argument 'init_filters'"),
        (lambda: build_segresnet(blocks_down=(1, 2), blocks_up=(1, 1)), "'blocks_down'"),
    ],
)
def test_bad_baseline_arguments_are_named(build: Callable[[], object], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        build()
