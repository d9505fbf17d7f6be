"""The hematoma-expansion predictor: feature table, models, cross-validation, checkpoint, inference.

Modules: :mod:`~pipeline.predictor.data` (the feature table from the results
store, the contest tables or a CSV; labels), :mod:`~pipeline.predictor.transform`
(log, imputation and standardisation fitted on training rows only),
:mod:`~pipeline.predictor.cv` (patient-level stratified folds),
:mod:`~pipeline.predictor.baselines` (logistic regression, gradient boosting,
volume only), :mod:`~pipeline.predictor.train` (the seed's network, final
checkpoint), :mod:`~pipeline.predictor.evaluate` (cross-validated metrics,
calibration plot), :mod:`~pipeline.predictor.card` (model card) and
:mod:`~pipeline.predictor.infer` (prediction from a checkpoint; imports no
training code).

Only the configuration is imported here, so loading it stays light.
"""

from pipeline.predictor.config import EvaluationConfig, PredictorConfig, TrainingConfig

__all__ = ["EvaluationConfig", "PredictorConfig", "TrainingConfig"]
