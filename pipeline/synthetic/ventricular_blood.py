"""Intraventricular blood: find the ventricles of any head, fill them (cast) or layer blood in them.

:func:`find_ventricles` takes CSF-range regions near the centre of the head (a phantom's or a
real scan's); :func:`insert_intraventricular` fills them completely (a **cast**) or fills their
dependent part below a flat fluid level (**layering**: supine patient, dependent = posterior =
``+row`` in DICOM axial images), with partial-volume walls and the background's noise kept.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe.pipeline.segment.components import disk_2d
from ichpipe.pipeline.synthetic.lesion_common import (
    F32,
    STAGE_HU,
    BoolArray,
    InsertedLesion,
    Spacing,
    check_inputs,
    finish,
    in_range,
    polar,
    texture,
    wide_slices,
)

__all__ = ["find_ventricles", "insert_intraventricular"]

def find_ventricles(
    hu: npt.NDArray[np.floating],
    intracranial: BoolArray,
    spacing: Spacing,
    *,
    csf_hu: tuple[float, float] = (-5.0, 18.0),
    central_fraction: float = 0.55,
    min_ml: float = 0.2,
    max_components: int = 3,
    smooth_mm: float = 1.2,
    min_width_mm: float = 2.5,
    min_area_fraction: float = 0.4,
) -> BoolArray:
    """The ventricles: CSF-range regions near the centre of the head.

    Voxels of the volume smoothed in-plane (Gaussian, sigma ``smooth_mm``) inside ``csf_hu``,
    inside the intracranial space eroded in-plane by 3 mm (no subarachnoid CSF), within
    ``central_fraction`` of each slice's equivalent radius of the centre, on slices whose
    intracranial area is at least ``min_area_fraction`` of the largest (near the vertex a slice
    cuts the CSF over the brain obliquely: a ring, not a ventricle); opened in-plane with
    a disk of diameter ``min_width_mm`` (what is narrower is not a ventricle: the
    interhemispheric fissure, a sulcus, noise), holes filled slice by slice; the largest
    ``max_components`` 3D components of at least ``min_ml``.

    Without the smoothing and the opening, noisy white matter (2-10 HU of noise) dips into the
    CSF range pixel by pixel, and a "cast" would be painted on a speckle cloud around the
    ventricles and down the fissure.

    Raises
    ------
    ValueError
        If the volume and mask do not match or an argument is out of range.
    """
    check_inputs(np.asarray(hu), intracranial, spacing)
    if not csf_hu[0] < csf_hu[1]:
        raise ValueError(f"Argument 'csf_hu' must be (low, high) with low < high; got {csf_hu!r}.")
    in_range("smooth_mm", smooth_mm, 0.0, 5.0)
    in_range("min_width_mm", min_width_mm, 0.0, 10.0)
    in_range("min_area_fraction", min_area_fraction, 0.0, 1.0)
    sigma = (0.0, smooth_mm / spacing[1], smooth_mm / spacing[2])
    smooth = ndimage.gaussian_filter(np.asarray(hu, dtype=np.float32), sigma)
    in_plane = np.zeros((3, 3, 3), dtype=bool)
    in_plane[1] = ndimage.generate_binary_structure(2, 1)
    core = ndimage.binary_erosion(intracranial, structure=in_plane, iterations=max(1, round(3.0 / min(spacing[1:]))))
    _angle, radius = polar(intracranial, spacing)
    area = intracranial.reshape(intracranial.shape[0], -1).sum(axis=1) * spacing[1] * spacing[2]
    limit = (central_fraction * np.sqrt(area / math.pi)).astype(np.float32)[:, None, None]
    wide = wide_slices(intracranial, min_area_fraction)[:, None, None]
    candidate = core & wide & (smooth >= csf_hu[0]) & (smooth <= csf_hu[1]) & (radius <= limit)
    if min_width_mm > 0:
        disk = disk_2d(0.5 * min_width_mm, (spacing[1], spacing[2]))[None]
        candidate = ndimage.binary_opening(candidate, structure=disk)
    candidate = ndimage.binary_fill_holes(candidate, structure=in_plane)  # slice by slice
    labels, n = ndimage.label(candidate)
    if n == 0:
        return np.zeros(hu.shape, dtype=bool)
    voxel_ml = spacing[0] * spacing[1] * spacing[2] / 1000.0
    sizes = np.bincount(labels.ravel()) * voxel_ml
    sizes[0] = 0.0
    keep = [int(i) for i in np.argsort(sizes)[::-1][:max_components] if sizes[i] >= min_ml]
    return np.isin(labels, keep)


def insert_intraventricular(
    hu: npt.NDArray[np.floating],
    intracranial: BoolArray,
    spacing: Spacing,
    ventricles: BoolArray,
    *,
    mode: Literal["cast", "layer"] = "layer",
    fill_fraction: float = 0.3,
    level_hu: float | None = None,
    dependent_sign: int = 1,
    rng: np.random.Generator | None = None,
) -> tuple[F32, InsertedLesion]:
    """Fill ventricles with blood: a whole cast, or a dependent layer under a flat fluid level.

    Parameters
    ----------
    ventricles:
        Where the blood may go (:func:`find_ventricles`, or the phantom's ventricle mask).
    mode:
        ``cast`` fills all of ``ventricles``; ``layer`` fills the dependent ``fill_fraction`` of
        their volume, below a plane perpendicular to the row axis (supine: a coronal level).
    fill_fraction:
        ``layer`` only, 0.05-0.9.
    level_hu:
        Mean HU (drawn in 50-80 when ``None``).

    Raises
    ------
    ValueError
        If ``ventricles`` is empty or not inside the intracranial space, or an argument is out of range.
    """
    check_inputs(np.asarray(hu), intracranial, spacing)
    if ventricles.shape != hu.shape or not ventricles.any():
        raise ValueError("Argument 'ventricles' must be a non-empty boolean mask of the volume's shape.")
    if (ventricles & ~intracranial).any():
        raise ValueError("Argument 'ventricles' reaches outside the intracranial space.")
    if mode not in ("cast", "layer"):
        raise ValueError(f"Argument 'mode' must be 'cast' or 'layer'; got {mode!r}.")
    in_range("fill_fraction", fill_fraction, 0.05, 0.9)
    if dependent_sign not in (1, -1):
        raise ValueError(f"Argument 'dependent_sign' must be 1 or -1; got {dependent_sign!r}.")
    rng = rng or np.random.default_rng(0)
    walls = ndimage.gaussian_filter(ventricles.astype(np.float32), (0.0, 0.5, 0.5))
    walls = np.where(ventricles, np.maximum(walls, 0.5), walls).astype(np.float32)
    if mode == "layer":
        rows = np.broadcast_to(np.arange(hu.shape[1], dtype=np.float32)[None, :, None] * dependent_sign, hu.shape)
        cut = float(np.quantile(rows[ventricles], 1.0 - fill_fraction))
        level = np.clip(rows - np.float32(cut) + 0.5, 0.0, 1.0)
        occ = (walls * level).astype(np.float32)
    else:
        occ = walls
    low, high = STAGE_HU["intraventricular"]
    mean = float(rng.uniform(low + 5.0, high - 5.0)) if level_hu is None else float(level_hu)
    lesion_hu = np.clip(mean + 2.0 * texture(hu.shape, spacing, rng, 3.0), low, high).astype(np.float32)
    return finish("intraventricular", mode, hu, occ, lesion_hu, intracranial, spacing, None)
