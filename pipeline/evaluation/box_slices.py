"""Score a segmenter on real PNG slices that carry VOC boxes instead of masks (PHE-SICH-CT-IDS layout).

A data set in this layout has ``images/PPPP_SS.png`` (8-bit, windowed, patient ``PPPP``, slice
``SS`` in stack order) and ``boxes/PPPP_SS.xml`` (Pascal VOC; a slice may have none or no file).
Without a blood mask, three things are measurable per patient (functions of
:mod:`ichpipe.pipeline.evaluation.detection`):

* **box hit rate**: boxes holding at least ``min_hit_px`` predicted pixels; also counted apart
  for the boxes on the first or last slice of each run of consecutive boxed slices, where the
  clot fills only part of the slab (the boxes a one-slice network misses most);
* **false-positive components outside boxes**: predicted 8-connected components of at least
  ``min_component_px`` pixels with no pixel inside a box, on the boxed slices (where the
  bleed is) and on all slices;
* **false-positive slice rate**: slices at least ``min_distance`` slices from every boxed
  slice that hold such a component.

The PNGs carry no HU, spacing or orientation; every one of these is an **assumption** the
caller states (:class:`PngAssumptions`) and the results carry: grey level ``g`` is
``lo + g / 255 (hi - lo)`` HU; 255 is bone (above the window); black connected to the image
border is air; the slices are ``slice_mm`` apart, pixels ``pixel_mm`` wide; ``rotate``
quarter turns make the anterior point up (the boxes are scored in the PNG frame).
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image
from scipy import ndimage

from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.errors import UsageError
from ichpipe.pipeline.datasets.case import uniform_geometry
from ichpipe.pipeline.evaluation.detection import DetectionCount, box_hit, false_positive_slice_rate
from ichpipe.pipeline.segment.segmenter import Segmenter, segment_volume

__all__ = [
    "Box",
    "BoxPatient",
    "BoxScore",
    "PngAssumptions",
    "box_markdown",
    "components_outside_boxes",
    "list_box_patients",
    "patient_volume",
    "png_stack_to_hu",
    "pool_scores",
    "read_voc_boxes",
    "score_patient",
    "segment_box_patient",
]

Box = tuple[int, int, int, int]
BoolArray = npt.NDArray[np.bool_]
_EIGHT = np.ones((3, 3), dtype=bool)
_NAME = re.compile(r"^(?P<patient>[^_]+)_(?P<slice>\d+)\.png$")


@dataclass(frozen=True)
class PngAssumptions:
    """What windowed PNG slices do not say, assumed by the caller and reported with every result.

    Parameters
    ----------
    window_hu:
        ``(lo, hi)``: HU of grey levels 0 and 255.
    pixel_mm:
        In-plane pixel size.
    slice_mm:
        Distance between consecutive slices (the files' order is the stack order, first inferior).
    rotate:
        Quarter turns (``numpy.rot90``'s ``k``) that make the anterior point up; masks are turned back.
    bone_hu:
        HU given to saturated white pixels (255).
    """

    window_hu: tuple[float, float] = (-20.0, 100.0)
    pixel_mm: float = 0.45
    slice_mm: float = 5.0
    rotate: int = -1
    bone_hu: float = 1000.0

    def __post_init__(self) -> None:
        if not self.window_hu[0] < self.window_hu[1]:
            raise ValueError(f"Argument 'window_hu' must be (lo, hi) with lo < hi; got {self.window_hu}.")
        if not (self.pixel_mm > 0 and self.slice_mm > 0):
            raise ValueError("Arguments 'pixel_mm' and 'slice_mm' must be positive.")


def read_voc_boxes(path: Path) -> list[Box]:
    """The ``(x0, y0, x1, y1)`` boxes of a Pascal VOC file (inclusive pixel corners); ``[]`` when absent.

    Raises
    ------
    UsageError
        The file is not VOC XML or a box is malformed.
    """
    if not path.is_file():
        return []
    try:
        root = ET.parse(path).getroot()
        boxes = []
        for obj in root.iter("bndbox"):
            x0, y0, x1, y1 = (round(float(obj.findtext(k) or "nan")) for k in ("xmin", "ymin", "xmax", "ymax"))
            boxes.append((x0, y0, x1, y1))
    except (ET.ParseError, ValueError) as exc:
        raise UsageError(f"Box file {path} is not a readable Pascal VOC annotation: {exc}.") from exc
    return boxes


@dataclass(frozen=True)
class BoxPatient:
    """One patient's slices (in stack order) and the boxes of each."""

    patient_id: str
    images: tuple[Path, ...]
    boxes: tuple[tuple[Box, ...], ...]


def list_box_patients(root: Path, *, patients: Sequence[str] | None = None) -> list[BoxPatient]:
    """Patients of a data set in the ``images/PPPP_SS.png`` + ``boxes/PPPP_SS.xml`` layout.

    Parameters
    ----------
    root:
        The data set folder.
    patients:
        Only these patient ids (all when ``None``).

    Raises
    ------
    UsageError
        No ``images/`` folder, or a requested patient has no slices.
    """
    folder = root / "images"
    if not folder.is_dir():
        raise UsageError(f"{root} has no images/ folder; --boxes expects images/PPPP_SS.png and boxes/PPPP_SS.xml.")
    found: dict[str, list[tuple[int, Path]]] = {}
    for path in folder.iterdir():
        m = _NAME.match(path.name)
        if m:
            found.setdefault(m["patient"], []).append((int(m["slice"]), path))
    wanted = sorted(found) if patients is None else list(patients)
    missing = [p for p in wanted if p not in found]
    if missing:
        raise UsageError(f"No slices of patient(s) {', '.join(missing)} in {folder}.")
    out = []
    for pid in wanted:
        paths = [p for _, p in sorted(found[pid])]
        boxes = tuple(tuple(read_voc_boxes(root / "boxes" / (p.stem + ".xml"))) for p in paths)
        out.append(BoxPatient(pid, tuple(paths), boxes))
    return out


def png_stack_to_hu(images: Sequence[npt.ArrayLike], *, window_hu: tuple[float, float],
                    bone_hu: float = 1000.0, air_hu: float = -1000.0) -> npt.NDArray[np.float32]:
    """Map windowed 8-bit slices back to (assumed) HU.

    Grey ``g`` in 1..254 is ``lo + g / 255 (hi - lo)``; 255 becomes ``bone_hu``; 0 connected to
    the image border (outside the head) becomes ``air_hu``, other zeros ``lo``.

    Raises
    ------
    ValueError
        No slices, slices of different shapes or not 8-bit 2-D, or ``lo >= hi``.

    Examples
    --------
    >>> img = np.zeros((5, 5), np.uint8); img[1:4, 1:4] = 128; img[2, 2] = 0; img[1, 1] = 255
    >>> hu = png_stack_to_hu([img], window_hu=(0.0, 80.0))[0]
    >>> [float(hu[0, 0]), float(hu[1, 1]), round(float(hu[1, 2]), 1), float(hu[2, 2])]
    [-1000.0, 1000.0, 40.2, 0.0]
    """
    lo, hi = (float(v) for v in window_hu)
    if not lo < hi:
        raise ValueError(f"Argument 'window_hu' must be (lo, hi) with lo < hi; got {window_hu}.")
    stack = [np.asarray(a) for a in images]
    if not stack:
        raise ValueError("Argument 'images' must hold at least one slice.")
    if any(a.ndim != 2 or a.dtype != np.uint8 or a.shape != stack[0].shape for a in stack):
        raise ValueError("Argument 'images' must be 2-D uint8 slices of one shape.")
    out = np.empty((len(stack), *stack[0].shape), dtype=np.float32)
    for k, img in enumerate(stack):
        hu = lo + img.astype(np.float32) / 255.0 * (hi - lo)
        hu[img == 255] = bone_hu
        black, _ = ndimage.label(img == 0)
        border = np.unique(np.concatenate([black[0], black[-1], black[:, 0], black[:, -1]]))
        hu[np.isin(black, border[border > 0])] = air_hu
        out[k] = hu
    return out


def components_outside_boxes(mask: BoolArray, boxes: Sequence[Box], *, min_component_px: int = 50) -> int:
    """Predicted 8-connected components of ``min_component_px`` or more with no pixel inside any box.

    Examples
    --------
    >>> m = np.zeros((20, 20), bool); m[1:4, 1:4] = True; m[10:14, 10:14] = True
    >>> components_outside_boxes(m, [(9, 9, 15, 15)], min_component_px=5)
    1
    """
    if mask.ndim != 2 or mask.dtype != np.bool_:
        raise ValueError("Argument 'mask' must be a 2D boolean array.")
    if min_component_px < 1:
        raise ValueError(f"Argument 'min_component_px' must be at least 1; got {min_component_px}.")
    labels, n = ndimage.label(mask, structure=_EIGHT)
    if not n:
        return 0
    sizes = np.bincount(labels.ravel())
    inside = np.zeros(n + 1, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        inside[np.unique(labels[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1])] = True
    return int(sum(1 for k in range(1, n + 1) if sizes[k] >= min_component_px and not inside[k]))


@dataclass(frozen=True)
class BoxScore:
    """Detection results of one segmenter on one patient (or pooled: ``patient_id`` ``"all"``).

    Attributes
    ----------
    hits:
        Boxes hit out of boxes.
    end_hits:
        Of those, the boxes on the first or last slice of a run of consecutive boxed slices (where a
        clot fills only part of the slab and looks faint), hit out of such boxes.
    fp_slices:
        Negative slices with a false positive out of negative slices.
    fp_components_boxed:
        Components outside the boxes on the boxed slices.
    fp_components_all:
        Components outside the boxes on every slice.
    predicted_ml:
        Predicted volume under the assumed spacing.
    cpu_s, wall_s:
        CPU seconds (this process, all threads) and wall seconds of the segmenter.
    """

    patient_id: str
    segmenter: str
    hits: DetectionCount
    fp_slices: DetectionCount
    fp_components_boxed: int
    fp_components_all: int
    predicted_ml: float
    cpu_s: float
    wall_s: float
    n_slices: int
    extra: dict[str, Any] = field(default_factory=dict)
    end_hits: DetectionCount = field(default_factory=lambda: DetectionCount(0, 0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the rates."""
        d = asdict(self)
        d["box_hit_rate"] = self.hits.rate
        d["end_box_hit_rate"] = self.end_hits.rate
        d["fp_slice_rate"] = self.fp_slices.rate
        return d


def score_patient(masks: Sequence[BoolArray], patient: BoxPatient, *, segmenter: str, min_hit_px: int = 20,
                  min_component_px: int = 50, min_distance: int = 3, predicted_ml: float = 0.0,
                  cpu_s: float = 0.0, wall_s: float = 0.0) -> BoxScore:
    """Box hits, components outside boxes and the false-positive slice rate of one patient's masks.

    ``masks`` are in the PNG frame, one per slice of ``patient`` in stack order.
    """
    if len(masks) != len(patient.images):
        raise ValueError(f"Argument 'masks' must hold one mask per slice ({len(patient.images)}); got {len(masks)}.")
    hits = end_hits = DetectionCount(0, 0)
    boxed = [k for k, b in enumerate(patient.boxes) if b]
    boxed_set = set(boxed)
    run_ends = {k for k in boxed if k - 1 not in boxed_set or k + 1 not in boxed_set}
    for k, (mask, boxes) in enumerate(zip(masks, patient.boxes, strict=True)):
        for box in boxes:
            hit = DetectionCount(int(box_hit(mask, box, min_pixels=min_hit_px)), 1)
            hits += hit
            if k in run_ends:
                end_hits += hit
    outside = [components_outside_boxes(m, b, min_component_px=min_component_px)
               for m, b in zip(masks, patient.boxes, strict=True)]
    fp_slices = false_positive_slice_rate(list(masks), boxed, min_distance=min_distance,
                                          min_component_px=min_component_px)
    return BoxScore(patient.patient_id, segmenter, hits, fp_slices, sum(outside[k] for k in boxed), sum(outside),
                    predicted_ml, cpu_s, wall_s, len(masks), end_hits=end_hits)


def pool_scores(scores: Sequence[BoxScore], *, label: str = "all") -> BoxScore:
    """Pool patients of one segmenter (counts added, times summed)."""
    if not scores:
        raise ValueError("Argument 'scores' must hold at least one patient.")
    hits, fps, ends = DetectionCount(0, 0), DetectionCount(0, 0), DetectionCount(0, 0)
    for s in scores:
        hits += s.hits
        fps += s.fp_slices
        ends += s.end_hits
    return BoxScore(label, scores[0].segmenter, hits, fps, sum(s.fp_components_boxed for s in scores),
                    sum(s.fp_components_all for s in scores), sum(s.predicted_ml for s in scores),
                    sum(s.cpu_s for s in scores), sum(s.wall_s for s in scores), sum(s.n_slices for s in scores),
                    end_hits=ends)


def patient_volume(patient: BoxPatient, assumptions: PngAssumptions) -> CTVolume:
    """One patient's PNG stack as an assumed-HU :class:`~ichpipe.dicom_io.assemble.CTVolume` on an evenly spaced grid.

    Each slice turned upright (``assumptions.rotate``), its grey levels read through the assumed window
    (:func:`png_stack_to_hu`), on the assumed pixel size and slice spacing.
    """
    images = []
    for path in patient.images:
        with Image.open(path) as im:
            images.append(np.rot90(np.asarray(im.convert("L")), assumptions.rotate))
    hu = png_stack_to_hu(images, window_hu=assumptions.window_hu, bone_hu=assumptions.bone_hu)
    geometry = uniform_geometry(n_slices=hu.shape[0], rows=hu.shape[1], columns=hu.shape[2],
                                pixel_spacing_mm=assumptions.pixel_mm, slice_thickness_mm=assumptions.slice_mm)
    return CTVolume(hu=np.ascontiguousarray(hu), geometry=geometry, slices=(), study_uid="",
                    series_uid=f"png:{patient.patient_id}", warnings=())


def segment_box_patient(patient: BoxPatient, segmenter: Segmenter, assumptions: PngAssumptions, *,
                        name: str | None = None, min_hit_px: int = 20, min_component_px: int = 50,
                        min_distance: int = 3,
                        on_masks: Callable[[BoxPatient, npt.NDArray[np.bool_]], None] | None = None) -> BoxScore:
    """Segment one patient's PNG stack as a volume under ``assumptions`` and score it against its boxes.

    The slices become an assumed-HU :class:`~ichpipe.dicom_io.assemble.CTVolume` on an evenly
    spaced axial grid, so every segmenter (threshold, network, BLAST-CT) runs as on DICOM, with
    its own intracranial restriction. ``on_masks(patient, masks)`` receives the masks in the PNG
    frame (for overlays).
    """
    volume = patient_volume(patient, assumptions)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    mask = segment_volume(segmenter, volume).mask
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    ml = float(mask.sum() * assumptions.pixel_mm ** 2 * assumptions.slice_mm / 1000.0)
    back = np.stack([np.rot90(m, -assumptions.rotate) for m in mask])
    if on_masks is not None:
        on_masks(patient, back)
    return score_patient(list(back), patient, segmenter=name or segmenter.name, min_hit_px=min_hit_px,
                         min_component_px=min_component_px, min_distance=min_distance, predicted_ml=ml,
                         cpu_s=cpu, wall_s=wall)


def _pct(count: DetectionCount) -> str:
    return "n/a" if not count.total else f"{count.rate:.3f} ({count.events}/{count.total})"


def box_markdown(scores: Sequence[BoxScore], assumptions: PngAssumptions, *, title: str = "Box-level detection",
                 case_type: str = "iph") -> str:
    """Markdown: one pooled row per segmenter (with the case type), then the per-patient rows."""
    header = ("| segmenter | type | patients | box hit rate | ... on end slices of a boxed run | FP slice rate"
              " | FP comp. outside boxes (boxed slices) | FP comp. outside boxes (all slices) | CPU s"
              " | CPU s / patient |")
    rule = "|" + "---|" * 10
    lines = [f"## {title}", "",
             f"Assumed: window {assumptions.window_hu[0]:g}..{assumptions.window_hu[1]:g} HU, pixel"
             f" {assumptions.pixel_mm:g} mm, slice {assumptions.slice_mm:g} mm, rot90 k={assumptions.rotate}.", "",
             header, rule]
    by_segmenter: dict[str, list[BoxScore]] = {}
    for s in scores:
        by_segmenter.setdefault(s.segmenter, []).append(s)
    for name, rows in by_segmenter.items():
        p = pool_scores(rows)
        lines.append(f"| {name} | {case_type} | {len(rows)} | {_pct(p.hits)} | {_pct(p.end_hits)} |"
                     f" {_pct(p.fp_slices)} | {p.fp_components_boxed} | {p.fp_components_all} | {p.cpu_s:.1f} |"
                     f" {p.cpu_s / len(rows):.1f} |")
    lines += ["", "| segmenter | patient | slices | box hit rate | FP slice rate | FP comp. (boxed) | FP comp. (all)"
              " | predicted mL | CPU s |", "|" + "---|" * 9]
    for s in scores:
        lines.append(f"| {s.segmenter} | {s.patient_id} | {s.n_slices} | {_pct(s.hits)} | {_pct(s.fp_slices)} |"
                     f" {s.fp_components_boxed} | {s.fp_components_all} | {s.predicted_ml:.2f} | {s.cpu_s:.1f} |")
    return "\n".join(lines) + "\n"
