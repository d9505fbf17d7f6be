"""``inference.dense_ends``: found bleeds grown beyond their end slices while clot density lies under them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from network_stand_ins import Grey, tiny_checkpoint

from ichpipe.pipeline.config import load_config
from ichpipe.pipeline.config.inference_config import (
    BlendSideConfig,
    DenseEndsConfig,
    EndExtensionConfig,
    ExtraAxialConfig,
    InferenceConfig,
)
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume
from ichpipe.pipeline.segment.components import mask_volume_ml
from ichpipe.pipeline.segment.end_extension import continue_dense_ends, fill_between_slices

BRAIN_HU, CLOT_HU = 35.0, 70.0


def _column(levels: list[float], *, size: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(HU, mask, allowed) of slices 1 mm square pixels, 5 mm apart: a 12x12 square of ``levels[i]`` HU on
    slice ``i`` (brain elsewhere); the mask holds it on the last slice only; everything is allowed."""
    hu = np.full((len(levels), size, size), BRAIN_HU, np.float32)
    for i, level in enumerate(levels):
        hu[i, 14:26, 14:26] = level
    mask = np.zeros(hu.shape, bool)
    mask[-1, 14:26, 14:26] = True
    return hu, mask, np.ones(hu.shape, bool)


def _grow(mask: np.ndarray, hu: np.ndarray, allowed: np.ndarray | None, **options):
    return continue_dense_ends(mask, hu, offsets_mm=np.arange(len(hu)) * 5.0, pixel_spacing_mm=(1.0, 1.0),
                               allowed=allowed, **options)


def test_clot_density_under_a_found_end_is_added_up_to_depth_mm() -> None:
    hu, mask, allowed = _column([CLOT_HU] * 5)
    grown = _grow(mask, hu, allowed, depth_mm=10.0)
    assert grown.slices_extended == (2, 3)  # 5 and 10 mm beyond the end; 15 mm is too far
    core = np.zeros(hu.shape[1:], bool)
    core[15:25, 15:25] = True  # the square's edge pixels smooth under 60 HU
    assert (grown.added[3] == core).all() and (grown.added[2] == core).all()
    assert not grown.added[:2].any() and (grown.mask == mask | grown.added).all()
    assert _grow(mask, hu, allowed, depth_mm=0.0).slices_extended == (3,)  # always the next slice


def test_grey_matter_calcification_and_partial_volume_under_an_end_are_not_added() -> None:
    for level in (45.0, 55.0, 110.0):  # brighter grey matter, a partial-volume end, a calcification
        hu, mask, allowed = _column([CLOT_HU, CLOT_HU, level, CLOT_HU])
        grown = _grow(mask, hu, allowed)
        assert not grown.added.any(), level  # the walk stops at the first slice with nothing to add


def test_dense_tissue_away_from_the_blood_or_at_the_inner_table_is_not_added() -> None:
    hu, mask, allowed = _column([BRAIN_HU, BRAIN_HU])
    hu[0, 2:12, 2:12] = CLOT_HU  # dense, but more than radius_mm from the blood on the slice after
    assert not _grow(mask, hu, allowed).added.any()
    hu, mask, allowed = _column([CLOT_HU, CLOT_HU])
    allowed[:, :, 20:] = False  # the intracranial space ends in the middle of the clot
    added = _grow(mask, hu, allowed, edge_mm=3.0).added[0]
    assert added[:, 17].any() and not added[:, 18:].any()  # 3 mm and more from column 20, outside the space
    assert not _grow(mask, hu, allowed, min_area_mm2=200.0).added.any()  # a piece under min_area_mm2


def test_the_walk_stops_where_the_mask_holds_blood_and_goes_one_way_when_told() -> None:
    hu, mask, allowed = _column([CLOT_HU] * 4)
    mask[1, 14:26, 14:26] = True  # two components, slices 1 and 3, the clot unread on slice 2 between them
    assert _grow(mask, hu, allowed).slices_extended == (0, 2)  # slice 2 from either; each stops at the other
    assert _grow(mask, hu, allowed, step=1).slices_extended == (2,)  # only beyond the upper end (of slice 1)
    assert _grow(mask, hu, allowed, step=-1).slices_extended == (0, 2)  # beyond slice 1's and slice 3's lower ends
    assert _grow(np.zeros_like(mask), hu, allowed).slices_extended == ()


def test_min_cover_keeps_a_clot_going_on_under_its_section_and_refuses_a_strip_beside_it() -> None:
    """Near the vertex the real GE head's cortex reads 66 HU just inside the obliquely cut table: under a
    found clot's end it lies in a strip, where a clot going on lies under most of the section."""
    hu, mask, allowed = _column([BRAIN_HU, CLOT_HU])
    strip = np.full(hu.shape, BRAIN_HU, np.float32)
    strip[0, 14:26, 14:18] = CLOT_HU  # 4 of the 12 columns under the found blood
    strip[1, 14:26, 14:26] = CLOT_HU
    for cover, clot_slices, strip_slices in ((0.0, (0,), (0,)), (0.5, (0,), ())):
        hu_clot = hu.copy()
        hu_clot[0, 14:26, 14:26] = CLOT_HU
        assert _grow(mask, hu_clot, allowed, min_cover=cover).slices_extended == clot_slices
        assert _grow(mask, strip, allowed, min_cover=cover).slices_extended == strip_slices
    with pytest.raises(ValueError, match="'min_cover' must lie between 0 and 1"):
        _grow(mask, hu, allowed, min_cover=1.5)
    with pytest.raises(ValueError, match="'head_min_cover' must lie between 0 and 1"):
        DenseEndsConfig(head_min_cover=-0.1)


