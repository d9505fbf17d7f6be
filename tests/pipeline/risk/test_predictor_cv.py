"""Folds, preprocessing fitted on training rows only, metrics (ichpipe.pipeline.risk.cv / transform / evaluate)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pytest
from predictor_support import FAST_EVALUATION, FAST_TRAINING, synthetic
from sklearn.metrics import roc_auc_score

from ichpipe.pipeline.risk.cross_validation import (
    CVPredictions,
    auc_score,
    cross_validate,
    references,
    summarise,
    youden_threshold,
)
from ichpipe.pipeline.risk.cv import inner_folds, patient_folds, validation_split
from ichpipe.pipeline.risk.feature_transform import FeatureTransform, signed_log1p
from ichpipe.pipeline.risk.tabular_baselines import logistic_regression


def test_folds_are_patient_level_stratified_and_cover_everyone() -> None:
    ids = [f"p{i}" for i in range(96)]
    y = np.array([1] * 23 + [0] * 73)
    folds = patient_folds(ids, y, n_splits=5, n_repeats=5, seed=0)
    assert len(folds) == 25
    for r in range(5):
        tests = [f.test for f in folds if f.repeat == r]
        assert sorted(np.concatenate(tests).tolist()) == list(range(96))  # each patient tested once per repeat
        for f in (f for f in folds if f.repeat == r):
            assert not set(f.train) & set(f.test)
            assert len(f.train) + len(f.test) == 96
            assert y[f.test].sum() in (4, 5)  # 23 positives over 5 folds
    assert not np.array_equal(folds[0].test, folds[5].test)  # repetitions reshuffle
    again = patient_folds(ids, y, n_splits=5, n_repeats=5, seed=0)
    assert all(np.array_equal(a.test, b.test) for a, b in zip(folds, again, strict=True))


def test_folds_refuse_duplicates_bad_labels_and_tiny_classes() -> None:
    y = np.array([1, 0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="twice"):
        patient_folds(["a", "a", "b", "c", "d", "e"], y, n_splits=2)
    with pytest.raises(ValueError, match="only 0 and 1"):
        patient_folds(list("abcdef"), np.array([1, 0, 2, 0, 1, 0]), n_splits=2)
    with pytest.raises(ValueError, match="at least 5"):
        patient_folds(list("abcdef"), y, n_splits=5)


def test_inner_and_validation_splits_stay_inside_the_training_rows() -> None:
    y = np.array([1] * 10 + [0] * 30)
    for fit, held in inner_folds(y, n_splits=5, seed=1):
        assert not set(fit) & set(held) and y[held].sum() == 2
    fit, val = validation_split(y, fraction=0.2, seed=0)
    assert len(val) == 8 and y[val].sum() == 2 and not set(fit) & set(val)


def test_transform_is_fitted_on_the_given_rows_only() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(10, 2, size=(40, 3))
    x[3, 1] = np.nan
    train, test = np.arange(30), np.arange(30, 40)
    t1 = FeatureTransform.fit(x[train], ["a", "b_volume_ml", "c"], log_suffixes=("volume_ml",))
    x2 = x.copy()
    x2[test] = 1e6  # a test-fold value must not move the fitted statistics
    t2 = FeatureTransform.fit(x2[train], ["a", "b_volume_ml", "c"], log_suffixes=("volume_ml",))
    assert t1 == t2
    assert t1.mean[0] == pytest.approx(x[train, 0].mean())
    assert t1.log_features == (False, True, False)
    z = t1.apply(x[train])
    assert np.allclose(z.mean(axis=0), 0, atol=1e-9) and np.allclose(z.std(axis=0), 1)
    assert t1.apply(x2[test])[:, 0].min() > 1e4  # applied, not refitted
    assert np.isfinite(z).all()  # the NaN was imputed with the training median
    assert FeatureTransform.from_metadata(t1.to_metadata()) == t1
    assert signed_log1p([-1.0, 0.0])[0] == pytest.approx(-np.log(2))
    with pytest.raises(ValueError, match="no observed value"):
        FeatureTransform.fit(np.full((4, 1), np.nan), ["a"])


class _Recording:
    """A logistic regression that records the fitted means of its preprocessing."""

    seen: ClassVar[list[tuple[frozenset[int], tuple[float, ...]]]] = []

    def __init__(self) -> None:
        self._inner = logistic_regression(FAST_TRAINING)
        self.name = "logistic"

    def fit(self, x: np.ndarray, y: np.ndarray, names: Sequence[str], *, seed: int) -> _Recording:
        self._inner.fit(x, y, names, seed=seed)
        assert self._inner.transform is not None
        # identify which patients trained this model through the row-ID column
        _Recording.seen.append((frozenset(int(v) for v in x[:, -1]), self._inner.transform.mean))
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self._inner.predict_proba(x)


def test_cross_validation_never_lets_a_test_patient_move_the_fitted_mean() -> None:
    table, y = synthetic(40)
    x = np.column_stack([table.values, np.arange(40.0)])  # last column: the row's own index
    names = (*table.feature_names, "row_id")
    x2 = x.copy()
    x2[7, 0] += 500.0  # patient 7's age changes
    runs = []
    for data in (x, x2):
        _Recording.seen = []
        cross_validate(data, y, names, table.patient_ids, {"logistic": _Recording},
                       evaluation=FAST_EVALUATION, seed=3)
        runs.append(list(_Recording.seen))
    moved = [a[0] for a, b in zip(*runs, strict=True) if a[1] != b[1]]
    kept = [a[0] for a, b in zip(*runs, strict=True) if a[1] == b[1]]
    assert moved and kept  # some fits saw patient 7 in training, some did not
    assert all(7 in rows for rows in moved)
    assert all(7 not in rows for rows in kept)


def test_auc_youden_and_summary() -> None:
    rng = np.random.default_rng(2)
    y = np.array([0] * 30 + [1] * 10)
    p = np.clip(0.3 * y + rng.normal(0.3, 0.15, 40), 0, 1)
    p[5] = p[35]  # a tie across classes
    assert auc_score(y, p) == pytest.approx(roc_auc_score(y, p))
    t = youden_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    assert t == pytest.approx(0.8) or t == pytest.approx(0.35)
    perfect = CVPredictions("perfect", np.tile(y * 0.9 + 0.05, (3, 1)), np.full((3, 40), 0.5), 0.0)
    s = summarise(perfect, y, n_bootstrap=200, seed=0)
    assert s.auc.value == 1.0 and s.auc.low == 1.0 and s.accuracy.value == 1.0
    assert s.sensitivity.value == 1.0 and s.specificity.value == 1.0
    assert s.brier.value == pytest.approx(0.0025)
    folds = patient_folds([str(i) for i in range(40)], y, n_splits=2, n_repeats=1, seed=0)
    refs = references(y, folds)
    assert refs.majority_accuracy == 0.75 and refs.prevalence_brier == pytest.approx(0.1875, abs=0.01)
    with pytest.raises(ValueError, match="without an out-of-fold"):
        summarise(CVPredictions("x", np.full((1, 40), np.nan), np.zeros((1, 40)), 0.0), y, n_bootstrap=100,
                  seed=0)
