"""Bleeds painted into the posterior fossa and skull base of the real heads: what ``run`` reads.

Usage (from the repository root, in the project's venv)::

    python bench/posterior_fossa.py [--cases 8] [--seed 0] [--out posterior_fossa.jsonl]
        [--segmenter NAME] [--checkpoint FILE|DIR] [--blast-models 1] [--crossing-only] [--anywhere]
        [--beside] [--config FILE]

At the skull base the intracranial finder fails on a slice or two (the orbits and sinuses open the
bone ring), and before ``anatomy.max_failed_run_mm`` the 3D step then dropped everything beyond:
the posterior fossa of both real heads of ``../shared/data`` (the GE HiSpeed head, DICOM; the IVH
example, NIfTI). No real scan with a bleed there is in ``../shared/data``, so bleeds are painted:
an ellipsoid (in-plane radii 6-14 mm, 4-8 mm along the normal) centred on a brain voxel of the
slices the finder now reaches across a failed slice (at least 6 mm inside the space), its
brain-range voxels (15-50 HU) raised to a blood level drawn from 60-75 HU keeping their noise;
the truth is that painted mask (kept when >= 0.5 mL). Each study goes through
:func:`~ichpipe.pipeline.jobs.analyse_volume.analyse_volume` (``run``'s analysis, default
network) with the crossing off (the former finder) and on. ``added`` is the volume read minus the
clean head's (the IVH example has its own blood). One JSON line per study goes to ``--out``; a
table follows. About 10 s a study on the 2-core VM. ``--anywhere`` centres the bleeds on any slice
of the space (at least 6 mm inside it): where else on a real head the network is blind.
``--beside`` paints a deep bleed (8 x 12 x 10 mm radii, 65 HU) into every study first (``clean`` and
``added`` then count from the head with it): a bleed missed beside one found. ``--config``: a YAML
of settings over the defaults (``inference: {vertex_zoom_share: null}``: the top slices read as they
are, as before the twenty-ninth session).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jsonl_rows import keep_row  # noqa: E402

from ichpipe import load_segmenter  # noqa: E402
from ichpipe.dicom_io.assemble import CTVolume  # noqa: E402
from ichpipe.pipeline.config import Config, load_config  # noqa: E402
from ichpipe.pipeline.datasets.dicom_seg import read_dicom_series  # noqa: E402
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume  # noqa: E402
from ichpipe.pipeline.jobs.nifti_study import load_nifti_ct  # noqa: E402
from ichpipe.pipeline.segment.components import mask_volume_ml  # noqa: E402
from ichpipe.pipeline.segment.intracranial import find_intracranial_in  # noqa: E402
from ichpipe.pipeline.segment.segmenter import Segmenter  # noqa: E402

DATA = REPO.parent / "shared" / "data"


def _heads(config: Config) -> dict[str, CTVolume]:
    ge = read_dicom_series(DATA / "ct-real" / "ge-hispeed-head-tilt", discovery=config.discovery,
                           selection=config.selection, geometry=config.geometry)
    ivh = load_nifti_ct(DATA / "ct-real-ich" / "ivh-deepbleed-example.nii.gz", config=config.geometry)
    return {"ge": ge, "ivh": ivh}


def _paint(volume: CTVolume, space: np.ndarray, centre: tuple[int, int, int], radii_mm: tuple[float, float, float],
           blood_hu: float) -> tuple[np.ndarray, np.ndarray]:
    geo = volume.geometry
    step = np.asarray(geo.slice_thickness_mm, dtype=float).reshape(-1)[0]
    ps = geo.pixel_spacing_mm
    z, r, c = np.ogrid[: space.shape[0], : space.shape[1], : space.shape[2]]
    ellipsoid = (((z - centre[0]) * step / radii_mm[0]) ** 2 + ((r - centre[1]) * ps[0] / radii_mm[1]) ** 2
                 + ((c - centre[2]) * ps[1] / radii_mm[2]) ** 2) <= 1.0
    blood = ellipsoid & space & (volume.hu >= 15) & (volume.hu <= 50)
    hu = volume.hu.copy()
    hu[blood] += blood_hu - float(np.median(volume.hu[blood])) if blood.any() else 0.0
    return hu, blood


def _read(volume: CTVolume, segmenter: Segmenter, config: Config) -> tuple[float, list[str], dict[str, Any]]:
    result = analyse_volume(volume, segmenter, config)
    return (result.measurement.volume_ml, list(result.quality.codes),
            result.quality.measurements.get("volumes_ml") or {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8, help="bleeds painted per head")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("posterior_fossa.jsonl"))
    parser.add_argument("--segmenter", default=None,
                        help="threshold, a network or blast_ct (default: the shipped network)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a network checkpoint, or BLAST-CT's weights folder (default: the shipped network)")
    parser.add_argument("--blast-models", type=int, default=1, help="--segmenter blast_ct: models averaged")
    parser.add_argument("--crossing-only", action="store_true", help="skip the runs with the former finder")
    parser.add_argument("--anywhere", action="store_true",
                        help="centre the bleeds on any slice of the space, not only the reached ones")
    parser.add_argument("--beside", action="store_true",
                        help="paint a deep bleed (an ellipsoid of 8 x 12 x 10 mm radii) first, in every study")
    parser.add_argument("--config", type=Path, default=None, help="a config YAML over the defaults")
    args = parser.parse_args()
    config = load_config(args.config)
    config = replace(config, blast_ct=replace(config.blast_ct, models=args.blast_models))
    former = replace(config, anatomy=replace(config.anatomy, max_failed_run_mm=None))
    segmenter = load_segmenter(args.segmenter, checkpoint=args.checkpoint, config=config)
    finders = (("crossing", config),) if args.crossing_only else (("former", former), ("crossing", config))
    rng = np.random.default_rng(args.seed)
    rows = []
    with args.out.open("w") as sink:
        for head, volume in _heads(config).items():
            space = find_intracranial_in(volume.hu, volume.geometry, config.anatomy)
            beside = np.zeros(space.mask.shape, dtype=bool)
            if args.beside:  # left of the centre of the space's largest slice (the basal ganglia's place)
                z = int(np.argmax(space.mask.sum(axis=(1, 2))))
                in_rows, in_cols = np.nonzero(space.mask[z])
                at = (z, int(in_rows.mean()), int(in_cols.mean() + 25.0 / volume.geometry.pixel_spacing_mm[1]))
                hu, beside = _paint(volume, space.mask, at, (8.0, 12.0, 10.0), 65.0)
                volume = replace(volume, hu=hu)
            reached = list(range(space.mask.shape[0])) if args.anywhere else list(space.reached_slices)
            ps = volume.geometry.pixel_spacing_mm
            depth = np.stack([ndimage.distance_transform_edt(p, sampling=ps) for p in space.mask])
            allowed = np.zeros(space.mask.shape, dtype=bool)
            allowed[reached] = (depth[reached] >= 6.0) & (volume.hu[reached] >= 15) & (volume.hu[reached] <= 50)
            allowed &= ~ndimage.binary_dilation(beside, iterations=20)  # the painted bleeds stay apart
            clean = {name: _read(volume, segmenter, cfg)[0] for name, cfg in finders}
            candidates = np.argwhere(allowed)
            done = 0
            while done < args.cases:
                centre = tuple(int(v) for v in candidates[rng.integers(len(candidates))])
                radii = (float(rng.uniform(4, 8)), float(rng.uniform(6, 14)), float(rng.uniform(6, 14)))
                hu, blood = _paint(volume, space.mask, centre, radii, float(rng.uniform(60, 75)))
                truth = mask_volume_ml(blood, volume.geometry.voxel_volumes_ml)
                if truth < 0.5:
                    continue
                painted = replace(volume, hu=hu)
                row: dict[str, Any] = {"head": head, "centre": list(centre), "truth_ml": round(truth, 2),
                                       "beside_ml": round(mask_volume_ml(beside, volume.geometry.voxel_volumes_ml), 2)}
                for name, cfg in finders:
                    ml, codes, volumes = _read(painted, segmenter, cfg)
                    row[name] = {"added_ml": round(ml - clean[name], 2), "codes": codes,
                                 "volumes_ml": {k: round(float(v), 2) for k, v in volumes.items()}}
                keep_row(row, sink, rows)
                done += 1
    print("| head | slice | truth mL | former: read | flags | crossing: read | the segmenter beside it | flags |")
    print("|---|---:|---:|---:|---|---:|---:|---|")
    for r in rows:
        f, c = r.get("former", {"added_ml": "", "codes": ["not run"]}), r["crossing"]
        before, after = ", ".join(f["codes"]) or "none", ", ".join(c["codes"]) or "none"
        print(f"| {r['head']} | {r['centre'][0]} | {r['truth_ml']} | {f['added_ml']} | {before}"
              f" | {c['added_ml']} | {[*c['volumes_ml'].values(), '', ''][1]} | {after} |")


if __name__ == "__main__":
    main()
