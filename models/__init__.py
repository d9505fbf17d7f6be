"""Networks and their checkpoints: pure PyTorch and MONAI, no DICOM, no I/O but checkpoints.

- :class:`SACBAMUNet` (seed 000) with its ablation switches, and MONAI
  baselines behind the same segmenter contract: ``(B, 1, H, W)`` in, H and W
  multiples of 16 (the caller pads), ``(B, 1, H, W)`` probabilities out.
- :class:`ExpansionSACNN` (seed 004): tabular features in, one logit out.
- The registry (:data:`MODEL_REGISTRY`, :data:`SEGMENTER_NAMES`,
  :func:`build_model`): names and default arguments in one place.
- Checkpoints (:func:`save_checkpoint`, :func:`load_checkpoint`,
  :func:`load_model`, :func:`file_sha256`) and TorchScript export.

This package never imports ``dicom_io`` or ``pipeline``.
"""

from models.atomic import atomic_write, file_sha256
from models.baselines import (
    SegmentationBaseline,
    build_basic_unet,
    build_monai_unet,
    build_segresnet,
)
from models.blocks import (
    CBAM,
    ChannelAttention,
    DecoderBlock,
    PositionalEncoding2D,
    ResidualEncoderBlock,
    SelfAttentionBottleneck,
    SpatialAttention,
    sinusoidal_encoding_2d,
)
from models.checkpoint import (
    FORMAT_NAME,
    FORMAT_VERSION,
    Checkpoint,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from models.complexity import count_flops, count_parameters
from models.export import export_checkpoint_torchscript, export_torchscript, load_torchscript
from models.predictor import ExpansionSACNN
from models.registry import (
    MODEL_REGISTRY,
    PREDICTOR_NAMES,
    SEGMENTER_NAMES,
    ModelSpec,
    build_model,
    get_model_spec,
    model_names,
)
from models.sa_cbam_unet import DOWNSAMPLING_FACTOR, SACBAMUNet, check_spatial_size

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
