"""Checkpoints: round trip, metadata, atomic save, and clean refusal of bad files."""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import ichpipe
from ichpipe.errors import CheckpointError, OutputError
from ichpipe.models import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MODEL_REGISTRY,
    build_model,
    file_sha256,
    load_checkpoint,
    load_model,
    save_checkpoint,
)

WINDOW = {"width": 80.0, "level": 40.0}
NORM = {"scale": 1 / 255, "offset": 0.0}


def _save(path: Path, name: str, overrides: dict[str, Any], **extra: Any) -> torch.nn.Module:
    model = build_model(name, **overrides)
    size = [overrides["n_features"]] if name == "expansion_sacnn" else [32, 32]
    args: dict[str, Any] = {
        "name": name,
        "model_kwargs": overrides,
        "input_size": size,
        "window": None if name == "expansion_sacnn" else WINDOW,
        "normalisation": NORM,
        "training_data": "synthetic phantoms, seed 1",
        "metrics": {"dice": 0.5},
    }
    args.update(extra)
    save_checkpoint(path, model, **args)
    return model


@pytest.fixture
def unet_file(tmp_path: Path, tiny: Callable[[str], dict[str, Any]]) -> Path:
    path = tmp_path / "unet.pt"
    _save(path, "unet", tiny("unet"))
    return path


@pytest.mark.parametrize("name", sorted(MODEL_REGISTRY))
def test_round_trip_gives_identical_outputs(
    name: str, tmp_path: Path, tiny: Callable[[str], dict[str, Any]]
) -> None:
    overrides = tiny(name)
    model = _save(tmp_path / "m.pt", name, overrides)
    # train-mode batch-norm statistics must travel too
    model.train()
    x = torch.rand(4, overrides["n_features"]) if name == "expansion_sacnn" else torch.rand(
        2, 1, 32, 32
    )
    with torch.no_grad():
        model(x)
    save_checkpoint(
        tmp_path / "m.pt", model, name=name, model_kwargs=overrides,
        input_size=list(x.shape[1:]) if name == "expansion_sacnn" else [32, 32],
        window=None, normalisation=NORM, training_data="t",
    )
    loaded, checkpoint = load_model(tmp_path / "m.pt", name=name)
    model.eval()
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert checkpoint.name == name
    assert checkpoint.task == MODEL_REGISTRY[name].task


def test_metadata_is_complete(unet_file: Path) -> None:
    checkpoint = load_checkpoint(unet_file, expected_name="unet", expected_task="segmentation")
    assert checkpoint.format_version == FORMAT_VERSION
    assert checkpoint.input_size == (32, 32)
    assert checkpoint.window == WINDOW
    meta = checkpoint.metadata
    assert meta["normalisation"] == NORM
    assert meta["training_data"] == "synthetic phantoms, seed 1"
    assert meta["metrics"] == {"dice": 0.5}
    assert meta["ichpipe_version"] == ichpipe.__version__
    assert meta["torch_version"] == torch.__version__
    assert meta["created"].endswith("+00:00")
    # the full constructor arguments, not only the overrides
    assert checkpoint.model_kwargs == {
        **MODEL_REGISTRY["unet"].defaults, "base_channels": 4, "input_size": 32, "num_heads": 4
    }
    assert checkpoint.file_sha256 == hashlib.sha256(unet_file.read_bytes()).hexdigest()


def test_raw_file_layout(unet_file: Path) -> None:
    raw = torch.load(unet_file, map_location="cpu", weights_only=True)
    assert set(raw) == {
        "format", "format_version", "model", "metadata", "state_dict", "content_sha256"
    }
    assert raw["format"] == FORMAT_NAME
    assert raw["model"]["name"] == "unet"


def test_window_preset_objects_and_numpy_metrics_are_stored_as_plain_values(
    tmp_path: Path, tiny: Callable[[str], dict[str, Any]]
) -> None:
    class Preset:
        width = 80
        level = 40

    path = tmp_path / "w.pt"
    _save(path, "unet", tiny("unet"), window=Preset(), metrics={"dice": np.float64(0.8)})
    checkpoint = load_checkpoint(path)
    assert checkpoint.window == {"width": 80.0, "level": 40.0}
    assert type(checkpoint.metadata["metrics"]["dice"]) is float


