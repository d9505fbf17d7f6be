"""Parameter and FLOP counts of a model, for the benchmark table.

FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode` on one
forward pass: it counts matrix multiplications and convolutions (2 FLOPs per
multiply-add, attention included) and ignores element-wise work (norms,
activations, pooling, interpolation), so it is a floor for the real work.

The pass runs on a copy of the model on the ``meta`` device: nothing is
computed, no activation memory is used, and
:class:`torch.nn.MultiheadAttention` takes its decomposed path, whose matrix
products the counter sees (its fused CPU kernel would not be counted).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_flops", "count_parameters"]


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (elements) of ``model``.

    Examples
    --------
    >>> count_parameters(nn.Linear(3, 2))
    8
    """
    return sum(
        p.numel() for p in model.parameters() if p.requires_grad or not trainable_only
    )


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """FLOPs of one eval-mode forward pass on a batch of ``input_shape``.

    Counted on a ``meta``-device copy of ``model``; ``model`` itself is not
    touched.

    Examples
    --------
    >>> count_flops(nn.Linear(3, 2), (4, 3))
    48
    """
    if not input_shape or any(int(s) < 1 for s in input_shape):
        raise ValueError(f"Argument 'input_shape' must be positive sizes; got {input_shape!r}.")
    meta = copy.deepcopy(model).to("meta").eval()
    x = torch.empty(*(int(s) for s in input_shape), device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta(x)
    return int(counter.get_total_flops())
