"""Networks and their checkpoints: pure PyTorch and MONAI, no DICOM, no I/O but checkpoints.

- :class:`SACBAMUNet` (seed 000) with its ablation switches, and MONAI
  baselines behind the same segmenter contract: ``(B, 1, H, W)`` in, H and W
  multiples of 16 (the caller pads), ``(B, 1, H, W)`` probabilities out.
- :class:`ExpansionSACNN` (seed 004): tabular features in, one logit out.
- The registry (:data:`MODEL_REGISTRY`, :data:`SEGMENTER_NAMES`,
  :func:`build_model`): names and default arguments in one place.
- Checkpoints (:func:`save_checkpoint`, :func:`load_checkpoint`,
  :func:`load_model`, :func:`file_sha256`) and TorchScript export.

This package never imports ``dicom_io`` or ``pipeline``. Importing it is cheap:
each public name is imported from its module on first use (PEP 562), so
commands that never touch a network do not pay for torch and MONAI.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "CBAM": "models.blocks",
    "ChannelAttention": "models.blocks",
    "Checkpoint": "models.checkpoint",
    "DOWNSAMPLING_FACTOR": "models.sa_cbam_unet",
    "DecoderBlock": "models.blocks",
    "ExpansionSACNN": "models.predictor",
    "FORMAT_NAME": "models.checkpoint",
    "FORMAT_VERSION": "models.checkpoint",
    "MODEL_REGISTRY": "models.registry",
    "ModelSpec": "models.registry",
    "PREDICTOR_NAMES": "models.registry",
    "PositionalEncoding2D": "models.blocks",
    "ResidualEncoderBlock": "models.blocks",
    "SACBAMUNet": "models.sa_cbam_unet",
    "SEGMENTER_NAMES": "models.registry",
    "SegmentationBaseline": "models.baselines",
    "SelfAttentionBottleneck": "models.blocks",
    "SpatialAttention": "models.blocks",
    "atomic_write": "models.atomic",
    "build_basic_unet": "models.baselines",
    "build_model": "models.registry",
    "build_monai_unet": "models.baselines",
    "build_segresnet": "models.baselines",
    "check_spatial_size": "models.sa_cbam_unet",
    "count_flops": "models.complexity",
    "count_parameters": "models.complexity",
    "export_checkpoint_torchscript": "models.export",
    "export_torchscript": "models.export",
    "file_sha256": "models.atomic",
    "get_model_spec": "models.registry",
    "load_checkpoint": "models.checkpoint",
    "load_model": "models.checkpoint",
    "load_torchscript": "models.export",
    "model_names": "models.registry",
    "save_checkpoint": "models.checkpoint",
    "sinusoidal_encoding_2d": "models.blocks",
}

__all__ = [
    "CBAM",
    "DOWNSAMPLING_FACTOR",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MODEL_REGISTRY",
    "PREDICTOR_NAMES",
    "SEGMENTER_NAMES",
    "ChannelAttention",
    "Checkpoint",
    "DecoderBlock",
    "ExpansionSACNN",
    "ModelSpec",
    "PositionalEncoding2D",
    "ResidualEncoderBlock",
    "SACBAMUNet",
    "SegmentationBaseline",
    "SelfAttentionBottleneck",
    "SpatialAttention",
    "atomic_write",
    "build_basic_unet",
    "build_model",
    "build_monai_unet",
    "build_segresnet",
    "check_spatial_size",
    "count_flops",
    "count_parameters",
    "export_checkpoint_torchscript",
    "export_torchscript",
    "file_sha256",
    "get_model_spec",
    "load_checkpoint",
    "load_model",
    "load_torchscript",
    "model_names",
    "save_checkpoint",
    "sinusoidal_encoding_2d",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use (keeps ``import models`` cheap)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
