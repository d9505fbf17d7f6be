import math

import numpy as np
import pytest

from ichpipe.dicom_io.geometry import GeometryConfig, compute_geometry, slice_normal, slice_thickness_from_offsets
from ichpipe.errors import GeometryError

AXIAL = (1, 0, 0, 0, 1, 0)


def tilted(deg: float) -> tuple[float, ...]:
    t = math.radians(deg)
    return (1, 0, 0, 0, math.cos(t), -math.sin(t))


def positions_along_table(offsets, deg=0.0):
    t = math.radians(deg)
    return np.array([[0.0, 0.0, z / math.cos(t)] for z in offsets])


def test_normal_is_row_cross_col():
    assert np.allclose(slice_normal(AXIAL), [0, 0, 1])
    with pytest.raises(GeometryError, match="not orthogonal"):
        slice_normal((1, 0, 0, 0.5, 0.866, 0))
    with pytest.raises(GeometryError, match="6 finite numbers"):
        slice_normal((1, 0, 0, 0, 1))


def test_uniform_stack_thickness_sums_to_n_times_spacing():
    th = slice_thickness_from_offsets(np.arange(10) * 5.0)
    assert np.allclose(th, 5.0)
    assert th.sum() == pytest.approx(50.0)


def test_uneven_thickness_is_half_gap_to_each_neighbour():
    th = slice_thickness_from_offsets(np.array([0.0, 4.0, 8.0, 15.0, 22.0]))
    assert th.tolist() == [4.0, 4.0, 5.5, 7.0, 7.0]


def test_single_slice_uses_header_thickness_or_fails():
    assert slice_thickness_from_offsets(np.array([3.0]), single_slice_mm=2.5).tolist() == [2.5]
    with pytest.raises(GeometryError, match="single-slice"):
        slice_thickness_from_offsets(np.array([3.0]))


@pytest.mark.parametrize("deg", [0.0, 12.0, 18.5, -20.0])
def test_tilt_measured_and_spacing_along_normal(deg):
    offsets = np.arange(12) * 5.0
    g = compute_geometry(
        orientation=tilted(deg),
        positions=positions_along_table(offsets, deg) @ np.eye(3),
        pixel_spacing=(0.5, 0.5),
        rows=16,
        columns=16,
        header_tilt_deg=deg,
    )
    assert g.slice_spacing_mm == pytest.approx(5.0, abs=1e-6)
    assert g.gantry_tilt_deg == pytest.approx(deg, abs=1e-6)
    assert g.uniform_spacing and g.missing_slices == 0
    # volume of one voxel column is area x spacing along the normal, not the table step
    assert g.slice_thickness_mm.sum() == pytest.approx(60.0)


def test_tilt_sign_defaults_positive_without_header():
    offsets = np.arange(5) * 5.0
    g = compute_geometry(orientation=tilted(-15), positions=positions_along_table(offsets, -15),
                         pixel_spacing=(1, 1), rows=4, columns=4)
    assert g.gantry_tilt_deg == pytest.approx(15.0)


def test_gap_counts_missing_slice_and_warns():
    offsets = np.array([0, 5, 10, 20, 25, 30, 35.0])
    g = compute_geometry(orientation=AXIAL, positions=positions_along_table(offsets), pixel_spacing=(1, 1),
                         rows=4, columns=4)
    assert g.missing_slices == 1
    assert not g.uniform_spacing
    assert any("slice(s) missing" in w for w in g.warnings)
    assert g.slice_thickness_mm[2] == pytest.approx(7.5)


def test_two_protocol_stack_is_uneven_but_not_missing():
    offsets = np.concatenate([np.arange(14) * 4.0, 52 + 1.08 + np.arange(14) * 7.0])
    g = compute_geometry(orientation=AXIAL, positions=positions_along_table(offsets), pixel_spacing=(1, 1),
                         rows=4, columns=4)
    assert not g.uniform_spacing
    assert g.missing_slices == 0
    assert g.slice_spacing_mm == pytest.approx(4.0)
    assert "13 of 4 mm" in g.warnings[0] and "13 of 7 mm" in g.warnings[0] and "1 of 1.08 mm" in g.warnings[0]


def test_unsorted_positions_are_refused():
    with pytest.raises(GeometryError, match="strictly increasing"):
        compute_geometry(orientation=AXIAL, positions=positions_along_table([0, 10, 5]), pixel_spacing=(1, 1),
                         rows=4, columns=4)


def test_bad_pixel_spacing_is_refused():
    with pytest.raises(GeometryError, match="PixelSpacing must be two positive numbers"):
        compute_geometry(orientation=AXIAL, positions=positions_along_table([0, 5]), pixel_spacing=(0, 1),
                         rows=4, columns=4)


def test_config_validation():
    with pytest.raises(ValueError, match="'gap_factor' must be greater than 1"):
        GeometryConfig(gap_factor=1.0)


