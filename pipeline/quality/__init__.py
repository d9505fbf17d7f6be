"""Stage ``quality``: every measurable reason a hematoma volume may be wrong, as flags.

A clinical tool may fail on a study; it may never print a wrong number as if
it were right. After ``segment``, :func:`~ichpipe.pipeline.quality.assess.assess_quality`
checks the intracranial space (empty, too small, open or absent skull), the
HU scale (air and brain peaks), clipping, blood cut off at a non-bone edge or
outside the intracranial space, disagreement between the network and the
threshold baseline, and the network's training domain (contrast, a child's
head, non-axial slices). Each flag has a stable code, a sentence and the
measured value (:mod:`~ichpipe.pipeline.quality.flags`); ``outputs`` carries
them into the report, the key image, the SEG and Secondary Capture
descriptions, the results store, batch summaries and timelines.

- :mod:`~ichpipe.pipeline.quality.flags`: :class:`QualityFlag`, :class:`QualityReport`, the codes;
- :mod:`~ichpipe.pipeline.quality.checks`: one function per check of the image, the intracranial space,
  the blood's place and the segmenters' agreement, thresholds as keyword arguments;
- :mod:`~ichpipe.pipeline.quality.blood_checks`: the checks on the blood found, its density and edges;
- :mod:`~ichpipe.pipeline.quality.inner_table`: blood against the inner table that was not segmented;
- :mod:`~ichpipe.pipeline.quality.skipped_slice`: blood on the slices either side of one read empty;
- :mod:`~ichpipe.pipeline.quality.assess`: all checks of one study.

May import :mod:`ichpipe.dicom_io`, :mod:`ichpipe.pipeline.config` and
:mod:`ichpipe.pipeline.segment` (results and mask helpers); never torch, the
store or the command line.
"""

from __future__ import annotations

from ichpipe.pipeline.quality.flags import FLAG_CODES, QualityFlag, QualityReport

__all__ = ["FLAG_CODES", "QualityFlag", "QualityReport"]
