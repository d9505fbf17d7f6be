"""How one study is shown to every network that reads it: found once, passed to each.

A study is read by up to four networks (the main one, the end-slice one, the extra-axial one, the
blend-side one; :mod:`~ichpipe.pipeline.segment.inference`). Each must see the slices the same way: the same head
crop, the same ring of bone painted over a stripped skull
(:mod:`~ichpipe.pipeline.segment.skull_restore`), the same turn to read the head upright
(:mod:`~ichpipe.pipeline.segment.upright`) and the same top slices enlarged
(:mod:`~ichpipe.pipeline.segment.section_zoom`). :class:`NetworkView` holds these four, found once
per study by :meth:`~ichpipe.pipeline.segment.inference.NetworkSegmenter.segment_in`, and
:meth:`NetworkView.read` hands them to a network's
:meth:`~ichpipe.pipeline.segment.inference.NetworkSegmenter.probabilities`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.pipeline.segment.section_zoom import SectionZoom

if TYPE_CHECKING:
    from ichpipe.pipeline.segment.inference import NetworkSegmenter

__all__ = ["HeadExtent", "NetworkView"]

HeadExtent = tuple[npt.NDArray[np.bool_], "tuple[slice, slice, slice] | None"]
"""Which slices hold head (bool per slice) and the head's bounding box
(:meth:`~ichpipe.pipeline.segment.inference.NetworkSegmenter.head_extent`)."""


@dataclass(frozen=True)
class NetworkView:
    """What every network reading one study is shown besides its slices.

    Attributes
    ----------
    head:
        Which slices hold head and the head's bounding box (the crop).
    upright:
        Degrees the slices are turned by to read the head upright; ``None``: as they lie.
    zoom:
        The top slices read enlarged; ``None``: none.
    bone:
        Voxels shown as bone (the ring of a stripped skull); ``None``: none.

    Examples
    --------
    >>> import numpy as np
    >>> class Echo:
    ...     def probabilities(self, volume, *, bone=None, head=None, upright=None, zoom=None, **options):
    ...         return np.array([upright, options["above"]])
    >>> view = NetworkView(head=(np.ones(3, dtype=bool), None), upright=15.0)
    >>> view.read(Echo(), None, above=0.5).tolist()
    [15.0, 0.5]
    """

    head: HeadExtent
    upright: float | None = None
    zoom: SectionZoom | None = None
    bone: npt.NDArray[np.bool_] | None = None

    def read(self, network: NetworkSegmenter, volume: CTVolume, **options: Any) -> npt.NDArray[Any]:
        """``network``'s probabilities of ``volume`` seen this way; ``options`` (``slices``, ``above``) pass on."""
        return network.probabilities(volume, bone=self.bone, head=self.head, upright=self.upright, zoom=self.zoom,
                                     **options)
