"""One checkpoint format for every registered model.

A checkpoint is a plain dict saved with :func:`torch.save` and read back with
``torch.load(path, map_location=..., weights_only=True)`` only, so loading
never runs code from the file. Its keys:

``format``
    ``"ichpipe-checkpoint"``.
``format_version``
    :data:`FORMAT_VERSION` (an int; a newer one is refused).
``model``
    ``{"name": registry name, "kwargs": full constructor arguments}``;
    :func:`load_model` rebuilds exactly this model.
``metadata``
    ``input_size`` (list of int: ``[H, W]`` for a segmenter,
    ``[n_features]`` for the predictor), ``window`` (``{"width", "level"}`` in
    HU, or None), ``normalisation`` (dict, how windowed values become the
    network input, e.g. ``{"scale": 1/255, "offset": 0.0}``),
    ``training_data`` (str), ``metrics`` (dict of str to number),
    ``ichpipe_version``, ``torch_version``, ``created`` (ISO 8601, UTC).
``state_dict``
    The weights (CPU tensors, contiguous).
``content_sha256``
    SHA-256 over ``format``, ``format_version``, ``model``, ``metadata``
    (canonical JSON) and every tensor's name, dtype, shape and bytes. A file
    edited after saving fails this check. It guards against corruption and
    careless edits, not against a forger (who can recompute it): pin the file
    itself with ``expected_sha256`` (see :func:`file_sha256`) for that.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from ichpipe import __version__
from ichpipe.errors import CheckpointError
from ichpipe.models.hashing import atomic_write, file_sha256, verified_file_sha256
from ichpipe.models.registry import MODEL_REGISTRY, Task, get_model_spec

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Checkpoint",
    "file_sha256",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
]

FORMAT_NAME = "ichpipe-checkpoint"
FORMAT_VERSION = 1

_REQUIRED_METADATA = (
    "input_size",
    "window",
    "normalisation",
    "training_data",
    "metrics",
    "ichpipe_version",
    "torch_version",
    "created",
)


def _plain(value: Any, where: str) -> Any:
    """``value`` as JSON-like plain data (dict, list, str, int, float, bool, None)."""
    if value is None or type(value) is bool:
        return value
    if isinstance(value, str):
        return str(value)  # plain str: subclasses (e.g. TorchVersion) do not load weights-only
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(
                    f"Argument '{where}' has the non-string key {key!r}; "
                    "checkpoint metadata keys must be strings."
                )
            out[key] = _plain(item, where)
        return out
    if isinstance(value, list | tuple):
        return [_plain(item, where) for item in value]
    raise ValueError(
        f"Argument '{where}' holds a {type(value).__name__} ({value!r}); a checkpoint "
        "stores only str, int, float, bool, None and lists or dicts of those."
    )


def _window(window: Any) -> dict[str, float] | None:
    if window is None:
        return None
    if isinstance(window, Mapping):
        width, level = window.get("width"), window.get("level")
    else:
        width, level = getattr(window, "width", None), getattr(window, "level", None)
    if not isinstance(width, numbers.Real) or not isinstance(level, numbers.Real):
        raise ValueError(
            "Argument 'window' must be None, a mapping or an object with numeric 'width' "
            f"and 'level' (HU); got {window!r}."
        )
    if not float(width) > 0:
        raise ValueError(f"Argument 'window' must have a positive width; got {width}.")
    return {"width": float(width), "level": float(level)}


def _utc_now_iso() -> str:
    # timezone.utc, not datetime.UTC: setup.cfg allows Python 3.10.
    return datetime.now(timezone.utc).isoformat(timespec="seconds")  # noqa: UP017


def _content_digest(header: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous().reshape(-1)
        digest.update(b"\0" + key.encode("utf-8") + b"\0")
        digest.update(f"{tensor.dtype}:{list(state_dict[key].shape)}\0".encode())
        digest.update(tensor.view(torch.uint8).numpy().data)
    return digest.hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read by :func:`load_checkpoint`, already verified.

    Attributes
    ----------
    path:
        File it was read from.
    file_sha256:
        SHA-256 of the file (for the study report).
    name, model_kwargs:
        Registry name and full constructor arguments.
    state_dict:
        The weights, on the ``map_location`` device.
    metadata:
        The ``metadata`` dict (input size, window, normalisation, training
        data, metrics, versions, creation date).
    format_version:
        Format version of the file.
    """

    path: Path
    file_sha256: str
    name: str
    model_kwargs: Mapping[str, Any]
    state_dict: Mapping[str, torch.Tensor]
    metadata: Mapping[str, Any]
    format_version: int

    @property
    def task(self) -> Task:
        """``"segmentation"`` or ``"expansion"``, from the registry."""
        return MODEL_REGISTRY[self.name].task

    @property
    def input_size(self) -> tuple[int, ...]:
        """Input size the model was trained for (``(H, W)`` or ``(n_features,)``)."""
        return tuple(self.metadata["input_size"])

    @property
    def window(self) -> Mapping[str, float] | None:
        """``{"width", "level"}`` in HU, or None."""
        window: Mapping[str, float] | None = self.metadata["window"]
        return window

    def build_model(self) -> nn.Module:
        """Rebuild the registered model with the stored arguments and weights, in eval mode.

        Raises
        ------
        ichpipe.errors.CheckpointError
            If the arguments or the weights do not fit the registered model.
        """
        spec = get_model_spec(self.name)
        try:
            model = spec.build(**self.model_kwargs)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(
                f"Checkpoint '{self.path}' stores arguments for model '{self.name}' that this "
                f"ichpipe {__version__} cannot build ({exc}); use the ichpipe version that "
                "wrote it or retrain."
            ) from exc
        try:
            model.load_state_dict(dict(self.state_dict), strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(
                f"Checkpoint '{self.path}' has weights that do not fit model '{self.name}' "
                f"({first}); it was saved from a different architecture. Use the "
                "checkpoint made for this model."
            ) from exc
        return model.eval()


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    name: str,
    input_size: Sequence[int],
    window: Any,
    normalisation: Mapping[str, Any],
    training_data: str,
    model_kwargs: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    slice_context_mm: float | None = None,
) -> Path:
    """Save ``model`` with its metadata as an ichpipe checkpoint, atomically.

    Parameters
    ----------
    path:
        Output file (conventionally ``*.pt``); its folder must exist.
    model:
        The trained module, built from the registry entry ``name``.
    name:
        Registry name of the model.
    input_size:
        ``(H, W)`` for a segmenter, ``(n_features,)`` for the predictor.
    window:
        ``{"width": W, "level": L}`` in HU (or any object with ``width`` and
        ``level``, such as ``ichpipe.dicom_io.window.WindowPreset``); None for the
        predictor.
    normalisation:
        How the input was normalised, plain values only.
    training_data:
        Free-text description of the training data.
    model_kwargs:
        Constructor arguments that differ from the registry defaults (all of
        them may be given); the full resolved set is stored.
    metrics:
        Validation metrics, name to number.
    slice_context_mm:
        For a segmenter whose input is three slices (below, the slice, above; 2.5D), their
        distance along the normal (:mod:`ichpipe.pipeline.segment.slice_context`); stored as
        metadata ``slice_context_mm``. ``None``: one slice.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If ``model`` does not have the parameters that ``name`` and
        ``model_kwargs`` build, or metadata holds values that cannot be stored.
    ichpipe.errors.OutputError
        If the file cannot be written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from ichpipe.models.registry import build_model
    >>> net = build_model("unet", base_channels=4, input_size=32)
    >>> tmp = tempfile.TemporaryDirectory()
    >>> out = pathlib.Path(tmp.name) / "unet.pt"
    >>> _ = save_checkpoint(out, net, name="unet", model_kwargs={"base_channels": 4,
    ...     "input_size": 32}, input_size=(32, 32), window={"width": 80, "level": 40},
    ...     normalisation={"scale": 1 / 255, "offset": 0.0}, training_data="synthetic")
    >>> load_checkpoint(out, expected_name="unet").name
    'unet'
    >>> tmp.cleanup()
    """
    spec = get_model_spec(name)
    kwargs = _plain(spec.resolve_kwargs(model_kwargs), "model_kwargs")
    with torch.device("meta"):
        reference = spec.build(**kwargs)
    want = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if want != have:
        missing = sorted(set(want) - set(have))
        unexpected = sorted(set(have) - set(want))
        resized = sorted(k for k in set(want) & set(have) if want[k] != have[k])
        raise ValueError(
            f"Argument 'model' is not the model that name {name!r} with these 'model_kwargs' "
            f"builds (missing {missing[:3]}, unexpected {unexpected[:3]}, other shapes "
            f"{resized[:3]}); pass the registry name and arguments it was built with."
        )
    sizes = [int(v) for v in input_size]
    if not sizes or any(v < 1 for v in sizes):
        raise ValueError(f"Argument 'input_size' must be positive integers; got {input_size!r}.")
    if not isinstance(training_data, str):
        raise ValueError(f"Argument 'training_data' must be a string; got {training_data!r}.")
    if slice_context_mm is not None and not (float(slice_context_mm) > 0 and kwargs.get("in_channels") == 3):
        raise ValueError(
            f"Argument 'slice_context_mm' must be positive and the model must take 3 input channels; got"
            f" {slice_context_mm!r} and in_channels {kwargs.get('in_channels')!r}."
        )
    header: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model": {"name": name, "kwargs": kwargs},
        "metadata": {
            "input_size": sizes,
            "window": _window(window),
            "normalisation": _plain(dict(normalisation), "normalisation"),
            "training_data": training_data,
            "metrics": _plain(dict(metrics or {}), "metrics"),
            "ichpipe_version": __version__,
            "torch_version": str(torch.__version__),
            "created": _utc_now_iso(),
            **({"slice_context_mm": float(slice_context_mm)} if slice_context_mm is not None else {}),
        },
    }
    state = {
        key: value.detach().cpu().clone(memory_format=torch.contiguous_format)
        for key, value in model.state_dict().items()
    }
    payload = {**header, "state_dict": state, "content_sha256": _content_digest(header, state)}

    def write(handle: BinaryIO) -> None:
        torch.save(payload, handle)

    return atomic_write(path, write)


