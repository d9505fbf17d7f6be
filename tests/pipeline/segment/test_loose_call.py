"""``inference.loose_threshold``: the main network's call at a looser threshold, measured beside the blood."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from network_stand_ins import TwoLevel, tiny_checkpoint

from ichpipe.pipeline.config.inference_config import EndExtensionConfig, ExtraAxialConfig, InferenceConfig
from ichpipe.pipeline.config.quality_config import QualityConfig, UncertainEdgeConfig
from ichpipe.pipeline.quality.assess import assess_quality
from ichpipe.pipeline.quality.blood_checks import check_uncertain_edge
from ichpipe.pipeline.segment.components import mask_volume_ml
from ichpipe.pipeline.segment.inference import NetworkSegmenter
from ichpipe.pipeline.segment.intracranial import find_intracranial_in

SURE_HU, LOOSE_HU = 60.0, 52.0  # shown through W80/L40 as 0.75 and 0.65 of the range


def _paint(img, yy, xx, r, i) -> None:
    if 4 <= i <= 7:
        img[(np.abs(yy - 30) < 4) & (np.abs(xx - 22) < 4)] = SURE_HU  # called surely
        img[(np.abs(yy - 30) < 4) & (xx >= 26) & (xx < 30)] = LOOSE_HU  # its faint edge, joined to it
        img[(np.abs(yy - 30) < 3) & (xx >= 36) & (xx < 40)] = LOOSE_HU  # a faint spot apart from it


def _faint_paint(img, yy, xx, r, i) -> None:
    if 4 <= i <= 7:
        img[(np.abs(yy - 30) < 4) & (np.abs(xx - 22) < 4)] = FAINT_HU  # faint blood, called surely
        img[(np.abs(yy - 30) < 4) & (xx >= 26) & (xx < 29)] = FAINT_EDGE_HU  # its fainter edge, called loosely
        img[(np.abs(yy - 30) < 4) & (xx >= 29) & (xx < 31)] = OEDEMA_HU  # beyond it, oedema called loosely
        img[(np.abs(yy - 30) < 4) & (xx >= 16) & (xx < 19)] = CALCIFIED_HU  # on its other side, calcification


FAINT_HU, FAINT_EDGE_HU, OEDEMA_HU, CALCIFIED_HU = 50.0, 44.0, 30.0, 130.0


def _segmenter(tmp_path: Path, **options) -> NetworkSegmenter:
    base = tiny_checkpoint(tmp_path / "base.pt", {"width": 80.0, "level": 40.0})
    # no partial-volume rim: it would take the faint edges these tests read (test_edge_rim.py)
    cfg = InferenceConfig(device="cpu", runtime="torch", mirror=False, rim_mm=None,
                          end_extension=EndExtensionConfig(checkpoint=""), extra_axial=ExtraAxialConfig(checkpoint=""),
                          **options)
    seg = NetworkSegmenter(base, config=cfg)
    seg.runner = TwoLevel(SURE_HU / 80.0, LOOSE_HU / 80.0)
    return seg


class _Faint:
    """Stands in for a network: 0.9 on faint blood, 0.4 on its fainter edge, the oedema and anything over 80 HU."""

    def run(self, images: np.ndarray) -> np.ndarray:
        grey = images[:, :1]
        loose = (np.abs(grey - FAINT_EDGE_HU / 80.0) < 0.02) | (np.abs(grey - OEDEMA_HU / 80.0) < 0.02) | (grey > 0.99)
        return np.where(np.abs(grey - FAINT_HU / 80.0) < 0.02, 0.9, np.where(loose, 0.4, 0.0)).astype(np.float32)


def test_faint_blood_grows_into_the_loose_call_but_not_into_oedema(tmp_path: Path, make_head) -> None:
    volume = make_head(_faint_paint)
    voxel_ml = volume.geometry.voxel_volumes_ml
    found = {}
    for limit in (None, 45.0, 55.0):
        seg = _segmenter(tmp_path, loose_threshold=0.3, faint_max_median_hu=limit)
        seg.runner = _Faint()
        found[limit] = seg.segment_in(volume)
    core, edge = volume.hu == FAINT_HU, volume.hu == FAINT_EDGE_HU
    np.testing.assert_array_equal(found[None].mask, core)
    np.testing.assert_array_equal(found[45.0].mask, core)  # 50 HU blood is not under 45: no growth
    assert "faint_growth" not in found[None].details and "faint_growth" not in found[45.0].details
    # grown into its edge, not into the oedema, the calcification or the skull
    np.testing.assert_array_equal(found[55.0].mask, core | edge)
    grown = found[55.0].details["faint_growth"]
    assert grown["components_grown"] == 1
    assert grown["added_ml"] == pytest.approx(mask_volume_ml(edge, voxel_ml), rel=1e-3)
    # the loose call beside the blood counts what the growth took, so the edge flag sees the same edge
    assert found[55.0].details["loose_call"]["beside_ml"] == pytest.approx(
        found[None].details["loose_call"]["beside_ml"], rel=1e-3)
    seg = _segmenter(tmp_path, loose_threshold=0.3, faint_max_median_hu=55.0)
    assert seg.describe()["faint_growth"] == {"max_median_hu": 55.0, "min_hu": 35.0, "threshold": 0.3,
                                              "beside_acute_ml": 1.0}


DENSE_HU = 70.0


def _piece_paint(img, yy, xx, r, i) -> None:
    if 4 <= i <= 7:
        img[(np.abs(yy - 26) < 5) & (np.abs(xx - 20) < 5)] = DENSE_HU  # a dense bleed, called surely
    if 5 <= i <= 6:
        img[(yy >= 36) & (yy < 42) & (xx >= 30) & (xx < 36)] = FAINT_HU  # a small faint piece apart from it
        img[(yy >= 36) & (yy < 42) & (xx >= 36) & (xx < 39)] = FAINT_EDGE_HU  # its fainter edge, called loosely


class _DenseAndFaint:
    """Stands in for a network: 0.9 on the dense bleed and on faint blood, 0.4 on the faint blood's edge."""

    def run(self, images: np.ndarray) -> np.ndarray:
        grey = images[:, :1]
        sure = (np.abs(grey - DENSE_HU / 80.0) < 0.02) | (np.abs(grey - FAINT_HU / 80.0) < 0.02)
        return np.where(sure, 0.9, np.where(np.abs(grey - FAINT_EDGE_HU / 80.0) < 0.02, 0.4, 0.0)).astype(np.float32)


