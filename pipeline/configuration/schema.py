"""The configuration tree: one frozen dataclass per ``config.yaml`` section.

The defaults here are the built-in defaults; ``config.yaml`` at the repository
root mirrors them with comments (a test keeps the two equal). Sections that
belong to ``dicom_io`` or ``models`` reuse those packages' own dataclasses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ichpipe.dicom_io.discover import DiscoveryConfig
from ichpipe.dicom_io.geometry import GeometryConfig
from ichpipe.dicom_io.selection import SelectionConfig
from ichpipe.dicom_io.window import WindowPreset
from ichpipe.pipeline.anatomy import AnatomyConfig
from ichpipe.pipeline.batch.config import BatchConfig
from ichpipe.pipeline.expansion import ExpansionConfig
from ichpipe.pipeline.measure import MeasureConfig
from ichpipe.pipeline.pacs.config import PacsConfig
from ichpipe.pipeline.predictor.config import PredictorConfig
from ichpipe.pipeline.run_config import InferenceConfig, ModelsConfig, OutputsConfig
from ichpipe.pipeline.segmenters.threshold import ThresholdConfig
from ichpipe.pipeline.store_config import StoreConfig
from ichpipe.pipeline.training_config import TrainingConfig

__all__ = ["Config", "WindowsConfig"]


def _default_presets() -> Mapping[str, WindowPreset]:
    return MappingProxyType(
        {
            "brain": WindowPreset(width=80.0, level=40.0),
            "subdural": WindowPreset(width=200.0, level=80.0),
            "bone": WindowPreset(width=2800.0, level=600.0),
        }
    )


@dataclass(frozen=True)
class WindowsConfig:
    """Window presets (HU) and the one used for the network input by default.

    A checkpoint stores the window it was trained with; that one wins at
    inference. ``default`` is used where no checkpoint says otherwise
    (key images, the threshold segmenter's display).
    """

    default: str = "brain"
    presets: Mapping[str, WindowPreset] = field(default_factory=_default_presets)

    def __post_init__(self) -> None:
        if self.default not in self.presets:
            raise ValueError(
                f"windows.default '{self.default}' is not one of the presets: {', '.join(self.presets)}."
            )

    def get(self, name: str) -> WindowPreset:
        """Return preset ``name`` or raise ``ValueError`` naming the valid ones."""
        try:
            return self.presets[name]
        except KeyError:
            raise ValueError(
                f"Unknown window preset '{name}'; known presets: {', '.join(self.presets)}."
            ) from None


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
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    outputs: OutputsConfig = field(default_factory=OutputsConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    expansion: ExpansionConfig = field(default_factory=ExpansionConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    pacs: PacsConfig = field(default_factory=PacsConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
