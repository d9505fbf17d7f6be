"""The segmenter contract: the classical threshold baseline and the registered networks follow it.

Every segmenter has ``name``, ``segment(volume) -> bool mask`` and
``describe() -> dict`` (name, checkpoint SHA-256 or None, version, kind) for
the report. Segmenters that restrict their result to the intracranial space
also have ``segment_in(volume, intracranial) -> SegmentationResult``, which
takes the intracranial space found once by ``run`` (the finder is the slow
part for a 600-slice study) and says how much the restriction removed;
:func:`segment_volume` calls it when present.

Network segmenters live in :mod:`ichpipe.pipeline.segment.inference` (they
import torch; this module does not, so the configuration loads fast).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from ichpipe.dicom_io.assemble import CTVolume

if TYPE_CHECKING:
    from ichpipe.pipeline.segment.intracranial import IntracranialResult

__all__ = ["SegmentationResult", "Segmenter", "segment_volume", "segmenter_choices"]


class Segmenter(Protocol):
    """What ``run`` needs from a segmenter."""

    name: str

    def segment(self, volume: CTVolume) -> npt.NDArray[np.bool_]:
        """Bool hematoma mask with the volume's shape."""
        ...

    def describe(self) -> dict[str, Any]:
        """Name, checkpoint SHA-256 (or None), version, for the report."""
        ...


@dataclass(frozen=True)
class SegmentationResult:
    """A hematoma mask and what is known about how it was made.

    Attributes
    ----------
    mask:
        bool, the volume's shape.
    unrestricted_ml:
        Volume the segmenter found before the restriction to the intracranial
        space (``None`` when it does not restrict, or did not say).
    removed_ml:
        Of that, the volume outside the intracranial space, not counted.
    details:
        JSON-ready diagnostics (e.g. the threshold baseline's mL after each step).
    """

    mask: npt.NDArray[np.bool_]
    unrestricted_ml: float | None = None
    removed_ml: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def with_addition(self, volume: CTVolume, key: str, mask: npt.NDArray[np.bool_], added: npt.NDArray[np.bool_],
                      **counts: float) -> SegmentationResult:
        """This result with ``mask`` (its mask plus ``added``), ``details[key]`` saying what was added
        (``counts`` and ``added_ml``), and the unrestricted volume grown by the same amount."""
        from ichpipe.pipeline.segment.components import mask_volume_ml  # scipy: not at configuration time

        added_ml = mask_volume_ml(added, volume.geometry.voxel_volumes_ml)
        details = {**self.details, key: {**counts, "added_ml": round(added_ml, 4)}}
        unrestricted = None if self.unrestricted_ml is None else round(self.unrestricted_ml + added_ml, 4)
        return replace(self, mask=mask, details=details, unrestricted_ml=unrestricted)


def segment_volume(segmenter: Segmenter, volume: CTVolume,
                   intracranial: IntracranialResult | None = None) -> SegmentationResult:
    """Run ``segmenter`` on ``volume``, reusing ``intracranial`` when the segmenter can.

    Parameters
    ----------
    segmenter:
        Any :class:`Segmenter`; ``segment_in(volume, intracranial)`` is used when it has one.
    volume:
        The assembled CT.
    intracranial:
        The intracranial space already found for ``volume`` (``None``: the
        segmenter finds it itself if it needs it).
    """
    method = getattr(segmenter, "segment_in", None)
    if callable(method):
        result = method(volume, intracranial)
        if not isinstance(result, SegmentationResult):
            raise TypeError(f"{type(segmenter).__name__}.segment_in must return a SegmentationResult.")
        return result
    return SegmentationResult(mask=np.asarray(segmenter.segment(volume), dtype=bool))


def segmenter_choices() -> tuple[str, ...]:
    """Names accepted by ``--segmenter``: ``threshold``, every registered network and the peer ``blast_ct``."""
    from ichpipe.models.registry import SEGMENTER_NAMES

    return ("threshold", *SEGMENTER_NAMES, "blast_ct")
