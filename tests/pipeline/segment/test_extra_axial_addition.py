"""Adding collections against the inner table with a second network (inference.extra_axial)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from network_stand_ins import Grey, TwoLevel, tiny_checkpoint

from ichpipe.errors import CheckpointError, ConfigError
from ichpipe.models.hashing import file_sha256
from ichpipe.pipeline.config.inference_config import EndExtensionConfig, ExtraAxialConfig, InferenceConfig
from ichpipe.pipeline.config.loader import build_dataclass
from ichpipe.pipeline.segment.extra_axial_addition import add_extra_axial, inner_table_zone
from ichpipe.pipeline.segment.inference import NetworkSegmenter

SPACE = (slice(None), slice(4, 36), slice(4, 36))  # intracranial space of the 40 x 40 tests, 1 mm pixels


def _space(shape: tuple[int, int, int] = (6, 40, 40)) -> np.ndarray:
    space = np.zeros(shape, dtype=bool)
    space[SPACE] = True
    return space


def _add(mask: np.ndarray, call: np.ndarray, *, hu: np.ndarray | None = None, **options: float):
    hu = np.full(mask.shape, 30.0, dtype=np.float32) if hu is None else hu
    return add_extra_axial(mask, call, intracranial=_space(mask.shape), pixel_spacing_mm=(1.0, 1.0),
                           voxel_volumes_ml=np.full(mask.shape[0], 0.001), hu=hu, hu_range=(-15.0, 120.0),
                           **{"table_mm": 3.0, "min_ml": 0.01, "min_thickness_mm": 0.0, "min_median_hu": None,
                              **options})


def test_a_call_against_the_inner_table_is_added_and_one_in_the_parenchyma_is_not() -> None:
    call = np.zeros((6, 40, 40), dtype=bool)
    call[:, 5:9, 10:30] = True  # a crescent-like band 1-4 mm inside the table
    call[:, 18:23, 18:23] = True  # a call in the middle of the brain
    out = _add(np.zeros_like(call), call)
    assert out.components_added == 1 and out.components_refused == 1
    # not on the first and last intracranial slices (the slab cuts the wall obliquely there)
    np.testing.assert_array_equal(out.added, np.pad(np.ones((4, 4, 20), bool), ((1, 1), (5, 31), (10, 10))))
    np.testing.assert_array_equal(out.mask, out.added)


def test_nothing_is_added_on_slices_with_little_intracranial_space_or_in_a_thin_rim() -> None:
    space = _space((6, 40, 40))
    space[4, :, 20:] = False  # the vertex: less than 70 % of the largest area
    call = np.zeros_like(space)
    call[:, 4:6, 10:30] = True  # 2 mm rim along the table
    call[:, 26:36, 8:14] = True  # 6 mm thick collection
    hu = np.full(call.shape, 30.0, dtype=np.float32)
    out = add_extra_axial(np.zeros_like(call), call, intracranial=space, pixel_spacing_mm=(1.0, 1.0),
                          voxel_volumes_ml=np.full(6, 0.001), hu=hu, hu_range=(-15.0, 120.0), min_ml=0.01,
                          min_thickness_mm=3.0, min_area_fraction=0.7, min_median_hu=None, narrow_slices="skip")
    assert out.components_added == 1 and not out.added[:, :10].any()  # the rim is opened away
    assert [bool(out.added[k].any()) for k in range(6)] == [False, True, True, True, False, False]
    assert out.added[2, 28:34, 9:13].all()


def test_anchored_narrow_slices_take_a_collection_running_on_but_never_a_piece_there_alone() -> None:
    space = _space((8, 40, 40))
    space[[5, 6], :, 20:] = False  # towards the vertex: under 70 % of the largest area
    call = np.zeros_like(space)
    call[1:7, 26:36, 8:14] = True  # a collection on slices 1-6, the last two of them narrow
    call[5:7, 4:10, 4:12] = True  # a separate piece on the narrow slices only (obliquely cut bone)
    hu = np.full(call.shape, 30.0, dtype=np.float32)

    def run(narrow: str):
        return add_extra_axial(np.zeros_like(call), call, intracranial=space, pixel_spacing_mm=(1.0, 1.0),
                               voxel_volumes_ml=np.full(8, 0.001), hu=hu, hu_range=(-15.0, 120.0), min_ml=0.1,
                               min_thickness_mm=3.0, min_area_fraction=0.7, min_median_hu=None,
                               narrow_slices=narrow)

    skip, anchored = run("skip"), run("anchored")
    assert [bool(skip.added[k].any()) for k in range(8)] == [False, True, True, True, True, False, False, False]
    # the collection goes on onto slices 5-6 (slice 7, the last, is never read); the lone piece does not
    assert [bool(anchored.added[k].any()) for k in range(8)] == [False, True, True, True, True, True, True, False]
    assert not anchored.added[:, :12, :14].any()
    assert anchored.components_added == 1 and anchored.components_refused == 1
    with pytest.raises(ValueError, match="narrow_slices"):
        run("all")


def test_a_hypodense_part_joined_to_an_acute_collection_is_measured_and_never_added() -> None:
    hu = np.full((6, 40, 40), 30.0, dtype=np.float32)
    call = np.zeros(hu.shape, dtype=bool)
    call[:, 5:9, 10:20] = True  # acute part against the table
    hu[call] = 80.0
    loose = call.copy()
    loose[:, 5:9, 20:30] = True  # its chronic part, called only at the growth threshold
    hu[:, 5:9, 20:30] = 12.0
    loose[:, 18:24, 18:24] = True  # hypodense, called, but far from the table and not joined
    hu[:, 18:24, 18:24] = 12.0
    out = _add(np.zeros_like(call), call, hu=hu, min_median_hu=50.0, low_density_min_ml=5.0, grow_candidate=loose)
    np.testing.assert_array_equal(out.added[1:5], call[1:5])  # only the acute part is added
    assert out.hypodense_beside_ml == pytest.approx(6 * 4 * 10 * 0.001)  # every slice: the whole space, not interior
    assert _add(np.zeros_like(call), call, hu=hu, min_median_hu=50.0).hypodense_beside_ml == 0.0  # no growth call


def test_what_the_first_network_found_is_kept_and_not_counted_again() -> None:
    call = np.zeros((6, 40, 40), dtype=bool)
    call[:, 5:12, 10:30] = True
    found = np.zeros_like(call)
    found[:, 8:12, 10:30] = True  # the dense part of a mixed collection, already found
    out = _add(found, call)
    assert out.components_added == 1 and not (out.added & found).any()
    np.testing.assert_array_equal(out.mask[1:5], call[1:5])


def test_small_pieces_bone_air_and_voxels_outside_the_skull_are_never_added() -> None:
    call = np.zeros((6, 40, 40), dtype=bool)
    call[:, 0:9, 10:30] = True  # reaches outside the intracranial space
    call[2, 30:32, 30:32] = True  # 4 uL against the table
    hu = np.full(call.shape, 30.0, dtype=np.float32)
    hu[:, 4, 10:30] = 400.0  # bone on the space's edge
    out = _add(np.zeros_like(call), call, hu=hu, min_ml=0.05)
    assert out.components_added == 1 and out.components_refused == 1
    assert not out.added[:, :5].any() and out.added[1:5, 5:9, 10:30].all()
    assert not out.added[2, 30:32, 30:32].any()


def test_a_hypodense_call_against_the_table_is_not_added() -> None:
    """Real atrophic convexities (CSF and cortex, about 20 HU) look like a chronic subdural to the network."""
    call = np.zeros((6, 40, 40), dtype=bool)
    call[:, 5:10, 8:18] = True
    call[:, 5:10, 22:32] = True
    hu = np.full(call.shape, 22.0, dtype=np.float32)
    hu[:, 5:10, 22:32] = 62.0  # acute blood
    hu[:, 5:7, 22:32] = 20.0  # with a hypodense part: the median decides
    out = _add(np.zeros_like(call), call, hu=hu, min_median_hu=45.0)
    assert out.components_added == 1 and out.components_refused == 1
    assert out.added[1:5, 5:10, 22:32].all() and not out.added[:, :, :20].any()
    assert out.components_low_density == 0 and out.low_density_ml == 0.0


def test_by_default_a_small_call_at_cortex_density_is_refused_and_acute_blood_is_added() -> None:
    """The thirteenth session's network calls phantom cortex against the table at 42-51 HU in small pieces."""
    defaults = ExtraAxialConfig()
    call = np.zeros((6, 40, 40), dtype=bool)
    call[:, 5:10, 8:18] = True
    call[:, 5:10, 22:32] = True
    hu = np.full(call.shape, 30.0, dtype=np.float32)
    hu[:, 5:10, 8:18] = 47.0  # cortex next to the table: above the old 45 HU, under 50
    hu[:, 5:10, 22:32] = 55.0  # acute blood
    out = _add(np.zeros_like(call), call, hu=hu, min_median_hu=defaults.min_median_hu,
               low_density_min_ml=defaults.low_density_min_ml)
    assert out.components_added == 1 and out.components_refused == 1
    assert out.added[1:5, 5:10, 22:32].all() and not out.added[:, :, :20].any()


