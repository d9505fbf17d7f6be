"""``inference.enclosed_close_mm``: the hypodense parts a clot encloses in plane are the clot's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from network_stand_ins import Grey, tiny_checkpoint

from ichpipe.pipeline.config.inference_config import EndExtensionConfig, ExtraAxialConfig, InferenceConfig
from ichpipe.pipeline.segment.components import mask_volume_ml
from ichpipe.pipeline.segment.enclosed_fill import fill_enclosed
from ichpipe.pipeline.segment.inference import NetworkSegmenter

BRAIN_HU, CLOT_HU = 32.0, 66.0
OPTIONS = {"pixel_spacing_mm": (0.5, 0.5), "close_mm": 1.0, "min_hu": 20.0, "max_hu": 120.0}


def _clot(core_hu: float, *, gap_px: int = 0, size: int = 48) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(HU, the network's mask, the core) of one slice: a clot disc (radius 12 px) round a core (radius 5 px).

    The mask is the clot without its core, cut by a radial gap ``gap_px`` wide (brain there) when asked.
    """
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    hu = np.full((size, size), BRAIN_HU, dtype=np.float32)
    clot, core = r <= 12, r <= 5
    hu[clot] = CLOT_HU
    hu[core] = core_hu
    mask = clot & ~core
    if gap_px:
        gap = (np.abs(xx - size / 2) < gap_px / 2) & (yy > size / 2)
        mask &= ~gap
        hu[gap & clot & ~core] = BRAIN_HU
    return hu[None], mask[None], core[None]


def test_an_enclosed_hypodense_core_is_added_and_csf_is_not() -> None:
    hu, mask, core = _clot(36.0)
    out = fill_enclosed(mask, hu, **OPTIONS)
    np.testing.assert_array_equal(out.added, core)
    assert out.pieces == 1 and (out.mask == (mask | core)).all()
    hu, mask, _ = _clot(6.0)  # a ventricle a cast of blood surrounds
    assert not fill_enclosed(mask, hu, **OPTIONS).added.any()


def test_a_narrow_gap_in_the_ring_is_bridged_and_a_wide_one_is_not() -> None:
    hu, mask, core = _clot(36.0, gap_px=3)  # 1.5 mm: within twice the 1 mm closing
    added = fill_enclosed(mask, hu, **OPTIONS).added
    assert (added & core).sum() == core.sum()
    assert added.sum() - core.sum() <= 3 * 7  # the gap's brain between core and edge, at most
    hu, mask, _ = _clot(36.0, gap_px=8)  # 4 mm: the core is open to the brain
    assert not fill_enclosed(mask, hu, **OPTIONS).added.any()


def test_calcification_and_voxels_outside_the_allowed_space_are_not_taken() -> None:
    hu, mask, core = _clot(36.0)
    hu[0, 24, 24] = 400.0  # calcification inside the core
    added = fill_enclosed(mask, hu, **OPTIONS).added
    assert not added[0, 24, 24] and added.sum() == core.sum() - 1
    allowed = np.ones_like(mask)
    allowed[0, :24] = False
    added = fill_enclosed(mask, hu, allowed=allowed, **OPTIONS).added
    assert added.any() and not added[0, :24].any()


def test_a_piece_over_half_the_blood_round_it_is_not_taken() -> None:
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 32, xx - 32)
    for inner, outer in ((24, 25), (8, 13)):  # a thin shell round much brain; a ring of blood near the vertex
        hu = np.where(r <= outer, 36.0, BRAIN_HU).astype(np.float32)[None]
        ring = ((r > inner) & (r <= outer))[None]
        hu[ring] = CLOT_HU
        assert (r <= inner).sum() > ring.sum() / 2
        assert not fill_enclosed(ring, hu, **OPTIONS).added.any()
    ring = ((r > 5) & (r <= 13))[None]  # a clot round a core of under half its area
    hu[0][r <= 5] = 36.0
    assert fill_enclosed(ring, hu, **OPTIONS).added.sum() == (r <= 5).sum()


def test_bad_arguments_are_refused() -> None:
    hu, mask, _ = _clot(36.0)
    with pytest.raises(ValueError, match="'close_mm' must be positive"):
        fill_enclosed(mask, hu, **{**OPTIONS, "close_mm": 0.0})
    with pytest.raises(ValueError, match="'min_hu' must be under 'max_hu'"):
        fill_enclosed(mask, hu, **{**OPTIONS, "min_hu": 130.0})
    with pytest.raises(ValueError, match="must share one shape"):
        fill_enclosed(mask, hu[:, :10], **OPTIONS)
    with pytest.raises(ValueError, match="'enclosed_close_mm' must lie in"):
        InferenceConfig(enclosed_close_mm=0.0)


