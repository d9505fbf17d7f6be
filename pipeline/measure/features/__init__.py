"""Imaging features of a hematoma for the expansion predictor.

Modules: :mod:`~ichpipe.pipeline.measure.features.grid` (voxel to patient coordinates),
:mod:`~ichpipe.pipeline.measure.features.shape` (IBSI/pyradiomics shape features),
:mod:`~ichpipe.pipeline.measure.features.firstorder` (HU histogram statistics),
:mod:`~ichpipe.pipeline.measure.features.location` (hemisphere, infratentorial share),
:mod:`~ichpipe.pipeline.measure.features.extract` (all of them for one series:
``compute_features``), :mod:`~ichpipe.pipeline.config.features_config` (settings).

May import :mod:`ichpipe.dicom_io`, :mod:`ichpipe.pipeline.config` and
:mod:`ichpipe.pipeline.segment.intracranial`. Nothing is imported here, so that
importing one module stays light; import the functions from their modules.
"""

__all__: list[str] = []
