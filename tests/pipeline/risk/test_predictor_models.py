"""The seed's network and the baselines as classifiers; the predictor checkpoint and inference."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from predictor_support import FAST_EVALUATION, FAST_TRAINING, synthetic

from ichpipe.errors import CheckpointError, PredictorInputError
from ichpipe.models.hashing import file_sha256
from ichpipe.models.registry import build_model
from ichpipe.pipeline.risk.calibration import PlattScaling
from ichpipe.pipeline.risk.cross_validation import auc_score
from ichpipe.pipeline.risk.feature_table import FeatureTable
from ichpipe.pipeline.risk.infer import load_predictor, predict
from ichpipe.pipeline.risk.tabular_baselines import (
    balanced_weights,
    gradient_boosting,
    logistic_regression,
    volume_logistic,
)
from ichpipe.pipeline.risk.train import SACNNModel, save_predictor, train_predictor


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_network_learns_a_clear_signal_and_is_seeded() -> None:
    table, y = synthetic(80, signal=4.0)
    train, test = np.arange(60), np.arange(60, 80)
    cfg = replace(FAST_TRAINING, epochs=40, patience=40)
    model = SACNNModel(cfg).fit(table.values[train], y[train], table.feature_names, seed=1)
    p = model.predict_proba(table.values[test])
    assert auc_score(y[test], p) > 0.85
    again = SACNNModel(cfg).fit(table.values[train], y[train], table.feature_names, seed=1)
    assert np.array_equal(p, again.predict_proba(table.values[test]))
    other = SACNNModel(cfg).fit(table.values[train], y[train], table.feature_names, seed=2)
    assert not np.array_equal(p, other.predict_proba(table.values[test]))


def test_early_stopping_keeps_the_best_epoch() -> None:
    table, y = synthetic(60, signal=0.0)  # nothing to learn: validation loss soon rises
    cfg = replace(FAST_TRAINING, epochs=200, patience=5, min_epochs=1, smoothing=1)  # the plain rule
    model = SACNNModel(cfg).fit(table.values, y, table.feature_names, seed=0)
    h = model.history
    assert h.epochs_run < 200 and h.epochs_run - h.best_epoch == 5
    assert h.best_val_loss == pytest.approx(min(h.val_loss))


def test_baselines_learn_and_the_volume_model_reads_only_the_volume() -> None:
    table, y = synthetic(80, signal=4.0)
    train, test = np.arange(60), np.arange(60, 80)
    for make in (logistic_regression, gradient_boosting):
        model = make(FAST_TRAINING).fit(table.values[train], y[train], table.feature_names, seed=0)
        assert auc_score(y[test], model.predict_proba(table.values[test])) > 0.85, model.name
    volume = volume_logistic(FAST_TRAINING).fit(table.values[train], y[train], table.feature_names, seed=0)
    changed = table.values.copy()
    changed[:, [0, 2, 3, 4]] = 0.0
    assert np.array_equal(volume.predict_proba(table.values[test]), volume.predict_proba(changed[test]))
    w = balanced_weights(y)
    assert w[y == 1].sum() == pytest.approx(w[y == 0].sum())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FeatureTable, np.ndarray]:
    torch.set_num_threads(1)
    table, y = synthetic(60, signal=4.0)
    trained = train_predictor(table.values, y, table.feature_names, feature_space=table.feature_space,
                              training=FAST_TRAINING, evaluation=FAST_EVALUATION)
    path = tmp_path_factory.mktemp("predictor") / "p.pt"
    save_predictor(path, trained, training_data="synthetic", training=FAST_TRAINING, label_rule="test",
                   clinical_mapping="contest_2023e", allow_post_baseline=False, metrics={"cv_auc": 0.5})
    expected = trained.model.predict_proba(table.values)
    return path, table, expected


def test_checkpoint_carries_features_and_statistics(checkpoint) -> None:
    path, table, expected = checkpoint
    model = load_predictor(path)
    assert model.feature_names == table.feature_names and model.feature_space == table.feature_space
    assert model.sha256 == file_sha256(path) and model.threshold is not None
    norm = model.checkpoint.metadata["normalisation"]
    assert norm["feature_names"] == list(table.feature_names)
    assert len(norm["transform"]["mean"]) == len(norm["transform"]["std"]) == 5
    predictions = predict(model, table)
    assert np.allclose([p.probability for p in predictions], expected, atol=1e-6)
    assert [p.patient_id for p in predictions] == list(table.patient_ids)
    reordered = table.columns(list(reversed(table.feature_names)))  # columns are matched by name
    assert np.allclose([p.probability for p in predict(model, reordered)], expected, atol=1e-6)


def test_prediction_is_calibrated_and_carries_the_statement(checkpoint) -> None:
    path, table, _ = checkpoint
    model = load_predictor(path)
    assert model.calibration is not None and model.ranking_usable
    assert model.statement == model.describe()["statement"]
    first = predict(model, table)[0]
    assert first.calibrated and first.statement == model.statement
    assert first.probability == pytest.approx(float(model.calibration.apply(np.array([first.raw_probability]))[0]))
    assert first.above_threshold == (first.raw_probability >= model.threshold)
    flat = replace(model, calibration=PlattScaling(slope=0.0, intercept=-1.0))  # no usable ranking
    probabilities = {round(p.probability, 9) for p in predict(flat, table)}
    assert probabilities == {round(1.0 / (1.0 + np.exp(1.0)), 9)} and not flat.ranking_usable
    legacy = replace(model, calibration=None, performance=None)  # an old checkpoint: raw output, no CV numbers
    assert not predict(legacy, table)[0].calibrated and "no cross-validated performance" in legacy.statement


def test_prediction_refuses_missing_features_naming_them(checkpoint) -> None:
    path, table, _ = checkpoint
    model = load_predictor(path)
    partial = table.columns(["age_years", "HM_volume_ml", "noise"])
    with pytest.raises(PredictorInputError, match="lacks 2 of the 5 features") as info:
        predict(model, partial)
    assert "HM_original_shape_Sphericity" in str(info.value) and "HM_original_firstorder_Mean" in str(info.value)
    values = table.values.copy()
    values[3, 1] = np.nan
    holes = FeatureTable(table.patient_ids, table.feature_names, values, table.feature_space)
    # The patient is named (the command line masks it unless --log-phi), with what it lacks.
    with pytest.raises(PredictorInputError, match=rf"1 patient\(s\) .* - {table.patient_ids[3]}: 1 \(HM_volume_ml\)"):
        predict(model, holes)
    imputed = predict(model, holes, impute=True)
    assert imputed[3].imputed == ("HM_volume_ml",) and imputed[2].imputed == ()
    assert predict(model, partial, impute=True)[0].imputed == (
        "HM_original_shape_Sphericity", "HM_original_firstorder_Mean")
    other = FeatureTable(table.patient_ids, table.feature_names, table.values, "ichpipe-ibsi/1")
    with pytest.raises(PredictorInputError, match="feature space 'ichpipe-ibsi/1'"):
        predict(model, other)


def test_a_segmentation_or_bare_checkpoint_is_refused(tmp_path: Path) -> None:
    bare = tmp_path / "bare.pt"
    torch.save(build_model("expansion_sacnn", n_features=5).state_dict(), bare)
    with pytest.raises(CheckpointError):
        load_predictor(bare)


def test_inference_imports_no_training_code() -> None:
    # scikit-learn itself is loaded by MONAI through the model registry; the training modules must not be.
    # (Importing ichpipe.pipeline.cli registers every command; their heavy imports happen inside the commands.)
    code = (
        "import sys, ichpipe.pipeline.risk.infer, ichpipe.pipeline.cli.predict_cmd\n"
        "bad = [m for m in sys.modules if m.startswith(('ichpipe.pipeline.risk.train',"
        " 'ichpipe.pipeline.risk.cv', 'ichpipe.pipeline.risk.cross_validation',"
        " 'ichpipe.pipeline.risk.tabular_baselines', 'ichpipe.pipeline.jobs.train_predictor',"
        " 'sklearn.ensemble'))]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[3])
    assert result.returncode == 0, result.stdout + result.stderr


def test_shipped_checkpoint_carries_its_contest_features() -> None:
    from ichpipe.pipeline.config.models_config import resolve_checkpoint
    from ichpipe.pipeline.config.predictor_config import PredictorConfig
    from ichpipe.pipeline.risk.feature_table import CONTEST_FEATURE_SPACE, contest_feature_table
    from ichpipe.pipeline.serial.clinical import is_leaky_name, load_clinical_mapping

    path = resolve_checkpoint(PredictorConfig().checkpoint)
    model = load_predictor(path)
    assert model.feature_space == CONTEST_FEATURE_SPACE and len(model.feature_names) == 97
    assert not any(is_leaky_name(n) or n.startswith("tx_") for n in model.feature_names)
    assert model.threshold is not None and 0.0 < model.threshold < 1.0
    trained_on = model.checkpoint.metadata["normalisation"]["training"]
    assert (trained_on["n_patients"], trained_on["n_expanded"]) == (96, 23)
    contest = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "contest-2023E"
    if not contest.is_dir():
        pytest.skip("../shared/data/contest-2023E not present")
    table = contest_feature_table(contest, clinical_mapping=load_clinical_mapping("contest_2023e"))
    unseen = table.rows([f"sub{i}" for i in range(101, 131)])
    probabilities = [p.probability for p in predict(model, unseen)]
    assert len(probabilities) == 30 and all(0.0 <= p <= 1.0 for p in probabilities)


def test_shipped_checkpoint_flags_a_sane_share_and_says_what_it_knows() -> None:
    from ichpipe.pipeline.config.models_config import resolve_checkpoint
    from ichpipe.pipeline.config.predictor_config import PredictorConfig
    from ichpipe.pipeline.risk.feature_table import contest_feature_table, contest_labels, labelled
    from ichpipe.pipeline.serial.clinical import load_clinical_mapping
    from ichpipe.pipeline.serial.expansion import PRESETS

    model = load_predictor(resolve_checkpoint(PredictorConfig().checkpoint))
    assert model.calibration is not None and model.performance is not None
    assert model.statement.startswith("This model's cross-validated AUC is")
    stored = model.checkpoint.metadata["normalisation"]["flagged_fraction"]
    contest = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "contest-2023E"
    if not contest.is_dir():
        pytest.skip("../shared/data/contest-2023E not present")
    table = contest_feature_table(contest, clinical_mapping=load_clinical_mapping("contest_2023e"))
    data = labelled(table, contest_labels(contest, rule=PRESETS["contest_2023e"]))
    flagged = np.mean([p.above_threshold for p in predict(model, data.table)])
    prevalence = data.y.mean()
    assert flagged == pytest.approx(stored["training_patients"])
    assert prevalence / 1.5 <= flagged <= prevalence * 1.5  # the old checkpoint flagged 91 of 96
