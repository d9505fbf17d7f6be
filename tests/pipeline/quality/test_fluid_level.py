"""Flag ``fluid_level``: a horizontal level at the top of the blood, the serum above it not counted."""

from __future__ import annotations

import numpy as np
import pytest
from anatomy_support import PhantomCase, with_hu

from ichpipe.pipeline.config.quality_config import FluidLevelConfig, QualityConfig
from ichpipe.pipeline.quality.assess import assess_quality
from ichpipe.pipeline.quality.fluid_level import FluidLevel, check_fluid_level, find_fluid_level, gravity_direction
from ichpipe.pipeline.segment.intracranial import find_intracranial
from ichpipe.pipeline.segment.segmenter import SegmentationResult

CODE = "fluid_level"


def _halves(case: PhantomCase, *, serum_hu: float = 30.0, dependent: str = "posterior") -> tuple[np.ndarray, ...]:
    """The phantom's bleed split by a horizontal level at its middle row: HU with the upper part at
    ``serum_hu``, and the dense (dependent) part, what a segmenter finds."""
    blood = case.labels > 0
    rows = np.nonzero(blood)[1]
    level = int(np.median(rows))
    row_index = np.arange(blood.shape[1])[None, :, None]
    dense = blood & ((row_index >= level) if dependent == "posterior" else (row_index < level))
    serum = blood & ~dense
    hu = case.hu.copy()
    hu[serum] = serum_hu + (hu[serum] - np.median(hu[blood]))  # the blood's noise, at serum's level
    return hu, dense, serum


def _assessed(case: PhantomCase, hu: np.ndarray, mask: np.ndarray,
              config: QualityConfig | None = None) -> tuple[list[str], dict]:
    volume = with_hu(case, hu)
    space = find_intracranial(volume.hu, case.spacing, case.thickness)
    report = assess_quality(volume, space, SegmentationResult(mask=mask), config=config)
    return report.codes, report.measurements


def test_a_level_with_serum_above_the_dense_part_found_is_flagged(medium_case: PhantomCase) -> None:
    hu, dense, _ = _halves(medium_case)
    codes, measured = _assessed(medium_case, hu, dense)
    assert CODE in codes
    level = measured["fluid_level"]
    assert level["gravity"] == "supine" and level["area_mm2"] >= 200.0 and len(level["slices"]) >= 2
    assert 20.0 <= level["above_hu"] <= 45.0 and level["below_hu"] - level["above_hu"] >= 20.0


def test_quiet_when_the_whole_bleed_is_found_or_csf_lies_above(medium_case: PhantomCase) -> None:
    """A round top is not a level; blood layering under CSF (a ventricle) is not serum above a clot."""
    codes, measured = _assessed(medium_case, medium_case.hu, medium_case.labels > 0)
    assert CODE not in codes and measured["fluid_level"]["area_mm2"] < 200.0
    hu, dense, _ = _halves(medium_case, serum_hu=8.0)
    codes, _ = _assessed(medium_case, hu, dense)
    assert CODE not in codes


def test_gravity_follows_the_patient_position(medium_case: PhantomCase) -> None:
    """Prone, the serum lies posterior and the level faces the other way; read as supine it is not a top."""
    hu, dense, _ = _halves(medium_case, dependent="anterior")
    geometry = medium_case.volume.geometry
    prone = find_fluid_level(dense, hu, geometry, patient_position="HFP")
    assert prone.gravity == "prone" and check_fluid_level(prone)
    supine = find_fluid_level(dense, hu, geometry, patient_position="HFS")
    assert not check_fluid_level(supine)


def test_decubitus_and_unknown_positions() -> None:
    gravity, name = gravity_direction("HFDR")
    assert name == "decubitus right" and gravity.tolist() == [-1.0, 0.0, 0.0]
    assert gravity_direction("")[1] == "supine (assumed)"
    assert gravity_direction("HFS")[1] == "supine"


