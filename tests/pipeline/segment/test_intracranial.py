"""The intracranial finder on closed, open, absent and clipped skulls; truth from the phantom's head model."""

from __future__ import annotations

import numpy as np
import pytest
from anatomy_support import PhantomCase, dice, herniate, open_ring_on, volume_ml
from scipy import ndimage

from ichpipe.errors import UsageError
from ichpipe.pipeline.config.anatomy_config import AnatomyConfig
from ichpipe.pipeline.segment.intracranial import (
    IntracranialResult,
    find_intracranial,
    head_mask,
    largest_component,
    value_levels,
)


def _run(case: PhantomCase, hu: np.ndarray | None = None) -> IntracranialResult:
    return find_intracranial(case.hu if hu is None else hu, case.spacing, case.thickness)


def _check_against_truth(case: PhantomCase, result: IntracranialResult, *, min_dice: float = 0.95,
                         max_rel: float = 0.05) -> None:
    truth = case.intracranial
    assert dice(result.mask, truth) >= min_dice
    true_ml = volume_ml(truth, case.voxel_ml)
    assert abs(result.volume_ml - true_ml) <= max_rel * true_ml
    # the scalp is never intracranial: nothing farther out than the inner table's partial-volume edge
    outside = result.mask & (case.signed_distance > 1.0)
    assert volume_ml(outside, case.voxel_ml) <= 0.005 * true_ml


def test_closed_skull(small_case: PhantomCase) -> None:
    r = _run(small_case)
    assert r.method == "closed bone ring"
    _check_against_truth(small_case, r)
    assert r.measurements["ring_bone_fraction_median"] >= 0.95
    assert r.measurements["n_slices_bridged"] == 0


def test_open_flap_over_the_hematoma(variant) -> None:
    case = variant(skull_flap_deg=70.0)
    r = _run(case)
    assert "closed across a gap" in r.method
    assert r.measurements["bridged_max_gap_deg"] >= 40
    _check_against_truth(case, r)
    blood = case.labels > 0
    assert (r.mask & blood).sum() >= 0.97 * blood.sum()


def test_the_flap_option_removes_the_bone_over_the_hematoma(variant) -> None:
    """The generator's flap is real: filling the bone ring alone (the former method) misses the hematoma side."""
    case = variant(skull_flap_deg=70.0)
    cfg = AnatomyConfig()
    bone = case.hu >= cfg.bone_min_hu
    filled = np.stack([ndimage.binary_fill_holes(p) & ~p for p in bone])
    blood = case.labels > 0
    assert (filled & blood).sum() < 0.5 * blood.sum()


def test_herniation_through_the_flap_is_included_and_the_scalp_is_not(variant) -> None:
    case = variant(skull_flap_deg=70.0)
    hu, herniated, scalp = herniate(case, bulge_mm=10.0)
    r = _run(case, hu)
    assert herniated.sum() > 20  # the construction put blood outside the inner table
    assert (r.mask & herniated).sum() >= 0.8 * herniated.sum()
    assert (r.mask & scalp).sum() <= 0.15 * scalp.sum()


@pytest.mark.parametrize("export", ["skull_stripped", "skull_air_stripped"])
def test_skull_stripped(variant, export: str) -> None:
    case = variant(export=export)
    r = _run(case)
    assert "stripped-skull" in r.method
    assert r.levels.fill_value == 0.0
    _check_against_truth(case, r)


def test_brain_only_export_uses_the_head_outline(variant) -> None:
    case = variant(export="brain_only")
    r = _run(case)
    assert r.method.startswith("head outline (no bone)")
    _check_against_truth(case, r, min_dice=0.93, max_rel=0.08)


@pytest.mark.parametrize("ceiling", [320.0, 200.0])
def test_hu_clipped(variant, ceiling: float) -> None:
    case = variant(clip_hu=ceiling)
    r = _run(case)
    assert r.method == "closed bone ring"
    if ceiling < 300:
        assert r.levels.bone_threshold_hu == ceiling
    _check_against_truth(case, r)


def test_nothing_found_in_air() -> None:
    hu = np.full((4, 64, 64), -1000.0, dtype=np.float32)
    r = find_intracranial(hu, (1.0, 1.0), 5.0)
    assert not r.mask.any()
    assert r.method == "not found"
    assert r.volume_ml == 0.0


def test_value_levels_find_the_fill_value_and_the_clip(small_case: PhantomCase, variant) -> None:
    assert value_levels(small_case.hu).fill_value is None
    assert value_levels(small_case.hu).clip_max is None
    assert value_levels(variant(export="skull_stripped").hu).fill_value == 0.0
    assert value_levels(variant(clip_hu=320.0).hu).clip_max == 320.0


def test_largest_component_matches_scipy_labelling() -> None:
    rng = np.random.default_rng(0)
    for shape in ((6, 40, 40), (40, 40)):
        mask = ndimage.binary_opening(rng.random(shape) > 0.55)
        labels, n = ndimage.label(mask, structure=np.ones((3,) * len(shape), dtype=bool))
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        assert n > 1
        np.testing.assert_array_equal(largest_component(mask), labels == int(np.argmax(sizes)))


