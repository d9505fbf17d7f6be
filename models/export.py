"""Export a model to TorchScript for deployment.

The model is traced (:func:`torch.jit.trace`) in eval mode on an example
batch, the traced module is checked against the eager one on that batch, and
the archive is written atomically with the checkpoint metadata embedded as
the extra file ``ichpipe_metadata.json``. A traced segmenter is specialised to
the traced height and width: export at the size the pipeline feeds (the
checkpoint's input size). ONNX export is not provided (``onnx`` is not a
dependency). TorchScript is deprecated from torch 2.9 in favour of
:mod:`torch.export`; it still works in 2.13 and its notices are silenced here.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from ichpipe import __version__
from ichpipe.errors import CheckpointError
from ichpipe.models.checkpoint import load_model
from ichpipe.models.hashing import atomic_write

__all__ = [
    "METADATA_FILE",
    "export_checkpoint_torchscript",
    "export_torchscript",
    "load_torchscript",
]

#: Name of the JSON metadata file inside an exported TorchScript archive.
METADATA_FILE = "ichpipe_metadata.json"


@contextmanager
def _quiet_jit() -> Iterator[None]:
    """Silence TorchScript's deprecation notices (torch >= 2.9) and tracer warnings.

    TorchScript is the deployment format this project chose; the shape checks
    in ``forward`` are constant for the traced shape, as documented, so the
    tracer's warnings about them are noise.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit")
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        yield


def export_torchscript(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    example_input: torch.Tensor,
    metadata: Mapping[str, Any] | None = None,
    atol: float = 1e-4,
) -> Path:
    """Trace ``model`` on ``example_input`` and save it as a TorchScript archive.

    Parameters
    ----------
    model:
        The module; it is put in eval mode.
    path:
        Output file (conventionally ``*.ts.pt``); its folder must exist.
    example_input:
        A batch of the shape the deployment will feed.
    metadata:
        JSON-serialisable metadata stored as ``ichpipe_metadata.json`` in the
        archive (the checkpoint's model entry and metadata, typically).
    atol:
        Largest absolute difference allowed between traced and eager outputs.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ichpipe.errors.CheckpointError
        If the traced module does not reproduce the eager output.
    ValueError
        If ``metadata`` is not JSON-serialisable.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from ichpipe.models.registry import build_model
    >>> net = build_model("unet", base_channels=4, input_size=32)
    >>> tmp = tempfile.TemporaryDirectory()
    >>> out = pathlib.Path(tmp.name) / "unet.ts.pt"
    >>> _ = export_torchscript(net, out, example_input=torch.rand(1, 1, 32, 32))
    >>> tmp.cleanup()
    """
    try:
        extra = json.dumps(
            {"ichpipe_version": __version__, **dict(metadata or {})}, sort_keys=True
        )
    except TypeError as exc:
        raise ValueError(f"Argument 'metadata' must be JSON-serialisable: {exc}.") from exc
    model = model.eval()
    with torch.no_grad():
        expected = model(example_input)
        with _quiet_jit():
            traced = torch.jit.trace(model, example_input, check_trace=False)
        got = traced(example_input)
    if got.shape != expected.shape or not torch.allclose(got, expected, atol=atol, rtol=0.0):
        raise CheckpointError(
            f"TorchScript export to '{path}' does not reproduce the model's output "
            f"(max difference {(got - expected).abs().max().item():.3g} > {atol}); "
            "the model has input-dependent control flow; report this as a bug."
        )

    def write(handle: BinaryIO) -> None:
        with _quiet_jit():
            torch.jit.save(traced, handle, _extra_files={METADATA_FILE: extra})

    return atomic_write(path, write)


def export_checkpoint_torchscript(
    checkpoint_path: str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    batch_size: int = 1,
    name: str | None = None,
) -> Path:
    """Export a checkpoint's model to TorchScript at the checkpoint's input size.

    Parameters
    ----------
    checkpoint_path:
        An ichpipe checkpoint.
    path:
        Output TorchScript file.
    batch_size:
        Batch size of the example used for tracing (the traced module accepts
        other batch sizes).
    name:
        Registry name the checkpoint must hold; None accepts any.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    if batch_size < 1:
        raise ValueError(f"Argument 'batch_size' must be positive; got {batch_size}.")
    model, checkpoint = load_model(checkpoint_path, name=name)
    size = checkpoint.input_size
    in_channels = int(checkpoint.model_kwargs.get("in_channels", 1))
    shape: Sequence[int] = (
        (batch_size, *size) if checkpoint.task == "expansion" else (batch_size, in_channels, *size)
    )
    metadata = {
        "model": {"name": checkpoint.name, "kwargs": dict(checkpoint.model_kwargs)},
        "metadata": dict(checkpoint.metadata),
        "checkpoint_sha256": checkpoint.file_sha256,
    }
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(*shape, generator=generator)
    return export_torchscript(model, path, example_input=example, metadata=metadata)


def load_torchscript(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """Load an archive written by :func:`export_torchscript` and its metadata.

    Only load archives you exported yourself: a TorchScript archive is a
    program, not just weights.

    Raises
    ------
    ichpipe.errors.CheckpointError
        If the file cannot be read as TorchScript or lacks ichpipe metadata.
    """
    file = Path(path)
    extra = {METADATA_FILE: ""}
    try:
        with _quiet_jit():
            module = torch.jit.load(str(file), map_location=map_location, _extra_files=extra)
        metadata = json.loads(extra[METADATA_FILE])
    except (RuntimeError, ValueError, OSError) as exc:
        raise CheckpointError(
            f"TorchScript file '{file}' could not be read ({type(exc).__name__}); "
            "export it again with ichpipe.models.export.export_torchscript."
        ) from exc
    if not isinstance(metadata, dict):
        raise CheckpointError(
            f"TorchScript file '{file}' has no ichpipe metadata; export it again with "
            "ichpipe.models.export.export_torchscript."
        )
    return module, metadata
