"""Flag ``metal_artifact``: metal in or beside the intracranial space, told from bone by density."""

from __future__ import annotations

import numpy as np
import pytest
from anatomy_support import PhantomCase, with_hu

from ichpipe.dicom_io import assemble_series, scan_study
from ichpipe.pipeline.config.quality_config import MetalConfig, QualityConfig
from ichpipe.pipeline.quality.assess import assess_quality
from ichpipe.pipeline.quality.metal import MetalFinding, check_metal, metal_in_head
from ichpipe.pipeline.segment.intracranial import find_intracranial
from ichpipe.pipeline.segment.segmenter import SegmentationResult

CODE = "metal_artifact"


def _assessed(case: PhantomCase, hu: np.ndarray, *, config: QualityConfig | None = None) -> tuple[list[str], dict]:
    volume = with_hu(case, hu)
    space = find_intracranial(volume.hu, case.spacing, case.thickness)
    report = assess_quality(volume, space, SegmentationResult(mask=np.zeros(hu.shape, dtype=bool)), config=config)
    return report.codes, report.measurements


def _with(case: PhantomCase, where: np.ndarray, value: float) -> np.ndarray:
    hu = case.hu.copy()
    hu[where] = value
    return hu


def _clip(case: PhantomCase) -> np.ndarray:
    """A 4 x 2 mm block at the intracranial centre of the middle slice."""
    z = case.hu.shape[0] // 2
    ys, xs = np.nonzero(case.intracranial[z])
    cy, cx = int(ys.mean()), int(xs.mean())
    hy, hx = round(1.0 / case.spacing[0]), round(2.0 / case.spacing[1])
    where = np.zeros(case.hu.shape, dtype=bool)
    where[z, cy - hy : cy + hy + 1, cx - hx : cx + hx + 1] = True
    return where


def test_quiet_on_a_normal_head(medium_normal: PhantomCase) -> None:
    codes, measured = _assessed(medium_normal, medium_normal.hu)
    assert CODE not in codes
    assert measured["metal_in_head"] == {"volume_ml": 0.0, "slices": [], "max_hu": None}


def test_a_clip_in_the_brain_is_flagged_with_its_volume_and_slice(medium_normal: PhantomCase) -> None:
    where = _clip(medium_normal)
    codes, measured = _assessed(medium_normal, _with(medium_normal, where, 3071.0))
    assert CODE in codes
    z = int(np.flatnonzero(where.any(axis=(1, 2)))[0])
    expected = float(where.sum()) * float(medium_normal.voxel_ml[z])
    assert measured["metal_in_head"]["slices"] == [z]
    assert measured["metal_in_head"]["volume_ml"] == pytest.approx(expected, rel=1e-3)
    assert measured["metal_in_head"]["max_hu"] == 3071.0


def test_dense_bone_is_not_metal(medium_normal: PhantomCase) -> None:
    """Skull at 2,500 HU (denser than the real GE head's petrous bone, 2,121) and a clip below the bar."""
    skull = (medium_normal.signed_distance > 0) & (medium_normal.signed_distance < medium_normal.skull_mm)
    hu = _with(medium_normal, skull, 2500.0)
    hu[_clip(medium_normal)] = 2900.0
    codes, measured = _assessed(medium_normal, hu)
    assert CODE not in codes and measured["metal_in_head"]["volume_ml"] == 0.0


