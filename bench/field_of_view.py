"""The real GE head with its field of view cut in plane: what ``run`` reads and flags.

Usage (from the repository root, in the project's venv)::

    python bench/field_of_view.py

A reconstruction whose field of view is smaller than the head cuts the skull and the brain at the
image's edge. Two kinds are simulated on the real GE HiSpeed head (512 x 512, 0.49 mm pixels): a
scanner that reconstructs the whole square (the Philips here does), by cropping the image's columns
on the patient's left; and one that pads outside the reconstruction circle (the GE itself does), by
taking a smaller square off the head's centre and padding outside its inscribed circle (-1024 HU).
An ellipsoid bleed (28 x 24 mm in plane, 16 mm along the normal; brain-range voxels raised to 65 HU
keeping their noise) is painted on the left, at ``--depth`` px (default 40) inside the intracranial
space's edge. One JSON line per field: the bleed's volume, what of it lies in the field, the
intracranial volume, the volume read by ``run``'s analysis (default network and config), the flags
and the field-edge measurement. ``--check-off`` runs the same with the check off.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ichpipe import load_segmenter  # noqa: E402
from ichpipe.dicom_io.assemble import CTVolume  # noqa: E402
from ichpipe.pipeline.config import load_config  # noqa: E402
from ichpipe.pipeline.datasets.dicom_seg import read_dicom_series  # noqa: E402
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume  # noqa: E402
from ichpipe.pipeline.segment.components import mask_volume_ml  # noqa: E402
from ichpipe.pipeline.segment.intracranial import find_intracranial_in  # noqa: E402

DATA = REPO.parent / "shared" / "data"


def field(volume: CTVolume, rows: slice, cols: slice, *, circle: bool) -> tuple[CTVolume, npt.NDArray[np.bool_]]:
    """The image's ``rows`` x ``cols`` with its geometry (and padded outside the inscribed circle): the field kept."""
    geo = volume.geometry
    hu = volume.hu[:, rows, cols].copy()
    n_rows, n_cols = hu.shape[1:]
    inside = np.ones((n_rows, n_cols), dtype=bool)
    if circle:
        yy, xx = np.mgrid[:n_rows, :n_cols]
        inside = np.hypot(yy - (n_rows - 1) / 2, xx - (n_cols - 1) / 2) <= min(n_rows, n_cols) / 2
        hu[:, ~inside] = -1024.0
    shift = ((rows.start or 0) * geo.pixel_spacing_mm[0] * np.asarray(geo.column_direction)
             + (cols.start or 0) * geo.pixel_spacing_mm[1] * np.asarray(geo.row_direction))
    kept = replace(geo, rows=n_rows, columns=n_cols, positions=geo.positions + shift)
    return replace(volume, hu=np.ascontiguousarray(hu), geometry=kept), inside


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=40, help="the bleed's centre inside the space's edge, px")
    parser.add_argument("--check-off", action="store_true",
                        help="quality.coverage.min_field_edge_mm null: what was raised before the check")
    args = parser.parse_args()
    config, segmenter = load_config(), load_segmenter()
    if args.check_off:
        config = replace(config, quality=replace(config.quality,
                                                 coverage=replace(config.quality.coverage, min_field_edge_mm=None)))
    volume = read_dicom_series(DATA / "ct-real" / "ge-hispeed-head-tilt", discovery=config.discovery,
                               selection=config.selection, geometry=config.geometry)
    geo = volume.geometry
    space = find_intracranial_in(volume.hu, geo, config.anatomy)
    left = int(np.flatnonzero(space.mask.any(axis=(0, 1)))[-1])  # the patient's left: the highest column
    rows = np.flatnonzero(space.mask.any(axis=(0, 2)))
    centre = (15, int(rows.mean()), left - args.depth)
    z, r, c = np.ogrid[: volume.hu.shape[0], : volume.hu.shape[1], : volume.hu.shape[2]]
    step = float(np.asarray(geo.slice_thickness_mm).reshape(-1)[0])
    ellipsoid = (((z - centre[0]) * step / 8.0) ** 2 + ((r - centre[1]) * geo.pixel_spacing_mm[0] / 14.0) ** 2
                 + ((c - centre[2]) * geo.pixel_spacing_mm[1] / 12.0) ** 2) <= 1.0
    blood = ellipsoid & (volume.hu > 15) & (volume.hu < 50)
    hu = volume.hu.copy()
    hu[blood] += 65.0 - float(np.median(volume.hu[blood]))
    painted = replace(volume, hu=hu)
    every, size = slice(None), volume.hu.shape[2]
    fields = [("whole", every, every, False)]
    fields += [(f"square, cut at column {k} ({k - left:+d} px from the space's edge)", every, slice(0, k), False)
               for k in (left + 12, left + 5, left - 5, left - 20, left - 40)]
    fields += [(f"circle of {n} px, field from column {size - n}", slice((size - n) // 2, (size + n) // 2),
                slice(size - n, size), True) for n in (440, 400, 380, 360)]
    for name, keep_rows, keep_cols, circle in fields:
        series, inside = field(painted, keep_rows, keep_cols, circle=circle)
        in_field = blood[:, keep_rows, keep_cols] & inside
        result = analyse_volume(series, segmenter, config)
        print(json.dumps({"field": name, "bleed_ml": round(mask_volume_ml(blood, geo.voxel_volumes_ml), 2),
                          "in_field_ml": round(mask_volume_ml(in_field, geo.voxel_volumes_ml), 2),
                          "intracranial_ml": round(result.intracranial.volume_ml),
                          "read_ml": round(result.measurement.volume_ml, 2), "codes": list(result.quality.codes),
                          "field_edge": result.quality.measurements["field_edge"]}), flush=True)


if __name__ == "__main__":
    main()
