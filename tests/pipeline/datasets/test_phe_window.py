"""Window estimation from quantisation and tissue anchors; the inverse map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from phe_support import WINDOW, slice_hu, to_png

from ichpipe.dicom_io.window import WindowPreset, apply_window
from ichpipe.pipeline.datasets.phe_sich.phe_window import (
    TissueAnchors,
    estimate_window,
    fit_quantisation,
    grey_to_steps,
    measure_anchors,
    occupied_levels,
    png_to_hu,
    rewindow,
)

PHE = Path(__file__).resolve().parents[4] / "shared" / "data" / "phe-sich-ct-ids-dev"


def _ramp(width: float, level: float, offset: float = 0.4375) -> np.ndarray:
    hu = np.arange(-300, 300, dtype=np.float32).reshape(20, 30)
    return to_png(hu, width=width, level=level, offset=offset)


@pytest.mark.parametrize(("width", "offset"), [(120.0, 0.4375), (80.0, 0.5), (100.0, 0.3), (150.0, 0.0)])
def test_quantisation_gives_the_width(width, offset):
    fit = fit_quantisation(occupied_levels([_ramp(width, 40.0, offset)]))
    assert fit is not None
    assert fit.width_hu == width
    assert fit.offset_range[0] - 0.003 <= offset <= fit.offset_range[1] + 0.003  # to the search grid
    assert fit.n_steps == int(width)


def test_quantisation_refuses_what_it_cannot_identify():
    wide = _ramp(300.0, 40.0)  # 255 levels or more: no gaps
    assert fit_quantisation(occupied_levels([wide])) is None
    smooth = np.arange(256, dtype=np.uint8).reshape(16, 16)  # every level present
    assert fit_quantisation(occupied_levels([smooth])) is None
    with pytest.raises(ValueError, match="occupied"):
        fit_quantisation(np.ones(10, dtype=bool))
    with pytest.raises(ValueError, match="uint8"):
        occupied_levels([np.zeros((2, 2), dtype=np.int16)])


def test_png_to_hu_inverts_the_window_and_flags_saturation():
    hu = np.arange(-60, 140, dtype=np.float32).reshape(10, 20)
    grey = to_png(hu)
    fit = fit_quantisation(occupied_levels([grey]))
    assert fit is not None
    back = png_to_hu(grey, fit, WINDOW)
    inside = (hu > WINDOW.low) & (hu < WINDOW.high)
    np.testing.assert_array_equal(back.hu[inside], hu[inside])
    assert back.below[hu <= WINDOW.low].all() and not back.below[inside].any()
    assert back.above[hu >= WINDOW.high].all() and not back.above[inside].any()
    with pytest.raises(ValueError, match="width"):
        png_to_hu(grey, fit, WindowPreset(width=80.0, level=40.0))


def test_rewindow_to_the_networks_window_matches_windowing_the_hu():
    hu = np.arange(-60, 140, dtype=np.float32).reshape(10, 20)
    grey = to_png(hu)
    fit = fit_quantisation(occupied_levels([grey]))
    assert fit is not None
    target = WindowPreset(width=80.0, level=40.0)
    np.testing.assert_array_equal(rewindow(grey, fit, WINDOW, target), apply_window(hu, target))


def _patient(shift_hu: float, seed: int) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    slices, boxes = [], []
    for k in range(6):
        hu, _, _ = slice_hu(seed=seed * 10 + k, clot=k in (2, 3))
        slices.append(to_png(hu + shift_hu * (hu > -500) * (hu < 500)))
        box = None
        if k in (2, 3):
            box = np.zeros(hu.shape, dtype=bool)
            box[70:121, 150:201] = True
        boxes.append(box)
    return slices, boxes


def test_anchors_and_level_are_recovered_from_tissue():
    # a cohort shows every step of the window (the real one does); a ramp stands in for that here
    fit = fit_quantisation(occupied_levels([*_patient(0.0, 0)[0], _ramp(120.0, 40.0)]))
    assert fit is not None and fit.width_hu == 120.0
    anchors = []
    for i, shift in enumerate((0.0, 0.0, 4.0, -4.0)):
        slices, boxes = _patient(shift, i)
        anchors.append(measure_anchors(f"p{i}", slices, boxes, fit, min_area_px=5000))
    first = anchors[0]
    assert first.parenchyma == pytest.approx(30 + 20, abs=1.5)  # k = HU - low
    assert first.csf == pytest.approx(7 + 20, abs=3)
    assert first.blood == pytest.approx(65 + 20, abs=2)
    est = estimate_window(anchors, fit)
    assert est.width_hu == 120.0
    # the synthetic tissues sit at the priors' centres (30, 7, 65 HU): the level comes back
    assert est.level_hu == pytest.approx(40.0, abs=2.5)
    assert est.level_sd_hu < 3.0
    assert est.patient_shift_hu["p2"] == pytest.approx(4.0, abs=1.5)
    assert est.patient_shift_hu["p3"] == pytest.approx(-4.0, abs=1.5)
    assert est.patient_window("p2").level == pytest.approx(est.level_hu - est.patient_shift_hu["p2"])


def test_estimate_window_needs_a_measurement():
    fit = fit_quantisation(occupied_levels([_ramp(120.0, 40.0)]))
    assert fit is not None
    with pytest.raises(ValueError, match="anchors"):
        estimate_window([TissueAnchors("p", None, None, None)], fit)


@pytest.mark.shared_data
@pytest.mark.skipif(not (PHE / "images").is_dir(), reason="../shared/data/phe-sich-ct-ids-dev is absent")
def test_real_phe_slices_are_120_hu_wide():
    files = sorted((PHE / "images").glob("0001_*.png"))[:16] + sorted((PHE / "images").glob("0052_*.png"))[:16]
    from ichpipe.pipeline.datasets.phe_sich.phe_reader import read_grey

    images = [read_grey(f) for f in files]
    fit = fit_quantisation(occupied_levels(images))
    assert fit is not None
    assert fit.width_hu == 120.0
    steps = grey_to_steps(images[12], fit)
    assert (steps >= 0).all()  # every grey level of the export is one the map produces
