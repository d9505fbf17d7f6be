from __future__ import annotations

import math

import numpy as np
import pytest

from ichpipe.dicom_io.geometry import VolumeGeometry, compute_geometry
from ichpipe.pipeline.config.measure_config import MeasureConfig
from ichpipe.pipeline.measure.volume import feret_diameters_mm, measure_hematoma

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def tilted(deg: float) -> tuple[float, ...]:
    t = math.radians(deg)
    return (1.0, 0.0, 0.0, 0.0, math.cos(t), -math.sin(t))


def geometry(
    offsets, *, size=(32, 32), spacing=(0.5, 0.8), tilt_deg: float = 0.0
) -> VolumeGeometry:
    """Slices at ``offsets`` along the normal; with tilt the positions run along the table (z)."""
    t = math.radians(tilt_deg)
    positions = np.array([[0.0, 0.0, z / math.cos(t)] for z in offsets])
    return compute_geometry(
        orientation=tilted(tilt_deg) if tilt_deg else AXIAL,
        positions=positions,
        pixel_spacing=spacing,
        rows=size[0],
        columns=size[1],
        header_tilt_deg=tilt_deg or None,
    )


def cuboid(geo: VolumeGeometry, slices: slice, rows: slice, cols: slice) -> np.ndarray:
    mask = np.zeros((geo.n_slices, geo.rows, geo.columns), dtype=bool)
    mask[slices, rows, cols] = True
    return mask


def test_cuboid_exact_volume_and_diameters() -> None:
    geo = geometry(np.arange(10) * 5.0)
    m = measure_hematoma(cuboid(geo, slice(3, 7), slice(5, 15), slice(8, 14)), geo)
    # 4 slices x 5 mm, 10 rows x 0.5 mm, 6 columns x 0.8 mm
    assert m.volume_ml == pytest.approx(4 * 5.0 * (10 * 0.5) * (6 * 0.8) / 1000.0, rel=1e-12)
    assert m.n_voxels == 4 * 10 * 6
    assert m.max_area_slice_index == 3
    assert m.slice_areas_mm2[3] == pytest.approx(10 * 0.5 * 6 * 0.8)
    assert m.slice_areas_mm2[0] == 0.0
    # A is the rectangle's diagonal edge to edge; B its width perpendicular to the diagonal
    h, w = 10 * 0.5, 6 * 0.8
    diag = math.hypot(h, w)
    assert m.abc2.a_mm == pytest.approx(diag)
    assert m.abc2.b_mm == pytest.approx(2 * h * w / diag)
    assert m.abc2.c_mm == pytest.approx(20.0)
    assert m.abc2_ml == pytest.approx(m.abc2.a_mm * m.abc2.b_mm * 20.0 / 2000.0)


def test_uneven_spacing_uses_each_slice_own_thickness() -> None:
    offsets = np.array([0.0, 4.0, 8.0, 15.0, 22.0])  # thickness 4, 4, 5.5, 7, 7
    geo = geometry(offsets)
    mask = cuboid(geo, slice(1, 4), slice(0, 2), slice(0, 5))
    area = 2 * 0.5 * 5 * 0.8
    m = measure_hematoma(mask, geo)
    assert m.volume_ml == pytest.approx(area * (4.0 + 5.5 + 7.0) / 1000.0)
    assert m.abc2.c_mm == pytest.approx(4.0 + 5.5 + 7.0)


def test_gap_counts_half_distance_to_each_neighbour() -> None:
    offsets = np.array([0.0, 5.0, 10.0, 20.0, 25.0])  # one slice missing between 10 and 20
    geo = geometry(offsets)
    assert geo.missing_slices == 1
    mask = cuboid(geo, slice(0, 5), slice(0, 4), slice(0, 4))
    area = 4 * 0.5 * 4 * 0.8
    m = measure_hematoma(mask, geo)
    assert m.volume_ml == pytest.approx(area * (5 + 5 + 7.5 + 7.5 + 5) / 1000.0)
    assert m.volume_ml == pytest.approx(area * 30.0 / 1000.0)  # the gap is bridged, not lost


