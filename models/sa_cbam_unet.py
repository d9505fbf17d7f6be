"""The seed's segmentation network: a U-Net with self-attention and CBAM skips.

Seed 000 (Chinese, English abstract in ``shared/seeds``): residual encoder
blocks and four 2x2 max-pool downsamplings (64 -> 128 -> 256 -> 512 channels,
512 at the bottom, 32x32 for a 512x512 slice); multi-head self-attention with
a 2D positional encoding at the bottom; channel-then-spatial attention on
every skip connection; a decoder of conv blocks with bilinear up-sampling; a
3x3 convolution and a sigmoid.

Three switches (``sa``, ``ca``, ``spa``) turn the bottleneck attention, the
channel attention and the spatial attention on or off, so the seed's ablation
(plain U-Net, +SA, +SA+CA, full) is one class.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ichpipe.models.blocks import (
    CBAM,
    DecoderBlock,
    NormName,
    PositionalEncodingKind,
    ResidualEncoderBlock,
    SelfAttentionBottleneck,
)

__all__ = ["DOWNSAMPLING_FACTOR", "SACBAMUNet", "check_spatial_size"]

#: Height and width of every input must be a multiple of this (4 max-pools).
DOWNSAMPLING_FACTOR = 16


def _size_pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pair
    ):
        raise ValueError(
            f"Argument '{name}' must be a positive int or a (height, width) pair; got {value!r}."
        )
    if pair[0] % DOWNSAMPLING_FACTOR or pair[1] % DOWNSAMPLING_FACTOR:
        raise ValueError(
            f"Argument '{name}' must be a multiple of {DOWNSAMPLING_FACTOR} in both "
            f"dimensions; got {pair[0]}x{pair[1]}."
        )
    return int(pair[0]), int(pair[1])


def check_spatial_size(x: torch.Tensor, *, name: str = "x") -> None:
    """Refuse a batch that is not ``(B, C, H, W)`` with H and W multiples of 16.

    The networks never pad or crop: the caller pads the slice to a multiple
    of 16 (the pipeline does) and crops the output back.

    Parameters
    ----------
    x:
        The input batch.
    name:
        Argument name used in the error message.

    Raises
    ------
    ValueError
        If ``x`` is not 4-D or its height or width is not a multiple of 16.

    Examples
    --------
    >>> check_spatial_size(torch.zeros(1, 1, 32, 48))
    """
    if x.dim() != 4:
        raise ValueError(
            f"Argument '{name}' must be a 4-D batch (B, C, H, W); got shape {tuple(x.shape)}."
        )
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h % DOWNSAMPLING_FACTOR or w % DOWNSAMPLING_FACTOR:
        raise ValueError(
            f"Argument '{name}' must have height and width that are multiples of "
            f"{DOWNSAMPLING_FACTOR}; got {h}x{w}. Pad the slice to a multiple of "
            f"{DOWNSAMPLING_FACTOR} before calling the model and crop the output back."
        )


class SACBAMUNet(nn.Module):
    """SA-CBAM U-Net for 2D hematoma segmentation (seed 000).

    Channel widths are ``base, 2*base, 4*base, 8*base`` down the encoder and
    ``8*base`` at the bottom (64/128/256/512/512 for the seed's base 64).
    The decoder halves the channels at each of the four bilinear up-samplings
    back to ``base``; the head is a 3x3 convolution and, unless ``sigmoid`` is
    off, a sigmoid.

    Parameters
    ----------
    in_channels:
        Input channels (1: one windowed CT slice).
    out_channels:
        Output channels (1: hematoma probability).
    base_channels:
        Width of the first level (64 in the seed; 16 for the slim CPU variant).
    input_size:
        Slice size the network is built for, an int or ``(height, width)``,
        multiples of 16. It sets the positional-encoding grid
        (``input_size / 16``); other multiples of 16 still run (a sinusoidal
        encoding is recomputed, a learned one resized bilinearly).
    sa:
        Self-attention bottleneck on (seed: on).
    ca:
        Channel attention on the skip connections (seed: on).
    spa:
        Spatial attention on the skip connections, after the channel
        attention (seed: on).
    num_heads:
        Attention heads; must divide ``8 * base_channels``.
    pos_encoding:
        ``"sinusoidal"`` or ``"learned"``.
    reduction:
        Channel-attention MLP reduction ratio.
    spatial_kernel_size:
        Spatial-attention kernel size (odd).
    norm:
        Normalisation in the conv blocks: ``"batch"``, ``"instance"``, ``"group"``.
    dropout:
        Dropout in the conv blocks and on the attention weights.
    sigmoid:
        End with a sigmoid (probabilities, the seed's head). Off gives logits,
        for a training loss such as ``BCEWithLogitsLoss``.

    Examples
    --------
    >>> net = SACBAMUNet(base_channels=4, input_size=32, num_heads=2)
    >>> net(torch.zeros(1, 1, 32, 32)).shape
    torch.Size([1, 1, 32, 32])
    >>> plain = SACBAMUNet(base_channels=4, input_size=32, sa=False, ca=False, spa=False)
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        out_channels: int = 1,
        base_channels: int = 64,
        input_size: int | Sequence[int] = 512,
        sa: bool = True,
        ca: bool = True,
        spa: bool = True,
        num_heads: int = 8,
        pos_encoding: PositionalEncodingKind = "sinusoidal",
        reduction: int = 16,
        spatial_kernel_size: int = 7,
        norm: NormName = "batch",
        dropout: float = 0.0,
        sigmoid: bool = True,
    ) -> None:
        super().__init__()
        for arg, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("base_channels", base_channels),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Argument '{arg}' must be a positive integer; got {value!r}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"Argument 'dropout' must be in [0, 1); got {dropout}.")
        size = _size_pair(input_size, "input_size")
        self.input_size = size
        self.switches = {"sa": bool(sa), "ca": bool(ca), "spa": bool(spa)}

        widths = [base_channels * m for m in (1, 2, 4, 8, 8)]
        self.widths = tuple(widths)

        self.encoder = nn.ModuleList(
            [ResidualEncoderBlock(in_channels, widths[0], norm=norm, dropout=dropout)]
        )
        for level in range(1, 5):
            self.encoder.append(
                nn.Sequential(
                    nn.MaxPool2d(kernel_size=2),
                    ResidualEncoderBlock(
                        widths[level - 1], widths[level], norm=norm, dropout=dropout
                    ),
                )
            )

        grid = (size[0] // DOWNSAMPLING_FACTOR, size[1] // DOWNSAMPLING_FACTOR)
        self.bottleneck: nn.Module = (
            SelfAttentionBottleneck(
                widths[4],
                grid_size=grid,
                num_heads=num_heads,
                pos_encoding=pos_encoding,
                dropout=dropout,
            )
            if sa
            else nn.Identity()
        )

        self.skip_attention = nn.ModuleList(
            [
                CBAM(
                    widths[level],
                    channel=ca,
                    spatial=spa,
                    reduction=reduction,
                    kernel_size=spatial_kernel_size,
                )
                for level in range(4)
            ]
        )

        # Decoder: from below (level+1) to level; out channels halve each time,
        # the last stage stays at base width.
        dec_out = [widths[0], widths[0], widths[1], widths[2]]  # indexed by target level
        self.decoder = nn.ModuleList(
            [
                DecoderBlock(
                    widths[4] if level == 3 else dec_out[level + 1],
                    widths[level],
                    dec_out[level],
                    norm=norm,
                    dropout=dropout,
                )
                for level in (3, 2, 1, 0)
            ]
        )
        self.head = nn.Conv2d(widths[0], out_channels, kernel_size=3, padding=1)
        self.out_activation: nn.Module = nn.Sigmoid() if sigmoid else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segment a batch ``(B, in_channels, H, W)``, H and W multiples of 16.

        Returns ``(B, out_channels, H, W)``: probabilities in [0, 1], or logits
        when built with ``sigmoid=False``.
        """
        check_spatial_size(x)
        skips: list[torch.Tensor] = []
        for level, block in enumerate(self.encoder):
            x = block(x)
            if level < 4:
                skips.append(x)
        x = self.bottleneck(x)
        for i, block in enumerate(self.decoder):
            level = 3 - i
            x = block(x, self.skip_attention[level](skips[level]))
        return self.out_activation(self.head(x))
