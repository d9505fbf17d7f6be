"""Stage ``segment``: from a CT volume (HU) to a hematoma mask.

- :mod:`~ichpipe.pipeline.segment.segmenter`: the :class:`Segmenter` contract
  (``name``, ``segment(volume)``, ``describe()``) and the names ``--segmenter`` accepts;
- :mod:`~ichpipe.pipeline.segment.intracranial`: head and intracranial masks from HU (no learning);
- :mod:`~ichpipe.pipeline.segment.threshold`: the classical segmenter (acute-blood HU inside the skull);
- :mod:`~ichpipe.pipeline.segment.inference`: network inference from a checkpoint (window,
  normalisation, head crop, batches, bf16, post-processing).

May import :mod:`ichpipe.dicom_io`, :mod:`ichpipe.models` (inference only) and
:mod:`ichpipe.pipeline.config`; never the training code, the results store or
the command line. Only the contract is imported here, so importing the package
does not import torch.
"""

from __future__ import annotations

from ichpipe.pipeline.segment.segmenter import Segmenter, segmenter_choices

__all__ = ["Segmenter", "segmenter_choices"]
