"""Where a training run's weights start: an ichpipe checkpoint (``train seg --init``), widened when needed.

A fine-tuning run starts from a checkpoint of the same architecture. A run with slice context
(``training.slice_context_mm``) may start from a one-slice checkpoint: its first convolution's
weights are widened to the three slices, the neighbours' weights zero, so the run starts from
exactly the one-slice network's outputs (:func:`widen_input_channels`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ichpipe.errors import CheckpointError
from ichpipe.models.checkpoint import load_checkpoint
from ichpipe.pipeline.segment.slice_context import CONTEXT_CHANNELS

__all__ = ["load_initial_weights", "widen_input_channels"]


def load_initial_weights(model: nn.Module, path: Path, *, name: str) -> dict[str, Any]:
    """Copy the weights of the ichpipe checkpoint ``path`` into ``model`` (fine-tuning); return its metadata.

    The checkpoint is read with ``torch.load(..., weights_only=True)`` and its digest checked
    (:func:`ichpipe.models.checkpoint.load_checkpoint`).

    Raises
    ------
    CheckpointError
        If the file cannot be read, or is not a checkpoint of registry model ``name`` whose
        weights fit ``model`` (same architecture and arguments).
    """
    checkpoint = load_checkpoint(path, expected_name=name, map_location="cpu")
    state = widen_input_channels(dict(checkpoint.state_dict), model.state_dict())
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"Checkpoint {path} does not fit the model being trained ({first}); --init needs a checkpoint of the"
            " same architecture and arguments (--model, --model-arg, --input-size)."
        ) from exc
    metrics = dict(checkpoint.metadata.get("metrics") or {})
    return {"path": str(path), "sha256": checkpoint.file_sha256, "metrics": metrics}


def widen_input_channels(state: dict[str, torch.Tensor], target: Mapping[str, torch.Tensor]
                         ) -> dict[str, torch.Tensor]:
    """A one-slice network's weights for the same network with slice context (3 input channels).

    Every 4-D weight that has 1 input channel in ``state`` and 3 in ``target`` becomes
    ``[0, w, 0]`` along the input channels: the widened network computes exactly what the
    one-slice network did (the neighbours' weights start at zero and are learnt). Other entries
    are returned unchanged (a real mismatch is left for ``load_state_dict`` to report).
    """
    out = dict(state)
    for key, value in state.items():
        want = target.get(key)
        if want is None or value.ndim != 4 or want.ndim != 4:
            continue
        if value.shape[1] == 1 and want.shape[1] == CONTEXT_CHANNELS and value.shape[0] == want.shape[0]:
            wide = torch.zeros(want.shape, dtype=value.dtype)
            wide[:, 1:2] = value
            out[key] = wide
    return out