def test_min_contrast_hu_refuses_a_call_no_denser_than_the_brain_around_it() -> None:
    """Bright cortex against the table (beam hardening, or a phantom's grey matter) is not blood."""
    call = np.zeros((6, 40, 40), dtype=bool)
    call[:, 5:10, 8:18] = True
    call[:, 5:10, 22:32] = True
    hu = np.full(call.shape, 35.0, dtype=np.float32)
    hu[:, 5:14, 4:20] = 52.0  # bright cortex, called in part: 56 HU against 52 around it
    hu[:, 5:10, 8:18] = 56.0
    hu[:, 5:10, 22:32] = 65.0  # acute blood, 30 HU above the brain around it
    options = {"hu": hu, "min_median_hu": 50.0, "low_density_min_ml": 5.0}
    without = _add(np.zeros_like(call), call, **options)
    assert without.components_added == 2
    out = _add(np.zeros_like(call), call, **options, min_contrast_hu=15.0)
    assert out.components_added == 1 and out.components_refused == 1
    assert out.added[1:5, 5:10, 22:32].all() and not out.added[:, :, :20].any()
    large = _add(np.zeros_like(call), call, **{**options, "low_density_min_ml": 0.1}, min_contrast_hu=15.0)
    assert large.components_added == 2 and large.components_low_density == 1  # isodense: the low-density path