def test_fill_end_fills_an_end_slice_read_in_part_under_the_blood_above() -> None:
    hu, mask, allowed = _column([BRAIN_HU, CLOT_HU, CLOT_HU])
    mask[1, 14:26, 14:26] = True
    mask[1, 14:26, 18:26] = False  # the lower end read in part: a 12 x 4 strip of the 12 x 12 section
    hu[1, 30:36, 30:36] = CLOT_HU  # clot density on that slice, apart from the blood above
    plain = _grow(mask, hu, allowed, step=-1)
    assert not plain.added.any()  # the walk finds brain below; the end slice itself is left as read
    filled = _grow(mask, hu, allowed, step=-1, fill_end=True)
    core = np.zeros(hu.shape[1:], bool)
    core[15:25, 15:25] = True  # the section's edge pixels smooth under 60 HU
    assert (filled.added[1] == core & ~mask[1]).all() and filled.slices_extended == (1,)
    assert not filled.added[0].any() and not filled.added[2].any()
    assert not _grow(mask, hu, allowed, step=1, fill_end=True).added[1].any()  # only ends walked from are filled


def _between(mask: np.ndarray, hu: np.ndarray, allowed: np.ndarray | None, **options):
    return fill_between_slices(mask, hu, pixel_spacing_mm=(1.0, 1.0), allowed=allowed, **options)


def test_fill_between_fills_each_slice_under_the_blood_beside_it_and_adds_no_slice() -> None:
    hu, mask, allowed = _column([BRAIN_HU, CLOT_HU, CLOT_HU, CLOT_HU, BRAIN_HU])
    mask[1:4, 14:26, 14:26] = True
    mask[2, 14:26, 18:26] = False  # the middle slice read in part
    hu[2, 30:36, 30:36] = CLOT_HU  # clot density on it, apart from the blood beside it
    hu[[0, 4], 14:26, 14:26] = CLOT_HU  # and on the slices beyond, which hold no blood
    allowed[2, :, 24:] = False  # outside the space
    filled = _between(mask, hu, allowed, edge_mm=0.0)
    core = np.zeros(hu.shape[1:], bool)
    core[15:25, 15:24] = True  # the section's edge pixels smooth under 60 HU; none outside the space
    assert (filled.added[2] == core & ~mask[2]).all() and filled.slices_extended == (2,)
    assert (filled.mask == mask | filled.added).all()
    assert not _between(np.zeros_like(mask), hu, allowed).added.any()  # no blood, nothing to fill


def test_fill_between_goes_on_from_what_a_pass_filled_in_the_next_pass() -> None:
    hu, mask, allowed = _column([CLOT_HU, CLOT_HU, CLOT_HU])
    mask[:2, 14:26, 14:18] = True  # read in a 4-pixel strip on the first two slices, whole on the last
    once = _between(mask, hu, allowed, rounds=1)
    twice = _between(mask, hu, allowed, rounds=2)
    assert once.added[1].sum() > 0 and twice.added[0].sum() > once.added[0].sum()
    core = np.zeros(hu.shape[1:], bool)
    core[15:25, 15:25] = True
    assert (twice.mask[0] == core | mask[0]).all()
    # the head toward slice 0: slice 0 is the bleed's upper end, never filled (cortex under the oblique table)
    headward = _between(mask, hu, allowed, rounds=2, head_step=-1)
    assert not headward.added[0].any() and (headward.mask[1] == core | mask[1]).all()
    assert (_between(mask, hu, allowed, rounds=2, head_step=1).added == twice.added).all()


def test_bad_arguments_are_refused() -> None:
    hu, mask, allowed = _column([CLOT_HU, CLOT_HU])
    with pytest.raises(ValueError, match="'hu_band' and 'hu_range' must be"):
        _grow(mask, hu, allowed, hu_band=(90.0, 60.0))
    with pytest.raises(ValueError, match="'edge_mm' and 'min_area_mm2' must not be negative"):
        _grow(mask, hu, allowed, edge_mm=-1.0)
    with pytest.raises(ValueError, match="must have the mask's shape"):
        _grow(mask, hu[:, :, :10], allowed)
    with pytest.raises(ValueError, match="'min_hu' and 'max_hu' must be HU values"):
        DenseEndsConfig(min_hu=95.0)
    with pytest.raises(ValueError, match="'depth_mm' must not be negative"):
        DenseEndsConfig(depth_mm=-5.0)
    with pytest.raises(ValueError, match="'toward' must be 'feet' or 'both'"):
        DenseEndsConfig(toward="head")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'step' must be 1, -1 or None"):
        _grow(mask, hu, allowed, step=2)
    with pytest.raises(ValueError, match="'head_step' must be 1, -1 or None"):
        _between(mask, hu, allowed, head_step=0)
    with pytest.raises(ValueError, match="'rounds' must be at least 1"):
        _between(mask, hu, allowed, rounds=0)
    with pytest.raises(ValueError, match="must be 3D of one shape"):
        _between(mask, hu[:, :, :10], allowed)
    with pytest.raises(ValueError, match="'radius_mm' \\(positive\\)"):
        _between(mask, hu, allowed, radius_mm=0.0)
    with pytest.raises(ValueError, match="'fill_between_rounds' must not be negative"):
        DenseEndsConfig(fill_between_rounds=-1)


