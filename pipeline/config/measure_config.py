"""The ``measure:`` section of ``config.yaml``: the conventions of the automated ABC/2."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["MeasureConfig"]


_C_METHODS = ("count", "kothari")
_COMPONENTS = ("largest", "all")


@dataclass(frozen=True)
class MeasureConfig:
    """How the automated ABC/2 is computed (the planimetric volume has no options).

    Parameters
    ----------
    abc2_c_method:
        ``"count"``: C = sum of the own thicknesses of the slices with hematoma.
        ``"kothari"``: slices weighted 1 (area >= 75 % of the largest), 0.5
        (>= 25 %) or 0 (< 25 %).
    abc2_component:
        ``"largest"``: A, B, C from the largest 3D connected component (the main
        hematoma, as at the bedside). ``"all"``: from every hematoma voxel.
    """

    abc2_c_method: Literal["count", "kothari"] = "count"
    abc2_component: Literal["largest", "all"] = "largest"

    def __post_init__(self) -> None:
        if self.abc2_c_method not in _C_METHODS:
            raise ValueError(
                f"Argument 'abc2_c_method' must be one of {', '.join(_C_METHODS)}; got {self.abc2_c_method!r}."
            )
        if self.abc2_component not in _COMPONENTS:
            raise ValueError(
                f"Argument 'abc2_component' must be one of {', '.join(_COMPONENTS)}; got {self.abc2_component!r}."
            )
