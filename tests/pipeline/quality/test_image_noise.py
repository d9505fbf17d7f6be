"""The image's noise as the networks read it, and the ``noisy_image`` flag."""

from __future__ import annotations

import numpy as np
import pytest

from ichpipe.pipeline.config.quality_config import ImageNoiseConfig, QualityConfig
from ichpipe.pipeline.quality.assess import assess_quality
from ichpipe.pipeline.quality.checks import check_image_noise
from ichpipe.pipeline.segment.image_noise import network_image_noise, noise_sample_slices, pixel_noise_hu
from ichpipe.pipeline.segment.intracranial import find_intracranial_in
from ichpipe.pipeline.segment.segmenter import SegmentationResult
from ichpipe.pipeline.segment.slice_context import thin_slabs


def test_noise_is_measured_across_tissue_edges() -> None:
    rng = np.random.default_rng(1)
    planes = np.full((6, 96, 96), 25.0, np.float32)
    planes[:, :, 48:] = 60.0  # white matter beside blood: an edge on every row
    planes[:, 20:30, :] = 1000.0  # bone, out of the band
    noisy = planes + rng.normal(0.0, 4.0, planes.shape).astype(np.float32)
    assert pixel_noise_hu(noisy) == pytest.approx(4.0, rel=0.08)
    noisier = planes + rng.normal(0.0, 9.0, planes.shape).astype(np.float32)
    assert pixel_noise_hu(noisier) == pytest.approx(9.0, rel=0.1)
    with pytest.raises(ValueError, match="'planes' must be 3-D"):
        pixel_noise_hu(np.zeros((8, 8)))


def test_samples_lie_in_the_middle_of_the_head() -> None:
    picked = noise_sample_slices([False] * 5 + [True] * 100 + [False] * 5)
    assert len(picked) == 12 and min(picked) >= 5 + 30 and max(picked) <= 5 + 70


def test_thin_slices_are_measured_as_the_networks_read_them() -> None:
    rng = np.random.default_rng(2)
    hu = (40.0 + rng.normal(0.0, 12.0, (40, 64, 64))).astype(np.float32)
    head = np.ones(40, dtype=bool)
    alone = network_image_noise(hu, head)
    slabs = network_image_noise(hu, head, thin_slabs(np.arange(40) * 0.625, slab_mm=5.0))
    assert alone["slices_sampled"] == 12 and alone["noise_hu"] == pytest.approx(12.0, rel=0.08)
    assert slabs["noise_hu"] == pytest.approx(12.0 * np.sqrt(44 / 256), rel=0.1)  # weights 1..4..1 / 16


def test_noisy_image_flag(small_case) -> None:
    assert [f.code for f in check_image_noise({"noise_hu": 6.0})] == ["noisy_image"]
    assert check_image_noise({"noise_hu": 5.4}) == [] and check_image_noise({"noise_hu": None}) == []
    volume = small_case.volume
    space = find_intracranial_in(volume.hu, volume.geometry)
    mask = (small_case.labels > 0) & space.mask
    noisy = SegmentationResult(mask=mask, details={"image_noise": {"noise_hu": 7.3, "slices_sampled": 12}})
    report = assess_quality(volume, space, noisy)
    assert "noisy_image" in report.codes
    assert report.flags[report.codes.index("noisy_image")].value == pytest.approx(7.3)
    off = QualityConfig(image_noise=ImageNoiseConfig(max_noise_hu=None))
    assert "noisy_image" not in assess_quality(volume, space, noisy, config=off).codes
    with pytest.raises(ValueError, match="'max_noise_hu' must be positive"):
        ImageNoiseConfig(max_noise_hu=0.0)
