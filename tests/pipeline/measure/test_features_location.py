"""Hemisphere and infratentorial share on a synthetic head (ichpipe.pipeline.measure.features.location)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ichpipe.pipeline.measure.features.grid import Grid
from ichpipe.pipeline.measure.features.location import find_head_frame, location_features

SEMI = np.array([72.0, 92.0, 95.0])  # head: left-right, front-back, up-down (mm)


def make_head(*, yaw_deg: float = 0.0, z_top: float = 100.0) -> tuple[np.ndarray, Grid, np.ndarray]:
    """A head ellipsoid (skull 1000 HU, brain 35 HU, air -1000) and the rotation of its frame."""
    n = int((z_top + 100.0) / 5.0) + 1
    grid = Grid.axial(n, spacing_mm=(5.0, 1.5, 1.5), origin_mm=(-100.0, -110.0, -100.0))
    k, r, c = np.meshgrid(np.arange(n), np.arange(147), np.arange(134), indexing="ij")
    pts = grid.points(k, r, c)
    t = math.radians(yaw_deg)
    rot = np.array([[math.cos(t), -math.sin(t), 0.0], [math.sin(t), math.cos(t), 0.0], [0.0, 0.0, 1.0]])
    q = pts @ rot  # head-frame coordinates
    rho = np.sqrt(np.sum((q / SEMI) ** 2, axis=-1))
    hu = np.where(rho <= 1.0, 1000.0, -1000.0)
    hu = np.where(rho <= 0.94, 35.0, hu).astype(np.float32)
    return hu, grid, rot


def blob(grid: Grid, shape: tuple[int, ...], centre_head: tuple[float, float, float], radius: float,
         rot: np.ndarray) -> np.ndarray:
    k, r, c = np.meshgrid(*(np.arange(s) for s in shape), indexing="ij")
    q = grid.points(k, r, c) @ rot
    return np.asarray(np.sum((q - np.asarray(centre_head)) ** 2, axis=-1) <= radius**2)


def features(hu: np.ndarray, grid: Grid, mask: np.ndarray) -> dict[str, float | None]:
    return location_features(mask, grid, find_head_frame(hu, grid))


def test_left_right_and_midline_distance() -> None:
    hu, grid, rot = make_head()
    left = features(hu, grid, blob(grid, hu.shape, (30.0, 0.0, 40.0), 8.0, rot))
    right = features(hu, grid, blob(grid, hu.shape, (-30.0, 0.0, 40.0), 8.0, rot))
    both = features(hu, grid, blob(grid, hu.shape, (0.0, 10.0, 40.0), 8.0, rot))
    assert left["location_left_fraction"] == 1.0 and right["location_left_fraction"] == 0.0
    assert both["location_left_fraction"] == pytest.approx(0.5, abs=0.12)
    assert left["location_midline_distance_mm"] == pytest.approx(30.0, abs=2.0)
    assert both["location_midline_distance_mm"] == pytest.approx(0.0, abs=2.0)


def test_midline_follows_head_yaw() -> None:
    hu, grid, rot = make_head(yaw_deg=15.0)
    # 10 mm left of the head's midline, 45 mm back: right of the patient x = 0 plane
    mask = blob(grid, hu.shape, (10.0, 45.0, 30.0), 4.0, rot)
    centre = np.mean(grid.points(*np.nonzero(mask)), axis=0)
    assert centre[0] < 0  # a fixed x = 0 midline would call it right-sided
    f = features(hu, grid, mask)
    assert f["location_left_fraction"] == 1.0
    assert f["location_midline_distance_mm"] == pytest.approx(10.0, abs=2.0)


def test_infratentorial_share() -> None:
    hu, grid, rot = make_head()
    frame = find_head_frame(hu, grid)
    assert frame is not None and frame.vertex_z_mm == pytest.approx(95.0, abs=6.0)
    low_back = features(hu, grid, blob(grid, hu.shape, (10.0, 45.0, -45.0), 8.0, rot))
    low_front = features(hu, grid, blob(grid, hu.shape, (35.0, -50.0, -45.0), 8.0, rot))
    high = features(hu, grid, blob(grid, hu.shape, (25.0, 20.0, 30.0), 8.0, rot))
    assert low_back["location_infratentorial_fraction"] == 1.0
    assert low_front["location_infratentorial_fraction"] == 0.0  # middle cranial fossa (temporal lobe)
    assert high["location_infratentorial_fraction"] == 0.0


def test_infratentorial_unknown_when_the_vertex_is_not_scanned() -> None:
    hu, grid, rot = make_head(z_top=40.0)
    frame = find_head_frame(hu, grid)
    assert frame is not None and frame.vertex_z_mm is None
    f = features(hu, grid, blob(grid, hu.shape, (10.0, 45.0, -45.0), 8.0, rot))
    assert f["location_infratentorial_fraction"] is None
    assert f["location_left_fraction"] is not None


def test_empty_mask_and_no_head() -> None:
    hu, grid, rot = make_head()
    empty = features(hu, grid, np.zeros(hu.shape, dtype=bool))
    assert all(v is None for v in empty.values())
    air = np.full(hu.shape, -1000.0, dtype=np.float32)
    assert find_head_frame(air, grid) is None
    f = location_features(blob(grid, hu.shape, (30.0, 0.0, 40.0), 8.0, rot), grid, None)
    assert all(v is None for v in f.values())