_LOADER_BOILERPLATE = (
    "Weights only load failed",
    "Check the documentation",
    "Please file an issue",
    "(1)",
    "(2)",
)


def _detail(exc: BaseException) -> str:
    """The first sentence of a loader error, without torch's advice to load unsafely."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    kept = [p for p in paragraphs if p and not p.startswith(_LOADER_BOILERPLATE)]
    if not kept:
        return type(exc).__name__
    return kept[0].split(". ", 1)[0].rstrip(".")[:200]


def _refuse(path: Path, problem: str, advice: str) -> CheckpointError:
    return CheckpointError(f"Checkpoint '{path}' {problem}; {advice}")


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    expected_name: str | None = None,
    expected_task: Task | None = None,
    expected_sha256: str | None = None,
    map_location: str | torch.device = "cpu",
) -> Checkpoint:
    """Read and verify an ichpipe checkpoint (``weights_only=True``; no code runs).

    Parameters
    ----------
    path:
        The checkpoint file.
    expected_name:
        Registry name the caller asked for (e.g. ``--segmenter``); a
        checkpoint of another model is refused.
    expected_task:
        ``"segmentation"`` or ``"expansion"``; a checkpoint of the other task
        is refused.
    expected_sha256:
        SHA-256 of the file from a trusted source; a file with another hash is
        refused before it is parsed.
    map_location:
        Device for the tensors.

    Returns
    -------
    Checkpoint

    Raises
    ------
    ichpipe.errors.CheckpointError
        If the file is missing, unreadable, truncated, not an ichpipe
        checkpoint (random bytes, a pickle of other objects, a bare state
        dict), of a newer format, edited after saving, or for another model.
    """
    file = Path(path)
    if not file.is_file():
        raise _refuse(file, "does not exist or is not a file", "check the --checkpoint path.")
    sha = verified_file_sha256(file, expected_sha256)
    try:
        raw = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as exc:  # any failure to parse an untrusted file means "not a checkpoint"
        detail = _detail(exc)
        if isinstance(exc, pickle.UnpicklingError) and "global" in detail.lower():
            raise _refuse(
                file,
                "holds Python objects other than tensors and plain values, so it was refused "
                f"unread and nothing in it was run ({detail})",
                "use a checkpoint written by ichpipe's save_checkpoint.",
            ) from exc
        raise _refuse(
            file,
            "could not be read as a PyTorch file (truncated, corrupted or another format: "
            f"{detail})",
            "copy the file again or re-create it with ichpipe's save_checkpoint.",
        ) from exc

    if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
        raise _refuse(
            file,
            "is a PyTorch file but not an ichpipe checkpoint (no 'format': "
            f"'{FORMAT_NAME}' entry; a bare state dict?)",
            "save the model with ichpipe.models.checkpoint.save_checkpoint so it carries its metadata.",
        )
    version = raw.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _refuse(file, f"has an invalid format_version {version!r}", "re-create it.")
    if version > FORMAT_VERSION:
        raise _refuse(
            file,
            f"has format version {version}, newer than this ichpipe {__version__} reads "
            f"({FORMAT_VERSION})",
            "upgrade ichpipe.",
        )
    model_entry, metadata = raw.get("model"), raw.get("metadata")
    state_dict, recorded = raw.get("state_dict"), raw.get("content_sha256")
    if (
        not isinstance(model_entry, dict)
        or not isinstance(model_entry.get("name"), str)
        or not isinstance(model_entry.get("kwargs"), dict)
        or not isinstance(metadata, dict)
        or any(key not in metadata for key in _REQUIRED_METADATA)
        or not isinstance(state_dict, dict)
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items())
        or not isinstance(recorded, str)
    ):
        raise _refuse(
            file,
            "lacks required entries (model name and arguments, metadata "
            f"{', '.join(_REQUIRED_METADATA)}, state_dict, content_sha256)",
            "re-create it with ichpipe's save_checkpoint.",
        )
    header = {
        "format": raw["format"],
        "format_version": version,
        "model": model_entry,
        "metadata": metadata,
    }
    if _content_digest(header, state_dict) != recorded:
        raise _refuse(
            file,
            "does not match its recorded content digest: its weights or metadata were "
            "changed after it was saved",
            "do not use it; copy the original file again.",
        )
    name = model_entry["name"]
    if name not in MODEL_REGISTRY:
        raise _refuse(
            file,
            f"is for model '{name}', which this ichpipe {__version__} does not know "
            f"(known: {', '.join(MODEL_REGISTRY)})",
            "use the ichpipe version that wrote it.",
        )
    if expected_name is not None and name != expected_name:
        raise _refuse(
            file,
            f"holds model '{name}', but '{expected_name}' was requested",
            f"pass --segmenter {name}, or a checkpoint trained for '{expected_name}'.",
        )
    task = MODEL_REGISTRY[name].task
    if expected_task is not None and task != expected_task:
        raise _refuse(
            file,
            f"holds the {task} model '{name}', but a {expected_task} model was requested",
            f"pass a {expected_task} checkpoint.",
        )
    return Checkpoint(
        path=file,
        file_sha256=sha,
        name=name,
        model_kwargs=model_entry["kwargs"],
        state_dict=state_dict,
        metadata=metadata,
        format_version=version,
    )


def load_model(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    task: Task | None = None,
    expected_sha256: str | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[nn.Module, Checkpoint]:
    """Load a checkpoint and rebuild its model, in eval mode on ``map_location``.

    Parameters
    ----------
    path:
        The checkpoint file.
    name:
        Registry name the caller expects; None accepts the checkpoint's own.
    task:
        Task the caller expects; None accepts any.
    expected_sha256:
        Optional pinned SHA-256 of the file.
    map_location:
        Device of the returned model.

    Returns
    -------
    tuple of (torch.nn.Module, Checkpoint)

    Raises
    ------
    ichpipe.errors.CheckpointError
        See :func:`load_checkpoint` and :meth:`Checkpoint.build_model`.
    """
    checkpoint = load_checkpoint(
        path,
        expected_name=name,
        expected_task=task,
        expected_sha256=expected_sha256,
        map_location=map_location,
    )
    model = checkpoint.build_model().to(map_location)
    return model, checkpoint