@pytest.mark.parametrize("deg", [12.0, 18.5, -25.0])
def test_tilt_is_not_inflated_by_one_over_cos(deg: float) -> None:
    offsets = np.arange(12) * 5.0
    flat = geometry(offsets)
    tilt = geometry(offsets, tilt_deg=deg)
    assert tilt.gantry_tilt_deg == pytest.approx(deg)
    mask = cuboid(flat, slice(2, 9), slice(4, 20), slice(5, 25))
    expected = 7 * 5.0 * (16 * 0.5) * (20 * 0.8) / 1000.0
    m = measure_hematoma(mask, tilt)
    assert m.volume_ml == pytest.approx(expected, rel=1e-9)
    assert m.volume_ml == pytest.approx(measure_hematoma(mask, flat).volume_ml, rel=1e-9)
    table_step_volume = expected / math.cos(math.radians(deg))  # what a position-distance reader gets
    assert abs(m.volume_ml - table_step_volume) > 0.01 * expected
    assert m.abc2.c_mm == pytest.approx(35.0)


def ellipsoid_mask(
    geo: VolumeGeometry, semi_mm: tuple[float, float, float], *, angle_deg: float = 0.0,
    centre: tuple[float, float, float] | None = None,
) -> np.ndarray:
    """Voxels whose centre lies in an ellipsoid (semi-axes along rotated x, y and the normal)."""
    dr, dc = geo.pixel_spacing_mm
    z = geo.offsets_mm - geo.offsets_mm[0]
    y = np.arange(geo.rows) * dr
    x = np.arange(geo.columns) * dc
    cz, cy, cx = centre or (z[-1] / 2 + 0.37, y[-1] / 2 + 0.21, x[-1] / 2 + 0.13)
    zz, yy, xx = np.meshgrid(z - cz, y - cy, x - cx, indexing="ij")
    t = math.radians(angle_deg)
    u = xx * math.cos(t) + yy * math.sin(t)
    v = -xx * math.sin(t) + yy * math.cos(t)
    a, b, c = semi_mm
    return (u / a) ** 2 + (v / b) ** 2 + (zz / c) ** 2 <= 1.0


@pytest.mark.parametrize(
    ("spacing", "angle"), [((0.5, 0.5), 0.0), ((0.4, 0.7), 30.0), ((0.45, 0.45), 73.0)]
)
def test_abc2_on_digital_ellipsoid_is_pi_over_six_times_abc(spacing, angle) -> None:
    geo = geometry(np.arange(24) * 2.5, size=(140, 110), spacing=spacing)
    a, b, c = 20.0, 12.0, 15.0
    mask = ellipsoid_mask(geo, (a, b, c), angle_deg=angle)
    m = measure_hematoma(mask, geo)
    true_ml = 4.0 / 3.0 * math.pi * a * b * c / 1000.0
    assert m.volume_ml == pytest.approx(true_ml, rel=0.02)  # planimetry is near exact
    # diameters within about a pixel (edge to edge) and a slice of the true ones
    assert m.abc2.a_mm == pytest.approx(2 * a, abs=1.2 * max(spacing))
    assert m.abc2.b_mm == pytest.approx(2 * b, abs=1.2 * max(spacing))
    assert m.abc2.c_mm == pytest.approx(2 * c, abs=2.5)
    # ABC/2 takes pi = 3: it reads 3/pi of the ellipsoid volume pi/6 ABC
    assert m.abc2_ml == pytest.approx(true_ml * 3.0 / math.pi, rel=0.05)
    assert m.abc2_ml < m.volume_ml


