"""An exported 2D segmenter run by ONNX Runtime, without importing torch.

The default run spends 1.1-1.5 s of its 5-6 s importing torch on two cores;
ONNX Runtime imports in about 0.1 s and runs the slim default network in fp32
faster than PyTorch does in bf16 (BENCHMARKS.md). An export is made by
:mod:`ichpipe.models.onnx_export` and stored beside its checkpoint with the
suffix ``.onnx`` (:func:`paired_onnx`); its metadata entry :data:`METADATA_KEY`
holds the checkpoint's identity (registry name, window, normalisation, input
size, the checkpoint file's SHA-256), which :func:`load_onnx_segmenter` checks.

Nothing here imports torch.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ichpipe.errors import CheckpointError, MissingExtraError
from ichpipe.models.hashing import file_sha256

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "METADATA_KEY",
    "OnnxSegmenterModel",
    "load_onnx_segmenter",
    "nvidia_gpu_visible",
    "onnxruntime_available",
    "paired_onnx",
]

#: ``format`` of the identity stored in an export.
FORMAT_NAME = "ichpipe-onnx"
#: Version of that identity; a newer one is refused.
FORMAT_VERSION = 1
#: Metadata key (``metadata_props``) of the identity JSON.
METADATA_KEY = "ichpipe"

_REQUIRED = ("format", "format_version", "model", "metadata", "source_checkpoint_sha256")


def onnxruntime_available() -> bool:
    """Whether ``onnxruntime`` can be imported (without importing it)."""
    return importlib.util.find_spec("onnxruntime") is not None


def nvidia_gpu_visible() -> bool:
    """Whether the NVIDIA driver lists a GPU (``/proc/driver/nvidia/gpus``), without importing torch.

    With ``inference.device: auto`` a GPU host runs PyTorch on the GPU, not ONNX Runtime on the CPU.
    """
    gpus = Path("/proc/driver/nvidia/gpus")
    try:
        return gpus.is_dir() and any(gpus.iterdir())
    except OSError:
        return False


def _omp_threads() -> int:
    """``OMP_NUM_THREADS`` as a positive int, else 0 (ONNX Runtime's own default)."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else 0


def paired_onnx(checkpoint: str | os.PathLike[str]) -> Path | None:
    """The export stored beside ``checkpoint`` (same name, suffix ``.onnx``), or ``None``.

    Examples
    --------
    >>> paired_onnx("/nonexistent/model.pt") is None
    True
    """
    candidate = Path(checkpoint).with_suffix(".onnx")
    return candidate if candidate.is_file() else None


@dataclass(frozen=True)
class OnnxSegmenterModel:
    """A loaded export: its identity and an ONNX Runtime session.

    Attributes
    ----------
    path:
        The ``.onnx`` file.
    file_sha256:
        SHA-256 of that file.
    name:
        Registry name of the exported model.
    metadata:
        The checkpoint's metadata (``input_size``, ``window``,
        ``normalisation``, ...).
    source_checkpoint_sha256:
        SHA-256 of the checkpoint file it was exported from.
    identity:
        The whole identity entry.
    """

    path: Path
    file_sha256: str
    name: str
    metadata: Mapping[str, Any]
    source_checkpoint_sha256: str
    identity: Mapping[str, Any]
    session: Any = field(repr=False)

    @property
    def input_size(self) -> tuple[int, ...]:
        """Input size the model was trained for (``(H, W)``)."""
        return tuple(int(v) for v in self.metadata["input_size"])

    @property
    def window(self) -> Mapping[str, float] | None:
        """``{"width", "level"}`` in HU, or None."""
        window: Mapping[str, float] | None = self.metadata.get("window")
        return window

    def run(self, images: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Network output for a ``(B, C, H, W)`` float32 batch (H, W multiples of 16).

        Raises
        ------
        ValueError
            If ``images`` is not a 4-D array.
        """
        if images.ndim != 4:
            raise ValueError(f"Argument 'images' must be a (B, C, H, W) array; got shape {images.shape}.")
        batch = np.ascontiguousarray(images, dtype=np.float32)
        out = self.session.run(None, {self.session.get_inputs()[0].name: batch})[0]
        return np.asarray(out, dtype=np.float32)


def _identity(path: Path, meta: Mapping[str, str]) -> dict[str, Any]:
    text = meta.get(METADATA_KEY)
    if text is None:
        raise CheckpointError(
            f"ONNX file '{path}' has no ichpipe identity; export it with"
            " `python -m ichpipe.models.onnx_export CHECKPOINT`."
        )
    try:
        identity = json.loads(text)
    except ValueError as exc:
        raise CheckpointError(
            f"ONNX file '{path}' has an unreadable ichpipe identity ({exc}); export it again."
        ) from exc
    missing = [key for key in _REQUIRED if not isinstance(identity, dict) or key not in identity]
    if missing or identity.get("format") != FORMAT_NAME:
        raise CheckpointError(f"ONNX file '{path}' lacks {', '.join(missing) or 'the format name'}; export it again.")
    if not isinstance(identity["format_version"], int) or identity["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"ONNX file '{path}' has format version {identity['format_version']!r}, newer than this ichpipe"
            f" reads ({FORMAT_VERSION}); use a newer ichpipe or export it again."
        )
    return identity


def load_onnx_segmenter(
    path: str | os.PathLike[str],
    *,
    threads: int = 0,
    expected_checkpoint_sha256: str | None = None,
) -> OnnxSegmenterModel:
    """Open an ichpipe ONNX export with ONNX Runtime (CPU) and check its identity.

    Parameters
    ----------
    path:
        The ``.onnx`` file.
    threads:
        Intra-op threads. 0: ``OMP_NUM_THREADS`` when the environment sets it
        (as PyTorch does, so the batch's pool workers share the cores the same
        way under either runtime), else ONNX Runtime's default (one per
        physical core). Idle threads sleep instead of spinning (cores are often
        shared).
    expected_checkpoint_sha256:
        When given, the export must have been made from the checkpoint file
        with this SHA-256.

    Raises
    ------
    ichpipe.errors.MissingExtraError
        If ``onnxruntime`` is not installed.
    ichpipe.errors.CheckpointError
        If the file cannot be read, lacks the identity, or belongs to another
        checkpoint.
    ValueError
        If ``threads`` is negative.
    """
    if threads < 0:
        raise ValueError(f"Argument 'threads' must not be negative; got {threads}.")
    file = Path(path)
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MissingExtraError(
            "Running an ONNX export needs onnxruntime (pip install onnxruntime); or set"
            " inference.runtime: torch."
        ) from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or _omp_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
        raise CheckpointError(
            f"ONNX file '{file}' could not be opened by onnxruntime ({type(exc).__name__}: {exc});"
            " export it again with `python -m ichpipe.models.onnx_export CHECKPOINT`."
        ) from exc
    identity = _identity(file, session.get_modelmeta().custom_metadata_map)
    source = str(identity["source_checkpoint_sha256"])
    if expected_checkpoint_sha256 is not None and source != expected_checkpoint_sha256:
        raise CheckpointError(
            f"ONNX file '{file}' was exported from a checkpoint with SHA-256 {source}, not from the one"
            f" beside it ({expected_checkpoint_sha256}); export it again with"
            " `python -m ichpipe.models.onnx_export CHECKPOINT` or delete it."
        )
    return OnnxSegmenterModel(
        path=file, file_sha256=file_sha256(file), name=str(identity["model"]["name"]),
        metadata=dict(identity["metadata"]), source_checkpoint_sha256=source, identity=identity, session=session,
    )
