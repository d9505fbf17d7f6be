"""The slice-by-slice 3D components against scipy's 3D labelling (26-connected)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ichpipe.pipeline.segment import components
from ichpipe.pipeline.segment.components import components_at_least_3d, largest_component_3d

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
    return out


def _reference_sizes(mask: np.ndarray) -> tuple[np.ndarray, int]:
    labels, n = ndimage.label(mask, structure=_CUBE)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    return labels, n


@pytest.mark.parametrize("table_limit", [1 << 22, 0], ids=["pair-table", "sorted-codes"])
def test_largest_component_3d_equals_scipy(monkeypatch: pytest.MonkeyPatch, table_limit: int) -> None:
    monkeypatch.setattr(components, "_TABLE_LIMIT", table_limit)
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


@pytest.mark.parametrize("table_limit", [1 << 22, 0], ids=["pair-table", "sorted-codes"])
def test_components_at_least_3d_equals_scipy(monkeypatch: pytest.MonkeyPatch, table_limit: int) -> None:
    monkeypatch.setattr(components, "_TABLE_LIMIT", table_limit)
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
