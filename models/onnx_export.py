"""Export a 2D segmenter checkpoint to ONNX for the torch-free CPU runtime.

Why: on two CPU cores, ``import torch`` alone costs 1.1-1.5 s of the default
model's 5-6 s run, and ONNX Runtime runs the slim default network in fp32
faster than PyTorch in bf16 (BENCHMARKS.md). The runtime side is
:mod:`ichpipe.models.onnx_model`; it needs ``onnxruntime`` only.

The export is checked, not trusted: the model is traced with a dynamic batch,
height and width (at a size other than the checkpoint's, so the positional
encoding is traced as a function of the size), then the ONNX file is run with
ONNX Runtime at three shapes and must reproduce the PyTorch fp32 output to
``atol``. The file carries the checkpoint's identity as the metadata entry
:data:`~ichpipe.models.onnx_model.METADATA_KEY` (JSON: registry name and
arguments, the checkpoint metadata with window and normalisation, the
checkpoint file's SHA-256, versions), so the runtime can refuse an export that
does not belong to the checkpoint beside it.

Export needs ``torch`` and ``onnx`` (the ``dev`` extra); run it as::

    python -m ichpipe.models.onnx_export ichpipe/models/checkpoints/ichpipe-default.pt
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from ichpipe import __version__
from ichpipe.errors import CheckpointError
from ichpipe.models.checkpoint import load_model
from ichpipe.models.hashing import atomic_write
from ichpipe.models.onnx_model import FORMAT_NAME, FORMAT_VERSION, METADATA_KEY, load_onnx_segmenter
from ichpipe.models.sa_cbam_unet import DOWNSAMPLING_FACTOR

__all__ = ["OPSET", "export_checkpoint_onnx"]

#: ONNX opset of the export (ONNX Runtime >= 1.13 runs it).
OPSET = 17


def _example_shapes(input_size: tuple[int, int], channels: int = 1) -> list[tuple[int, int, int, int]]:
    """Trace shape first (not the checkpoint's size), then the shapes the export is checked at."""
    h, w = input_size
    step, c = DOWNSAMPLING_FACTOR, channels
    trace = (2, c, max(step, h - 4 * step), max(step, w - 5 * step))
    return [trace, (1, c, h, w), (3, c, max(step, h - 2 * step), w), (4, c, max(step, h // 2), max(step, w - step))]


def export_checkpoint_onnx(
    checkpoint_path: str | os.PathLike[str],
    path: str | os.PathLike[str] | None = None,
    *,
    atol: float = 1e-4,
) -> Path:
    """Export a 2D segmenter checkpoint to ONNX, checked against PyTorch.

    Parameters
    ----------
    checkpoint_path:
        An ichpipe segmentation checkpoint (``*.pt``).
    path:
        Output file; ``None`` writes ``<checkpoint>.onnx`` beside the checkpoint,
        which is where the runtime looks for it.
    atol:
        Largest absolute difference in probability allowed between ONNX Runtime
        and PyTorch (fp32) at each checked shape.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    ichpipe.errors.CheckpointError
        If the checkpoint is not a 2D segmenter or the export does not reproduce
        the model.
    ValueError
        If ``atol`` is not positive.
    """
    if atol <= 0:
        raise ValueError(f"Argument 'atol' must be positive; got {atol}.")
    import onnx  # the dev extra; not needed at run time

    model, checkpoint = load_model(checkpoint_path, task="segmentation")
    if len(checkpoint.input_size) != 2:
        raise CheckpointError(f"Checkpoint '{checkpoint_path}' is not a 2D segmenter; only those export to ONNX.")
    out = Path(path) if path is not None else Path(checkpoint_path).with_suffix(".onnx")
    identity = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model": {"name": checkpoint.name, "kwargs": dict(checkpoint.model_kwargs)},
        "metadata": dict(checkpoint.metadata),
        "source_checkpoint_sha256": checkpoint.file_sha256,
        "ichpipe_version": __version__,
        "torch_version": torch.__version__,
        "onnx_opset": OPSET,
    }
    size = (int(checkpoint.input_size[0]), int(checkpoint.input_size[1]))
    shapes = _example_shapes(size, int(checkpoint.model_kwargs.get("in_channels", 1)))
    generator = torch.Generator().manual_seed(0)
    examples = [torch.rand(*shape, generator=generator) for shape in shapes]
    axes = {0: "batch", 2: "height", 3: "width"}
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notices about the shape checks in forward
            torch.onnx.export(model.eval(), (examples[0],), str(raw), opset_version=OPSET, dynamo=False,
                              input_names=["image"], output_names=["probability"],
                              dynamic_axes={"image": axes, "probability": axes})
        proto = onnx.load(str(raw))
        del proto.metadata_props[:]
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(identity, sort_keys=True)
        proto.producer_name, proto.producer_version = "ichpipe", __version__
        onnx.checker.check_model(proto)
        staged = Path(tmp) / "staged.onnx"
        onnx.save(proto, str(staged))
        runtime = load_onnx_segmenter(staged, threads=1)
        for example in examples:
            with torch.inference_mode():
                expected = model(example).numpy()
            got = runtime.run(example.numpy())
            diff = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
            if diff > atol:
                raise CheckpointError(
                    f"The ONNX export of '{checkpoint_path}' does not reproduce the model at shape "
                    f"{tuple(example.shape)} (max difference {diff:.3g} > {atol}); report this as a bug."
                )
        data = staged.read_bytes()
    return atomic_write(out, lambda handle: handle.write(data))


def main(argv: list[str] | None = None) -> int:
    """``python -m ichpipe.models.onnx_export CHECKPOINT [--out FILE]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="ichpipe segmentation checkpoint (.pt)")
    parser.add_argument("--out", type=Path, default=None, help="output file (default: beside the checkpoint)")
    args = parser.parse_args(argv)
    written = export_checkpoint_onnx(args.checkpoint, args.out)
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