def test_a_large_hypodense_collection_is_added_with_low_density_min_ml_and_a_small_one_is_not() -> None:
    """A chronic subdural is large; the network's calls on real atrophic convexities are small."""
    call = np.zeros((6, 40, 40), dtype=bool)
    call[:, 5:10, 8:30] = True  # 4 slices x 5 x 22 = 440 voxels = 0.44 mL (slices 0 and 5 are not interior)
    call[:, 30:35, 12:20] = True  # 4 x 5 x 8 = 160 voxels = 0.16 mL
    hu = np.full(call.shape, 10.0, dtype=np.float32)
    out = _add(np.zeros_like(call), call, hu=hu, min_median_hu=45.0, low_density_min_ml=0.3)
    assert out.components_added == 1 and out.components_refused == 1
    assert out.added[1:5, 5:10, 8:30].all() and not out.added[:, 30:35].any()
    assert out.components_low_density == 1 and out.low_density_ml == pytest.approx(0.44)
    assert _add(np.zeros_like(call), call, hu=hu, min_median_hu=45.0).components_added == 0
    with pytest.raises(ValueError, match="'low_density_min_ml' must not be negative"):
        _add(np.zeros_like(call), call, hu=hu, min_median_hu=45.0, low_density_min_ml=-1.0)
    with pytest.raises(ValueError, match="'low_density_min_ml' must not be negative"):
        ExtraAxialConfig(low_density_min_ml=-1.0)


