"""Intensity windowing: Hounsfield units to 8-bit grey levels.

The seed network was trained on PNG slices in the brain window (W80/L40)
mapped linearly to 0-255; :func:`apply_window` reproduces that mapping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["WindowPreset", "apply_window"]


@dataclass(frozen=True)
class WindowPreset:
    """A display window in Hounsfield units.

    Parameters
    ----------
    width:
        Window width in HU (> 0).
    level:
        Window centre (level) in HU.
    """

    width: float
    level: float

    def __post_init__(self) -> None:
        if not self.width > 0:
            raise ValueError(f"Argument 'width' must be positive; got {self.width}.")

    @property
    def low(self) -> float:
        """Lowest HU shown (maps to 0)."""
        return self.level - self.width / 2.0

    @property
    def high(self) -> float:
        """Highest HU shown (maps to 255)."""
        return self.level + self.width / 2.0


def apply_window(
    hu: npt.ArrayLike, window: WindowPreset, *, out: npt.NDArray[np.uint8] | None = None
) -> npt.NDArray[np.uint8]:
    """Map HU values linearly to 0-255 inside ``window`` and clip outside it.

    ``low`` maps to 0 and ``high`` to 255, rounding to the nearest integer, as
    the seed's PNG export does. Works on any shape, vectorised.

    Parameters
    ----------
    hu:
        Array of Hounsfield units (any shape, any real dtype).
    window:
        The window to apply.
    out:
        Optional uint8 array of the same shape to write into.

    Returns
    -------
    numpy.ndarray
        uint8 array of the same shape as ``hu``.

    Examples
    --------
    >>> apply_window([-100.0, 40.0, 200.0], WindowPreset(width=80, level=40)).tolist()
    [0, 128, 255]
    """
    arr = np.asarray(hu, dtype=np.float32)
    scale = np.float32(255.0 / window.width)
    scaled = (arr - np.float32(window.low)) * scale
    np.clip(scaled, 0.0, 255.0, out=scaled)
    np.rint(scaled, out=scaled)
    if out is None:
        return scaled.astype(np.uint8)
    if out.shape != arr.shape or out.dtype != np.uint8:
        raise ValueError("Argument 'out' must be a uint8 array of the same shape as 'hu'.")
    out[...] = scaled
    return out
