"""Building blocks of the SA-CBAM U-Net (seed 000).

Each block is a small :class:`torch.nn.Module` with keyword-only options,
in plain PyTorch (importing MONAI costs about 2.5 s of start-up, more than the
slim network's whole inference):

- :class:`ChannelAttention`, :class:`SpatialAttention` and :class:`CBAM`
  (channel attention *then* spatial attention, Woo et al. 2018) for the skip
  connections;
- :class:`ConvNormAct`, a 3x3 convolution followed by norm, dropout and ReLU,
  laid out as MONAI's ``Convolution`` (children ``conv`` and ``adn`` with
  ``N``, ``D``, ``A``), so checkpoints trained when the blocks were MONAI's
  load with the same state-dict keys;
- :class:`ResidualEncoderBlock`, two :class:`ConvNormAct` plus a shortcut, laid
  out as MONAI's ``ResidualUnit`` with two sub-units in 2D;
- :class:`PositionalEncoding2D`, sinusoidal or learned, added to the bottom
  feature map before attention;
- :class:`SelfAttentionBottleneck`, multi-head self-attention over the bottom
  feature map;
- :class:`DecoderBlock`, bilinear up-sampling, concatenation with the skip
  and two 3x3 convolutions.

MONAI's :class:`~monai.networks.blocks.SABlock` needs the optional ``einops``
package, which is not a dependency of ichpipe; the bottleneck therefore keeps
the weights of a :class:`torch.nn.MultiheadAttention` (the same computation:
``softmax(QK^T / sqrt(d_k)) V`` per head with learned ``W_q``, ``W_k``,
``W_v`` and an output projection) and runs them through the fused
:func:`torch.nn.functional.scaled_dot_product_attention`.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "CBAM",
    "ChannelAttention",
    "ConvNormAct",
    "DecoderBlock",
    "PositionalEncoding2D",
    "ResidualEncoderBlock",
    "SelfAttentionBottleneck",
    "SpatialAttention",
    "sinusoidal_encoding_2d",
]

NormName = Literal["batch", "instance", "group"]
PositionalEncodingKind = Literal["sinusoidal", "learned"]

_NORMS = ("batch", "group", "instance")


def _positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Argument '{name}' must be a positive integer; got {value!r}.")
    return value


def _norm(norm: str, channels: int) -> nn.Module:
    """The normalisation layer ``norm`` over ``channels`` (MONAI's choices for these names)."""
    if norm not in _NORMS:
        raise ValueError(
            f"Argument 'norm' must be one of {', '.join(_NORMS)}; got {norm!r}."
        )
    if norm == "group" and channels % 8 != 0:
        raise ValueError(
            f"Argument 'norm' is 'group' (8 groups) but a block has {channels} channels, "
            "not a multiple of 8; use a base width that is a multiple of 8 or another norm."
        )
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.GroupNorm(8, channels)


class ConvNormAct(nn.Sequential):
    """3x3 convolution (with bias), then norm, dropout (if any) and ReLU.

    The children are ``conv`` and ``adn`` (an :class:`~torch.nn.Sequential`
    of ``N``, ``D`` when ``dropout > 0``, and ``A``), the layout of MONAI's
    ``Convolution`` with ``adn_ordering="NDA"``, so state-dict keys such as
    ``conv.weight`` and ``adn.N.running_mean`` are the same.

    Parameters
    ----------
    in_channels, out_channels:
        Channel counts.
    norm:
        ``"batch"``, ``"instance"`` (affine) or ``"group"`` (8 groups).
    dropout:
        Dropout probability after the norm (0: no dropout layer).

    Examples
    --------
    >>> ConvNormAct(1, 8)(torch.zeros(1, 1, 16, 16)).shape
    torch.Size([1, 8, 16, 16])
    """

    def __init__(self, in_channels: int, out_channels: int, *, norm: NormName = "batch",
                 dropout: float = 0.0) -> None:
        _positive_int(in_channels, "in_channels")
        _positive_int(out_channels, "out_channels")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"Argument 'dropout' must be in [0, 1); got {dropout}.")
        adn = nn.Sequential()
        adn.add_module("N", _norm(norm, out_channels))
        if dropout > 0:
            adn.add_module("D", nn.Dropout(dropout))
        adn.add_module("A", nn.ReLU())
        super().__init__()
        self.add_module("conv", nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
        self.add_module("adn", adn)


class ChannelAttention(nn.Module):
    """CBAM channel attention: re-weights channels from pooled descriptors.

    ``w = sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))``, output ``x * w``, where
    the MLP (shared by both descriptors) is two 1x1 convolutions with a ReLU
    between them and ``channels // reduction`` hidden units (at least 1).

    Parameters
    ----------
    channels:
        Number of input (and output) channels.
    reduction:
        Bottleneck ratio of the shared MLP.

    Examples
    --------
    >>> ChannelAttention(32, reduction=8)(torch.zeros(2, 32, 16, 16)).shape
    torch.Size([2, 32, 16, 16])
    """

    def __init__(self, channels: int, *, reduction: int = 16) -> None:
        super().__init__()
        _positive_int(channels, "channels")
        _positive_int(reduction, "reduction")
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(F.adaptive_avg_pool2d(x, 1))
        mx = self.mlp(F.adaptive_max_pool2d(x, 1))
        return x * torch.sigmoid(avg + mx)


class SpatialAttention(nn.Module):
    """CBAM spatial attention: re-weights positions from channel statistics.

    ``w = sigmoid(conv_k([mean_c(x), max_c(x)]))``, output ``x * w``.

    Parameters
    ----------
    kernel_size:
        Odd size of the square convolution over the two statistic maps.

    Examples
    --------
    >>> SpatialAttention(kernel_size=7)(torch.zeros(1, 8, 16, 16)).shape
    torch.Size([1, 8, 16, 16])
    """

    def __init__(self, *, kernel_size: int = 7) -> None:
        super().__init__()
        _positive_int(kernel_size, "kernel_size")
        if kernel_size % 2 == 0:
            raise ValueError(f"Argument 'kernel_size' must be odd; got {kernel_size}.")
        self.conv = nn.Conv2d(2, 1, kernel_size=kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stats = torch.cat(
            [x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1
        )
        return x * torch.sigmoid(self.conv(stats))


class CBAM(nn.Module):
    """Convolutional block attention: channel attention, then spatial attention.

    Either part can be switched off (it becomes an identity with no
    parameters), which is how the seed's ablation (U-Net, +CA, +SPA) is built
    from one class.

    Parameters
    ----------
    channels:
        Number of input (and output) channels.
    channel:
        Apply :class:`ChannelAttention`.
    spatial:
        Apply :class:`SpatialAttention` (after the channel attention).
    reduction:
        Channel-attention MLP reduction ratio.
    kernel_size:
        Spatial-attention kernel size.

    Examples
    --------
    >>> cbam = CBAM(16, channel=True, spatial=False)
    >>> cbam(torch.zeros(1, 16, 8, 8)).shape
    torch.Size([1, 16, 8, 8])
    """

    def __init__(
        self,
        channels: int,
        *,
        channel: bool = True,
        spatial: bool = True,
        reduction: int = 16,
        kernel_size: int = 7,
    ) -> None:
        super().__init__()
        self.channel: nn.Module = (
            ChannelAttention(channels, reduction=reduction) if channel else nn.Identity()
        )
        self.spatial: nn.Module = (
            SpatialAttention(kernel_size=kernel_size) if spatial else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


class ResidualEncoderBlock(nn.Module):
    """Residual encoder block: two 3x3 conv-norm-ReLU units plus a shortcut.

    ``conv(x) + residual(x)``, where ``conv`` holds :class:`ConvNormAct`
    ``unit0`` and ``unit1`` and ``residual`` is a 1x1 convolution (with bias)
    when the channel count changes, the identity otherwise: the computation
    and state-dict keys of MONAI's ``ResidualUnit`` in 2D with two sub-units,
    ReLU and ``last_conv_only=False``.

    Parameters
    ----------
    in_channels, out_channels:
        Channel counts.
    norm:
        ``"batch"``, ``"instance"`` or ``"group"`` (8 groups).
    dropout:
        Dropout probability inside the block.

    Examples
    --------
    >>> ResidualEncoderBlock(1, 8)(torch.zeros(1, 1, 16, 16)).shape
    torch.Size([1, 8, 16, 16])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        norm: NormName = "batch",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _positive_int(in_channels, "in_channels")
        _positive_int(out_channels, "out_channels")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv = nn.Sequential()
        self.conv.add_module("unit0", ConvNormAct(in_channels, out_channels, norm=norm, dropout=dropout))
        self.conv.add_module("unit1", ConvNormAct(out_channels, out_channels, norm=norm, dropout=dropout))
        self.residual: nn.Module = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.residual(x)


def sinusoidal_encoding_2d(
    channels: int, height: int, width: int, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Fixed 2D sine/cosine positional encoding of shape ``(1, channels, height, width)``.

    The first half of the channels encodes the row, the second half the
    column, each as interleaved ``sin``/``cos`` pairs at geometric frequencies
    ``1 / 10000^(2i / (channels / 2))`` (Vaswani et al. 2017, extended to 2D).

    Parameters
    ----------
    channels:
        Number of channels; a multiple of 4.
    height, width:
        Grid size.
    dtype:
        Floating dtype of the result.

    Examples
    --------
    >>> sinusoidal_encoding_2d(8, 4, 6).shape
    torch.Size([1, 8, 4, 6])
    """
    _positive_int(channels, "channels")
    if not torch.jit.is_tracing():  # traced for ONNX, height and width are 0-d tensors (dynamic sizes)
        _positive_int(height, "height")
        _positive_int(width, "width")
    if channels % 4 != 0:
        raise ValueError(
            f"Argument 'channels' must be a multiple of 4 for a 2D sinusoidal encoding; "
            f"got {channels}."
        )
    half = channels // 2
    freqs = torch.exp(
        torch.arange(0, half, 2, dtype=torch.float64) * (-math.log(10000.0) / half)
    )  # (half/2,)
    pos_y = torch.arange(height, dtype=torch.float64)[:, None] * freqs[None, :]  # (H, half/2)
    pos_x = torch.arange(width, dtype=torch.float64)[:, None] * freqs[None, :]  # (W, half/2)
    enc_y = torch.stack([pos_y.sin(), pos_y.cos()], dim=-1).reshape(height, half)  # (H, half)
    enc_x = torch.stack([pos_x.sin(), pos_x.cos()], dim=-1).reshape(width, half)  # (W, half)
    pe = torch.cat(
        [
            enc_y.T[:, :, None].expand(half, height, width),
            enc_x.T[:, None, :].expand(half, height, width),
        ],
        dim=0,
    )
    return pe.unsqueeze(0).to(dtype)


class PositionalEncoding2D(nn.Module):
    """Adds a 2D positional encoding to a ``(B, C, H, W)`` feature map.

    Parameters
    ----------
    channels:
        Number of channels ``C`` (a multiple of 4 for ``"sinusoidal"``).
    grid_size:
        ``(H, W)`` the encoding is built for (the bottom of the network for
        its configured input size).
    kind:
        ``"sinusoidal"``: fixed, not in the state dict, recomputed when a
        feature map of another size arrives. ``"learned"``: a parameter of
        shape ``(1, C, H, W)`` initialised with N(0, 0.02^2), bilinearly
        resized when a feature map of another size arrives.

    Examples
    --------
    >>> pe = PositionalEncoding2D(16, grid_size=(4, 4), kind="sinusoidal")
    >>> pe(torch.zeros(1, 16, 4, 4)).abs().sum() > 0
    tensor(True)
    """

    def __init__(
        self,
        channels: int,
        *,
        grid_size: tuple[int, int],
        kind: PositionalEncodingKind = "sinusoidal",
    ) -> None:
        super().__init__()
        _positive_int(channels, "channels")
        if len(grid_size) != 2:
            raise ValueError(f"Argument 'grid_size' must be (height, width); got {grid_size!r}.")
        height = _positive_int(int(grid_size[0]), "grid_size")
        width = _positive_int(int(grid_size[1]), "grid_size")
        self.channels = channels
        self.grid_size = (height, width)
        self.kind = kind
        self.pe: torch.Tensor
        if kind == "sinusoidal":
            self.register_buffer(
                "pe", sinusoidal_encoding_2d(channels, height, width), persistent=False
            )
        elif kind == "learned":
            self.pe = nn.Parameter(torch.empty(1, channels, height, width))
            nn.init.trunc_normal_(self.pe, std=0.02)
        else:
            raise ValueError(
                f"Argument 'kind' must be 'sinusoidal' or 'learned'; got {kind!r}."
            )

    def encoding(self, height: int, width: int) -> torch.Tensor:
        """The ``(1, C, height, width)`` encoding for a feature map of that size."""
        if (height, width) == self.grid_size:
            return self.pe
        if self.kind == "sinusoidal":
            return sinusoidal_encoding_2d(self.channels, height, width).to(self.pe.device)
        return F.interpolate(self.pe, size=(height, width), mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.channels:
            raise ValueError(
                f"Argument 'x' must have {self.channels} channels; got {x.shape[1]}."
            )
        return x + self.encoding(x.shape[-2], x.shape[-1]).to(x.dtype)


class SelfAttentionBottleneck(nn.Module):
    """Multi-head self-attention over every position of a feature map.

    ``y = x + reshape(MHA(LN(flatten(x + PE))))``: the positional encoding is
    added, the ``H*W`` positions become a sequence of ``C``-dimensional tokens,
    each head computes ``softmax(QK^T / sqrt(d_k)) V`` with learned ``W_q``,
    ``W_k``, ``W_v``, and the result is reshaped back. The pre-norm and the
    residual connection are additions to the seed's description (which gives
    neither) that keep training stable; with the attention output at zero the
    block is the identity, so the plain U-Net is a special case.

    Parameters
    ----------
    channels:
        Token dimension ``C``; divisible by ``num_heads``.
    grid_size:
        ``(H, W)`` of the feature map, for the positional encoding.
    num_heads:
        Number of attention heads.
    pos_encoding:
        ``"sinusoidal"`` or ``"learned"`` (see :class:`PositionalEncoding2D`).
    dropout:
        Dropout on the attention weights.

    Examples
    --------
    >>> sa = SelfAttentionBottleneck(32, grid_size=(4, 4), num_heads=4)
    >>> sa(torch.zeros(2, 32, 4, 4)).shape
    torch.Size([2, 32, 4, 4])
    """

    def __init__(
        self,
        channels: int,
        *,
        grid_size: tuple[int, int],
        num_heads: int = 8,
        pos_encoding: PositionalEncodingKind = "sinusoidal",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _positive_int(channels, "channels")
        _positive_int(num_heads, "num_heads")
        if channels % num_heads != 0:
            raise ValueError(
                f"Argument 'num_heads' ({num_heads}) must divide the bottleneck channel "
                f"count ({channels})."
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"Argument 'dropout' must be in [0, 1); got {dropout}.")
        self.pos = PositionalEncoding2D(channels, grid_size=grid_size, kind=pos_encoding)
        self.norm = nn.LayerNorm(channels)
        self.attn = nn.MultiheadAttention(
            channels, num_heads, dropout=dropout, batch_first=True
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.pos(x).flatten(2).transpose(1, 2)  # (B, H*W, C)
        tokens = self.norm(tokens)
        out = self._attend(tokens)
        return x + out.transpose(1, 2).reshape(b, c, h, w)

    def _attend(self, tokens: torch.Tensor) -> torch.Tensor:
        """``self.attn(tokens, tokens, tokens)`` through one fused attention kernel.

        The same weights and the same computation as
        :class:`torch.nn.MultiheadAttention` (packed ``W_q, W_k, W_v``
        projection, ``softmax(QK^T / sqrt(d_k)) V`` per head, output
        projection), written with :func:`torch.nn.functional.scaled_dot_product_attention`
        on contiguous ``(B, heads, L, d_k)`` tensors. ``nn.MultiheadAttention``
        itself, under bf16 autocast, leaves its fused path and multiplies a
        transposed, non-contiguous input, for which torch copies the projection
        weight once per token (1.6 GB and ~9 s per batch of four 512x512 slices
        of the full-size network on two CPU cores).
        """
        attn = self.attn
        bsz, length, embed = tokens.shape
        heads = attn.num_heads
        qkv = F.linear(tokens, attn.in_proj_weight, attn.in_proj_bias)  # (B, L, 3C)
        qkv = qkv.view(bsz, length, 3, heads, embed // heads).permute(2, 0, 3, 1, 4)  # (3, B, heads, L, d_k)
        drop = attn.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], dropout_p=drop)  # (B, heads, L, d_k)
        out = out.transpose(1, 2).reshape(bsz, length, embed)
        return F.linear(out, attn.out_proj.weight, attn.out_proj.bias)


class DecoderBlock(nn.Module):
    """Decoder stage: bilinear x2 up-sampling, concatenation, two 3x3 convs.

    Parameters
    ----------
    in_channels:
        Channels of the feature map coming from below.
    skip_channels:
        Channels of the (attended) skip connection at the target size.
    out_channels:
        Channels out of both convolutions.
    norm:
        ``"batch"``, ``"instance"`` or ``"group"``.
    dropout:
        Dropout probability after each convolution.

    Examples
    --------
    >>> up = DecoderBlock(16, 8, 8)
    >>> up(torch.zeros(1, 16, 4, 4), torch.zeros(1, 8, 8, 8)).shape
    torch.Size([1, 8, 8, 8])
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        *,
        norm: NormName = "batch",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _positive_int(in_channels, "in_channels")
        _positive_int(skip_channels, "skip_channels")
        _positive_int(out_channels, "out_channels")
        self.conv = nn.Sequential(
            ConvNormAct(in_channels + skip_channels, out_channels, norm=norm, dropout=dropout),
            ConvNormAct(out_channels, out_channels, norm=norm, dropout=dropout),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.conv(torch.cat([skip, up], dim=1))
