"""``inference.calcified``: components of the networks' blood that are mostly calcification are not counted."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from network_stand_ins import Seen, tiny_checkpoint

from ichpipe import load_config
from ichpipe.pipeline.config.inference_config import (
    BlendSideConfig,
    CalcifiedConfig,
    EndExtensionConfig,
    ExtraAxialConfig,
    InferenceConfig,
)
from ichpipe.pipeline.segment.calcified import calcified_components

SPACING = (0.5, 0.5)
BRAIN_HU = 35.0


def _field(size: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """(HU, intracranial): two slices of brain, the whole plane inside but for a 4-pixel border."""
    hu = np.full((2, size, size), BRAIN_HU, np.float32)
    space = np.zeros(hu.shape, bool)
    space[:, 4:-4, 4:-4] = True
    return hu, space


def _cluster(hu: np.ndarray, mask: np.ndarray, row: int, col: int, rng: np.random.Generator) -> None:
    """A patch of 70 HU (16 x 8 pixels: 8 x 4 mm) with a dense 1.5 mm speck every 2 mm, as a network calls it."""
    hu[:, row:row + 16, col:col + 8] = 70.0
    for r in range(row, row + 16, 4):
        for c in range(col, col + 8, 4):
            hu[:, r:r + 3, c:c + 3] = rng.uniform(150.0, 250.0)
    mask[:, row:row + 16, col:col + 8] = True


def _find(mask: np.ndarray, hu: np.ndarray, space: np.ndarray, **options):
    return calcified_components(mask, hu, space, pixel_spacing_mm=SPACING, **options)


def test_a_calcified_cluster_goes_and_a_clot_stays() -> None:
    hu, space = _field()
    mask = np.zeros(hu.shape, bool)
    _cluster(hu, mask, 20, 20, np.random.default_rng(0))
    hu[:, 60:90, 60:90] = 75.0
    mask[:, 60:90, 60:90] = True
    found = _find(mask, hu, space)
    assert found.count == 1
    assert found.mask[:, 20:36, 20:28].all() and not found.mask[:, 60:90, 60:90].any()
    assert found.removed_ml([0.001, 0.001]) == pytest.approx(2 * 16 * 8 * 0.001)
    assert sorted(found.shares)[0] == 0.0 and sorted(found.shares)[1] >= 0.5
    # the shoulder runs 2 mm round each focus, beyond the mask too (a looser call is not blood there either)
    assert found.shoulder[:, 18, 21].all() and not mask[:, 18, 21].any() and not found.shoulder[:, 15, 21].any()


def test_a_dense_noisy_clot_and_a_clot_holding_a_speck_stay_but_for_the_speck() -> None:
    rng = np.random.default_rng(1)
    hu, space = _field()
    mask = np.zeros(hu.shape, bool)
    hu[:, 10:50, 10:50] = 100.0 + rng.normal(0.0, 20.0, (2, 40, 40))  # a retracted clot on thin, noisy slices
    mask[:, 10:50, 10:50] = True
    hu[:, 60:100, 60:100] = 70.0  # a clot with one calcified speck inside
    hu[:, 78:82, 78:82] = 300.0
    mask[:, 60:100, 60:100] = True
    found = _find(mask, hu, space)
    assert found.count == 0 and not found.mask.any()
    assert max(found.shares) < 0.1
    # the speck and its 2 mm shoulder are not blood; the clot round it is, and the noise is no focus
    assert found.parts[:, 78:82, 78:82].all() and not found.parts[:, 60:74, 60:100].any()
    assert found.parts[:, 10:50, 10:50].mean() < 0.02


def test_dense_voxels_at_the_intracranial_edge_are_not_foci() -> None:
    hu, space = _field()
    mask = np.zeros(hu.shape, bool)
    hu[:, 4:12, 30:90] = 70.0  # a thin collection against the inner table ...
    hu[:, 4:6, 30:90] = 180.0  # ... whose first mm is the table's partial volume
    mask[:, 4:12, 30:90] = True
    assert _find(mask, hu, space).count == 0
    assert _find(mask, hu, space, edge_mm=0.0).count == 1  # counted as foci, they would take it


def test_min_share_min_hu_and_contrast_decide() -> None:
    hu, space = _field()
    mask = np.zeros(hu.shape, bool)
    _cluster(hu, mask, 40, 40, np.random.default_rng(2))
    assert _find(mask, hu, space).count == 1
    assert _find(mask, hu, space, min_share=1.0).count == 0
    assert _find(mask, hu, space, min_hu=300.0).count == 0
    assert _find(mask, hu, space, min_contrast_hu=500.0).count == 0
    assert _find(np.zeros_like(mask), hu, space).shares == ()


def test_bad_arguments_are_refused() -> None:
    hu, space = _field()
    with pytest.raises(ValueError, match="'mask', 'hu' and 'intracranial' must be 3D of one shape"):
        calcified_components(np.zeros((2, 4, 4), bool), hu, space, pixel_spacing_mm=SPACING)
    with pytest.raises(ValueError, match=r"'min_share' must lie in \(0, 1\]"):
        _find(np.zeros(hu.shape, bool), hu, space, min_share=0.0)
    with pytest.raises(ValueError, match=r"'min_share' must lie in \(0, 1\], or be null"):
        CalcifiedConfig(min_share=1.5)
    with pytest.raises(ValueError, match="'margin_mm' must not be negative"):
        CalcifiedConfig(margin_mm=-1.0)
    with pytest.raises(ValueError, match="'min_hu' must be an HU value"):
        CalcifiedConfig(min_hu=5000.0)


def _clot_and_cluster(img, yy, xx, r, i) -> None:
    if 4 <= i <= 7:
        img[np.hypot(yy - 24, xx - 22) < 5] = 70.0  # a clot
        patch = (np.abs(yy - 40) < 4) & (np.abs(xx - 36) < 3)  # a calcified patch: 70 HU with dense specks
        img[patch] = 70.0
        img[patch & ((yy + xx) % 2 == 0)] = 200.0


def test_the_segmenter_drops_the_calcified_patch_and_says_so(tmp_path, make_head) -> None:
    from ichpipe.pipeline.jobs.analyse_volume import analyse_volume
    from ichpipe.pipeline.segment.inference import NetworkSegmenter

    volume = make_head(_clot_and_cluster)
    checkpoint = tiny_checkpoint(tmp_path / "tiny.pt", {"width": 100.0, "level": 50.0})  # 0-100 HU
    found = {}
    for share in (None, 0.5):
        cfg = InferenceConfig(device="cpu", runtime="torch", mirror=False, loose_threshold=None,
                              faint_max_median_hu=None, rim_mm=None, enclosed_close_mm=None,
                              end_extension=EndExtensionConfig(checkpoint=""),
                              extra_axial=ExtraAxialConfig(checkpoint=""), blend_side=BlendSideConfig(checkpoint=""),
                              calcified=CalcifiedConfig(min_share=share))
        seg = NetworkSegmenter(checkpoint, config=cfg)
        seg.runner = Seen()  # reads every pixel of 50 HU and over as blood
        found[share] = seg.segment_in(volume)
        assert ("calcified" in seg.describe()) == (share is not None)
        analysis = analyse_volume(volume, seg, replace(load_config(quality={"cross_check": "none"}), inference=cfg))
        assert ("calcified" in analysis.quality.measurements) == (share is not None)
    clot = (volume.hu == 70.0) & ~np.isin(np.indices(volume.hu.shape)[1], range(36, 45))
    assert found[None].mask[clot].all() and found[None].mask[volume.hu == 200.0].all()
    kept = found[0.5].mask
    assert kept[clot].all() and not kept[volume.hu == 200.0].any()
    said = found[0.5].details["calcified"]
    assert said["components_removed"] == 1 and said["largest_share"] >= 0.5 and said["parts_removed_ml"] == 0.0