def test_metal_on_the_outer_table_is_not_counted_but_in_the_inner_table_is(medium_normal: PhantomCase) -> None:
    """A plate on the outer table lies further than ``margin_mm`` from the intracranial space; a drain's
    path through the inner table lies within it."""
    case = medium_normal
    middle = np.zeros(case.hu.shape, dtype=bool)
    middle[case.hu.shape[0] // 2] = True
    side = case.head_frame[..., 0] > 0.8 * float(case.head_frame[..., 0][case.intracranial].max())
    outer = middle & side & (case.signed_distance > case.skull_mm - 1.5) & (case.signed_distance < case.skull_mm)
    assert case.skull_mm - 1.5 > 3.0 + 2 * max(case.spacing)  # the plate is beyond the margin
    codes, measured = _assessed(case, _with(case, outer, 3071.0))
    assert CODE not in codes and measured["metal_in_head"]["volume_ml"] == 0.0
    inner = middle & side & (case.signed_distance > 0.0) & (case.signed_distance < 1.5)
    codes, measured = _assessed(case, _with(case, inner, 3071.0))
    assert CODE in codes and measured["metal_in_head"]["volume_ml"] > 0.005


def test_metal_cut_off_from_the_space_by_its_streaks_or_on_a_lost_slice_is_counted() -> None:
    """A coil's bloom at bone density can cut a channel from the metal to the skull (no hole left to fill),
    and the finder can lose the metal's slice altogether: the neighbours' extent still holds it."""
    hu = np.zeros((3, 60, 60), dtype=np.float32)
    hu[1, 28:32, 28:32] = 3071.0
    space = np.zeros(hu.shape, dtype=bool)
    space[:, 10:50, 10:50] = True
    space[:, 26:34, 26:60] = False  # the metal and a channel from it out of the space
    found = metal_in_head(hu, space, (1.0, 1.0), 0.005, margin_mm=0.0)
    assert found.slices == (1,) and found.volume_ml == pytest.approx(16 * 0.005)
    space[1] = False
    found = metal_in_head(hu, space, (1.0, 1.0), 0.005, margin_mm=0.0)
    assert found.slices == (1,) and found.volume_ml == pytest.approx(16 * 0.005)
    space[0] = space[2] = False
    assert metal_in_head(hu, space, (1.0, 1.0), 0.005).slices == ()


def test_min_ml_sets_the_flag_and_null_turns_the_check_off(medium_normal: PhantomCase) -> None:
    hu = _with(medium_normal, _clip(medium_normal), 3071.0)
    amount = metal_in_head(hu, find_intracranial(hu, medium_normal.spacing, medium_normal.thickness).mask,
                           medium_normal.spacing, medium_normal.voxel_ml).volume_ml
    above = QualityConfig(metal=MetalConfig(min_ml=1.1 * amount))
    codes, _ = _assessed(medium_normal, hu, config=above)
    assert CODE not in codes
    volume = with_hu(medium_normal, hu)
    space = find_intracranial(volume.hu, medium_normal.spacing, medium_normal.thickness)
    report = assess_quality(volume, space, SegmentationResult(mask=np.zeros(hu.shape, dtype=bool)),
                            config=QualityConfig(metal=MetalConfig(min_ml=None)))
    assert CODE not in report.codes and "metal" not in report.checks
    assert "metal_in_head" not in report.measurements


def test_the_message_names_the_amount_density_and_slices() -> None:
    (flag,) = check_metal(MetalFinding(0.0312, (4, 5, 6), 3071.0), min_ml=0.005)
    assert flag.message.startswith("31 mm^3 of metal (up to 3071 HU) in the head on slices 5-7")
    assert flag.value == 0.0312 and flag.threshold == 0.005
    assert check_metal(MetalFinding(0.004, (4,), 3071.0), min_ml=0.005) == []


def test_argument_checks() -> None:
    hu = np.zeros((2, 8, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="'intracranial'"):
        metal_in_head(hu, np.zeros((2, 8, 7), dtype=bool), (1.0, 1.0), 0.001)
    with pytest.raises(ValueError, match="'margin_mm'"):
        metal_in_head(hu, np.zeros(hu.shape, dtype=bool), (1.0, 1.0), 0.001, margin_mm=-1.0)
    with pytest.raises(ValueError, match="'margin_mm'"):
        MetalConfig(margin_mm=-1.0)


@pytest.mark.shared_data
def test_the_real_ge_head_is_quiet_and_a_clip_in_it_is_flagged(shared_data) -> None:
    """The real GE head: its densest bone is 2,121 HU; a 3 x 3 mm clip of 3,071 HU at its centre is found."""
    with scan_study(shared_data / "ct-real" / "ge-hispeed-head-tilt") as scan:
        volume = assemble_series(scan.require_selected().series)
    space = find_intracranial(volume.hu, volume.geometry.pixel_spacing_mm, volume.geometry.slice_thickness_mm)
    geo = volume.geometry
    found = metal_in_head(volume.hu, space.mask, geo.pixel_spacing_mm, geo.voxel_volumes_ml)
    assert found.volume_ml == 0.0 and check_metal(found) == []
    z = int(np.argmax(space.mask.sum(axis=(1, 2))))
    ys, xs = np.nonzero(space.mask[z])
    hu = volume.hu.copy()
    ry, rx = round(1.5 / geo.pixel_spacing_mm[0]), round(1.5 / geo.pixel_spacing_mm[1])
    hu[z, int(ys.mean()) - ry : int(ys.mean()) + ry, int(xs.mean()) - rx : int(xs.mean()) + rx] = 3071.0
    found = metal_in_head(hu, space.mask, geo.pixel_spacing_mm, geo.voxel_volumes_ml)
    assert found.slices == (z,) and [f.code for f in check_metal(found)] == [CODE]


def test_slices_with_metal_are_not_read_for_contrast(medium_normal: PhantomCase) -> None:
    """Metal's streaks lie at enhanced-vessel density: 2 mL at 200 HU around the clip's slice reads as a
    contrast study without the clip, and as metal (only) with it."""
    case = medium_normal
    clip = _clip(case)
    z = int(np.flatnonzero(clip.any(axis=(1, 2)))[0])
    ys, xs = np.nonzero(case.intracranial[z])
    cy, cx = int(ys.mean()), int(xs.mean())
    half = round(8.0 / case.spacing[0])
    streaks = np.zeros(case.hu.shape, dtype=bool)
    streaks[z - 1 : z + 2, cy + 10 : cy + 10 + 2 * half, cx - half : cx + half] = True
    codes, _ = _assessed(case, _with(case, streaks, 200.0))
    assert "out_of_domain_contrast" in codes and CODE not in codes
    hu = _with(case, streaks, 200.0)
    hu[clip] = 3071.0
    codes, _ = _assessed(case, hu)
    assert CODE in codes and "out_of_domain_contrast" not in codes
