"""Stage ``synthetic``: made-up data with a known truth, for tests, demos and training.

- :mod:`~ichpipe.pipeline.synthetic.phantom`: synthetic head-CT studies (real DICOM
  files) with known hematoma volumes (``ichpipe phantom``);
- :mod:`~ichpipe.pipeline.synthetic.training_data`: labelled training studies
  (``ichpipe train data``), with :mod:`~ichpipe.pipeline.synthetic.recipes` (options
  and per-case recipes), :mod:`~ichpipe.pipeline.synthetic.real_backgrounds` (real
  head CTs), :mod:`~ichpipe.pipeline.synthetic.lesion_shapes` (HemSeg-500 shapes or
  blobs), :mod:`~ichpipe.pipeline.synthetic.lesion_painting` (lesions painted into a
  head) and :mod:`~ichpipe.pipeline.synthetic.dicom_writer` (their DICOM series).

The truth here is computed from the generator's own geometry, never through
:mod:`ichpipe.dicom_io`. May import :mod:`ichpipe.dicom_io`,
:mod:`ichpipe.pipeline.measure`, :mod:`ichpipe.pipeline.segment.intracranial` and
:mod:`ichpipe.pipeline.datasets`; nothing in the clinical path (``segment``,
``measure``, ``serial``, ``risk``, ``jobs``) imports this package.
"""

__all__: list[str] = []
