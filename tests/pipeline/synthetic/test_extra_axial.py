"""Extra-axial and intraventricular blood and mass effect on a small synthetic head."""

from __future__ import annotations

import numpy as np
import pytest
from extra_axial_support import SPACING, make_head
from scipy import ndimage
from skimage.morphology import convex_hull_image

from ichpipe.pipeline.synthetic.extra_axial import (
    STAGE_HU,
    apply_mass_effect,
    background_noise_sd,
    find_ventricles,
    insert_epidural,
    insert_intraventricular,
    insert_subdural,
    random_extra_axial,
    subdural_for_volume,
)


@pytest.fixture(scope="module")
def head() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return make_head()

def _central_slice(mask: np.ndarray) -> int:
    return int(np.argmax(mask.reshape(mask.shape[0], -1).sum(axis=1)))


def _solidity(mask2d: np.ndarray) -> float:
    """Area over convex-hull area of the largest component: about 1 for a lens, well below for a crescent."""
    labels, _ = ndimage.label(mask2d)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    largest = labels == int(np.argmax(sizes))
    return float(largest.sum() / convex_hull_image(largest).sum())


@pytest.mark.parametrize("stage", ["acute", "subacute", "chronic"])
def test_subdural_is_a_crescent_in_the_intracranial_space_with_its_stage_hu(head, stage):
    hu, intracranial, _ = head
    out, lesion = insert_subdural(hu, intracranial, SPACING, angle_deg=0.0, centre_slice=9.0, thickness_mm=12.0,
                                  arc_deg=140.0, extent_mm=80.0, stage=stage, rng=np.random.default_rng(1))
    assert lesion.kind == "subdural" and lesion.stage == stage
    assert lesion.mask.any()
    assert not (lesion.mask & ~intracranial).any()
    assert lesion.n_slices >= 12  # 80 mm at 5 mm slices
    assert 9.0 <= lesion.max_thickness_mm <= 13.5
    low, high = STAGE_HU[stage]
    painted = out[lesion.mask & (lesion.occupancy > 0.99)]
    assert low - 8 <= float(np.median(painted)) <= high + 8  # band plus the background noise
    assert low <= lesion.hu <= high
    # outside the lesion (and its one-voxel edge) nothing changed
    untouched = lesion.occupancy == 0
    np.testing.assert_array_equal(out[untouched], hu[untouched])


def test_subdural_inner_border_is_concave_unlike_the_epidural_lens(head):
    """Fails if the crescent were convex (lens-like): its solidity would then be near 1."""
    hu, intracranial, _ = head
    _, sdh = insert_subdural(hu, intracranial, SPACING, angle_deg=0.0, centre_slice=9.0, thickness_mm=10.0,
                             arc_deg=150.0, extent_mm=80.0)
    _, edh = insert_epidural(hu, intracranial, SPACING, angle_deg=180.0, centre_slice=9, thickness_mm=20.0,
                             length_mm=70.0, extent_mm=40.0)
    crescent = _solidity(sdh.mask[_central_slice(sdh.mask)])
    lens = _solidity(edh.mask[_central_slice(edh.mask)])
    assert crescent < 0.7
    assert lens > 0.85
    # the chord between the crescent's tips runs through brain, not through the lesion
    plane = sdh.mask[_central_slice(sdh.mask)]
    rows, cols = np.nonzero(plane)
    tips = [np.argmin(rows), np.argmax(rows)]
    (r0, c0), (r1, c1) = [(rows[i], cols[i]) for i in tips]
    t = np.linspace(0.2, 0.8, 50)
    chord = plane[np.rint(r0 + t * (r1 - r0)).astype(int), np.rint(c0 + t * (c1 - c0)).astype(int)]
    assert chord.mean() < 0.2


def test_epidural_lens_is_confined_thick_and_hyperdense(head):
    hu, intracranial, _ = head
    _, edh = insert_epidural(hu, intracranial, SPACING, angle_deg=180.0, centre_slice=9, thickness_mm=20.0,
                             length_mm=70.0, extent_mm=40.0, rng=np.random.default_rng(3))
    assert edh.mask.any() and not (edh.mask & ~intracranial).any()
    assert 15.0 <= edh.max_thickness_mm <= 21.0
    assert 60.0 <= edh.hu <= 90.0
    assert edh.n_slices <= 9  # 40 mm cranio-caudal extent at 5 mm
    # the lens sits against the table at the requested side (columns below the centre for 180 degrees)
    assert np.argwhere(edh.mask)[:, 2].mean() < 40


