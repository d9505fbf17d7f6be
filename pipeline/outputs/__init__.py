"""Stage ``outputs``: what a job writes for people and for PACS, and where.

- :mod:`~ichpipe.pipeline.outputs.report`: the study report (the contract of
  ``DESIGN.md``) shared by ``ichpipe run`` and ``ichpipe measure``, stage timings;
- :mod:`~ichpipe.pipeline.outputs.key_image`: the key image (largest hematoma
  slice, contour, volume and ABC/2) as an RGB array;
- :mod:`~ichpipe.pipeline.outputs.paths`: output folders built from validated UIDs only;
- :mod:`~ichpipe.pipeline.outputs.deidentified_report`: the report without the
  patient's direct identifiers (the DICOM outputs are de-identified by
  :mod:`ichpipe.dicom_io.deidentify`).

May import :mod:`ichpipe.dicom_io` and :mod:`ichpipe.pipeline.measure`; writes
nothing itself (the jobs write, atomically).
"""

__all__: list[str] = []
