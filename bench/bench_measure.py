"""Speed of the measurement: planimetric volume + automated ABC/2 of a 40 x 512 x 512 mask.

Run with ``make bench`` (or ``pytest bench/bench_measure.py --benchmark-only``).
"""

from __future__ import annotations

import numpy as np
import pytest

from ichpipe.dicom_io.geometry import VolumeGeometry, compute_geometry
from ichpipe.pipeline.measure.volume import measure_hematoma


@pytest.fixture(scope="module")
def case() -> tuple[np.ndarray, VolumeGeometry]:
    geometry = compute_geometry(
        orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
        positions=np.array([[0.0, 0.0, 5.0 * k] for k in range(40)]),
        pixel_spacing=(0.49, 0.49),
        rows=512,
        columns=512,
    )
    z, y, x = np.ogrid[:40, :512, :512]
    mask = ((z - 20) / 6.0) ** 2 + ((y - 250) / 60.0) ** 2 + ((x - 300) / 90.0) ** 2 <= 1.0
    mask[5:8, 100:110, 100:110] = True  # a second component
    return mask, geometry


def test_measure_40x512x512(benchmark, case: tuple[np.ndarray, VolumeGeometry]) -> None:
    mask, geometry = case
    result = benchmark.pedantic(measure_hematoma, args=(mask, geometry), rounds=10, warmup_rounds=1)
    assert result.abc2.n_components == 2
