"""A head turned in the image, read by the networks upright.

A patient's head often lies turned on the table (10-45 degrees in many of the real PHE-SICH-CT-IDS
patients), and a decubitus scan lies at 90 degrees; the networks learnt heads within about 15
degrees of upright. Turned 15-30 degrees, a phantom's deep grey matter beside the ventricles was
read as blood (a 4.72 mL bleed read 6.5-6.9 mL, no flag), and turned 90 degrees three of six
phantom bleeds were read wrong (MODEL_CARD.md, "A head turned in the image").

:func:`head_turn` measures the turn from the second moments of the head's outline (the largest
component above ``anatomy.head_min_hu``) on the slices that hold at least 60 % of the largest
slice's head: a head is longer front to back than side to side (the long axis' share is the
``elongation``, 1.05-1.31 on the real and phantom heads measured), so the long axis lies along the
image's columns when the head is upright, its face up or down. The networks then read each slice
turned by that angle (:func:`turn_slices`, bilinear, at the network's pixel grid: after the resize
and before the crop) and their probabilities are turned back before they are thresholded; every
rule that reads HU reads the slices as they lie. Which way the face points is not measured: the
networks learnt faces up and down (flipped front to back).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe.pipeline.config.inference_config import MAX_HEAD_ELONGATION
from ichpipe.pipeline.segment.resize import resize_bilinear

__all__ = ["MAX_HEAD_ELONGATION", "HeadTurn", "head_shadow", "head_turn", "turn_slices", "turned_box", "upright_crop"]

#: Slices counted when the turn is measured: those whose head area is at least this share of the largest.
MIN_AREA_SHARE = 0.6


@dataclass(frozen=True)
class HeadTurn:
    """How far a head lies turned in the image plane.

    Attributes
    ----------
    degrees:
        The angle, in (-90, 90], that :func:`turn_slices` turns the slices by to bring the head's
        long axis to the image's columns (0: upright).
    elongation:
        The head's long axis over its short axis (square root of the moments' eigenvalue ratio):
        near 1 the long axis, and so the turn, is not defined.
    cut:
        Whether the head touches the image's edge on a slice it was measured on (the outline, and
        so the moments, are then the field's, not the head's).
    """

    degrees: float
    elongation: float
    cut: bool

    def applies(self, *, min_degrees: float, min_elongation: float) -> bool:
        """Whether the networks should read the head turned upright under these settings.

        >>> HeadTurn(degrees=-23.6, elongation=1.22, cut=False).applies(min_degrees=10, min_elongation=1.05)
        True
        >>> HeadTurn(degrees=-23.6, elongation=1.01, cut=False).applies(min_degrees=10, min_elongation=1.05)
        False
        >>> HeadTurn(degrees=88.0, elongation=2.1, cut=False).applies(min_degrees=10, min_elongation=1.05)
        False
        """
        return (abs(self.degrees) >= min_degrees and min_elongation <= self.elongation <= MAX_HEAD_ELONGATION
                and not self.cut)


def head_turn(head: npt.NDArray[np.bool_], *, pixel_spacing_mm: tuple[float, float] = (1.0, 1.0)) -> HeadTurn | None:
    """The in-plane turn of the head ``head`` (bool, ``(slices, rows, columns)``), or ``None`` without one.

    Parameters
    ----------
    head:
        The head's voxels (the largest component above ``anatomy.head_min_hu``).
    pixel_spacing_mm:
        Row and column spacing: the moments are taken in mm, so non-square pixels do not turn the axis.

    Examples
    --------
    >>> rows, cols = np.mgrid[:64, :64]
    >>> upright = ((rows - 32) / 24.0) ** 2 + ((cols - 32) / 18.0) ** 2 <= 1.0
    >>> round(head_turn(np.stack([upright] * 3)).degrees, 1)
    0.0
    >>> turned = ndimage.rotate(upright.astype(float), 30, reshape=False, order=1) > 0.5
    >>> round(head_turn(np.stack([turned] * 3)).degrees)
    -30
    """
    head = np.asarray(head, dtype=bool)
    if head.ndim != 3:
        raise ValueError(f"Argument 'head' must be a (slices, rows, columns) mask; got shape {head.shape}.")
    area = head.sum(axis=(1, 2))
    if not area.any():
        return None
    kept = head[area >= MIN_AREA_SHARE * area.max()]
    cut = bool(kept[:, 0, :].any() or kept[:, -1, :].any() or kept[:, :, 0].any() or kept[:, :, -1].any())
    # the moments of every kept voxel, from how many kept slices hold head at each pixel
    count = kept.sum(axis=0, dtype=np.float64)
    total = float(count.sum())
    rows, cols = np.indices(count.shape, dtype=np.float64)
    y = (rows - float((rows * count).sum()) / total) * float(pixel_spacing_mm[0])
    x = (cols - float((cols * count).sum()) / total) * float(pixel_spacing_mm[1])
    myy, mxx, mxy = (float((a * b * count).sum()) / total for a, b in ((y, y), (x, x), (x, y)))
    # the long axis' angle from the image's rows (+x) towards +y; upright it is +-90 degrees
    axis = 0.5 * np.degrees(np.arctan2(2.0 * mxy, mxx - myy))
    degrees = float((axis - 90.0 + 90.0) % 180.0 - 90.0)
    low, high = np.linalg.eigvalsh(np.array([[mxx, mxy], [mxy, myy]]))
    elongation = float(np.sqrt(high / low)) if low > 0 else float("inf")
    return HeadTurn(degrees=90.0 if degrees == -90.0 else degrees, elongation=elongation, cut=cut)


def turn_slices(stack: npt.NDArray[np.floating], degrees: float, *, fill: float) -> npt.NDArray[np.float32]:
    """Each slice of ``stack`` (``(..., rows, columns)``) turned in plane by ``degrees`` about its centre.

    Bilinear; what comes in from outside the slice is ``fill``. The shape is kept.

    >>> one = np.zeros((1, 5, 5), np.float32); one[0, 0, 2] = 1.0
    >>> np.argwhere(turn_slices(one, 90, fill=0.0)[0] > 0.5).tolist()
    [[2, 0]]
    """
    stack = np.asarray(stack, dtype=np.float32)
    if stack.ndim < 2:
        raise ValueError(f"Argument 'stack' must hold slices (rows, columns); got shape {stack.shape}.")
    turned = ndimage.rotate(stack, float(degrees), axes=(stack.ndim - 2, stack.ndim - 1), reshape=False, order=1,
                            mode="constant", cval=float(fill))
    return np.asarray(turned, dtype=np.float32)


def turned_box(region: npt.NDArray[np.bool_], degrees: float) -> tuple[int, int, int, int]:
    """The bounding box ``(y0, y1, x0, x1)`` of ``region`` (a bool image) once turned by ``degrees``.

    Where :func:`turn_slices` moves ``region``, a pixel of margin kept, clipped to the image (the whole
    image when ``region`` is empty): the crop of the turned slices that holds the head.

    >>> band = np.zeros((64, 64), bool); band[10:20, :] = True
    >>> turned_box(band, 90)
    (0, 64, 9, 21)
    """
    region = np.asarray(region, dtype=bool)
    if region.ndim != 2:
        raise ValueError(f"Argument 'region' must be a bool image (rows, columns); got shape {region.shape}.")
    rows, cols = np.nonzero(turn_slices(region[None].astype(np.float32), degrees, fill=0.0)[0] > 0.0)
    if not len(rows):
        return 0, region.shape[0], 0, region.shape[1]
    return (max(int(rows.min()) - 1, 0), min(int(rows.max()) + 2, region.shape[0]),
            max(int(cols.min()) - 1, 0), min(int(cols.max()) + 2, region.shape[1]))


def head_shadow(hu: npt.NDArray[np.floating], slices: npt.NDArray[np.bool_], *, min_hu: float,
                chunk: int = 32) -> npt.NDArray[np.bool_]:
    """The head's footprint: the largest piece of the pixels above ``min_hu`` on any of the ``slices``.

    ``slices``: bool per slice of ``hu``. Read ``chunk`` slices at a time (a 600-slice study never
    holds its whole comparison at once); the largest 8-connected piece leaves out a head holder or a
    table apart from the head.

    >>> hu = np.full((3, 6, 6), -1000.0); hu[1, 1:3, 1:3] = 40.0; hu[0, 5, 5] = 40.0; hu[2, 0, 5] = 40.0
    >>> head_shadow(hu, np.array([True, True, False]), min_hu=-300).sum()
    np.int64(4)
    """
    wanted = np.flatnonzero(np.asarray(slices, dtype=bool))
    shadow = np.zeros(hu.shape[1:], dtype=bool)
    for start in range(0, len(wanted), chunk):
        shadow |= (hu[wanted[start:start + chunk]] > min_hu).any(axis=0)
    labels, n = ndimage.label(shadow, structure=np.ones((3, 3), dtype=bool))
    if n > 1:
        shadow = labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
    return shadow


def upright_crop(hu: npt.NDArray[np.floating], head_slices: npt.NDArray[np.bool_] | None,
                 box: tuple[int, int, int, int], grid: tuple[int, int], degrees: float, *,
                 min_hu: float) -> tuple[int, int, int, int]:
    """The crop ``(y0, y1, x0, x1)`` of the network's ``grid`` that holds the head once turned by ``degrees``.

    ``box``: the head's box on ``grid`` as it lies; ``head_slices``: which slices of ``hu`` hold head
    (``None``: no crop to the head, the whole grid turned). The head's footprint within the box
    (:func:`head_shadow`) is turned, not the box: a turned box's own box is larger, and the networks'
    time goes with the crop's area.
    """
    inside = np.zeros(grid, dtype=bool)
    inside[box[0]:box[1], box[2]:box[3]] = True
    if head_slices is not None:
        shadow = head_shadow(hu, head_slices, min_hu=min_hu)[None].astype(np.float32)
        inside &= resize_bilinear(shadow, grid, antialias=False)[0] > 0.0
    return turned_box(inside, degrees)
