"""A head that moves while a slice is acquired (for measuring what motion does to a volume)."""

from __future__ import annotations

import numpy as np
import pytest

from ichpipe.pipeline.synthetic.head_motion import head_motion


def _head(n: int = 96) -> np.ndarray:
    """An oval head: 6 mm of 1,000 HU bone round 35 HU brain, air outside (1 mm pixels)."""
    yy, xx = np.mgrid[:n, :n]
    r = np.hypot((yy - n / 2 + 0.5) / 1.0, (xx - n / 2 + 0.5) / 0.8)
    plane = np.full((n, n), -1000.0, dtype=np.float32)
    plane[r < 44] = 1000.0
    plane[r < 38] = 35.0
    return plane


def test_a_still_head_is_unchanged() -> None:
    plane = _head()
    np.testing.assert_array_equal(head_motion(plane, pixel_mm=1.0, rotation_deg=0.0), plane)


def test_a_head_moved_for_the_whole_rotation_is_seen_where_it_went() -> None:
    plane = _head()
    out = head_motion(plane, pixel_mm=2.0, rotation_deg=0.0, shift_mm=(0.0, 8.0), start=0.0, ramp=1e-6, views=180)
    columns = np.arange(plane.shape[1])
    # the centre of the attenuation (mass): the soft reconstruction of the change moves all of it
    before = float((plane + 1000.0).sum(axis=0) @ columns / (plane + 1000.0).sum())
    after = float((out + 1000.0).sum(axis=0) @ columns / (out + 1000.0).sum())
    assert after - before == pytest.approx(4.0, abs=0.5)  # 8 mm at 2 mm a pixel, to the right (columns)


def test_motion_streaks_the_brain_and_more_motion_streaks_more() -> None:
    plane = _head()
    brain = plane == 35.0
    spread = [float(np.std(head_motion(plane, pixel_mm=1.0, rotation_deg=turn, shift_mm=(turn, 0.0),
                                       views=180)[brain])) for turn in (0.0, 1.0, 4.0)]
    assert spread[0] == 0.0
    assert spread[1] > 5.0  # HU: streaks of blood's order of contrast from a 1 degree, 1 mm jerk
    assert spread[2] > 2 * spread[1]


def test_argument_checks() -> None:
    plane = _head()
    with pytest.raises(ValueError, match="'plane'"):
        head_motion(plane[:, :90], pixel_mm=1.0, rotation_deg=1.0)
    with pytest.raises(ValueError, match="'pixel_mm'"):
        head_motion(plane, pixel_mm=0.0, rotation_deg=1.0)
    with pytest.raises(ValueError, match="'start'"):
        head_motion(plane, pixel_mm=1.0, rotation_deg=1.0, start=1.5)
    with pytest.raises(ValueError, match="'steps'"):
        head_motion(plane, pixel_mm=1.0, rotation_deg=1.0, steps=0)
