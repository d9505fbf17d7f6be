"""Metal and its streaks put into a slice (for measuring the ``metal_artifact`` flag)."""

from __future__ import annotations

import numpy as np
import pytest

from ichpipe.pipeline.synthetic.metal_streaks import METAL_HU, metal_streaks


def _head(n: int = 96) -> np.ndarray:
    """A water-and-bone disc: 8 mm of 1,000 HU bone around 35 HU brain, air outside (1 mm pixels)."""
    yy, xx = np.mgrid[:n, :n]
    r = np.hypot(yy - n / 2 + 0.5, xx - n / 2 + 0.5)
    plane = np.full((n, n), -1000.0, dtype=np.float32)
    plane[r < 44] = 1000.0
    plane[r < 36] = 35.0
    return plane


def _pieces(n: int = 96) -> np.ndarray:
    metal = np.zeros((n, n), dtype=bool)
    metal[46:50, 30:34] = True
    metal[46:50, 62:66] = True
    return metal


def test_without_metal_the_slice_is_unchanged() -> None:
    plane = _head()
    out = metal_streaks(plane, np.zeros(plane.shape, dtype=bool), pixel_mm=1.0, metal_mu_per_mm=1.5, views=120)
    np.testing.assert_allclose(out, plane, atol=1e-3)


def test_metal_saturates_and_darkens_the_band_between_two_pieces() -> None:
    plane, metal = _head(), _pieces()
    out = metal_streaks(plane, metal, pixel_mm=1.0, metal_mu_per_mm=1.5, views=180)
    assert np.all(out[metal] == METAL_HU)
    between = out[46:50, 38:58]  # brain on the line joining the pieces: the classic dark band
    assert float(between.mean()) < 35.0 - 50.0
    brain = (plane == 35.0) & ~metal
    brain[40:56] = False  # away from the band: some rays brighter (streaks), blood-like
    assert float(np.percentile(out[brain], 99)) > 35.0 + 30.0


def test_more_attenuating_metal_streaks_more() -> None:
    plane, metal = _head(), _pieces()
    brain = (plane == 35.0) & ~metal
    spread = [float(np.std(metal_streaks(plane, metal, pixel_mm=1.0, metal_mu_per_mm=mu, views=120)[brain]))
              for mu in (0.15, 1.5)]
    assert spread[1] > 2 * spread[0]


def test_argument_checks() -> None:
    plane, metal = _head(), _pieces()
    with pytest.raises(ValueError, match="'plane'"):
        metal_streaks(plane[:, :90], metal[:, :90], pixel_mm=1.0, metal_mu_per_mm=1.0)
    with pytest.raises(ValueError, match="'metal'"):
        metal_streaks(plane, metal[:90, :90], pixel_mm=1.0, metal_mu_per_mm=1.0)
    with pytest.raises(ValueError, match="'pixel_mm'"):
        metal_streaks(plane, metal, pixel_mm=0.0, metal_mu_per_mm=1.0)
    with pytest.raises(ValueError, match="'views'"):
        metal_streaks(plane, metal, pixel_mm=1.0, metal_mu_per_mm=1.0, views=1)
