"""Flags ``blood_at_scan_end`` and ``head_not_covered``: a series that stops inside the head or the bleed."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from anatomy_support import PhantomCase

from ichpipe.pipeline.config.quality_config import CoverageConfig, QualityConfig
from ichpipe.pipeline.quality.assess import assess_quality
from ichpipe.pipeline.quality.coverage import ScanEnd, check_coverage, scan_ends
from ichpipe.pipeline.segment.intracranial import find_intracranial
from ichpipe.pipeline.segment.segmenter import SegmentationResult


def _cropped(case: PhantomCase, keep: slice):
    """The case's volume and hematoma truth on the slices ``keep`` only (a partial acquisition)."""
    volume = case.volume
    geo = volume.geometry
    start, stop, _ = keep.indices(volume.hu.shape[0])
    cropped_geo = replace(geo, positions=geo.positions[start:stop], offsets_mm=geo.offsets_mm[start:stop],
                          slice_thickness_mm=np.asarray(geo.slice_thickness_mm)[start:stop])
    hu = np.ascontiguousarray(volume.hu[keep])
    return replace(volume, hu=hu, geometry=cropped_geo, slices=volume.slices[start:stop]), case.labels[keep] > 0


def _codes(volume, blood, config: QualityConfig | None = None) -> tuple[list[str], dict]:
    geo = volume.geometry
    space = find_intracranial(volume.hu, geo.pixel_spacing_mm, geo.slice_thickness_mm)
    report = assess_quality(volume, space, SegmentationResult(mask=blood), config=config)
    return report.codes, report.measurements


def test_a_whole_head_is_quiet(medium_case: PhantomCase) -> None:
    codes, measured = _codes(medium_case.volume, medium_case.labels > 0)
    assert "head_not_covered" not in codes and "blood_at_scan_end" not in codes
    first, last = measured["scan_ends"]
    assert first["intracranial_share"] < 0.5 and last["intracranial_share"] < 0.5
    assert first["blood_mm2"] == 0.0 and last["blood_mm2"] == 0.0


def test_a_series_cut_through_the_bleed_is_flagged_twice(medium_case: PhantomCase) -> None:
    blood_slices = np.flatnonzero(medium_case.labels.any(axis=(1, 2)))
    middle = int(blood_slices[len(blood_slices) // 2])
    volume, blood = _cropped(medium_case, slice(0, middle + 1))  # stops in the middle of the bleed
    codes, measured = _codes(volume, blood)
    assert "blood_at_scan_end" in codes and "head_not_covered" in codes
    ends = {e["side"]: e for e in measured["scan_ends"]}
    assert set(ends) in ({"top", "bottom"}, {"first", "last"})
    assert max(e["blood_mm2"] for e in ends.values()) >= 20.0
    # off
    off = QualityConfig(coverage=CoverageConfig(min_blood_mm2=None, max_end_share=None))
    codes, _ = _codes(volume, blood, off)
    assert "blood_at_scan_end" not in codes and "head_not_covered" not in codes


def test_the_end_named_from_the_normal() -> None:
    ic = np.zeros((4, 6, 6), dtype=bool)
    ic[:, 1:5, 1:5] = True
    blood = np.zeros_like(ic)
    blood[3, 2:4, 2:4] = True
    up = scan_ends(ic, blood, (2.0, 2.0), (0.0, 0.0, 1.0))
    down = scan_ends(ic, blood, (2.0, 2.0), (0.0, 0.0, -1.0))
    sideways = scan_ends(ic, blood, (2.0, 2.0), (1.0, 0.0, 0.0))
    assert (up[1].side, down[1].side, sideways[1].side) == ("top", "bottom", "last")
    assert up[1].blood_mm2 == 16.0 and up[0].blood_mm2 == 0.0
    (flag,) = check_coverage(up, min_blood_mm2=10.0, max_end_share=None)
    assert flag.code == "blood_at_scan_end" and "the top slice (16 mm^2)" in flag.message
    assert check_coverage(up, min_blood_mm2=20.0, max_end_share=None) == []
    (flag,) = check_coverage(up, min_blood_mm2=None, max_end_share=1.0)
    assert flag.code == "head_not_covered" and "bottom slice holds 100 %" in flag.message


def test_no_intracranial_space_is_no_open_end() -> None:
    empty = np.zeros((3, 4, 4), dtype=bool)
    ends = scan_ends(empty, empty, (1.0, 1.0), (0.0, 0.0, 1.0))
    assert all(e == ScanEnd(e.slice_index, e.side, 0.0, 0.0) for e in ends)
    assert check_coverage(ends) == []


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="Arguments 'intracranial' and 'blood' must be 3D arrays of one shape"):
        scan_ends(np.zeros((2, 3, 3), bool), np.zeros((2, 3, 4), bool), (1.0, 1.0), (0, 0, 1))
    with pytest.raises(ValueError, match="Argument 'max_end_share' must be a number >= 0"):
        CoverageConfig(max_end_share=-0.1)