# --- slice thickness against the planned acquisition (truth that does not use the half-gap rule) ---
#
# A planned stack of n slices s mm apart covers n * s mm along the normal: each planned
# slice stands for the slab of its own spacing around it. Dropping slices does not change
# what was scanned, only what is left to read: a reader's thicknesses must still tile that
# slab, from half a spacing below the first planned slice to half a spacing above the last,
# never reaching past it.

def planned_stack(n: int, spacing: float, dropped: tuple[int, ...]) -> tuple[np.ndarray, float, float]:
    """Offsets of the slices left after ``dropped``; the planned slab's lower and upper faces."""
    planned = np.arange(n) * spacing
    kept = np.delete(planned, list(dropped))
    return kept, planned[0] - spacing / 2, planned[-1] + spacing / 2


@pytest.mark.parametrize("dropped", [(5,), (1,), (10,), (1, 2), (9, 10), (1, 10), (1, 2, 3)])
@pytest.mark.parametrize("deg", [0.0, 18.5])
def test_thicknesses_tile_the_planned_slab_when_slices_are_missing(dropped: tuple[int, ...], deg: float) -> None:
    kept, low, high = planned_stack(12, 5.0, dropped)
    g = compute_geometry(orientation=tilted(deg), positions=positions_along_table(kept, deg), pixel_spacing=(1, 1),
                         rows=4, columns=4, header_tilt_deg=deg)
    assert g.missing_slices == len(dropped)
    assert g.slice_thickness_mm.sum() == pytest.approx(high - low, abs=1e-9)
    # the end slices reach exactly to the slab's faces (half a spacing), whatever is missing next to them
    first_face = g.offsets_mm[0] - (g.slice_thickness_mm[0] - (g.offsets_mm[1] - g.offsets_mm[0]) / 2)
    last_face = g.offsets_mm[-1] + (g.slice_thickness_mm[-1] - (g.offsets_mm[-1] - g.offsets_mm[-2]) / 2)
    assert first_face == pytest.approx(g.offsets_mm[0] - 2.5, abs=1e-9)
    assert last_face == pytest.approx(g.offsets_mm[-1] + 2.5, abs=1e-9)


def test_end_slice_next_to_a_gap_keeps_half_the_local_spacing_outward() -> None:
    # slice 1 of 0, 5, 10, ... 55 is missing: slice 0 stands for 2.5 mm below it and half the 10 mm gap above
    th = slice_thickness_from_offsets(np.array([0.0, 10.0, 15.0, 20.0, 25.0, 30.0]))
    assert th.tolist() == [7.5, 7.5, 5.0, 5.0, 5.0, 5.0]
    th = slice_thickness_from_offsets(np.array([0.0, 5.0, 10.0, 15.0, 30.0]))  # two missing before the last
    assert th.tolist() == [5.0, 5.0, 5.0, 10.0, 10.0]


def test_two_protocol_stack_end_slices_are_their_block_spacing() -> None:
    # GE-like 4 mm / 7 mm blocks: no end slice is next to a gap, so each mirrors its own block (4 and 7 mm)
    offsets = np.concatenate([np.arange(14) * 4.0, 52 + 1.08 + np.arange(14) * 7.0])
    th = slice_thickness_from_offsets(offsets)
    assert th[0] == pytest.approx(4.0) and th[-1] == pytest.approx(7.0)
    assert th.sum() == pytest.approx(offsets[-1] - offsets[0] + 2.0 + 3.5)


@pytest.mark.parametrize("header", [-math.inf, math.inf, math.nan, 90.0, -135.0])
def test_one_slice_ignores_a_header_tilt_no_gantry_has(header: float) -> None:
    """A fuzzed GantryDetectorTilt of -inf once crashed with 'math domain error' on a one-slice series."""
    g = compute_geometry(orientation=(1, 0, 0, 0, 1, 0), positions=np.array([[0.0, 0.0, 4.0]]),
                         pixel_spacing=(0.5, 0.5), rows=16, columns=1, header_tilt_deg=header, slice_thickness_mm=1.0)
    assert g.gantry_tilt_deg == 0.0 and np.isfinite(g.voxel_volumes_ml).all()
    kept = compute_geometry(orientation=(1, 0, 0, 0, 1, 0), positions=np.array([[0.0, 0.0, 4.0]]),
                            pixel_spacing=(0.5, 0.5), rows=16, columns=1, header_tilt_deg=-18.5, slice_thickness_mm=1.0)
    assert kept.gantry_tilt_deg == pytest.approx(-18.5)


@pytest.mark.parametrize("thickness", [math.inf, math.nan, 0.0])
def test_one_slice_refuses_a_slice_thickness_that_is_no_thickness(thickness: float) -> None:
    with pytest.raises(GeometryError, match="no usable SliceThickness"):
        compute_geometry(orientation=(1, 0, 0, 0, 1, 0), positions=np.array([[0.0, 0.0, 4.0]]),
                         pixel_spacing=(0.5, 0.5), rows=16, columns=1, slice_thickness_mm=thickness)
