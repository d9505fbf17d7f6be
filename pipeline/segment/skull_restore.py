"""A bone ring for the network's input where a skull-stripped or brain-only export removed the skull.

Research exports (and the real intraventricular example in ``../shared/data``)
often set the skull to one fill value, usually 0 HU. In the network's window
(W80/L40 for the default checkpoint) 0 HU is black, like air: the network then
sees a brain floating in air, a head it never saw in training, and finds almost
nothing (a 30 mL phantom hematoma read as 4.3 mL). Painting bone (1000 HU) back
on the fill-value voxels of a band just outside the intracranial space gives it
the head it knows; only the network's input changes, never the HU that are
measured, the intracranial space or the threshold cross-check. The width of the
band is ``inference.restore_stripped_skull_mm`` (0 turns it off); MODEL_CARD.md
("Robustness") gives what each width measured.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe.pipeline.segment.components import bounding_box
from ichpipe.pipeline.segment.intracranial import IntracranialResult

__all__ = ["BONE_HU", "MIN_FILL_SHARE", "stripped_skull_ring"]

#: HU painted on the ring (cortical bone; anything above the window's top looks the same).
BONE_HU = 1000.0

#: Share of the band outside the intracranial space that must hold the fill value for it to be painted.
MIN_FILL_SHARE = 0.5


def stripped_skull_ring(
    hu: npt.NDArray[np.floating],
    intracranial: IntracranialResult,
    pixel_spacing_mm: tuple[float, float],
    *,
    width_mm: float,
) -> npt.NDArray[np.bool_] | None:
    """The fill-value voxels within ``width_mm`` (in-plane) outside the intracranial space.

    Built when the volume has a fill value (a large, isolated share of voxels at
    one exact value) and at least :data:`MIN_FILL_SHARE` of the band holds it: a
    stripped skull, or a brain-only export whose outside is all fill.

    Parameters
    ----------
    hu:
        The HU volume ``(slices, rows, columns)``.
    intracranial:
        Its intracranial space and the fill value found with it.
    pixel_spacing_mm:
        Row and column spacing.
    width_mm:
        Width of the band; 0 builds none.

    Returns
    -------
    numpy.ndarray or None
        bool, the shape of ``hu``; ``None`` when there is no fill value, the
        width is 0 or less than :data:`MIN_FILL_SHARE` of the band is fill.

    Raises
    ------
    ValueError
        If ``width_mm`` is negative or ``hu`` does not match the intracranial mask.

    Examples
    --------
    A head whose skull was set to 0 HU: the ring is the 0 HU voxels next to the brain.

    >>> from ichpipe.pipeline.segment.intracranial import find_intracranial
    >>> yy, xx = np.mgrid[:96, :96]
    >>> r = np.hypot(yy - 48, xx - 48)
    >>> noise = np.random.default_rng(0).normal(0.0, 4.0, (4, 96, 96)).round()
    >>> brain, skull, scalp = 35.0 + noise, 0.0, 40.0 + noise
    >>> hu = np.where(r < 34, brain, np.where(r < 39, skull, np.where(r < 42, scalp, -1000.0)))
    >>> space = find_intracranial(hu, (2.0, 2.0), 5.0)
    >>> ring = stripped_skull_ring(hu, space, (2.0, 2.0), width_mm=4.0)
    >>> bool(ring[2, 48, 83]), bool(ring[2, 48, 48]), bool(ring[2, 48, 86])
    (True, False, False)
    """
    if width_mm < 0:
        raise ValueError(f"Argument 'width_mm' must not be negative; got {width_mm}.")
    mask = intracranial.mask
    if mask.shape != hu.shape:
        raise ValueError(f"Argument 'hu' has shape {hu.shape}, the intracranial mask {mask.shape}.")
    fill = intracranial.levels.fill_value
    if width_mm == 0 or fill is None:
        return None
    margin = int(np.ceil(width_mm / min(pixel_spacing_mm))) + 1
    box = bounding_box(mask, margin=margin)
    if box is None:
        return None
    ring = np.zeros(hu.shape, dtype=bool)
    band_voxels = 0
    for z in range(box[0].start, box[0].stop):
        inside = mask[z, box[1], box[2]]
        if not inside.any():
            continue
        distance = ndimage.distance_transform_edt(~inside, sampling=pixel_spacing_mm)
        band = (distance > 0) & (distance <= width_mm)
        band_voxels += int(band.sum())
        ring[z, box[1], box[2]] = band & (hu[z, box[1], box[2]] == fill)
    # a stripped skull, or a brain-only export: the band outside the space is mostly the fill value;
    # where it is mostly something else (bone, scalp), the head is left as it is
    painted = int(ring.sum())
    return ring if painted and painted >= MIN_FILL_SHARE * band_voxels else None
