"""Published clinical scores of hematoma expansion, computed from the predictor's feature table.

BRAIN score (Wang et al., Stroke 2015;46:376-381; INTERACT1/2, outcome: growth
>= 6 mL at 24 h; C-statistic 0.73 in its validation cohort), 24 points:

==============================================  ===========================================
component                                       points
==============================================  ===========================================
**B**\\ aseline ICH volume                       <= 10 mL: 0, 10-20 mL: 5, > 20 mL: 7
**R**\\ ecurrent ICH                             yes: 4
**A**\\ nticoagulation with warfarin at onset    yes: 6
**I**\\ ntraventricular extension                yes: 2
**N**\\ umber of hours from onset to CT          <= 1: 5, 1-2: 4, 2-3: 3, 3-4: 2, 4-5: 1, > 5: 0
==============================================  ===========================================

Published risk per point: ``sigmoid(-3.346 + 0.2144 * score)`` (3.4 % at 0
points, 23.1 % at 10, 85.8 % at 24; the paper's table).

What the contest tables hold (``contest-2023e/1``), and so what
:class:`BrainScoreModel` computes:

* B: ``HM_volume_ml`` (table2; the contest's segmentation) - **available**;
* R: ``hx_stroke`` (table1 卒中病史, any earlier stroke, ischaemic or
  haemorrhagic) - **approximated** (over-counts recurrent ICH);
* A: warfarin at onset is **not recorded** (table1 has atrial fibrillation,
  which is not anticoagulation): scored 0 for everyone;
* I: intraventricular extension is **not recorded** (table2's territory
  ratios have no ventricles): scored 0 for everyone;
* N: ``onset_to_scan_h`` (table1) - **available**.

So the "partial BRAIN" here ranges over 0-16 of the 24 points. The 9-point
score (Brouwers 2014) and the BAT score (Morotti 2018) need the CTA spot
sign, or the blend sign and hypodensities read on the image: none is in the
tables, so they are not computed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression

from ichpipe.pipeline.config.predictor_config import TrainingConfig
from ichpipe.pipeline.risk.tabular_baselines import balanced_weights

__all__ = ["BRAIN_COLUMNS", "BrainScoreModel", "brain_points", "brain_published_risk"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Feature columns the partial BRAIN score reads: volume, prior stroke, hours from onset to CT.
BRAIN_COLUMNS: tuple[str, str, str] = ("HM_volume_ml", "hx_stroke", "onset_to_scan_h")

#: Published logistic mapping of the 24-point score (fits the paper's risk table to 0.1 %).
_PUBLISHED_INTERCEPT = -3.346
_PUBLISHED_SLOPE = 0.2144


def brain_points(volume_ml: npt.ArrayLike, prior_stroke: npt.ArrayLike, hours: npt.ArrayLike) -> FloatArray:
    """Partial BRAIN points (B + R + N; A and I unavailable and scored 0).

    ``NaN`` inputs give ``NaN`` points (the caller imputes).
    """
    v = np.asarray(volume_ml, dtype=np.float64)
    r = np.asarray(prior_stroke, dtype=np.float64)
    h = np.asarray(hours, dtype=np.float64)
    b = np.where(v > 20.0, 7.0, np.where(v > 10.0, 5.0, 0.0))
    n = np.select([h <= 1.0, h <= 2.0, h <= 3.0, h <= 4.0, h <= 5.0], [5.0, 4.0, 3.0, 2.0, 1.0], default=0.0)
    points = b + 4.0 * (r > 0.5) + n
    return np.asarray(np.where(np.isnan(v) | np.isnan(r) | np.isnan(h), np.nan, points))


def brain_published_risk(points: npt.ArrayLike) -> FloatArray:
    """The paper's probability of growth for a BRAIN score."""
    z = _PUBLISHED_INTERCEPT + _PUBLISHED_SLOPE * np.asarray(points, dtype=np.float64)
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


class BrainScoreModel:
    """The partial BRAIN score as a classifier.

    Parameters
    ----------
    training:
        Class weighting of the recalibration.
    published:
        ``True``: the paper's probabilities, nothing fitted; ``False``:
        a logistic regression of the label on the points, fitted on the
        training rows (the points themselves are never re-weighted).
    """

    def __init__(self, training: TrainingConfig, *, published: bool = False) -> None:
        self.name = "brain_published" if published else "brain"
        self._training = training
        self._published = published
        self._index: list[int] | None = None
        self._medians: FloatArray | None = None
        self.estimator: LogisticRegression | None = None

    def points(self, x: FloatArray) -> FloatArray:
        """Points per row (missing inputs imputed with the training medians)."""
        if self._index is None or self._medians is None:
            raise ValueError(f"Model '{self.name}' is not fitted; call fit first.")
        cols = np.asarray(x, dtype=np.float64)[:, self._index]
        cols = np.where(np.isnan(cols), self._medians, cols)
        return brain_points(cols[:, 0], cols[:, 1], cols[:, 2])

    def fit(self, x: FloatArray, y: IntArray, feature_names: Sequence[str], *, seed: int) -> BrainScoreModel:
        """Find the columns, their training medians and (unless published) the recalibration.

        Raises
        ------
        ValueError
            If a column the score needs is absent from ``feature_names``.
        """
        names = list(feature_names)
        absent = [c for c in BRAIN_COLUMNS if c not in names]
        if absent:
            raise ValueError(f"Model '{self.name}' needs feature(s) {', '.join(absent)}, absent from the table.")
        self._index = [names.index(c) for c in BRAIN_COLUMNS]
        cols = np.asarray(x, dtype=np.float64)[:, self._index]
        self._medians = np.asarray(np.nan_to_num(np.nanmedian(cols, axis=0)))
        if not self._published:
            weights = balanced_weights(y) if self._training.class_weight == "balanced" else None
            self.estimator = LogisticRegression(C=1.0, max_iter=10_000, random_state=seed)
            self.estimator.fit(self.points(x)[:, None], np.asarray(y), sample_weight=weights)
        return self

    def predict_proba(self, x: FloatArray) -> FloatArray:
        """Probability of expansion per row."""
        points = self.points(x)
        if self._published:
            return brain_published_risk(points)
        if self.estimator is None:
            raise ValueError(f"Model '{self.name}' is not fitted; call fit first.")
        return np.asarray(self.estimator.predict_proba(points[:, None])[:, 1], dtype=np.float64)