def test_a_low_density_call_joined_to_deep_found_blood_is_not_added_and_one_joined_to_a_shallow_one_is() -> None:
    """A large lobar clot painted into the real GE head: the call ran from it through the 37-48 HU brain to the
    table, too large for low_density_min_ml; the clot lay 17-25 mm deep. A subdural's dense part the first
    network found lies against the table, and its hypodense rest is still added."""
    call = np.zeros((6, 40, 40), dtype=bool)
    call[:, 4:26, 14:26] = True  # the clot and the brain between it and the table
    found = np.zeros_like(call)
    found[:, 14:26, 14:26] = True  # the clot: 11-16 mm inside the space's edge
    hu = np.where(found, 60.0, 35.0).astype(np.float32)
    options = {"hu": hu, "min_median_hu": 50.0, "low_density_min_ml": 0.3}
    without = _add(found, call, **options)
    assert without.components_low_density == 1 and without.added[1:5, 4:14, 14:26].all()
    out = _add(found, call, **options, low_density_max_found_depth_mm=8.0)
    assert out.components_added == 0 and not out.added.any()
    assert out.joined_deep_refused_ml == pytest.approx(4 * 10 * 12 * 0.001)  # interior slices 1-4
    assert _add(found, call, **options, low_density_max_found_depth_mm=20.0).components_low_density == 1
    # a subdural: its dense part (found) 2-4 mm inside the table, the hypodense rest beside it
    crescent = np.zeros_like(call)
    crescent[:, 4:12, 10:30] = True
    dense = np.zeros_like(call)
    dense[:, 5:8, 10:30] = True
    hu = np.where(dense, 60.0, 20.0).astype(np.float32)
    kept = _add(dense, crescent, hu=hu, min_median_hu=50.0, low_density_min_ml=0.3,
                low_density_max_found_depth_mm=8.0)
    assert kept.components_low_density == 1 and kept.joined_deep_refused_ml == 0.0
    assert kept.added[1:5, 8:12, 10:30].all()
    with pytest.raises(ValueError, match="'low_density_max_found_depth_mm' must be positive"):
        _add(found, call, **options, low_density_max_found_depth_mm=0.0)
    with pytest.raises(ValueError, match="'low_density_max_found_depth_mm' must be positive"):
        ExtraAxialConfig(low_density_max_found_depth_mm=-1.0)


def test_a_call_from_a_clot_away_from_the_table_adds_only_tissue_dense_enough_for_joined_min_median_hu() -> None:
    """A clot painted against the real GE head's posterior midline: the call ran from it over the sinus and dura
    band between it and the table; the clot's unread edge lifted what it added to 50-52 HU, over the 50 HU bar,
    and the clot read 45-61 % high with no flag. Blood the first network found on the table (a subdural's
    dense part) keeps the plain bar."""
    call = np.zeros((6, 40, 40), dtype=bool)
    call[:, 4:24, 14:26] = True  # the clot and the band between it and the table
    found = np.zeros_like(call)
    found[:, 12:24, 14:26] = True  # the clot: 8 mm or more inside the space's edge
    hu = np.where(found, 70.0, 52.0).astype(np.float32)
    plain = _add(found, call, hu=hu, min_median_hu=50.0)
    assert plain.components_added == 1 and plain.added[1:5, 4:12, 14:26].all()
    out = _add(found, call, hu=hu, min_median_hu=50.0, joined_min_median_hu=56.0)
    assert out.components_added == 0 and not out.added.any()
    # large enough to be a low-density collection, but joined to blood that deep: refused, not added
    deep = _add(found, call, hu=hu, min_median_hu=50.0, joined_min_median_hu=56.0, low_density_min_ml=0.3,
                low_density_max_found_depth_mm=6.0)
    assert not deep.added.any() and deep.joined_deep_refused_ml == pytest.approx(4 * 8 * 12 * 0.001)
    # acute blood between the clot and the table is still added
    dense = _add(found, call, hu=np.where(found, 70.0, 60.0).astype(np.float32), min_median_hu=50.0,
                 joined_min_median_hu=56.0)
    assert dense.components_added == 1 and dense.added[1:5, 4:12, 14:26].all()
    # found blood against the table: the plain bar
    on_table = np.zeros_like(call)
    on_table[:, 5:8, 14:26] = True
    kept = _add(on_table, call, hu=np.where(on_table, 70.0, 52.0).astype(np.float32), min_median_hu=50.0,
                joined_min_median_hu=56.0)
    assert kept.components_added == 1 and kept.components_low_density == 0
    with pytest.raises(ValueError, match="'joined_min_median_hu' needs 'min_median_hu'"):
        _add(found, call, hu=hu, joined_min_median_hu=56.0)
    with pytest.raises(ValueError, match="'joined_min_median_hu' needs 'min_median_hu'"):
        ExtraAxialConfig(min_median_hu=None)
    assert ExtraAxialConfig(min_median_hu=None, joined_min_median_hu=None).joined_min_median_hu is None


