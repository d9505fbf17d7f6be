"""Flag ``head_outside_field_of_view``: a field of view smaller than the head cuts it in plane."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from anatomy_support import PhantomCase

from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.pipeline.config.quality_config import CoverageConfig, QualityConfig
from ichpipe.pipeline.quality.assess import assess_quality
from ichpipe.pipeline.quality.coverage import FieldEdge, check_field_of_view, field_edge
from ichpipe.pipeline.segment.intracranial import find_intracranial_in
from ichpipe.pipeline.segment.segmenter import SegmentationResult


def _field(volume: CTVolume, rows: slice, cols: slice, *, circle: bool = False) -> CTVolume:
    """The image's ``rows`` x ``cols`` (first index 0 kept: positions unchanged), padded outside the circle."""
    hu = volume.hu[:, rows, cols].copy()
    n_rows, n_cols = hu.shape[1:]
    if circle:
        yy, xx = np.mgrid[:n_rows, :n_cols]
        hu[:, np.hypot(yy - (n_rows - 1) / 2, xx - (n_cols - 1) / 2) > min(n_rows, n_cols) / 2] = -1024.0
    return replace(volume, hu=np.ascontiguousarray(hu), geometry=replace(volume.geometry, rows=n_rows, columns=n_cols))


def _assess(volume: CTVolume, config: QualityConfig | None = None) -> tuple[list[str], dict]:
    space = find_intracranial_in(volume.hu, volume.geometry)
    report = assess_quality(volume, space, SegmentationResult(mask=np.zeros(volume.hu.shape, bool)), config=config)
    return report.codes, report.measurements["field_edge"]


def _space_columns(case: PhantomCase) -> tuple[int, int]:
    space = find_intracranial_in(case.volume.hu, case.volume.geometry)
    cols = np.flatnonzero(space.mask.any(axis=(0, 1)))
    return int(cols[0]), int(cols[-1])


def test_a_whole_head_does_not_reach_the_edge(normal_case: PhantomCase) -> None:
    codes, edge = _assess(normal_case.volume)
    assert "head_outside_field_of_view" not in codes
    assert edge["longest_mm"] == 0.0 and edge["slices"] == []


def test_a_square_field_through_the_brain_is_named(normal_case: PhantomCase) -> None:
    _, last = _space_columns(normal_case)
    cut = _field(normal_case.volume, slice(None), slice(0, last - 8))  # 8 columns (14 mm) of the brain cut off
    codes, edge = _assess(cut)
    assert "head_outside_field_of_view" in codes
    assert edge["field"] == "square" and edge["longest_mm"] >= 10.0 and edge["slices"]
    # the bone ring is open at the cut: with the check off it reads as missing bone (a craniectomy)
    off = QualityConfig(coverage=CoverageConfig(min_field_edge_mm=None))
    codes_off, _ = _assess(cut, off)
    assert "head_outside_field_of_view" not in codes_off and "skull_open" in codes_off
    assert "skull_open" not in codes


def test_the_skull_cut_outside_the_brain_is_quiet(normal_case: PhantomCase) -> None:
    _, last = _space_columns(normal_case)
    codes, edge = _assess(_field(normal_case.volume, slice(None), slice(0, last + 3)))  # 5 mm beyond the space
    assert "head_outside_field_of_view" not in codes and edge["longest_mm"] < 10.0


def test_a_padded_reconstruction_circle_is_the_field(normal_case: PhantomCase) -> None:
    first, last = _space_columns(normal_case)
    size = last - first + 1  # a circle as wide as the space, off its centre by a quarter: it cuts the brain
    start = first + size // 4
    rows = normal_case.volume.hu.shape[1]
    fov = _field(normal_case.volume, slice((rows - size) // 2, (rows + size) // 2), slice(start, start + size),
                 circle=True)
    codes, edge = _assess(fov)
    assert edge["field"] == "circle" and "head_outside_field_of_view" in codes


def test_field_edge_counts_the_length_along_the_edge() -> None:
    ic = np.zeros((3, 40, 40), dtype=bool)
    ic[1, 10:30, 20:40] = True  # 20 rows of 0.5 mm reach the right border: 10 mm
    hu = np.full(ic.shape, -1000.0) + np.arange(40)  # air that varies: no padded circle
    edge = field_edge(ic, hu, (0.5, 0.5), band_mm=2.0)
    assert edge.field == "square" and edge.edge_mm == (0.0, 10.0, 0.0)
    assert edge.slices_from(10.0) == (1,) and edge.to_dict(10.0)["slices"] == [1]
    (flag,) = check_field_of_view(edge, min_edge_mm=10.0)
    assert flag.code == "head_outside_field_of_view" and "the image's border for up to 10 mm on 1 slice" in flag.message
    assert check_field_of_view(edge, min_edge_mm=10.5) == []
    assert check_field_of_view(edge, min_edge_mm=None) == []
    padded = hu.copy()
    yy, xx = np.mgrid[:40, :40]
    padded[:, np.hypot(yy - 19.5, xx - 19.5) > 20] = -3024.0
    assert field_edge(ic, padded, (0.5, 0.5), band_mm=2.0).field == "circle"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="Arguments 'intracranial' and 'hu' must be 3D arrays of one shape"):
        field_edge(np.zeros((2, 3, 3), bool), np.zeros((2, 3, 4)), (1.0, 1.0))
    with pytest.raises(ValueError, match="Argument 'band_mm' must be positive"):
        field_edge(np.zeros((2, 3, 3), bool), np.zeros((2, 3, 3)), (1.0, 1.0), band_mm=0.0)
    with pytest.raises(ValueError, match="Argument 'min_field_edge_mm' must be a number >= 0"):
        CoverageConfig(min_field_edge_mm=-1.0)
    assert FieldEdge("square", (), 3.0).longest_mm == 0.0
