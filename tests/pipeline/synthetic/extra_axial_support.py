"""A small synthetic head volume for the extra-axial painters (no shared data needed)."""

from __future__ import annotations

import numpy as np

SPACING = (5.0, 1.5, 1.5)


def make_head(seed: int = 0, noise: float = 4.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hu, intracranial, ventricles): 20 x 128 x 128 at 5 x 1.5 x 1.5 mm; rows run anterior -> posterior."""
    shape = (20, 128, 128)
    z, y, x = np.indices(shape, dtype=np.float64)
    zc, yc, xc = 9.5, 63.5, 63.5
    dz, dy, dx = (z - zc) * SPACING[0], (y - yc) * SPACING[1], (x - xc) * SPACING[2]
    rho = np.sqrt((dx / 62.0) ** 2 + (dy / 78.0) ** 2 + (dz / 58.0) ** 2)
    outer = np.sqrt((dx / 69.0) ** 2 + (dy / 85.0) ** 2 + (dz / 65.0) ** 2)
    intracranial = rho < 1.0
    hu = np.full(shape, -1000.0)
    hu[(outer < 1.0) & ~intracranial] = 1200.0
    hu[intracranial] = 30.0
    ventricles = np.zeros(shape, dtype=bool)
    for side in (-1.0, 1.0):
        v = ((dx - side * 11.0) / 6.0) ** 2 + ((dy - 5.0) / 28.0) ** 2 + (dz / 14.0) ** 2 < 1.0
        ventricles |= v
    hu[ventricles] = 6.0
    rng = np.random.default_rng(seed)
    hu = hu + rng.normal(0.0, noise, size=shape) * (hu > -500)
    return hu.astype(np.float32), intracranial, ventricles & intracranial
