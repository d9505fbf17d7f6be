"""Crossing the slices where the intracranial finder failed (the skull base): what joins and what does not."""

from __future__ import annotations

import numpy as np
import pytest

from ichpipe.pipeline.segment.intracranial_gaps import bridge_failed_slices

_BRAIN = (-15.0, 120.0)


def _stack(n: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """A column of 12 x 12 squares on n slices of 32 x 32, brain HU everywhere."""
    candidates = np.zeros((n, 32, 32), dtype=bool)
    candidates[:, 10:22, 10:22] = True
    return candidates, np.full(candidates.shape, 30.0, dtype=np.float32)


def _bridge(candidates: np.ndarray, main: np.ndarray, hu: np.ndarray, **kwargs):
    options = {"brain_hu": _BRAIN, "max_run_mm": 10.0} | kwargs
    return bridge_failed_slices(candidates, main, hu, (1.0, 1.0), 5.0, **options)


def test_one_failed_slice_is_crossed_and_the_slices_beyond_join() -> None:
    candidates, hu = _stack()
    candidates[2] = False  # the finder failed here
    main = candidates.copy()
    main[:2] = False  # the 3D step kept slices 3-6 only
    out = _bridge(candidates, main, hu)
    assert out.crossed == (2,)
    assert out.joined == (0, 1)
    # the crossed slice takes the overlap of its neighbours (the same square here, 3 mm of slack round it)
    assert out.mask[2, 10:22, 10:22].all()
    assert out.mask[[0, 1, 3, 4, 5, 6]].sum() == 6 * 144
    assert not out.mask[2, :6].any()


def test_without_a_failed_slice_nothing_changes() -> None:
    """A piece next to the main one with no failed slice between is the 3D step's choice: left alone."""
    candidates, hu = _stack()
    main = candidates.copy()
    main[:3] = False
    candidates[2] = False
    candidates[2, 10:22, 26:30] = True  # beside the square, not touching it
    out = _bridge(candidates, main, hu, max_run_mm=0.0)
    assert out.crossed == () and out.joined == ()
    np.testing.assert_array_equal(out.mask, main)


def test_a_run_longer_than_max_run_mm_is_not_crossed() -> None:
    candidates, hu = _stack()
    candidates[1:4] = False  # 15 mm failed
    main = candidates.copy()
    main[:1] = False
    out = _bridge(candidates, main, hu, max_run_mm=10.0)
    assert out.crossed == () and out.joined == ()
    np.testing.assert_array_equal(out.mask, main)
    assert _bridge(candidates, main, hu, max_run_mm=15.0).crossed == (1, 2, 3)


def test_a_piece_mostly_beside_the_brain_above_does_not_join() -> None:
    """The face's enclosed tissue beside the brain, not under it, stays out (min_share)."""
    candidates, hu = _stack()
    candidates[2] = False
    candidates[1, 10:22, 19:30] = True  # slice 1: the square plus a piece sticking out to the side
    candidates[1, 10:22, 22] = False    # ... as its own piece, 7 of its 8 columns beyond the reach
    main = candidates.copy()
    main[:2] = False
    out = _bridge(candidates, main, hu)
    assert out.joined == (0, 1)
    assert not out.mask[1, 10:22, 23:30].any()
    assert out.mask[1, 10:22, 10:22].all()


def test_a_crossed_slice_keeps_to_brain_hu_and_never_takes_the_fill_value() -> None:
    candidates, hu = _stack()
    candidates[2] = False
    hu[2, 10:22, 10:13] = 400.0   # bone
    hu[2, 10:22, 19:22] = 0.0     # a stripped skull's fill value
    main = candidates.copy()
    main[:2] = False
    out = _bridge(candidates, main, hu, fill_value=0.0)
    assert out.crossed == (2,)
    assert not out.mask[2, 10:22, 10:13].any()
    assert not out.mask[2, 10:22, 19:22].any()
    assert out.mask[2, 10:22, 13:19].all()


def test_both_ends_are_walked() -> None:
    candidates, hu = _stack(9)
    candidates[[2, 6]] = False
    main = candidates.copy()
    main[:2] = False
    main[7:] = False
    out = _bridge(candidates, main, hu)
    assert out.crossed == (2, 6)
    assert out.joined == (0, 1, 7, 8)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_run_mm": -1.0}, "Argument 'max_run_mm' must not be negative"),
    ({"min_share": 0.0}, r"Argument 'min_share' must lie in \(0, 1\]"),
])
def test_bad_arguments(kwargs: dict, message: str) -> None:
    candidates, hu = _stack()
    with pytest.raises(ValueError, match=message):
        _bridge(candidates, candidates, hu, **kwargs)
    with pytest.raises(ValueError, match="Arguments 'candidates' and 'main' must be 3D arrays of one shape"):
        _bridge(candidates, candidates[:3], hu)