def test_subdural_for_volume_hits_the_requested_volume(head):
    hu, intracranial, _ = head
    _, lesion = subdural_for_volume(hu, intracranial, SPACING, volume_ml=30.0, tolerance=0.1, angle_deg=90.0,
                                    centre_slice=9.0, arc_deg=160.0, extent_mm=90.0)
    assert 27.0 <= lesion.volume_ml <= 33.0
    with pytest.raises(ValueError, match="volume_ml"):
        subdural_for_volume(hu, intracranial, SPACING, volume_ml=290.0, angle_deg=90.0, centre_slice=9.0,
                            arc_deg=45.0, extent_mm=20.0)


def test_partial_volume_edge_and_background_noise_are_kept(head):
    hu, intracranial, _ = head
    out, lesion = insert_subdural(hu, intracranial, SPACING, angle_deg=45.0, centre_slice=9.0, thickness_mm=15.0,
                                  arc_deg=160.0, extent_mm=100.0, stage="acute", level_hu=65.0)
    edge = (lesion.occupancy > 0.05) & (lesion.occupancy < 0.95)
    assert edge.sum() > 0.2 * lesion.mask.sum() ** (2 / 3)
    core = ndimage.binary_erosion(lesion.occupancy > 0.999, iterations=2)
    brain = ndimage.binary_erosion(intracranial, iterations=3) & ~ndimage.binary_dilation(lesion.mask, iterations=3)
    noise_core = background_noise_sd(out, core)
    noise_brain = background_noise_sd(out, brain)
    assert 0.6 * noise_brain <= noise_core <= 1.6 * noise_brain
    quiet, _, _ = make_head(noise=0.0)
    out_quiet, _ = insert_subdural(quiet, intracranial, SPACING, angle_deg=45.0, centre_slice=9.0, thickness_mm=15.0,
                                   arc_deg=160.0, extent_mm=100.0, stage="acute", level_hu=65.0)
    assert background_noise_sd(out_quiet, core) < 0.5 * noise_core  # noise comes from the background only


def test_mixed_subdural_has_a_dependent_acute_layer(head):
    hu, intracranial, _ = head
    out, lesion = insert_subdural(hu, intracranial, SPACING, angle_deg=0.0, centre_slice=9.0, thickness_mm=14.0,
                                  arc_deg=180.0, extent_mm=90.0, stage="mixed", hematocrit_fraction=0.3)
    rows = np.argwhere(lesion.mask)[:, 1]
    values = out[lesion.mask]
    posterior = values[rows >= np.quantile(rows, 0.8)]
    anterior = values[rows <= np.quantile(rows, 0.2)]
    assert np.median(posterior) > np.median(anterior) + 25


def test_find_ventricles_and_intraventricular_cast_and_layer(head):
    hu, intracranial, true_ventricles = head
    found = find_ventricles(hu, intracranial, SPACING)
    overlap = (found & true_ventricles).sum() / true_ventricles.sum()
    assert overlap > 0.6
    assert (found & ~true_ventricles).sum() < 0.3 * found.sum()
    _, cast = insert_intraventricular(hu, intracranial, SPACING, found, mode="cast")
    assert cast.mask.any() and not (cast.mask & ~ndimage.binary_dilation(found)).any()
    out, layer = insert_intraventricular(hu, intracranial, SPACING, found, mode="layer", fill_fraction=0.3,
                                         level_hu=70.0)
    assert 0.15 * cast.volume_ml <= layer.volume_ml <= 0.45 * cast.volume_ml
    rows_blood = np.argwhere(layer.mask)[:, 1]
    rows_vent = np.argwhere(found)[:, 1]
    assert rows_blood.mean() > rows_vent.mean()  # dependent (posterior) part
    # flat fluid level: every voxel of the ventricles posterior to the level is blood
    level = rows_blood.min()
    below = found & (np.indices(found.shape)[1] > level + 1)
    assert (layer.mask[below]).mean() > 0.9
    assert 55.0 <= float(np.median(out[layer.mask & (layer.occupancy > 0.99)])) <= 85.0


def test_mass_effect_shifts_midline_in_proportion_and_keeps_the_skull(head):
    hu, intracranial, ventricles = head
    shifts = []
    for thickness in (6.0, 14.0):
        _, sdh = insert_subdural(hu, intracranial, SPACING, angle_deg=0.0, centre_slice=9.0,
                                 thickness_mm=thickness, arc_deg=150.0, extent_mm=90.0)
        moved, (moved_vent,), effect = apply_mass_effect(hu, intracranial, SPACING, sdh.mask, mm_per_ml=0.15,
                                                         masks=(ventricles,))
        requested = min(0.15 * sdh.volume_ml, 15.0)
        assert 1.0 <= effect.midline_shift_mm <= requested * 1.001
        assert effect.peak_mm <= sdh.max_thickness_mm + 1.0  # never more than the space the lesion takes
        np.testing.assert_array_equal(moved[~intracranial], hu[~intracranial])
        # lesion on the +column side (angle 0): ventricles move towards -column
        before = np.argwhere(ventricles)[:, 2].mean()
        after = np.argwhere(moved_vent)[:, 2].mean()
        assert after < before
        assert (before - after) * SPACING[2] == pytest.approx(effect.midline_shift_mm, rel=0.5)
        shifts.append(before - after)
    assert shifts[1] > shifts[0]


