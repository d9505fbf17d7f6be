"""The head's top slices read enlarged: which slices, by how much, and the networks shown them so."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from network_stand_ins import Seen, tiny_checkpoint

from ichpipe.pipeline.config.inference_config import InferenceConfig
from ichpipe.pipeline.segment.inference import NetworkSegmenter
from ichpipe.pipeline.segment.section_zoom import SectionZoom, section_zoom, zoom_slices

#: brain radius (pixels) per slice: full on slices 0-5, narrowing to the vertex on 6-11
RADII = [20, 20, 20, 20, 20, 20, 18, 16, 14, 12, 10, 8]


def _dome_hu() -> np.ndarray:
    """A 64 x 64 'head' narrowing toward its top slices: bone ring 4 px, brain at 30 HU, a 70 HU blob on slice 9."""
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 32, xx - 30)
    hu = np.full((len(RADII), 64, 64), -1000.0, dtype=np.float32)
    for i, radius in enumerate(RADII):
        hu[i][r < radius + 4] = 1000.0
        hu[i][r < radius] = 30.0
    hu[9][np.hypot(yy - 30, xx - 30) < 4] = 70.0
    return hu


def _disc_space(radii: list[int], size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return np.stack([np.hypot(yy - 32, xx - 30) < radius for radius in radii])


def test_only_sections_above_the_widest_are_enlarged_to_its_size() -> None:
    space = _disc_space(RADII)
    zoom = section_zoom(space, np.arange(len(RADII)) * 5.0, min_share=1.0, max_factor=2.0)
    assert zoom is not None and zoom.slices == (6, 7, 8, 9, 10, 11)
    # the factor of a length: the widest radius over the slice's, up to max_factor
    assert zoom.factors[8] == pytest.approx(20 / 14, rel=0.05)
    assert zoom.factors[11] == pytest.approx(2.0)
    assert zoom.target == pytest.approx((32.0, 30.0), abs=0.5)
    assert zoom.to_dict() == {"slices": [6, 7, 8, 9, 10, 11], "max_factor": 2.0}
    # a smaller share enlarges fewer slices, each to the widest one's size
    half = section_zoom(space, np.arange(len(RADII)) * 5.0, min_share=0.5, max_factor=2.0)
    assert half is not None and half.slices == (8, 9, 10, 11)  # (14 / 20)^2 = 0.49
    assert half.factors[9] == pytest.approx(20 / 12, rel=0.05)


def test_the_skull_base_side_is_not_enlarged() -> None:
    space = _disc_space(RADII)
    # the same sections with the narrow slices at the bottom of the patient: the skull base
    assert section_zoom(space, -np.arange(len(RADII)) * 5.0) is None
    assert section_zoom(np.zeros((3, 8, 8), dtype=bool), [0.0, 1.0, 2.0]) is None


def test_section_zoom_checks_its_arguments() -> None:
    space = _disc_space(RADII)
    with pytest.raises(ValueError, match="'min_share' must lie in"):
        section_zoom(space, np.arange(len(RADII)), min_share=0.0)
    with pytest.raises(ValueError, match="'max_factor' must lie in"):
        section_zoom(space, np.arange(len(RADII)), max_factor=5.0)
    with pytest.raises(ValueError, match="'superior_mm' must hold one height per slice"):
        section_zoom(space, [0.0, 1.0])


def test_a_map_enlarged_and_mapped_back_lands_where_it_was() -> None:
    space = _disc_space([20, 10])
    zoom = section_zoom(space, [0.0, 5.0])
    assert zoom is not None and zoom.slices == (1,)
    image = space.astype(np.float32)
    big = zoom_slices(image, [0, 1], zoom, fill=0.0)
    assert np.array_equal(big[0], image[0])  # the widest slice is not touched
    assert big[1].sum() == pytest.approx(image[0].sum(), rel=0.1)  # the small disc shown at the widest's size
    back = zoom_slices(big, [0, 1], zoom, fill=0.0, back=True)
    assert np.abs(back[1] - image[1]).sum() < 0.1 * image[1].sum()
    # on a grid half the image's size, the same zoom scaled
    assert zoom.scaled(0.5, 0.5).target == pytest.approx((zoom.target[0] / 2, zoom.target[1] / 2))
    assert SectionZoom(np.ones(1), np.zeros((1, 2)), (0.0, 0.0)).slices == ()


def test_the_networks_are_shown_the_top_slices_enlarged_and_their_map_mapped_back(tmp_path, head_volume) -> None:
    dome = replace(head_volume, hu=_dome_hu())
    checkpoint = tiny_checkpoint(tmp_path / "tiny.pt", {"width": 80.0, "level": 40.0})
    on = NetworkSegmenter(checkpoint, config=InferenceConfig(device="cpu", mirror=False))
    on.runner = Seen()
    result = on.segment_in(dome)
    said = result.details["section_zoom"]
    assert said["slices"] == [8, 9, 10, 11]  # under 0.6 of the widest section: radius 14 of 20 and less
    assert on.describe()["vertex_zoom"] == {"min_share": 0.6, "max_factor": 2.0, "min_hu": 55.0}
    off = NetworkSegmenter(checkpoint, config=InferenceConfig(device="cpu", mirror=False, vertex_zoom_share=None))
    off.runner = Seen()
    assert "section_zoom" not in off.segment_in(dome).details and "vertex_zoom" not in off.describe()
    # the brain the network saw on the top slice: larger enlarged than as it is
    shown_on = np.concatenate([batch[:, 0] for batch in on.runner.images])
    shown_off = np.concatenate([batch[:, 0] for batch in off.runner.images])
    brain_on = ((shown_on > 0.2) & (shown_on < 0.8)).sum(axis=(1, 2))
    brain_off = ((shown_off > 0.2) & (shown_off < 0.8)).sum(axis=(1, 2))
    assert brain_on[-1] > 2.5 * brain_off[-1] and brain_on[0] == brain_off[0]
    # the echo's map mapped back: the blob lies where it lies in the image
    on.runner, off.runner = Seen(), Seen()
    zoom = section_zoom(_disc_space(RADII), dome.geometry.positions[:, 2])
    enlarged, plain = on.probabilities(dome, zoom=zoom), off.probabilities(dome)
    yy, xx = np.mgrid[:64, :64]
    blob = np.hypot(yy - 30, xx - 30) < 2
    assert enlarged[9][blob].mean() == pytest.approx(plain[9][blob].mean(), abs=0.05)
    brain = (dome.hu > 20) & (dome.hu < 90)
    assert np.abs(enlarged - plain)[brain].mean() < 0.05


def test_vertex_zoom_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="'vertex_zoom_share' must lie in"):
        InferenceConfig(vertex_zoom_share=1.5)
    with pytest.raises(ValueError, match=r"'vertex_max_zoom' must lie in \[1, 4\]"):
        InferenceConfig(vertex_max_zoom=0.5)


def test_the_report_says_which_top_slices_were_read_enlarged(tmp_path, head_volume) -> None:
    from ichpipe import load_config
    from ichpipe.pipeline.jobs.analyse_volume import analyse_volume

    config = load_config(quality={"cross_check": "none"})
    assert config.inference.vertex_zoom_share is not None  # on by default
    seg = NetworkSegmenter(tiny_checkpoint(tmp_path / "tiny.pt", {"width": 80.0, "level": 40.0}),
                           config=config.inference, anatomy=config.anatomy)
    seg.runner = Seen()
    said = analyse_volume(replace(head_volume, hu=_dome_hu()), seg, config).quality.measurements["section_zoom"]
    assert said["slices"] and said["slices"][-1] == len(RADII) - 1 and said["max_factor"] > 1.5


def test_faint_calls_on_enlarged_slices_are_not_kept(tmp_path, head_volume) -> None:
    hu = _dome_hu()
    yy, xx = np.mgrid[:64, :64]
    hu[8][np.hypot(yy - 32, xx - 38) < 4] = 48.0  # a faint patch on an enlarged slice, apart from the 70 HU blob on 9
    dome = replace(head_volume, hu=hu)
    checkpoint = tiny_checkpoint(tmp_path / "tiny.pt", {"width": 80.0, "level": 40.0})
    kept = {}
    for min_hu in (None, 55.0):
        seg = NetworkSegmenter(checkpoint, config=InferenceConfig(device="cpu", mirror=False, rim_mm=None,
                                                                  loose_threshold=None, faint_max_median_hu=None,
                                                                  bone_edge_max_ml=None,
                                                                  vertex_zoom_min_hu=min_hu))
        seg.runner = Seen()  # 'probability' = grey: everything over 40 HU is called
        result = seg.segment_in(dome)
        kept[min_hu] = result.mask
        assert ("faint_ml" in result.details["section_zoom"]) is (min_hu is not None)
    enlarged = [8, 9, 10, 11]
    assert kept[None][8][np.hypot(yy - 32, xx - 38) < 2].all()  # called without the rule
    assert not kept[55.0][enlarged][(hu[enlarged] < 55)].any()  # nothing faint kept on enlarged slices
    assert kept[55.0][9][np.hypot(yy - 30, xx - 30) < 3].all()  # the 70 HU blob kept
    assert np.array_equal(kept[None][:8], kept[55.0][:8])  # the slices read as they are: untouched
