"""The threshold baseline: accuracy on phantoms, no rim / calcification / thin-structure false positives."""

from __future__ import annotations

import numpy as np
import pytest
from anatomy_support import PhantomCase, dice, volume_ml

from ichpipe.dicom_io import assemble_series, scan_study
from ichpipe.errors import UsageError
from ichpipe.pipeline.config.threshold_config import ThresholdConfig
from ichpipe.pipeline.segment import threshold
from ichpipe.pipeline.segment.intracranial import find_intracranial
from ichpipe.pipeline.segment.threshold import ThresholdResult, ThresholdSegmenter, segment_blood


def _segment(case: PhantomCase, hu: np.ndarray | None = None) -> tuple[np.ndarray, ThresholdResult]:
    hu = case.hu if hu is None else hu
    ic = find_intracranial(hu, case.spacing, case.thickness)
    return ic.mask, segment_blood(hu, ic.mask, case.spacing, case.thickness)


def test_skull_adjacent_hematoma_volume(medium_case: PhantomCase) -> None:
    _, r = _segment(medium_case)
    truth = medium_case.labels > 0
    assert abs(r.volume_ml - medium_case.truth_volume_ml) <= 0.10 * medium_case.truth_volume_ml
    assert dice(r.mask, truth) >= 0.85


def test_normal_head_is_empty(medium_normal: PhantomCase) -> None:
    _, r = _segment(medium_normal)
    assert r.volume_ml <= 0.1


def test_cortical_rim_brightening_is_not_blood(medium_normal: PhantomCase) -> None:
    """Beam hardening under the inner table: +25 HU within 3 mm of it puts the cortex into 50-90 HU."""
    hu = medium_normal.hu.copy()
    rim = (medium_normal.signed_distance < 0) & (medium_normal.signed_distance > -3.0)
    hu[rim] += 25.0
    ic, r = _segment(medium_normal, hu)
    band = ic & (hu >= 50) & (hu <= 90)
    assert volume_ml(band, medium_normal.voxel_ml) > 5.0  # the naive band is fooled
    assert r.volume_ml <= 0.5


def test_calcification_halo_is_not_blood(medium_normal: PhantomCase) -> None:
    hu = medium_normal.hu.copy()
    inside = np.argwhere(medium_normal.signed_distance < -30.0)
    z, y, x = inside[len(inside) // 2]
    yy, xx = np.ogrid[: hu.shape[1], : hu.shape[2]]
    d = np.hypot((yy - y) * medium_normal.spacing[0], (xx - x) * medium_normal.spacing[1])
    hu[z][d < 2.0] = 250.0  # a 4 mm calcification
    hu[z][(d >= 2.0) & (d < 3.5)] = 70.0  # its partial-volume halo, in the blood band
    _, r = _segment(medium_normal, hu)
    assert r.volume_ml <= 0.05


def test_thin_sheet_is_not_blood(medium_normal: PhantomCase) -> None:
    """A falx-like sheet (2 pixels, 1.8 mm, at 65 HU) across the brain: the median filter keeps it, the opening not."""
    hu = medium_normal.hu.copy()
    mid = hu.shape[2] // 2
    sheet = medium_normal.signed_distance[:, :, mid] < -5.0
    for col in (mid, mid + 1):
        hu[:, :, col][sheet] = 65.0
    _, r = _segment(medium_normal, hu)
    assert r.volume_ml <= 0.1


@pytest.mark.parametrize("options", [{"skull_flap_deg": 70.0}, {"export": "skull_air_stripped"},
                                     {"clip_hu": 320.0}, {"export": "brain_only"}])
def test_baseline_measures_the_hematoma_whatever_the_skull(variant, options: dict[str, object]) -> None:
    """With the finder's space, the baseline is within 8 % of truth on open, stripped, clipped and brain-only heads."""
    case = variant(**options)
    result = ThresholdSegmenter().segment_in(case.volume)
    assert volume_ml(result.mask, case.voxel_ml) == pytest.approx(case.truth_volume_ml, rel=0.08)


@pytest.mark.parametrize("slab", [1, 5, 1000])
def test_slab_size_does_not_change_the_result(medium_case: PhantomCase, slab: int,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-plane steps run on slabs of SLAB_SLICES slices (memory); any slab size gives the same mask."""
    ic = find_intracranial(medium_case.hu, medium_case.spacing, medium_case.thickness)
    want = segment_blood(medium_case.hu, ic.mask, medium_case.spacing, medium_case.thickness).mask
    monkeypatch.setattr(threshold, "SLAB_SLICES", slab)
    got = segment_blood(medium_case.hu, ic.mask, medium_case.spacing, medium_case.thickness).mask
    assert want.sum() > 1000
    np.testing.assert_array_equal(got, want)


def test_describe_says_it_is_a_baseline() -> None:
    info = ThresholdSegmenter().describe()
    assert info["baseline"] is True and info["checkpoint_sha256"] is None
    assert "baseline" in info["kind"] and "50 HU" in info["limits"]


def test_config_checks() -> None:
    with pytest.raises(ValueError, match="'blood_hu'"):
        ThresholdConfig(blood_hu=(90.0, 50.0))
    with pytest.raises(ValueError, match="'rim_mm'"):
        ThresholdConfig(rim_mm=-1.0)
    with pytest.raises(ValueError, match="'grow_mm'"):
        ThresholdConfig(grow_mm=float("nan"))
    with pytest.raises(UsageError, match="same shape"):
        segment_blood(np.zeros((2, 4, 4)), np.zeros((2, 4, 5), dtype=bool), (1.0, 1.0), 5.0)


@pytest.mark.shared_data
@pytest.mark.parametrize("folder", ["ct-real/ge-hispeed-head-tilt", "ct-real/philips-ingenuity-head-phantom"])
def test_real_normal_heads_at_most_one_ml(shared_data, folder: str) -> None:
    """The two real normal heads: the former method read 96.3 mL (GE, cortical rim) and 2.7 mL (Philips)."""
    with scan_study(shared_data / folder) as scan:
        volume = assemble_series(scan.require_selected().series)
    mask = ThresholdSegmenter().segment(volume)
    assert volume_ml(mask, volume.geometry.voxel_volumes_ml) <= 1.0


@pytest.mark.parametrize("size", [1, 3, 5, 17])
def test_median_comparisons_equal_scipy_median_filter(size: int) -> None:
    from scipy import ndimage

    rng = np.random.default_rng(size)
    # integer HU (many ties with the thresholds) and a block of air touching the border
    values = np.round(rng.normal(60.0, 35.0, (3, 41, 37))).astype(np.float32)
    values[:, :6, :9] = -1000.0
    median = ndimage.median_filter(values, size=(1, size, size))
    for t in (50.0, 90.0, 130.0, 60.5):
        np.testing.assert_array_equal(threshold.median_at_least(values, t, size), median >= t)
        np.testing.assert_array_equal(threshold.median_at_most(values, t, size), median <= t)
    with pytest.raises(ValueError, match="Argument 'size'"):
        threshold.median_at_least(values, 50.0, 4)