def test_a_decubitus_level_runs_along_the_columns(medium_case: PhantomCase) -> None:
    """Lying on the left side (HFDL), gravity points to the patient's left (+x, the image's columns)."""
    blood = medium_case.labels > 0
    cols = np.nonzero(blood)[2]
    level = int(np.median(cols))
    dense = blood & (np.arange(blood.shape[2])[None, None, :] >= level)
    hu = medium_case.hu.copy()
    hu[blood & ~dense] = 30.0
    found = find_fluid_level(dense, hu, medium_case.volume.geometry, patient_position="HFDL")
    assert found.gravity == "decubitus left" and check_fluid_level(found)


def test_min_area_and_null(medium_case: PhantomCase) -> None:
    hu, dense, _ = _halves(medium_case)
    area = find_fluid_level(dense, hu, medium_case.volume.geometry).area_mm2
    codes, _ = _assessed(medium_case, hu, dense, QualityConfig(fluid_level=FluidLevelConfig(min_area_mm2=area + 1)))
    assert CODE not in codes
    volume = with_hu(medium_case, hu)
    space = find_intracranial(volume.hu, medium_case.spacing, medium_case.thickness)
    report = assess_quality(volume, space, SegmentationResult(mask=dense),
                            config=QualityConfig(fluid_level=FluidLevelConfig(min_area_mm2=None)))
    assert CODE not in report.codes and "fluid_level" not in report.checks
    assert "fluid_level" not in report.measurements


def test_message_and_arguments(medium_case: PhantomCase) -> None:
    (flag,) = check_fluid_level(FluidLevel(410.0, (14, 15, 16), 31.0, 74.0, "supine"))
    assert flag.message.startswith("A horizontal fluid level lies at the top of the blood on slices 15-17")
    assert "410 mm^2, 31 HU above it, 74 HU below" in flag.message
    mask = np.zeros(medium_case.hu.shape, dtype=bool)
    with pytest.raises(ValueError, match="'hu'"):
        find_fluid_level(mask, medium_case.hu[:, :10], medium_case.volume.geometry)
    with pytest.raises(ValueError, match="'above_hu'"):
        FluidLevelConfig(above_hu=(45.0, 20.0))


def test_a_large_round_top_is_not_a_level() -> None:
    """A 40 mm-radius clot's top is flat within a pixel for ~18 mm, but a level cuts the clot where its walls
    run down: 4 mm lower the round clot is twice as wide, the cut one no wider."""
    from ichpipe.pipeline.datasets.case import uniform_geometry

    n = 240
    yy, xx = np.mgrid[:n, :n] * 0.5
    disc = np.hypot(yy - 60.0, xx - 60.0) < 40.0
    geometry = uniform_geometry(n_slices=3, rows=n, columns=n, pixel_spacing_mm=0.5, slice_thickness_mm=5.0)
    hu = np.where(disc, 70.0, 30.0)[None].repeat(3, axis=0).astype(np.float32)
    round_top = find_fluid_level(np.stack([disc] * 3), hu, geometry)
    assert round_top.area_mm2 == 0.0
    cut = disc & (yy >= 60.0)
    hu_cut = np.where(cut, 70.0, 30.0)[None].repeat(3, axis=0).astype(np.float32)
    level = find_fluid_level(np.stack([cut] * 3), hu_cut, geometry)
    assert level.slices == (0, 1, 2) and level.area_mm2 == pytest.approx(3 * 5.0 * 80.0, rel=0.05)


def test_round_tops_on_coarse_pixels_are_not_levels() -> None:
    """At 1.8 mm pixels a 20 mm-radius clot's top is flat to within a pixel for ~20 mm; the rows of a level
    may differ by 0.5 mm, so there they must be the same row (the serial tests' phantoms were flagged)."""
    from ichpipe.pipeline.datasets.case import uniform_geometry

    n = 64
    yy, xx = np.mgrid[:n, :n] * 1.8
    disc = np.hypot(yy - 57.6, xx - 57.6) < 20.0
    geometry = uniform_geometry(n_slices=3, rows=n, columns=n, pixel_spacing_mm=1.8, slice_thickness_mm=5.0)
    hu = np.where(disc, 70.0, 30.0)[None].repeat(3, axis=0).astype(np.float32)
    assert find_fluid_level(np.stack([disc] * 3), hu, geometry).area_mm2 == 0.0
