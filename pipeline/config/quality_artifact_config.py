"""The ``quality.metal`` and ``quality.fluid_level`` sections: what the image's physics hides.

Metal's streaks and a layering fluid level are two ways real CT shows blood that the networks'
training never did; their checks live in :mod:`ichpipe.pipeline.quality.metal` and
:mod:`ichpipe.pipeline.quality.fluid_level`. Kept apart from
:mod:`~ichpipe.pipeline.config.quality_config` (which re-exports them) to keep modules short.
"""

from __future__ import annotations

from dataclasses import dataclass

from ichpipe.pipeline.config.config_checks import check_non_negative, check_pair

__all__ = ["FluidLevelConfig", "MetalConfig"]


@dataclass(frozen=True)
class MetalConfig:
    """Flag ``metal_artifact``: metal in or beside the intracranial space (clip, coil, drain, probe).

    Parameters
    ----------
    metal_hu:
        Voxels at or above this are metal, not bone: dense petrous bone reaches
        2,121 HU on the real GE head, and a 12-bit reconstruction saturates metal
        at 3,071 HU.
    margin_mm:
        Metal within this distance (in plane) of the convex hull of the intracranial
        space (on the metal's slice or a neighbouring one) is counted: a drain's path
        through its burr hole; the plates and screws on the outer table and dental
        fillings lie further out.
    min_ml:
        The flag is raised from this much metal (5 mm^3: a 2.5 mm probe through one
        5 mm slice is about 25 mm^3). ``null`` turns the check off.
    """

    metal_hu: float = 3000.0
    margin_mm: float = 3.0
    min_ml: float | None = 0.005

    def __post_init__(self) -> None:
        check_non_negative(self)


@dataclass(frozen=True)
class FluidLevelConfig:
    """Flag ``fluid_level``: a horizontal level at the top of the blood (serum above it, not counted).

    Parameters
    ----------
    min_area_mm2:
        The level's plane (flat run times slice thickness, >= 2 slices at one height) that raises
        the flag; ``null`` turns the check off. Phantom levels: 243-1,489; the phantom census 107 at most.
    min_piece_mm2, min_chord_mm, min_width_share, depth_mm:
        A piece of blood of at least ``min_piece_mm2`` whose upper edge is flat (within 0.5 mm) for
        ``min_chord_mm`` and ``min_width_share`` of its width ``depth_mm`` lower.
    band_mm, above_hu, min_step_hu:
        The median HU ``band_mm`` above the level lies in ``above_hu`` (serum, not CSF) and the blood
        below is ``min_step_hu`` denser.
    height_tol_mm:
        Levels within this height (patient space, along gravity) on different slices are one level.
    """

    min_area_mm2: float | None = 200.0
    min_piece_mm2: float = 20.0
    min_chord_mm: float = 8.0
    min_width_share: float = 0.75
    depth_mm: float = 4.0
    band_mm: float = 3.0
    above_hu: tuple[float, float] = (20.0, 45.0)
    min_step_hu: float = 20.0
    height_tol_mm: float = 1.0

    def __post_init__(self) -> None:
        check_non_negative(self)
        check_pair("above_hu", self.above_hu)