def test_a_call_from_a_clot_away_from_the_table_adds_only_the_clots_dense_rest() -> None:
    """The same clot 3.4 mm from the table: the first network read 8.4 of its 11.6 mL, and the call held the
    unread rest with the band, at a median of 62 HU; only the dense part joined to the clot is added."""
    call = np.zeros((6, 40, 40), dtype=bool)
    call[:, 4:24, 14:26] = True
    found = np.zeros_like(call)
    found[:, 16:24, 14:26] = True  # the part of the clot the first network read, 12 mm or more inside
    hu = np.full(call.shape, 30.0, dtype=np.float32)
    hu[:, 4:8, 14:26] = 48.0  # the band against the table
    hu[:, 8:24, 14:26] = 70.0  # the clot: its unread rest (rows 8-15) and what was found
    plain = _add(found, call, hu=hu, min_median_hu=50.0)
    assert plain.added[1:5, 4:16, 14:26].all()
    out = _add(found, call, hu=hu, min_median_hu=50.0, joined_min_median_hu=56.0)
    assert out.components_added == 1 and out.components_low_density == 0
    assert out.added[1:5, 9:16, 15:25].all() and not out.added[:, :8].any()  # (the 3 x 3 median rounds corners)


def test_a_call_running_from_the_blood_found_into_the_brain_is_not_added() -> None:
    """Real PHE-SICH patient 0037: the call ran from a 56 HU haematoma into the 31 HU brain between it and
    the table; the component touched the table, passed the acute test with the haematoma in it, and
    6.8 mL of brain was added, unflagged."""
    call = np.zeros((6, 40, 40), dtype=bool)
    call[:, 4:36, 4:36] = False
    call[:, 12:30, 12:30] = True  # the haematoma and the brain around it ...
    call[:, 4:12, 18:20] = True  # ... joined to the table by a narrow bridge (few voxels along it)
    found = np.zeros_like(call)
    found[:, 16:26, 16:26] = True  # the haematoma the first network found
    hu = np.where(found, 60.0, 30.0).astype(np.float32)
    out = _add(found, call, hu=hu)
    assert out.components_added == 0 and not out.added.any()
    # a rim along the table beside blood found against it is still added
    rim = np.zeros_like(call)
    rim[:, 4:8, 10:30] = True
    against = np.zeros_like(call)
    against[:, 8:14, 10:30] = True  # a haematoma against the table's rim
    out = _add(against, rim | against, hu=hu)
    assert out.components_added == 1 and out.added[1:5, 4:8, 10:30].all()


def test_the_density_and_size_tests_read_what_a_component_adds() -> None:
    """The real GE head: a call ran from a painted 65 HU lobar bleed against the table along the cortex
    beside it (42 HU); read whole, the component's median was the bleed's and 2.8 mL of cortex was added."""
    defaults = ExtraAxialConfig()
    found = np.zeros((6, 40, 40), dtype=bool)
    found[:, 4:14, 8:20] = True  # the lobar bleed the first network found, against the table
    strip = np.zeros_like(found)
    strip[:, 4:7, 20:34] = True  # the cortex along the table beside it
    hu = np.full(found.shape, 30.0, dtype=np.float32)
    hu[found] = 65.0
    hu[strip] = 42.0
    options = {"hu": hu, "min_median_hu": defaults.min_median_hu, "low_density_min_ml": defaults.low_density_min_ml}
    out = _add(found, found | strip, **options)
    assert out.components_added == 0 and not out.added.any()
    # the same call at acute density beside the bleed (a subdural beside it) is added
    hu[strip] = 60.0
    out = _add(found, found | strip, **options)
    assert out.components_added == 1 and out.added[1:5, 4:7, 20:34].all() and not out.added[found].any()
    # a large low-density collection is judged by its own size, not with the bleed's
    hu[strip] = 42.0
    out = _add(found, found | strip, **{**options, "low_density_min_ml": 0.1})
    assert out.components_added == 1 and out.components_low_density == 1
    assert _add(found, found | strip, **{**options, "low_density_min_ml": 0.2}).components_added == 0