def _lower_slices_unread(img, yy, xx, r, i) -> None:
    if 3 <= i <= 7:  # a clot of 75 HU the stand-in network reads on slices 6-7 only (drawn at 60 HU there)
        img[(np.abs(yy - 30) < 5) & (np.abs(xx - 24) < 5)] = 60.0 if i >= 6 else 75.0


def test_the_segmenter_grows_the_bleed_into_the_slices_it_read_empty(tmp_path: Path, make_head) -> None:
    volume = make_head(_lower_slices_unread)
    base = tiny_checkpoint(tmp_path / "base.pt", {"width": 80.0, "level": 40.0})
    found = {}
    for min_hu in (None, 60.0):
        cfg = InferenceConfig(device="cpu", runtime="torch", mirror=False, loose_threshold=None,
                              faint_max_median_hu=None, rim_mm=None, end_extension=EndExtensionConfig(checkpoint=""),
                              extra_axial=ExtraAxialConfig(checkpoint=""), blend_side=BlendSideConfig(checkpoint=""),
                              dense_ends=DenseEndsConfig(min_hu=min_hu, depth_mm=100.0, edge_mm=0.0,
                                                         min_area_mm2=0.0))
        from ichpipe.pipeline.segment.inference import NetworkSegmenter

        seg = NetworkSegmenter(base, config=cfg)
        seg.runner = Grey(60.0 / 80.0)
        found[min_hu] = seg.segment_in(volume)
        assert ("dense_ends" in seg.describe()) == (min_hu is not None)
        analysis = analyse_volume(volume, seg, replace(load_config(), inference=cfg))  # the report says it too
        assert ("dense_ends" in analysis.quality.measurements) == (min_hu is not None)
    read = found[None].mask
    assert sorted({int(z) for z in np.flatnonzero(read.any(axis=(1, 2)))}) == [6, 7]
    assert "dense_ends" not in found[None].details
    added = found[60.0].mask & ~read
    assert sorted({int(z) for z in np.flatnonzero(added.any(axis=(1, 2)))}) == [3, 4, 5]
    assert (added <= (volume.hu == 75.0)).all()
    said = found[60.0].details["dense_ends"]
    assert said["slices_extended"] == 3
    assert said["added_ml"] == pytest.approx(mask_volume_ml(added, volume.geometry.voxel_volumes_ml), rel=1e-3)


def _middle_slice_read_in_part(img, yy, xx, r, i) -> None:
    if 3 <= i <= 8:  # a clot the stand-in network reads where it is drawn at 60 HU: all but slice 5's right half
        square = (np.abs(yy - 30) < 6) & (np.abs(xx - 26) < 6)
        img[square] = 60.0
        if i == 5:
            img[square & (xx >= 26)] = 75.0


def test_the_segmenter_fills_a_slice_it_read_in_part_under_the_slices_beside_it(tmp_path: Path, make_head) -> None:
    volume = make_head(_middle_slice_read_in_part)
    base = tiny_checkpoint(tmp_path / "base.pt", {"width": 80.0, "level": 40.0})
    found = {}
    for rounds in (0, 2):
        cfg = InferenceConfig(device="cpu", runtime="torch", mirror=False, loose_threshold=None,
                              faint_max_median_hu=None, rim_mm=None, end_extension=EndExtensionConfig(checkpoint=""),
                              extra_axial=ExtraAxialConfig(checkpoint=""), blend_side=BlendSideConfig(checkpoint=""),
                              dense_ends=DenseEndsConfig(edge_mm=0.0, min_area_mm2=0.0,
                                                         fill_between_rounds=rounds))
        from ichpipe.pipeline.segment.inference import NetworkSegmenter

        seg = NetworkSegmenter(base, config=cfg)
        seg.runner = Grey(60.0 / 80.0)
        found[rounds] = seg.segment_in(volume)
        assert seg.describe()["dense_ends"]["fill_between_rounds"] == rounds
    half = (volume.hu[5] == 75.0)
    assert not (found[0].mask[5] & half).any()  # as read: the right half missing
    added = found[2].mask & ~found[0].mask
    assert sorted({int(z) for z in np.flatnonzero(added.any(axis=(1, 2)))}) == [5]
    assert (added[5] <= half).all() and added[5].sum() >= 0.5 * half.sum()
    assert found[2].details["dense_ends"]["added_ml"] == pytest.approx(
        mask_volume_ml(added, volume.geometry.voxel_volumes_ml), rel=1e-3)
