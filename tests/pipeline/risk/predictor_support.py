"""Small synthetic predictor data sets for the tests (not a test module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ichpipe.pipeline.config.predictor_config import EvaluationConfig, TrainingConfig
from ichpipe.pipeline.risk.feature_table import FeatureTable, write_features_csv, write_labels_csv

NAMES = ("age_years", "HM_volume_ml", "HM_original_shape_Sphericity", "HM_original_firstorder_Mean", "noise")

#: Fast settings: a few epochs, 2 folds, 1 repeat.
FAST_TRAINING = TrainingConfig(epochs=15, patience=5, batch_size=16, torch_threads=1)
FAST_EVALUATION = EvaluationConfig(folds=2, repeats=1, threshold_folds=2, bootstrap=100)


def synthetic(n: int = 60, *, seed: int = 0, signal: float = 2.5, space: str = "test-space/1") -> tuple[
    FeatureTable, np.ndarray
]:
    """``n`` patients, a quarter expanded; expansion depends on sphericity (low = lobulated = grows)."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=np.int64)
    y[: n // 4] = 1
    rng.shuffle(y)
    x = np.column_stack([
        rng.normal(65, 10, n),
        np.exp(rng.normal(3.0, 0.6, n)),
        0.7 - 0.08 * signal * y + rng.normal(0, 0.05, n),
        rng.normal(60, 5, n),
        rng.normal(0, 1, n),
    ])
    ids = tuple(f"p{i:03d}" for i in range(n))
    return FeatureTable(ids, NAMES, x, space), y


def write_synthetic(folder: Path, *, n: int = 60, undetermined: int = 6) -> tuple[Path, Path]:
    """Features and labels CSVs; the last ``undetermined`` patients have no determined label."""
    table, y = synthetic(n)
    labels: dict[str, int | None] = {pid: int(v) for pid, v in zip(table.patient_ids, y, strict=True)}
    for pid in table.patient_ids[n - undetermined:]:
        labels[pid] = None
    features = write_features_csv(table, folder / "features.csv")
    label_file = write_labels_csv(labels, folder / "labels.csv", rule="test rule")
    return features, label_file


FAST_CONFIG_YAML = """\
predictor:
  training:
    epochs: 15
    patience: 5
    batch_size: 16
  evaluation:
    folds: 2
    repeats: 1
    threshold_folds: 2
    bootstrap: 100
"""
