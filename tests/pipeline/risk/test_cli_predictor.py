"""``ichpipe features``, ``ichpipe train predictor`` and ``ichpipe predict-expansion`` through CliRunner.

Exit status: 0 success, 1 the job failed (inputs unusable), 2 bad usage.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from predictor_support import FAST_CONFIG_YAML, write_synthetic

from ichpipe.models.hashing import file_sha256
from ichpipe.pipeline.cli import cli


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One quick training run on a synthetic table (54 labelled, 6 undetermined patients)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cli-predictor")
    features, labels = write_synthetic(root)
    config = root / "fast.yaml"
    config.write_text(FAST_CONFIG_YAML)
    result = CliRunner().invoke(cli, [
        "train", "predictor", "--features", str(features), "--labels", str(labels), "--out", str(root / "out"),
        "--models", "sacnn,logistic,volume", "--config", str(config), "--json",
    ])
    assert result.exit_code == 0, result.output
    return {"root": root, "features": features, "labels": labels, "config": config,
            "summary": root / "summary.json", "out": root / "out", "stdout": Path(result.stdout)}


def test_train_writes_every_output(trained: dict[str, Path]) -> None:
    out = trained["out"]
    for name in ("cv_table.md", "cv_results.json", "calibration.png", "oof_predictions.csv",
                 "expansion_sacnn.pt", "MODEL_CARD_PREDICTOR.md"):
        assert (out / name).is_file(), name
    results = json.loads((out / "cv_results.json").read_text())
    assert results["references"]["n_patients"] == 54  # the 6 undetermined patients are excluded
    assert [r["name"] for r in results["results"]] == ["sacnn", "logistic", "volume"]
    card = (out / "MODEL_CARD_PREDICTOR.md").read_text()
    assert file_sha256(out / "expansion_sacnn.pt") in card and "Majority-class accuracy" in card
    assert "![Calibration" in card
    assert "Flagged fraction at that threshold" in card and "What `predict-expansion` prints" in card
    meta = torch.load(out / "expansion_sacnn.pt", weights_only=True)["metadata"]["normalisation"]
    assert meta["calibration"]["method"] == "platt" and meta["performance"]["n_patients"] == 54
    assert meta["performance"]["statement"].startswith("This model's cross-validated AUC is")
    assert 0.0 < meta["flagged_fraction"]["training_patients"] < 1.0
    assert (out / "calibration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    oof = (out / "oof_predictions.csv").read_text().splitlines()
    assert len(oof) == 1 + 54 * 3  # header + patients x models x 1 repeat


def test_predict_from_features_csv(trained: dict[str, Path]) -> None:
    ckpt = trained["out"] / "expansion_sacnn.pt"
    result = CliRunner().invoke(cli, [
        "predict-expansion", "--features", str(trained["features"]), "--checkpoint", str(ckpt),
        "--patient", "p001", "--patient", "p002", "--json",
    ])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["model"]["checkpoint_sha256"] == file_sha256(ckpt)
    assert [p["patient_id"] for p in out["predictions"]] == ["p001", "p002"]
    assert all(0.0 <= p["probability"] <= 1.0 for p in out["predictions"])
    statement = out["model"]["statement"]
    assert statement.startswith("This model's cross-validated AUC is")
    assert all(p["statement"] == statement and p["calibrated"] for p in out["predictions"])
    text = CliRunner().invoke(cli, ["predict-expansion", "--features", str(trained["features"]),
                                    "--checkpoint", str(ckpt), "--patient", "p001"])
    assert text.exit_code == 0 and "p001: probability of expansion" in text.stdout
    assert statement in text.stdout
    assert out["model"]["ranking_usable"] and ("above threshold" in text.stdout or "below threshold" in text.stdout)
    assert file_sha256(ckpt) in text.stdout


def test_predict_refuses_missing_features_with_exit_1(trained: dict[str, Path], tmp_path: Path) -> None:
    partial = tmp_path / "partial.csv"
    lines = trained["features"].read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if name != "HM_original_shape_Sphericity"]
    partial.write_text("\n".join(",".join(line.split(",")[i] for i in keep) for line in lines) + "\n")
    ckpt = trained["out"] / "expansion_sacnn.pt"
    result = CliRunner().invoke(cli, ["predict-expansion", "--features", str(partial), "--checkpoint", str(ckpt)])
    assert result.exit_code == 1
    assert "HM_original_shape_Sphericity" in result.stderr
    imputed = CliRunner().invoke(cli, ["predict-expansion", "--features", str(partial), "--checkpoint", str(ckpt),
                                       "--impute", "--patient", "p003"])
    assert imputed.exit_code == 0 and "(imputed 1: HM_original_shape_Sphericity)" in imputed.stdout
    assert "filled with the training medians: p003 (1)" in imputed.stdout


def test_predict_usage_errors_exit_2_and_missing_checkpoint_exit_1(trained: dict[str, Path], tmp_path: Path) -> None:
    assert CliRunner().invoke(cli, ["predict-expansion"]).exit_code == 2
    missing = CliRunner().invoke(cli, ["predict-expansion", "--features", str(trained["features"]),
                                       "--checkpoint", str(tmp_path / "none.pt")])
    assert missing.exit_code == 1 and "does not exist" in missing.stderr
    unknown = CliRunner().invoke(cli, ["predict-expansion", "--features", str(trained["features"]),
                                       "--checkpoint", str(trained["out"] / "expansion_sacnn.pt"),
                                       "--patient", "nobody"])
    assert unknown.exit_code == 1 and "nobody" in unknown.stderr


def test_train_usage_and_job_errors(trained: dict[str, Path], tmp_path: Path) -> None:
    base = ["train", "predictor", "--features", str(trained["features"]), "--out", str(tmp_path / "o"),
            "--config", str(trained["config"])]
    assert CliRunner().invoke(cli, base).exit_code == 2  # --labels missing
    bad_model = CliRunner().invoke(cli, [*base, "--labels", str(trained["labels"]), "--models", "svm"])
    assert bad_model.exit_code == 2 and "--models" in bad_model.stderr
    no_file = CliRunner().invoke(cli, [*base, "--labels", str(tmp_path / "none.csv")])
    assert no_file.exit_code == 2
    few = tmp_path / "few.csv"
    few.write_text("patient_id,label\np000,1\np001,0\np002,0\np003,0\n")
    job = CliRunner().invoke(cli, [*base, "--labels", str(few)])
    assert job.exit_code == 1 and "each class needs at least" in job.stderr


def test_train_skips_a_score_whose_columns_are_absent(trained: dict[str, Path], tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, [
        "train", "predictor", "--features", str(trained["features"]), "--labels", str(trained["labels"]),
        "--out", str(tmp_path / "o"), "--config", str(trained["config"]), "--models", "volume,brain",
        "--no-save", "--json",
    ])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r["name"] for r in report["results"]] == ["volume"]
    assert any("BRAIN" in n and "hx_stroke" in n for n in report["notes"])


def test_features_command_usage(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["features", "--out", str(tmp_path / "f.csv")])
    assert result.exit_code == 2 and "exactly one source" in result.stderr


def test_features_from_contest(shared_data: Path, tmp_path: Path) -> None:
    contest = shared_data / "contest-2023E"
    if not contest.is_dir():
        pytest.skip("../shared/data/contest-2023E not present")
    result = CliRunner().invoke(cli, [
        "features", "--contest", str(contest), "--out", str(tmp_path / "f.csv"),
        "--labels-out", str(tmp_path / "l.csv"), "--json",
    ])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["n_patients"], summary["n_features"]) == (130, 97)
    assert (summary["expanded"], summary["not_expanded"], summary["undetermined"]) == (23, 73, 34)
    header = (tmp_path / "f.csv").read_text().splitlines()[0]
    assert "mRS" not in header.replace("pre_mrs", "") and "数据集" not in header


def test_predict_for_a_patient_in_the_results_store(tmp_path: Path) -> None:
    from datetime import datetime

    from predictor_support import FAST_EVALUATION, FAST_TRAINING, synthetic

    from ichpipe.pipeline.config.store_config import StoreConfig
    from ichpipe.pipeline.measure.features.extract import FEATURE_SPACE
    from ichpipe.pipeline.risk.train import save_predictor, train_predictor
    from ichpipe.pipeline.serial.store import ClinicalRecord, MeasurementRecord, open_store, record_batch

    table, y = synthetic(40, space=FEATURE_SPACE)
    trained = train_predictor(table.values, y, table.feature_names, feature_space=FEATURE_SPACE,
                              training=FAST_TRAINING, evaluation=FAST_EVALUATION)
    ckpt = save_predictor(tmp_path / "ibsi.pt", trained, training_data="synthetic", training=FAST_TRAINING,
                          label_rule="test", clinical_mapping="contest_2023e", allow_post_baseline=False)
    store = tmp_path / "store.sqlite"
    values = {"volume_ml": 30.0, "original_shape_Sphericity": 0.6, "original_firstorder_Mean": 62.0}
    with open_store(StoreConfig(path=str(store))) as s:
        record_batch(s, measurements=[MeasurementRecord(
            patient_id="a", series_instance_uid="1.2.3", volume_ml=30.0, accession_number="A1",
            acquisition_datetime=datetime(2024, 5, 1, 3), features={"feature_space": FEATURE_SPACE, "values": values},
        )], clinical=[ClinicalRecord(patient_id="a", onset_to_first_scan_h=2.0, clinical={"年龄": 66})])
    args = ["predict-expansion", "--patient", "a", "--store", str(store), "--checkpoint", str(ckpt)]
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 1 and "noise" in refused.stderr  # the one feature the store lacks
    result = CliRunner().invoke(cli, [*args, "--impute", "--json"])
    assert result.exit_code == 0, result.output
    (prediction,) = json.loads(result.stdout)["predictions"]
    assert prediction["patient_id"] == "a" and prediction["imputed"] == ["noise"]
    absent = CliRunner().invoke(cli, ["predict-expansion", "--patient", "zz", "--store", str(store),
                                      "--checkpoint", str(ckpt)])
    assert absent.exit_code == 1 and "no dated scan" in absent.stderr