def test_head_mask_holds_the_skull_and_its_inside(small_case: PhantomCase) -> None:
    head = head_mask(small_case.hu)
    assert head[small_case.intracranial].all()
    assert not head[:, 0, 0].any()


def test_input_checks() -> None:
    hu = np.zeros((2, 8, 8), dtype=np.float32)
    with pytest.raises(UsageError, match="'hu' must be a 3D"):
        find_intracranial(hu[0], (1.0, 1.0), 5.0)
    with pytest.raises(UsageError, match="'pixel_spacing_mm'"):
        find_intracranial(hu, (0.0, 1.0), 5.0)
    with pytest.raises(UsageError, match="'slice_thickness_mm'"):
        find_intracranial(hu, (1.0, 1.0), [5.0, -1.0])
    with pytest.raises(ValueError, match="'brain_hu'"):
        AnatomyConfig(brain_hu=(100.0, 0.0))
    with pytest.raises(ValueError, match="'min_ring_fraction'"):
        AnatomyConfig(min_ring_fraction=1.5)


def test_a_failed_slice_low_in_the_head_is_crossed(small_case: PhantomCase) -> None:
    """One failed slice cut the slices below it off the space (the real GE head's posterior fossa)."""
    present = np.flatnonzero(small_case.intracranial.any(axis=(1, 2)))
    z = int(present[0] + (present[-1] - present[0]) // 4)
    hu = open_ring_on(small_case, z)
    truth = small_case.intracranial
    before = find_intracranial(hu, small_case.spacing, small_case.thickness,
                               config=AnatomyConfig(max_failed_run_mm=None))
    assert before.slices[z].method == "none"
    assert not before.mask[:z].any()  # what the 3D step alone lost
    after = find_intracranial(hu, small_case.spacing, small_case.thickness)
    assert after.crossed_slices == (z,) and after.measurements["n_slices_crossed"] == 1
    assert after.joined_slices and set(after.joined_slices) <= set(range(z))
    assert after.reached_slices == tuple(sorted((*after.joined_slices, z)))
    assert "1 failed slice crossed" in after.method
    below = truth[:z]
    assert (after.mask[:z] & below).sum() >= 0.95 * below.sum()
    assert dice(after.mask, truth) >= 0.95
    # the crossed slice itself holds most of its true space and never reaches the scalp (here the removed
    # skull reads as brain, so it may take some of the skull's place: on a real failed slice bone stops it)
    assert (after.mask[z] & truth[z]).sum() >= 0.8 * truth[z].sum()
    assert not (after.mask[z] & (small_case.signed_distance[z] >= small_case.skull_mm)).any()
    assert abs(after.volume_ml - volume_ml(truth, small_case.voxel_ml)) <= 0.05 * volume_ml(truth, small_case.voxel_ml)


def test_crossing_changes_nothing_on_an_intact_head(small_case: PhantomCase) -> None:
    off = find_intracranial(small_case.hu, small_case.spacing, small_case.thickness,
                            config=AnatomyConfig(max_failed_run_mm=None))
    on = _run(small_case)
    np.testing.assert_array_equal(on.mask, off.mask)
    assert on.crossed_slices == () and on.measurements["n_slices_crossed"] == 0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_failed_run_mm": -1.0}, "Argument 'max_failed_run_mm' must not be negative"),
    ({"min_join_share": 1.5}, r"Argument 'min_join_share' must lie in \(0, 1\]"),
])
def test_crossing_options_are_checked(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AnatomyConfig(**kwargs)


@pytest.mark.shared_data
def test_the_real_ge_heads_posterior_fossa_is_inside(shared_data) -> None:
    """One failed slice at the orbits cut the cerebellum and both middle fossae off the real GE head."""
    from ichpipe.dicom_io import assemble_series, scan_study

    with scan_study(shared_data / "ct-real" / "ge-hispeed-head-tilt") as scan:
        volume = assemble_series(scan.require_selected().series)
    geo = volume.geometry
    former = find_intracranial(volume.hu, geo.pixel_spacing_mm, geo.slice_thickness_mm,
                               config=AnatomyConfig(max_failed_run_mm=None))
    now = find_intracranial(volume.hu, geo.pixel_spacing_mm, geo.slice_thickness_mm)
    assert len(now.crossed_slices) == 1
    (z,) = now.crossed_slices
    assert former.slices[z].method == "none" and not former.mask[:z].any()
    area_cm2 = now.mask.sum(axis=(1, 2)) * geo.pixel_spacing_mm[0] * geo.pixel_spacing_mm[1] / 100.0
    assert (area_cm2[z - 3 : z + 1] >= 40.0).all()
    assert now.volume_ml - former.volume_ml >= 80.0
    assert (now.mask & former.mask).sum() == former.mask.sum()  # only added to
