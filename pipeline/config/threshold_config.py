"""The ``threshold:`` section of ``config.yaml``: settings of the classical (HU threshold) segmenter."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ThresholdConfig"]


@dataclass(frozen=True)
class ThresholdConfig:
    """Settings of the classical segmenter.

    Parameters
    ----------
    blood_hu:
        [low, high] HU band of acute blood.
    bone_margin_mm:
        Voxels closer than this (in-plane) to bone are ignored.
    median_size:
        In-plane median filter size in pixels (1 disables it).
    min_component_ml:
        3D components smaller than this are dropped.
    """

    blood_hu: tuple[float, float] = (50.0, 90.0)
    bone_margin_mm: float = 2.0
    median_size: int = 3
    min_component_ml: float = 0.05

    def __post_init__(self) -> None:
        if self.blood_hu[0] >= self.blood_hu[1]:
            raise ValueError("Argument 'blood_hu' must be [low, high] with low < high.")
        if self.median_size < 1:
            raise ValueError("Argument 'median_size' must be at least 1.")
        if self.bone_margin_mm < 0 or self.min_component_ml < 0:
            raise ValueError("Arguments 'bone_margin_mm' and 'min_component_ml' must not be negative.")
