"""``inference.rim_mm``: a bleed's blurred outer edge grown in plane from a HU floor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from network_stand_ins import Grey, tiny_checkpoint
from scipy import ndimage

from ichpipe.pipeline.config.inference_config import EndExtensionConfig, ExtraAxialConfig, InferenceConfig
from ichpipe.pipeline.segment.components import mask_volume_ml
from ichpipe.pipeline.segment.edge_rim import grow_rim
from ichpipe.pipeline.segment.inference import NetworkSegmenter

BRAIN_HU, CLOT_HU = 35.0, 66.0


def _disc(blur_px: float, *, size: int = 64, radius: float = 12.0) -> tuple[np.ndarray, np.ndarray]:
    """(HU, truth) of one slice holding a clot disc whose edge is blurred by ``blur_px`` (Gaussian sigma)."""
    yy, xx = np.mgrid[:size, :size]
    truth = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= radius**2
    occupancy = ndimage.gaussian_filter(truth.astype(np.float64), blur_px) if blur_px else truth.astype(float)
    hu = BRAIN_HU + occupancy * (CLOT_HU - BRAIN_HU)
    return hu[None].astype(np.float32), truth[None]


def _grow(mask: np.ndarray, hu: np.ndarray, **options) -> np.ndarray:
    kwargs = {"pixel_spacing_mm": (0.5, 0.5), "rim_mm": 1.0, "min_hu": 42.0, "max_hu": 120.0, "bone_hu": 300.0}
    return grow_rim(mask, hu, **{**kwargs, **options}).mask


def test_a_blurred_edge_gains_its_rim_and_a_sharp_one_nothing() -> None:
    blurred, _ = _disc(2.0)
    found = blurred >= 55.0  # a line drawn near the middle of the fall, as the network draws it
    grown = _grow(found, blurred)
    rim = grown & ~found
    assert rim.sum() > 0.15 * found.sum()
    assert blurred[rim].min() >= 42.0 and not (grown & (blurred < 42.0)).any()
    # never further than two one-pixel steps (1 mm at 0.5 mm)
    assert not (grown & ~ndimage.binary_dilation(found[0], np.ones((3, 3), bool), iterations=2)[None]).any()
    sharp, truth = _disc(0.0)
    np.testing.assert_array_equal(_grow(truth, sharp), truth)


def test_the_steps_follow_the_pixel_size_and_the_growth_stays_on_its_slice() -> None:
    hu = np.full((3, 21, 21), 50.0, np.float32)
    mask = np.zeros(hu.shape, bool)
    mask[1, 10, 10] = True
    for pixel, steps in ((0.45, 2), (0.9, 1), (0.25, 4)):
        out = grow_rim(mask, hu, pixel_spacing_mm=(pixel, pixel), rim_mm=1.0, min_hu=42.0, max_hu=120.0,
                       bone_hu=300.0)
        assert out.steps == steps
        assert out.mask[1].sum() == (2 * steps + 1) ** 2
        assert not out.mask[0].any() and not out.mask[2].any()
        np.testing.assert_array_equal(out.added, out.mask & ~mask)


def test_the_rim_keeps_away_from_bone_and_outside_the_allowed_space() -> None:
    hu = np.full((1, 21, 21), 50.0, np.float32)
    hu[0, :, 16:] = 1000.0  # bone on the right, four pixels from the mask
    mask = np.zeros(hu.shape, bool)
    mask[0, 8:13, 10:13] = True
    grown = _grow(mask, hu)
    assert grown[0, 10, 13] and not grown[0, 10, 14]  # within 1 mm (two pixels) of bone is not taken
    allowed = np.ones(hu.shape, bool)
    allowed[0, :9] = False
    grown = _grow(mask, hu, allowed=allowed)
    assert not (grown & ~mask & ~allowed).any() and (grown & ~mask).any()
    np.testing.assert_array_equal(_grow(np.zeros_like(mask), hu), np.zeros_like(mask))


def test_bad_arguments_are_refused() -> None:
    hu = np.zeros((1, 4, 4), np.float32)
    mask = np.zeros(hu.shape, bool)
    with pytest.raises(ValueError, match="'rim_mm' and 'bone_margin_mm' must not be negative"):
        _grow(mask, hu, rim_mm=-1.0)
    with pytest.raises(ValueError, match="'min_hu' must be under 'max_hu'"):
        _grow(mask, hu, min_hu=130.0)
    with pytest.raises(ValueError, match="must share one shape"):
        _grow(mask[:, :2], hu)
    with pytest.raises(ValueError, match="'rim_mm' must lie in"):
        InferenceConfig(rim_mm=0.0)


def _rim_paint(img, yy, xx, r, i) -> None:
    if 4 <= i <= 7:
        img[(np.abs(yy - 30) < 6) & (np.abs(xx - 22) < 6)] = 50.0  # the clot's blurred edge, at 50 HU
        img[(np.abs(yy - 30) < 4) & (np.abs(xx - 22) < 4)] = 60.0  # its core, what the network calls


def test_the_segmenter_adds_the_rim_after_its_other_steps_and_says_so(tmp_path: Path, make_head) -> None:
    volume = make_head(_rim_paint)
    base = tiny_checkpoint(tmp_path / "base.pt", {"width": 80.0, "level": 40.0})
    found = {}
    for rim in (None, 1.0):
        cfg = InferenceConfig(device="cpu", runtime="torch", mirror=False, loose_threshold=None,
                              faint_max_median_hu=None, rim_mm=rim, end_extension=EndExtensionConfig(checkpoint=""),
                              extra_axial=ExtraAxialConfig(checkpoint=""))
        seg = NetworkSegmenter(base, config=cfg)
        seg.runner = Grey(60.0 / 80.0)
        found[rim] = seg.segment_in(volume)
        if rim is not None:
            assert seg.describe()["edge_rim"] == {"rim_mm": 1.0, "min_hu": 42.0}
    core, edge = volume.hu == 60.0, volume.hu == 50.0
    np.testing.assert_array_equal(found[None].mask, core)
    assert "edge_rim" not in found[None].details
    added = found[1.0].mask & ~core
    assert added.any() and (added <= edge).all()
    rim = found[1.0].details["edge_rim"]
    assert rim["added_ml"] == pytest.approx(mask_volume_ml(added, volume.geometry.voxel_volumes_ml), rel=1e-3)
    assert rim["rim_mm"] == 1.0 and rim["min_hu"] == 42.0 and rim["steps"] >= 1
