"""Flag ``blood_at_skull_missed``: acute-blood density against the inner table that the segmenter left out."""

from __future__ import annotations

import numpy as np
import pytest
from anatomy_support import PhantomCase, with_hu

from ichpipe.pipeline.config.quality_config import BloodAtSkullConfig, QualityConfig
from ichpipe.pipeline.measure.volume import measure_hematoma
from ichpipe.pipeline.quality.assess import assess_quality
from ichpipe.pipeline.quality.inner_table import check_blood_at_skull, unsegmented_at_skull
from ichpipe.pipeline.segment.intracranial import find_intracranial
from ichpipe.pipeline.segment.segmenter import SegmentationResult


def _crescent(case: PhantomCase, thickness_mm: float) -> np.ndarray:
    """A band ``thickness_mm`` deep under the inner table, over a quarter of the head, on the middle slices."""
    frame = case.head_frame
    angle = np.arctan2(frame[..., 1], frame[..., 0])
    inside = (case.signed_distance < 0) & (case.signed_distance > -thickness_mm)
    n = case.hu.shape[0]
    middle = np.zeros(case.hu.shape, dtype=bool)
    middle[n // 2 - 3 : n // 2 + 3] = True
    return inside & middle & (np.abs(angle - 0.5) < np.pi / 4)


def _painted(case: PhantomCase, band: np.ndarray, hu_value: float) -> np.ndarray:
    rng = np.random.default_rng(5)
    hu = case.hu.copy()
    hu[band] = (hu_value + rng.normal(0.0, 3.0, int(band.sum()))).astype(np.float32)
    return hu


def test_quiet_on_a_normal_head(medium_normal: PhantomCase) -> None:
    space = find_intracranial(medium_normal.hu, medium_normal.spacing, medium_normal.thickness)
    missed, _ = unsegmented_at_skull(medium_normal.hu, space.mask, np.zeros(space.mask.shape, dtype=bool),
                                     medium_normal.spacing, medium_normal.thickness,
                                     bone_hu=space.levels.bone_threshold_hu)
    assert missed < 0.2


def test_an_unsegmented_subdural_band_is_flagged_and_measured(medium_normal: PhantomCase) -> None:
    band = _crescent(medium_normal, 7.0)
    volume = with_hu(medium_normal, _painted(medium_normal, band, 72.0))
    space = find_intracranial(volume.hu, medium_normal.spacing, medium_normal.thickness)
    nothing = np.zeros(band.shape, dtype=bool)
    report = assess_quality(volume, space, SegmentationResult(mask=nothing))
    assert "blood_at_skull_missed" in report.codes
    painted_ml = measure_hematoma(band & space.mask, volume.geometry).volume_ml
    # the opening trims the band's ends and the partial-volume rim: most of it, never more than it
    assert 0.6 * painted_ml <= report.measurements["unsegmented_at_skull_ml"] <= 1.05 * painted_ml
    # segmented, it is quiet; so is a band thinner than min_thickness_mm (partial volume, cortex)
    assert "blood_at_skull_missed" not in assess_quality(volume, space, SegmentationResult(mask=band)).codes
    thin = _crescent(medium_normal, 1.5)
    thin_volume = with_hu(medium_normal, _painted(medium_normal, thin, 72.0))
    thin_space = find_intracranial(thin_volume.hu, medium_normal.spacing, medium_normal.thickness)
    assert "blood_at_skull_missed" not in assess_quality(thin_volume, thin_space,
                                                         SegmentationResult(mask=nothing)).codes
    # a short pocket against the table (partial volume, a venous sinus) is not a collection
    pocket = band & (np.cumsum(band, axis=2) <= 8)  # the first 8 voxels (7 mm) of each row of the band
    pocket &= np.cumsum(pocket.any(axis=2), axis=1)[..., None] <= 10  # ... on its first 10 rows
    pocket_volume = with_hu(medium_normal, _painted(medium_normal, pocket, 72.0))
    pocket_space = find_intracranial(pocket_volume.hu, medium_normal.spacing, medium_normal.thickness)
    pocket_ml, _ = unsegmented_at_skull(pocket_volume.hu, pocket_space.mask, nothing, medium_normal.spacing,
                                        medium_normal.thickness)
    assert pocket.any() and pocket_ml == 0.0
    # at grey-matter density (an isodense collection) it cannot tell, and says nothing
    iso_volume = with_hu(medium_normal, _painted(medium_normal, band, 40.0))
    iso_space = find_intracranial(iso_volume.hu, medium_normal.spacing, medium_normal.thickness)
    assert "blood_at_skull_missed" not in assess_quality(iso_volume, iso_space,
                                                         SegmentationResult(mask=nothing)).codes
    # the threshold is the config's
    strict = QualityConfig(blood_at_skull=BloodAtSkullConfig(min_ml=1e6))
    assert "blood_at_skull_missed" not in assess_quality(volume, space, SegmentationResult(mask=nothing),
                                                         config=strict).codes


def test_messages_and_bad_arguments() -> None:
    (flag,) = check_blood_at_skull(3.46, {11: 1.5, 12: 1.96}, min_ml=1.0)
    assert flag.message.startswith("3.5 mL of acute-blood density against the inner table (slices 12-13)")
    assert check_blood_at_skull(0.99, {3: 0.99}, min_ml=1.0) == []
    cube = np.zeros((2, 8, 8), dtype=np.float32)
    with pytest.raises(ValueError, match=r"'hu', 'intracranial' and 'blood' must be 3D of one shape"):
        unsegmented_at_skull(cube, np.zeros((2, 8, 7), dtype=bool), np.zeros((2, 8, 8), dtype=bool), (1.0, 1.0), 5.0)
    with pytest.raises(ValueError, match=r"'blood_hu' must be \(low, high\)"):
        unsegmented_at_skull(cube, cube > 0, cube > 0, (1.0, 1.0), 5.0, blood_hu=(90.0, 55.0))
    with pytest.raises(ValueError, match=r"'blood_hu' must be \[low, high\]"):
        BloodAtSkullConfig(blood_hu=(90.0, 55.0))


def test_a_wall_cut_obliquely_by_the_slab_is_not_counted(medium_normal: PhantomCase) -> None:
    """Where a neighbouring slice is outside the intracranial space (skull base, posterior fossa), a dense band
    along the table is beam hardening or a venous sinus as often as blood: that slice's band is not counted,
    the other slices' is unchanged."""
    band = _crescent(medium_normal, 7.0)
    hu = _painted(medium_normal, band, 72.0)
    space = find_intracranial(hu, medium_normal.spacing, medium_normal.thickness).mask
    nothing = np.zeros(band.shape, dtype=bool)
    args = (medium_normal.spacing, medium_normal.thickness)
    full, per_slice = unsegmented_at_skull(hu, space, nothing, *args)
    assert full > 1.0 and len(per_slice) >= 4
    first = sorted(per_slice)[0]
    oblique = space.copy()
    oblique[first - 1] &= ~band[first]  # below the band's first slice, its pixels lie outside the space
    _, cut_per_slice = unsegmented_at_skull(hu, oblique, nothing, *args)
    assert set(cut_per_slice) == set(per_slice) - {first}
    assert all(cut_per_slice[k] == pytest.approx(per_slice[k]) for k in cut_per_slice)
