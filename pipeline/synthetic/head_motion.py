"""A head that moves while a slice is acquired: for measuring what motion does to a volume.

Patients with a haemorrhage are often restless or confused, and a head that moves during the gantry's
rotation is one of the commonest faults of an emergency head CT. No CT with motion is in
``../shared/data``, so motion is **added by a model** (``bench/head_motion.py``), the way
:mod:`~ichpipe.pipeline.synthetic.metal_streaks` adds metal: the slice is projected (parallel beam,
``views`` angles over 180 degrees), but each view sees the head where it was at that moment, turned by
up to ``rotation_deg`` about the image centre and shifted by up to ``shift_mm``; the difference between
that and the still head's projection, reconstructed by filtered back projection with a Hann filter (a
soft brain kernel), is added to the slice. The motion is a jerk: still until ``start`` (a fraction of the
rotation), then a smooth step to the full pose over ``ramp``, then still there. The result has what
motion gives on a scanner: streaks running on from the skull's edges along the rays of the views that
disagree, and the skull and the brain's edges doubled or smeared.

It is a model, not a scanner: in-plane motion only (a nod, through the plane, is the commoner motion:
not modelled), one rotation a slice, parallel beam, no noise change; the slices after the jerk are not
moved (the truth mask keeps its place); the change is reconstructed with the soft kernel while the slice
keeps its own fine detail where it was (a head moved for a whole rotation has its mass where it went, its
sharpest edges also where it was).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from skimage.transform import iradon, radon

from ichpipe.pipeline.synthetic.metal_streaks import hu_change, line_attenuation

__all__ = ["head_motion"]


def _pose_fraction(t: npt.NDArray[np.float64], start: float, ramp: float) -> npt.NDArray[np.float64]:
    """0 before ``start``, 1 after ``start + ramp``, a smooth (raised-cosine) step between."""
    u = np.clip((t - start) / ramp, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * u)


def _moved(image: npt.NDArray[np.float64], angle_deg: float, shift_px: tuple[float, float]) -> npt.NDArray[np.float64]:
    """``image`` turned by ``angle_deg`` about its centre and then shifted by ``shift_px`` (rows, columns)."""
    a = np.deg2rad(angle_deg)
    rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    centre = (np.array(image.shape, dtype=float) - 1.0) / 2.0
    # output[o] = input[R (o - centre - shift) + centre]
    offset = centre - rotation @ (centre + np.asarray(shift_px, dtype=float))
    return ndimage.affine_transform(image, rotation, offset=offset, order=3, mode="constant", cval=0.0)


def head_motion(
    plane: npt.ArrayLike,
    *,
    pixel_mm: float,
    rotation_deg: float,
    shift_mm: tuple[float, float] = (0.0, 0.0),
    start: float = 0.4,
    ramp: float = 0.25,
    views: int = 984,
    steps: int = 24,
) -> npt.NDArray[np.float32]:
    """A square slice as reconstructed when the head moved while it was acquired.

    Parameters
    ----------
    plane:
        HU slice, square (rows = columns); what lies outside its inscribed circle is not projected.
    pixel_mm:
        Pixel size (mm).
    rotation_deg:
        The in-plane turn at the end of the jerk (degrees, about the image centre).
    shift_mm:
        The shift at the end of the jerk (rows, columns; mm).
    start:
        When the jerk starts, as a fraction of the rotation (0-1).
    ramp:
        How long it lasts, as a fraction of the rotation (> 0).
    views:
        Projection angles over 180 degrees.
    steps:
        Poses the jerk is cut into (the views between two poses see the same head).

    Returns
    -------
    numpy.ndarray
        float32 HU slice, clipped to -1024..3071.

    Examples
    --------
    >>> yy, xx = np.ogrid[:64, :64]
    >>> r2 = (yy - 32) ** 2 + (xx - 32) ** 2
    >>> head = np.select([r2 <= 18**2, r2 <= 20**2], [40.0, 1000.0], -1000.0)  # brain in a skull, in air
    >>> still = head_motion(head, pixel_mm=1.0, rotation_deg=0.0, views=90)
    >>> bool(np.abs(still - np.clip(head, -1024, 3071)).max() < 1e-3)
    True
    >>> moved = head_motion(head, pixel_mm=1.0, rotation_deg=0.0, shift_mm=(0.0, 3.0), views=90)
    >>> bool(np.abs(moved - head)[30:34, 10:16].max() > 300)  # the skull's edge smeared
    True
    """
    hu = np.asarray(plane, dtype=np.float64)
    if hu.ndim != 2 or hu.shape[0] != hu.shape[1]:
        raise ValueError(f"Argument 'plane' must be a square 2D slice; got shape {hu.shape}.")
    if not pixel_mm > 0:
        raise ValueError(f"Argument 'pixel_mm' must be a number > 0; got {pixel_mm}.")
    if not 0.0 <= start <= 1.0 or not ramp > 0:
        raise ValueError(f"Arguments 'start' (0-1) and 'ramp' (> 0) are out of range: {start}, {ramp}.")
    if views < 2 or steps < 1:
        raise ValueError(f"Arguments 'views' (>= 2) and 'steps' (>= 1) are out of range: {views}, {steps}.")
    shift = (float(shift_mm[0]), float(shift_mm[1]))
    if rotation_deg == 0.0 and shift == (0.0, 0.0):
        return np.clip(hu, -1024.0, 3071.0).astype(np.float32)
    tissue, circle = line_attenuation(hu, pixel_mm)
    theta = np.linspace(0.0, 180.0, views, endpoint=False)
    clean = radon(tissue, theta=theta)
    fraction = _pose_fraction(np.linspace(0.0, 1.0, views, endpoint=False), start, ramp)
    level = np.minimum(np.floor(fraction * steps + 0.5) / steps, 1.0)  # each view's pose, cut into steps
    measured = clean.copy()
    for value in np.unique(level):
        if value == 0.0:
            continue
        at = level == value
        pose = _moved(tissue, value * rotation_deg, (value * shift[0] / pixel_mm, value * shift[1] / pixel_mm))
        measured[:, at] = radon(pose * circle, theta=theta[at])
    change = iradon(measured - clean, theta=theta, filter_name="hann")
    out = hu + hu_change(change, pixel_mm, circle)
    return np.clip(out, -1024.0, 3071.0).astype(np.float32)
