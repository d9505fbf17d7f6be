"""The plain-PyTorch conv blocks against MONAI's own blocks, an independent reference.

Until issue 17 the SA-CBAM U-Net's conv blocks were MONAI's ``ResidualUnit``,
``Convolution`` and ``UpSample``; they are now written in PyTorch so that a run
never imports MONAI (about 2.5 s). Every checkpoint trained before must load
with the same state-dict keys and give the same output: each test builds the
MONAI block, loads the plain block's random weights into it with
``strict=True`` (so the keys match exactly, both ways) and compares outputs on
one fixed random input, in training and in evaluation mode.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from monai.networks.blocks import Convolution, ResidualUnit, UpSample
from torch import nn

from ichpipe.models import DecoderBlock, ResidualEncoderBlock, build_model, load_checkpoint
from ichpipe.models.blocks import ConvNormAct
from ichpipe.pipeline.config.models_config import CHECKPOINT_DIR

MONAI_NORMS: dict[str, tuple[str, dict[str, object]] | str] = {
    "batch": "BATCH",
    "instance": ("INSTANCE", {"affine": True}),
    "group": ("GROUP", {"num_groups": 8}),
}

DEFAULT_CHECKPOINT = CHECKPOINT_DIR / "ichpipe-default.pt"


def _randomise(module: nn.Module, seed: int) -> None:
    """Random parameters and running statistics, so that a wrong key or a missing bias shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            values = torch.rand(tensor.shape, generator=gen)
            tensor.copy_(values + 0.5 if name.endswith("running_var") else values - 0.5)


