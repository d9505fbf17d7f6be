"""The flow (``ichpipe.pipeline``): one package per stage, composing :mod:`ichpipe.dicom_io` and :mod:`ichpipe.models`.

- :mod:`~ichpipe.pipeline.config`: every ``config.yaml`` section and the loader;
- :mod:`~ichpipe.pipeline.segment`: CT volume -> intracranial space and hematoma mask (a network, or the
  classical threshold baseline);
- :mod:`~ichpipe.pipeline.quality`: every reason the volume may be wrong, as flags;
- :mod:`~ichpipe.pipeline.measure`: volume along the normal, ABC/2, mask files, imaging features;
- :mod:`~ichpipe.pipeline.outputs`: study report, key image, SEG/SC/NIfTI outputs, output paths;
- :mod:`~ichpipe.pipeline.jobs`: one job per command (``run``, ``inspect``, ``measure``, ``train predictor``);
- :mod:`~ichpipe.pipeline.serial`: results store, timelines, import, expansion;
- :mod:`~ichpipe.pipeline.risk`: the expansion predictor;
- :mod:`~ichpipe.pipeline.batch`: an inbox of studies, ``watch``, PACS;
- :mod:`~ichpipe.pipeline.cli`: the click shell over the jobs;
- :mod:`~ichpipe.pipeline.synthetic`, :mod:`~ichpipe.pipeline.datasets`,
  :mod:`~ichpipe.pipeline.training`, :mod:`~ichpipe.pipeline.evaluation`: data
  with a known truth, labelled datasets, training and evaluation of segmenters.

Data flows one way: ``dicom_io`` and ``models`` never import this package, and
the clinical path never imports training or synthetic-data code
(``tests/test_layout.py``). Nothing is imported here.
"""

__all__: list[str] = []