def test_kothari_weights_slices_by_area() -> None:
    geo = geometry(np.arange(6) * 5.0, size=(20, 20), spacing=(1.0, 1.0))
    mask = np.zeros((6, 20, 20), dtype=bool)
    mask[1, :10, :10] = True  # 100 pixels: the largest, weight 1
    mask[2, :10, :8] = True  # 80 %: weight 1
    mask[3, :10, :5] = True  # 50 %: weight 0.5
    mask[4, :2, :5] = True  # 10 %: weight 0
    count = measure_hematoma(mask, geo)
    kothari = measure_hematoma(mask, geo, config=MeasureConfig(abc2_c_method="kothari"))
    assert count.abc2.c_mm == pytest.approx(4 * 5.0)
    assert kothari.abc2.c_mm == pytest.approx(2.5 * 5.0)
    assert kothari.abc2.c_slice_weight == pytest.approx(2.5)
    assert kothari.abc2.n_slices == 4
    assert kothari.volume_ml == pytest.approx(count.volume_ml)


def test_abc2_uses_largest_component_by_default() -> None:
    geo = geometry(np.arange(8) * 5.0, size=(40, 40), spacing=(1.0, 1.0))
    mask = np.zeros((8, 40, 40), dtype=bool)
    mask[1:5, 2:12, 2:12] = True  # main hematoma, 4 slices
    mask[6, 30:33, 30:33] = True  # a separate small bleed, slice 6
    main = measure_hematoma(mask, geo)
    assert main.abc2.n_components == 2
    assert main.abc2.c_mm == pytest.approx(20.0)
    assert main.abc2.a_mm == pytest.approx(math.hypot(10, 10))
    assert main.abc2.component_volume_ml == pytest.approx(4 * 100 * 5.0 / 1000.0)
    assert main.volume_ml == pytest.approx((400 + 9) * 5.0 / 1000.0)
    every = measure_hematoma(mask, geo, config=MeasureConfig(abc2_component="all"))
    assert every.abc2.c_mm == pytest.approx(25.0)
    assert every.abc2.component_volume_ml == pytest.approx(every.volume_ml)


def test_components_touching_at_a_corner_across_slices_are_one() -> None:
    geo = geometry(np.arange(3) * 5.0, size=(10, 10), spacing=(1.0, 1.0))
    mask = np.zeros((3, 10, 10), dtype=bool)
    mask[0, 2, 2] = True
    mask[1, 3, 3] = True
    assert measure_hematoma(mask, geo).abc2.n_components == 1


def test_empty_mask_gives_zeros() -> None:
    geo = geometry(np.arange(5) * 5.0)
    m = measure_hematoma(np.zeros((5, 32, 32), dtype=bool), geo)
    assert (m.volume_ml, m.abc2_ml, m.n_voxels) == (0.0, 0.0, 0)
    assert m.max_area_slice_index is None
    assert m.slice_areas_mm2 == (0.0,) * 5
    d = m.to_dict()
    assert d["abc2"]["a_mm"] == 0.0 and d["abc2_ml"] == 0.0


def test_single_pixel_and_to_dict_contract() -> None:
    geo = geometry(np.arange(5) * 5.0, spacing=(0.5, 0.5))
    mask = np.zeros((5, 32, 32), dtype=bool)
    mask[2, 7, 9] = True
    m = measure_hematoma(mask, geo)
    assert m.abc2.a_mm == pytest.approx(0.5 * math.sqrt(2))
    d = m.to_dict()
    assert {"volume_ml", "abc2_ml", "n_voxels", "max_area_slice_index"} <= set(d)
    assert set(d["abc2"]) >= {"a_mm", "b_mm", "c_mm"}
    assert len(d["slice_areas_mm2"]) == 5


def test_bad_masks_are_refused() -> None:
    geo = geometry(np.arange(5) * 5.0)
    with pytest.raises(ValueError, match="Argument 'mask' must be a boolean array"):
        measure_hematoma(np.zeros((5, 32, 32), dtype=np.uint8), geo)
    with pytest.raises(ValueError, match=r"Argument 'mask' has shape \(4, 32, 32\)"):
        measure_hematoma(np.zeros((4, 32, 32), dtype=bool), geo)
    with pytest.raises(ValueError, match="Argument 'abc2_c_method'"):
        MeasureConfig(abc2_c_method="tada")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Argument 'abc2_component'"):
        MeasureConfig(abc2_component="biggest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Argument 'region'"):
        feret_diameters_mm(np.zeros((4, 4), dtype=bool), (1.0, 1.0))
