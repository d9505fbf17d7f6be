"""Baseline segmenters from MONAI, with the same contract as :class:`SACBAMUNet`.

Every segmenter in ichpipe takes a ``(B, 1, H, W)`` batch with H and W
multiples of 16 and returns ``(B, 1, H, W)`` probabilities (or logits with
``sigmoid=False``). :class:`SegmentationBaseline` wraps a MONAI 2D network to
keep that contract: it refuses other sizes with a ``ValueError`` and applies
the sigmoid.

- :func:`build_monai_unet`: MONAI :class:`~monai.networks.nets.UNet`
  (strided convolutions, residual units), 4 downsamplings.
- :func:`build_basic_unet`: MONAI :class:`~monai.networks.nets.BasicUNet`
  (the classic two-conv U-Net), 4 downsamplings.
- :func:`build_segresnet`: MONAI :class:`~monai.networks.nets.SegResNet` in
  2D (3 downsamplings with the default ``blocks_down``; the multiple-of-16
  rule is kept anyway so every segmenter pads the same way).

MONAI is imported inside each builder, not with this module: the model
registry imports this module, and MONAI's import (about 2.5 s) would otherwise
be paid by every run of the SA-CBAM U-Net, which needs none of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ichpipe.models.sa_cbam_unet import check_spatial_size

__all__ = [
    "SegmentationBaseline",
    "build_basic_unet",
    "build_monai_unet",
    "build_segresnet",
]

_NORMS: dict[str, str | tuple[str, dict[str, object]]] = {
    "batch": "BATCH",
    "instance": ("INSTANCE", {"affine": True}),
}


def _norm(norm: str) -> str | tuple[str, dict[str, object]]:
    if norm not in _NORMS:
        raise ValueError(
            f"Argument 'norm' must be one of {', '.join(sorted(_NORMS))}; got {norm!r}."
        )
    return _NORMS[norm]


class SegmentationBaseline(nn.Module):
    """A MONAI 2D segmentation network behind ichpipe's segmenter contract.

    Parameters
    ----------
    net:
        A module mapping ``(B, C, H, W)`` to ``(B, K, H, W)`` logits.
    sigmoid:
        Apply a sigmoid to the output (probabilities). Off gives logits.

    Examples
    --------
    >>> model = build_basic_unet(features=(4, 4, 8, 8, 16, 4))
    >>> model(torch.zeros(1, 1, 32, 32)).shape
    torch.Size([1, 1, 32, 32])
    """

    def __init__(self, net: nn.Module, *, sigmoid: bool = True) -> None:
        super().__init__()
        self.net = net
        self.out_activation: nn.Module = nn.Sigmoid() if sigmoid else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_spatial_size(x)
        return self.out_activation(self.net(x))


def build_monai_unet(
    *,
    in_channels: int = 1,
    out_channels: int = 1,
    channels: Sequence[int] = (16, 32, 64, 128, 256),
    num_res_units: int = 2,
    norm: str = "batch",
    dropout: float = 0.0,
    sigmoid: bool = True,
) -> SegmentationBaseline:
    """MONAI's residual U-Net in 2D with four stride-2 downsamplings.

    Parameters
    ----------
    in_channels, out_channels:
        Channel counts.
    channels:
        Five widths, top to bottom.
    num_res_units:
        Residual units per stage (0: plain convolutions).
    norm:
        ``"batch"`` or ``"instance"``.
    dropout:
        Dropout probability.
    sigmoid:
        End with a sigmoid.

    Examples
    --------
    >>> build_monai_unet(channels=(4, 8, 8, 16, 16))(torch.zeros(1, 1, 32, 32)).shape
    torch.Size([1, 1, 32, 32])
    """
    if len(channels) != 5:
        raise ValueError(
            f"Argument 'channels' must hold 5 widths (4 downsamplings); got {list(channels)}."
        )
    from monai.networks.nets import UNet

    net = UNet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=out_channels,
        channels=tuple(channels),
        strides=(2, 2, 2, 2),
        num_res_units=num_res_units,
        norm=_norm(norm),
        dropout=dropout,
    )
    return SegmentationBaseline(net, sigmoid=sigmoid)


def build_basic_unet(
    *,
    in_channels: int = 1,
    out_channels: int = 1,
    features: Sequence[int] = (32, 32, 64, 128, 256, 32),
    upsample: str = "deconv",
    dropout: float = 0.0,
    sigmoid: bool = True,
) -> SegmentationBaseline:
    """MONAI's BasicUNet in 2D (two conv-norm-act per stage, 4 max-pools).

    Parameters
    ----------
    in_channels, out_channels:
        Channel counts.
    features:
        Six widths: five encoder levels and the last decoder stage.
    upsample:
        ``"deconv"``, ``"pixelshuffle"`` or ``"nontrainable"``.
    dropout:
        Dropout probability.
    sigmoid:
        End with a sigmoid.

    Examples
    --------
    >>> build_basic_unet(features=(4, 4, 8, 8, 16, 4))(torch.zeros(1, 1, 32, 32)).shape
    torch.Size([1, 1, 32, 32])
    """
    if len(features) != 6:
        raise ValueError(f"Argument 'features' must hold 6 widths; got {list(features)}.")
    from monai.networks.nets import BasicUNet

    net = BasicUNet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=out_channels,
        features=tuple(features),
        dropout=dropout,
        upsample=upsample,
    )
    return SegmentationBaseline(net, sigmoid=sigmoid)


def build_segresnet(
    *,
    in_channels: int = 1,
    out_channels: int = 1,
    init_filters: int = 16,
    blocks_down: Sequence[int] = (1, 2, 2, 4),
    blocks_up: Sequence[int] = (1, 1, 1),
    dropout: float = 0.0,
    sigmoid: bool = True,
) -> SegmentationBaseline:
    """MONAI's SegResNet in 2D (group-normalised residual blocks).

    Parameters
    ----------
    in_channels, out_channels:
        Channel counts.
    init_filters:
        Width of the first stage (a multiple of 8: group norm uses 8 groups).
    blocks_down, blocks_up:
        Residual blocks per encoder stage and per decoder stage;
        ``len(blocks_up) == len(blocks_down) - 1`` and at most 5 encoder stages.
    dropout:
        Dropout probability (0 for none).
    sigmoid:
        End with a sigmoid.

    Examples
    --------
    >>> build_segresnet(init_filters=8)(torch.zeros(1, 1, 32, 32)).shape
    torch.Size([1, 1, 32, 32])
    """
    if init_filters < 8 or init_filters % 8:
        raise ValueError(
            f"Argument 'init_filters' must be a positive multiple of 8 (group norm with "
            f"8 groups); got {init_filters}."
        )
    if not 1 < len(blocks_down) <= 5 or len(blocks_up) != len(blocks_down) - 1:
        raise ValueError(
            "Arguments 'blocks_down' and 'blocks_up' must have 2-5 and one fewer stages; "
            f"got {list(blocks_down)} and {list(blocks_up)}."
        )
    from monai.networks.nets import SegResNet

    net = SegResNet(
        spatial_dims=2,
        init_filters=init_filters,
        in_channels=in_channels,
        out_channels=out_channels,
        dropout_prob=dropout if dropout > 0 else None,
        blocks_down=tuple(blocks_down),
        blocks_up=tuple(blocks_up),
    )
    return SegmentationBaseline(net, sigmoid=sigmoid)
