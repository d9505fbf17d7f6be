"""Box hit rate and false-positive slice rate (real slices with boxes instead of masks)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from ichpipe.pipeline.evaluation.detection import (
    DetectionCount,
    box_hit,
    box_hit_rate,
    false_positive_slice_rate,
    largest_component_px,
    negative_slice_indices,
)


@dataclass(frozen=True)
class _Box:
    x0: int
    y0: int
    x1: int
    y1: int


def _blob(shape: tuple[int, int], rows: slice, cols: slice) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[rows, cols] = True
    return m


def test_a_box_is_hit_from_twenty_pixels_inside_it() -> None:
    box = (10, 20, 19, 29)  # x0, y0, x1, y1, inclusive: 10 x 10 pixels
    inside_19 = _blob((64, 64), slice(20, 21), slice(10, 20)) | _blob((64, 64), slice(21, 22), slice(10, 19))
    assert int(inside_19.sum()) == 19 and not box_hit(inside_19, box)
    inside_20 = _blob((64, 64), slice(20, 22), slice(10, 20))
    assert box_hit(inside_20, box) and box_hit(inside_20, _Box(*box))
    # pixels just outside the inclusive edge do not count; the edge itself does
    outside = _blob((64, 64), slice(30, 40), slice(10, 20)) | _blob((64, 64), slice(20, 30), slice(20, 30))
    assert not box_hit(outside, box)
    edge = _blob((64, 64), slice(29, 30), slice(0, 64)) | _blob((64, 64), slice(20, 30), slice(19, 20))
    assert int(edge[20:30, 10:20].sum()) == 19 and not box_hit(edge, box)
    assert box_hit(edge, box, min_pixels=19)
    # a box running off the image is clipped, not wrapped around
    corner = _blob((64, 64), slice(0, 5), slice(0, 5))
    assert box_hit(corner, (-10, -10, 4, 4)) and not box_hit(corner, (-10, -10, -1, -1), min_pixels=1)


def test_box_hit_rate_pools_boxes_over_slices() -> None:
    hit = _blob((32, 32), slice(0, 10), slice(0, 10))
    empty = np.zeros((32, 32), dtype=bool)
    result = box_hit_rate([hit, empty, hit], [[(0, 0, 9, 9), (20, 20, 30, 30)], [(0, 0, 9, 9)], []])
    assert result == DetectionCount(1, 3) and result.rate == pytest.approx(1 / 3)
    assert math.isnan(box_hit_rate([empty], [[]]).rate)
    assert (DetectionCount(1, 2) + DetectionCount(2, 3)) == DetectionCount(3, 5)
    with pytest.raises(ValueError, match="one entry per slice"):
        box_hit_rate([hit], [])
    with pytest.raises(ValueError, match="'box'"):
        box_hit_rate([hit], [[(5, 5, 1, 1)]])
    with pytest.raises(ValueError, match="'mask'"):
        box_hit(hit.astype(np.uint8), (0, 0, 1, 1))
    with pytest.raises(ValueError, match="events"):
        DetectionCount(3, 2)


def test_components_are_eight_connected() -> None:
    diagonal = np.eye(10, dtype=bool)
    assert largest_component_px(diagonal) == 10  # 4-connectivity would give 1
    two = _blob((20, 20), slice(0, 3), slice(0, 3)) | _blob((20, 20), slice(10, 15), slice(10, 15))
    assert largest_component_px(two) == 25 and largest_component_px(np.zeros((4, 4), dtype=bool)) == 0


def test_negative_slices_keep_their_distance_from_every_box() -> None:
    assert negative_slice_indices(12, [3, 9], min_distance=3) == [0, 6]
    assert negative_slice_indices(12, [3, 9], min_distance=3, exclude=[0]) == [6]
    assert negative_slice_indices(5, []) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="'boxed'"):
        negative_slice_indices(5, [5])
    with pytest.raises(ValueError, match="'min_distance'"):
        negative_slice_indices(5, [1], min_distance=0)


def test_false_positive_slices_need_a_component_of_fifty_pixels() -> None:
    shape = (64, 64)
    big = _blob(shape, slice(0, 5), slice(0, 10))  # 50 px
    small = _blob(shape, slice(0, 7), slice(0, 7))  # 49 px
    scattered = np.zeros(shape, dtype=bool)
    scattered[::4, ::4] = True  # 256 px, none connected
    empty = np.zeros(shape, dtype=bool)
    masks = [big, small, scattered, empty, empty, big, empty, empty, big]
    # boxed slice 5: slices 3-7 are too close; negatives are 0, 1, 2 and 8
    result = false_positive_slice_rate(masks, [5])
    assert result == DetectionCount(2, 4)
    assert false_positive_slice_rate(masks, [5], min_component_px=49) == DetectionCount(3, 4)
    assert false_positive_slice_rate(masks, [5], exclude=[0]) == DetectionCount(1, 3)
    assert false_positive_slice_rate(masks, [5], min_distance=4) == DetectionCount(1, 2)  # slices 0 and 1
    with pytest.raises(ValueError, match="'min_component_px'"):
        false_positive_slice_rate(masks, [5], min_component_px=0)