def test_a_small_faint_piece_beside_an_acute_bleed_does_not_grow(tmp_path: Path, make_head) -> None:
    volume = make_head(_piece_paint)
    voxel_ml = volume.geometry.voxel_volumes_ml
    dense, piece, edge = (volume.hu == hu for hu in (DENSE_HU, FAINT_HU, FAINT_EDGE_HU))
    dense_ml, piece_ml = mask_volume_ml(dense, voxel_ml), mask_volume_ml(piece, voxel_ml)
    assert piece_ml < dense_ml
    found = {}
    for limit in (None, (piece_ml + dense_ml) / 2, 2 * dense_ml):
        seg = _segmenter(tmp_path, loose_threshold=0.3, faint_max_median_hu=55.0, faint_beside_acute_ml=limit)
        seg.runner = _DenseAndFaint()
        found[limit] = seg.segment_in(volume)
    off, on, above = found.values()
    np.testing.assert_array_equal(off.mask, dense | piece | edge)  # every faint component grows
    assert off.details["faint_growth"] == {"components_grown": 1, "small_beside_acute": 0,
                                           "added_ml": pytest.approx(mask_volume_ml(edge, voxel_ml), rel=1e-3)}
    # smaller than the limit, beside an acute component as large as it: left as it was, and said so
    np.testing.assert_array_equal(on.mask, dense | piece)
    assert on.details["faint_growth"] == {"components_grown": 0, "small_beside_acute": 1, "added_ml": 0.0}
    # no acute component reaches the limit: the piece grows
    np.testing.assert_array_equal(above.mask, dense | piece | edge)


def test_faint_beside_acute_ml_must_be_positive() -> None:
    with pytest.raises(ValueError, match="'faint_beside_acute_ml' must be positive"):
        InferenceConfig(faint_beside_acute_ml=0.0)


