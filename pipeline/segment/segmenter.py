"""The segmenter contract: the classical threshold method and the registered networks follow it.

Every segmenter has ``name``, ``segment(volume) -> bool mask`` and
``describe() -> dict`` (name, checkpoint SHA-256 or None, version) for the report.
Network segmenters live in :mod:`ichpipe.pipeline.segment.inference` (they import torch; this
module does not, so the configuration loads fast).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ichpipe.dicom_io.assemble import CTVolume

__all__ = ["Segmenter", "segmenter_choices"]


class Segmenter(Protocol):
    """What ``run`` needs from a segmenter."""

    name: str

    def segment(self, volume: CTVolume) -> npt.NDArray[np.bool_]:
        """Bool hematoma mask with the volume's shape."""
        ...

    def describe(self) -> dict[str, Any]:
        """Name, checkpoint SHA-256 (or None), version, for the report."""
        ...


def segmenter_choices() -> tuple[str, ...]:
    """Names accepted by ``--segmenter``: ``threshold`` plus every registered network."""
    from ichpipe.models.registry import SEGMENTER_NAMES

    return ("threshold", *SEGMENTER_NAMES)
