"""Shape features on digital shapes with known analytic values (ichpipe.pipeline.measure.features.shape).

Analytic references for an ellipsoid with semi-axes a >= b >= c:
volume 4/3 pi a b c; surface area by Knud Thomsen's formula (p = 1.6075,
error < 1.1 %); sphericity (36 pi V^2)^(1/3) / A; maximum 3D diameter 2a;
pyradiomics' axis lengths 4 sqrt(variance) = 4 a / sqrt(5) (variance of a
solid ellipsoid along a semi-axis a is a^2 / 5).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ichpipe.pipeline.measure.features.grid import Grid, mask_indices
from ichpipe.pipeline.measure.features.shape import SHAPE_FEATURES, _diameter, _pairwise_max, shape_features

P = "original_shape_"


def thomsen_area(a: float, b: float, c: float, p: float = 1.6075) -> float:
    return 4 * math.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)


def analytic(a: float, b: float, c: float) -> dict[str, float]:
    a, b, c = sorted((a, b, c), reverse=True)
    volume = 4 / 3 * math.pi * a * b * c
    area = thomsen_area(a, b, c)
    return {
        "MeshVolume": volume,
        "VoxelVolume": volume,
        "SurfaceArea": area,
        "Sphericity": (36 * math.pi * volume**2) ** (1 / 3) / area,
        "Maximum3DDiameter": 2 * a,
        "MajorAxisLength": 4 * a / math.sqrt(5),
        "MinorAxisLength": 4 * b / math.sqrt(5),
        "LeastAxisLength": 4 * c / math.sqrt(5),
        "Elongation": b / a,
        "Flatness": c / a,
    }


def ellipsoid_on(grid: Grid, shape: tuple[int, int, int], semi: tuple[float, float, float],
                 centre: np.ndarray, rotation: np.ndarray | None = None) -> np.ndarray:
    """Membership of every voxel centre of ``grid`` in the ellipsoid (axes = rotation's columns)."""
    k, r, c = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    pts = grid.points(k, r, c) - centre
    if rotation is not None:
        pts = pts @ rotation
    return np.asarray(np.sum((pts / np.asarray(semi)) ** 2, axis=-1) <= 1.0)


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


# (semi-axes x, y, z in mm), (slice spacing, row spacing, column spacing), rotation angles
CASES = {
    "iso_1mm_sphere": ((15.0, 15.0, 15.0), (1.0, 1.0, 1.0), None),
    "thick_5mm": ((25.0, 18.0, 16.0), (5.0, 0.45, 0.45), None),
    "thick_5mm_tall": ((16.0, 18.0, 25.0), (5.0, 0.5, 0.5), None),
    "2_5mm_rotated": ((28.0, 17.0, 14.0), (2.5, 0.6, 0.6), (0.3, -0.4, 0.7)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_digital_ellipsoid_matches_analytic_within_5_percent(case: str) -> None:
    semi, spacing, angles = CASES[case]
    extent = max(semi) + 3 * max(spacing)
    shape = tuple(math.ceil(2 * extent / s) + 1 for s in spacing)
    grid = Grid.axial(shape[0], spacing_mm=spacing)
    centre = grid.points((shape[0] - 1) / 2 + 0.31, (shape[1] - 1) / 2 + 0.17, (shape[2] - 1) / 2 + 0.43)
    # semi-axes are given along patient x, y, z; the grid's (row, column) axes are patient (x, y)
    rotation = None if angles is None else _rotation(*angles)
    mask = ellipsoid_on(grid, shape, semi, centre, rotation)
    features = shape_features(mask, grid)
    expected = analytic(*semi)
    for name, value in expected.items():
        assert features[P + name] == pytest.approx(value, rel=0.05), (case, name, features[P + name], value)


def test_tilted_and_uneven_grids_measure_the_same_ellipsoid() -> None:
    """Shear (gantry tilt) and uneven spacing are handled through the positions, not resampling."""
    semi = (22.0, 17.0, 15.0)
    n = 26
    offsets = np.concatenate([np.arange(13) * 2.5, 30.0 + 2.5 + np.arange(13) * 4.0])
    uneven = Grid.axial(n, spacing_mm=(0.0, 0.7, 0.7), offsets_mm=offsets, origin_mm=(0, 0, -40.0))
    tilt = math.radians(18.5)
    positions = np.stack([np.zeros(n), -np.arange(n) * 3.0 * math.tan(tilt), np.arange(n) * 3.0 - 39.0], axis=1)
    tilted = Grid(positions=positions, row_direction=np.array([1.0, 0, 0]), column_direction=np.array([0, 1.0, 0]),
                  pixel_spacing_mm=(0.7, 0.7), slice_thickness_mm=np.full(n, 3.0))
    expected = analytic(*semi)
    for grid in (uneven, tilted):
        centre = grid.points(n / 2 - 0.2, 70.3, 70.6)
        mask = ellipsoid_on(grid, (n, 140, 140), semi, centre)
        f = shape_features(mask, grid)
        for name in ("MeshVolume", "VoxelVolume", "SurfaceArea", "Sphericity", "Maximum3DDiameter",
                     "MajorAxisLength", "MinorAxisLength", "LeastAxisLength"):
            assert f[P + name] == pytest.approx(expected[name], rel=0.05), name


def test_binary_mesh_is_pyradiomics_like_same_volume_larger_area() -> None:
    """The binary (pyradiomics) mesh follows the staircase: same volume, over-read area."""
    semi, spacing = (25.0, 18.0, 16.0), (5.0, 0.45, 0.45)
    shape = (12, 130, 130)
    grid = Grid.axial(shape[0], spacing_mm=spacing)
    mask = ellipsoid_on(grid, shape, semi, grid.points(5.8, 64.2, 64.7))
    smooth = shape_features(mask, grid, mesh="smooth")
    binary = shape_features(mask, grid, mesh="binary")
    assert binary[P + "MeshVolume"] == pytest.approx(smooth[P + "MeshVolume"], rel=0.02)
    assert binary[P + "SurfaceArea"] > 1.15 * smooth[P + "SurfaceArea"]
    assert binary[P + "VoxelVolume"] == smooth[P + "VoxelVolume"]


def test_cube_voxel_volume_and_axes_are_exact() -> None:
    mask = np.zeros((14, 20, 20), dtype=bool)
    mask[2:12, 5:15, 5:15] = True  # 10 x 10 x 10 voxels of 1 x 2 x 2 mm (slice, row, column)
    grid = Grid.axial(14, spacing_mm=(1.0, 2.0, 2.0))
    f = shape_features(mask, grid)
    assert f[P + "VoxelVolume"] == pytest.approx(4000.0)
    # variance of 10 equally spaced centres at spacing s: s^2 (10^2 - 1) / 12
    assert f[P + "LeastAxisLength"] == pytest.approx(4 * math.sqrt(99 / 12))
    assert f[P + "MajorAxisLength"] == pytest.approx(4 * math.sqrt(4 * 99 / 12))
    assert f[P + "Flatness"] == pytest.approx(0.5)
    assert f[P + "Elongation"] == pytest.approx(1.0)


def test_empty_and_single_voxel_masks() -> None:
    grid = Grid.axial(4, spacing_mm=(5.0, 0.5, 0.5))
    empty = shape_features(np.zeros((4, 8, 8), dtype=bool), grid)
    assert empty[P + "VoxelVolume"] == 0.0 and empty[P + "MeshVolume"] == 0.0
    assert all(empty[P + n] is None for n in SHAPE_FEATURES if n not in ("VoxelVolume", "MeshVolume"))
    one = np.zeros((4, 8, 8), dtype=bool)
    one[2, 3, 3] = True
    f = shape_features(one, grid)
    assert f[P + "VoxelVolume"] == pytest.approx(1.25)
    assert f[P + "MeshVolume"] > 0 and f[P + "Elongation"] is None


def test_rejects_bad_masks() -> None:
    grid = Grid.axial(3, spacing_mm=(1, 1, 1))
    with pytest.raises(ValueError, match="boolean"):
        shape_features(np.zeros((3, 4, 4), dtype=np.uint8), grid)
    with pytest.raises(ValueError, match="3 slices"):
        shape_features(np.zeros((2, 4, 4), dtype=bool), grid)


def test_diameter_search_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(4000, 3)) * np.array([30.0, 12.0, 8.0])
    exact = _pairwise_max(pts)
    assert _diameter(pts) == pytest.approx(exact, rel=0.002)
    small = pts[:300]
    assert _diameter(small) == pytest.approx(_pairwise_max(small), rel=1e-12)
    brute = max(float(np.linalg.norm(p - q)) for p in small[:50] for q in small[:50])
    assert _diameter(small[:50]) == pytest.approx(brute, rel=1e-9)


def test_mask_indices_equals_nonzero() -> None:
    rng = np.random.default_rng(0)
    mask = np.zeros((6, 30, 30), dtype=bool)
    mask[2:5, 10:20, 3:9] = rng.random((3, 10, 6)) > 0.5
    assert all(np.array_equal(a, b) for a, b in zip(mask_indices(mask), np.nonzero(mask), strict=True))
