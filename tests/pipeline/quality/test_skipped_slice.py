"""Flag ``blood_skips_slice``: blood on the slices either side of a slice, none on it where they overlap."""

from __future__ import annotations

import numpy as np
import pytest
from anatomy_support import PhantomCase

from ichpipe.pipeline.config.quality_artifact_config import SkippedSliceConfig
from ichpipe.pipeline.config.quality_config import QualityConfig
from ichpipe.pipeline.quality.assess import assess_quality
from ichpipe.pipeline.quality.skipped_slice import SkippedSlice, check_skipped_slice, skipped_slice
from ichpipe.pipeline.segment.intracranial import find_intracranial
from ichpipe.pipeline.segment.segmenter import SegmentationResult

CODE = "blood_skips_slice"


def _ellipsoid(shape: tuple[int, int, int] = (7, 60, 60), radii: tuple[float, float, float] = (3.2, 18, 14)
               ) -> np.ndarray:
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    centre = [(s - 1) / 2 for s in shape]
    return sum(((axis - c) / r) ** 2 for axis, c, r in zip((z, y, x), centre, radii, strict=True)) <= 1


def test_a_slice_read_empty_inside_a_bleed_is_the_hole() -> None:
    blood = _ellipsoid()
    whole = skipped_slice(blood, (0.5, 0.5))
    assert whole.hole_mm2 == 0.0 and check_skipped_slice(whole) == []
    blood[3] = False
    found = skipped_slice(blood, (0.5, 0.5))
    overlap = (blood[2] & blood[4]).sum() * 0.25
    assert found.slices == (3,)
    assert found.overlap_mm2 == pytest.approx(overlap) and found.hole_mm2 == pytest.approx(overlap)
    assert [f.code for f in check_skipped_slice(found)] == [CODE]


def test_a_run_of_two_empty_slices_and_max_run() -> None:
    blood = _ellipsoid()
    blood[3:5] = False
    assert skipped_slice(blood, (0.5, 0.5)).hole_mm2 == 0.0  # the default looks at one slice between
    assert skipped_slice(blood, (0.5, 0.5), max_run=2).slices == (3, 4)


def test_a_narrower_part_of_the_bleed_between_touches_the_overlap() -> None:
    """An hourglass or a notch: the slice between holds a smaller part of the same bleed, no hole."""
    blood = _ellipsoid()
    blood[3] = False
    blood[3, 27:33, 25:31] = True  # 6 x 6 pixels in the middle of a ~28 x 36 overlap
    assert skipped_slice(blood, (0.5, 0.5)).hole_mm2 == 0.0
    blood[3] = False
    blood[3, 2:6, 2:6] = True  # blood elsewhere on the slice, more than slack_mm away: the hole stays
    found = skipped_slice(blood, (0.5, 0.5))
    assert found.hole_mm2 == found.overlap_mm2 > 80.0
    rows, cols = np.nonzero(blood[2] & blood[4])
    top, col = int(rows.min()), int(cols[rows == rows.min()][0])
    blood[3, top - 3: top - 1, col - 2: col + 2] = True  # 1 mm above the overlap's top: within slack_mm, it touches
    assert skipped_slice(blood, (0.5, 0.5)).hole_mm2 == 0.0
    assert skipped_slice(blood, (0.5, 0.5), slack_mm=0.0).hole_mm2 == found.hole_mm2


def test_bleeds_that_do_not_overlap_in_plane_and_a_small_hole_are_quiet() -> None:
    blood = np.zeros((3, 60, 60), dtype=bool)
    blood[0, 5:20, 5:20] = True
    blood[2, 35:55, 35:55] = True
    assert skipped_slice(blood, (0.5, 0.5)) == SkippedSlice((), 0.0, 0.0)
    small = _ellipsoid(radii=(3.2, 8, 8))
    small[3] = False
    found = skipped_slice(small, (0.5, 0.5))
    assert 0.0 < found.hole_mm2 < 80.0 and check_skipped_slice(found) == []
    assert [f.code for f in check_skipped_slice(found, min_area_mm2=found.hole_mm2)] == [CODE]


def test_the_flag_through_assess_quality_and_null(medium_case: PhantomCase) -> None:
    blood = medium_case.labels > 0
    slices = np.flatnonzero(blood.any(axis=(1, 2)))
    assert len(slices) >= 3
    middle = int(slices[len(slices) // 2])
    holed = blood.copy()
    holed[middle] = False
    space = find_intracranial(medium_case.hu, medium_case.spacing, medium_case.thickness)

    def assessed(mask: np.ndarray, config: QualityConfig | None = None):
        return assess_quality(medium_case.volume, space, SegmentationResult(mask=mask), config=config)

    report = assessed(holed)
    assert CODE in report.codes
    assert report.measurements["skipped_slice"]["slices"] == [middle]
    flag = next(f for f in report.flags if f.code == CODE)
    assert f"slice {middle + 1}" in flag.message and "too low" in flag.message
    assert CODE not in assessed(blood).codes
    off = QualityConfig(skipped_slice=SkippedSliceConfig(min_area_mm2=None))
    report = assessed(holed, off)
    assert CODE not in report.codes and "skipped_slice" not in report.measurements


def test_argument_checks() -> None:
    with pytest.raises(ValueError, match="'blood' must be 3D"):
        skipped_slice(np.zeros((4, 4), dtype=bool), (1.0, 1.0))
    with pytest.raises(ValueError, match="'max_run' must be at least 1"):
        skipped_slice(np.zeros((3, 4, 4), dtype=bool), (1.0, 1.0), max_run=0)
    with pytest.raises(ValueError, match="'slack_mm' must not be negative"):
        skipped_slice(np.zeros((3, 4, 4), dtype=bool), (1.0, 1.0), slack_mm=-1.0)
    with pytest.raises(ValueError, match="'max_run' must be at least 1"):
        SkippedSliceConfig(max_run=0)
    with pytest.raises(ValueError, match="'slack_mm' must be a number >= 0"):
        SkippedSliceConfig(slack_mm=-1.0)
