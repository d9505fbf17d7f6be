"""Reading a clot's less dense side with a network trained on blend signs (inference.blend_side)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from network_stand_ins import Grey, tiny_checkpoint

from ichpipe.errors import CheckpointError
from ichpipe.models.hashing import file_sha256
from ichpipe.pipeline.config.inference_config import (
    BlendSideConfig,
    EndExtensionConfig,
    ExtraAxialConfig,
    InferenceConfig,
)
from ichpipe.pipeline.config.quality_config import BlendSideCheckConfig
from ichpipe.pipeline.quality.blood_checks import check_blend_side
from ichpipe.pipeline.segment.blend_side import BlendSideRead, read_blend_side, with_blend_side, with_uncounted_side
from ichpipe.pipeline.segment.inference import NetworkSegmenter
from ichpipe.pipeline.segment.segmenter import SegmentationResult

VOXEL_ML = 0.001


def _clot(side_hu: float = 42.0, clot_hu: float = 70.0) -> tuple[np.ndarray, np.ndarray]:
    """Brain at 30 HU, a dense clot on slices 2-4 and its side beside it; the found blood is the dense part."""
    hu = np.full((7, 30, 30), 30.0, dtype=np.float32)
    hu[2:5, 8:16, 8:16] = clot_hu
    hu[2:5, 8:16, 16:21] = side_hu
    return hu, hu >= 60


def _read(found: np.ndarray, hu: np.ndarray, call: np.ndarray | None = None, **options):
    call = np.ones(hu.shape, dtype=bool) if call is None else call
    asked: list[list[int]] = []

    def network(slices):
        asked.append(list(slices))
        return call[list(slices)]

    settings = {"min_hu": 33.0, "max_hu": 55.0, "min_clot_median_hu": 55.0, **options}
    return read_blend_side(found, network, hu, voxel_volumes_ml=VOXEL_ML, **settings), asked


def test_the_side_joined_to_the_dense_clot_is_read_on_the_clots_slices_only() -> None:
    hu, found = _clot()
    read, asked = _read(found, hu)
    side = (hu == 42.0)
    assert asked == [[2, 3, 4]]
    # the side but its outer corners (their 3x3 median is the brain's), not the brain around the clot
    assert read.side[side].mean() > 0.9 and not (read.side & ~side).any()
    assert read.side_ml == pytest.approx(read.side.sum() * VOXEL_ML) and read.slices_run == 3


def test_brain_beside_the_clot_a_piece_apart_and_what_the_network_does_not_call_are_not_read() -> None:
    hu, found = _clot(side_hu=30.0)  # no side: brain density beside the clot
    assert not _read(found, hu)[0].side.any()
    hu, found = _clot()
    hu[2:5, 24:28, 24:28] = 45.0  # tissue of the side's density, not joined to the clot
    read, _ = _read(found, hu)
    assert not read.side[:, 24:28, 24:28].any() and read.side.any()
    call = np.zeros(hu.shape, dtype=bool)
    assert _read(found, hu, call)[0].side_ml == 0.0


def test_a_faint_found_bleed_has_no_dense_part_and_nothing_is_read() -> None:
    hu, _ = _clot(clot_hu=50.0)
    found = hu == 50.0
    read, asked = _read(found, hu)
    assert read.side_ml == 0.0 and read.slices_run == 0 and asked == []


def test_allowed_limits_what_is_read() -> None:
    hu, found = _clot()
    allowed = np.ones(hu.shape, dtype=bool)
    allowed[:, :, 18:] = False
    read, _ = _read(found, hu, allowed=allowed)
    assert read.side.any() and not read.side[:, :, 18:].any()


def test_bad_arguments_are_refused() -> None:
    hu, found = _clot()
    with pytest.raises(ValueError, match="'found' and 'hu' must be 3D of one shape"):
        _read(found[0], hu)
    with pytest.raises(ValueError, match="'min_hu' must be below 'max_hu'"):
        _read(found, hu, min_hu=55.0, max_hu=33.0)
    with pytest.raises(ValueError, match="'threshold' must lie strictly between 0 and 1"):
        BlendSideConfig(threshold=1.0)
    with pytest.raises(ValueError, match="'min_hu' and 'max_hu' must be HU values"):
        BlendSideConfig(min_hu=50.0, max_hu=40.0)
    with pytest.raises(ValueError, match="'min_ml' must be a number >= 0"):
        BlendSideCheckConfig(min_ml=-1.0)


def test_the_flag_names_a_side_not_counted_and_only_when_it_is_large() -> None:
    flags = check_blend_side({"side_ml": 2.0, "uncounted_ml": 1.5}, 6.0)
    assert [f.code for f in flags] == ["blend_side"] and "1.5 mL" in flags[0].message
    assert flags[0].value == 0.25
    assert check_blend_side({"side_ml": 0.4, "uncounted_ml": 0.4}, 1.0) == []  # under min_ml
    assert check_blend_side({"side_ml": 0.8, "uncounted_ml": 0.8}, 10.0) == []  # under min_fraction
    assert check_blend_side({"side_ml": 1.5, "uncounted_ml": 0.0}, 7.5) == []  # counted (added, or by later steps)


# --------------------------------------------------------------------------- inside the network segmenter


@pytest.fixture
def clot_volume(make_head):
    """12 slices 64 x 64: skull, brain at 40 HU, a 70 HU clot with a 42 HU side on slices 4-7."""

    def paint(img, yy, xx, r, i):
        if 4 <= i <= 7:
            img[(np.hypot(yy - 32, xx - 28) < 6)] = 70.0
            img[(np.hypot(yy - 32, xx - 28) >= 6) & (np.hypot(yy - 32, xx - 28) < 10) & (xx > 30)] = 42.0

    return make_head(paint)


@pytest.mark.parametrize("add", [False, True])
def test_the_segmenter_measures_the_side_and_adds_it_only_when_asked(tmp_path: Path, clot_volume, add: bool) -> None:
    base = tiny_checkpoint(tmp_path / "base.pt", {"width": 80.0, "level": 40.0})
    blend = tiny_checkpoint(tmp_path / "blend.pt", {"width": 80.0, "level": 40.0})
    cfg = InferenceConfig(device="cpu", runtime="torch", end_extension=EndExtensionConfig(checkpoint=""),
                          extra_axial=ExtraAxialConfig(checkpoint=""), loose_threshold=None, faint_max_median_hu=None,
                          rim_mm=None, enclosed_close_mm=None,
                          blend_side=BlendSideConfig(checkpoint=str(blend), add=add))
    seg = NetworkSegmenter(base, config=cfg)
    assert seg.blend_reader is not None and seg.blend_reader.blend_reader is None
    seg.runner = Grey((70.0 - 0.0) / 80.0)  # the main network finds the dense part (70 HU in W80/L40)
    seg.blend_reader.runner = Grey((42.0 - 0.0) / 80.0)  # the blend network calls the side
    result = seg.segment_in(clot_volume)
    side = clot_volume.hu == 42.0
    details = result.details["blend_side"]
    assert details["side_ml"] > 0 and details["slices_run"] == 4
    assert details["added_ml"] == (details["side_ml"] if add else 0.0)
    assert details["uncounted_ml"] == (0.0 if add else details["side_ml"])
    assert bool((result.mask & side).any()) is add
    described = seg.describe()["blend_side"]
    assert described["add"] is add and described["checkpoint_sha256"] == seg.blend_reader.checkpoint_sha256


def test_what_later_steps_take_of_the_side_is_not_left_uncounted(make_head) -> None:
    volume = make_head()
    side = np.zeros(volume.hu.shape, dtype=bool)
    side[5, 20:30, 20:30] = True
    read = BlendSideRead(side=side, side_ml=1.0, slices_run=1)
    result = with_blend_side(SegmentationResult(mask=np.zeros_like(side)), read, volume, add=False)
    taken = result.mask.copy()
    taken[5, 20:25, 20:30] = True  # e.g. the partial-volume rim grown afterwards
    final = with_uncounted_side(replace(result, mask=taken), read, volume)
    voxel_ml = float(np.asarray(volume.geometry.voxel_volumes_ml).reshape(-1)[5])
    assert final.details["blend_side"]["uncounted_ml"] == pytest.approx(50 * voxel_ml, abs=1e-4)
    assert final.details["blend_side"]["side_ml"] == 1.0 and final.details["blend_side"]["added_ml"] == 0.0


def test_a_missing_or_untrusted_blend_side_checkpoint_is_refused(tmp_path: Path) -> None:
    base = tiny_checkpoint(tmp_path / "base.pt", {"width": 80.0, "level": 40.0})
    off = {"end_extension": EndExtensionConfig(checkpoint=""), "extra_axial": ExtraAxialConfig(checkpoint="")}
    cfg = InferenceConfig(device="cpu", runtime="torch", **off,
                          blend_side=BlendSideConfig(checkpoint=str(tmp_path / "nowhere.pt")))
    with pytest.raises(CheckpointError, match=r"blend_side\.checkpoint .*nowhere\.pt does not exist"):
        NetworkSegmenter(base, config=cfg)
    blend = tiny_checkpoint(tmp_path / "blend.pt", {"width": 80.0, "level": 41.0})  # not base's bytes
    assert file_sha256(blend) != file_sha256(base)
    cfg = InferenceConfig(device="cpu", runtime="torch", **off, blend_side=BlendSideConfig(checkpoint=str(blend)))
    with pytest.raises(CheckpointError, match=r"Blend-side checkpoint .* is not in models\.checkpoint_sha256"):
        NetworkSegmenter(base, config=cfg, allowed_sha256=(file_sha256(base),))
    assert NetworkSegmenter(base, config=cfg, allowed_sha256=(file_sha256(base), file_sha256(blend))).blend_reader
    assert NetworkSegmenter(base, config=replace(cfg, blend_side=BlendSideConfig(checkpoint=""))).blend_reader is None
