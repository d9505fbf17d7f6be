"""Calibration, thresholds, the refit recipe, clinical scores and the performance statement."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from predictor_support import FAST_TRAINING, synthetic

from ichpipe.pipeline.config.predictor_config import EvaluationConfig, TrainingConfig
from ichpipe.pipeline.risk.calibrated import CalibratedModel
from ichpipe.pipeline.risk.calibration import (
    PlattScaling,
    calibration_slope_intercept,
    performance_statement,
    prevalence_threshold,
    youden_threshold_capped,
)
from ichpipe.pipeline.risk.cross_validation import CVPredictions, auc_score, summarise
from ichpipe.pipeline.risk.scores import BrainScoreModel, brain_points, brain_published_risk
from ichpipe.pipeline.risk.tabular_baselines import PRESPECIFIED, derived_columns, l1_logistic, prespecified_logistic
from ichpipe.pipeline.risk.train import SACNNModel


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def test_platt_recovers_a_known_miscalibration_and_never_inverts() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 1.5, 4000)
    y = (rng.random(4000) < _sigmoid(z)).astype(np.int64)  # true risk sigmoid(z)
    p = _sigmoid(2.0 * z + 1.0)  # over-confident and too high
    cal = PlattScaling.fit(p, y)
    assert cal.slope == pytest.approx(0.5, abs=0.05) and cal.intercept == pytest.approx(-0.5, abs=0.1)
    slope, citl = calibration_slope_intercept(cal.apply(p), y)
    assert slope == pytest.approx(1.0, abs=0.05) and citl == pytest.approx(0.0, abs=0.05)
    raw_slope, raw_citl = calibration_slope_intercept(p, y)
    assert raw_slope == pytest.approx(0.5, abs=0.05) and raw_citl < -0.3
    backwards = PlattScaling.fit(1.0 - p, y)  # a ranking that runs backwards is not used inverted
    assert backwards.slope == 0.0
    assert np.allclose(backwards.apply(p), y.mean())
    restored = PlattScaling.from_metadata(cal.to_metadata())
    assert restored == cal
    with pytest.raises(ValueError, match="both classes"):
        PlattScaling.fit(p[:10], np.zeros(10))
    with pytest.raises(ValueError, match="Unknown calibration method"):
        PlattScaling.from_metadata({"method": "isotonic"})


def test_thresholds_flag_a_sane_share() -> None:
    p = np.linspace(0.0, 1.0, 100)
    t = prevalence_threshold(p, 0.25)
    assert np.mean(p >= t) == pytest.approx(0.25)
    y = (p > 0.5).astype(np.int64)  # Youden alone would flag 50 %
    capped = youden_threshold_capped(p, y, prevalence=0.2, cap=1.5)
    assert np.mean(p >= capped) <= 0.3 + 1e-9
    constant = np.full(50, 0.3)  # no ranking at all: nobody is flagged, not everybody
    assert np.mean(constant >= prevalence_threshold(constant, 0.25)) == 0.0
    ties = np.array([0.1] * 10 + [0.9] * 10)  # 50 % share or nothing: 25 % is as far from both; fewer wins
    assert np.mean(ties >= prevalence_threshold(ties, 0.25)) == 0.0
    assert np.mean(ties >= prevalence_threshold(ties, 0.4)) == 0.5
    with pytest.raises(ValueError, match="prevalence"):
        prevalence_threshold(p, 1.5)
    with pytest.raises(ValueError, match="cap"):
        youden_threshold_capped(p, y, prevalence=0.2, cap=0.5)


def test_min_epochs_and_smoothing_never_keep_epoch_one() -> None:
    table, y = synthetic(60, signal=0.0)  # nothing to learn: the raw validation loss is lowest at once
    cfg = replace(FAST_TRAINING, epochs=60, patience=5, min_epochs=8, smoothing=3)
    model = SACNNModel(cfg).fit(table.values, y, table.feature_names, seed=0)
    h = model.history
    assert h.best_epoch >= 8
    assert h.best_val_loss == pytest.approx(float(np.mean(h.val_loss[h.best_epoch - 3 : h.best_epoch])))
    assert h.epochs_run - h.best_epoch == 5 or h.epochs_run == 60
    fixed = SACNNModel(cfg).fit(table.values, y, table.feature_names, seed=0, epochs=12)
    assert fixed.history.epochs_run == 12 and fixed.history.val_loss == []
    with pytest.raises(ValueError, match="epochs"):
        SACNNModel(cfg).fit(table.values, y, table.feature_names, seed=0, epochs=0)
    with pytest.raises(ValueError, match="min_epochs"):
        TrainingConfig(epochs=5, min_epochs=10)


def test_calibrated_network_refits_for_the_inner_median_epoch_and_flags_a_sane_share() -> None:
    table, y = synthetic(80, signal=3.0)
    cfg = replace(FAST_TRAINING, epochs=30, patience=5, min_epochs=4, smoothing=2)
    model = CalibratedModel(lambda: SACNNModel(cfg), n_splits=3).fit(table.values, y, table.feature_names, seed=0)
    inner = model.base.history.refit_from
    assert len(inner) == 3 and model.base.history.best_epoch == max(4, round(float(np.median(inner))))
    assert model.base.history.epochs_run == model.base.history.best_epoch  # all rows, fixed epochs
    assert not np.isnan(model.oof_raw).any() and auc_score(y, model.oof_raw) > 0.8
    assert model.calibration.slope > 0
    prevalence = y.mean()
    assert np.mean(model.oof_raw >= model.threshold_raw) == pytest.approx(prevalence, abs=0.03)
    flagged = model.flag(table.values).mean()
    assert prevalence / 1.5 <= flagged <= prevalence * 1.5
    p = model.predict_proba(table.values)
    assert np.array_equal(model.flag(table.values), p >= model.threshold - 1e-12)


def test_summary_reports_calibration_and_flagged_fraction() -> None:
    rng = np.random.default_rng(1)
    y = np.array([0] * 60 + [1] * 20)
    z = rng.normal(0, 1, (3, 80)) + 1.5 * y
    prob = _sigmoid(z - 1.5)
    pred = CVPredictions("m", prob, np.full((3, 80), 0.5), 0.0, raw=prob)
    s = summarise(pred, y, n_bootstrap=200, seed=0)
    assert s.flagged is not None and s.flagged.value == pytest.approx(float(np.mean(prob >= 0.5)))
    assert s.calibration_slope is not None and s.calibration_intercept is not None
    assert s.calibration_slope.low <= s.calibration_slope.value <= s.calibration_slope.high
    flags_from_raw = CVPredictions("m", np.full((3, 80), 0.25), np.full((3, 80), 0.5), 0.0, raw=prob)
    assert summarise(flags_from_raw, y, n_bootstrap=100, seed=0).flagged.value == pytest.approx(s.flagged.value)


def test_brain_points_follow_the_paper() -> None:
    points = brain_points([5.0, 15.0, 25.0, 25.0, 25.0], [0, 0, 0, 1, 1], [6.0, 6.0, 6.0, 6.0, 0.5])
    assert list(points) == [0.0, 5.0, 7.0, 11.0, 16.0]
    assert list(brain_points([10.0, 20.0], [0, 0], [1.0, 5.0])) == [5.0, 6.0]  # edges: <= 10 mL, <= 1 h, <= 5 h
    assert np.isnan(brain_points([np.nan], [0], [1.0])[0])
    risk = brain_published_risk([0, 10, 24])
    assert risk == pytest.approx([0.034, 0.231, 0.858], abs=0.002)  # the paper's table


def test_brain_model_reads_only_its_columns_and_imputes_with_training_medians() -> None:
    names = ("HM_volume_ml", "hx_stroke", "onset_to_scan_h", "noise")
    x = np.array([[5.0, 0, 6.0, 1.0], [25.0, 1, 0.5, 2.0], [15.0, 0, np.nan, 3.0], [30.0, 0, 2.0, 4.0]])
    y = np.array([0, 1, 0, 1])
    model = BrainScoreModel(TrainingConfig(), published=True).fit(x, y, names, seed=0)
    assert list(model.points(x)) == [0.0, 16.0, 5.0 + 4.0, 7.0 + 4.0]  # NaN hours -> training median 2.0 h
    changed = x.copy()
    changed[:, 3] = 99.0
    assert np.array_equal(model.predict_proba(x), model.predict_proba(changed))
    with pytest.raises(ValueError, match="hx_stroke"):
        BrainScoreModel(TrainingConfig()).fit(x[:, [0, 2]], y, ("HM_volume_ml", "onset_to_scan_h"), seed=0)


def test_derived_predictors_and_in_fold_l1_selection() -> None:
    names = ("HM_original_shape_Sphericity", "HM_original_firstorder_Variance", "HM_original_firstorder_Mean",
             "HM_original_firstorder_Median", "HM_original_firstorder_10Percentile")
    x = np.array([[0.8, 100.0, 50.0, 60.0, 45.0]])
    out = derived_columns(x, names, ["HM_shape_irregularity", "HM_density_heterogeneity", "HM_hypodensity"])
    assert out[0] == pytest.approx([0.2, 0.2, 0.25])
    with pytest.raises(ValueError, match="sbp_mmhg"):
        derived_columns(x, names, PRESPECIFIED)
    table, y = synthetic(80, signal=4.0)
    l1 = l1_logistic(FAST_TRAINING).fit(table.values[:60], y[:60], table.feature_names, seed=0)
    assert auc_score(y[60:], l1.predict_proba(table.values[60:])) > 0.85
    assert prespecified_logistic(FAST_TRAINING).name == "prespecified"


def test_performance_statement_says_when_the_interval_includes_chance() -> None:
    chance = performance_statement({"cv_auc": 0.55, "cv_auc_ci_low": 0.42, "cv_auc_ci_high": 0.68,
                                    "n_patients": 96, "n_expanded": 23})
    assert chance == ("This model's cross-validated AUC is 0.55 (95 % CI 0.42-0.68, 96 patients, 23 expanded), "
                      "which does not exclude chance: do not use this probability for decisions.")
    better = performance_statement({"cv_auc": 0.75, "cv_auc_ci_low": 0.62, "cv_auc_ci_high": 0.86})
    assert better.startswith("This model's cross-validated AUC is 0.75 (95 % CI 0.62-0.86)")
    assert "does not exclude chance" not in better and "research use only" in better
    assert "below chance (no usable ranking)" in performance_statement({"cv_auc": 0.4, "cv_auc_ci_low": 0.3,
                                                          "cv_auc_ci_high": 0.48})
    assert "no cross-validated performance" in performance_statement(None)


def test_evaluation_config_refuses_unknown_rules() -> None:
    with pytest.raises(ValueError, match="threshold_rule"):
        EvaluationConfig(threshold_rule="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="calibration"):
        EvaluationConfig(calibration="isotonic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="flag_cap"):
        EvaluationConfig(flag_cap=0.9)
