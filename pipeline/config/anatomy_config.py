"""The ``anatomy:`` section of ``config.yaml``: HU thresholds of the head and intracranial masks."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AnatomyConfig"]


@dataclass(frozen=True)
class AnatomyConfig:
    """HU thresholds for the head and the intracranial space.

    Parameters
    ----------
    head_min_hu:
        Voxels above this are part of the head (skin, fat, brain, bone), not air.
    bone_min_hu:
        Voxels at or above this are bone.
    brain_hu:
        [low, high] HU of intracranial soft tissue and blood.
    bone_closing_mm:
        In-plane closing of the bone mask before filling the skull (closes
        sutures and small foramina).
    """

    head_min_hu: float = -300.0
    bone_min_hu: float = 300.0
    brain_hu: tuple[float, float] = (-15.0, 120.0)
    bone_closing_mm: float = 3.0

    def __post_init__(self) -> None:
        if self.brain_hu[0] >= self.brain_hu[1]:
            raise ValueError("Argument 'brain_hu' must be [low, high] with low < high.")
        if self.bone_closing_mm < 0:
            raise ValueError("Argument 'bone_closing_mm' must not be negative.")