def _hollow_clot(img, yy, xx, r, i) -> None:
    if 4 <= i <= 7:
        img[np.hypot(yy - 30, xx - 24) < 8] = 60.0  # the dense clot, what the network calls
        img[np.hypot(yy - 30, xx - 24) < 3] = 36.0  # its hypodense core


def test_the_segmenter_adds_the_enclosed_core_and_says_so(tmp_path: Path, make_head) -> None:
    volume = make_head(_hollow_clot)
    base = tiny_checkpoint(tmp_path / "base.pt", {"width": 80.0, "level": 40.0})
    found = {}
    for close in (None, 2.0):
        cfg = InferenceConfig(device="cpu", runtime="torch", mirror=False, loose_threshold=None,
                              faint_max_median_hu=None, rim_mm=None, enclosed_close_mm=close,
                              end_extension=EndExtensionConfig(checkpoint=""),
                              extra_axial=ExtraAxialConfig(checkpoint=""))
        seg = NetworkSegmenter(base, config=cfg)
        seg.runner = Grey(60.0 / 80.0)
        found[close] = seg.segment_in(volume)
        assert ("enclosed_fill" in seg.describe()) == (close is not None)
    dense, core = volume.hu == 60.0, volume.hu == 36.0
    base = found[None].mask
    assert base.sum() > 0.9 * dense.sum() and not (base & ~dense).any()
    assert "enclosed_fill" not in found[None].details
    np.testing.assert_array_equal(found[2.0].mask, base | core)
    filled = found[2.0].details["enclosed_fill"]
    assert filled["pieces"] == 4
    assert filled["added_ml"] == pytest.approx(mask_volume_ml(core, volume.geometry.voxel_volumes_ml), rel=1e-3)


class _Finds:
    """A network stand-in that finds ``mask``, and says it filled what its blood encloses when ``fill`` is given."""

    name = "filling_network"

    def __init__(self, mask: np.ndarray, fill: dict | None) -> None:
        self.mask, self.fill = mask, fill

    def segment(self, volume) -> np.ndarray:
        return self.mask.copy()

    def describe(self) -> dict:
        return {"name": self.name, "kind": "network", **({"enclosed_fill": self.fill} if self.fill else {})}


def test_the_baseline_beside_a_filling_network_is_filled_the_same_way(medium_case) -> None:
    from anatomy_support import with_hu

    from ichpipe import load_config
    from ichpipe.pipeline.jobs.analyse_volume import analyse_volume

    # a 70 HU ball (radius 9 mm) with a 36 HU core (radius 4 mm) on the head's middle slice, in the brain
    k = int(np.argmax(medium_case.intracranial.sum(axis=(1, 2))))
    rows, cols = np.nonzero(medium_case.intracranial[k] & ~np.any(medium_case.labels > 0, axis=0))
    zz, yy, xx = np.indices(medium_case.labels.shape)
    r2 = ((zz - k) * float(medium_case.thickness[0])) ** 2 + ((yy - np.median(rows)) * medium_case.spacing[0]) ** 2 \
        + ((xx - np.median(cols)) * medium_case.spacing[1]) ** 2
    ball, core = (r2 <= 9.0**2) & medium_case.intracranial, (r2 <= 4.0**2) & medium_case.intracranial
    hu = np.where(medium_case.labels > 0, 30.0, medium_case.volume.hu)  # the phantom's own bleed out of the way
    hu[ball] = 70.0
    hu[core] = 36.0
    volume = with_hu(medium_case, hu)
    config = load_config(quality={"cross_check": "threshold"})
    geo = volume.geometry
    read = {}
    for fill in (None, {"close_mm": 2.0, "min_hu": 20.0}):
        network = _Finds(ball | core if fill else ball & ~core, fill)
        result = analyse_volume(volume, network, config)
        read[bool(fill)] = (result.measurement.volume_ml, result.quality.measurements["cross_check"]["volume_ml"])
    core_ml = mask_volume_ml(core, geo.voxel_volumes_ml)
    # the network without the fill and the baseline (a hole where the core is) read alike; with it, both gain the core
    assert read[True][0] - read[False][0] == pytest.approx(core_ml, rel=1e-3)
    assert read[True][1] - read[False][1] == pytest.approx(core_ml, rel=0.1)
