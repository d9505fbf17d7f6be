"""The tabular hematoma-expansion predictor of seed 004 ("self-attention CNN").

The features of a patient's first scan (history, clinical values, volumes,
locations, shape and intensity radiomics; about 72 in the seed) are read as a
sequence. Two branches run in parallel:

- a 1D-convolution branch: two convolutions with ReLU, then max-pooling;
- a multi-head self-attention branch over the features as tokens;

their outputs are flattened, concatenated and go through two fully connected
layers to one logit (``sigmoid(logit)`` is the probability of expansion).

Deviations from the seed, on purpose: weights use PyTorch's default
initialisation (the seed initialises the CNN to all zeros, which leaves every
filter identical); each feature gets a learned identity embedding (its
position in the table carries its meaning, there is no order in time); the
attention branch has a residual connection. Inputs are expected standardised
and with no missing values; that is the caller's job.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ExpansionSACNN"]


def _positive(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Argument '{name}' must be a positive integer; got {value!r}.")
    return value


class ExpansionSACNN(nn.Module):
    """Self-attention CNN over a vector of tabular features; one logit per patient.

    Parameters
    ----------
    n_features:
        Number of input features (any positive number).
    conv_channels:
        Output channels of the two 1D convolutions.
    kernel_size:
        Odd kernel size of both convolutions ("same" padding).
    pool_size:
        Max-pool window and stride (``ceil_mode``, so no feature is dropped).
    embed_dim:
        Token dimension of the attention branch.
    num_heads:
        Attention heads; must divide ``embed_dim``.
    hidden_size:
        Units of the first fully connected layer.
    dropout:
        Dropout before the last layer and on the attention weights.

    Examples
    --------
    >>> model = ExpansionSACNN(n_features=10)
    >>> model(torch.zeros(3, 10)).shape
    torch.Size([3])
    """

    def __init__(
        self,
        *,
        n_features: int = 72,
        conv_channels: Sequence[int] = (16, 32),
        kernel_size: int = 3,
        pool_size: int = 2,
        embed_dim: int = 16,
        num_heads: int = 4,
        hidden_size: int = 64,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        _positive(n_features, "n_features")
        _positive(kernel_size, "kernel_size")
        _positive(pool_size, "pool_size")
        _positive(embed_dim, "embed_dim")
        _positive(num_heads, "num_heads")
        _positive(hidden_size, "hidden_size")
        if len(conv_channels) != 2:
            raise ValueError(
                f"Argument 'conv_channels' must hold 2 widths (two conv layers); "
                f"got {list(conv_channels)}."
            )
        c1 = _positive(conv_channels[0], "conv_channels")
        c2 = _positive(conv_channels[1], "conv_channels")
        if kernel_size % 2 == 0:
            raise ValueError(f"Argument 'kernel_size' must be odd; got {kernel_size}.")
        if embed_dim % num_heads:
            raise ValueError(
                f"Argument 'num_heads' ({num_heads}) must divide 'embed_dim' ({embed_dim})."
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"Argument 'dropout' must be in [0, 1); got {dropout}.")
        self.n_features = n_features

        pad = kernel_size // 2
        self.conv_branch = nn.Sequential(
            nn.Conv1d(1, c1, kernel_size, padding=pad),
            nn.ReLU(inplace=True),
            nn.Conv1d(c1, c2, kernel_size, padding=pad),
            nn.ReLU(inplace=True),
            nn.MaxPool1d(pool_size, ceil_mode=True),
            nn.Flatten(),
        )
        pooled = -(-n_features // pool_size)  # ceil

        self.value_embedding = nn.Linear(1, embed_dim)
        self.feature_embedding = nn.Parameter(torch.empty(1, n_features, embed_dim))
        nn.init.trunc_normal_(self.feature_embedding, std=0.02)
        self.attn = nn.MultiheadAttention(
            embed_dim, num_heads, dropout=dropout, batch_first=True
        )

        self.head = nn.Sequential(
            nn.Linear(c2 * pooled + n_features * embed_dim, hidden_size),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, n_features)`` standardised features to ``(B,)`` logits."""
        if x.dim() != 2 or x.shape[1] != self.n_features:
            raise ValueError(
                f"Argument 'x' must have shape (batch, {self.n_features}); "
                f"got {tuple(x.shape)}."
            )
        conv = self.conv_branch(x.unsqueeze(1))  # (B, c2 * pooled)
        tokens = self.value_embedding(x.unsqueeze(-1)) + self.feature_embedding  # (B, F, d)
        attended, _ = self.attn(tokens, tokens, tokens, need_weights=False)
        sa = (tokens + attended).flatten(1)  # (B, F * d)
        return self.head(torch.cat([conv, sa], dim=1)).squeeze(-1)
