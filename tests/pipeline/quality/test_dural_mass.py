"""Flag ``dural_based_mass``: a dense dome on the inner table (a meningioma's shape) is measured as blood."""

from __future__ import annotations

import numpy as np
import pytest
from anatomy_support import PhantomCase

from ichpipe.pipeline.config.quality_config import DuralMassConfig, QualityConfig
from ichpipe.pipeline.quality.assess import assess_quality
from ichpipe.pipeline.quality.dural_mass import TableDome, check_dural_based_mass, domes_on_table
from ichpipe.pipeline.segment.intracranial import find_intracranial
from ichpipe.pipeline.segment.segmenter import SegmentationResult

CODE = "dural_based_mass"


def _on_table(case: PhantomCase) -> tuple[int, int, int]:
    """A voxel of the middle slice on the inner table, lateral to the head's centre."""
    z = case.hu.shape[0] // 2
    inside = np.argwhere((case.signed_distance[z] > -1.0) & (case.signed_distance[z] < 0.0))
    centre = inside.mean(axis=0)
    row, col = max(inside.tolist(), key=lambda p: p[1] - centre[1] - abs(p[0] - centre[0]))
    return z, int(row), int(col)


def _ball(case: PhantomCase, radius_mm: float, inward_mm: float) -> np.ndarray:
    """The part inside the table of a ball of ``radius_mm`` centred ``inward_mm`` in from the table."""
    z, row, col = _on_table(case)
    frame = case.head_frame
    point = frame[z, row, col]
    inward = -point / np.linalg.norm(point)
    distance = np.linalg.norm(frame - (point + inward * inward_mm), axis=-1)
    return (distance <= radius_mm) & (case.signed_distance < 0)


def _codes(case: PhantomCase, mask: np.ndarray, config: QualityConfig | None = None) -> tuple[list[str], dict]:
    space = find_intracranial(case.hu, case.spacing, case.thickness)
    report = assess_quality(case.volume, space, SegmentationResult(mask=mask), config=config)
    return report.codes, report.measurements


def test_a_dome_on_the_table_is_flagged(medium_normal: PhantomCase) -> None:
    """A hemisphere on the table (centred on it), as a convexity meningioma sits on the dura."""
    codes, measured = _codes(medium_normal, _ball(medium_normal, 15.0, 0.0))
    assert CODE in codes
    (dome,) = measured["table_domes"]
    assert dome["overhang"] <= 1.5 and 0.8 <= dome["dome"] <= 1.3 and dome["base_mm2"] >= 150.0


def test_a_ball_in_the_brain_against_the_table_and_a_crescent_are_not(medium_normal: PhantomCase) -> None:
    """A bleed centred in the brain that reaches the table is deeper than its base is wide (more than a
    hemisphere); a subdural is thin over a long base."""
    inside = _ball(medium_normal, 15.0, 9.0)
    codes, measured = _codes(medium_normal, inside)
    assert CODE not in codes and measured["table_domes"][0]["dome"] > 1.3
    crescent = _ball(medium_normal, 40.0, 0.0) & (medium_normal.signed_distance > -5.0)
    codes, measured = _codes(medium_normal, crescent)
    assert CODE not in codes and measured["table_domes"][0]["dome"] < 0.8


def test_off_and_validation(medium_normal: PhantomCase) -> None:
    dome = _ball(medium_normal, 15.0, 0.0)
    codes, measured = _codes(medium_normal, dome, QualityConfig(dural_mass=DuralMassConfig(min_ml=None)))
    assert CODE not in codes and "table_domes" not in measured
    with pytest.raises(ValueError, match="dome_range"):
        DuralMassConfig(dome_range=(1.3, 0.8))
    with pytest.raises(ValueError, match="band_mm"):
        domes_on_table(dome, dome, (1.0, 1.0), 5.0, 0.005, band_mm=0.0)


def test_the_largest_dome_is_named() -> None:
    small = TableDome(2.0, 300.0, 12.0, 1.0, 1.2, (4, 5))
    large = TableDome(9.0, 900.0, 16.0, 0.9, 0.95, (7, 8, 9))
    (flag,) = check_dural_based_mass([small, large])
    assert flag.value == 9.0 and "slices 8-10" in flag.message
    assert not check_dural_based_mass([TableDome(9.0, 120.0, 16.0, 0.9, 0.95, (7,))])  # a narrow base
