"""Stage ``segment``: from a CT volume (HU) to the intracranial space and a hematoma mask.

Design
------
A hematoma volume is only as good as the space it is restricted to. Real
archives hold heads without a closed bone ring: follow-ups after craniotomy or
craniectomy, skull-stripped or brain-only research exports, images whose HU
were clipped below bone. Filling the bone ring (the former method) gave an
empty or half space on all of them and so 0 mL. The intracranial finder
therefore works slice by slice from what the image holds: a closed bone ring
when there is one; across a gap, the inner table interpolated between the
gap's ends (moving out under the scalp where the head outline bulges, so a
herniating brain and its hematoma are counted, never the scalp); a ring of a
stripped skull's constant value; the head outline when there is no bone at
all; the clip value as bone when the image was clipped. It says which it used
(``IntracranialResult.method``, in every report) and what it measured (ring
share, widest gap, bone share, volumes), which the quality checks
(:mod:`ichpipe.pipeline.quality`) turn into flags such as ``skull_open`` and
``skull_absent`` rather than trusting silently.

The space is found once per study (``run`` passes it to the segmenter through
``segment_in``); the network is restricted to it (and says how much that
removed), and the classical threshold baseline segments inside it, by default
also beside the network as a cross-check. The baseline is labelled as such
everywhere (report, SEG algorithm family, key image, error messages), because
it misses blood below 50 HU and thin collections against the inner table.

Memory: 600-slice studies are processed slice by slice or in slabs of 16
slices; 3D components are found with a slice-by-slice union-find, so no float
copy of the volume and no int32 label volume is ever held.

Modules
-------
- :mod:`~ichpipe.pipeline.segment.segmenter`: the :class:`Segmenter` contract
  (``name``, ``segment(volume)``, ``describe()``, optional ``segment_in``), the
  :class:`SegmentationResult` and the names ``--segmenter`` accepts;
- :mod:`~ichpipe.pipeline.segment.intracranial`: head mask and the intracranial
  finder (closed, open, absent or clipped skull), thresholds in ``anatomy:``;
- :mod:`~ichpipe.pipeline.segment.skull_ring`: rays from the slice centre, the
  ring's gaps and the virtual inner table across them;
- :mod:`~ichpipe.pipeline.segment.components`: in-plane closing, 2D components,
  small holes, 3D components without a label volume;
- :mod:`~ichpipe.pipeline.segment.threshold`: the classical HU-threshold
  baseline, thresholds in ``threshold:``;
- :mod:`~ichpipe.pipeline.segment.inference`: network inference from a checkpoint (window,
  normalisation, head crop, batches, restriction, small components), run by ONNX Runtime
  when the checkpoint's export lies beside it (no torch import) or by
  :mod:`~ichpipe.pipeline.segment.torch_backend` (GPU, bf16, channels-last);
- :mod:`~ichpipe.pipeline.segment.skull_restore`: on a skull-stripped export, the band of
  fill-value voxels outside the intracranial space shown to the network as bone (its input only);
- :mod:`~ichpipe.pipeline.segment.resize`: PyTorch's bilinear resize (antialiased or not) in
  NumPy, the same weights bit for bit;
- :mod:`~ichpipe.pipeline.segment.blast_ct`: the peer BLAST-CT v1 (its published weights in
  ichpipe's own DeepMedic, 1-12 models) as a segmenter: haemorrhage = IPH + extra-axial + IVH,
  per-type masks for per-type volumes; settings in ``blast_ct:``;
- :mod:`~ichpipe.pipeline.segment.iso_grid`: resampling to 1 mm in the slice frame (tilt
  de-sheared) and back to the DICOM grid (NumPy only).

May import :mod:`ichpipe.dicom_io`, :mod:`ichpipe.models` (inference only) and
:mod:`ichpipe.pipeline.config`; never the training code, the results store or
the command line. Only the contract is imported here, so importing the package
does not import torch.
"""

from __future__ import annotations

from ichpipe.pipeline.segment.segmenter import SegmentationResult, Segmenter, segment_volume, segmenter_choices

__all__ = ["SegmentationResult", "Segmenter", "segment_volume", "segmenter_choices"]
