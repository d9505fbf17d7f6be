"""Flag ``hypodense_at_skull``: hypodense tissue against the inner table on one side that the segmenter left out."""

from __future__ import annotations

import numpy as np
import pytest
from anatomy_support import PhantomCase, with_hu

from ichpipe.pipeline.config.quality_config import HypodenseAtSkullConfig, QualityConfig
from ichpipe.pipeline.datasets.case import uniform_geometry
from ichpipe.pipeline.measure.volume import measure_hematoma
from ichpipe.pipeline.quality.assess import assess_quality
from ichpipe.pipeline.quality.hypodense_at_skull import (
    HypodenseAtSkull,
    check_hypodense_at_skull,
    hypodense_at_skull,
)
from ichpipe.pipeline.segment.intracranial import find_intracranial
from ichpipe.pipeline.segment.segmenter import SegmentationResult

CODE = "hypodense_at_skull"


def _crescent(case: PhantomCase, thickness_mm: float, *, centre: float = 0.0) -> np.ndarray:
    """A band ``thickness_mm`` deep under the inner table, over a quarter of the head around the head-frame
    angle ``centre`` (0: towards +x), on the middle slices."""
    frame = case.head_frame
    angle = np.angle(np.exp(1j * (np.arctan2(frame[..., 1], frame[..., 0]) - centre)))
    inside = (case.signed_distance < 0) & (case.signed_distance > -thickness_mm)
    n = case.hu.shape[0]
    middle = np.zeros(case.hu.shape, dtype=bool)
    middle[n // 2 - 3 : n // 2 + 3] = True
    return inside & middle & (np.abs(angle) < np.pi / 4)


def _painted(case: PhantomCase, band: np.ndarray, hu_value: float) -> np.ndarray:
    rng = np.random.default_rng(5)
    hu = case.hu.copy()
    hu[band] = (hu_value + rng.normal(0.0, 3.0, int(band.sum()))).astype(np.float32)
    return hu


def _assessed(case: PhantomCase, band: np.ndarray, hu_value: float, *, segmented: np.ndarray | None = None,
              config: QualityConfig | None = None) -> tuple[set[str], dict[str, float]]:
    volume = with_hu(case, _painted(case, band, hu_value))
    space = find_intracranial(volume.hu, case.spacing, case.thickness)
    mask = np.zeros(band.shape, dtype=bool) if segmented is None else segmented
    report = assess_quality(volume, space, SegmentationResult(mask=mask), config=config)
    return set(report.codes), report.measurements["hypodense_at_skull_ml"]


def test_quiet_on_a_normal_head(medium_normal: PhantomCase) -> None:
    codes, sides = _assessed(medium_normal, np.zeros(medium_normal.hu.shape, dtype=bool), 15.0)
    assert CODE not in codes
    assert set(sides) == {"right", "left"} and max(sides.values()) < 0.5


def test_a_chronic_subdural_on_one_side_is_flagged_and_measured(medium_normal: PhantomCase) -> None:
    band = _crescent(medium_normal, 7.0)
    codes, sides = _assessed(medium_normal, band, 15.0)
    assert CODE in codes
    geometry = medium_normal.volume.geometry
    painted_ml = measure_hematoma(band, geometry).volume_ml
    more, other = sorted(sides.values(), reverse=True)
    # the smoothing and the opening trim its ends and inner edge: most of it, never more than it
    assert 0.6 * painted_ml <= more <= 1.05 * painted_ml and other < 0.1 * painted_ml
    # the side is the patient's: the band lies where the patient's x (LPS: + is left) of its voxels is positive
    rows, cols = np.nonzero(band[band.shape[0] // 2])
    centre = np.array(np.nonzero(medium_normal.intracranial[band.shape[0] // 2])).mean(axis=1)
    offset = (rows.mean() - centre[0]) * geometry.column_direction + (cols.mean() - centre[1]) * geometry.row_direction
    assert max(sides, key=lambda side: sides[side]) == ("left" if offset[0] > 0 else "right")
    # segmented, it is quiet
    assert CODE not in _assessed(medium_normal, band, 15.0, segmented=band)[0]
    # on both sides it cannot be told from atrophy, and says nothing (both sides measured)
    both = band | _crescent(medium_normal, 7.0, centre=np.pi)
    codes, sides = _assessed(medium_normal, both, 15.0)
    assert CODE not in codes and min(sides.values()) > 0.6 * painted_ml
    # thinner than min_thickness_mm (a sulcus, a thin subarachnoid space): quiet
    assert CODE not in _assessed(medium_normal, _crescent(medium_normal, 1.5), 15.0)[0]
    # at brain density it is not hypodense; acute blood is the other check's
    assert CODE not in _assessed(medium_normal, band, 38.0)[0]
    codes, sides = _assessed(medium_normal, band, 72.0)
    assert CODE not in codes and "blood_at_skull_missed" in codes and max(sides.values()) < 0.5
    # the threshold is the config's
    strict = QualityConfig(hypodense_at_skull=HypodenseAtSkullConfig(min_ml=1e6))
    assert CODE not in _assessed(medium_normal, band, 15.0, config=strict)[0]
    # null: off, nothing measured
    volume = with_hu(medium_normal, _painted(medium_normal, band, 15.0))
    space = find_intracranial(volume.hu, medium_normal.spacing, medium_normal.thickness)
    off = assess_quality(volume, space, SegmentationResult(mask=np.zeros(band.shape, dtype=bool)),
                         config=QualityConfig(hypodense_at_skull=HypodenseAtSkullConfig(min_ml=None)))
    assert CODE not in off.codes and "hypodense_at_skull_ml" not in off.measurements


def test_messages_and_bad_arguments() -> None:
    (flag,) = check_hypodense_at_skull(HypodenseAtSkull((0.5, 6.46), ("right", "left"), (11, 12, 13)), min_ml=3.0)
    assert flag.message.startswith("6.5 mL of hypodense tissue (darker than the brain")
    assert "on the left (slices 12-14) and 0.5 mL on the right" in flag.message
    assert "an infarct reaching the cortex" in flag.message  # what raises it on a stroke service (bench/infarcts.py)
    assert flag.value == 6.46 and flag.threshold == 3.0
    assert check_hypodense_at_skull(HypodenseAtSkull((2.9, 0.0), slices=(3,)), min_ml=3.0) == []
    assert check_hypodense_at_skull(HypodenseAtSkull((2.5, 6.0), slices=(3, 4)), max_other_share=0.33) == []
    assert check_hypodense_at_skull(HypodenseAtSkull((2.5, 6.0), slices=(3, 4)), max_other_share=0.5) != []
    cube = np.zeros((2, 8, 8), dtype=np.float32)
    geometry = uniform_geometry(n_slices=2, rows=8, columns=8, pixel_spacing_mm=1.0, slice_thickness_mm=5.0)
    with pytest.raises(ValueError, match=r"'hu', 'intracranial' and 'blood' must be 3D of one shape"):
        hypodense_at_skull(cube, np.zeros((2, 8, 7), dtype=bool), cube > 0, geometry)
    with pytest.raises(ValueError, match=r"'geometry' must describe the volume's shape"):
        hypodense_at_skull(cube[:1], cube[:1] > 0, cube[:1] > 0, geometry)
    with pytest.raises(ValueError, match=r"'below_brain_hu' must be \(least, most\)"):
        hypodense_at_skull(cube, cube > 0, cube > 0, geometry, below_brain_hu=(26.0, 6.0))
    with pytest.raises(ValueError, match=r"'below_brain_hu' must be \[low, high\]"):
        HypodenseAtSkullConfig(below_brain_hu=(26.0, 6.0))
    with pytest.raises(ValueError, match=r"'max_other_share' must lie in \[0, 1\]"):
        HypodenseAtSkullConfig(max_other_share=1.5)
    # a speck of an intracranial space has no axis to split: measured, sides unnamed, no error
    speck = np.zeros((3, 8, 8), dtype=bool)
    speck[1, 4, 4] = True
    found = hypodense_at_skull(np.full((3, 8, 8), 30.0, dtype=np.float32), speck, np.zeros_like(speck),
                               uniform_geometry(n_slices=3, rows=8, columns=8, pixel_spacing_mm=1.0,
                                                slice_thickness_mm=5.0))
    assert found.to_dict() == {"side 1": 0.0, "side 2": 0.0}
    # no bone told (a skull-stripped or clipped image): nothing to measure against
    assert hypodense_at_skull(cube, cube == 0, cube > 0, geometry, bone_hu=float("inf")).side_ml == (0.0, 0.0)