def test_random_extra_axial_draws_valid_lesions(head):
    hu, intracranial, _ = head
    rng = np.random.default_rng(7)
    kinds = set()
    for _ in range(6):
        out, lesion, effect, _ = random_extra_axial(hu, intracranial, SPACING, rng)
        kinds.add(lesion.kind)
        assert lesion.mask.any() and not (lesion.mask & ~intracranial).any()
        assert out.shape == hu.shape and out.dtype == np.float32
        if lesion.kind != "intraventricular":
            assert effect is not None
    assert len(kinds) >= 2


def test_invalid_arguments_are_refused(head):
    hu, intracranial, ventricles = head
    with pytest.raises(ValueError, match="thickness_mm"):
        insert_subdural(hu, intracranial, SPACING, angle_deg=0.0, centre_slice=9.0, thickness_mm=25.0,
                        arc_deg=120.0, extent_mm=60.0)
    with pytest.raises(ValueError, match="intracranial"):
        insert_subdural(hu, intracranial[:, :10], SPACING, angle_deg=0.0, centre_slice=9.0, thickness_mm=5.0,
                        arc_deg=120.0, extent_mm=60.0)
    with pytest.raises(ValueError, match="spacing"):
        insert_epidural(hu, intracranial, (0.0, 1.0, 1.0), angle_deg=0.0, centre_slice=9, thickness_mm=10.0,
                        length_mm=50.0, extent_mm=30.0)
    with pytest.raises(ValueError, match="ventricles"):
        insert_intraventricular(hu, intracranial, SPACING, np.zeros_like(ventricles))
    with pytest.raises(ValueError, match="lesion"):
        apply_mass_effect(hu, intracranial, SPACING, np.zeros_like(ventricles))


def _fine_noisy_head(noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float, float]]:
    """A head at 0.75 mm pixels with 10 HU noise and a 2 mm CSF fissure down the midline."""
    spacing = (5.0, 0.75, 0.75)
    shape = (6, 220, 180)
    z, y, x = np.indices(shape, dtype=np.float64)
    dz, dy, dx = (z - 2.5) * spacing[0], (y - 109.5) * spacing[1], (x - 89.5) * spacing[2]
    intracranial = np.sqrt((dx / 60.0) ** 2 + (dy / 76.0) ** 2 + (dz / 58.0) ** 2) < 1.0
    hu = np.where(np.sqrt((dx / 66.0) ** 2 + (dy / 82.0) ** 2 + (dz / 64.0) ** 2) < 1.0, 1200.0, -1000.0)
    hu[intracranial] = 28.0
    ventricles = np.zeros(shape, dtype=bool)
    for side in (-1.0, 1.0):
        ventricles |= ((dx - side * 9.0) / 5.0) ** 2 + ((dy - 5.0) / 26.0) ** 2 + (dz / 14.0) ** 2 < 1.0
    ventricles &= intracranial
    fissure = intracranial & (np.abs(dx) < 1.0) & ~ventricles
    hu[ventricles | fissure] = 6.0
    hu = hu + np.random.default_rng(3).normal(0.0, noise, size=shape) * (hu > -500)
    return hu.astype(np.float32), intracranial, ventricles, spacing


def test_find_ventricles_ignores_noise_and_the_fissure_at_fine_pixels():
    hu, intracranial, true_ventricles, spacing = _fine_noisy_head(noise=10.0)
    found = find_ventricles(hu, intracranial, spacing)
    assert (found & true_ventricles).sum() > 0.8 * true_ventricles.sum()
    # no speckle in the noisy white matter, nothing down the fissure beyond the ventricles' edge
    outside = found & ~ndimage.binary_dilation(true_ventricles, iterations=2)
    assert outside.sum() < 0.02 * found.sum()
    # a slice near the vertex (small intracranial area, CSF over the brain cut obliquely) is no ventricle
    yy, xx = np.indices(hu.shape[1:])
    cap = np.hypot((yy - 109.5) * spacing[1], (xx - 89.5) * spacing[2]) < 25.0
    top = np.where(cap, 6.0, -1000.0).astype(np.float32)[None]
    found = find_ventricles(np.concatenate([hu, top]), np.concatenate([intracranial, cap[None]]), spacing)
    assert found[:-1].any() and not found[-1].any()
    with pytest.raises(ValueError, match=r"'min_width_mm' must be between"):
        find_ventricles(hu, intracranial, spacing, min_width_mm=-1.0)
