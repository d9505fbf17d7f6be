"""Shared parts of the extra-axial and ventricular lesion painters.

Used by :mod:`~ichpipe.pipeline.synthetic.extra_axial` and
:mod:`~ichpipe.pipeline.synthetic.ventricular_blood`.

The result type :class:`InsertedLesion`, the HU bands of each stage, input checks, polar
coordinates about each slice's intracranial centre, the in-plane distance to the inner table,
and :func:`paint`: ``hu + occ * (lesion_hu - local tissue mean)``, which gives a lesion its
contrast while keeping the background's own noise (phantom or scanner) inside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = [
    "F32",
    "STAGE_HU",
    "BoolArray",
    "InsertedLesion",
    "LesionKind",
    "MassEffect",
    "Spacing",
    "SubduralStage",
    "background_noise_sd",
    "check_inputs",
    "distance_to_table",
    "finish",
    "in_range",
    "paint",
    "polar",
    "profile",
    "slice_centres",
    "texture",
    "wide_slices",
]

F32 = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]
Spacing = tuple[float, float, float]
LesionKind = Literal["subdural", "epidural", "intraventricular", "subarachnoid"]
SubduralStage = Literal["acute", "subacute", "chronic", "mixed"]

#: HU band of each stage (the lesion's mean HU is drawn or checked in it).
STAGE_HU: dict[str, tuple[float, float]] = {
    "acute": (50.0, 80.0),
    "subacute": (30.0, 50.0),
    "chronic": (0.0, 25.0),
    "mixed": (0.0, 80.0),
    "epidural": (60.0, 90.0),
    "intraventricular": (50.0, 80.0),
}


@dataclass(frozen=True)
class InsertedLesion:
    """What was painted.

    Attributes
    ----------
    kind:
        ``subdural``, ``epidural``, ``intraventricular`` or ``subarachnoid``.
    stage:
        ``acute``, ``subacute``, ``chronic``, ``mixed``; ``cast`` or ``layer`` for ventricular blood;
        ``convexity`` or ``diffuse`` for subarachnoid blood.
    mask:
        The truth (occupancy >= 0.5), bool like the volume.
    occupancy:
        Fractional occupancy in [0, 1] (float32).
    hu:
        Mean HU painted (before the background noise).
    volume_ml:
        Volume of ``mask``.
    max_thickness_mm:
        Largest distance of a lesion voxel from the inner table (extra-axial) or 0.
    """

    kind: LesionKind
    stage: str
    mask: BoolArray
    occupancy: F32
    hu: float
    volume_ml: float
    max_thickness_mm: float

    @property
    def n_slices(self) -> int:
        """Slices holding part of the lesion."""
        return int(np.count_nonzero(self.mask.reshape(self.mask.shape[0], -1).any(axis=1)))


@dataclass(frozen=True)
class MassEffect:
    """The displacement applied by :func:`apply_mass_effect`.

    Attributes
    ----------
    midline_shift_mm:
        Displacement at the head's centre line (the midline shift).
    peak_mm:
        Largest displacement anywhere.
    direction:
        In-plane unit vector (row, column) of the push.
    """

    midline_shift_mm: float
    peak_mm: float
    direction: tuple[float, float]


# ----------------------------------------------------------------------------- checks and helpers


def check_inputs(hu: npt.NDArray[np.floating], intracranial: BoolArray, spacing: Spacing) -> None:
    if hu.ndim != 3:
        raise ValueError(f"Argument 'hu' must be a 3D (slice, row, column) array; got shape {hu.shape}.")
    if intracranial.shape != hu.shape or intracranial.dtype != np.bool_:
        raise ValueError(
            f"Argument 'intracranial' must be a boolean array of the volume's shape {hu.shape}; got"
            f" {intracranial.dtype} {intracranial.shape}."
        )
    if len(spacing) != 3 or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"Argument 'spacing' must be three positive numbers (mm); got {spacing!r}.")
    if not intracranial.any():
        raise ValueError("Argument 'intracranial' is empty; the lesion needs an intracranial space.")


def in_range(name: str, value: float, low: float, high: float) -> None:
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"Argument '{name}' must be between {low:g} and {high:g}; got {value!r}.")


def slice_centres(intracranial: BoolArray) -> npt.NDArray[np.float64]:
    """Per-slice centroid (row, column) of the intracranial mask; the volume's centroid where empty."""
    grid = np.indices(intracranial.shape[1:], dtype=np.float64)
    rows, cols = grid[0], grid[1]
    overall = np.array([rows[intracranial.any(axis=0)].mean(), cols[intracranial.any(axis=0)].mean()])
    out = np.tile(overall, (intracranial.shape[0], 1))
    for z in range(intracranial.shape[0]):
        m = intracranial[z]
        if m.any():
            out[z] = (rows[m].mean(), cols[m].mean())
    return out


def wide_slices(intracranial: BoolArray, min_fraction: float) -> npt.NDArray[np.bool_]:
    """Per slice: whether its intracranial area is at least ``min_fraction`` of the largest (not the vertex or
    the skull base), and not empty.

    >>> mask = np.zeros((3, 4, 4), dtype=bool); mask[0, :1] = True; mask[1] = True; mask[2, :3] = True
    >>> wide_slices(mask, 0.5).tolist()
    [False, True, True]
    """
    area = intracranial.reshape(intracranial.shape[0], -1).sum(axis=1)
    return (area > 0) & (area >= min_fraction * area.max(initial=0))