def test_an_added_low_density_collection_grows_into_the_looser_call_connected_to_it() -> None:
    """A chronic collection is called only in part at the threshold; the looser call around it completes it."""
    hu = np.full((6, 40, 40), 10.0, dtype=np.float32)
    hu[:, 28:36, 8:30] = 70.0  # an acute collection on the other side
    call = np.zeros(hu.shape, dtype=bool)
    call[:, 5:10, 8:20] = True  # the part called at the threshold: 4 x 5 x 12 = 0.24 mL
    call[:, 30:35, 10:28] = True  # the acute one
    loose = call.copy()
    loose[:, 5:10, 20:30] = True  # the rest of the chronic collection, connected: 4 x 5 x 10 = 0.2 mL
    loose[:, 29:35, 10:28] = True  # the acute one's looser edge: never grown
    loose[:, 18:22, 18:22] = True  # a looser call in the brain, not connected: never added
    out = _add(np.zeros_like(call), call, hu=hu, min_median_hu=45.0, low_density_min_ml=0.1, grow_candidate=loose)
    assert out.components_added == 2 and out.components_low_density == 1
    assert out.added[1:5, 5:10, 8:30].all() and not out.added[:, 18:22, 18:22].any()
    assert not out.added[:, 29].any()
    assert out.low_density_grown_ml == pytest.approx(0.2) and out.low_density_ml == pytest.approx(0.44)
    without = _add(np.zeros_like(call), call, hu=hu, min_median_hu=45.0, low_density_min_ml=0.1)
    assert without.low_density_grown_ml == 0.0 and not without.added[:, :, 20:30][:, 5:10].any()
    # nothing grows where nothing was added
    none = _add(np.zeros_like(call), np.zeros_like(call), hu=hu, min_median_hu=45.0, low_density_min_ml=0.1,
                grow_candidate=loose)
    assert not none.added.any() and none.low_density_grown_ml == 0.0
    with pytest.raises(ValueError, match="'grow_candidate' must have the mask's shape"):
        _add(np.zeros_like(call), call, hu=hu, low_density_min_ml=0.1, grow_candidate=loose[:3])


def test_the_growth_threshold_must_lie_below_the_threshold() -> None:
    assert ExtraAxialConfig(low_density_grow_threshold=0.5).low_density_grow_threshold == 0.5
    for bad in (0.0, 0.6, -0.1):
        with pytest.raises(ValueError, match="'low_density_grow_threshold' must lie in"):
            ExtraAxialConfig(low_density_grow_threshold=bad)


def test_the_zone_along_the_table_follows_the_pixel_spacing() -> None:
    space = _space((1, 40, 40))
    fine = inner_table_zone(space, (0.5, 0.5), table_mm=2.0)  # 4 pixels deep
    coarse = inner_table_zone(space, (2.0, 2.0), table_mm=2.0)  # 1 pixel deep
    assert fine[0, 20, 4:8].all() and not fine[0, 20, 8] and coarse[0, 20, 4] and not coarse[0, 20, 5]
    assert not (fine & ~space).any()


def test_bad_arguments_are_refused() -> None:
    m = np.zeros((2, 8, 8), dtype=bool)
    with pytest.raises(ValueError, match="'mask' must be 3D"):
        add_extra_axial(m[0], m[0], intracranial=m[0], pixel_spacing_mm=(1, 1), voxel_volumes_ml=np.ones(2),
                        hu=m[0].astype(np.float32), hu_range=(0, 1))
    with pytest.raises(ValueError, match="'candidate' must have the mask's shape"):
        add_extra_axial(m, m[:1], intracranial=m, pixel_spacing_mm=(1, 1), voxel_volumes_ml=np.ones(2),
                        hu=m.astype(np.float32), hu_range=(0, 1))
    with pytest.raises(ValueError, match="'voxel_volumes_ml' must hold one volume per slice"):
        add_extra_axial(m, m, intracranial=m, pixel_spacing_mm=(1, 1), voxel_volumes_ml=np.ones(3),
                        hu=m.astype(np.float32), hu_range=(0, 1))
    with pytest.raises(ValueError, match="'table_mm' must be positive"):
        inner_table_zone(m, (1.0, 1.0), table_mm=0.0)
    with pytest.raises(ConfigError, match=r"'inference\.extra_axial': Argument 'min_ml'"):
        build_dataclass(InferenceConfig, {"extra_axial": {"min_ml": -1.0}}, prefix="inference")
    with pytest.raises(ValueError, match="'threshold' must lie strictly between 0 and 1"):
        ExtraAxialConfig(threshold=1.0)
    with pytest.raises(ConfigError, match=r"'inference\.extra_axial': Argument 'narrow_slices' must be 'skip' or"):
        build_dataclass(InferenceConfig, {"extra_axial": {"narrow_slices": "all"}}, prefix="inference")


