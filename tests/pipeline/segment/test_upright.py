"""A head turned in the image: its turn measured, and the networks reading it upright."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from network_stand_ins import Seen, tiny_checkpoint
from scipy import ndimage

from ichpipe.pipeline.config.inference_config import InferenceConfig
from ichpipe.pipeline.segment.inference import NetworkSegmenter
from ichpipe.pipeline.segment.upright import HeadTurn, head_turn, turn_slices, turned_box, upright_crop


def _oval_hu(*, rows: float = 26.0, cols: float = 19.0, slices: int = 12) -> np.ndarray:
    """An upright oval 'head' on 64 x 64: bone shell, brain at 40 HU, a 70 HU blob off centre on slices 3-8."""
    yy, xx = np.mgrid[:64, :64].astype(float)
    shell = ((yy - 32) / rows) ** 2 + ((xx - 32) / cols) ** 2
    img = np.full((64, 64), -1000.0)
    img[shell <= 1.0] = 1000.0
    img[shell <= 0.75] = 40.0
    hu = np.stack([img] * slices).astype(np.float32)
    hu[3:9][:, np.hypot(yy - 22, xx - 30) < 5] = 70.0
    return hu


def _checkpoint(tmp_path):
    return tiny_checkpoint(tmp_path / "tiny.pt", {"width": 80.0, "level": 40.0})


@pytest.mark.parametrize("degrees", [0.0, 12.0, -25.0, 40.0, 90.0])
def test_head_turn_measures_the_long_axis(degrees) -> None:
    turned = turn_slices(_oval_hu(), degrees, fill=-1000.0) > -300
    turn = head_turn(turned)
    assert turn is not None and not turn.cut
    assert abs((turn.degrees + degrees + 90.0) % 180.0 - 90.0) < 1.5  # turning by the measured angle undoes it
    assert turn.elongation == pytest.approx(26.0 / 19.0, rel=0.05)
    back = head_turn(turn_slices(turned.astype(np.float32), turn.degrees, fill=0.0) > 0.5)
    assert back is not None and abs(back.degrees) < 1.5


def test_head_turn_says_when_it_cannot_be_measured() -> None:
    assert head_turn(np.zeros((3, 16, 16), dtype=bool)) is None
    round_head = head_turn(_oval_hu(rows=20.0, cols=20.0) > -300)
    assert round_head is not None and round_head.elongation < 1.02
    assert not round_head.applies(min_degrees=0.0, min_elongation=1.05)
    cut = head_turn(_oval_hu(rows=34.0, cols=22.0) > -300)
    assert cut is not None and cut.cut  # the outline reaches the image's edge
    assert not HeadTurn(degrees=40.0, elongation=1.3, cut=True).applies(min_degrees=10, min_elongation=1.05)
    with pytest.raises(ValueError, match="Argument 'head' must be a"):
        head_turn(np.zeros((16, 16), dtype=bool))
    with pytest.raises(ValueError, match="Argument 'stack' must hold slices"):
        turn_slices(np.zeros(5), 10.0, fill=0.0)


def test_head_turn_reads_non_square_pixels_in_mm() -> None:
    # an upright oval sampled at 0.5 mm rows and 1 mm columns is wide in pixels but long in mm
    yy, xx = np.mgrid[:64, :64].astype(float)
    oval = ((yy - 32) * 0.5 / 12.0) ** 2 + ((xx - 32) * 1.0 / 10.0) ** 2 <= 1.0
    turn = head_turn(np.stack([oval] * 2), pixel_spacing_mm=(0.5, 1.0))
    assert turn is not None and abs(turn.degrees) < 1.0 and turn.elongation == pytest.approx(1.2, rel=0.05)


def test_turned_box_holds_what_is_turned_into_it() -> None:
    region = np.zeros((48, 48), bool)
    region[10:30, 5:20] = True
    y0, y1, x0, x1 = turned_box(region, 35.0)
    turned = turn_slices(region[None].astype(np.float32), 35.0, fill=0.0)[0]
    assert turned[y0:y1, x0:x1].sum() == pytest.approx(turned.sum())
    assert turned_box(np.ones((48, 48), bool), 0.0) == (0, 48, 0, 48)
    assert turned_box(np.zeros((48, 48), bool), 20.0) == (0, 48, 0, 48)
    with pytest.raises(ValueError, match="Argument 'region' must be a bool image"):
        turned_box(np.zeros((2, 48, 48), bool), 10.0)


def test_the_upright_crop_is_the_turned_footprint_not_the_turned_box() -> None:
    hu = turn_slices(_oval_hu(), 30.0, fill=-1000.0)
    has_head = np.ones(len(hu), dtype=bool)
    head = hu > -300
    rows, cols = np.nonzero(head.any(axis=0))
    box = (int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1)
    crop = upright_crop(hu, has_head, box, (64, 64), -30.0, min_hu=-300)
    loose = upright_crop(hu, None, box, (64, 64), -30.0, min_hu=-300)  # the box turned
    area = (crop[1] - crop[0]) * (crop[3] - crop[2])
    assert area < 0.8 * (loose[1] - loose[0]) * (loose[3] - loose[2])
    upright = turn_slices(hu, -30.0, fill=-1000.0) > -300  # the head turned upright lies inside the crop
    assert not upright[:, :crop[0]].any() and not upright[:, crop[1]:].any()
    assert not upright[:, :, :crop[2]].any() and not upright[:, :, crop[3]:].any()


def test_a_turned_head_is_read_upright_and_its_probabilities_turned_back(tmp_path, head_volume) -> None:
    turned = replace(head_volume, hu=turn_slices(_oval_hu(), 30.0, fill=-1000.0))
    checkpoint = _checkpoint(tmp_path)
    seg = NetworkSegmenter(checkpoint, config=InferenceConfig(device="cpu", mirror=False))
    seg.runner = Seen()
    turn = head_turn(turned.hu > -300)
    upright = seg.upright_degrees(turn)
    assert upright is not None and abs(upright + 30.0) < 1.5
    probs = seg.probabilities(turned, upright=upright)
    seen = np.concatenate([batch[:, 0] for batch in seg.runner.images])
    shown = head_turn(seen > 0.05)
    assert shown is not None and abs(shown.degrees) < 2.0  # the network saw the head upright
    as_it_lies = NetworkSegmenter(checkpoint, config=InferenceConfig(device="cpu", mirror=False))
    as_it_lies.runner = Seen()
    plain = as_it_lies.probabilities(turned)
    # the echo's map turned there and back: the same map, but for the interpolation at edges
    brain = (turned.hu > 20) & (turned.hu < 90)
    assert np.abs(probs - plain)[brain].mean() < 0.02
    blob = ndimage.binary_erosion(brain[5], iterations=2) & (turned.hu[5] > 60)  # the 70 HU blob, not bone's edge
    assert blob.sum() > 20
    assert probs[5][blob].mean() == pytest.approx(plain[5][blob].mean(), abs=0.05)


@pytest.mark.parametrize(("settings", "degrees", "read_upright"), [
    ({}, 30.0, True),
    ({}, 5.0, False),  # under upright_min_degrees (10)
    ({"upright_min_degrees": None}, 30.0, False),
    ({"upright_min_elongation": 1.5}, 30.0, False),  # the oval is 1.37 times longer than wide
])
def test_segment_in_says_how_the_head_lay_and_how_it_was_read(tmp_path, head_volume, settings, degrees,
                                                              read_upright) -> None:
    turned = replace(head_volume, hu=turn_slices(_oval_hu(), degrees, fill=-1000.0))
    seg = NetworkSegmenter(_checkpoint(tmp_path), config=InferenceConfig(device="cpu", mirror=False, **settings))
    seg.runner = Seen()
    said = seg.segment_in(turned).details["head_turn"]
    assert said["read_upright"] is read_upright
    assert abs(said["degrees"] + degrees) < 1.5 and said["cut"] is False
    shown = head_turn(np.concatenate([batch[:, 0] for batch in seg.runner.images]) > 0.05)
    assert shown is not None
    assert abs(shown.degrees) < 2.0 if read_upright else abs(shown.degrees + degrees) < 2.0
    assert ("upright" in seg.describe()) is (settings.get("upright_min_degrees", 10.0) is not None)


def test_upright_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="'upright_min_degrees' must lie in"):
        InferenceConfig(upright_min_degrees=0.0)
    with pytest.raises(ValueError, match="'upright_min_degrees' must lie in"):
        InferenceConfig(upright_min_degrees=120.0)
    with pytest.raises(ValueError, match=r"'upright_min_elongation' must lie in \[1, 1.6\)"):
        InferenceConfig(upright_min_elongation=0.9)
    with pytest.raises(ValueError, match="'upright_min_elongation' must lie in"):
        InferenceConfig(upright_min_elongation=1.6)  # no head would be read upright


def test_the_report_says_how_the_head_lay(tmp_path, head_volume) -> None:
    from ichpipe import load_config
    from ichpipe.pipeline.jobs.analyse_volume import analyse_volume

    turned = replace(head_volume, hu=turn_slices(_oval_hu(), 30.0, fill=-1000.0))
    config = load_config(quality={"cross_check": "none"})
    seg = NetworkSegmenter(_checkpoint(tmp_path), config=config.inference, anatomy=config.anatomy)
    seg.runner = Seen()
    said = analyse_volume(turned, seg, config).quality.measurements["head_turn"]
    assert said["read_upright"] is True and abs(said["degrees"] + 30.0) < 1.5


def test_shoulders_in_the_series_are_not_taken_for_a_turned_head(tmp_path, head_volume) -> None:
    # slices 0-3 hold a wide body (shoulders), larger than the head: they are the slices measured, their long
    # axis runs side to side, and the series is read as it lies rather than turned 90 degrees
    hu = _oval_hu(rows=14.0, cols=10.0)
    yy, xx = np.mgrid[:64, :64].astype(float)
    hu[:4] = np.where(((yy - 32) / 14.0) ** 2 + ((xx - 32) / 30.0) ** 2 <= 1.0, 40.0, -1000.0)
    turn = head_turn(hu > -300)
    assert turn is not None and abs(abs(turn.degrees) - 90.0) < 1.5 and turn.elongation > 2.0
    seg = NetworkSegmenter(_checkpoint(tmp_path), config=InferenceConfig(device="cpu", mirror=False))
    seg.runner = Seen()
    assert seg.upright_degrees(turn) is None
    assert seg.segment_in(replace(head_volume, hu=hu)).details["head_turn"]["read_upright"] is False
