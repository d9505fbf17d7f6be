"""The real GE head cut short, with a bleed across the cut: what ``run`` reads and flags.

Usage (from the repository root, in the project's venv)::

    python bench/cut_series.py [--keep 20]

A partial series (a limited acquisition, a reconstruction of part of the head selected alone) is
simulated by keeping the real GE HiSpeed head's first ``--keep`` slices. An ellipsoid bleed (15 x 12 mm
in plane, 9 mm along the normal, centred on the last kept slice; brain-range voxels raised to 65 HU
keeping their noise) is painted first. Three runs of ``run``'s analysis (default network and config):
the whole series with the bleed, the cut series with it, the cut series without it. One JSON line each:
the bleed's volume, what of it lies in the series, the volume read, the flags and both end slices.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ichpipe import load_segmenter  # noqa: E402
from ichpipe.dicom_io.assemble import CTVolume  # noqa: E402
from ichpipe.pipeline.config import load_config  # noqa: E402
from ichpipe.pipeline.datasets.dicom_seg import read_dicom_series  # noqa: E402
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume  # noqa: E402
from ichpipe.pipeline.segment.components import mask_volume_ml  # noqa: E402

DATA = REPO.parent / "shared" / "data"


def cut(volume: CTVolume, stop: int) -> CTVolume:
    """The volume's first ``stop`` slices, with their geometry and headers."""
    geo = volume.geometry
    kept = replace(geo, positions=geo.positions[:stop], offsets_mm=geo.offsets_mm[:stop],
                   slice_thickness_mm=np.asarray(geo.slice_thickness_mm)[:stop])
    return replace(volume, hu=np.ascontiguousarray(volume.hu[:stop]), geometry=kept, slices=volume.slices[:stop])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=int, default=20, help="slices kept from the bottom of the GE head")
    args = parser.parse_args()
    config, segmenter = load_config(), load_segmenter()
    volume = read_dicom_series(DATA / "ct-real" / "ge-hispeed-head-tilt", discovery=config.discovery,
                               selection=config.selection, geometry=config.geometry)
    geo = volume.geometry
    centre = args.keep - 1
    z, r, c = np.ogrid[: volume.hu.shape[0], : volume.hu.shape[1], : volume.hu.shape[2]]
    step = float(np.asarray(geo.slice_thickness_mm).reshape(-1)[0])
    ellipsoid = (((z - centre) * step / 9.0) ** 2 + ((r - 260) * geo.pixel_spacing_mm[0] / 15.0) ** 2
                 + ((c - 330) * geo.pixel_spacing_mm[1] / 12.0) ** 2) <= 1.0
    blood = ellipsoid & (volume.hu > 15) & (volume.hu < 50)
    hu = volume.hu.copy()
    hu[blood] += 65.0 - float(np.median(volume.hu[blood]))
    painted = replace(volume, hu=hu)
    truth_ml = mask_volume_ml(blood, geo.voxel_volumes_ml)
    runs = [("whole", painted, blood), (f"first {args.keep} slices", cut(painted, args.keep), blood[: args.keep]),
            (f"first {args.keep} slices, no bleed", cut(volume, args.keep), np.zeros_like(blood[: args.keep]))]
    for name, series, in_series in runs:
        result = analyse_volume(series, segmenter, config)
        print(json.dumps({"series": name, "bleed_ml": round(truth_ml, 2),
                          "in_series_ml": round(mask_volume_ml(in_series, series.geometry.voxel_volumes_ml), 2),
                          "read_ml": round(result.measurement.volume_ml, 2), "codes": list(result.quality.codes),
                          "ends": result.quality.measurements["scan_ends"]}))


if __name__ == "__main__":
    main()