# --------------------------------------------------------------------------- inside the network segmenter


@pytest.fixture
def collection_volume(make_head):
    """12 slices 64 x 64: skull, brain at 40 HU, a 70 HU band on the inner table, a 70 HU blob deep inside."""

    def paint(img, yy, xx, r, i):
        if 3 <= i <= 8:
            img[(r < 22) & (r >= 13) & (yy < 26)] = 70.0  # against the table, front of the head
            img[np.hypot(yy - 38, xx - 30) < 5] = 70.0  # deep

    return make_head(paint)


def test_the_segmenter_adds_the_collection_on_the_table_through_the_second_networks_window(
        tmp_path: Path, collection_volume) -> None:
    base = tiny_checkpoint(tmp_path / "base.pt", {"width": 80.0, "level": 40.0})
    extra = tiny_checkpoint(tmp_path / "extra.pt", {"width": 120.0, "level": 50.0})
    cfg = InferenceConfig(device="cpu", runtime="torch", end_extension=EndExtensionConfig(checkpoint=""),
                          extra_axial=ExtraAxialConfig(checkpoint=str(extra), min_ml=0.01))
    seg = NetworkSegmenter(base, config=cfg)
    assert seg.extra_axial is not None and seg.extra_axial.extra_axial is None
    seg.runner = Grey(None)  # the first network finds nothing
    seg.extra_axial.runner = Grey((70.0 + 10.0) / 120.0)  # 70 HU through W120/L50 (not through W80/L40: 0.875)
    result = seg.segment_in(collection_volume)
    hu = collection_volume.hu
    band = hu == 70.0
    band[:, 30:] = False
    assert result.mask.any() and not (result.mask & ~band).any() and result.mask[3:9].sum() > 0.8 * band.sum()
    assert result.details["extra_axial"]["components_added"] == 1
    assert result.details["extra_axial"]["components_refused"] == 1  # the deep blob
    assert result.details["extra_axial"]["components_low_density"] == 0
    described = seg.describe()["extra_axial"]
    assert described["checkpoint_sha256"] == file_sha256(extra)
    assert described["window"] == {"width": 120.0, "level": 50.0}
    assert described["min_median_hu"] == 50.0 and described["low_density_min_ml"] == 5.0


def _extra_axial_details(tmp_path: Path, volume, network, **options) -> dict:
    """``details["extra_axial"]`` (and ``describe()``'s, as ``"described"``) of a segmenter whose first network
    finds nothing and whose extra-axial network is ``network`` (a stand-in), with ``options`` for the step."""
    base = tiny_checkpoint(tmp_path / "base.pt", {"width": 80.0, "level": 40.0})
    extra = tiny_checkpoint(tmp_path / "extra.pt", {"width": 120.0, "level": 50.0})
    cfg = InferenceConfig(device="cpu", runtime="torch", end_extension=EndExtensionConfig(checkpoint=""),
                          extra_axial=ExtraAxialConfig(checkpoint=str(extra), min_ml=0.01, **options))
    seg = NetworkSegmenter(base, config=cfg)
    assert seg.extra_axial is not None
    seg.runner = Grey(None)
    seg.extra_axial.runner = network
    return {**seg.segment_in(volume).details["extra_axial"], "described": seg.describe()["extra_axial"]}


def test_a_large_hypodense_collection_is_added_and_reported_through_the_segmenter(tmp_path: Path, make_head) -> None:
    def paint(img, yy, xx, r, i):
        if 3 <= i <= 8:
            img[(r < 22) & (r >= 13) & (yy < 26)] = 15.0  # a chronic collection against the table

    volume = make_head(paint)
    found = {low_ml: _extra_axial_details(tmp_path, volume, Grey((15.0 + 10.0) / 120.0), low_density_min_ml=low_ml)
             for low_ml in (None, 0.01)}
    assert found[None]["components_added"] == 0 and found[None]["low_density_ml"] == 0.0
    assert found[0.01]["components_added"] == found[0.01]["components_low_density"] == 1
    assert found[0.01]["low_density_ml"] == pytest.approx(found[0.01]["added_ml"]) and found[0.01]["added_ml"] > 0


