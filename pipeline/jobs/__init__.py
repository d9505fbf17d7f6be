"""Stage ``jobs``: one module per command's job, each a function of one frozen options object.

- :mod:`~ichpipe.pipeline.jobs.run_study`: ``ichpipe run``, the main job (discover,
  select, assemble, analyse, outputs, results store), in three steps
  (``analyse_study`` writes nothing, ``write_study_outputs``, ``study_report``)
  so that the Python API (:mod:`ichpipe.api`) can stop after the first;
- :mod:`~ichpipe.pipeline.jobs.analyse_volume`: the computing half of ``run`` on an
  assembled volume (intracranial space, segmenter, threshold cross-check, volume,
  quality flags), also used by ``bench/robustness.py``;
- :mod:`~ichpipe.pipeline.jobs.inspect_study`: ``ichpipe inspect`` (every series,
  the selected one and why, its geometry);
- :mod:`~ichpipe.pipeline.jobs.measure_mask`: ``ichpipe measure`` (volume and
  ABC/2 of an existing mask);
- :mod:`~ichpipe.pipeline.jobs.remeasure_timeline`: ``ichpipe timeline remeasure``
  (every scan of a patient measured one way, from the stored source studies);
- :mod:`~ichpipe.pipeline.jobs.train_predictor`: ``ichpipe train predictor``
  (cross-validation, the final network, the model card).

Jobs compose the stages (``segment``, ``quality``, ``measure``, ``outputs``, ``serial``,
``risk``) and return reports; the command line (:mod:`ichpipe.pipeline.cli`)
only parses options and prints. The jobs of the other commands live with
their stage: ``batch`` (:mod:`ichpipe.pipeline.batch.runner`), ``timeline`` and
``expansion`` (:mod:`ichpipe.pipeline.serial.timeline_reports`), ``train data``
(:mod:`ichpipe.pipeline.synthetic.training_data`), ``train seg``
(:mod:`ichpipe.pipeline.training.train_seg`), ``evaluate``
(:mod:`ichpipe.pipeline.evaluation`), ``phantom``
(:mod:`ichpipe.pipeline.synthetic.phantom`). Nothing is imported here, so
importing one job does not import the others (``run`` never imports training
code).
"""

__all__: list[str] = []
