"""The classical segmenter: acute blood by HU inside the brain, away from bone.

It is the seed's "traditional method" baseline and needs no checkpoint:

1. the intracranial space from the skull (:func:`ichpipe.pipeline.segment.intracranial.intracranial_mask`);
2. a small in-plane median filter against noise;
3. voxels inside the acute-blood band (default 50-90 HU) that lie farther than
   ``bone_margin_mm`` from bone (partial-volume skull edges look like blood);
4. 3D connected components, dropping those under ``min_component_ml``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe import __version__
from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.pipeline.config.anatomy_config import AnatomyConfig
from ichpipe.pipeline.config.threshold_config import ThresholdConfig
from ichpipe.pipeline.segment.intracranial import head_bounding_box, intracranial_mask

__all__ = ["SLAB_SLICES", "ThresholdSegmenter", "remove_small_components"]

#: Slices processed together by the in-plane steps (bounds the temporary memory).
SLAB_SLICES = 16


def remove_small_components(
    mask: npt.NDArray[np.bool_], voxel_volumes_ml: npt.NDArray[np.float64], min_ml: float
) -> npt.NDArray[np.bool_]:
    """Drop 3D (26-connected) components whose volume is under ``min_ml``.

    ``voxel_volumes_ml`` holds one voxel's volume per slice (uneven stacks).
    """
    if min_ml <= 0 or not mask.any():
        return mask
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    weights = np.broadcast_to(voxel_volumes_ml[:, None, None], mask.shape)
    volumes = ndimage.sum_labels(weights, labels, index=np.arange(1, n + 1))
    keep = np.zeros(n + 1, dtype=bool)
    keep[1:] = volumes >= min_ml
    return np.asarray(keep[labels])


class ThresholdSegmenter:
    """Hematoma = acute-blood HU inside the brain, away from bone, in components over a minimum size.

    Parameters
    ----------
    config:
        Thresholds; see :class:`ThresholdConfig`.
    anatomy:
        Thresholds of the head and intracranial masks.

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
        """Identity for the report: name, checkpoint (none) and version."""
        return {"name": self.name, "checkpoint_sha256": None, "version": __version__}

    def segment(self, volume: CTVolume) -> npt.NDArray[np.bool_]:
        """Return a bool mask of the hematoma, shape ``volume.hu.shape``.

        The in-plane steps (median filter, blood band, distance to bone) run
        on slabs of :data:`SLAB_SLICES` slices, so that no float copy of the
        volume and no 3D distance transform (a float64 volume plus an int32
        feature transform per axis) is ever held: peak memory stays near the
        HU volume plus a few boolean volumes.
        """
        cfg = self.config
        geo = volume.geometry
        brain = intracranial_mask(volume.hu, geo, self.anatomy)
        mask = np.zeros(brain.shape, dtype=bool)
        box = head_bounding_box(brain, margin=cfg.median_size)
        if box is None:
            return mask
        # everything below works inside the brain's bounding box only
        hu = volume.hu[box]
        brain = brain[box]
        lo, hi = cfg.blood_hu
        far_blood = np.zeros(brain.shape, dtype=bool)  # blood band away from bone (all of it without a margin)
        near_blood = np.zeros(brain.shape, dtype=bool)  # blood band within the margin of bone
        for start in range(0, hu.shape[0], SLAB_SLICES):
            slab = slice(start, start + SLAB_SLICES)
            part = hu[slab]
            smooth = part
            if cfg.median_size > 1:
                smooth = ndimage.median_filter(part, size=(1, cfg.median_size, cfg.median_size))
            blood = brain[slab] & (smooth >= lo) & (smooth <= hi)
            del smooth
            if cfg.bone_margin_mm <= 0:
                far_blood[slab] = blood
                continue
            # in-plane distance to bone, slice by slice
            near_bone = np.stack([_near(plane >= self.anatomy.bone_min_hu, geo.pixel_spacing_mm, cfg.bone_margin_mm)
                                  for plane in part])
            far_blood[slab] = blood & ~near_bone
            near_blood[slab] = blood & near_bone
        del brain
        volumes = geo.voxel_volumes_ml[box[0]]
        core = remove_small_components(far_blood, volumes, cfg.min_component_ml)
        if cfg.bone_margin_mm <= 0:
            mask[box] = core
            return mask
        if not core.any():
            return mask
        # A hematoma against the inner table keeps its rim: blood-band voxels near
        # bone count when they lie within the margin of a core component (the thin
        # partial-volume shell along the rest of the skull stays out).
        radius = max(1, round(cfg.bone_margin_mm / min(geo.pixel_spacing_mm)))
        y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
        reach = ndimage.binary_dilation(core, structure=(x * x + y * y <= radius * radius)[None])
        mask[box] = core | (near_blood & reach)
        return mask


def _near(bone: npt.NDArray[np.bool_], spacing: tuple[float, float], margin_mm: float) -> npt.NDArray[np.bool_]:
    """Pixels of one slice within ``margin_mm`` (in-plane) of bone; none when the slice has no bone."""
    if not bone.any():
        return np.zeros(bone.shape, dtype=bool)
    return np.asarray(ndimage.distance_transform_edt(~bone, sampling=spacing) <= margin_mm)
