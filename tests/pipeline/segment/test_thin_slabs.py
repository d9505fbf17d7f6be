"""Thin slices read as thick slabs (``inference.thin_slab_mm``, ``threshold.thin_slab_mm``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from anatomy_support import PhantomCase, dice, make_case
from network_stand_ins import Grey, tiny_checkpoint

from ichpipe.pipeline.config.inference_config import EndExtensionConfig, ExtraAxialConfig, InferenceConfig
from ichpipe.pipeline.config.threshold_config import ThresholdConfig
from ichpipe.pipeline.segment.inference import NetworkSegmenter
from ichpipe.pipeline.segment.slice_context import nominal_thickness_mm, slab_means, thin_slabs
from ichpipe.pipeline.segment.threshold import ThresholdSegmenter


def test_slab_weights_fall_with_distance_and_sum_to_one() -> None:
    slabs = thin_slabs(np.arange(20) * 0.625, slab_mm=5.0)
    assert slabs.max_slices == 7
    middle = slabs.weights[10]
    assert slabs.start[10] == 7
    assert middle == pytest.approx(np.array([1, 2, 3, 4, 3, 2, 1]) / 16.0)
    assert np.allclose(slabs.weights.sum(axis=1), 1.0)
    first = slabs.weights[0][np.flatnonzero(slabs.weights[0])]
    assert slabs.start[0] == 0 and first == pytest.approx(np.array([4, 3, 2, 1]) / 10.0)  # cut at the stack's end
    descending = thin_slabs(-np.arange(20) * 0.625, slab_mm=5.0)
    assert np.array_equal(descending.start, slabs.start) and np.allclose(descending.weights, slabs.weights)


def test_thick_and_uneven_slices() -> None:
    assert thin_slabs([0.0, 2.5, 5.0, 7.5], slab_mm=5.0).max_slices == 1  # 2.5 mm apart: each slice alone
    uneven = thin_slabs([0.0, 1.0, 1.5, 4.0], slab_mm=5.0)
    assert uneven.start[1] == 0 and np.count_nonzero(uneven.weights[1]) == 3  # 0.0, 1.0, 1.5 within 2.5 mm
    assert uneven.weights[1][:3] == pytest.approx(np.array([0.6, 1.0, 0.8]) / 2.4)
    assert np.count_nonzero(uneven.weights[3]) == 1  # 4.0: 2.5 mm from 1.5, outside


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="'slab_mm' must be positive"):
        thin_slabs([0.0, 1.0], slab_mm=0.0)
    with pytest.raises(ValueError, match="'offsets_mm' must be strictly ascending or descending"):
        thin_slabs([0.0, 1.0, 1.0], slab_mm=5.0)
    with pytest.raises(ValueError, match="'offsets_mm' must be 1-D"):
        thin_slabs(np.zeros((2, 2)), slab_mm=5.0)
    with pytest.raises(ValueError, match="'thin_slab_mm' must lie in"):
        InferenceConfig(thin_slab_mm=0.0)
    with pytest.raises(ValueError, match="'thin_slab_mm' must lie in"):
        ThresholdConfig(thin_slab_mm=-5.0)


def test_slab_means_are_the_weighted_means() -> None:
    rng = np.random.default_rng(0)
    hu = rng.normal(40.0, 10.0, (9, 4, 4)).astype(np.float32)
    slabs = thin_slabs(np.arange(9) * 1.25, slab_mm=5.0)
    got = slab_means(hu, slabs, [0, 4, 8])
    assert got[1] == pytest.approx(0.25 * hu[3] + 0.5 * hu[4] + 0.25 * hu[5], abs=1e-4)
    assert got[0] == pytest.approx((2 * hu[0] + hu[1]) / 3.0, abs=1e-4)


# -------------------------------------------------------------------- the network sees the slabs

BLOB_SLICES = range(6, 18)


def _alternating(img, yy, xx, r, i) -> None:
    """A blob at 80 HU on even slices and 40 HU on odd ones: 60 HU on average (thin-slice noise, caricatured)."""
    if i in BLOB_SLICES:
        img[np.hypot(yy - 30, xx - 26) < 6] = 80.0 if i % 2 == 0 else 40.0


def _head(make_head, spacing_mm: float, thickness_mm: float | None = None):
    return make_head(_alternating, offsets=[spacing_mm * k for k in range(24)],
                     extra={"SliceThickness": thickness_mm or spacing_mm}, name=f"s{spacing_mm}-{thickness_mm}")


def _network(tmp_path: Path, **options) -> NetworkSegmenter:
    base = tiny_checkpoint(tmp_path / "base.pt", {"width": 80.0, "level": 40.0})
    cfg = InferenceConfig(device="cpu", runtime="torch", mirror=False, loose_threshold=None, faint_max_median_hu=None,
                          end_extension=EndExtensionConfig(checkpoint=""), extra_axial=ExtraAxialConfig(checkpoint=""),
                          restrict_to_intracranial=False, **options)
    seg = NetworkSegmenter(base, config=cfg)
    seg.runner = Grey(60.0 / 80.0)  # calls only what is shown at 60 HU
    return seg


def test_network_reads_thin_slices_as_slabs(tmp_path: Path, make_head) -> None:
    thin = _head(make_head, 1.25)
    result = _network(tmp_path).segment_in(thin)
    called = np.flatnonzero(result.mask.any(axis=(1, 2))).tolist()
    # (40 + 2 * 80 + 40) / 4 = (80 + 2 * 40 + 80) / 4 = 60 HU on slices 6-16; slice 17: (80 + 2 * 40 + 40) / 4 = 50
    assert called == list(range(6, 17))  # the mask stays on the thin slices
    assert result.details["network_input"]["thin_slab"] == {"slab_mm": 5.0, "max_slices_averaged": 3}
    assert not _network(tmp_path, thin_slab_mm=None).segment_in(thin).mask.any()  # slice by slice: 80 or 40


def test_thick_slices_are_read_alone(tmp_path: Path, make_head) -> None:
    thick = _head(make_head, 5.0)
    result = _network(tmp_path).segment_in(thick)
    assert not result.mask.any() and "network_input" not in result.details
    # 5 mm slices reconstructed every 1.25 mm (SliceThickness 5): close, but not thin, so not averaged
    overlapping = _head(make_head, 1.25, thickness_mm=5.0)
    assert nominal_thickness_mm(overlapping) == pytest.approx(np.full(24, 5.0))
    assert not _network(tmp_path).segment_in(overlapping).mask.any()


# -------------------------------------------------------------------- the threshold baseline

@pytest.fixture(scope="module")
def thin_noisy_case(tmp_path_factory: pytest.TempPathFactory) -> PhantomCase:
    """128 x 128, 96 slices of 1.25 mm with 15 HU of noise (a thin reconstruction's), one 20 mL hematoma."""
    return make_case(tmp_path_factory.mktemp("thin") / "case", seed=3, rows=128, columns=128, n_slices=96,
                     slice_spacing_mm=1.25, noise_hu=15.0, volume_ml=20.0)


def test_threshold_baseline_reads_thin_noisy_slices_as_slabs(thin_noisy_case: PhantomCase) -> None:
    case = thin_noisy_case
    truth = case.labels > 0
    slabs = ThresholdSegmenter().segment_in(case.volume)
    alone = ThresholdSegmenter(ThresholdConfig(thin_slab_mm=None)).segment_in(case.volume)
    assert slabs.details["thin_slab"] == {"slab_mm": 5.0, "max_slices_averaged": 3}
    assert dice(slabs.mask, truth) >= 0.85  # slice by slice the noise puts the cortex into the band: 0.29, 89 mL
    assert dice(slabs.mask, truth) > dice(alone.mask, truth) + 0.3
