"""Blood labels for the PHE-SICH slices, derived twice, with a per-slice agreement and confidence.

None of the PHE-SICH slices comes with a blood mask. Two derivations are made and compared:

**A. Box threshold** (:func:`box_threshold_label`). Inside each VOC box: pixels whose lightly
smoothed HU (through the estimated window, :mod:`phe_window`) is at least the patient's blood
threshold -- half-way between the patient's parenchyma and clot modes, i.e. the 50 % partial-
volume contour between clot and brain, clipped to 42-55 HU -- and below the window's top
(saturated pixels are bone or calcification), inside the intracranial space (when it is found
and covers at least half of the box), at least ``bone_margin_px`` from any saturated pixel
(partial-volume bone rims fall in the blood band) and ``calcification_margin_px`` from small
saturated blobs (calcifications and their halo).
Closed by one pixel, components smaller than ``max(min_component_px, keep_fraction x largest)``
dropped, holes filled.

**B. Oedema-ring interior** (:func:`ring_interior`). The oedema masks outline the perihematomal
oedema, the dark rim around the clot; where the rim closes, its interior is the clot. Rings that
close after bridging gaps of up to ``bridge_px`` pixels count as closed ("bridged"); open rings
(C shapes) give no interior, but the interior of their convex hull is kept as weaker evidence
("open").

**Agreement and confidence** (:func:`slice_confidence`). Where the ring closes, the agreement is
Dice(A, B), reported strict and boundary-tolerant (each mask dilated by ``tolerance_px`` before
counting the overlap: a band of partial-volume pixels around a clot is not a disagreement).
Most oedema masks in this data set do **not** close (the rim is drawn only where oedema is
seen, often on one side): for those the convex-hull interior is kept for display, but the
evidence used is the *adjacency* (:func:`adjacency`): on rays from A's centroid that meet the
oedema, the fraction whose gap between A's edge and the oedema is at most ``adjacency_px``
(the rim should hug the clot; a label on a calcification or a partial-volume rim, or one that
covers only the core of a clot, leaves a gap). Confidence = tolerant Dice (closed; times ``bridged_weight`` when
bridged), ``open_weight`` x adjacency (open), ``box_only_confidence`` (no oedema), 0 when A is
empty in a boxed slice (box around oedema only, or an isodense clot). Disagreeing pixels
(A xor B, closed rings only) and a band of ``edge_ignore_px`` around A's edge get zero weight
in :attr:`SliceLabel.weight`: the boundary-tolerant part of the label-noise handling.

**Slices without a box.** The boxes cover the slices where oedema was drawn, and the clot often
reaches one or two slices beyond (checked by eye: patients 0011, 0016, 0023 among others). So an
unboxed slice within ``neighbour_slices`` of a boxed one is searched with derivation A inside
the neighbouring boxes (grown by ``neighbour_grow_px``): a hyperdense candidate of at least
``suspect_min_px`` makes it ``unboxed-suspect`` (neither positive nor negative: left out of
training and of false-positive counts); otherwise it is ``unboxed-adjacent`` (negative, lower
confidence). Farther slices are ``negative``. A patient without box files (0013) gets boxes
derived from its oedema masks (their bounding box grown by ``derived_box_margin_px``, the
median margin of real boxes around the oedema), source ``derived-box``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from skimage.morphology import convex_hull_image

from ichpipe.pipeline.datasets.phe_sich.phe_reader import Box, PheSlice
from ichpipe.pipeline.datasets.phe_sich.phe_window import (
    QuantisationFit,
    TissueAnchors,
    grey_to_steps,
    intracranial_mask,
)

__all__ = [
    "LabelConfig",
    "LabelMethod",
    "LabelSource",
    "RingState",
    "SliceLabel",
    "adjacency",
    "blood_threshold_steps",
    "box_threshold_label",
    "dice",
    "label_patient",
    "ring_interior",
    "slice_confidence",
    "summarise",
]

BoolArray = npt.NDArray[np.bool_]
U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

RingState = Literal["absent", "closed", "bridged", "open"]
LabelSource = Literal[
    "box-threshold", "derived-box", "negative", "unboxed-adjacent", "unboxed-suspect", "unannotated", "blank"
]
LabelMethod = Literal["derived", "teacher", "teacher-fallback"]


@dataclass(frozen=True)
class LabelConfig:
    """Parameters of the label derivations (see the module docstring).

    Parameters
    ----------
    threshold_hu:
        Fixed blood threshold in HU; ``None`` uses each patient's parenchyma/clot midpoint.
    threshold_clip_hu:
        Range the per-patient threshold is clipped to.
    fallback_threshold_hu:
        Threshold for a patient without a measured clot mode.
    smooth_sigma_px:
        Gaussian smoothing of the steps before thresholding (noise).
    bone_margin_px:
        Pixels this close to a saturated pixel are never blood.
    calcification_max_px, calcification_margin_px:
        Saturated blobs smaller than ``calcification_max_px`` are calcifications (pineal, choroid
        plexus, vessel walls); their blurred halo, ``calcification_margin_px`` wide, is never blood.
    min_component_px, keep_fraction:
        Components smaller than ``max(min_component_px, keep_fraction * largest)`` are dropped.
    bridge_px:
        Largest gap (closing radius, pixels) bridged in an oedema ring.
    min_interior_px:
        A ring interior smaller than this does not count.
    neighbour_slices, neighbour_grow_px, suspect_min_px:
        Search for unboxed blood next to boxed slices.
    derived_box_margin_px:
        Margin of boxes derived from oedema masks (patients without box files).
    bridged_weight, open_weight, box_only_confidence, adjacent_confidence:
        Confidence constants.
    edge_ignore_px:
        Width of the band around A's edge given zero weight.
    tolerance_px:
        Dilation of each mask in the boundary-tolerant Dice.
    adjacency_px:
        Largest gap (pixels) between A's edge and the oedema on a ray for the rim to hug the clot.
    """

    threshold_hu: float | None = None
    threshold_clip_hu: tuple[float, float] = (42.0, 55.0)
    fallback_threshold_hu: float = 46.0
    smooth_sigma_px: float = 0.8
    bone_margin_px: int = 3
    calcification_max_px: int = 200
    calcification_margin_px: int = 6
    min_component_px: int = 20
    keep_fraction: float = 0.1
    bridge_px: int = 4
    min_interior_px: int = 20
    neighbour_slices: int = 2
    neighbour_grow_px: int = 10
    suspect_min_px: int = 30
    derived_box_margin_px: int = 13
    bridged_weight: float = 0.9
    open_weight: float = 0.7
    box_only_confidence: float = 0.5
    adjacent_confidence: float = 0.7
    edge_ignore_px: int = 1
    tolerance_px: int = 3
    adjacency_px: int = 10

    def __post_init__(self) -> None:
        lo, hi = self.threshold_clip_hu
        if not lo < hi:
            raise ValueError(f"Argument 'threshold_clip_hu' must be (low, high) with low < high; got {lo}, {hi}.")
        for name in ("bridged_weight", "open_weight", "box_only_confidence", "adjacent_confidence",
                     "keep_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Argument '{name}' must be in [0, 1]; got {value!r}.")
        for name in ("bone_margin_px", "min_component_px", "bridge_px", "min_interior_px", "neighbour_slices",
                     "neighbour_grow_px", "suspect_min_px",
                     "calcification_max_px", "calcification_margin_px", "derived_box_margin_px", "edge_ignore_px",
                     "tolerance_px", "adjacency_px"):
            if getattr(self, name) < 0:
                raise ValueError(f"Argument '{name}' must not be negative; got {getattr(self, name)!r}.")


@dataclass(frozen=True)
class SliceLabel:
    """The label of one slice and how it was made.

    Attributes
    ----------
    name, patient_id, index:
        The slice.
    source:
        How the final mask was decided (:data:`LabelSource`).
    ring_state:
        What the oedema mask gave (:data:`RingState`).
    mask:
        The label (derivation A on boxed slices; empty elsewhere).
    ring_mask:
        Derivation B (ring or hull interior), ``None`` when absent.
    weight:
        float32 per-pixel loss weight: 0 where A and B disagree and on A's edge band, else 1.
    agreement:
        Dice(A, B) for closed or bridged rings (NaN otherwise).
    agreement_tolerant:
        The same with ``tolerance_px`` of boundary tolerance.
    adjacency:
        Fraction of rays from A's centroid that meet the oedema within ``adjacency_px`` of A's
        edge, among the rays that meet oedema (:func:`adjacency`; NaN without evidence).
    confidence:
        Slice weight in [0, 1] (:func:`slice_confidence`).
    threshold_hu:
        Blood threshold used.
    suspect_px:
        Unboxed slices: hyperdense candidate pixels next to the neighbouring boxes.
    boxes:
        Boxes used (real or derived).
    candidate:
        Unboxed slices next to boxed ones: the hyperdense candidate found (not a label).
    method:
        ``derived`` (this module), ``teacher`` (a teacher's mask, :mod:`phe_teacher`) or
        ``teacher-fallback`` (boxed slice where the teacher found nothing: the derived label kept).
    teacher_px:
        Pixels of the teacher's mask on the slice (-1 without a teacher).
    teacher_agreement:
        Boundary-tolerant Dice of the teacher label and the derived label (NaN when not measured).
    """

    name: str
    patient_id: str
    index: int
    source: LabelSource
    ring_state: RingState
    mask: BoolArray
    ring_mask: BoolArray | None
    weight: F32
    agreement: float
    agreement_tolerant: float
    adjacency: float
    confidence: float
    threshold_hu: float
    suspect_px: int = 0
    boxes: tuple[Box, ...] = field(default_factory=tuple)
    candidate: BoolArray | None = None
    method: LabelMethod = "derived"
    teacher_px: int = -1
    teacher_agreement: float = math.nan

    @property
    def area_px(self) -> int:
        """Pixels in the label."""
        return int(self.mask.sum())

    def row(self) -> dict[str, object]:
        """A CSV-ready summary (no arrays)."""
        return {
            "name": self.name,
            "patient_id": self.patient_id,
            "index": self.index,
            "source": self.source,
            "ring_state": self.ring_state,
            "area_px": self.area_px,
            "ring_area_px": -1 if self.ring_mask is None else int(self.ring_mask.sum()),
            "agreement": _fmt(self.agreement),
            "agreement_tolerant": _fmt(self.agreement_tolerant),
            "adjacency": _fmt(self.adjacency),
            "confidence": f"{self.confidence:.3f}",
            "threshold_hu": f"{self.threshold_hu:.1f}",
            "suspect_px": self.suspect_px,
            "n_boxes": len(self.boxes),
            "boxes": ";".join(f"{b.x0},{b.y0},{b.x1},{b.y1}" for b in self.boxes),
            "method": self.method,
            "teacher_px": self.teacher_px,
            "teacher_agreement": _fmt(self.teacher_agreement),
        }


def _fmt(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.3f}"


def dice(a: BoolArray, b: BoolArray, *, tolerance_px: int = 0) -> float:
    """Dice overlap of two masks (1 when both are empty).

    With ``tolerance_px``, a pixel of one mask counts as matched when the other mask, dilated by
    that many pixels, covers it: ``(|A & dil(B)| + |B & dil(A)|) / (|A| + |B|)``.
    """
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    if tolerance_px <= 0:
        return 2.0 * int((a & b).sum()) / total
    grown_a = ndimage.binary_dilation(a, iterations=tolerance_px) if a.any() else a
    grown_b = ndimage.binary_dilation(b, iterations=tolerance_px) if b.any() else b
    return (int((a & grown_b).sum()) + int((b & grown_a).sum())) / total


def adjacency(mask: BoolArray, oedema: BoolArray, *, within_px: int, n_rays: int = 72) -> float:
    """How closely the oedema rim hugs ``mask``: a ray test from the mask's centroid.

    Rays are cast every ``360 / n_rays`` degrees. On each ray that meets oedema, the gap is the
    distance from the mask's last pixel to the first oedema pixel beyond it (0 when they touch
    or overlap). The score is the fraction of those rays whose gap is at most ``within_px``.
    NaN when either mask is empty or fewer than ``n_rays // 12`` rays meet oedema.
    """
    if not mask.any() or not oedema.any():
        return math.nan
    rows, cols = np.nonzero(mask)
    cy, cx = float(rows.mean()), float(cols.mean())
    orows, ocols = np.nonzero(oedema)
    reach = float(np.hypot(orows - cy, ocols - cx).max()) + 2.0
    radii = np.arange(0.0, reach, 0.5)
    angles = np.linspace(0.0, 2.0 * math.pi, n_rays, endpoint=False)
    yy = np.rint(cy + np.sin(angles)[:, None] * radii[None, :]).astype(np.int64)
    xx = np.rint(cx + np.cos(angles)[:, None] * radii[None, :]).astype(np.int64)
    inside = (yy >= 0) & (yy < mask.shape[0]) & (xx >= 0) & (xx < mask.shape[1])
    yy, xx = np.clip(yy, 0, mask.shape[0] - 1), np.clip(xx, 0, mask.shape[1] - 1)
    on_mask = mask[yy, xx] & inside
    on_oedema = oedema[yy, xx] & inside
    hits = 0
    close = 0
    for ray in range(n_rays):
        m_idx = np.flatnonzero(on_mask[ray])
        edge = radii[m_idx[-1]] if m_idx.size else 0.0
        o_idx = np.flatnonzero(on_oedema[ray] & (radii >= edge - 0.5))
        if o_idx.size == 0:
            continue
        hits += 1
        close += int(radii[o_idx[0]] - edge <= within_px)
    if hits < max(1, n_rays // 12):
        return math.nan
    return close / hits


def blood_threshold_steps(anchors: TissueAnchors, low_hu: float, config: LabelConfig) -> float:
    """The patient's blood threshold in steps ``k`` (HU = low + k).

    ``config.threshold_hu`` when set; else the midpoint of the parenchyma and clot modes,
    clipped to ``config.threshold_clip_hu``; else ``config.fallback_threshold_hu``.
    """
    if config.threshold_hu is not None:
        return config.threshold_hu - low_hu
    if anchors.parenchyma is None or anchors.blood is None:
        return config.fallback_threshold_hu - low_hu
    mid_hu = low_hu + 0.5 * (anchors.parenchyma + anchors.blood)
    lo, hi = config.threshold_clip_hu
    return float(np.clip(mid_hu, lo, hi)) - low_hu


def _keep_components(mask: BoolArray, config: LabelConfig) -> BoolArray:
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    floor = max(config.min_component_px, config.keep_fraction * float(sizes.max()))
    return np.isin(labels, np.flatnonzero(sizes >= floor))


def box_threshold_label(
    steps: npt.NDArray[np.int16],
    region: BoolArray,
    *,
    threshold_steps: float,
    top_step: int,
    config: LabelConfig,
) -> BoolArray:
    """Derivation A: hyperdense, non-bone, intracranial pixels of ``region``, cleaned and filled.

    Parameters
    ----------
    steps:
        The slice as steps ``k`` (:func:`phe_window.grey_to_steps`).
    region:
        Where blood may be (a box, or boxes grown around neighbours).
    threshold_steps:
        Blood threshold in steps.
    top_step:
        The saturated step (bone, calcification).
    config:
        Cleaning parameters.
    """
    k = steps.astype(np.float32)
    bone = steps >= top_step
    smooth = ndimage.gaussian_filter(np.where(bone, np.float32(threshold_steps), k), config.smooth_sigma_px)
    # (scipy dilates until nothing changes when iterations is 0: guard it)
    near_bone = ndimage.binary_dilation(bone, iterations=config.bone_margin_px) if config.bone_margin_px else bone
    if bone.any() and config.calcification_margin_px > config.bone_margin_px:
        labels, _ = ndimage.label(bone)
        sizes = np.bincount(labels.ravel())
        small = np.flatnonzero((sizes > 0) & (sizes < config.calcification_max_px))
        small = small[small > 0]
        if small.size:
            margin = config.calcification_margin_px
            calcified = np.isin(labels, small) & ndimage.binary_dilation(region, iterations=margin)
            near_bone |= ndimage.binary_dilation(calcified, iterations=margin)
    inside = intracranial_mask(steps, top_step=top_step, erode_px=0)
    allowed = region & ~near_bone
    if inside.any() and float(inside[region].mean()) >= 0.5:
        allowed &= inside
    blood = (smooth >= threshold_steps) & allowed & (steps > 0)
    blood = ndimage.binary_closing(blood, iterations=1) & allowed
    blood = _keep_components(blood, config)
    return ndimage.binary_fill_holes(blood) & allowed


def ring_interior(oedema: BoolArray, *, config: LabelConfig) -> tuple[RingState, BoolArray | None]:
    """Derivation B: the interior of the oedema ring(s).

    Returns ``("closed", interior)`` when the rim encloses at least ``min_interior_px``,
    ``("bridged", interior)`` when it does after a closing of up to ``bridge_px``, ``("open",
    hull interior)`` for a rim that never closes (its convex hull minus the rim), and
    ``("absent", None)`` without oedema.
    """
    if not oedema.any():
        return "absent", None
    interior = ndimage.binary_fill_holes(oedema) & ~oedema
    if int(interior.sum()) >= config.min_interior_px:
        return "closed", interior
    for radius in range(1, config.bridge_px + 1):
        closed = ndimage.binary_closing(oedema, structure=_disk(radius), iterations=1)
        interior = ndimage.binary_fill_holes(closed) & ~closed
        if int(interior.sum()) >= config.min_interior_px:
            return "bridged", interior
    hull = convex_hull_image(oedema) & ~oedema
    if int(hull.sum()) < config.min_interior_px:
        return "open", None
    return "open", hull


def _disk(radius: int) -> BoolArray:
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return np.asarray(x * x + y * y <= radius * radius)


def slice_confidence(
    *, source: LabelSource, ring_state: RingState, mask_empty: bool, agreement_tolerant: float,
    adjacency_fraction: float, config: LabelConfig,
) -> float:
    """Slice weight in [0, 1] (see the module docstring)."""
    if source in ("box-threshold", "derived-box"):
        if mask_empty:
            return 0.0
        if ring_state in ("closed", "bridged") and not math.isnan(agreement_tolerant):
            return float(agreement_tolerant * (1.0 if ring_state == "closed" else config.bridged_weight))
        if ring_state == "open" and not math.isnan(adjacency_fraction):
            return float(config.open_weight * adjacency_fraction)
        return config.box_only_confidence
    if source == "negative":
        return 1.0
    if source == "unboxed-adjacent":
        return config.adjacent_confidence
    return 0.0


def _edge_band(mask: BoolArray, width: int) -> BoolArray:
    if width == 0 or not mask.any():
        return np.zeros_like(mask)
    return ndimage.binary_dilation(mask, iterations=width) & ~ndimage.binary_erosion(mask, iterations=width)


def _derived_boxes(oedema: BoolArray, margin: int) -> tuple[Box, ...]:
    if not oedema.any():
        return ()
    rows, cols = np.nonzero(oedema)
    return (Box(int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max())).grown(margin, oedema.shape),)


def label_patient(
    slices: Sequence[PheSlice],
    images: Sequence[U8],
    oedemas: Sequence[BoolArray],
    *,
    fit: QuantisationFit,
    anchors: TissueAnchors,
    low_hu: float,
    config: LabelConfig = LabelConfig(),
) -> list[SliceLabel]:
    """Label every slice of one patient (sorted by slice number).

    Parameters
    ----------
    slices, images, oedemas:
        The patient's slices, their 8-bit images and oedema masks, in slice order.
    fit:
        Quantisation fit of the window.
    anchors:
        The patient's tissue modes (for the threshold).
    low_hu:
        HU of step 0 (the window's low end: level - width / 2).
    config:
        Parameters.

    Raises
    ------
    ValueError
        If the three sequences differ in length or the slices are not of one patient.
    """
    if not (len(slices) == len(images) == len(oedemas)):
        raise ValueError("Arguments 'slices', 'images' and 'oedemas' must have one entry per slice.")
    if len({s.patient_id for s in slices}) > 1:
        raise ValueError("Argument 'slices' must hold the slices of one patient.")
    top = fit.n_steps
    thr = blood_threshold_steps(anchors, low_hu, config)
    thr_hu = low_hu + thr
    unannotated = all(s.box_state == "unannotated" for s in slices)
    boxes: list[tuple[Box, ...]] = []
    for s, oedema in zip(slices, oedemas, strict=True):
        boxes.append(_derived_boxes(oedema, config.derived_box_margin_px) if unannotated else tuple(s.boxes))
    boxed = [i for i, b in enumerate(boxes) if b]
    out: list[SliceLabel] = []
    for i, (s, grey, oedema) in enumerate(zip(slices, images, oedemas, strict=True)):
        steps = grey_to_steps(grey, fit)
        shape = (int(grey.shape[0]), int(grey.shape[1]))
        ring_state, ring = ring_interior(oedema, config=config)
        empty = np.zeros(shape, dtype=bool)
        weight = np.ones(shape, dtype=np.float32)
        if boxes[i]:
            region = np.zeros(shape, dtype=bool)
            for b in boxes[i]:
                region |= b.mask(shape)
            mask = box_threshold_label(steps, region, threshold_steps=thr, top_step=top, config=config)
            ring_in_box = ring & region if ring is not None else None
            agreement = tolerant = math.nan
            if ring_in_box is not None and ring_state in ("closed", "bridged"):
                agreement = dice(mask, ring_in_box)
                tolerant = dice(mask, ring_in_box, tolerance_px=config.tolerance_px)
                weight[mask ^ ring_in_box] = 0.0
            adjacent = adjacency(mask, oedema & region, within_px=config.adjacency_px)
            weight[_edge_band(mask, config.edge_ignore_px)] = 0.0
            source: LabelSource = "derived-box" if unannotated else "box-threshold"
            confidence = slice_confidence(
                source=source, ring_state=ring_state, mask_empty=not mask.any(), agreement_tolerant=tolerant,
                adjacency_fraction=adjacent, config=config,
            )
            out.append(SliceLabel(s.name, s.patient_id, s.index, source, ring_state, mask, ring_in_box, weight,
                                  agreement, tolerant, adjacent, confidence, thr_hu, 0, boxes[i]))
            continue
        near = [j for j in boxed if abs(j - i) <= config.neighbour_slices]
        suspect_px = 0
        candidate = None
        if not grey.any():
            source = "blank"
        elif near:
            region = np.zeros(shape, dtype=bool)
            for j in near:
                for b in boxes[j]:
                    region |= b.grown(config.neighbour_grow_px, shape).mask(shape)
            candidate = box_threshold_label(steps, region, threshold_steps=thr, top_step=top, config=config)
            suspect_px = int(candidate.sum())
            source = "unboxed-suspect" if suspect_px >= config.suspect_min_px else "unboxed-adjacent"
        elif s.box_state == "unannotated" and not boxed:
            source = "unannotated"
        else:
            source = "negative"
        confidence = slice_confidence(source=source, ring_state=ring_state, mask_empty=True,
                                      agreement_tolerant=math.nan, adjacency_fraction=math.nan, config=config)
        out.append(SliceLabel(s.name, s.patient_id, s.index, source, ring_state, empty, None, weight, math.nan,
                              math.nan, math.nan, confidence, thr_hu, suspect_px, (), candidate))
    return out


def summarise(labels: Sequence[SliceLabel]) -> Mapping[str, object]:
    """Counts by source and ring state, and agreement statistics of the boxed slices."""
    by_source: dict[str, int] = {}
    by_ring: dict[str, int] = {}
    for lab in labels:
        by_source[lab.source] = by_source.get(lab.source, 0) + 1
        if lab.source in ("box-threshold", "derived-box"):
            by_ring[lab.ring_state] = by_ring.get(lab.ring_state, 0) + 1
    def stats(values: list[float]) -> dict[str, object]:
        arr = np.array([v for v in values if not math.isnan(v)])
        if arr.size == 0:
            return {"n": 0}
        return {"n": int(arr.size), "median": float(np.median(arr)),
                "q25": float(np.percentile(arr, 25)), "q75": float(np.percentile(arr, 75))}

    boxed = [lab for lab in labels if lab.source in ("box-threshold", "derived-box")]
    return {
        "by_source": by_source,
        "boxed_by_ring_state": by_ring,
        "boxed_empty_label": sum(1 for lab in boxed if not lab.mask.any()),
        "dice_closed_rings": stats([lab.agreement for lab in boxed]),
        "tolerant_dice_closed_rings": stats([lab.agreement_tolerant for lab in boxed]),
        "adjacency_open_rings": stats([lab.adjacency for lab in boxed if lab.ring_state == "open"]),
        "confidence_boxed": stats([lab.confidence for lab in boxed]),
    }
