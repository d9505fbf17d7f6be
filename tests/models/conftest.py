"""Shared fixtures of the models tests: one thread, fixed seed, tiny shapes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from ichpipe.models import SACBAMUNet, get_model_spec

_TINY: dict[str, dict[str, Any]] = {
    "monai_unet": {"channels": [4, 8, 8, 16, 16]},
    "basic_unet": {"features": [4, 4, 8, 8, 16, 4]},
    "segresnet": {"init_filters": 8},
    "expansion_sacnn": {"n_features": 10},
}


@pytest.fixture(autouse=True)
def _single_thread_seeded() -> Iterator[None]:
    """Run each test on one thread with a fixed seed; restore the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def tiny_overrides(name: str) -> dict[str, Any]:
    """Constructor overrides that make registry entry ``name`` tiny and fast."""
    if get_model_spec(name).builder is SACBAMUNet:
        return {"base_channels": 4, "input_size": 32, "num_heads": 4}
    return dict(_TINY[name])


@pytest.fixture
def tiny() -> Callable[[str], dict[str, Any]]:
    """The :func:`tiny_overrides` function, as a fixture."""
    return tiny_overrides
