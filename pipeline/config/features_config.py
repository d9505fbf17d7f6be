"""Settings of the imaging features (the ``predictor.features:`` section of ``config.yaml``).

Kept apart from the feature code so that loading the configuration does not
import scikit-image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["FeatureConfig", "MeshMethod"]

MeshMethod = Literal["smooth", "binary"]


def _positive(value: float, key: str) -> None:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"predictor.features.{key} must be a positive number; got {value!r}.")


@dataclass(frozen=True)
class FeatureConfig:
    """How ``ichpipe run`` computes the imaging features of the measured series.

    Parameters
    ----------
    enabled:
        Compute the features in ``ichpipe run`` and record them in the results
        store (``features`` of the report). Off: the report has no ``features``.
    mesh:
        Surface mesh behind the shape features. ``smooth``: marching cubes on
        the zero level of a per-slice signed distance (in-plane Gaussian
        anti-aliasing of ``mesh_smoothing_px`` pixels, linear shape-based
        interpolation along the normal); within about 1-2 % of the analytic
        volume and surface area of an ellipsoid, also with 5-mm slices.
        ``binary``: marching cubes at 0.5 on the binary mask, as pyradiomics
        does; its surface area is over-read by about 9 % at 1 mm isotropic and
        about 25 % with 5-mm slices (staircase), so sphericity is under-read.
    mesh_smoothing_px:
        In-plane Gaussian sigma (pixels) of the ``smooth`` mesh.
    bin_width_hu:
        Bin width (HU) of the histogram behind Entropy and Uniformity
        (pyradiomics' default 25; bins are ``floor(HU / width)``).
    voxel_array_shift:
        Added to HU before Energy, TotalEnergy and RootMeanSquared
        (pyradiomics' ``voxelArrayShift``; 0 keeps plain HU).
    head_min_hu:
        Voxels above this are head (not air); the head gives the midline and
        the vertex used by the location features.
    tentorium_below_vertex_mm:
        Approximate tentorium: hematoma voxels more than this far below the
        top of the head (along patient superior) **and** posterior to the
        coronal plane ``posterior_margin_mm`` in front of the head's centroid
        count as infratentorial. A rough anatomical heuristic (no atlas).
    posterior_margin_mm:
        See ``tentorium_below_vertex_mm``.
    """

    enabled: bool = True
    mesh: MeshMethod = "smooth"
    mesh_smoothing_px: float = 1.0
    bin_width_hu: float = 25.0
    voxel_array_shift: float = 0.0
    head_min_hu: float = -300.0
    tentorium_below_vertex_mm: float = 100.0
    posterior_margin_mm: float = 10.0

    def __post_init__(self) -> None:
        if self.mesh not in ("smooth", "binary"):
            raise ValueError(f"predictor.features.mesh must be 'smooth' or 'binary'; got {self.mesh!r}.")
        if not math.isfinite(self.mesh_smoothing_px) or self.mesh_smoothing_px < 0:
            raise ValueError(
                f"predictor.features.mesh_smoothing_px must be 0 or more pixels; got {self.mesh_smoothing_px!r}."
            )
        _positive(self.bin_width_hu, "bin_width_hu")
        _positive(self.tentorium_below_vertex_mm, "tentorium_below_vertex_mm")
        for key in ("voxel_array_shift", "head_min_hu", "posterior_margin_mm"):
            if not math.isfinite(getattr(self, key)):
                raise ValueError(f"predictor.features.{key} must be a finite number; got {getattr(self, key)!r}.")
