"""Flag ``blood_missed_by_network``: the baseline's pieces of blood that the network does not touch at all."""

from __future__ import annotations

import numpy as np
import pytest
from anatomy_support import PhantomCase, with_hu

from ichpipe import load_config
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume
from ichpipe.pipeline.quality.blood_checks import UntouchedPieces, check_untouched_blood, untouched_pieces

CODE = "blood_missed_by_network"


class _Sees:
    """A network stand-in that finds exactly ``mask`` (the phantom's own bleed, not the one painted beside it)."""

    name = "partial_network"

    def __init__(self, mask: np.ndarray) -> None:
        self.mask = mask

    def segment(self, volume) -> np.ndarray:
        return self.mask.copy()

    def describe(self) -> dict:
        return {"name": self.name, "kind": "network"}


def test_only_pieces_with_no_voxel_found_count() -> None:
    baseline = np.zeros((4, 8, 8), dtype=bool)
    baseline[0:2, 0:3, 0:3] = True   # 18 voxels, one of them found: touched, not counted whatever its edge
    baseline[2:4, 5:8, 5:8] = True   # 18 voxels, none found
    baseline[0, 7, 0] = True         # one voxel alone: under the minimum piece
    found = np.zeros_like(baseline)
    found[0, 0, 0] = True
    pieces = untouched_pieces(found, baseline, 0.1, min_piece_ml=0.5)
    assert pieces == UntouchedPieces(pytest.approx(1.8), (2, 3))
    assert pieces.to_dict() == {"baseline_only_ml": 1.8, "slices": [2, 3]}
    assert untouched_pieces(found, baseline, 0.1, min_piece_ml=0.05).ml == pytest.approx(1.9)
    # a piece on a skipped slice (the skull base's, which skull_base_blood_missed measures) is not counted
    assert untouched_pieces(found, baseline, 0.1, min_piece_ml=0.5, skip_slices=[3]) == UntouchedPieces(0.0, ())
    assert untouched_pieces(baseline, baseline, 0.1).ml == 0.0
    with pytest.raises(ValueError, match="Arguments 'found' and 'baseline' must have one shape"):
        untouched_pieces(found, baseline[:2], 0.1)


def test_check_thresholds() -> None:
    assert check_untouched_blood(None) == []
    assert check_untouched_blood(UntouchedPieces(0.99, (4,)), min_ml=1.0) == []
    assert check_untouched_blood(UntouchedPieces(5.0, (4,)), min_ml=None) == []
    (flag,) = check_untouched_blood(UntouchedPieces(1.25, (4, 5, 6)), min_ml=1.0)
    assert flag.code == CODE and flag.value == 1.25 and flag.threshold == 1.0
    assert "1.2 mL of blood on slices 5-7" in flag.message
    assert "head that moved" in flag.message  # the baseline reads motion streaks as blood (bench/head_motion.py)


def test_a_second_bleed_the_network_misses_is_flagged(medium_case: PhantomCase) -> None:
    bleed = medium_case.labels > 0
    # a 70 HU ball (radius 8 mm) on a slice of the head's upper half, away from the phantom's bleed
    present = np.flatnonzero(medium_case.intracranial.any(axis=(1, 2)))
    k = int(present[0] + 3 * (present[-1] - present[0]) // 4)
    far = medium_case.intracranial[k] & ~np.any(bleed, axis=0)
    rows, cols = np.nonzero(far)
    cy, cx = float(np.median(rows)), float(np.median(cols))
    zz, yy, xx = np.indices(bleed.shape)
    step = float(medium_case.thickness[0])
    ball = (((zz - k) * step) ** 2 + ((yy - cy) * medium_case.spacing[0]) ** 2
            + ((xx - cx) * medium_case.spacing[1]) ** 2) <= 8.0**2
    ball &= medium_case.intracranial & ~bleed
    hu = medium_case.volume.hu.copy()
    hu[ball] = 70.0
    volume = with_hu(medium_case, hu)
    config = load_config(quality={"cross_check": "threshold"})
    result = analyse_volume(volume, _Sees(bleed & medium_case.intracranial), config)
    assert CODE in result.quality.codes
    measured = result.quality.measurements["untouched_by_network"]
    assert measured["baseline_only_ml"] >= 1.0 and k in measured["slices"]
    # the network that finds both is quiet
    both = analyse_volume(volume, _Sees((bleed | ball) & medium_case.intracranial), config)
    assert CODE not in both.quality.codes
    # off: not measured
    off = load_config(quality={"cross_check": "threshold", "missed_blood": {"min_ml": None}})
    quiet = analyse_volume(volume, _Sees(bleed & medium_case.intracranial), off)
    assert CODE not in quiet.quality.codes and "untouched_by_network" not in quiet.quality.measurements
