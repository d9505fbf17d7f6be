"""Stage ``measure``: how much blood, from the DICOM geometry; mask files; imaging features.

- :mod:`~ichpipe.pipeline.measure.volume`: planimetric volume (each slice's own
  thickness along the normal: tilt, uneven spacing and gaps without
  resampling) and the automated ABC/2;
- :mod:`~ichpipe.pipeline.measure.nifti_masks`: NIfTI masks read with a geometry,
  aligned to a study, written for viewing;
- :mod:`~ichpipe.pipeline.measure.features`: imaging features of the hematoma
  (shape, first-order HU, location) for the expansion predictor.

May import :mod:`ichpipe.dicom_io`, :mod:`ichpipe.pipeline.config` and
:mod:`ichpipe.pipeline.segment.intracranial` (the head mask the location
features need); no torch, no results store, no command line.
"""

__all__: list[str] = []
