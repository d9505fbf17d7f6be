"""The noise of the image the networks read: pixel-to-pixel noise of brain-density pixels, in HU.

The networks learnt phantom images whose noise, measured this way, reaches 4.8 HU (5.4 with
extra-axial blood painted in); the real 4-5 mm scans here measure 2.4-3.3 HU. A noisier
image (a low-dose scan, or thin slices the slabs do not quiet enough) is read low by the networks on
phantoms; :func:`~ichpipe.pipeline.quality.checks.check_image_noise` flags it (``MODEL_CARD.md``, "A
flag for a noisy image").

The estimate: on up to 12 slices spread over the middle 30-70 % of the head's slices, the differences
between horizontally adjacent pixels that both lie in 0-80 HU (brain, blood, CSF; not bone or air);
their root mean square up to the 90th percentile of their magnitude, divided by the share of a
normal distribution's RMS that keeps (0.7894), and by sqrt(2) (a difference holds two pixels' noise).
Edges between tissues are the largest differences, so the trimming keeps them out. Correlated noise
(the reconstruction kernel) reads lower than its per-pixel standard deviation: the measure compares
images with images, not with a scanner's quoted noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ichpipe.pipeline.segment.slice_context import ThinSlabs, slab_means

__all__ = ["network_image_noise", "noise_sample_slices", "pixel_noise_hu"]

_KEPT_RMS = 0.7894  # RMS of a unit normal within its central 90 %, i.e. |z| <= 1.645
_MIN_PAIRS = 1000


def noise_sample_slices(with_head: npt.ArrayLike, *, n: int = 12) -> list[int]:
    """Up to ``n`` slice indices spread over the middle 30-70 % of the slices that hold head.

    >>> noise_sample_slices([False] * 10 + [True] * 20, n=3)
    [16, 20, 23]
    >>> noise_sample_slices([False, False])
    []
    """
    head = np.flatnonzero(np.asarray(with_head, dtype=bool))
    if head.size == 0:
        return []
    lo, hi = int(head.size * 0.3), max(int(head.size * 0.3) + 1, int(np.ceil(head.size * 0.7)))
    middle = head[lo:hi]
    picks = np.linspace(0, middle.size - 1, min(n, middle.size)).round().astype(int)
    return sorted({int(middle[i]) for i in picks})


def pixel_noise_hu(planes: npt.ArrayLike, *, band_hu: tuple[float, float] = (0.0, 80.0)) -> float | None:
    """Noise of ``planes`` (slices, rows, columns) in HU, or ``None`` with under 1,000 pixel pairs in ``band_hu``.

    >>> rng = np.random.default_rng(0)
    >>> round(pixel_noise_hu(rng.normal(40.0, 5.0, (4, 64, 64))), 1)
    5.0
    >>> pixel_noise_hu(np.full((1, 8, 8), -1000.0)) is None
    True
    """
    images = np.asarray(planes, dtype=np.float32)
    if images.ndim != 3:
        raise ValueError(f"Argument 'planes' must be 3-D (slices, rows, columns); got shape {images.shape}.")
    left, right = images[:, :, :-1], images[:, :, 1:]
    low, high = band_hu
    both = (left > low) & (left < high) & (right > low) & (right < high)
    if int(both.sum()) < _MIN_PAIRS:
        return None
    diff = np.abs(left[both] - right[both])
    kept = diff[diff <= np.percentile(diff, 90)]
    return float(np.sqrt(np.mean(kept.astype(np.float64) ** 2)) / _KEPT_RMS / np.sqrt(2.0))


def network_image_noise(hu: npt.NDArray[np.floating], with_head: npt.ArrayLike,
                        slabs: ThinSlabs | None = None) -> dict[str, Any]:
    """The noise of what the networks read: ``hu`` sampled on :func:`noise_sample_slices`, as slabs when given.

    Returns ``{"noise_hu": value or None, "slices_sampled": n}`` (``details["image_noise"]``).
    """
    picked = noise_sample_slices(with_head)
    if not picked:
        return {"noise_hu": None, "slices_sampled": 0}
    planes = np.asarray(hu[picked], dtype=np.float32) if slabs is None else slab_means(hu, slabs, picked)
    value = pixel_noise_hu(planes)
    return {"noise_hu": None if value is None else round(value, 2), "slices_sampled": len(picked)}
