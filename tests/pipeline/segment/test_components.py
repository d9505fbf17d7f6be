"""The mask helpers against scipy: 3D labelling (26-connected), dilation, erosion, closing, hole filling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ichpipe import errors as ichpipe_errors
from ichpipe.pipeline.segment import components
from ichpipe.pipeline.segment.components import (
    bounding_box,
    closing_2d,
    components_at_least_3d,
    dilate_3x3,
    dilate_rect,
    erode_3x3,
    fill_holes_2d,
    fill_small_holes_2d,
    largest_component_3d,
)

_CUBE = np.ones((3, 3, 3), dtype=bool)


def _masks() -> list[np.ndarray]:
    rng = np.random.default_rng(17)
    out = [ndimage.binary_opening(rng.random((7, 48, 40)) > 0.55),  # blobs
           rng.random((5, 64, 64)) > 0.8,  # noise: hundreds of components per slice, corner contacts
           np.zeros((3, 16, 16), dtype=bool)]
    diagonal = np.zeros((4, 12, 12), dtype=bool)
    for z in range(4):
        diagonal[z, z + 2, z + 3] = True  # touching only at corners across slices: one component
    out.append(diagonal)
    gap = np.zeros((5, 10, 10), dtype=bool)
    gap[0:2, 2:5, 2:5] = True
    gap[3:5, 2:5, 2:5] = True  # an empty slice between: two components
    out.append(gap)
    # blobs that wander across the plane, so each slice's bounding box differs, touching at box corners
    drift = np.zeros((6, 40, 40), dtype=bool)
    for z in range(6):
        drift[z, 3 * z : 3 * z + 3, 30 - 5 * z : 33 - 5 * z] = True
        drift[z, 35, (7 * z) % 40] = True
    out.append(drift)
    edges = rng.random((6, 20, 30)) > 0.6  # components on every border of the plane
    edges[2] = False
    out.append(edges)
    return out


def _reference_sizes(mask: np.ndarray) -> tuple[np.ndarray, int]:
    labels, n = ndimage.label(mask, structure=_CUBE)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    return labels, n


@pytest.mark.parametrize("cache_bytes", [64 << 20, 2000], ids=["labels-kept", "labelled-again"])
@pytest.mark.parametrize("table_limit", [1 << 22, 0], ids=["pair-table", "sorted-codes"])
def test_largest_component_3d_equals_scipy(monkeypatch: pytest.MonkeyPatch, table_limit: int,
                                           cache_bytes: int) -> None:
    monkeypatch.setattr(components, "_TABLE_LIMIT", table_limit)
    monkeypatch.setattr(components, "_LABEL_CACHE_BYTES", cache_bytes)
    for mask in _masks():
        labels, n = _reference_sizes(mask)
        if n == 0:
            assert not largest_component_3d(mask).any()
            continue
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        expected = labels == int(np.argmax(sizes))
        if np.sort(sizes)[-2:].tolist().count(sizes.max()) > 1:
            continue  # a tie: either largest is right
        np.testing.assert_array_equal(largest_component_3d(mask), expected)


@pytest.mark.parametrize("cache_bytes", [64 << 20, 2000], ids=["labels-kept", "labelled-again"])
@pytest.mark.parametrize("table_limit", [1 << 22, 0], ids=["pair-table", "sorted-codes"])
def test_components_at_least_3d_equals_scipy(monkeypatch: pytest.MonkeyPatch, table_limit: int,
                                            cache_bytes: int) -> None:
    monkeypatch.setattr(components, "_TABLE_LIMIT", table_limit)
    monkeypatch.setattr(components, "_LABEL_CACHE_BYTES", cache_bytes)
    voxel_ml = 0.01
    for mask in _masks():
        labels, n = _reference_sizes(mask)
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        for min_voxels in (2, 5, 40):
            keep = sizes >= min_voxels
            keep[0] = False
            got = components_at_least_3d(mask, voxel_ml, min_voxels * voxel_ml - 1e-9)
            np.testing.assert_array_equal(got, keep[labels])


def test_noise_mask_has_many_components_per_slice() -> None:
    """The noise case really exercises many labels per slice (and so the pair de-duplication)."""
    noise = _masks()[1]
    assert min(ndimage.label(s, structure=np.ones((3, 3), dtype=bool))[1] for s in noise) > 100


_SQUARE = np.ones((3, 3), dtype=bool)
_CROSS = ndimage.generate_binary_structure(2, 1)


def _planes() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:60, :50]
    outer = (yy - 30) ** 2 / 27**2 + (xx - 25) ** 2 / 22**2 < 1
    ring = outer & ((yy - 30) ** 2 / 23**2 + (xx - 25) ** 2 / 18**2 >= 1)
    broken = ring.copy()
    broken[25:35, :10] = False  # an open ring: its inside is not a hole
    return [rng.random((40, 37)) > p for p in (0.3, 0.5, 0.8)] + [
        ring, broken, ring | (rng.random(ring.shape) > 0.97), np.ones((9, 7), dtype=bool),
        np.zeros((9, 7), dtype=bool), rng.random((1, 13)) > 0.5, rng.random((13, 1)) > 0.5]


@pytest.mark.parametrize("square", [True, False], ids=["square", "cross"])
def test_dilate_and_erode_3x3_equal_scipy(square: bool) -> None:
    structure = _SQUARE if square else _CROSS
    for plane in _planes():
        np.testing.assert_array_equal(dilate_3x3(plane, square=square),
                                      ndimage.binary_dilation(plane, structure=structure))
        np.testing.assert_array_equal(erode_3x3(plane, square=square),
                                      ndimage.binary_erosion(plane, structure=structure, border_value=1))


def test_dilate_rect_equals_scipy() -> None:
    for plane in _planes():
        for hh, hw in ((0, 0), (1, 1), (0, 3), (4, 2), (7, 7), (30, 1)):
            expected = ndimage.binary_dilation(plane, structure=np.ones((2 * hh + 1, 2 * hw + 1), dtype=bool))
            np.testing.assert_array_equal(dilate_rect(plane, hh, hw), expected)
    with pytest.raises(ValueError, match="Arguments 'half_height' and 'half_width'"):
        dilate_rect(np.zeros((3, 3), dtype=bool), -1, 1)


def test_closing_2d_equals_alternating_scipy_steps() -> None:
    for plane in _planes():
        for radius_mm, spacing in ((0.0, (1.0, 1.0)), (1.0, (0.5, 0.6)), (3.0, (0.45, 0.45)), (2.0, (1.0, 0.8))):
            steps = round(radius_mm / min(spacing))
            expected = np.pad(plane, steps + 1)
            for i in range(steps):
                expected = ndimage.binary_dilation(expected, structure=_SQUARE if i % 2 == 0 else _CROSS)
            for i in range(steps):
                expected = ndimage.binary_erosion(expected, structure=_SQUARE if i % 2 == 0 else _CROSS,
                                                  border_value=1)
            expected = expected[steps + 1 : -(steps + 1), steps + 1 : -(steps + 1)]
            np.testing.assert_array_equal(closing_2d(plane, radius_mm, spacing), expected)


def test_fill_holes_2d_equals_scipy() -> None:
    for plane in _planes():
        np.testing.assert_array_equal(fill_holes_2d(plane), ndimage.binary_fill_holes(plane))
    assert fill_holes_2d(np.zeros((0, 4), dtype=bool)).shape == (0, 4)


def test_fill_small_holes_2d_equals_scipy_holes_by_size() -> None:
    for plane in _planes():
        holes = ndimage.binary_fill_holes(plane) & ~plane
        labels, n = ndimage.label(holes)
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        for max_pixels in (0, 1, 3, 50, 10_000):
            small = sizes <= max_pixels
            small[0] = False
            expected = plane | small[labels] if max_pixels > 0 else plane
            np.testing.assert_array_equal(fill_small_holes_2d(plane, max_pixels), expected)


def test_plane_helpers_refuse_a_volume() -> None:
    for helper in (lambda v: dilate_3x3(v, square=True), lambda v: erode_3x3(v, square=False), fill_holes_2d):
        with pytest.raises(ichpipe_errors.UsageError, match="Argument 'plane'"):
            helper(np.zeros((2, 3, 3), dtype=bool))


def test_bounding_box_widens_in_plane_only_and_clips() -> None:
    mask = np.zeros((5, 10, 12), dtype=bool)
    mask[2, 1, 3] = mask[3, 6, 10] = True
    assert bounding_box(mask, margin=2) == (slice(2, 4), slice(0, 9), slice(1, 12))
    assert bounding_box(mask[2]) == (slice(1, 2), slice(3, 4))
    assert bounding_box(np.zeros((3, 4), dtype=bool), margin=1) is None


def test_bone_edge_pieces_are_small_single_slice_and_against_bone() -> None:
    hu = np.full((4, 40, 40), 40.0)
    hu[:, :, :3] = 1000.0  # bone along one side
    mask = np.zeros(hu.shape, dtype=bool)
    mask[1, 5:9, 3:7] = True  # a piece on one slice against the bone: goes
    mask[1:3, 20:24, 3:7] = True  # two slices against the bone: a bleed's edge, stays
    mask[2, 30:34, 20:24] = True  # one slice, away from bone: stays
    mask[3, 10:40, 3:40] = True  # one slice against the bone but large: stays
    options = {"pixel_spacing_mm": (0.5, 0.5), "voxel_volumes_ml": np.full(4, 0.00125), "bone_hu": 300.0}
    pieces, n = components.bone_edge_pieces_3d(mask, hu, max_ml=1.0, min_share=0.2, **options)
    assert n == 1 and pieces[1, 5:9, 3:7].all() and pieces.sum() == 16
    # the share: 3 of the piece's 4 columns lie within 1.5 mm of the bone (0.75); a stricter share keeps it
    assert components.bone_edge_pieces_3d(mask, hu, max_ml=1.0, min_share=0.9, **options)[1] == 0
    with pytest.raises(ValueError, match="'min_share'"):
        components.bone_edge_pieces_3d(mask, hu, max_ml=1.0, min_share=1.5, **options)
    with pytest.raises(ValueError, match="3D of one shape"):
        components.bone_edge_pieces_3d(mask[0], hu[0], max_ml=1.0, min_share=0.2, **options)
