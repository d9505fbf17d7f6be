"""A patient-level train/validation split of PHE-SICH, and what each slice is used for.

**Split** (:func:`stratified_patient_split`). Patients are ordered by haemorrhage size (the
sum of their label areas in pixels; the PNGs carry no spacing, so no mL) and cut into blocks
of ``block`` consecutive patients; one patient of each block (drawn with ``seed``) goes to
validation. Every size range is thus represented in validation, and the same inputs always
give the same split. Patients in ``force_train`` (e.g. 0013, whose boxes are derived, not
annotated) are never drawn for validation.

**Slice roles** (:func:`slice_role`). The trainer (:mod:`ichpipe.pipeline.training.train_seg`)
takes every slice of a case's folder and treats a slice with an empty label as a negative. So
a slice whose label is not trusted must not be in the folder at all:

============== ============================================================ ===============
role           slices                                                       in the folder
============== ============================================================ ===============
``positive``   boxed, label non-empty, confidence >= ``min_confidence``     yes
``negative``   no box, farther than 2 slices from a box, or next to one     yes
               without a hyperdense candidate (``unboxed-adjacent``)
``drop``       boxed but label empty or confidence < ``min_confidence``     no
``ignore``     unboxed slices with a hyperdense candidate next to a box,    no
               all-zero padding slices, slices of unannotated patients
============== ============================================================ ===============

The dataset itself is written by :func:`ichpipe.pipeline.datasets.phe_sich.phe_build.write_phe_dataset`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import numpy as np

from ichpipe.pipeline.datasets.manifest import Split
from ichpipe.pipeline.datasets.phe_sich.phe_labels import SliceLabel

__all__ = ["Role", "patient_sizes", "slice_role", "stratified_patient_split"]

Role = Literal["positive", "negative", "drop", "ignore"]


def slice_role(label: SliceLabel, *, min_confidence: float = 0.25) -> Role:
    """What a slice is used for (see the module docstring).

    Raises
    ------
    ValueError
        If ``min_confidence`` is outside [0, 1].
    """
    if not 0.0 <= min_confidence <= 1.0:
        raise ValueError(f"Argument 'min_confidence' must be in [0, 1]; got {min_confidence!r}.")
    if label.source in ("box-threshold", "derived-box"):
        return "positive" if label.mask.any() and label.confidence >= min_confidence else "drop"
    if label.source in ("negative", "unboxed-adjacent"):
        return "negative"
    return "ignore"


def patient_sizes(labels: Iterable[SliceLabel]) -> dict[str, int]:
    """Total label area (pixels) of each patient, over its boxed slices."""
    sizes: dict[str, int] = {}
    for lab in labels:
        sizes[lab.patient_id] = sizes.get(lab.patient_id, 0) + lab.area_px
    return sizes


def stratified_patient_split(
    sizes: Mapping[str, float],
    *,
    block: int = 4,
    seed: int = 0,
    force_train: Iterable[str] = (),
) -> dict[str, Split]:
    """One validation patient per block of ``block`` patients of similar size.

    Parameters
    ----------
    sizes:
        Patient ID to haemorrhage size (any monotone measure).
    block:
        Block length; about ``len(sizes) / block`` patients go to validation.
    seed:
        Seed of the draw inside each block.
    force_train:
        Patients that always train (they still count for the blocks' order).

    Returns
    -------
    dict
        Patient ID to ``train`` or ``val``.

    Raises
    ------
    ValueError
        If ``block`` is below 2 or ``sizes`` is empty.

    Examples
    --------
    >>> s = stratified_patient_split({f"p{i}": float(i) for i in range(8)}, block=4)
    >>> sorted(s.values()).count("val")
    2
    """
    if block < 2:
        raise ValueError(f"Argument 'block' must be at least 2; got {block!r}.")
    if not sizes:
        raise ValueError("Argument 'sizes' is empty; there is no patient to split.")
    forced = set(force_train)
    order = sorted(sizes, key=lambda p: (sizes[p], p))
    rng = np.random.default_rng([seed, 0x5E1])
    split: dict[str, Split] = {p: "train" for p in order}
    for start in range(0, len(order), block):
        members = [p for p in order[start : start + block] if p not in forced]
        if len(members) < 2 and start + block >= len(order):
            continue  # a short last block keeps its patients for training
        if members:
            split[members[int(rng.integers(len(members)))]] = "val"
    return split
