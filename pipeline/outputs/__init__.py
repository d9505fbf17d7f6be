"""Stage ``outputs``: what a job writes for people and for PACS, and where.

- :mod:`~ichpipe.pipeline.outputs.report`: the study report (the contract of
  ``DESIGN.md``) shared by ``ichpipe run`` and ``ichpipe measure``, stage timings;
- :mod:`~ichpipe.pipeline.outputs.key_image`: the key image (largest hematoma
  slice, contour, volume and ABC/2) as an RGB array;
- :mod:`~ichpipe.pipeline.outputs.series_outputs`: the DICOM SEG, key image (PNG and
  Secondary Capture) and NIfTI mask of one series, carrying the quality flags and the
  method; an output that cannot be built is skipped, the others written;
- :mod:`~ichpipe.pipeline.outputs.paths`: output folders built from validated UIDs only;
- :mod:`~ichpipe.pipeline.outputs.deidentified_report`: the report without the
  patient's direct identifiers (the DICOM outputs are de-identified by
  :mod:`ichpipe.dicom_io.deidentify`).

May import :mod:`ichpipe.dicom_io`, :mod:`ichpipe.pipeline.measure` and
:mod:`ichpipe.pipeline.quality` (the flags); every file is written atomically.
"""

__all__: list[str] = []
