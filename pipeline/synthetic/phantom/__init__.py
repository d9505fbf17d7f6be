"""Synthetic head-CT studies with known hematoma volumes (``ichpipe phantom``).

A phantom study is a folder of real DICOM files (CT Image Storage, full
patient/study/series tags) of a synthetic head with one or more hematomas,
plus ``truth.json`` (the exact voxel-count volume, the geometry a reader
should find, the UIDs, which series to select) and the hematoma mask as
NIfTI. Options cover what real data throws at a reader: gantry tilt, uneven
spacing, a dropped or duplicated slice, compressed transfer syntaxes,
rescale variants, pixel padding and distractor series.

Modules: :mod:`~ichpipe.pipeline.synthetic.phantom.spec` (the options),
:mod:`~ichpipe.pipeline.synthetic.phantom.head_model`,
:mod:`~ichpipe.pipeline.synthetic.phantom.lesions`,
:mod:`~ichpipe.pipeline.synthetic.phantom.stack_plan` and
:mod:`~ichpipe.pipeline.synthetic.phantom.render` (the model and its images),
:mod:`~ichpipe.pipeline.synthetic.phantom.identity`,
:mod:`~ichpipe.pipeline.synthetic.phantom.writer`,
:mod:`~ichpipe.pipeline.synthetic.phantom.series_writers` and
:mod:`~ichpipe.pipeline.synthetic.phantom.study_folder` (the files),
:mod:`~ichpipe.pipeline.synthetic.phantom.truth` and
:mod:`~ichpipe.pipeline.synthetic.phantom.seg_writer` (the truth). The truth is
computed from the positions the phantom writes, never through
:mod:`ichpipe.dicom_io`, which the phantom only uses to write the optional
DICOM SEG.

Example
-------
>>> import tempfile
>>> from pathlib import Path
>>> from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study
>>> tmp = tempfile.TemporaryDirectory()
>>> spec = PhantomSpec(seed=1, rows=64, columns=64, n_slices=12, gantry_tilt_deg=18.5)
>>> truth = write_phantom_study(Path(tmp.name) / "study", spec)
>>> sorted(p.name for p in (Path(tmp.name) / "study").iterdir())
['DICOM', 'truth.json', 'truth_mask.nii.gz']
>>> truth.volume_ml > 0
True
>>> tmp.cleanup()
"""

from ichpipe.pipeline.synthetic.phantom.render import PhantomModel, build_model, render_plane
from ichpipe.pipeline.synthetic.phantom.spec import DEFAULT_DISTRACTORS, PhantomSpec, jpegls_available
from ichpipe.pipeline.synthetic.phantom.study_folder import PhantomArrays, render_phantom, write_phantom_study
from ichpipe.pipeline.synthetic.phantom.truth import PhantomTruth, SegWriter, load_truth, voxel_volume_ml

__all__ = [
    "DEFAULT_DISTRACTORS",
    "PhantomArrays",
    "PhantomModel",
    "PhantomSpec",
    "PhantomTruth",
    "SegWriter",
    "build_model",
    "jpegls_available",
    "load_truth",
    "render_phantom",
    "render_plane",
    "voxel_volume_ml",
    "write_phantom_study",
]
