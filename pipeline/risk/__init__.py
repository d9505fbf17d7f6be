"""Stage ``risk``: the hematoma-expansion predictor (seed 004) and its honest evaluation.

- :mod:`~ichpipe.pipeline.risk.feature_table`: one row per patient (first scan and
  clinical record) from the contest tables or a CSV; labels;
- :mod:`~ichpipe.pipeline.risk.store_features`: the same table from the results store;
- :mod:`~ichpipe.pipeline.risk.missing_features`: who lacks which features, and
  ``ichpipe features --missing empty|drop|fail``;
- :mod:`~ichpipe.pipeline.risk.feature_transform`: log, imputation and
  standardisation fitted on training rows only;
- :mod:`~ichpipe.pipeline.risk.cv`: patient-level stratified, repeated folds;
- :mod:`~ichpipe.pipeline.risk.tabular_baselines`: logistic regression (all
  features, L1 with in-fold selection, pre-specified predictors), gradient
  boosting, volume only;
- :mod:`~ichpipe.pipeline.risk.scores`: published clinical scores (BRAIN) as baselines;
- :mod:`~ichpipe.pipeline.risk.calibration` and :mod:`~ichpipe.pipeline.risk.calibrated`:
  Platt calibration, thresholds, the performance sentence, and the recipe that
  fits them on inner out-of-fold predictions;
- :mod:`~ichpipe.pipeline.risk.train`: the seed's self-attention CNN as a
  classifier, and the final checkpoint;
- :mod:`~ichpipe.pipeline.risk.cross_validation`: out-of-fold predictions,
  metrics with confidence intervals, calibration;
- :mod:`~ichpipe.pipeline.risk.card`: the model card;
- :mod:`~ichpipe.pipeline.risk.infer`: prediction from a checkpoint.

The ``ichpipe train predictor`` job is :mod:`ichpipe.pipeline.jobs.train_predictor`;
the ``predictor:`` config section is :mod:`ichpipe.pipeline.config.predictor_config`.
May import :mod:`ichpipe.models`, :mod:`ichpipe.pipeline.serial` and
:mod:`ichpipe.pipeline.measure.features`. :mod:`~ichpipe.pipeline.risk.infer`
imports no training code; nothing is imported here, so importing one module
stays light.
"""

__all__: list[str] = []
