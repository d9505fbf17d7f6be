"""First-order HU statistics on known distributions (ichpipe.pipeline.measure.features.firstorder)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ichpipe.pipeline.measure.features.firstorder import FIRSTORDER_FEATURES, firstorder_features

P = "original_firstorder_"


def test_normal_distribution_moments_and_percentiles() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(60.0, 10.0, size=200_000)
    f = firstorder_features(x, bin_width=25.0)
    assert f[P + "Mean"] == pytest.approx(60.0, abs=0.1)
    assert f[P + "Variance"] == pytest.approx(100.0, rel=0.01)
    assert f[P + "Skewness"] == pytest.approx(0.0, abs=0.02)
    assert f[P + "Kurtosis"] == pytest.approx(3.0, abs=0.05)  # pyradiomics: not excess kurtosis
    assert f[P + "10Percentile"] == pytest.approx(60.0 - 12.8155, abs=0.15)
    assert f[P + "90Percentile"] == pytest.approx(60.0 + 12.8155, abs=0.15)
    assert f[P + "InterquartileRange"] == pytest.approx(2 * 6.7449, abs=0.15)
    assert f[P + "MeanAbsoluteDeviation"] == pytest.approx(10.0 * math.sqrt(2 / math.pi), rel=0.01)
    # exact agreement with independent implementations
    assert f[P + "Skewness"] == pytest.approx(stats.skew(x), rel=1e-9)
    assert f[P + "Kurtosis"] == pytest.approx(stats.kurtosis(x, fisher=True) + 3.0, rel=1e-9)
    assert f[P + "Median"] == pytest.approx(float(np.median(x)))
    assert f[P + "RootMeanSquared"] == pytest.approx(math.sqrt(np.mean(x**2)))
    assert f[P + "Energy"] == pytest.approx(float(np.sum(x**2)))
    assert f[P + "Range"] == pytest.approx(float(x.max() - x.min()))


def test_entropy_and_uniformity_follow_fixed_bin_width() -> None:
    x = np.array([10.0, 20.0, 30.0, 40.0])  # bins floor(x / 25): 0, 0, 1, 1
    f = firstorder_features(x, bin_width=25.0)
    assert f[P + "Entropy"] == pytest.approx(1.0)
    assert f[P + "Uniformity"] == pytest.approx(0.5)
    f = firstorder_features(x, bin_width=10.0)  # four bins
    assert f[P + "Entropy"] == pytest.approx(2.0)
    assert f[P + "Uniformity"] == pytest.approx(0.25)
    uniform = np.repeat(np.arange(8) * 25.0 + 3.0, 50)  # eight equally filled bins
    assert firstorder_features(uniform)[P + "Entropy"] == pytest.approx(3.0)
    # negative HU bin downwards like pyradiomics: -1 and -24 share bin -1, 0 is bin 0
    g = firstorder_features(np.array([-1.0, -24.0, 0.0, 24.0]), bin_width=25.0)
    assert g[P + "Uniformity"] == pytest.approx(0.5)


def test_robust_mean_absolute_deviation_and_total_energy() -> None:
    x = np.arange(101, dtype=float)  # P10 = 10, P90 = 90: the values 10..90 remain, mean 50
    f = firstorder_features(x, voxel_volumes_mm3=2.0)
    expected = np.mean(np.abs(np.arange(10, 91) - 50.0))
    assert f[P + "RobustMeanAbsoluteDeviation"] == pytest.approx(expected)
    assert f[P + "TotalEnergy"] == pytest.approx(2.0 * np.sum(x**2))
    per_voxel = firstorder_features(x, voxel_volumes_mm3=np.where(x < 50, 1.0, 3.0))
    assert per_voxel[P + "TotalEnergy"] == pytest.approx(np.sum(x**2 * np.where(x < 50, 1.0, 3.0)))
    shifted = firstorder_features(x, voxel_array_shift=1000.0)
    assert shifted[P + "Energy"] == pytest.approx(np.sum((x + 1000.0) ** 2))
    assert shifted[P + "Mean"] == pytest.approx(50.0)


def test_constant_region_and_empty_input() -> None:
    f = firstorder_features(np.full(20, 65.0))
    assert f[P + "Variance"] == 0.0 and f[P + "Skewness"] == 0.0 and f[P + "Kurtosis"] == 0.0
    assert f[P + "Entropy"] == pytest.approx(0.0, abs=1e-12) and f[P + "Uniformity"] == 1.0
    empty = firstorder_features(np.array([]))
    assert set(empty) == {P + n for n in FIRSTORDER_FEATURES} and all(v is None for v in empty.values())


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="bin_width"):
        firstorder_features([1.0, 2.0], bin_width=0.0)
    with pytest.raises(ValueError, match="finite"):
        firstorder_features([1.0, math.nan])
    with pytest.raises(ValueError, match="voxel_volumes_mm3"):
        firstorder_features([1.0, 2.0, 3.0], voxel_volumes_mm3=[1.0, 2.0])
