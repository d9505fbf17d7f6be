"""The slab-wise threshold segmenter gives exactly the whole-volume result (memory fix, same answer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from ichpipe.dicom_io.assemble import CTVolume, assemble_series
from ichpipe.dicom_io.study import scan_study
from ichpipe.pipeline.segment import threshold
from ichpipe.pipeline.segment.intracranial import head_bounding_box, intracranial_mask
from ichpipe.pipeline.segment.threshold import ThresholdSegmenter, remove_small_components
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study


def _whole_volume(seg: ThresholdSegmenter, volume: CTVolume) -> np.ndarray:
    """The former implementation: median filter and a 3D distance transform over the whole box at once."""
    cfg, geo = seg.config, volume.geometry
    brain = intracranial_mask(volume.hu, geo, seg.anatomy)
    mask = np.zeros(brain.shape, dtype=bool)
    box = head_bounding_box(brain, margin=cfg.median_size)
    assert box is not None
    hu = ndimage.median_filter(volume.hu[box], size=(1, cfg.median_size, cfg.median_size))
    blood = brain[box] & (hu >= cfg.blood_hu[0]) & (hu <= cfg.blood_hu[1])
    bone = volume.hu[box] >= seg.anatomy.bone_min_hu
    near = ndimage.distance_transform_edt(~bone, sampling=(1e6, *geo.pixel_spacing_mm)) <= cfg.bone_margin_mm
    core = remove_small_components(blood & ~near, geo.voxel_volumes_ml[box[0]], cfg.min_component_ml)
    radius = max(1, round(cfg.bone_margin_mm / min(geo.pixel_spacing_mm)))
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    reach = ndimage.binary_dilation(core, structure=(x * x + y * y <= radius * radius)[None])
    mask[box] = core | (blood & near & reach)
    return mask


@pytest.mark.parametrize("slab", [1, 5, 16, 1000])
def test_slabs_match_the_whole_volume(slab: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = PhantomSpec(seed=7, rows=96, columns=96, n_slices=24, volume_ml=20.0, touch_skull=True,
                       shape="irregular", n_hematomas=2)
    write_phantom_study(tmp_path / "study", spec)
    with scan_study(tmp_path / "study") as scan:
        volume = assemble_series(scan.require_selected().series)
    monkeypatch.setattr(threshold, "SLAB_SLICES", slab)
    seg = ThresholdSegmenter()
    got = seg.segment(volume)
    want = _whole_volume(seg, volume)
    assert want.sum() > 100  # a real hematoma, rim against the skull included
    assert np.array_equal(got, want)


@pytest.mark.parametrize("ndim", [2, 3])
def test_largest_component_counts_slice_by_slice_like_one_bincount(ndim: int) -> None:
    from ichpipe.pipeline.segment.intracranial import largest_component

    rng = np.random.default_rng(ndim)
    mask = rng.random((9, 40, 40)[-ndim:]) > 0.55
    labels, _ = ndimage.label(mask, structure=np.ones((3,) * ndim, dtype=bool))
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    assert np.array_equal(largest_component(mask), labels == int(np.argmax(sizes)))


def test_intracranial_mask_slice_by_slice_matches_the_volume_formula(tmp_path: Path) -> None:
    from ichpipe.pipeline.config.anatomy_config import AnatomyConfig
    from ichpipe.pipeline.segment.intracranial import _closing_2d, intracranial_mask, largest_component

    write_phantom_study(tmp_path / "study", PhantomSpec(seed=3, rows=96, columns=96, n_slices=20, volume_ml=15.0))
    with scan_study(tmp_path / "study") as scan:
        volume = assemble_series(scan.require_selected().series)
    cfg, hu = AnatomyConfig(), volume.hu
    closed = _closing_2d(hu >= cfg.bone_min_hu, round(cfg.bone_closing_mm / min(volume.geometry.pixel_spacing_mm)))
    filled = np.stack([ndimage.binary_fill_holes(s) for s in closed])
    want = largest_component(filled & ~closed & (hu >= cfg.brain_hu[0]) & (hu <= cfg.brain_hu[1]))
    got = intracranial_mask(hu, volume.geometry, cfg)
    assert want.sum() > 1000 and np.array_equal(got, want)
