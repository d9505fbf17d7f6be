"""PHE-SICH-CT-IDS: real ICH slices as 8-bit PNG with boxes, turned into a confidence-weighted training set.

* :mod:`~ichpipe.pipeline.datasets.phe_sich.phe_reader`: slices, VOC boxes, oedema masks;
* :mod:`~ichpipe.pipeline.datasets.phe_sich.phe_window`: the PNGs' window from their quantisation and tissue anchors;
* :mod:`~ichpipe.pipeline.datasets.phe_sich.phe_labels`: blood labels derived inside the boxes, with a confidence;
* :mod:`~ichpipe.pipeline.datasets.phe_sich.phe_teacher`: a teacher's masks as pseudo-labels, box-constrained;
* :mod:`~ichpipe.pipeline.datasets.phe_sich.phe_split`: patient-level split and slice roles;
* :mod:`~ichpipe.pipeline.datasets.phe_sich.phe_build`: the dataset ``ichpipe train data --phe-sich`` writes.

Nothing of the data is stored in the repository: the dataset is rebuilt from
``../shared/data/phe-sich-ct-ids-dev`` at run time. May import :mod:`ichpipe.dicom_io` (windows)
and the manifest of :mod:`ichpipe.pipeline.datasets`.
"""

from __future__ import annotations

from ichpipe.pipeline.datasets.phe_sich.phe_build import PheDataset, build_phe_dataset
from ichpipe.pipeline.datasets.phe_sich.phe_reader import DEFAULT_PHE_DIR, Box, PheSlice, list_slices, read_voc_boxes

__all__ = ["DEFAULT_PHE_DIR", "Box", "PheDataset", "PheSlice", "build_phe_dataset", "list_slices", "read_voc_boxes"]