def test_save_refuses_a_model_that_the_name_does_not_build(
    tmp_path: Path, tiny: Callable[[str], dict[str, Any]]
) -> None:
    model = build_model("sa_cbam_unet", **tiny("sa_cbam_unet"))
    with pytest.raises(ValueError, match=r"Argument 'model' is not the model that name 'unet'"):
        save_checkpoint(tmp_path / "x.pt", model, name="unet", model_kwargs=tiny("unet"),
                        input_size=[32, 32], window=WINDOW, normalisation=NORM,
                        training_data="t")
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize(
    ("extra", "pattern"),
    [
        ({"metrics": {"dice": torch.tensor(0.5)}}, "Argument 'metrics' holds a Tensor"),
        ({"normalisation": {1: 2}}, "Argument 'normalisation' has the non-string key"),
        ({"window": {"width": 0, "level": 40}}, "Argument 'window' must have a positive"),
        ({"window": "brain"}, "Argument 'window' must be None, a mapping"),
        ({"input_size": [0, 32]}, "Argument 'input_size'"),
    ],
)
def test_save_refuses_metadata_it_cannot_store(
    extra: dict[str, Any], pattern: str, tmp_path: Path, tiny: Callable[[str], dict[str, Any]]
) -> None:
    with pytest.raises(ValueError, match=pattern):
        _save(tmp_path / "x.pt", "unet", tiny("unet"), **extra)
    assert list(tmp_path.iterdir()) == []


def test_save_is_atomic(
    unet_file: Path, monkeypatch: pytest.MonkeyPatch, tiny: Callable[[str], dict[str, Any]]
) -> None:
    before = unet_file.read_bytes()

    def crash(obj: object, f: Any, *args: Any, **kwargs: Any) -> None:
        f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OutputError, match=r"Cannot write '.*unet.pt': No space left"):
        _save(unet_file, "unet", tiny("unet"))
    assert unet_file.read_bytes() == before  # the old file is untouched
    assert sorted(p.name for p in unet_file.parent.iterdir()) == ["unet.pt"]  # no temp left


def test_save_into_a_missing_folder_is_an_output_error(
    tmp_path: Path, tiny: Callable[[str], dict[str, Any]]
) -> None:
    with pytest.raises(OutputError, match="does not exist; create it first"):
        _save(tmp_path / "nope" / "m.pt", "unet", tiny("unet"))


# ---------------------------------------------------------------- refusals


def test_requested_model_must_match(unet_file: Path) -> None:
    with pytest.raises(
        CheckpointError,
        match=r"unet.pt' holds model 'unet', but 'sa_cbam_unet' was requested; "
        r"pass --segmenter unet",
    ):
        load_model(unet_file, name="sa_cbam_unet")
    with pytest.raises(CheckpointError, match=r"holds the segmentation model 'unet', but an? "):
        load_checkpoint(unet_file, expected_task="expansion")


def test_pinned_sha256_must_match(unet_file: Path) -> None:
    good = file_sha256(unet_file)
    assert load_checkpoint(unet_file, expected_sha256=good.upper()).file_sha256 == good
    with pytest.raises(CheckpointError, match=r"has SHA-256 [0-9a-f]{64}, not the expected 00"):
        load_checkpoint(unet_file, expected_sha256="00" * 32)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"'.*none.pt' does not exist .*--checkpoint"):
        load_checkpoint(tmp_path / "none.pt")


def test_edited_weights_are_detected(unet_file: Path) -> None:
    raw = torch.load(unet_file, weights_only=True)
    key = next(iter(raw["state_dict"]))
    raw["state_dict"][key].view(-1)[0] += 1.0
    torch.save(raw, unet_file)
    with pytest.raises(CheckpointError, match=r"does not match its recorded content digest"):
        load_checkpoint(unet_file)


def test_edited_metadata_is_detected(unet_file: Path) -> None:
    raw = torch.load(unet_file, weights_only=True)
    raw["metadata"]["metrics"]["dice"] = 0.99
    torch.save(raw, unet_file)
    with pytest.raises(CheckpointError, match=r"weights or metadata were changed"):
        load_checkpoint(unet_file)


