"""The ``threshold:`` section of ``config.yaml``: the classical HU-threshold baseline (``--segmenter threshold``).

A baseline, not a trained method: see :mod:`ichpipe.pipeline.segment.threshold`
for its steps and ``MODEL_CARD.md`` for what it misses (blood below 50 HU, thin
collections against the skull, components under 0.1 mL).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ThresholdConfig"]


@dataclass(frozen=True)
class ThresholdConfig:
    """Settings of the classical HU-threshold baseline (:mod:`ichpipe.pipeline.segment.threshold` lists the steps).

    Parameters
    ----------
    blood_hu:
        [low, high] of acute blood (clotted blood 50-90 HU; grey matter 35-45, white 25-35).
    median_size_mm:
        In-plane median filter width (about 3 pixels at 0.45 mm); 0 disables it.
    calcification_hu:
        Calcifications (choroid plexus, pineal, dural) are at or above this;
        acute blood stays below ~100 HU even at a haematocrit of 60 %.
    calcification_margin_mm:
        Partial-volume halo excluded around a calcification: after the 3-pixel
        median the halo spans ~1-1.5 mm; a wider margin eats the blood layered
        next to a calcified choroid plexus (the real IVH example).
    rim_mm:
        Band voxels closer than this to the intracranial edge cannot start a
        hematoma. Beam hardening under the inner table reaches 3-5 mm; a
        skull-adjacent hematoma of 1 mL is ~12 mm across, so it still has a core.
    opening_mm:
        Radius of the in-plane opening of the cores: removes what is thinner
        than ~3 mm (falx and tentorium 1-2 mm, partial-volumed cortex) and keeps
        the 4-5 mm blood layer in an occipital horn; 2 mm removed that layer.
    min_core_ml:
        Smallest core that starts a hematoma.
    grow_mm:
        How far (in-plane, within the band) a core grows back into the rim
        and the opened-off edge; slightly more than ``rim_mm``.
    min_component_ml:
        Smallest reported component (0.1 mL: below clinical relevance and noise-dominated).
    thin_slab_mm:
        Thin slices are read as slabs of about this thickness (each thin slice the weighted mean of
        the slices whose centres lie under half this from it; the rule of ``inference.thin_slab_mm``):
        at 0.625 mm the noise puts acute blood out of the band and the baseline finds nothing.
        ``None``: each slice alone.
    """

    blood_hu: tuple[float, float] = (50.0, 90.0)
    median_size_mm: float = 1.4
    calcification_hu: float = 130.0
    calcification_margin_mm: float = 1.5
    rim_mm: float = 5.0
    opening_mm: float = 1.5
    min_core_ml: float = 0.1
    grow_mm: float = 6.0
    min_component_ml: float = 0.1
    thin_slab_mm: float | None = 5.0

    def __post_init__(self) -> None:
        if self.thin_slab_mm is not None and not 0.0 < self.thin_slab_mm <= 20.0:
            raise ValueError(f"Argument 'thin_slab_mm' must lie in (0, 20] mm, or be null; got {self.thin_slab_mm!r}.")
        if self.blood_hu[0] >= self.blood_hu[1]:
            raise ValueError("Argument 'blood_hu' must be [low, high] with low < high.")
        for name in ("median_size_mm", "calcification_margin_mm", "rim_mm", "opening_mm", "min_core_ml", "grow_mm",
                     "min_component_ml"):
            if not getattr(self, name) >= 0:  # also refuses NaN
                raise ValueError(f"Argument '{name}' must not be negative.")
