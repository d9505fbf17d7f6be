"""Seed 004 tabular self-attention CNN."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ichpipe.models import ExpansionSACNN, build_model


@pytest.mark.parametrize("n_features", [1, 2, 7, 72, 101])
def test_any_number_of_features_gives_one_logit_per_patient(n_features: int) -> None:
    model = ExpansionSACNN(n_features=n_features).eval()
    with torch.no_grad():
        logits = model(torch.randn(5, n_features))
    assert logits.shape == (5,)
    assert torch.isfinite(logits).all()


def test_registry_default_takes_72_features() -> None:
    model = build_model("expansion_sacnn")
    assert isinstance(model, ExpansionSACNN)
    assert model.n_features == 72


def test_both_branches_feed_the_head() -> None:
    model = ExpansionSACNN(n_features=9, conv_channels=(4, 6), embed_dim=8, num_heads=2)
    first = model.head[0]
    assert isinstance(first, nn.Linear)
    # conv branch: 6 channels x ceil(9 / 2) pooled positions; attention: 9 tokens x 8
    assert first.in_features == 6 * 5 + 9 * 8
    x = torch.randn(4, 9)
    loss = nn.functional.binary_cross_entropy_with_logits(model(x), torch.ones(4))
    loss.backward()
    for name in ("conv_branch.0.weight", "conv_branch.2.weight", "attn.in_proj_weight",
                 "value_embedding.weight", "feature_embedding", "head.3.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_features_are_not_interchangeable() -> None:
    # Each position carries its own meaning: swapping two features changes the output.
    model = ExpansionSACNN(n_features=6, dropout=0.0).eval()
    x = torch.randn(1, 6)
    swapped = x[:, [1, 0, 2, 3, 4, 5]]
    with torch.no_grad():
        assert (model(x) - model(swapped)).abs().item() > 1e-6


@pytest.mark.parametrize("shape", [(3,), (2, 5), (2, 6, 1)])
def test_wrong_input_shape_is_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"Argument 'x' must have shape \(batch, 6\)"):
        ExpansionSACNN(n_features=6)(torch.zeros(*shape))


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"n_features": 0}, "Argument 'n_features'"),
        ({"conv_channels": (8,)}, "Argument 'conv_channels' must hold 2"),
        ({"kernel_size": 4}, "Argument 'kernel_size' must be odd"),
        ({"embed_dim": 10, "num_heads": 4}, "Argument 'num_heads'"),
        ({"dropout": 1.5}, "Argument 'dropout'"),
    ],
)
def test_bad_predictor_arguments_are_named(kwargs: dict[str, object], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        ExpansionSACNN(**kwargs)  # type: ignore[arg-type]
