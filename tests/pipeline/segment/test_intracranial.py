"""The intracranial finder on closed, open, absent and clipped skulls; truth from the phantom's head model."""

from __future__ import annotations

import numpy as np
import pytest
from anatomy_support import PhantomCase, dice, herniate, volume_ml
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
