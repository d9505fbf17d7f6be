"""The classical HU-threshold baseline: acute-blood HU inside the intracranial space, away from its rim.

A **baseline**, not a trained method (``--segmenter threshold``): it exists to
run without a checkpoint, to cross-check the network (``quality.cross_check``)
and to show what HU alone can do. Known limits: blood below ``blood_hu``'s
50 HU (layered or diluted intraventricular blood, anaemia, subacute blood) is
missed; a thin collection that lies entirely within ``rim_mm`` of the inner
table (a thin subdural or epidural haematoma) has no core and is missed;
components under ``min_component_ml`` are dropped. Steps (all in
physical units, so they mean the same at 0.4 mm and at 1 mm pixels):

0. the intracranial space (:func:`~ichpipe.pipeline.segment.intracranial.find_intracranial`);
1. in-plane median filter (``median_size_mm``) against noise;
2. the acute-blood band (``blood_hu``, 50-90 HU) inside the intracranial mask;
3. *calcifications*: voxels at or above ``calcification_hu`` and everything
   within ``calcification_margin_mm`` of them (their partial-volume halo falls
   in the band) are excluded;
4. *rim*: voxels closer than ``rim_mm`` (in-plane) to the edge of the
   intracranial mask, or on a slice whose neighbour along the normal is
   outside the mask at that pixel (the vertex and the skull base, cut
   obliquely by thick slices), cannot start a hematoma: partial volume and
   beam hardening under the inner table put the cortex into the band there;
5. *thin structures* (falx, tentorium, cortical ribbon) are removed from the
   cores by an in-plane opening of radius ``opening_mm``;
6. *cores* are the remaining 3D (26-connected) components of at least
   ``min_core_ml``;
7. each core grows back, geodesically within the band (not into the
   calcification halos), by up to ``grow_mm`` in-plane: a hematoma against the
   inner table keeps its rim, the thin cortical shell elsewhere stays out;
8. components under ``min_component_ml`` are dropped.

Memory: the filters run on slabs of :data:`SLAB_SLICES` slices inside the
bounding box of the intracranial mask; no float64 copy of the volume and no
3D label volume is made (components are linked slice by slice).

Speed (the same masks as the plain scipy calls, tested against them): the
median is never computed, since only its comparison with the band's and the
calcification's thresholds is used, and the median of ``k x k`` values is at
least ``t`` exactly when at least ``(k*k + 1) / 2`` of them are (a box count
of a boolean plane, with the median filter's mirrored border); the opening,
the calcification halo and the growth, which move pixels by at most their
radius in-plane, run on the bounding box of their input widened by that
radius; the rim's distance transform runs on each plane's bounding box.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe import __version__
from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.errors import UsageError
from ichpipe.pipeline.config.anatomy_config import AnatomyConfig
from ichpipe.pipeline.config.threshold_config import ThresholdConfig
from ichpipe.pipeline.segment.components import (
    bounding_box,
    components_at_least_3d,
    disk_2d,
    edge_distance_mm,
    mask_volume_ml,
)
from ichpipe.pipeline.segment.intracranial import IntracranialResult, find_intracranial_in
from ichpipe.pipeline.segment.segmenter import SegmentationResult
from ichpipe.pipeline.segment.slice_context import ThinSlabs, slab_means, volume_slabs

__all__ = ["BASELINE_KIND", "BASELINE_LIMITS", "SLAB_SLICES", "ThresholdResult", "ThresholdSegmenter",
           "median_at_least", "median_at_most", "segment_blood"]

#: Slices processed together by the in-plane steps (bounds temporary memory).
SLAB_SLICES = 16

#: What the report's ``segmenter.kind`` says of this method.
BASELINE_KIND = "classical HU-threshold baseline (not a trained model)"

#: Its known limits, in one sentence (report, error messages, README).
BASELINE_LIMITS = (
    "it misses blood below 50 HU (layered or diluted intraventricular blood, anaemia, subacute blood) and thin"
    " collections within 5 mm of the inner table, and drops components under 0.1 mL"
)

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class ThresholdResult:
    """The hematoma mask and the volume left after each step (mL, for diagnostics)."""

    mask: BoolArray
    volume_ml: float
    stages_ml: dict[str, float] = field(default_factory=dict)


def _on_box(mask: BoolArray, margin: int,
            operation: Callable[[BoolArray, tuple[slice, ...]], BoolArray]) -> BoolArray:
    """``operation(mask[box], box)`` written into ``box``, the bounding box of ``mask`` widened in-plane by ``margin``.

    False outside the box.

    For in-plane operations that move pixels by less than ``margin``: the same
    result as running them on the whole array.
    """
    out = np.zeros(mask.shape, dtype=bool)
    box = bounding_box(mask, margin=margin)
    if box is not None:
        out[box] = operation(mask[box], box)
    return out


def median_at_least(values: npt.NDArray[np.floating], threshold: float, size: int) -> BoolArray:
    """Whether the in-plane ``size x size`` median of each voxel is at least ``threshold``.

    The same as ``scipy.ndimage.median_filter(values, size=(1, size, size)) >= threshold``
    (``size`` odd, the filter's default mirrored border), without sorting: the
    median of ``size * size`` values is at least ``threshold`` exactly when at
    least half of them (rounded up) are.

    Examples
    --------
    >>> plane = np.array([[[0.0, 100.0, 100.0], [0.0, 100.0, 0.0], [0.0, 0.0, 0.0]]])
    >>> median_at_least(plane, 50.0, 3).astype(int)
    array([[[0, 1, 1],
            [0, 0, 0],
            [0, 0, 0]]])
    """
    return _median_count(np.asarray(values >= threshold), size)


def median_at_most(values: npt.NDArray[np.floating], threshold: float, size: int) -> BoolArray:
    """Whether the in-plane ``size x size`` median of each voxel is at most ``threshold`` (:func:`median_at_least`)."""
    return _median_count(np.asarray(values <= threshold), size)


def _median_count(condition: BoolArray, size: int) -> BoolArray:
    if size < 1 or size % 2 == 0:
        raise ValueError(f"Argument 'size' must be a positive odd integer; got {size}.")
    if size == 1:
        return condition
    r = size // 2
    rows, cols = condition.shape[-2:]
    dtype = np.uint8 if size * size < 256 else np.uint32
    padded: npt.NDArray[np.unsignedinteger] = np.pad(condition, ((0, 0), (r, r), (r, r)),
                                                     mode="symmetric").astype(dtype)
    across = padded[:, :, 0:cols].copy()
    for j in range(1, size):
        across += padded[:, :, j : j + cols]
    count = across[:, 0:rows].copy()
    for i in range(1, size):
        count += across[:, i : i + rows]
    return np.asarray(count >= (size * size + 1) // 2)


def segment_blood(
    hu: npt.NDArray[np.floating],
    intracranial: BoolArray,
    pixel_spacing_mm: tuple[float, float],
    slice_thickness_mm: float | npt.ArrayLike,
    *,
    config: ThresholdConfig | None = None,
    slabs: ThinSlabs | None = None,
) -> ThresholdResult:
    """Segment acute blood by HU (the classical baseline).

    Parameters
    ----------
    hu:
        HU volume (slices, rows, columns).
    intracranial:
        bool mask of the intracranial space, same shape (e.g. from ``find_intracranial``).
    pixel_spacing_mm:
        (row spacing, column spacing) in mm.
    slice_thickness_mm:
        Each slice's thickness along the normal, or one value for all.
    config:
        Thresholds; see :class:`ThresholdConfig`.
    slabs:
        Read each slice as this weighted mean of its neighbours (thin slices,
        :func:`~ichpipe.pipeline.segment.slice_context.thin_slabs`); ``None``: as it is.

    Raises
    ------
    UsageError
        If the shapes differ or the spacings are not positive (a ``ValueError``).
    """
    cfg = config or ThresholdConfig()
    if hu.ndim != 3 or intracranial.shape != hu.shape:
        raise UsageError("Arguments 'hu' and 'intracranial' must be 3D arrays of the same shape.")
    spacing = (float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1]))
    if min(spacing) <= 0:
        raise UsageError("Argument 'pixel_spacing_mm' must hold two positive spacings.")
    thickness = np.broadcast_to(np.asarray(slice_thickness_mm, dtype=np.float64), (hu.shape[0],))
    if np.any(thickness <= 0):
        raise UsageError("Argument 'slice_thickness_mm' must be positive for every slice.")
    out = np.zeros(hu.shape, dtype=bool)
    box = bounding_box(intracranial, margin=4)
    if box is None:
        return ThresholdResult(out, 0.0, {})
    ic = intracranial[box]
    voxel_ml = spacing[0] * spacing[1] * thickness[box[0]] / 1000.0
    lo, hi = cfg.blood_hu
    size = max(1, round(cfg.median_size_mm / min(spacing)))
    size += 1 - size % 2
    calc_disk = disk_2d(cfg.calcification_margin_mm, spacing)[None]
    open_disk = disk_2d(cfg.opening_mm, spacing)[None]
    band = np.zeros(ic.shape, dtype=bool)
    halo = np.zeros(ic.shape, dtype=bool)
    rim = np.zeros(ic.shape, dtype=bool)
    calc = np.zeros(ic.shape, dtype=bool)
    n = ic.shape[0]
    for start in range(0, n, SLAB_SLICES):
        slab = slice(start, min(n, start + SLAB_SLICES))
        if slabs is None:
            part = np.asarray(hu[box][slab], dtype=np.float32)
        else:
            picked = list(range(box[0].start + slab.start, box[0].start + slab.stop))
            part = slab_means(hu[:, box[1], box[2]], slabs, picked)
        inside = ic[slab]
        # the median-filtered HU compared with the thresholds (the median itself is never needed)
        band[slab] = inside & median_at_least(part, lo, size) & median_at_most(part, hi, size)
        # calcifications lie inside the mask (its small holes are filled); bone outside it is the rim's business
        calc[slab] = inside & median_at_least(part, cfg.calcification_hu, size)
        for k, plane in enumerate(inside):
            found = edge_distance_mm(plane, spacing, border_is_edge=False)
            if found is not None:
                near, distance = found
                rim[start + k][near] = plane[near] & (distance < cfg.rim_mm)
        del part
    # the halo of a calcification, in-plane and on the slices within the margin along the normal
    if calc.any():
        offsets = np.cumsum(thickness[box[0]]) - 0.5 * thickness[box[0]]
        flat = _on_box(calc, max(calc_disk.shape) // 2 + 1,
                       lambda crop, _: ndimage.binary_dilation(crop, structure=calc_disk))
        for z in np.flatnonzero(calc.any(axis=(1, 2))):
            near = np.abs(offsets - offsets[z]) <= cfg.calcification_margin_mm
            halo[near] |= flat[z]
    del calc
    # along the normal: a pixel whose neighbour slice is outside the mask is on the vertex or skull-base surface
    rim[1:] |= ic[1:] & ~ic[:-1]
    rim[:-1] |= ic[:-1] & ~ic[1:]
    rim[0] |= ic[0]
    rim[-1] |= ic[-1]
    stages = {"band": mask_volume_ml(band, voxel_ml)}
    band &= ~halo
    stages["minus_calcification"] = mask_volume_ml(band, voxel_ml)
    core = band & ~rim
    stages["minus_rim"] = mask_volume_ml(core, voxel_ml)
    if cfg.opening_mm > 0 and core.any():
        core = _on_box(core, max(open_disk.shape) // 2 + 1,
                       lambda crop, _: ndimage.binary_opening(crop, structure=open_disk))
    stages["opened"] = mask_volume_ml(core, voxel_ml)
    core = components_at_least_3d(core, voxel_ml, cfg.min_core_ml)
    stages["cores"] = mask_volume_ml(core, voxel_ml)
    steps = round(cfg.grow_mm / min(spacing))
    grown = core
    if steps > 0 and core.any():
        grown = _on_box(core, steps + 1, lambda crop, b: ndimage.binary_dilation(
            crop, structure=np.ones((1, 3, 3), dtype=bool), iterations=steps, mask=band[b]))
    stages["grown"] = mask_volume_ml(grown, voxel_ml)
    grown = components_at_least_3d(grown, voxel_ml, cfg.min_component_ml)
    out[box] = grown
    volume = mask_volume_ml(grown, voxel_ml)
    stages["final"] = volume
    return ThresholdResult(out, volume, {k: round(v, 3) for k, v in stages.items()})


class ThresholdSegmenter:
    """The classical HU-threshold baseline as a segmenter (``--segmenter threshold``).

    Parameters
    ----------
    config:
        Thresholds; see :class:`~ichpipe.pipeline.config.threshold_config.ThresholdConfig`.
    anatomy:
        Settings of the intracranial finder.

    Examples
    --------
    A small synthetic study (64 x 64, 12 slices):

    >>> import tempfile
    >>> from pathlib import Path
    >>> from ichpipe.dicom_io import assemble_series, scan_study
    >>> from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study
    >>> tmp = tempfile.TemporaryDirectory()
    >>> _ = write_phantom_study(Path(tmp.name), PhantomSpec(seed=1, rows=64, columns=64, n_slices=12))
    >>> with scan_study(Path(tmp.name)) as scan:
    ...     volume = assemble_series(scan.require_selected().series)
    >>> mask = ThresholdSegmenter().segment(volume)
    >>> mask.shape == volume.hu.shape, mask.dtype
    (True, dtype('bool'))
    >>> tmp.cleanup()
    """

    name = "threshold"

    def __init__(self, config: ThresholdConfig | None = None, *, anatomy: AnatomyConfig | None = None) -> None:
        self.config = config or ThresholdConfig()
        self.anatomy = anatomy or AnatomyConfig()

    def describe(self) -> dict[str, Any]:
        """Identity for the report: name, checkpoint (none), version, and that it is a baseline."""
        lo, hi = self.config.blood_hu
        return {
            "name": self.name,
            "checkpoint_sha256": None,
            "version": __version__,
            "kind": BASELINE_KIND,
            "baseline": True,
            "limits": BASELINE_LIMITS,
            "parameters": {"blood_hu": [lo, hi], "rim_mm": self.config.rim_mm,
                           "min_component_ml": self.config.min_component_ml,
                           "thin_slab_mm": self.config.thin_slab_mm},
        }

    def segment_in(self, volume: CTVolume, intracranial: IntracranialResult | None = None) -> SegmentationResult:
        """Segment ``volume`` inside ``intracranial`` (found here when ``None``)."""
        geo = volume.geometry
        space = intracranial if intracranial is not None else find_intracranial_in(volume.hu, geo, self.anatomy)
        slabs = volume_slabs(volume, slab_mm=self.config.thin_slab_mm)
        result = segment_blood(volume.hu, space.mask, geo.pixel_spacing_mm, geo.slice_thickness_mm,
                               config=self.config, slabs=slabs)
        details: dict[str, Any] = {"stages_ml": result.stages_ml}
        if slabs is not None:
            details["thin_slab"] = {"slab_mm": self.config.thin_slab_mm, "max_slices_averaged": slabs.max_slices}
        return SegmentationResult(mask=result.mask, details=details)

    def segment(self, volume: CTVolume) -> npt.NDArray[np.bool_]:
        """Return a bool mask of the hematoma, shape ``volume.hu.shape``."""
        return self.segment_in(volume).mask
