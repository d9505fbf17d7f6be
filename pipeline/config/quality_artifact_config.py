"""The ``quality.metal``, ``fluid_level``, ``skipped_slice`` and ``dural_mass`` sections: what the image hides or
passes off as blood.

Metal's streaks and a layering fluid level are two ways real CT shows blood that the networks'
training never did, a slice spoilt by motion or streaks can lose its blood whole, and a dense
dural-based mass (a meningioma) is read as blood; their checks live in
:mod:`ichpipe.pipeline.quality.metal`, :mod:`ichpipe.pipeline.quality.fluid_level`,
:mod:`ichpipe.pipeline.quality.skipped_slice` and :mod:`ichpipe.pipeline.quality.dural_mass`. Kept apart from
:mod:`~ichpipe.pipeline.config.quality_config` (which re-exports them) to keep modules short.
"""

from __future__ import annotations

from dataclasses import dataclass

from ichpipe.pipeline.config.config_checks import check_non_negative, check_pair

__all__ = ["DuralMassConfig", "FluidLevelConfig", "MetalConfig", "SkippedSliceConfig"]


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


@dataclass(frozen=True)
class SkippedSliceConfig:
    """Flag ``blood_skips_slice``: blood on the slices either side of a slice, none on it where they overlap.

    Parameters
    ----------
    min_area_mm2:
        The hole (the pieces of the neighbours' overlap that no blood on the slices between comes within
        ``slack_mm`` of) that raises the flag; ``null`` turns the check off. A strongly moved phantom
        slice: 141 mm^2; the 252-study phantom census: 33.9 at most (its truth masks 35.2, the threshold
        baseline's masks 65.3).
    slack_mm:
        Blood on the slices between within this distance (in plane) of a piece of the overlap touches it.
    max_run:
        Runs of up to this many empty slices between two slices with blood are looked at; at 2 an
        intraventricular cast's narrow stalk under the ventricles' bodies three slices up left an 80 mm^2
        hole on a phantom (moved, read right).
    """

    min_area_mm2: float | None = 80.0
    slack_mm: float = 1.0
    max_run: int = 1

    def __post_init__(self) -> None:
        check_non_negative(self)
        if self.max_run < 1:
            raise ValueError(f"Argument 'max_run' must be at least 1; got {self.max_run}.")


@dataclass(frozen=True)
class DuralMassConfig:
    """Flag ``dural_based_mass``: a found component shaped as a dome on the inner table (a meningioma's shape).

    Parameters
    ----------
    min_ml:
        Components of at least this volume are measured; ``null`` turns the check off.
    start_mm, band_mm:
        Depth from the intracranial space's edge is cut into layers ``band_mm`` thick from ``start_mm``
        (the inner table's first millimetres hold its partial volume, which neither the networks nor a
        reference mark whole); the first layer is the base.
    min_base_mm2:
        A base of at least this area (a component that touches the table at a point has none).
    max_overhang:
        No deeper layer wider than this times the base: a piece that widens inward from a small contact
        (phantom bleeds cut by the table: 0.98-6.5, so ``dome_range`` does most of the work) is not a dome
        (painted meningiomas flagged: 0.76-1.42).
    dome_range:
        The greatest depth over the radius of a disc of the base's area: a hemisphere about 1, extradural
        lenses and subdural crescents 0.19-0.78 on the phantoms, phantom bleeds cut by the table mostly
        over 1.3.
    """

    min_ml: float | None = 1.0
    start_mm: float = 1.5
    band_mm: float = 3.0
    min_base_mm2: float = 150.0
    max_overhang: float = 1.5
    dome_range: tuple[float, float] = (0.8, 1.3)

    def __post_init__(self) -> None:
        check_non_negative(self)
        check_pair("dome_range", self.dome_range)
        if self.band_mm <= 0:
            raise ValueError(f"Argument 'band_mm' must be positive; got {self.band_mm}.")
