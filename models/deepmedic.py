"""DeepMedic, the 3D multi-scale network of BLAST-CT v1, written to load its published weights.

The pre-activation block lives here rather than in :mod:`ichpipe.models.blocks`, whose blocks
are the 2D SA-CBAM U-Net's; it is 3D and its attribute names are fixed by the published keys.

DeepMedic (Kamnitsas et al., Medical Image Analysis 2017) as configured by BLAST-CT v1
(Monteiro et al., Lancet Digital Health 2020): three parallel pathways see the same input
at sub-sampling factors 5, 3 and 1 (a coarse, a middle and the "normal" full-resolution
context), each through eight pre-activation 3x3x3 blocks without padding; their outputs are
up-sampled back to full resolution, centre-cropped to a common size, concatenated and
classified voxel by voxel by 1x1x1 blocks. The module and parameter names follow the
published ``state_dict`` (``path(5, 5, 5)0.path.1.bn.weight`` ...), so
``load_state_dict(strict=True)`` accepts the twelve BLAST-CT v1 models unchanged.

Geometry (per axis; the network is fully convolutional):

- every block shrinks its input by one voxel a side, so a pathway with factor ``s`` needs
  ``s * (ceil(out / s) + 16)`` input voxels for ``out`` output voxels;
- the network input is the largest pathway's: ``out + 80`` for an output that is a multiple of
  the largest factor (5), i.e. a margin of 40 voxels a side (``input_size_for_output``);
- pathway ``s`` centre-crops the input to its own size, keeps every ``s``-th voxel starting at
  ``s // 2`` (the centre of each block of ``s`` voxels), runs its blocks, repeats each voxel
  ``s`` times and centre-crops to the output size. With the floor convention of the crop
  (start ``size // 2 - crop // 2``), the coarse voxel that feeds an output voxel lies within
  ``s // 2`` voxels of it on every axis: the up-sampled coarse maps are centred on the normal
  pathway's output. ``coarse_sample_index`` gives that voxel for any output size; the tests
  check the forward pass against it.

For an output size that is a multiple of 15 (all factors) on every axis, each coarse grid is
anchored at the first output voxel, so tiles of such sizes placed at multiples of 15 give
exactly the result of one pass over the whole volume (BLAST-CT itself tiles by 30).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "DROPOUT",
    "FEATURE_MAPS",
    "FULLY_CONNECTED",
    "SCALE_FACTORS",
    "DeepMedic",
    "PreActBlock",
    "coarse_sample_index",
    "crop_center",
    "input_size_for_output",
    "output_size_for_input",
    "pathway_input_size",
]

SCALE_FACTORS: tuple[tuple[int, int, int], ...] = ((5, 5, 5), (3, 3, 3), (1, 1, 1))
"""Sub-sampling factor of each pathway, coarsest first (BLAST-CT v1)."""
FEATURE_MAPS: tuple[int, ...] = (30, 30, 40, 40, 40, 40, 50, 50)
"""Output channels of the eight 3x3x3 blocks of every pathway."""
FULLY_CONNECTED: tuple[int, ...] = (250, 250)
"""Hidden channels of the 1x1x1 classification head."""
DROPOUT: tuple[float, ...] = (0.0, 0.5, 0.5)
"""Dropout before each head block (training only; inactive in ``eval()``)."""

Size3 = tuple[int, int, int]


def _size3(value: Sequence[int], name: str) -> Size3:
    """Check a 3-axis size of positive integers."""
    try:
        items = tuple(value)
    except TypeError:
        raise ValueError(f"Argument '{name}' must be a sequence of 3 positive integers; got {value!r}.") from None
    if len(items) != 3 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in items):
        raise ValueError(f"Argument '{name}' must be a sequence of 3 positive integers; got {value!r}.")
    return (items[0], items[1], items[2])


def crop_center(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Centre-crop the last three axes of ``x`` to ``size`` (a view, no copy).

    The crop starts at ``n // 2 - size // 2`` on an axis of length ``n`` (floor convention, as
    BLAST-CT), so with an odd surplus the extra voxel is dropped at the end.

    Parameters
    ----------
    x
        tensor of shape ``(..., D, H, W)``.
    size
        the ``(d, h, w)`` to keep; each no larger than the axis.

    Returns
    -------
    torch.Tensor
        The cropped view.

    Raises
    ------
    ValueError
        ``size`` is not three positive integers or exceeds ``x``'s spatial shape.

    Examples
    --------
    >>> crop_center(torch.zeros(1, 1, 7, 8, 9), (3, 4, 5)).shape
    torch.Size([1, 1, 3, 4, 5])
    """
    want = _size3(size, "size")
    have = tuple(x.shape[-3:])
    if x.dim() < 3 or any(w > h for w, h in zip(want, have, strict=True)):
        raise ValueError(f"Argument 'size' {want} does not fit in the tensor's spatial shape {have}.")
    if want == have:
        return x
    a, b, c = (slice(h // 2 - w // 2, h // 2 - w // 2 + w) for h, w in zip(have, want, strict=True))
    return x[..., a, b, c]


def pathway_input_size(output_size: Sequence[int], factor: Sequence[int], *, n_blocks: int = 8) -> Size3:
    """Input a pathway needs (before its sub-sampling) for a given output size.

    Parameters
    ----------
    output_size
        ``(d, h, w)`` of the network output.
    factor
        the pathway's sub-sampling factor per axis.
    n_blocks
        number of 3x3x3 blocks (each removes one coarse voxel a side).

    Returns
    -------
    tuple of int
        ``s * (ceil(out / s) + 2 * n_blocks)`` per axis.

    Examples
    --------
    >>> pathway_input_size((30, 30, 30), (3, 3, 3))
    (78, 78, 78)
    """
    out = _size3(output_size, "output_size")
    fac = _size3(factor, "factor")
    size = tuple(s * (math.ceil(o / s) + 2 * n_blocks) for o, s in zip(out, fac, strict=True))
    return (size[0], size[1], size[2])


def input_size_for_output(output_size: Sequence[int], *, scale_factors: Sequence[Sequence[int]] = SCALE_FACTORS,
                          n_blocks: int = 8) -> Size3:
    """Network input size that yields ``output_size``.

    Parameters
    ----------
    output_size
        ``(d, h, w)`` wanted; each a multiple of the largest factor on that axis.
    scale_factors
        the pathways' factors (default BLAST-CT v1's).
    n_blocks
        blocks per pathway.

    Returns
    -------
    tuple of int
        The input size: ``output + 2 * n_blocks * max_factor`` per axis (``output + 80``).

    Raises
    ------
    ValueError
        an axis of ``output_size`` is not a positive multiple of the largest factor.

    Examples
    --------
    >>> input_size_for_output((30, 30, 30))
    (110, 110, 110)
    """
    out = _size3(output_size, "output_size")
    largest = tuple(max(int(f[a]) for f in scale_factors) for a in range(3))
    for o, s in zip(out, largest, strict=True):
        if o % s:
            raise ValueError(
                f"Argument 'output_size' {out} must be a multiple of {s} (the largest sub-sampling factor) "
                "on every axis."
            )
    sizes = [pathway_input_size(out, f, n_blocks=n_blocks) for f in scale_factors]
    size = tuple(max(s[a] for s in sizes) for a in range(3))
    return (size[0], size[1], size[2])


def output_size_for_input(input_size: Sequence[int], *, scale_factors: Sequence[Sequence[int]] = SCALE_FACTORS,
                          n_blocks: int = 8) -> Size3:
    """Output size for a network input size, which must be exactly a valid one.

    Parameters
    ----------
    input_size
        ``(d, h, w)`` of the input.
    scale_factors
        the pathways' factors.
    n_blocks
        blocks per pathway.

    Returns
    -------
    tuple of int
        The output size (``input - 80`` per axis with the default factors).

    Raises
    ------
    ValueError
        no output size needs exactly this input (it would waste or lack voxels); the
        message names the nearest valid input sizes.

    Examples
    --------
    >>> output_size_for_input((110, 110, 110))
    (30, 30, 30)
    """
    size = _size3(input_size, "input_size")
    largest = tuple(max(int(f[a]) for f in scale_factors) for a in range(3))
    margin = tuple(2 * n_blocks * s for s in largest)
    out = tuple(i - m for i, m in zip(size, margin, strict=True))
    if any(o < s or o % s for o, s in zip(out, largest, strict=True)):
        lower = tuple(max(s, (o // s) * s) + m for o, s, m in zip(out, largest, margin, strict=True))
        upper = tuple(max(s, -(-o // s) * s) + m for o, s, m in zip(out, largest, margin, strict=True))
        raise ValueError(
            f"Argument 'input_size' {size} is not a valid DeepMedic input: use {lower} or {upper} "
            f"(output + {margin}, with an output that is a positive multiple of {largest})."
        )
    return (out[0], out[1], out[2])


def coarse_sample_index(output_size: int, factor: int, *, n_blocks: int = 8, largest_factor: int = 5) -> list[int]:
    """Input voxel (on one axis) whose sub-sampled value feeds each output voxel of a pathway.

    This is the arithmetic of :meth:`DeepMedic.forward` written out per axis: crop, keep every
    ``factor``-th voxel from ``factor // 2``, lose ``n_blocks`` coarse voxels a side, repeat
    ``factor`` times, crop. The normal pathway's output voxel ``j`` sits on input voxel
    ``margin + j``; the value returned for ``j`` lies within ``factor // 2`` of it.

    Parameters
    ----------
    output_size
        output length on this axis (a multiple of ``largest_factor``).
    factor
        the pathway's sub-sampling factor on this axis.
    n_blocks
        blocks per pathway.
    largest_factor
        largest factor of the network on this axis (sets the input size).

    Returns
    -------
    list of int
        For each output voxel ``j``, the index in the network input of its coarse voxel.

    Examples
    --------
    >>> coarse_sample_index(30, 5)[:6]
    [42, 42, 42, 42, 42, 47]
    """
    if output_size < 1 or output_size % largest_factor:
        raise ValueError(f"Argument 'output_size' must be a positive multiple of {largest_factor}; got {output_size}.")
    if factor < 1 or factor > largest_factor:
        raise ValueError(f"Argument 'factor' must be between 1 and {largest_factor}; got {factor}.")
    total = output_size + 2 * n_blocks * largest_factor
    n_coarse = math.ceil(output_size / factor)
    crop = factor * (n_coarse + 2 * n_blocks)
    start = total // 2 - crop // 2
    samples = [start + factor // 2 + factor * k for k in range(n_coarse + 2 * n_blocks)]
    kept = samples[n_blocks:n_blocks + n_coarse]
    upsampled = [v for v in kept for _ in range(factor)]
    up_start = len(upsampled) // 2 - output_size // 2
    return upsampled[up_start:up_start + output_size]


class PreActBlock(nn.Module):
    """Pre-activation block: BatchNorm -> Dropout -> PReLU -> convolution (no bias, no padding).

    When the block keeps the channel count, the input, centre-cropped to the output, is added
    (residual). The residual branch takes the input before normalisation, as BLAST-CT does.

    Parameters
    ----------
    in_channels
        input channels.
    out_channels
        output channels.
    kernel_size
        3 for the pathways' 3x3x3 blocks, 1 for the head's 1x1x1 blocks.
    dropout
        dropout probability (training only).

    Examples
    --------
    >>> block = PreActBlock(4, 4).eval()
    >>> block(torch.zeros(1, 4, 5, 5, 5)).shape
    torch.Size([1, 4, 3, 3, 3])
    """

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        if kernel_size not in (1, 3):
            raise ValueError(f"Argument 'kernel_size' must be 1 or 3; got {kernel_size!r}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"Argument 'dropout' must be in [0, 1); got {dropout!r}.")
        self.bn = nn.BatchNorm3d(in_channels)
        self.dropout = nn.Dropout(dropout)
        self.prelu = nn.PReLU()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size=kernel_size, bias=False)
        self.residual = in_channels == out_channels
        self.trim = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block; spatial size shrinks by ``kernel_size - 1``."""
        if self.training or torch.is_grad_enabled():
            h = self.prelu(self.dropout(self.bn(x)))
        else:  # inference: dropout is the identity; one-parameter PReLU == leaky ReLU, in place
            h = F.leaky_relu_(self.bn(x), float(self.prelu.weight))
        out = self.conv(h)
        if self.residual:
            t = self.trim
            out += x[..., t:-t, t:-t, t:-t] if t else x
        return out


class _SubSample(nn.Module):
    """Keep every s-th voxel from s // 2 (the centre of each block of s voxels)."""

    def __init__(self, factor: Size3) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.factor == (1, 1, 1):
            return x
        a, b, c = self.factor
        return x[..., a // 2::a, b // 2::b, c // 2::c]


class _UpSample(nn.Module):
    """Repeat every voxel s times per axis (nearest-neighbour up-sampling by an integer factor)."""

    def __init__(self, factor: Size3) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.factor == (1, 1, 1):
            return x
        for axis, s in zip((-3, -2, -1), self.factor, strict=True):
            if s > 1:
                x = torch.repeat_interleave(x, s, dim=axis)
        return x


class _Pathway(nn.Module):
    """One DeepMedic pathway: sub-sample, eight 3x3x3 pre-activation blocks, up-sample."""

    def __init__(self, factor: Size3, in_channels: int, feature_maps: Sequence[int]) -> None:
        super().__init__()
        self.factor = factor
        self.n_blocks = len(feature_maps)
        layers: list[nn.Module] = [_SubSample(factor)]
        channels = in_channels
        for fm in feature_maps:
            layers.append(PreActBlock(channels, fm))
            channels = fm
        layers.append(_UpSample(factor))
        self.path = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, output_size: Size3) -> torch.Tensor:
        out = crop_center(x, pathway_input_size(output_size, self.factor, n_blocks=self.n_blocks))
        return crop_center(self.path(out), output_size)


class DeepMedic(nn.Module):
    """The BLAST-CT v1 DeepMedic: three pathways (factors 5, 3, 1) and a 1x1x1 head.

    The input is ``(N, C, D, H, W)`` with each spatial size ``output + 80`` (output a multiple
    of 5); the output is ``(N, num_classes, D - 80, H - 80, W - 80)`` logits for the centre.
    Use :func:`input_size_for_output` to size inputs. Call ``eval()`` before inference
    (BatchNorm running statistics, no dropout).

    Parameters
    ----------
    in_channels
        input channels (1 for CT).
    num_classes
        classes (5 for BLAST-CT: background, IPH, extra-axial, oedema, IVH).
    scale_factors
        sub-sampling factor of each pathway, non-increasing on every axis.
    feature_maps
        channels of the blocks of every pathway.
    fully_connected
        hidden channels of the head.
    dropout
        head dropout, one more entry than ``fully_connected``.

    Raises
    ------
    ValueError
        inconsistent options.

    Examples
    --------
    >>> net = DeepMedic().eval()
    >>> with torch.inference_mode():
    ...     logits = net(torch.zeros(1, 1, 85, 85, 90))
    >>> tuple(logits.shape)
    (1, 5, 5, 5, 10)
    >>> state = net.state_dict()  # keys as BLAST-CT's: 'path(5, 5, 5)0.path.1.bn.weight', ...
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        num_classes: int = 5,
        scale_factors: Sequence[Sequence[int]] = SCALE_FACTORS,
        feature_maps: Sequence[int] = FEATURE_MAPS,
        fully_connected: Sequence[int] = FULLY_CONNECTED,
        dropout: Sequence[float] = DROPOUT,
    ) -> None:
        super().__init__()
        if in_channels < 1 or num_classes < 1:
            raise ValueError("Arguments 'in_channels' and 'num_classes' must be positive.")
        factors = tuple(_size3(f, "scale_factors") for f in scale_factors)
        if not factors:
            raise ValueError("Argument 'scale_factors' must name at least one pathway.")
        for axis in range(3):
            column = [f[axis] for f in factors]
            if any(a < b for a, b in itertools.pairwise(column)):
                raise ValueError(f"Argument 'scale_factors' must be non-increasing on every axis; got {factors}.")
        if not feature_maps:
            raise ValueError("Argument 'feature_maps' must not be empty.")
        if len(dropout) != len(fully_connected) + 1:
            raise ValueError("Argument 'dropout' must have one more entry than 'fully_connected'.")
        self.scale_factors = factors
        self.n_blocks = len(feature_maps)
        self.num_classes = num_classes
        self.paths: list[_Pathway] = []
        for i, factor in enumerate(factors):
            path = _Pathway(factor, in_channels, feature_maps)
            self.add_module(f"path{factor}{i}", path)  # 'path(5, 5, 5)0', as the published keys
            self.paths.append(path)
        channels = (feature_maps[-1] * len(factors), *fully_connected, num_classes)
        self.fully_connected = nn.Sequential(*(
            PreActBlock(channels[i], channels[i + 1], kernel_size=1, dropout=dropout[i])
            for i in range(len(channels) - 1)
        ))

    @property
    def margin(self) -> Size3:
        """Voxels lost on each side per axis (``n_blocks * largest factor``: 40)."""
        m = tuple(self.n_blocks * self.scale_factors[0][a] for a in range(3))
        return (m[0], m[1], m[2])

    def input_size(self, output_size: Sequence[int]) -> Size3:
        """Input size for ``output_size`` (see :func:`input_size_for_output`)."""
        return input_size_for_output(output_size, scale_factors=self.scale_factors, n_blocks=self.n_blocks)

    def output_size(self, input_size: Sequence[int]) -> Size3:
        """Output size for ``input_size`` (see :func:`output_size_for_input`)."""
        return output_size_for_input(input_size, scale_factors=self.scale_factors, n_blocks=self.n_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes, D - 80, H - 80, W - 80)`` for an input ``(N, C, D, H, W)``.

        Raises
        ------
        ValueError
            ``x`` is not 5-D or its spatial size is not a valid input size.
        """
        if x.dim() != 5:
            raise ValueError(f"Argument 'x' must be a 5-D tensor (N, C, D, H, W); got shape {tuple(x.shape)}.")
        output_size = self.output_size(tuple(int(s) for s in x.shape[2:]))
        out = torch.cat([path(x, output_size) for path in self.paths], dim=1)
        return self.fully_connected(out)

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor], *, flush_denormals: bool = True) -> DeepMedic:
        """Build the BLAST-CT v1 network and load ``state_dict`` strictly, in eval mode.

        Parameters
        ----------
        state_dict
            e.g. ``torch.load("model_1.pt", weights_only=True)``.
        flush_denormals
            set parameters smaller in magnitude than float32's smallest normal
            number (~1.2e-38) to zero. The published BLAST-CT weights hold 10-30 % of such
            values (weight decay drove them there); x86 CPUs compute with them 10-20 times
            slower, and flushing them is what the CPU's flush-to-zero mode would do anyway
            (each product changes by less than 1e-38).

        Returns
        -------
        DeepMedic
            The network with those weights, in ``eval()`` mode.

        Raises
        ------
        ValueError
            keys or shapes do not match BLAST-CT v1's (the message lists the first
            missing, unexpected or mis-shaped keys).
        """
        net = cls()
        own = net.state_dict()
        missing = sorted(set(own) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(own))
        shapes = sorted(k for k in set(own) & set(state_dict) if tuple(own[k].shape) != tuple(state_dict[k].shape))
        if missing or unexpected or shapes:
            raise ValueError(
                "Argument 'state_dict' is not a BLAST-CT v1 DeepMedic state dict: "
                f"{len(missing)} missing keys {missing[:3]}, {len(unexpected)} unexpected keys {unexpected[:3]}, "
                f"{len(shapes)} keys of another shape {shapes[:3]}."
            )
        if flush_denormals:
            tiny = torch.finfo(torch.float32).tiny
            state_dict = {k: v.masked_fill(v.abs() < tiny, 0.0) if v.is_floating_point() else v
                          for k, v in state_dict.items()}
        net.load_state_dict(state_dict, strict=True)
        return net.eval()
