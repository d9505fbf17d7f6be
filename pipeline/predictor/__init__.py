"""The hematoma-expansion predictor: feature table, models, cross-validation, checkpoint, inference.

Modules: :mod:`~ichpipe.pipeline.predictor.data` (the feature table from the results
store, the contest tables or a CSV; labels), :mod:`~ichpipe.pipeline.predictor.transform`
(log, imputation and standardisation fitted on training rows only),
:mod:`~ichpipe.pipeline.predictor.cv` (patient-level stratified folds),
:mod:`~ichpipe.pipeline.predictor.baselines` (logistic regression, gradient boosting,
volume only), :mod:`~ichpipe.pipeline.predictor.train` (the seed's network, final
checkpoint), :mod:`~ichpipe.pipeline.predictor.evaluate` (cross-validated metrics,
calibration plot), :mod:`~ichpipe.pipeline.predictor.card` (model card) and
:mod:`~ichpipe.pipeline.predictor.infer` (prediction from a checkpoint; imports no
training code).

Nothing is imported here (the ``predictor:`` config section is
:mod:`ichpipe.pipeline.config.predictor_config`), so importing one module stays light.
"""

__all__: list[str] = []
