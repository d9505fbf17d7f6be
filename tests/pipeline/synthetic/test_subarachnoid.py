"""Subarachnoid blood painted into the sulci of a head (a small synthetic head with sulci)."""

from __future__ import annotations

import numpy as np
import pytest
from extra_axial_support import SPACING, make_head

from ichpipe.pipeline.synthetic.extra_axial import random_extra_axial
from ichpipe.pipeline.synthetic.lesion_common import distance_to_table, polar
from ichpipe.pipeline.synthetic.subarachnoid import find_sulcal_csf, insert_subarachnoid


def _with_sulci(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The support head with 24 radial sulci (3 mm wide, 14 mm deep from the table) and a wide CSF
    pocket (an old infarct, 15 mm across) that is not a sulcus."""
    hu, intracranial, _ventricles = make_head(seed, noise=2.0)
    angle, _ = polar(intracranial, SPACING)
    depth = distance_to_table(intracranial, SPACING)
    sulci = np.zeros(hu.shape, dtype=bool)
    _, y, x = np.indices(hu.shape)
    for a in np.linspace(-np.pi, np.pi, 24, endpoint=False):
        # distance of each pixel from the ray at angle a through the slice centre, in mm
        off = np.abs(np.sin(angle - a)) * np.hypot((y - 63.5) * SPACING[1], (x - 63.5) * SPACING[2])
        sulci |= (off < 1.5) & (np.cos(angle - a) > 0) & (depth > 0) & (depth < 14.0)
    sulci &= intracranial
    pocket = ((y - 63.5) ** 2 + (x - 85.5) ** 2 < 5.0**2) & intracranial  # deeper than the sulci
    hu = hu.copy()
    hu[sulci | pocket] = 6.0 + np.random.default_rng(seed).normal(0.0, 2.0, size=int((sulci | pocket).sum()))
    return hu, intracranial, sulci, pocket


@pytest.fixture(scope="module")
def sulcal_head():
    return _with_sulci()


def test_find_sulcal_csf_finds_sulci_not_wide_csf_or_ventricles(sulcal_head):
    hu, intracranial, sulci, pocket = sulcal_head
    share = find_sulcal_csf(hu, intracranial, SPACING)
    assert share.dtype == np.float32 and share.min() >= 0.0 and share.max() <= 1.0
    found = share >= 0.5
    wide = intracranial.sum(axis=(1, 2)) >= 0.4 * intracranial.sum(axis=(1, 2)).max()
    assert (found & sulci).sum() >= 0.6 * (sulci & wide[:, None, None]).sum()
    assert not (found & pocket).any()
    assert (found & ~sulci).sum() <= 0.25 * found.sum()  # the partial-volume edge only


@pytest.mark.parametrize("noise", [2.0, 8.0])
def test_a_head_without_sulci_has_no_sulcal_csf_and_refuses_subarachnoid_blood(noise):
    hu, intracranial, _ventricles = make_head(0, noise=noise)
    assert not (find_sulcal_csf(hu, intracranial, SPACING) >= 0.5).any()  # noise is not a sulcus
    with pytest.raises(ValueError, match="No sulcal CSF"):
        insert_subarachnoid(hu, intracranial, SPACING, pattern="diffuse")


def test_diffuse_blood_fills_the_sulci_at_its_level_and_keeps_the_rest(sulcal_head):
    hu, intracranial, sulci, pocket = sulcal_head
    out, lesion = insert_subarachnoid(hu, intracranial, SPACING, pattern="diffuse", depth_mm=30.0,
                                      spared_fraction=0.0, level_hu=62.0, rng=np.random.default_rng(1))
    assert lesion.kind == "subarachnoid" and lesion.stage == "diffuse" and lesion.hu == 62.0
    assert lesion.volume_ml == pytest.approx(lesion.mask.sum() * np.prod(SPACING) / 1000.0)
    assert (lesion.mask & sulci).sum() >= 0.9 * lesion.mask.sum()
    assert abs(float(np.median(out[lesion.mask & sulci])) - 62.0) < 6.0  # CSF replaced by blood
    untouched = lesion.occupancy == 0
    np.testing.assert_array_equal(out[untouched], hu[untouched])
    assert not (lesion.mask & pocket).any()


def test_convexity_blood_stays_in_its_sector_and_slices(sulcal_head):
    hu, intracranial, _sulci, _pocket = sulcal_head
    _out, lesion = insert_subarachnoid(hu, intracranial, SPACING, pattern="convexity", angle_deg=0.0, arc_deg=90.0,
                                       centre_slice=10.0, extent_mm=20.0, spared_fraction=0.0)
    angle, _ = polar(intracranial, SPACING)
    assert lesion.mask.any()
    off = np.degrees(np.abs(np.angle(np.exp(1j * angle[lesion.mask]))))
    assert off.max() <= 45.0 + 1e-6
    slices = np.flatnonzero(lesion.mask.any(axis=(1, 2)))
    assert slices.min() >= 8 and slices.max() <= 12


def test_spared_fraction_leaves_sulci_as_csf(sulcal_head):
    hu, intracranial, _sulci, _pocket = sulcal_head
    kwargs = {"pattern": "diffuse", "depth_mm": 30.0, "rng": np.random.default_rng(3)}
    _, full = insert_subarachnoid(hu, intracranial, SPACING, spared_fraction=0.0, **kwargs)
    _, spared = insert_subarachnoid(hu, intracranial, SPACING, spared_fraction=0.5,
                                    **{**kwargs, "rng": np.random.default_rng(3)})
    assert 0.3 * full.volume_ml < spared.volume_ml < 0.8 * full.volume_ml


def test_random_extra_axial_paints_subarachnoid_blood_without_mass_effect(sulcal_head):
    hu, intracranial, _sulci, _pocket = sulcal_head
    out, lesion, effect, masks = random_extra_axial(hu, intracranial, SPACING, np.random.default_rng(5),
                                                    kind="subarachnoid")
    assert lesion.kind == "subarachnoid" and lesion.stage in ("convexity", "diffuse") and lesion.mask.any()
    assert effect is None and masks == ()
    assert out.shape == hu.shape


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"pattern": "basal"}, "'pattern'"),
        ({"depth_mm": 2.0}, "'depth_mm'"),
        ({"spared_fraction": 0.95}, "'spared_fraction'"),
        ({"arc_deg": 5.0}, "'arc_deg'"),
        ({"csf_share": np.zeros((2, 2, 2), dtype=np.float32)}, "'csf_share'"),
    ],
)
def test_invalid_arguments_are_refused(sulcal_head, kwargs, match):
    hu, intracranial, _sulci, _pocket = sulcal_head
    with pytest.raises(ValueError, match=match):
        insert_subarachnoid(hu, intracranial, SPACING, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"csf_max_hu": 40.0}, "'csf_max_hu'"), ({"max_width_mm": 0.5}, "'max_width_mm'"),
     ({"min_area_mm2": -1.0}, "'min_area_mm2'"), ({"min_area_fraction": 1.5}, "'min_area_fraction'")],
)
def test_find_sulcal_csf_refuses_invalid_arguments(sulcal_head, kwargs, match):
    hu, intracranial, _sulci, _pocket = sulcal_head
    with pytest.raises(ValueError, match=match):
        find_sulcal_csf(hu, intracranial, SPACING, **kwargs)
