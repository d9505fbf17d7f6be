"""The seed's own split, for context only: train on sub001-sub060, test on sub061-sub100.

Seed 004 reports 97.5 % accuracy on its test patients (Table 5 lists
sub061...sub100). This script trains every model exactly as the
cross-validation does (same preprocessing, class weighting, inner folds,
refit, calibration and threshold chosen inside the training patients) on the
determined patients of sub001-sub060 and scores the determined patients of
sub061-sub100: AUC with a patient-level bootstrap 95 % interval, Brier score,
flagged fraction beside the test prevalence. One split of ~40 patients is far
noisier than the repeated cross-validation in the model card; nothing is
tuned on it.

Run: ``python bench/predictor_seed_split.py [CONTEST_DIR]`` (prints a Markdown table).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from ichpipe.pipeline.config import load_config
from ichpipe.pipeline.jobs.train_predictor import MODEL_NAMES, model_factories
from ichpipe.pipeline.risk.cross_validation import auc_score, model_label
from ichpipe.pipeline.risk.feature_table import contest_feature_table, contest_labels, labelled
from ichpipe.pipeline.serial.clinical import load_clinical_mapping
from ichpipe.pipeline.serial.expansion import PRESETS

CONTEST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "contest-2023E"


def main(contest: Path) -> str:
    torch.set_num_threads(1)
    config = load_config(None)
    cfg = config.predictor
    table = contest_feature_table(contest, clinical_mapping=load_clinical_mapping(cfg.clinical_mapping))
    labels = contest_labels(contest, rule=PRESETS["contest_2023e"])
    train_ids = [p for p in table.patient_ids if int(p[3:]) <= 60]
    test_ids = [p for p in table.patient_ids if 61 <= int(p[3:]) <= 100]
    train, test = labelled(table.rows(train_ids), labels), labelled(table.rows(test_ids), labels)
    factories = model_factories(MODEL_NAMES, cfg.training, cfg.evaluation)
    names = train.table.feature_names
    rows = [
        f"Seed split: train {len(train.y)} patients ({int(train.y.sum())} expanded), "
        f"test {len(test.y)} ({int(test.y.sum())} expanded, prevalence {test.y.mean():.3f}); majority-class "
        f"test accuracy {max(test.y.mean(), 1 - test.y.mean()):.3f}.",
        "",
        "| Model | Test AUC (95 % CI) | Brier | Flagged fraction | Sensitivity | Specificity |",
        "|---|---|---|---|---|---|",
    ]
    rng = np.random.default_rng(0)
    boot = [rng.integers(0, len(test.y), len(test.y)) for _ in range(2000)]
    boot = [b for b in boot if 0 < test.y[b].sum() < len(b)]
    for name in MODEL_NAMES:
        model = factories[name]().fit(train.table.values, train.y, names, seed=cfg.training.seed)
        p = model.predict_proba(test.table.values)
        yhat = model.flag(test.table.values)
        pos = test.y == 1
        aucs = [auc_score(test.y[b], p[b]) for b in boot]
        low, high = np.percentile(aucs, [2.5, 97.5])
        rows.append(
            f"| {model_label(name)} | {auc_score(test.y, p):.3f} ({low:.3f}-{high:.3f}) "
            f"| {np.mean((p - test.y) ** 2):.3f} | {yhat.mean():.3f} | {yhat[pos].mean():.3f} "
            f"| {(~yhat[~pos]).mean():.3f} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else CONTEST))