def test_the_loose_call_joined_to_the_blood_is_measured_never_added(tmp_path: Path, make_head) -> None:
    volume = make_head(_paint)
    voxel_ml = volume.geometry.voxel_volumes_ml
    edge = np.zeros(volume.hu.shape, dtype=bool)
    edge[4:8, 27:34, 26:30] = True  # the joined faint edge (the spot apart is not counted)
    results = {t: _segmenter(tmp_path, loose_threshold=t, faint_max_median_hu=None).segment_in(volume)
               for t in (None, 0.3)}
    assert "loose_call" not in results[None].details
    np.testing.assert_array_equal(results[None].mask, results[0.3].mask)  # measured, never added
    sure = results[0.3].mask
    assert sure.any() and not (sure & (volume.hu != SURE_HU)).any()
    measured = results[0.3].details["loose_call"]
    assert measured["threshold"] == 0.3
    assert measured["beside_ml"] == pytest.approx(mask_volume_ml(edge, voxel_ml), rel=1e-3)
    # a looser line above the faint edge's 0.4 sees nothing beside the blood
    assert _segmenter(tmp_path, loose_threshold=0.45).segment_in(volume).details["loose_call"]["beside_ml"] == 0.0
    assert _segmenter(tmp_path, loose_threshold=0.3).describe()["loose_threshold"] == 0.3


def test_a_faint_edge_is_flagged_through_assess_quality(tmp_path: Path, make_head) -> None:
    volume = make_head(_paint)
    result = _segmenter(tmp_path, loose_threshold=0.3).segment_in(volume)
    space = find_intracranial_in(volume.hu, volume.geometry)
    found_ml = mask_volume_ml(result.mask, volume.geometry.voxel_volumes_ml)
    beside = result.details["loose_call"]["beside_ml"]
    assert 0.3 < beside / found_ml < 1.0
    loose = QualityConfig(uncertain_edge=UncertainEdgeConfig(min_fraction=0.3, min_ml=0.0))
    report = assess_quality(volume, space, result, config=loose)
    assert "uncertain_edge" in report.codes and "uncertain_edge" in report.checks
    strict = replace(loose, uncertain_edge=UncertainEdgeConfig(min_fraction=1.0, min_ml=0.0))
    assert "uncertain_edge" not in assess_quality(volume, space, result, config=strict).codes
    big = replace(loose, uncertain_edge=UncertainEdgeConfig(min_fraction=0.3, min_ml=beside + 0.01))
    assert "uncertain_edge" not in assess_quality(volume, space, result, config=big).codes


def test_check_uncertain_edge_needs_both_share_and_volume() -> None:
    call = {"threshold": 0.3, "beside_ml": 2.0}
    assert [f.code for f in check_uncertain_edge(call, 5.0)] == ["uncertain_edge"]
    flag = check_uncertain_edge(call, 5.0)[0]
    assert flag.value == pytest.approx(0.4) and flag.threshold == 0.3 and "2.0 mL" in flag.message
    assert check_uncertain_edge(call, 7.0) == []  # 29 %
    assert check_uncertain_edge({"threshold": 0.3, "beside_ml": 0.9}, 1.0) == []  # under 1 mL
    assert check_uncertain_edge({"threshold": 0.3, "beside_ml": 0.0}, 0.0) == []


def test_the_loose_threshold_must_lie_under_the_threshold() -> None:
    with pytest.raises(ValueError, match="loose_threshold"):
        InferenceConfig(loose_threshold=0.5)
    with pytest.raises(ValueError, match="loose_threshold"):
        InferenceConfig(threshold=0.4, loose_threshold=0.45)
    with pytest.raises(ValueError, match=r"faint_max_median_hu.*needs 'loose_threshold'"):
        InferenceConfig(loose_threshold=None)
    assert InferenceConfig(loose_threshold=None, faint_max_median_hu=None).faint_max_median_hu is None
    with pytest.raises(ValueError, match="faint_min_hu"):
        InferenceConfig(faint_min_hu=5000.0)
    with pytest.raises(ValueError, match="min_fraction"):
        UncertainEdgeConfig(min_fraction=-0.1)
