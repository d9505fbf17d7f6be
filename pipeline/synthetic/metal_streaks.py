"""Metal and its streaks, put into a CT slice: for measuring what metal does to a volume.

No CT with metal in the head is in ``../shared/data``, so the ``metal_artifact`` flag
(:mod:`ichpipe.pipeline.quality.metal`) was measured on real and phantom slices with metal added by
:func:`metal_streaks` (``bench/metal_streaks.py``). It follows the usual way of adding metal
artifacts to a clean image: the slice is projected (parallel beam, ``views`` angles over 180
degrees), the metal's own line integrals are added with a first-order beam hardening
(``p - hardening * p_metal^2``: a polychromatic beam hardens in metal, so the detector reads less
than the metal's attenuation), each ray gets the noise of its photon count (``photons`` before the
head; a ray through metal keeps few, and no fewer than one), and the difference between that and
the clean projection, reconstructed by filtered back projection with a Hann filter (a soft brain
kernel), is added to the slice. The metal itself is set to 3,071 HU, where a 12-bit reconstruction
saturates. The result has the dark bands between and beside metal and the bright streaks along the
rays through it that real clips and coils give; it is a model, not a scanner (no scatter, no
detector or bowtie, no reconstruction's own metal correction).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from skimage.transform import iradon, radon

__all__ = ["METAL_HU", "WATER_MU_PER_MM", "hu_change", "line_attenuation", "metal_streaks"]

#: The value metal is written at: the top of a 12-bit reconstruction's scale.
METAL_HU = 3071.0
#: Linear attenuation of water at about 70 keV (the mean energy of a 120 kVp beam), per mm.
WATER_MU_PER_MM = 0.0193


FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def line_attenuation(hu: FloatArray, pixel_mm: float) -> tuple[FloatArray, BoolArray]:
    """A square HU slice as attenuation per pixel (water's at 70 keV; air 0), and its reconstruction circle.

    What lies outside the circle inscribed in the slice is set to 0: it is not projected.
    """
    n = hu.shape[0]
    yy, xx = np.ogrid[:n, :n]
    circle = (yy - n / 2 + 0.5) ** 2 + (xx - n / 2 + 0.5) ** 2 <= (n / 2 - 1) ** 2
    return np.clip(WATER_MU_PER_MM * (1.0 + hu / 1000.0), 0.0, None) * pixel_mm * circle, circle


def hu_change(change: FloatArray, pixel_mm: float, circle: BoolArray) -> FloatArray:
    """A reconstructed change of attenuation per pixel (:func:`line_attenuation`'s unit) in HU, 0 outside ``circle``."""
    return change / pixel_mm / WATER_MU_PER_MM * 1000.0 * circle


def metal_streaks(
    plane: npt.ArrayLike,
    metal: npt.ArrayLike,
    *,
    pixel_mm: float,
    metal_mu_per_mm: float,
    views: int = 984,
    photons: float = 2e5,
    hardening: float = 0.25,
    seed: int = 0,
) -> npt.NDArray[np.float32]:
    """A square slice with metal where ``metal`` is True, and the metal's streaks.

    Parameters
    ----------
    plane:
        HU slice, square (rows = columns); what lies outside its inscribed circle is not projected.
    metal:
        bool, the slice's shape: where the metal is.
    pixel_mm:
        Pixel size (mm).
    metal_mu_per_mm:
        The metal's linear attenuation per mm (about 0.14 for titanium, 0.5 for a cobalt-chromium clip,
        1.5 and more for a platinum coil, at 70 keV).
    views:
        Projection angles over 180 degrees.
    photons:
        Photons per ray before the head.
    hardening:
        Beam-hardening coefficient of the metal's line integral (per unit squared).
    seed:
        Seed of the rays' noise.

    Returns
    -------
    numpy.ndarray
        float32 HU slice, clipped to -1024..3071.

    Examples
    --------
    >>> plane = np.zeros((64, 64), dtype=np.float32)
    >>> metal = np.zeros((64, 64), dtype=bool)
    >>> metal[30:34, 30:34] = True
    >>> out = metal_streaks(plane, metal, pixel_mm=1.0, metal_mu_per_mm=1.5, views=90)
    >>> float(out[31, 31]), bool(np.abs(out[10:20, 30:34]).max() > 20)
    (3071.0, True)
    """
    hu = np.asarray(plane, dtype=np.float64)
    where = np.asarray(metal, dtype=bool)
    if hu.ndim != 2 or hu.shape[0] != hu.shape[1]:
        raise ValueError(f"Argument 'plane' must be a square 2D slice; got shape {hu.shape}.")
    if where.shape != hu.shape:
        raise ValueError(f"Argument 'metal' must have the shape of 'plane' {hu.shape}; got {where.shape}.")
    for name, value in (("pixel_mm", pixel_mm), ("metal_mu_per_mm", metal_mu_per_mm), ("photons", photons)):
        if not value > 0:
            raise ValueError(f"Argument '{name}' must be a number > 0; got {value}.")
    if views < 2 or hardening < 0:
        raise ValueError(f"Arguments 'views' (>= 2) and 'hardening' (>= 0) are out of range: {views}, {hardening}.")
    tissue, circle = line_attenuation(hu, pixel_mm)
    theta = np.linspace(0.0, 180.0, views, endpoint=False)
    clean = radon(tissue, theta=theta)
    through_metal = radon(np.where(where & circle, metal_mu_per_mm * pixel_mm, 0.0), theta=theta)
    noise = np.random.default_rng(seed).standard_normal(clean.shape)
    measured = clean + through_metal - hardening * through_metal**2
    measured = measured + noise / np.sqrt(np.maximum(photons * np.exp(-measured), 1.0))
    measured = np.minimum(measured, np.log(photons))  # a ray keeps at least one photon
    reference = clean + noise / np.sqrt(photons * np.exp(-clean))  # the same noise: only the metal's part differs
    change = iradon(measured, theta=theta, filter_name="hann") - iradon(reference, theta=theta, filter_name="hann")
    out = hu + hu_change(change, pixel_mm, circle)
    out[where] = METAL_HU
    return np.clip(out, -1024.0, METAL_HU).astype(np.float32)
