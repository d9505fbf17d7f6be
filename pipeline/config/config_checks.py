"""Argument checks shared by the configuration dataclasses (``ValueError``s naming the argument)."""

from __future__ import annotations

from dataclasses import fields

__all__ = ["check_fractions", "check_non_negative", "check_pair"]


def check_fractions(obj: object, *names: str) -> None:
    """Each named field of ``obj`` lies in [0, 1]."""
    for name in names:
        if not 0.0 <= getattr(obj, name) <= 1.0:  # also refuses NaN
            raise ValueError(f"Argument '{name}' must lie in [0, 1].")


def check_non_negative(obj: object, *, skip: tuple[str, ...] = ()) -> None:
    """Every number field of the dataclass ``obj`` but those in ``skip`` is >= 0 (``None`` passes)."""
    for f in fields(obj):  # type: ignore[arg-type]
        if f.name in skip:
            continue
        value = getattr(obj, f.name)
        if isinstance(value, int | float) and not isinstance(value, bool) and not value >= 0:
            raise ValueError(f"Argument '{f.name}' must be a number >= 0.")


def check_pair(name: str, pair: tuple[float, float]) -> None:
    """``pair`` is [low, high] with low < high."""
    if not pair[0] < pair[1]:
        raise ValueError(f"Argument '{name}' must be [low, high] with low < high.")