@pytest.mark.parametrize(
    ("where", "pattern"),
    [
        # the middle of the file is tensor data: the zip reader keeps no checksum there
        (0.5, r"does not match its recorded content digest"),
        (0.0, r"could not be read as a PyTorch file"),  # the zip local header
        (1.0, r"could not be read as a PyTorch file"),  # the zip central directory
    ],
)
def test_flipped_bytes_are_refused(unet_file: Path, where: float, pattern: str) -> None:
    data = bytearray(unet_file.read_bytes())
    start = min(int(len(data) * where), len(data) - 64)
    data[start : start + 64] = bytes(b ^ 0xFF for b in data[start : start + 64])
    unet_file.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"Checkpoint '.*unet.pt' " + pattern):
        load_model(unet_file)


def test_truncated_file_is_refused(unet_file: Path) -> None:
    data = unet_file.read_bytes()
    unet_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"could not be read as a PyTorch file \(truncated"):
        load_model(unet_file)


def test_random_bytes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "noise.pt"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(CheckpointError, match=r"noise.pt' could not be read as a PyTorch file"):
        load_model(path)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty.pt' could not be read"):
        load_model(path)


def test_bare_state_dict_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "bare.pt"
    torch.save(build_model("unet", base_channels=4, input_size=32).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"is a PyTorch file but not an ichpipe checkpoint"):
        load_model(path)


def test_newer_format_is_refused(unet_file: Path) -> None:
    raw = torch.load(unet_file, weights_only=True)
    raw["format_version"] = FORMAT_VERSION + 1
    torch.save(raw, unet_file)
    with pytest.raises(CheckpointError, match=r"newer than this ichpipe .* upgrade ichpipe"):
        load_checkpoint(unet_file)


def test_missing_entries_are_refused(unet_file: Path) -> None:
    raw = torch.load(unet_file, weights_only=True)
    del raw["metadata"]["window"]
    torch.save(raw, unet_file)
    with pytest.raises(CheckpointError, match=r"lacks required entries"):
        load_checkpoint(unet_file)


class _Payload:
    """Unpickling this object creates the folder ``marker`` (harmless, observable)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def test_the_payload_is_live_when_unpickled_unsafely(tmp_path: Path) -> None:
    # Shows the payload used below really runs code, so its refusal means something.
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.is_dir()


@pytest.mark.parametrize(
    ("container", "pattern"),
    [
        ("pickle_protocol_2", r"holds Python objects other than tensors .* nothing in it was run"),
        ("torch_save", r"holds Python objects other than tensors .* GLOBAL posix.mkdir"),
        # protocol 4 framing is refused by the weights-only reader before any object
        ("pickle_protocol_4", r"could not be read as a PyTorch file"),
    ],
)
@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_malicious_pickle_is_refused_without_running(
    tmp_path: Path, container: str, pattern: str
) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"format": FORMAT_NAME, "model": _Payload(marker)}
    if container == "torch_save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=int(container[-1])))
    with pytest.raises(CheckpointError, match=r"Checkpoint '.*evil.pt' " + pattern):
        load_model(path)
    assert not marker.exists()


def test_consistent_but_mismatched_weights_are_refused_on_build(
    unet_file: Path, tiny: Callable[[str], dict[str, Any]]
) -> None:
    # Someone rewrote the arguments and the digest: the weights no longer fit.
    from ichpipe.models.checkpoint import _content_digest

    raw = torch.load(unet_file, weights_only=True)
    raw["model"]["kwargs"]["base_channels"] = 8
    header = {k: raw[k] for k in ("format", "format_version", "model", "metadata")}
    raw["content_sha256"] = _content_digest(header, raw["state_dict"])
    torch.save(raw, unet_file)
    with pytest.raises(CheckpointError, match=r"has weights that do not fit model 'unet'"):
        load_model(unet_file)


def test_unknown_model_name_is_refused(unet_file: Path) -> None:
    from ichpipe.models.checkpoint import _content_digest

    raw = torch.load(unet_file, weights_only=True)
    raw["model"]["name"] = "transunet"
    header = {k: raw[k] for k in ("format", "format_version", "model", "metadata")}
    raw["content_sha256"] = _content_digest(header, raw["state_dict"])
    torch.save(raw, unet_file)
    with pytest.raises(CheckpointError, match=r"is for model 'transunet', which this ichpipe"):
        load_checkpoint(unet_file)