def test_the_segmenter_grows_a_low_density_collection_with_the_growth_threshold(tmp_path: Path, make_head) -> None:
    def paint(img, yy, xx, r, i):
        if 3 <= i <= 8:
            img[(r < 22) & (r >= 13) & (yy < 26) & (xx < 32)] = 15.0  # called surely
            img[(r < 22) & (r >= 13) & (yy < 26) & (xx >= 32)] = 5.0  # called loosely (0.4)

    volume = make_head(paint)
    network = TwoLevel((15.0 + 10.0) / 120.0, (5.0 + 10.0) / 120.0)
    found = {grow: _extra_axial_details(tmp_path, volume, network, low_density_min_ml=0.01,
                                        low_density_grow_threshold=grow) for grow in (None, 0.3)}
    assert found[None]["described"]["low_density_grow_threshold"] is None
    assert found[0.3]["described"]["low_density_grow_threshold"] == 0.3
    assert found[None]["low_density_grown_ml"] == 0.0 and found[None]["added_ml"] > 0
    assert found[0.3]["low_density_grown_ml"] > 0
    assert found[0.3]["added_ml"] == pytest.approx(found[None]["added_ml"] + found[0.3]["low_density_grown_ml"])
    assert found[0.3]["low_density_ml"] == pytest.approx(found[0.3]["added_ml"])


def test_a_missing_or_untrusted_extra_axial_checkpoint_is_refused(tmp_path: Path) -> None:
    base = tiny_checkpoint(tmp_path / "base.pt", {"width": 80.0, "level": 40.0})
    cfg = InferenceConfig(device="cpu", runtime="torch", end_extension=EndExtensionConfig(checkpoint=""),
                          extra_axial=ExtraAxialConfig(checkpoint=str(tmp_path / "nowhere.pt")))
    with pytest.raises(CheckpointError, match=r"extra_axial\.checkpoint .*nowhere\.pt does not exist"):
        NetworkSegmenter(base, config=cfg)
    extra = tiny_checkpoint(tmp_path / "extra.pt", {"width": 120.0, "level": 50.0})
    cfg = InferenceConfig(device="cpu", runtime="torch", end_extension=EndExtensionConfig(checkpoint=""),
                          extra_axial=ExtraAxialConfig(checkpoint=str(extra)))
    with pytest.raises(CheckpointError, match=r"Extra-axial checkpoint .* is not in models\.checkpoint_sha256"):
        NetworkSegmenter(base, config=cfg, allowed_sha256=(file_sha256(base),))


def test_the_segmenter_holds_a_call_from_a_clot_away_from_the_table_to_joined_min_median_hu(
        tmp_path: Path, make_head) -> None:
    def paint(img, yy, xx, r, i):
        if 3 <= i <= 8:
            img[(r >= 13) & (r < 22) & (np.abs(xx - 30) < 6) & (yy < 23)] = 52.0  # tissue between clot and table
            img[np.hypot(yy - 23, xx - 30) < 4] = 70.0  # the clot, 4.5 mm inside the table

    volume = make_head(paint)
    base = tiny_checkpoint(tmp_path / "base.pt", {"width": 80.0, "level": 40.0})
    extra = tiny_checkpoint(tmp_path / "extra.pt", {"width": 120.0, "level": 50.0})
    found = {}
    for bar in (None, 56.0):
        cfg = InferenceConfig(device="cpu", runtime="torch", end_extension=EndExtensionConfig(checkpoint=""),
                              extra_axial=ExtraAxialConfig(checkpoint=str(extra), min_ml=0.01,
                                                           joined_min_median_hu=bar))
        seg = NetworkSegmenter(base, config=cfg)
        assert seg.extra_axial is not None
        seg.runner = Grey(70.0 / 80.0)  # the clot through W80/L40
        seg.extra_axial.runner = Grey(80.0 / 120.0, 62.0 / 120.0)  # the clot and the tissue through W120/L50
        found[bar] = {**seg.segment_in(volume).details["extra_axial"], "described": seg.describe()["extra_axial"]}
    assert found[None]["components_added"] == 1 and found[None]["added_ml"] > 0
    assert found[56.0]["components_added"] == 0 and found[56.0]["added_ml"] == 0.0
    assert found[56.0]["described"]["joined_min_median_hu"] == 56.0
