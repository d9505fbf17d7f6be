"""TorchScript export: same outputs, embedded metadata, refusal of foreign files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from ichpipe.errors import CheckpointError
from ichpipe.models import (
    build_model,
    export_checkpoint_torchscript,
    export_torchscript,
    load_torchscript,
    save_checkpoint,
)


@pytest.mark.parametrize("name", ["sa_cbam_unet", "unet", "segresnet", "expansion_sacnn"])
def test_exported_module_reproduces_the_model(
    name: str, tmp_path: Path, tiny: Callable[[str], dict[str, Any]]
) -> None:
    model = build_model(name, **tiny(name)).eval()
    x = torch.rand(3, 10) if name == "expansion_sacnn" else torch.rand(1, 1, 32, 32)
    path = export_torchscript(model, tmp_path / "m.ts.pt", example_input=x,
                              metadata={"model": {"name": name}})
    module, metadata = load_torchscript(path)
    other = torch.rand(2, *x.shape[1:])  # another batch size and other values
    with torch.no_grad():
        torch.testing.assert_close(module(other), model(other), rtol=1e-5, atol=1e-5)
    assert metadata["model"] == {"name": name}
    assert "ichpipe_version" in metadata
    assert [p.name for p in tmp_path.iterdir()] == ["m.ts.pt"]


def test_export_from_a_checkpoint_carries_its_metadata(
    tmp_path: Path, tiny: Callable[[str], dict[str, Any]]
) -> None:
    overrides = tiny("sa_cbam_unet")
    model = build_model("sa_cbam_unet", **overrides).eval()
    save_checkpoint(tmp_path / "c.pt", model, name="sa_cbam_unet", model_kwargs=overrides,
                    input_size=[32, 32], window={"width": 80, "level": 40},
                    normalisation={"scale": 1 / 255}, training_data="t")
    path = export_checkpoint_torchscript(tmp_path / "c.pt", tmp_path / "c.ts.pt")
    module, metadata = load_torchscript(path)
    assert metadata["model"]["name"] == "sa_cbam_unet"
    assert metadata["metadata"]["window"] == {"width": 80.0, "level": 40.0}
    assert len(metadata["checkpoint_sha256"]) == 64
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(module(x), model(x), rtol=1e-5, atol=1e-5)


def test_metadata_must_be_json(tmp_path: Path) -> None:
    model = build_model("unet", base_channels=4, input_size=32)
    with pytest.raises(ValueError, match="Argument 'metadata' must be JSON-serialisable"):
        export_torchscript(model, tmp_path / "m.ts.pt", example_input=torch.rand(1, 1, 32, 32),
                           metadata={"x": object()})


def test_a_foreign_file_is_not_loaded_as_torchscript(tmp_path: Path) -> None:
    path = tmp_path / "plain.pt"
    torch.save({"a": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match=r"TorchScript file '.*plain.pt' could not be read"):
        load_torchscript(path)
