"""Label noise and data mixing in training: weighted losses and per-source sampling weights.

**Weighted losses** (:func:`weighted_loss`). Every training item carries a per-pixel ``weight``
in [0, 1] (:mod:`ichpipe.pipeline.training.transforms`): the slice's label confidence times one
minus its ignore mask. The binary cross-entropy is ``mean(weight * bce)`` over all pixels (so a
slice of confidence 0.5 counts half, and ignored pixels not at all); the soft Dice of
``dice_bce`` sums ``weight * p * t``, ``weight * p`` and ``weight * t`` over the batch. With all
weights 1 both equal the unweighted losses of the seed's recipe.

**Sampling weights** (:func:`parse_source_mix`, :func:`sampling_weights`). Each case belongs to a
*sampling group*: the manifest column ``sampling_group`` when present, else its ``source`` up to
the first ``:`` (``phantom``, ``ct-real-ge``, ``extra-axial``, ``phe-sich`` ...). A mix such as
``("phe-sich=0.4", "extra-axial=0.3", "phantom=0.3")`` gives each *key* that share of the drawn
crops; a group takes the share of the longest key it starts with, and the slices of one key
share it equally. Without a mix every slice is drawn equally often (the slice counts set the
shares).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from ichpipe.errors import UsageError
from ichpipe.pipeline.datasets.manifest import ManifestEntry

__all__ = [
    "LossFn",
    "entry_group",
    "parse_source_mix",
    "sampling_weights",
    "weighted_loss",
    "weighted_soft_dice_loss",
]

#: ``loss(logits, target, weight)`` -> scalar.
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

_SMOOTH = 1e-5  # MONAI DiceLoss's smooth_nr and smooth_dr


def entry_group(entry: ManifestEntry) -> str:
    """A case's sampling group: ``sampling_group`` column, else ``source`` up to its first ``:``."""
    explicit = entry.extra.get("sampling_group", "").strip()
    if explicit:
        return explicit
    return entry.source.split(":", 1)[0].strip() or "unknown"


def weighted_soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``1 - (2 sum(w p t) + s) / (sum(w p) + sum(w t) + s)`` over the whole batch (p = sigmoid(logits))."""
    p = torch.sigmoid(logits)
    inter = torch.sum(weight * p * target)
    denom = torch.sum(weight * p) + torch.sum(weight * target)
    return 1.0 - (2.0 * inter + _SMOOTH) / (denom + _SMOOTH)


def weighted_loss(name: str) -> LossFn:
    """The training loss ``name`` (``bce`` or ``dice_bce``) with per-pixel weights.

    Raises
    ------
    ValueError
        If ``name`` is not a known loss.

    Examples
    --------
    >>> logits, target = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    >>> round(float(weighted_loss("bce")(logits, target, torch.ones_like(target))), 4)
    0.6931
    >>> float(weighted_loss("bce")(logits, target, torch.zeros_like(target)))
    0.0
    """
    if name not in ("bce", "dice_bce"):
        raise ValueError(f"Argument 'name' must be 'bce' or 'dice_bce'; got {name!r}.")

    def bce(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return torch.mean(F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight)

    if name == "bce":
        return bce

    def dice_bce(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return bce(logits, target, weight) + weighted_soft_dice_loss(logits, target, weight)

    return dice_bce


def parse_source_mix(items: Sequence[str]) -> dict[str, float]:
    """``("key=share", ...)`` -> ``{key: share}``, shares normalised to sum to 1.

    Raises
    ------
    UsageError
        If an item is not ``KEY=SHARE``, a key repeats, or a share is not a non-negative number,
        or all shares are 0.

    Examples
    --------
    >>> parse_source_mix(["phe-sich=2", "phantom=2"])
    {'phe-sich': 0.5, 'phantom': 0.5}
    """
    mix: dict[str, float] = {}
    for item in items:
        key, sep, text = str(item).partition("=")
        key = key.strip()
        try:
            share = float(text)
        except ValueError:
            share = math.nan
        if not sep or not key or not (math.isfinite(share) and share >= 0):
            raise UsageError(
                f"Argument 'source_mix' holds {item!r}; each item must be GROUP=SHARE with a share >= 0"
                " (e.g. phe-sich=0.4)."
            )
        if key in mix:
            raise UsageError(f"Argument 'source_mix' names group {key!r} twice.")
        mix[key] = share
    total = sum(mix.values())
    if mix and total <= 0:
        raise UsageError("Argument 'source_mix' gives every group a share of 0; nothing would be drawn.")
    return {k: v / total for k, v in mix.items()} if mix else {}


def _key_of(group: str, keys: Sequence[str]) -> str | None:
    matches = [k for k in keys if group.startswith(k)]
    return max(matches, key=len) if matches else None


def sampling_weights(groups: Sequence[str], mix: Mapping[str, float]) -> list[float]:
    """One drawing weight per training slice so that each mix key gets its share of the draws.

    Parameters
    ----------
    groups:
        Sampling group of each training slice.
    mix:
        Key -> share (:func:`parse_source_mix`); empty: every slice weighs 1.

    Raises
    ------
    UsageError
        If a group matches no key of the mix, or a key with a positive share matches no slice.

    Examples
    --------
    >>> sampling_weights(["a", "a", "b"], {"a": 0.5, "b": 0.5})
    [0.25, 0.25, 0.5]
    """
    if not mix:
        return [1.0] * len(groups)
    keys = list(mix)
    key_of = {g: _key_of(g, keys) for g in set(groups)}
    unmatched = sorted(g for g, k in key_of.items() if k is None)
    if unmatched:
        raise UsageError(
            f"Argument 'source_mix' ({', '.join(keys)}) has no share for the training group(s)"
            f" {', '.join(unmatched)}; add them (a key matches every group that starts with it)."
        )
    counts: dict[str, int] = {}
    for g in groups:
        key = key_of[g]
        if key is not None:
            counts[key] = counts.get(key, 0) + 1
    empty = sorted(k for k, share in mix.items() if share > 0 and k not in counts)
    if empty:
        raise UsageError(
            f"Argument 'source_mix' gives a share to {', '.join(empty)}, but no training slice is in that group."
        )
    out: list[float] = []
    for g in groups:
        key = key_of[g]
        out.append(mix[key] / counts[key] if key is not None else 0.0)
    return out
