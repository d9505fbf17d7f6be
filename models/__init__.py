"""Networks and their checkpoints: pure PyTorch and MONAI, no DICOM, no I/O but checkpoints.

- :class:`SACBAMUNet` (seed 000) with its ablation switches, and MONAI
  baselines behind the same segmenter contract: ``(B, 1, H, W)`` in, H and W
  multiples of 16 (the caller pads), ``(B, 1, H, W)`` probabilities out.
- :class:`DeepMedic`: the 3D network of the peer BLAST-CT v1, to load its published weights
  (``ichpipe run --segmenter blast_ct``); not in the registry, it is never trained here.
- :class:`ExpansionSACNN` (seed 004): tabular features in, one logit out.
- The registry (:data:`MODEL_REGISTRY`, :data:`SEGMENTER_NAMES`,
  :func:`build_model`): names and default arguments in one place.
- Checkpoints (:func:`save_checkpoint`, :func:`load_checkpoint`,
  :func:`load_model`, :func:`file_sha256`), TorchScript export, and ONNX export
  (:func:`export_checkpoint_onnx`) with its torch-free runtime (:func:`load_onnx_segmenter`).

This package never imports ``dicom_io`` or ``pipeline``. Importing it is cheap:
each public name is imported from its module on first use (PEP 562), so
commands that never touch a network do not pay for torch and MONAI.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "CBAM": "ichpipe.models.blocks",
    "ChannelAttention": "ichpipe.models.blocks",
    "Checkpoint": "ichpipe.models.checkpoint",
    "DOWNSAMPLING_FACTOR": "ichpipe.models.sa_cbam_unet",
    "DecoderBlock": "ichpipe.models.blocks",
    "DeepMedic": "ichpipe.models.deepmedic",
    "ExpansionSACNN": "ichpipe.models.predictor",
    "FORMAT_NAME": "ichpipe.models.checkpoint",
    "FORMAT_VERSION": "ichpipe.models.checkpoint",
    "MODEL_REGISTRY": "ichpipe.models.registry",
    "ModelSpec": "ichpipe.models.registry",
    "PREDICTOR_NAMES": "ichpipe.models.registry",
    "PositionalEncoding2D": "ichpipe.models.blocks",
    "ResidualEncoderBlock": "ichpipe.models.blocks",
    "SACBAMUNet": "ichpipe.models.sa_cbam_unet",
    "SEGMENTER_NAMES": "ichpipe.models.registry",
    "SegmentationBaseline": "ichpipe.models.baselines",
    "SelfAttentionBottleneck": "ichpipe.models.blocks",
    "SpatialAttention": "ichpipe.models.blocks",
    "atomic_write": "ichpipe.models.hashing",
    "build_basic_unet": "ichpipe.models.baselines",
    "build_model": "ichpipe.models.registry",
    "build_monai_unet": "ichpipe.models.baselines",
    "build_segresnet": "ichpipe.models.baselines",
    "check_spatial_size": "ichpipe.models.sa_cbam_unet",
    "count_flops": "ichpipe.models.complexity",
    "count_parameters": "ichpipe.models.complexity",
    "export_checkpoint_onnx": "ichpipe.models.onnx_export",
    "export_checkpoint_torchscript": "ichpipe.models.export",
    "export_torchscript": "ichpipe.models.export",
    "file_sha256": "ichpipe.models.hashing",
    "get_model_spec": "ichpipe.models.registry",
    "load_checkpoint": "ichpipe.models.checkpoint",
    "load_model": "ichpipe.models.checkpoint",
    "load_onnx_segmenter": "ichpipe.models.onnx_model",
    "load_torchscript": "ichpipe.models.export",
    "model_names": "ichpipe.models.registry",
    "paired_onnx": "ichpipe.models.onnx_model",
    "save_checkpoint": "ichpipe.models.checkpoint",
    "sinusoidal_encoding_2d": "ichpipe.models.blocks",
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
    "DeepMedic",
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
    "export_checkpoint_onnx",
    "export_checkpoint_torchscript",
    "export_torchscript",
    "file_sha256",
    "get_model_spec",
    "load_checkpoint",
    "load_model",
    "load_onnx_segmenter",
    "load_torchscript",
    "model_names",
    "paired_onnx",
    "save_checkpoint",
    "sinusoidal_encoding_2d",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use (keeps ``import ichpipe.models`` cheap)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