def polar(intracranial: BoolArray, spacing: Spacing) -> tuple[F32, F32]:
    """Angle (rad, atan2(row, column) about each slice's centre) and in-plane radius (mm) of every voxel."""
    centres = slice_centres(intracranial)
    grid = np.indices(intracranial.shape[1:], dtype=np.float32)
    rows, cols = grid[0], grid[1]
    dy = (rows[None] - centres[:, 0, None, None].astype(np.float32)) * np.float32(spacing[1])
    dx = (cols[None] - centres[:, 1, None, None].astype(np.float32)) * np.float32(spacing[2])
    return np.arctan2(dy, dx).astype(np.float32), np.hypot(dy, dx).astype(np.float32)


def profile(u: F32, power: float) -> F32:
    """Flat-topped bump: ``sqrt(1 - |u|**power)`` inside |u| < 1, 0 outside."""
    inside = np.clip(1.0 - np.abs(u) ** power, 0.0, 1.0)
    return np.sqrt(inside).astype(np.float32)


def _tissue_mean(hu: npt.NDArray[np.floating], intracranial: BoolArray, sigma_px: float = 2.0) -> F32:
    """Local mean of intracranial soft tissue (normalised convolution, in-plane), ignoring bone and air."""
    weight = (intracranial & (hu > -20) & (hu < 100)).astype(np.float32)
    values = np.where(weight > 0, hu, 0.0).astype(np.float32)
    sig = (0.0, sigma_px, sigma_px)
    num = ndimage.gaussian_filter(values, sig)
    den = ndimage.gaussian_filter(weight, sig)
    fallback = float(np.median(hu[weight > 0])) if weight.any() else 30.0
    return np.where(den > 1e-3, num / np.maximum(den, 1e-3), fallback).astype(np.float32)


def paint(hu: npt.NDArray[np.floating], occupancy: F32, lesion_hu: F32 | float, intracranial: BoolArray) -> F32:
    """``hu + occ * (lesion_hu - local tissue mean)``: the lesion's contrast, the background's noise."""
    base = np.asarray(hu, dtype=np.float32)
    mean = _tissue_mean(base, intracranial)
    return (base + occupancy * (np.asarray(lesion_hu, dtype=np.float32) - mean)).astype(np.float32)


def texture(shape: tuple[int, ...], spacing: Spacing, rng: np.random.Generator, scale_mm: float) -> F32:
    """A smooth random field of unit standard deviation (correlation length ``scale_mm``)."""
    field = rng.normal(size=shape).astype(np.float32)
    field = ndimage.gaussian_filter(field, [scale_mm / s for s in spacing])
    sd = float(field.std())
    return (field / sd).astype(np.float32) if sd > 0 else field


def background_noise_sd(hu: npt.NDArray[np.floating], region: BoolArray) -> float:
    """A robust noise measure in ``region``: 1.4826 MAD of each slice minus its 3x3 median.

    The residual of an in-plane 3x3 median filter holds the noise (slowly varying anatomy
    cancels). It is proportional to, not equal to, the noise SD (the median takes part of the
    noise with it); compare it between regions of one volume. NaN for fewer than 50 voxels.
    """
    base = np.asarray(hu, dtype=np.float32)
    if int(region.sum()) < 50:
        return math.nan
    residual = base - ndimage.median_filter(base, size=(1, 3, 3))
    values = residual[region]
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def distance_to_table(intracranial: BoolArray, spacing: Spacing) -> F32:
    """In-plane distance (mm) of each intracranial voxel to the inner table, slice by slice.

    In-plane, as thickness is read on axial slices, and so that a slice whose neighbours lack an
    intracranial mask (skull base, a missing slice) does not see the table one slice away.
    """
    out = np.zeros(intracranial.shape, dtype=np.float32)
    for z in range(intracranial.shape[0]):
        if intracranial[z].any():
            filled = ndimage.binary_fill_holes(intracranial[z])  # holes (calcifications) are not the table
            out[z] = ndimage.distance_transform_edt(filled, sampling=spacing[1:])
    return out * intracranial


def finish(
    kind: LesionKind, stage: str, hu: npt.NDArray[np.floating], occ: F32, lesion_hu: F32 | float,
    intracranial: BoolArray, spacing: Spacing, depth: F32 | None,
) -> tuple[F32, InsertedLesion]:
    occ = np.where(intracranial, occ, 0.0).astype(np.float32)
    mask = occ >= 0.5
    out = paint(hu, occ, lesion_hu, intracranial)
    voxel_ml = spacing[0] * spacing[1] * spacing[2] / 1000.0
    mean_hu = float(np.mean(np.broadcast_to(np.asarray(lesion_hu, dtype=np.float32), hu.shape)[mask])) if mask.any() \
        else math.nan
    thickness = float(depth[mask].max()) if depth is not None and mask.any() else 0.0
    return out, InsertedLesion(kind, stage, mask, occ, mean_hu, float(mask.sum()) * voxel_ml, thickness)
