"""Imaging features of a hematoma for the expansion predictor.

Modules: :mod:`~pipeline.features.grid` (voxel to patient coordinates),
:mod:`~pipeline.features.shape` (IBSI/pyradiomics shape features),
:mod:`~pipeline.features.firstorder` (HU histogram statistics),
:mod:`~pipeline.features.location` (hemisphere, infratentorial share),
:mod:`~pipeline.features.extract` (all of them for one series:
``compute_features``), :mod:`~pipeline.features.config` (settings).

Only the settings are imported here, so that loading the configuration stays
light; import the functions from their modules.
"""

from pipeline.features.config import FeatureConfig

__all__ = ["FeatureConfig"]
