"""The configuration tree: one frozen dataclass per ``config.yaml`` section.

The defaults here are the built-in defaults; ``config.yaml`` at the repository
root mirrors them with comments (a test keeps the two equal). Sections that
belong to ``dicom_io`` or ``models`` reuse those packages' own dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ichpipe.dicom_io.discover import DiscoveryConfig
from ichpipe.dicom_io.geometry import GeometryConfig
from ichpipe.dicom_io.selection import SelectionConfig
from ichpipe.pipeline.config.anatomy_config import AnatomyConfig
from ichpipe.pipeline.config.batch_config import BatchConfig
from ichpipe.pipeline.config.expansion_config import ExpansionConfig
from ichpipe.pipeline.config.inference_config import InferenceConfig
from ichpipe.pipeline.config.measure_config import MeasureConfig
from ichpipe.pipeline.config.models_config import ModelsConfig
from ichpipe.pipeline.config.outputs_config import OutputsConfig
from ichpipe.pipeline.config.pacs_config import PacsConfig
from ichpipe.pipeline.config.predictor_config import PredictorConfig
from ichpipe.pipeline.config.progress_config import ProgressConfig
from ichpipe.pipeline.config.quality_config import QualityConfig
from ichpipe.pipeline.config.store_config import StoreConfig
from ichpipe.pipeline.config.threshold_config import ThresholdConfig
from ichpipe.pipeline.config.training_config import TrainingConfig
from ichpipe.pipeline.config.windows_config import WindowsConfig

__all__ = ["Config"]


@dataclass(frozen=True)
class Config:
    """The whole configuration (see ``config.yaml`` for every key, commented)."""

    windows: WindowsConfig = field(default_factory=WindowsConfig)
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    anatomy: AnatomyConfig = field(default_factory=AnatomyConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    outputs: OutputsConfig = field(default_factory=OutputsConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    expansion: ExpansionConfig = field(default_factory=ExpansionConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    pacs: PacsConfig = field(default_factory=PacsConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    progress: ProgressConfig = field(default_factory=ProgressConfig)