class _MonaiDecoder(nn.Module):
    """The decoder block as it was built from MONAI's blocks (the reference); ``cat_ch`` = in + skip."""

    def __init__(self, cat_ch: int, out_ch: int, norm: str, dropout: float) -> None:
        super().__init__()
        self.up = UpSample(spatial_dims=2, scale_factor=2, mode="nontrainable", interp_mode="bilinear",
                           align_corners=False)
        drop = dropout if dropout > 0 else None
        self.conv = nn.Sequential(
            Convolution(2, cat_ch, out_ch, act="RELU", norm=MONAI_NORMS[norm], dropout=drop),
            Convolution(2, out_ch, out_ch, act="RELU", norm=MONAI_NORMS[norm], dropout=drop),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


def _same_in_both_modes(ours: nn.Module, ref: nn.Module, *inputs: torch.Tensor) -> None:
    for training in (False, True):
        ours.train(training)
        ref.train(training)
        torch.manual_seed(7)  # the same dropout masks when dropout is on
        expected = ref(*inputs)
        torch.manual_seed(7)
        got = ours(*inputs)
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("norm", ["batch", "instance", "group"])
@pytest.mark.parametrize("dropout", [0.0, 0.2])
@pytest.mark.parametrize(("in_ch", "out_ch"), [(1, 8), (8, 8), (8, 16)])
def test_residual_encoder_block_equals_monai_residual_unit(norm: str, dropout: float, in_ch: int,
                                                           out_ch: int) -> None:
    ours = ResidualEncoderBlock(in_ch, out_ch, norm=norm, dropout=dropout)  # type: ignore[arg-type]
    ref = ResidualUnit(spatial_dims=2, in_channels=in_ch, out_channels=out_ch, kernel_size=3, subunits=2,
                       act="RELU", norm=MONAI_NORMS[norm], dropout=dropout if dropout > 0 else None)
    _randomise(ours, seed=in_ch * 100 + out_ch)
    ref.load_state_dict(ours.state_dict(), strict=True)
    assert list(ref.state_dict()) == list(ours.state_dict())
    x = torch.randn(3, in_ch, 20, 24, generator=torch.Generator().manual_seed(1))
    _same_in_both_modes(ours, ref, x)


@pytest.mark.parametrize("norm", ["batch", "instance", "group"])
@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_decoder_block_equals_the_monai_built_decoder(norm: str, dropout: float) -> None:
    ours = DecoderBlock(16, 8, 8, norm=norm, dropout=dropout)  # type: ignore[arg-type]
    ref = _MonaiDecoder(16 + 8, 8, norm, dropout)
    _randomise(ours, seed=3)
    ref.load_state_dict(ours.state_dict(), strict=True)
    assert list(ref.state_dict()) == list(ours.state_dict())
    gen = torch.Generator().manual_seed(2)
    _same_in_both_modes(ours, ref, torch.randn(2, 16, 6, 10, generator=gen), torch.randn(2, 8, 12, 20, generator=gen))


def test_conv_norm_act_equals_monai_convolution() -> None:
    ours = ConvNormAct(4, 8, norm="batch")
    ref = Convolution(2, 4, 8, act="RELU", norm="BATCH")
    _randomise(ours, seed=5)
    ref.load_state_dict(ours.state_dict(), strict=True)
    _same_in_both_modes(ours, ref, torch.randn(2, 4, 9, 11, generator=torch.Generator().manual_seed(3)))


def test_conv_norm_act_refuses_a_bad_dropout() -> None:
    with pytest.raises(ValueError, match="Argument 'dropout'"):
        ConvNormAct(4, 8, dropout=1.5)


@pytest.mark.skipif(not DEFAULT_CHECKPOINT.exists(), reason="the shipped default checkpoint is absent")
def test_the_shipped_checkpoint_loads_strictly_and_matches_the_monai_built_network() -> None:
    ckpt = load_checkpoint(DEFAULT_CHECKPOINT)
    ours = build_model(ckpt.name, **ckpt.model_kwargs).eval()
    ours.load_state_dict(dict(ckpt.state_dict), strict=True)
    # the same network with MONAI's blocks swapped in for the plain ones, loaded from the same checkpoint
    ref = build_model(ckpt.name, **ckpt.model_kwargs).eval()
    norm = str(ckpt.model_kwargs.get("norm", "batch"))
    swapped = 0
    for parent in list(ref.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, ResidualEncoderBlock):
                new: nn.Module = ResidualUnit(spatial_dims=2, in_channels=child.in_channels,
                                              out_channels=child.out_channels, kernel_size=3, subunits=2,
                                              act="RELU", norm=MONAI_NORMS[norm])
            elif isinstance(child, DecoderBlock):
                first: nn.Conv2d = child.conv[0].conv  # type: ignore[index, assignment]
                new = _MonaiDecoder(first.in_channels, first.out_channels, norm, 0.0)
            else:
                continue
            setattr(parent, child_name, new)
            swapped += 1
    assert swapped == 9  # five encoder blocks, four decoder blocks
    assert not any(isinstance(m, (ResidualEncoderBlock, DecoderBlock, ConvNormAct)) for m in ref.modules())
    ref.load_state_dict(dict(ckpt.state_dict), strict=True)
    ref.eval()  # the swapped-in blocks were built in training mode
    size = tuple(int(v) for v in ckpt.input_size)
    x = torch.rand(2, 1, *size, generator=torch.Generator().manual_seed(11))
    with torch.inference_mode():
        expected = ref(x)
        torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)
    assert 0.0 < float(expected.max()) and float(expected.min()) < 1.0


def test_a_network_run_never_imports_monai(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; import ichpipe, torch;"
        " from ichpipe.models import build_model, save_checkpoint;"
        " from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study;"
        f" study = Path({str(tmp_path / 'study')!r}); ckpt = Path({str(tmp_path / 'tiny.pt')!r});"
        " write_phantom_study(study, PhantomSpec(seed=5, rows=64, columns=64, n_slices=12));"
        " save_checkpoint(ckpt, build_model('sa_cbam_unet', base_channels=8, input_size=64, num_heads=2),"
        " name='sa_cbam_unet', input_size=(64, 64), window={'width': 80.0, 'level': 40.0},"
        " normalisation={'scale': 1 / 255, 'offset': 0.0}, training_data='none',"
        " model_kwargs={'base_channels': 8, 'input_size': 64, 'num_heads': 2});"
        " result = ichpipe.run_study(study, segmenter='sa_cbam_unet', checkpoint=ckpt);"
        " print('torch' in sys.modules, 'monai' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]
