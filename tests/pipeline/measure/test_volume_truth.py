"""Volumes on stacks with missing slices and uneven spacing, against the volume of a continuous solid.

The truth here never uses the reader's thickness rule: it is the integral, over the
slab the acquisition planned, of the solid's cross-section. The masks are the solid
sampled at the slices that are left. Two solids make the truth exact:

- a wedge whose cross-section grows linearly along the normal: any reader whose
  slices tile the planned slab and interpolate a missing stretch between its two
  neighbours integrates a linear profile exactly, so the tolerance is rounding only;
- a prism (constant cross-section) on an uneven two-protocol stack, where the
  slab runs from half the first block's spacing below the first slice to half the
  last block's spacing above the last one (what the headers' SliceThickness says).

An end slice whose only neighbour lies across a gap used to be given the whole gap
as its thickness, reaching half a gap past the scanned slab: these tests fail on
that rule by the area of the end slice times half the gap minus half a spacing.
"""

from __future__ import annotations

import numpy as np
import pytest

from ichpipe.dicom_io.geometry import VolumeGeometry, compute_geometry
from ichpipe.pipeline.measure.volume import measure_hematoma

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
PIXEL = (0.5, 0.8)  # row spacing, column spacing (mm)


def stack(offsets: np.ndarray, *, size: tuple[int, int] = (24, 48)) -> VolumeGeometry:
    positions = np.array([[0.0, 0.0, float(z)] for z in offsets])
    return compute_geometry(orientation=AXIAL, positions=positions, pixel_spacing=PIXEL, rows=size[0],
                            columns=size[1])


def wedge_width(z: np.ndarray | float, spacing: float) -> np.ndarray:
    """Width in pixel columns of the wedge's cross-section at ``z`` (mm along the normal): 6 + 2 z / spacing."""
    return 6.0 + 2.0 * np.asarray(z, dtype=np.float64) / spacing


ROWS = 10  # the wedge's cross-section is ROWS pixel rows high


def wedge_volume_ml(low: float, high: float, spacing: float) -> float:
    """Integral of the wedge's cross-section from ``low`` to ``high`` (analytic, mL)."""
    integral_width = 6.0 * (high - low) + (high**2 - low**2) / spacing  # of 6 + 2 z / s, in pixel columns x mm
    return ROWS * PIXEL[0] * integral_width * PIXEL[1] / 1000.0


def wedge_mask(geo: VolumeGeometry, spacing: float) -> np.ndarray:
    widths = wedge_width(geo.offsets_mm, spacing)
    assert np.allclose(widths, np.round(widths)), "sample the wedge where its width is a whole number of pixels"
    mask = np.zeros((geo.n_slices, geo.rows, geo.columns), dtype=bool)
    for k, w in enumerate(np.round(widths).astype(int)):
        mask[k, 2 : 2 + ROWS, 1 : 1 + w] = True
    return mask


@pytest.mark.parametrize("dropped", [(), (6,), (1,), (13,), (1, 2), (12, 13), (1, 7, 13)])
def test_wedge_on_a_stack_with_missing_slices_measures_its_analytic_volume(dropped: tuple[int, ...]) -> None:
    spacing, n = 5.0, 15
    planned = np.arange(n) * spacing
    geo = stack(np.delete(planned, list(dropped)))
    assert geo.missing_slices == len(dropped)
    truth = wedge_volume_ml(planned[0] - spacing / 2, planned[-1] + spacing / 2, spacing)
    measured = measure_hematoma(wedge_mask(geo, spacing), geo).volume_ml
    assert measured == pytest.approx(truth, rel=1e-12)


@pytest.mark.parametrize("block_step", [5.5, 1.08])  # contiguous blocks; GE's overlapping 1.08 mm step
@pytest.mark.parametrize("dropped", [(), (14,), (8,), (1,)])
def test_prism_on_an_uneven_stack_measures_its_volume(block_step: float, dropped: tuple[int, ...]) -> None:
    # 8 slices 4 mm apart, then 8 slices 7 mm apart (a posterior-fossa / supratentorial protocol)
    planned = np.concatenate([np.arange(8) * 4.0, 28.0 + block_step + np.arange(8) * 7.0])
    geo = stack(np.delete(planned, list(dropped)))
    mask = np.zeros((geo.n_slices, geo.rows, geo.columns), dtype=bool)
    mask[:, 3:15, 5:30] = True
    area = 12 * PIXEL[0] * 25 * PIXEL[1]
    slab = (planned[-1] + 7.0 / 2) - (planned[0] - 4.0 / 2)
    assert measure_hematoma(mask, geo).volume_ml == pytest.approx(area * slab / 1000.0, rel=1e-12)
