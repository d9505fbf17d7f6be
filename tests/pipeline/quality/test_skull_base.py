"""Flag ``skull_base_blood_missed``: the baseline finds blood beyond a failed slice that the network did not."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from anatomy_support import PhantomCase, open_ring_on, with_hu

from ichpipe import load_config
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume
from ichpipe.pipeline.quality.blood_checks import check_skull_base_missed, skull_base_missed_ml

CODE = "skull_base_blood_missed"


class _Blind:
    """A network stand-in that finds nothing (the default network on the posterior fossa's painted bleeds)."""

    name = "blind_network"

    def segment(self, volume) -> np.ndarray:
        return np.zeros(volume.hu.shape, dtype=bool)

    def describe(self) -> dict:
        return {"name": self.name, "kind": "network"}


def test_missed_ml_counts_the_baseline_pieces_on_the_listed_slices() -> None:
    found = np.zeros((5, 5, 5), dtype=bool)
    baseline = np.zeros_like(found)
    baseline[0, :2, :] = True   # a piece of 10 voxels on slice 0, 3 of them also found
    found[0, 0, :3] = True
    baseline[3:, 4, :] = True   # a piece of 10 voxels on slices 3-4, none on the listed slices
    assert skull_base_missed_ml(found, baseline, [0, 1], 0.1) == pytest.approx(0.7)
    assert skull_base_missed_ml(found, baseline, [], 0.1) == 0.0
    assert skull_base_missed_ml(found, baseline, [0, 3], [0.1, 1.0, 1.0, 1.0, 1.0]) == pytest.approx(10.7)
    # a piece running on above the listed slices counts whole
    baseline[1, 1, :] = True
    baseline[2, 1, :] = True
    assert skull_base_missed_ml(found, baseline, [0], 0.1) == pytest.approx(1.7)
    with pytest.raises(ValueError, match="Arguments 'found' and 'baseline' must have one shape"):
        skull_base_missed_ml(found, baseline[:2], [0], 0.1)


def test_check_thresholds() -> None:
    assert check_skull_base_missed(None) == []
    assert check_skull_base_missed(0.99, min_ml=1.0) == []
    assert check_skull_base_missed(5.0, min_ml=None) == []
    (flag,) = check_skull_base_missed(1.2, min_ml=1.0)
    assert flag.code == CODE and flag.value == 1.2 and flag.threshold == 1.0
    assert "1.2 mL" in flag.message


def test_a_bleed_beyond_a_failed_slice_missed_by_the_network_is_flagged(medium_case: PhantomCase) -> None:
    present = np.flatnonzero(medium_case.intracranial.any(axis=(1, 2)))
    z = int(present[0] + (present[-1] - present[0]) // 4)
    hu = open_ring_on(medium_case, z)
    # a 70 HU ball (radius 7 mm) two slices below the failed one, where no phantom bleed is
    k = z - 2
    cy, cx = (float(c.mean()) for c in np.nonzero(medium_case.intracranial[k]))
    zz, rows, cols = np.indices(hu.shape)
    step = float(medium_case.thickness[0])
    ball = (((zz - k) * step) ** 2 + ((rows - cy) * medium_case.spacing[0]) ** 2
            + ((cols - cx) * medium_case.spacing[1]) ** 2) <= 7.0**2
    ball &= medium_case.intracranial & (medium_case.labels == 0)
    hu[ball] = 70.0
    volume = with_hu(medium_case, hu)
    config = load_config(quality={"cross_check": "threshold"})
    flagged = analyse_volume(volume, _Blind(), config)
    assert k in flagged.intracranial.joined_slices
    assert CODE in flagged.quality.codes
    assert flagged.quality.measurements["skull_base"]["baseline_only_ml"] >= 1.0
    # the former finder lost those slices: the baseline's call there was cut away, and nothing said so
    former = replace(config, anatomy=replace(config.anatomy, max_failed_run_mm=None))
    silent = analyse_volume(volume, _Blind(), former)
    assert CODE not in silent.quality.codes and "skull_base" not in silent.quality.measurements
    assert silent.quality.measurements["volumes_ml"]["threshold"] < flagged.quality.measurements["volumes_ml"][
        "threshold"] - 1.0
    # off, and below the bar
    off = load_config(quality={"cross_check": "threshold", "skull_base": {"min_ml": None}})
    assert CODE not in analyse_volume(volume, _Blind(), off).quality.codes
