"""Patient-level, stratified, repeated k-fold splits.

A feature table has exactly one row per patient, so splitting rows is
splitting patients: no patient is ever in a training fold and its test fold
at once. Folds are stratified (each holds the same share of expanded
patients, up to rounding) and repeated with different shuffles, all from one
seed (scikit-learn's ``RepeatedStratifiedKFold``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold, train_test_split

__all__ = ["Fold", "inner_folds", "patient_folds", "validation_split"]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Fold:
    """One split: row indices of the training and test patients.

    Attributes
    ----------
    repeat, fold:
        Which repetition and which fold of it (0-based).
    train, test:
        Row indices (disjoint; together every row once).
    """

    repeat: int
    fold: int
    train: IntArray
    test: IntArray


def _check_labels(y: npt.ArrayLike, n_splits: int, name: str) -> IntArray:
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"Argument '{name}' must be a non-empty 1D array of 0/1 labels.")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"Argument '{name}' must hold only 0 and 1 (undetermined patients are excluded first).")
    counts = np.bincount(labels.astype(np.int64), minlength=2)
    if counts.min() < n_splits:
        raise ValueError(
            f"Argument '{name}' has {counts[1]} positive and {counts[0]} negative patients; each class "
            f"needs at least {n_splits} for {n_splits} folds."
        )
    return labels.astype(np.int64)


def patient_folds(
    patient_ids: Sequence[str],
    y: npt.ArrayLike,
    *,
    n_splits: int = 5,
    n_repeats: int = 5,
    seed: int = 0,
) -> list[Fold]:
    """Repeated stratified k-fold splits of patients.

    Parameters
    ----------
    patient_ids:
        One ID per row; each patient must occur once.
    y:
        Labels (0/1) per row.
    n_splits, n_repeats:
        Folds per repetition and repetitions.
    seed:
        Seed of the shuffles.

    Returns
    -------
    list of Fold
        ``n_splits * n_repeats`` folds, repetition by repetition.

    Raises
    ------
    ValueError
        If a patient occurs twice, labels are not 0/1, or a class has fewer
        patients than folds.
    """
    if n_splits < 2 or n_repeats < 1:
        raise ValueError(f"Arguments 'n_splits' (>= 2) and 'n_repeats' (>= 1) are {n_splits}, {n_repeats}.")
    ids = list(patient_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("Argument 'patient_ids' names a patient twice; the table must have one row per patient.")
    labels = _check_labels(y, n_splits, "y")
    if len(ids) != labels.size:
        raise ValueError(f"Arguments 'patient_ids' ({len(ids)}) and 'y' ({labels.size}) must have the same length.")
    splitter = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    folds = []
    for i, (train, test) in enumerate(splitter.split(np.zeros(labels.size), labels)):
        folds.append(Fold(i // n_splits, i % n_splits, np.asarray(train, np.int64), np.asarray(test, np.int64)))
    return folds


def inner_folds(y: npt.ArrayLike, *, n_splits: int, seed: int) -> list[tuple[IntArray, IntArray]]:
    """Stratified k-fold splits of one training fold (for out-of-fold predictions inside it)."""
    labels = _check_labels(y, n_splits, "y")
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [
        (np.asarray(a, np.int64), np.asarray(b, np.int64)) for a, b in splitter.split(np.zeros(labels.size), labels)
    ]


def validation_split(y: npt.ArrayLike, *, fraction: float, seed: int) -> tuple[IntArray, IntArray]:
    """A stratified hold-out split of one training fold (for early stopping).

    Returns
    -------
    tuple of (fit, validation)
        Row indices; the validation part holds at least one patient of each class.
    """
    labels = _check_labels(y, 2, "y")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"Argument 'fraction' must be in (0, 1); got {fraction}.")
    n_val = max(2, round(fraction * labels.size))
    fit, val = train_test_split(
        np.arange(labels.size), test_size=n_val, stratify=labels, random_state=seed
    )
    return np.sort(np.asarray(fit, np.int64)), np.sort(np.asarray(val, np.int64))
