"""Box-threshold and ring-interior labels, their agreement, and the handling of unboxed slices."""

from __future__ import annotations

import math

import numpy as np
import pytest
from phe_support import WINDOW, slice_hu, to_png, write_patient

from ichpipe.pipeline.datasets.phe_sich.phe_labels import (
    LabelConfig,
    box_threshold_label,
    dice,
    label_patient,
    ring_interior,
)
from ichpipe.pipeline.datasets.phe_sich.phe_reader import list_patients, list_slices
from ichpipe.pipeline.datasets.phe_sich.phe_window import (
    fit_quantisation,
    grey_to_steps,
    measure_anchors,
    occupied_levels,
)


def _ramp() -> np.ndarray:
    return to_png(np.arange(-300, 300, dtype=np.float32).reshape(20, 30))


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    root = tmp_path_factory.mktemp("phe")
    truth = write_patient(root, "0001")
    slices = list_patients(list_slices(root))["0001"]
    images = [s.image() for s in slices]
    fit = fit_quantisation(occupied_levels([*images, _ramp()]))
    assert fit is not None
    boxes = [s.boxes[0].mask(images[0].shape) if s.boxes else None for s in slices]
    anchors = measure_anchors("0001", images, boxes, fit, min_area_px=5000)
    labels = label_patient(slices, images, [s.oedema() for s in slices], fit=fit, anchors=anchors,
                           low_hu=WINDOW.low)
    return {lab.index: lab for lab in labels}, truth


def test_box_threshold_label_matches_the_clot(labelled):
    labels, truth = labelled
    for k in (4, 5):
        assert labels[k].source == "box-threshold"
        assert dice(labels[k].mask, truth[k]) > 0.85
    assert 46.0 <= labels[4].threshold_hu <= 50.0  # half-way between brain (30) and clot (65)


def test_closed_ring_gives_agreement_and_open_ring_gives_adjacency(labelled):
    labels, _ = labelled
    closed, open_ = labels[4], labels[5]
    assert closed.ring_state == "closed"
    assert 0.7 < closed.agreement <= 1.0
    assert closed.agreement_tolerant >= closed.agreement
    assert closed.confidence == pytest.approx(closed.agreement_tolerant)
    assert open_.ring_state == "open" and math.isnan(open_.agreement)
    assert open_.adjacency > 0.8  # the rim hugs the clot on the side where it is drawn
    assert open_.confidence == pytest.approx(LabelConfig().open_weight * open_.adjacency)
    # disagreeing pixels and the label's edge carry no weight; the agreed core does
    assert closed.ring_mask is not None
    assert (closed.weight[closed.mask ^ closed.ring_mask] == 0).all()
    core = closed.mask & closed.ring_mask
    assert closed.weight[core].mean() > 0.5 and closed.weight[~closed.mask & ~closed.ring_mask].min() == 1.0


def test_isodense_boxed_slice_gets_no_label_and_no_confidence(labelled):
    labels, _ = labelled
    assert labels[6].source == "box-threshold"
    assert not labels[6].mask.any()
    assert labels[6].confidence == 0.0


def test_unboxed_slices_next_to_boxes_are_searched(labelled):
    labels, _ = labelled
    assert labels[3].source == "unboxed-suspect" and labels[3].suspect_px > 100
    assert not labels[3].mask.any()  # a suspect is never a label
    assert labels[7].source == "unboxed-adjacent" and labels[8].source == "unboxed-adjacent"
    assert labels[1].source == "negative" and labels[9].source == "negative"
    assert labels[0].source == "blank"


def test_threshold_label_avoids_bone_rim_and_calcification():
    hu, _, _ = slice_hu(clot=False, calcification=True, seed=3)
    grey = to_png(hu)
    fit = fit_quantisation(occupied_levels([grey, _ramp()]))
    assert fit is not None
    steps = grey_to_steps(grey, fit)
    everywhere = np.ones(grey.shape, dtype=bool)
    label = box_threshold_label(steps, everywhere, threshold_steps=46.0 - WINDOW.low, top_step=fit.n_steps,
                                config=LabelConfig())
    assert not label.any()
    no_margin = box_threshold_label(steps, everywhere, threshold_steps=46.0 - WINDOW.low, top_step=fit.n_steps,
                                    config=LabelConfig(bone_margin_px=0, calcification_margin_px=0,
                                                       smooth_sigma_px=1.5))
    assert no_margin.any()  # without the margins the partial-volume rims would be labelled


def test_ring_interior_states():
    _, _, closed = slice_hu(ring_closed=True)
    _, _, open_ = slice_hu(ring_closed=False)
    state, interior = ring_interior(closed, config=LabelConfig())
    assert state == "closed" and interior is not None and interior.sum() > 300
    state, hull = ring_interior(open_, config=LabelConfig())
    assert state == "open" and hull is not None
    assert ring_interior(np.zeros_like(closed), config=LabelConfig()) == ("absent", None)


def test_label_config_checks_its_arguments():
    with pytest.raises(ValueError, match="threshold_clip_hu"):
        LabelConfig(threshold_clip_hu=(50.0, 40.0))
    with pytest.raises(ValueError, match="open_weight"):
        LabelConfig(open_weight=1.5)
    with pytest.raises(ValueError, match="bone_margin_px"):
        LabelConfig(bone_margin_px=-1)


def test_patient_without_box_files_gets_boxes_from_its_oedema(tmp_path):
    write_patient(tmp_path, "0013", with_boxes=False)
    slices = list_slices(tmp_path)
    assert {s.box_state for s in slices} == {"unannotated"}
    images = [s.image() for s in slices]
    fit = fit_quantisation(occupied_levels([*images, _ramp()]))
    assert fit is not None
    anchors = measure_anchors("0013", images, [None] * len(images), fit, min_area_px=5000)
    labels = label_patient(slices, images, [s.oedema() for s in slices], fit=fit, anchors=anchors,
                           low_hu=WINDOW.low)
    by_index = {lab.index: lab for lab in labels}
    assert by_index[4].source == "derived-box" and by_index[4].mask.any()
    assert by_index[4].boxes[0].x0 < 150  # the oedema's bounding box grown by the margin


def test_posterior_side_finds_the_head_rest():
    from ichpipe.pipeline.datasets.phe_sich.phe_reader import posterior_side

    hu, _, _ = slice_hu(clot=False)
    grey = to_png(hu)
    assert posterior_side(grey) is None  # no head rest
    y, x = np.indices(grey.shape)
    arc = (np.abs(np.hypot(y - 128, x - 60) - 190) < 1.5) & (x > 230)
    grey[arc] = 255
    assert posterior_side(grey) == "right"
    assert posterior_side(np.rot90(grey, -1)) == "down"
