"""Teacher pseudo-labels for the PHE-SICH slices: a peer segmenter's blood, constrained by the boxes.

The derived labels of :mod:`phe_labels` (hyperdense pixels inside the box) are a threshold in
disguise; fine-tuning on them made the network worse on the validation boxes (MODEL_CARD.md).
This module replaces them, on the **training** patients only, with a *teacher*'s masks: the
blood a stronger segmenter (BLAST-CT v1, run on the same PNG stacks with
``ichpipe evaluate --boxes ... --segmenter blast_ct --save-masks``) finds, filtered by what the
annotators drew:

* **Boxed slices.** The label is every teacher component (8-connected) that touches a box,
  clipped to the boxes grown by ``box_margin_px`` (a clot does not reach far beyond the box the
  annotator drew around it). Ignored (zero loss weight): teacher blood that touches no box or lies
  beyond the grown box (a second bleed the annotators did not box, or a teacher false positive:
  the boxes cannot say which), pixels the derived label calls hyperdense but the teacher does not
  (a partial-volume rim, a calcification halo, or blood the teacher missed), and a band of
  ``edge_ignore_px`` around the label's edge (where clot and brain mix). The slice confidence is
  ``agreement_floor + (1 - agreement_floor) x`` the boundary-tolerant Dice of the teacher label
  and the derived label (``agreement_floor`` when the derived label is empty: an isodense clot
  only the teacher sees). When the teacher finds nothing in the box the derived label is kept,
  its confidence times ``fallback_weight`` (the annotators say a bleed is there).
* **Slices without a box.** The label stays empty: the boxes mark every slice the annotators saw
  haemorrhage on, and the teacher's own false-positive slice rate is low but not zero (0.7 % on
  the validation patients). Teacher blood on such a slice is ignored rather than called
  background (it may be a clot reaching one slice past the boxed run), so the student is never
  taught to miss what the teacher sees and never taught to find what the annotators did not box.
  Slices left out before (``unboxed-suspect``, blank) stay out.

Teacher masks are stored one file per patient, ``PPPP.npz``, in the PNG frame and slice order
(:func:`save_teacher_masks`, :func:`load_teacher_masks`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe.atomic import atomic_write
from ichpipe.errors import DicomInputError
from ichpipe.pipeline.datasets.phe_sich.phe_labels import SliceLabel, dice

__all__ = ["TeacherConfig", "load_teacher_masks", "save_teacher_masks", "teacher_label", "teacher_labels"]

BoolArray = npt.NDArray[np.bool_]
_EIGHT = np.ones((3, 3), dtype=bool)
_BOXED = ("box-threshold", "derived-box")


@dataclass(frozen=True)
class TeacherConfig:
    """How teacher masks become labels (see the module docstring).

    Parameters
    ----------
    box_margin_px:
        Teacher blood is kept up to this far outside the box its component touches.
    edge_ignore_px:
        Width of the zero-weight band around the label's edge, and around ignored teacher blood.
    agreement_floor:
        Confidence of a teacher label that shares nothing with the derived label.
    fallback_weight:
        Factor on the derived label's confidence when the teacher finds nothing in the box.
    tolerance_px:
        Boundary tolerance of the teacher/derived Dice.
    """

    box_margin_px: int = 10
    edge_ignore_px: int = 1
    agreement_floor: float = 0.5
    fallback_weight: float = 0.5
    tolerance_px: int = 3

    def __post_init__(self) -> None:
        for name in ("agreement_floor", "fallback_weight"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Argument '{name}' must be in [0, 1]; got {value!r}.")
        for name in ("box_margin_px", "edge_ignore_px", "tolerance_px"):
            if getattr(self, name) < 0:
                raise ValueError(f"Argument '{name}' must not be negative; got {getattr(self, name)!r}.")


def save_teacher_masks(path: Path, masks: npt.ArrayLike) -> None:
    """Write one patient's teacher masks ``(slices, rows, columns)`` (non-zero = blood) to ``path`` (``.npz``).

    Raises
    ------
    ValueError
        If ``masks`` is not three-dimensional.
    """
    arr = np.asarray(masks) != 0
    if arr.ndim != 3:
        raise ValueError(f"Argument 'masks' must be (slices, rows, columns); got shape {arr.shape}.")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, masks=np.packbits(arr, axis=-1), shape=np.array(arr.shape, dtype=np.int64))
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: fh.write(data), what="teacher masks")


def load_teacher_masks(path: Path, *, shape: tuple[int, int, int]) -> BoolArray:
    """Read masks written by :func:`save_teacher_masks`, checking they fit the patient's ``shape``.

    Raises
    ------
    DicomInputError
        If the file is not a teacher-mask file or its shape differs from ``shape``.
    """
    with np.load(path, allow_pickle=False) as data:
        if "masks" not in data or "shape" not in data:
            raise DicomInputError(f"{path} is not a teacher-mask file (keys 'masks' and 'shape' expected).")
        stored = tuple(int(v) for v in data["shape"])
        if stored != tuple(shape):
            raise DicomInputError(f"Teacher masks {path} are {stored}; the patient's slices are {tuple(shape)}.")
        packed = data["masks"]
    return np.unpackbits(packed, axis=-1, count=shape[2]).astype(bool)


def _grown(mask: BoolArray, width: int) -> BoolArray:
    """``mask`` dilated ``width`` times (itself when ``width`` is 0)."""
    return ndimage.binary_dilation(mask, iterations=width) if width else mask


def _band(mask: BoolArray, width: int) -> BoolArray:
    if width == 0 or not mask.any():
        return np.zeros_like(mask)
    return ndimage.binary_dilation(mask, iterations=width) & ~ndimage.binary_erosion(mask, iterations=width)


def teacher_label(label: SliceLabel, teacher: BoolArray, *, config: TeacherConfig = TeacherConfig()) -> SliceLabel:
    """The slice's label with the teacher's mask (module docstring); ``label`` is the derived one.

    Raises
    ------
    ValueError
        If ``teacher`` does not have the label's shape.
    """
    if teacher.shape != label.mask.shape:
        raise ValueError(f"Argument 'teacher' must have the label's shape {label.mask.shape}; got {teacher.shape}.")
    teacher = teacher.astype(bool)
    grow = config.edge_ignore_px
    n_teacher = int(teacher.sum())
    if label.source not in _BOXED:
        weight = label.weight.copy()
        if teacher.any():
            weight[_grown(teacher, grow)] = 0.0
        return replace(label, weight=weight, method="teacher", teacher_px=n_teacher)
    shape = label.mask.shape
    region = np.zeros(shape, dtype=bool)
    grown = np.zeros(shape, dtype=bool)
    for box in label.boxes:
        region |= box.mask(shape)
        grown |= box.grown(config.box_margin_px, shape).mask(shape)
    components, n = ndimage.label(teacher, structure=_EIGHT)
    touching = np.unique(components[region & teacher]) if n else np.zeros(0, dtype=np.int64)
    mask = np.isin(components, touching[touching > 0]) & grown
    outside = teacher & ~mask
    derived = label.mask
    if not mask.any():
        weight = label.weight.copy()
        if outside.any():
            weight[_grown(outside, grow) & ~derived] = 0.0
        return replace(label, weight=weight, confidence=label.confidence * config.fallback_weight,
                       method="teacher-fallback", teacher_px=n_teacher)
    weight = np.ones(shape, dtype=np.float32)
    ignored = outside | (derived & ~mask) | _band(mask, grow)
    if grow and outside.any():
        ignored |= _grown(outside, grow) & ~mask
    weight[ignored] = 0.0
    agreement = dice(mask, derived, tolerance_px=config.tolerance_px) if derived.any() else math.nan
    floor = config.agreement_floor
    confidence = floor if math.isnan(agreement) else floor + (1.0 - floor) * agreement
    return replace(label, mask=mask, weight=weight, confidence=float(confidence), method="teacher",
                   teacher_px=n_teacher, teacher_agreement=agreement)


def teacher_labels(labels: Sequence[SliceLabel], teacher: BoolArray, *,
                   config: TeacherConfig = TeacherConfig()) -> list[SliceLabel]:
    """:func:`teacher_label` for each slice of one patient (``teacher``: its masks, in slice order).

    Raises
    ------
    ValueError
        If ``teacher`` has not one mask per label.
    """
    if teacher.ndim != 3 or teacher.shape[0] != len(labels):
        raise ValueError(f"Argument 'teacher' must hold one mask per slice ({len(labels)}); got {teacher.shape}.")
    return [teacher_label(lab, teacher[i], config=config) for i, lab in enumerate(labels)]
