"""The ``windows:`` section of ``config.yaml``: window presets (HU) and the default one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ichpipe.dicom_io.window import WindowPreset

__all__ = ["WindowsConfig"]


def _default_presets() -> Mapping[str, WindowPreset]:
    return MappingProxyType(
        {
            "brain": WindowPreset(width=80.0, level=40.0),
            "subdural": WindowPreset(width=200.0, level=80.0),
            "extra_axial": WindowPreset(width=120.0, level=50.0),
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
