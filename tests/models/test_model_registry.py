"""Model registry: names, defaults, overrides, and the package's import boundary."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import torch

from ichpipe import models
from ichpipe.errors import UsageError
from ichpipe.models import (
    MODEL_REGISTRY,
    PREDICTOR_NAMES,
    SEGMENTER_NAMES,
    SACBAMUNet,
    build_model,
    get_model_spec,
    model_names,
)


def test_registered_names() -> None:
    assert SEGMENTER_NAMES == (
        "sa_cbam_unet", "sa_cbam_unet_slim", "unet", "unet_sa", "unet_sa_ca",
        "monai_unet", "basic_unet", "segresnet",
    )
    assert PREDICTOR_NAMES == ("expansion_sacnn",)
    assert model_names() == SEGMENTER_NAMES + PREDICTOR_NAMES
    assert model_names("expansion") == PREDICTOR_NAMES
    assert set(MODEL_REGISTRY) == set(model_names())


@pytest.mark.parametrize("name", sorted(MODEL_REGISTRY))
def test_defaults_are_exactly_the_builders_keyword_arguments(name: str) -> None:
    spec = get_model_spec(name)
    params = inspect.signature(spec.builder).parameters
    assert set(spec.defaults) == set(params)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values())
    with torch.device("meta"):  # full size, no memory
        model = spec.build()
    assert isinstance(model, torch.nn.Module)


def test_seed_and_slim_defaults() -> None:
    full = get_model_spec("sa_cbam_unet").defaults
    slim = get_model_spec("sa_cbam_unet_slim").defaults
    assert (full["base_channels"], slim["base_channels"]) == (64, 16)
    assert full["input_size"] == 512
    assert (full["sa"], full["ca"], full["spa"]) == (True, True, True)
    for name in ("unet", "unet_sa", "unet_sa_ca"):
        assert get_model_spec(name).builder is SACBAMUNet


def test_defaults_cannot_be_mutated() -> None:
    with pytest.raises(TypeError):
        MODEL_REGISTRY["unet"] = MODEL_REGISTRY["sa_cbam_unet"]  # type: ignore[index]


def test_unknown_name_is_a_usage_error_listing_the_names() -> None:
    with pytest.raises(UsageError, match=r"'sa_unet'.*known names: sa_cbam_unet, "):
        build_model("sa_unet")


def test_unknown_override_is_refused() -> None:
    with pytest.raises(ValueError, match=r"Argument 'overrides' names widht"):
        build_model("unet", widht=4)


def test_ablation_switches_cannot_be_overridden() -> None:
    with pytest.raises(ValueError, match=r"changes sa, which define model 'unet'"):
        build_model("unet", sa=True, base_channels=4, input_size=32)
    # restating a fixed value is fine
    assert isinstance(build_model("unet", sa=False, base_channels=4, input_size=32), SACBAMUNet)


def test_package_never_imports_dicom_io_or_pipeline() -> None:
    package = Path(models.__file__).parent
    offenders = []
    for file in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{file.name}: {n}" for n in names
                          if n.split(".")[0] in {"dicom_io", "pipeline"}]
    assert offenders == []


def test_every_module_declares_all() -> None:
    package = Path(models.__file__).parent
    for file in sorted(package.rglob("*.py")):
        assert "__all__" in file.read_text(encoding="utf-8"), file.name
