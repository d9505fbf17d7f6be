"""Growing found bleeds at their end slices with a second network (inference.end_extension)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from ichpipe.errors import CheckpointError, ConfigError
from ichpipe.models.checkpoint import save_checkpoint
from ichpipe.models.hashing import file_sha256
from ichpipe.models.registry import build_model
from ichpipe.pipeline.config.inference_config import (
    BlendSideConfig,
    EndExtensionConfig,
    ExtraAxialConfig,
    InferenceConfig,
)
from ichpipe.pipeline.config.loader import build_dataclass
from ichpipe.pipeline.segment.end_extension import extend_bleed_ends, reachable_slices
from ichpipe.pipeline.segment.inference import NetworkSegmenter

CHECKPOINTS = Path(__file__).resolve().parents[3] / "models" / "checkpoints"
KWARGS = {"base_channels": 4, "num_heads": 2, "input_size": 64}
WINDOW = {"width": 80.0, "level": 40.0}


def _block(shape: tuple[int, int, int], z: slice, y: slice, x: slice) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[z, y, x] = True
    return m


class _Calls:
    """A second network that says ``p`` where ``where`` is true and records which slices it was asked for."""

    def __init__(self, where: np.ndarray, p: float = 0.9) -> None:
        self.where, self.p, self.asked = where, p, []  # type: ignore[var-annotated]

    def __call__(self, slices: Sequence[int]) -> np.ndarray:
        self.asked.append(list(slices))
        return np.where(self.where[list(slices)], np.float32(self.p), np.float32(0.0))


def _grow(mask: np.ndarray, net: _Calls, spacing: float = 5.0, **kw: object):
    args = {"threshold": 0.5, "radius_mm": 3.0, "depth_mm": 5.0, **kw}
    return extend_bleed_ends(mask, net, offsets_mm=np.arange(mask.shape[0]) * spacing,
                             pixel_spacing_mm=(1.0, 1.0), **args)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the walk


def test_one_slice_is_added_at_each_end_of_a_five_mm_stack() -> None:
    shape = (8, 20, 20)
    bleed = _block(shape, slice(3, 5), slice(5, 10), slice(5, 10))
    everywhere = _Calls(np.ones(shape, dtype=bool))
    grown = _grow(bleed, everywhere)
    assert everywhere.asked == [[2, 5]]  # only the slices next to the ends, in one call
    assert grown.slices_extended == (2, 5) and grown.slices_run == (2, 5)
    assert not grown.mask[1].any() and not grown.mask[6].any()  # depth 5 mm: one slice each way
    assert not (grown.added & bleed).any() and (grown.mask == (bleed | grown.added)).all()


def test_thin_slices_walk_up_to_the_depth_and_stop_where_the_second_network_sees_nothing() -> None:
    shape = (30, 20, 20)
    bleed = _block(shape, slice(10, 20), slice(5, 10), slice(5, 10))
    seen = _block(shape, slice(7, 27), slice(5, 10), slice(5, 10))  # 3 slices below, 7 above the bleed
    grown = _grow(bleed, _Calls(seen), spacing=1.0, depth_mm=5.0)
    assert grown.slices_extended == (7, 8, 9, 20, 21, 22, 23, 24)  # below: until it sees nothing; above: 5 mm
    assert reachable_slices(bleed, np.arange(30) * 1.0, depth_mm=5.0) == [5, 6, 7, 8, 9, 20, 21, 22, 23, 24]


def test_only_what_lies_within_the_radius_of_the_previous_slices_blood_is_added() -> None:
    shape = (5, 40, 40)
    bleed = _block(shape, slice(1, 4), slice(10, 15), slice(10, 15))
    near = _block(shape, slice(0, 1), slice(10, 15), slice(17, 20))  # 2 px from the bleed's edge
    far = _block(shape, slice(4, 5), slice(10, 15), slice(25, 30))  # 10 px away
    grown = _grow(bleed, _Calls(near | far), radius_mm=3.0)
    assert grown.slices_extended == (0,) and not (grown.added & ~near).any()
    assert grown.added[0, 10:15, 17].all() and not grown.added[0, :, 18:].any()  # kept within 3 mm of the bleed
    wide = _grow(bleed, _Calls(_block(shape, slice(0, 1), slice(0, 40), slice(0, 40))), radius_mm=3.0)
    disc = wide.added[0]
    assert disc[12, 7:18].all() and disc[7:18, 12].all() and disc[10:15, 10:15].all()  # 3 mm round the 5x5
    assert not disc[7, 7] and not disc[:, :7].any() and not disc[:, 18:].any()  # no corners, nothing further
    assert _grow(bleed, _Calls(near | far), radius_mm=1.0).added.sum() == 0


def test_nothing_is_added_without_a_bleed_or_outside_the_allowed_space() -> None:
    shape = (6, 12, 12)
    everywhere = _Calls(np.ones(shape, dtype=bool))
    empty = _grow(np.zeros(shape, dtype=bool), everywhere)
    assert not empty.mask.any() and everywhere.asked == []  # the second network never runs
    bleed = _block(shape, slice(2, 4), slice(2, 8), slice(2, 8))
    allowed = np.zeros(shape, dtype=bool)
    allowed[:, :, :5] = True
    grown = _grow(bleed, everywhere, allowed=allowed)
    assert grown.added.any() and not (grown.added & ~allowed).any()


def test_bone_calcification_and_air_are_never_added() -> None:
    shape = (6, 12, 12)
    bleed = _block(shape, slice(2, 4), slice(2, 8), slice(2, 8))
    hu = np.full(shape, 40.0, dtype=np.float32)
    hu[1, 2:5, 2:8] = 400.0  # bone or calcification beside the bleed's lower end
    hu[4, 2:8, 2:4] = -500.0  # air
    grown = _grow(bleed, _Calls(np.ones(shape, dtype=bool)), hu=hu, hu_range=(-15.0, 120.0))
    assert grown.added[1, 5:8, 2:8].all() and not grown.added[1, 2:5, 2:8].any()
    assert grown.added[4, 2:8, 4:8].all() and not grown.added[4, 2:8, 2:4].any()
    with pytest.raises(ValueError, match="'hu' and 'hu_range' go together"):
        _grow(bleed, _Calls(np.ones(shape, dtype=bool)), hu=hu)


def test_with_end_slice_hu_only_voxels_over_the_bleeds_end_slice_blood_are_added() -> None:
    shape = (6, 30, 30)
    bleed = _block(shape, slice(2, 4), slice(10, 20), slice(10, 20))
    hu = np.full(shape, 35.0, dtype=np.float32)  # grey matter ...
    hu[bleed] = 70.0  # ... and the clot on its two slices
    hu[2, 10:20, 21:24] = 600.0  # bone beside the lower end slice, within the 5 mm radius
    everywhere = _Calls(np.ones(shape, dtype=bool))
    plain = _grow(bleed, everywhere, radius_mm=5.0, hu=hu, hu_range=(-15.0, 120.0))
    ring = plain.added[1] & ~bleed[2]
    assert ring.sum() > 100  # without the test: the whole 5 mm disc round the footprint
    over = _grow(bleed, everywhere, radius_mm=5.0, hu=hu, hu_range=(-15.0, 120.0), end_slice_hu=45.0)
    assert over.slices_extended == (1, 4)
    for s, end in ((1, 2), (4, 3)):
        added = over.added[s]
        assert added[11:19, 11:19].all()  # over the clot (its edge is smoothed by 1 mm)
        assert not added[:, :8].any() and not added[:, 22:].any() and not added[:8].any() and not added[22:].any()
        assert not (added & ~ndimage.binary_dilation(bleed[end], iterations=1)).any()
    assert not over.added[1, :, 21:].any()  # bone on the end slice is not blood, nor blurred into grey matter
    assert _grow(bleed, everywhere, hu=hu, hu_range=(-15.0, 120.0), end_slice_hu=80.0).added.sum() == 0
    with pytest.raises(ValueError, match="'end_slice_hu' needs 'hu' and 'hu_range'"):
        _grow(bleed, everywhere, end_slice_hu=45.0)


def test_the_walk_stops_where_the_first_network_already_has_blood() -> None:
    shape = (8, 20, 20)
    lower = _block(shape, slice(1, 3), slice(5, 10), slice(5, 10))
    upper = _block(shape, slice(4, 6), slice(5, 10), slice(12, 16))  # not 26-connected, 2 px aside, 2 slices up
    both = lower | upper
    grown = _grow(both, _Calls(np.ones(shape, dtype=bool)), radius_mm=3.0)
    assert grown.slices_extended == (0, 3, 6)  # slice 3 from either side; none overwrites the mask
    assert not (grown.added & both).any()


def test_bad_arguments_are_refused() -> None:
    m = np.zeros((3, 4, 4), dtype=bool)
    net = _Calls(np.zeros((3, 4, 4), dtype=bool))
    with pytest.raises(ValueError, match="'threshold' must lie strictly between 0 and 1"):
        _grow(m, net, threshold=1.0)
    with pytest.raises(ValueError, match="'radius_mm' and 'depth_mm' must not be negative"):
        _grow(m, net, depth_mm=-1.0)
    with pytest.raises(ValueError, match="'offsets_mm' must have one offset per slice"):
        extend_bleed_ends(m, net, offsets_mm=np.arange(2.0), pixel_spacing_mm=(1.0, 1.0), threshold=0.5,
                          radius_mm=1.0, depth_mm=1.0)
    with pytest.raises(ValueError, match="'mask' must be 3D"):
        _grow(np.zeros((4, 4), dtype=bool), net)
    m[1, 1, 1] = True
    with pytest.raises(ValueError, match="probabilities_at returned shape"):
        _grow(m, lambda s: np.zeros((1, 4, 4), np.float32))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"'inference\.end_extension': Argument 'threshold'"):
        build_dataclass(InferenceConfig, {"end_extension": {"threshold": 0.0}}, prefix="inference")
    with pytest.raises(ValueError, match="'depth_mm' must not be negative"):
        EndExtensionConfig(depth_mm=-5.0)


# --------------------------------------------------------------------------- inside the network segmenter


def _checkpoint(path: Path, *, channels: int, context_mm: float | None) -> Path:
    torch.manual_seed(0)
    kwargs = {**KWARGS, "in_channels": channels}
    net = build_model("sa_cbam_unet_slim", **kwargs)
    return save_checkpoint(path, net, name="sa_cbam_unet_slim", model_kwargs=kwargs, input_size=(64, 64),
                           window=WINDOW, normalisation={"scale": 1 / 255, "offset": 0.0},
                           training_data="random weights (test)", slice_context_mm=context_mm)


class _Blob:
    """Stands in for a network: 0.9 where the middle channel shows the 70 HU blob (grey 0.875), else 0."""

    def __init__(self) -> None:
        self.images = 0

    def run(self, images: np.ndarray) -> np.ndarray:
        self.images += len(images)
        middle = images[:, images.shape[1] // 2:images.shape[1] // 2 + 1]
        return np.where(np.abs(middle - 0.875) < 0.05, 0.9, 0.0).astype(np.float32)


class _Everywhere:
    """Stands in for the second network: 0.9 on every pixel."""

    def __init__(self) -> None:
        self.images = 0

    def run(self, images: np.ndarray) -> np.ndarray:
        self.images += len(images)
        return np.full((len(images), 1, *images.shape[2:]), 0.9, dtype=np.float32)


def _segmenters(tmp_path: Path, end_slice_hu: float | None = None) -> tuple[NetworkSegmenter, Path]:
    base = _checkpoint(tmp_path / "base.pt", channels=1, context_mm=None)
    ends = _checkpoint(tmp_path / "ends.pt", channels=3, context_mm=5.0)
    cfg = InferenceConfig(device="cpu", runtime="torch",
                          end_extension=EndExtensionConfig(checkpoint=str(ends), threshold=0.5, radius_mm=4.0,
                                                           end_slice_hu=end_slice_hu))
    seg = NetworkSegmenter(base, config=cfg)
    assert seg.extender is not None and seg.extender.extender is None and seg.extender.slice_context_mm == 5.0
    seg.runner, seg.extender.runner = _Blob(), _Everywhere()
    return seg, ends


def test_the_segmenter_grows_its_bleed_by_one_slice_each_way_inside_the_skull(tmp_path: Path, head_volume) -> None:
    seg, ends = _segmenters(tmp_path)
    result = seg.segment_in(head_volume)
    assert [i for i in range(12) if head_volume.hu[i, 30, 26] > 60] == [3, 4, 5, 6, 7, 8]  # the blob
    slices = [i for i in range(12) if result.mask[i].any()]
    assert slices == [2, 3, 4, 5, 6, 7, 8, 9]
    # the second network ran on the two end slices only (each also mirrored: inference.mirror, the default)
    assert seg.config.mirror and seg.extender is not None
    assert seg.extender.runner.images == 2 * 2  # type: ignore[attr-defined]
    # the added slices: the blob's outline (radius 6 px) grown by 4 mm = 8 px of 0.5 mm (the second network
    # says blood everywhere), inside the skull
    yy, xx = np.mgrid[:64, :64]
    assert result.mask[2].sum() > result.mask[3].sum() and result.mask[2, 30, 26 - 12:26 + 13].all()
    assert not result.mask[2][np.hypot(yy - 30, xx - 26) > 6 + 8 + 1.5].any()
    assert not result.mask[2][np.hypot(yy - 32, xx - 30) >= 22].any()
    assert result.details["end_extension"]["slices_extended"] == 2
    assert result.details["end_extension"]["added_ml"] > 0
    described = seg.describe()["end_extension"]
    assert described["checkpoint_sha256"] == file_sha256(ends) and described["threshold"] == 0.5


def test_the_segmenter_passes_end_slice_hu_on(tmp_path: Path, head_volume) -> None:
    seg, _ = _segmenters(tmp_path, end_slice_hu=EndExtensionConfig().end_slice_hu)  # the default, 45 HU
    result = seg.segment_in(head_volume)
    yy, xx = np.mgrid[:64, :64]
    for s, end in ((2, 3), (9, 8)):  # only over the blob's end slices' blood (its 6 px outline, smoothed 1 mm)
        assert result.mask[s].any() and not result.mask[s][head_volume.hu[end] < 40].any()
        assert not result.mask[s][np.hypot(yy - 30, xx - 26) > 6 + 2].any()


def test_probabilities_of_some_slices_and_thresholded_batch_by_batch_match_the_whole(tmp_path: Path,
                                                                                     head_volume) -> None:
    seg = NetworkSegmenter(_checkpoint(tmp_path / "base.pt", channels=1, context_mm=None),
                           config=InferenceConfig(device="cpu", runtime="torch", bf16=False,
                                                  end_extension=EndExtensionConfig(checkpoint="")))
    whole = seg.probabilities(head_volume)
    assert whole.dtype == np.float32 and 0.0 < float(np.median(whole[head_volume.hu > 0])) < 1.0
    np.testing.assert_array_equal(seg.probabilities(head_volume, slices=[7, 2]), whole[[7, 2]])
    cut = float(np.median(whole[head_volume.hu > 0]))
    mask = seg.probabilities(head_volume, above=cut)
    assert mask.dtype == bool and 0 < mask.sum() < mask.size
    np.testing.assert_array_equal(mask, whole > cut)
    below = np.unique(whole[whole < cut])
    low = float(below[len(below) // 2])  # a lower threshold that some voxels pass and the median does not
    both = seg.probabilities(head_volume, above=(cut, low))  # several thresholds: one mask each, stacked
    assert both.dtype == bool and both.shape == (2, *head_volume.hu.shape)
    np.testing.assert_array_equal(both[0], mask)
    np.testing.assert_array_equal(both[1], whole > low)
    assert both[1].sum() > both[0].sum()
    with pytest.raises(ValueError, match=r"'slices' must hold slice indices 0\.\.11"):
        seg.probabilities(head_volume, slices=[12])


def test_a_study_without_blood_never_runs_the_second_network(tmp_path: Path, head_volume) -> None:
    seg, _ = _segmenters(tmp_path)
    seg.runner = _Everywhere()
    seg.runner.run = lambda images: np.zeros((len(images), 1, *images.shape[2:]), np.float32)  # type: ignore
    result = seg.segment_in(head_volume)
    assert not result.mask.any() and result.details["end_extension"]["slices_run"] == 0
    assert seg.extender is not None and seg.extender.runner.images == 0  # type: ignore[attr-defined]


def test_a_missing_or_untrusted_second_checkpoint_is_refused(tmp_path: Path) -> None:
    base = _checkpoint(tmp_path / "base.pt", channels=1, context_mm=None)
    cfg = InferenceConfig(device="cpu", runtime="torch",
                          end_extension=EndExtensionConfig(checkpoint=str(tmp_path / "nowhere.pt")),
                          extra_axial=ExtraAxialConfig(checkpoint=""),  # its own test: test_extra_axial_addition
                          blend_side=BlendSideConfig(checkpoint=""))  # and test_blend_side_reader
    with pytest.raises(CheckpointError, match=r"end_extension.checkpoint .*nowhere.pt does not exist"):
        NetworkSegmenter(base, config=cfg)
    ends = _checkpoint(tmp_path / "ends.pt", channels=3, context_mm=5.0)
    cfg = replace(cfg, end_extension=EndExtensionConfig(checkpoint=str(ends)))
    with pytest.raises(CheckpointError, match=r"End-extension checkpoint .* is not in models\.checkpoint_sha256"):
        NetworkSegmenter(base, config=cfg, allowed_sha256=(file_sha256(base),))
    assert NetworkSegmenter(base, config=cfg, allowed_sha256=(file_sha256(base), file_sha256(ends))).extender


# --------------------------------------------------------------------------- the shipped pair on real slices


def test_the_shipped_pair_hits_a_faint_end_slice_the_default_alone_misses(shared_data: Path) -> None:
    """PHE-SICH validation patient 0039: the default alone hits 2 of its 3 boxes, the pair all 3, same FP slices."""
    from ichpipe.pipeline.evaluation.box_slices import PngAssumptions, list_box_patients, segment_box_patient

    root = shared_data / "phe-sich-ct-ids-dev"
    if not root.is_dir():
        pytest.skip("../shared/data/phe-sich-ct-ids-dev is not present")
    (patient,) = list_box_patients(root, patients=["0039"])
    scores = {}
    for label, ends in (("alone", EndExtensionConfig(checkpoint="")), ("pair", EndExtensionConfig())):
        seg = NetworkSegmenter(CHECKPOINTS / "ichpipe-default.pt", config=InferenceConfig(end_extension=ends))
        scores[label] = segment_box_patient(patient, seg, PngAssumptions(rotate=-1))
    assert (scores["alone"].hits.events, scores["pair"].hits.events, scores["pair"].hits.total) == (2, 3, 3)
    assert scores["pair"].end_hits.events == scores["alone"].end_hits.events + 1
    assert scores["pair"].fp_slices == scores["alone"].fp_slices
    assert 0 < scores["pair"].predicted_ml - scores["alone"].predicted_ml < 1.0
