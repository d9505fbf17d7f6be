"""Large clots painted into the real heads: what ``run`` reads with and without the extra-axial step's depth test.

Usage (from the repository root, in the project's venv)::

    python bench/large_clots.py [--cases 5] [--seed 5] [--kinds plain,oedema] [--depth 25,200]
        [--size 1.0] [--hu 58,78] [--heads ge,ivh] [--out large_clots.jsonl]

A large lobar haematoma reaches the cortex. The extra-axial network (``inference.extra_axial``) then
calls the clot and the brain between it and the inner table as one component, which is too large
for ``low_density_min_ml`` and was added as a low-density collection (``extra_axial_low_density``).
Since the thirty-third session a low-density component joined to found blood lying deep in the
intracranial space is refused (``low_density_max_found_depth_mm``). No real scan with such a bleed
and a mask is in ``../shared/data``, so clots are painted into the real heads (the GE HiSpeed head,
DICOM; the IVH example, NIfTI, which has its own blood): an ellipsoid (``--size`` times 12-20 mm
along the normal and 16-28 mm in plane, radii) centred on a brain voxel (15-50 HU) whose in-plane
depth inside the intracranial space lies in ``--depth LEAST,MOST`` mm; every voxel of it in the
space from -50 to 90 HU set to a level drawn from ``--hu`` plus the head's own noise there (the image
minus its 2-pixel Gaussian blur, clipped to +-20 HU); kept when >= 15 mL. Kind ``oedema`` also
lowers a ring of 3-8 mm around it (brain voxels of 10-50 HU) to 16-26 HU plus noise. The truth is
the painted ellipsoid. Each study goes through
:func:`~ichpipe.pipeline.jobs.analyse_volume.analyse_volume` (``run``'s analysis, default networks)
with the test off (``off``) and as configured (``on``); ``read`` is the volume minus the clean
head's. One JSON line per study goes to ``--out``; a table follows (wrong: >= 1 mL and >= 25 % off,
as in ``evaluate --flags``; silent: wrong with no quality flag but the two the IVH example raises on
every study). About 10 s a study on the 2-core VM.
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
sys.path.insert(0, str(REPO / "bench"))

from heterogeneous_clot import ellipsoid_q  # noqa: E402
from jsonl_rows import keep_row  # noqa: E402
from lower_slices import summary_cells  # noqa: E402
from posterior_fossa import _heads  # noqa: E402

from ichpipe import load_segmenter  # noqa: E402
from ichpipe.pipeline.config import Config, load_config  # noqa: E402
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume  # noqa: E402
from ichpipe.pipeline.segment.components import mask_volume_ml  # noqa: E402
from ichpipe.pipeline.segment.intracranial import find_intracranial_in  # noqa: E402


def _pair(text: str) -> tuple[float, float]:
    least, most = (float(v) for v in text.split(","))
    return least, most


def _table(rows: list[dict[str, Any]]) -> None:
    print("| depth test | studies | MAE mL | median error % | wrong (silent) | low-density collection added |")
    print("|---|---:|---:|---:|---|---:|")
    for when in ("off", "on"):
        low = sum(1 for r in rows if r[when]["low_density_ml"] > 0)
        print(f"| {when} {summary_cells(rows, when)} {low} |")


def _runs(on: Config) -> dict[str, tuple[Config, Any]]:
    extra = on.inference.extra_axial
    off = replace(on, inference=replace(on.inference, extra_axial=replace(extra, low_density_max_found_depth_mm=None)))
    return {"off": (off, load_segmenter(config=off)), "on": (on, load_segmenter(config=on))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5, help="clots painted per head and kind")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--kinds", default="plain,oedema", help="plain and/or oedema")
    parser.add_argument("--depth", default="25,200", help="LEAST,MOST mm: the centre's in-plane depth")
    parser.add_argument("--size", type=float, default=1.0, help="scale of the radii")
    parser.add_argument("--hu", default="58,78", help="LEAST,MOST: the clot's level")
    parser.add_argument("--heads", default="ge,ivh")
    parser.add_argument("--out", type=Path, default=Path("large_clots.jsonl"))
    args = parser.parse_args()
    (d0, d1), (h0, h1) = _pair(args.depth), _pair(args.hu)
    on = load_config()
    if on.inference.extra_axial.low_density_max_found_depth_mm is None:
        parser.error("inference.extra_axial.low_density_max_found_depth_mm is null: nothing to compare")
    runs = _runs(on)
    rng = np.random.default_rng(args.seed)
    rows: list[dict[str, Any]] = []
    with args.out.open("w") as sink:
        for head, volume in _heads(on).items():
            if head not in args.heads.split(","):
                continue
            geo = volume.geometry
            ps = geo.pixel_spacing_mm
            step = float(np.asarray(geo.slice_thickness_mm, dtype=float).reshape(-1)[0])
            space = find_intracranial_in(volume.hu, geo, on.anatomy).mask
            depth = np.stack([ndimage.distance_transform_edt(p, sampling=ps) for p in space])
            candidates = np.argwhere((depth >= d0) & (depth <= d1) & (volume.hu >= 15) & (volume.hu <= 50))
            if not len(candidates):
                parser.error(f"no brain voxel {d0:g}-{d1:g} mm inside the {head} head's intracranial space")
            noise = np.clip(volume.hu - ndimage.gaussian_filter(volume.hu.astype(np.float32), (0, 2, 2)), -20, 20)
            clean = {when: analyse_volume(volume, seg, cfg).measurement.volume_ml for when, (cfg, seg) in runs.items()}
            grid = np.ogrid[: space.shape[0], : space.shape[1], : space.shape[2]]
            for kind in args.kinds.split(","):
                done = 0
                while done < args.cases:
                    centre = candidates[rng.integers(len(candidates))]
                    radii = tuple(args.size * rng.uniform(*span) for span in ((12, 20), (16, 28), (16, 28)))
                    _, q = ellipsoid_q(grid, centre, radii, (step, *ps))
                    blood = (q <= 1.0) & space & (volume.hu >= -50) & (volume.hu <= 90)
                    truth = mask_volume_ml(blood, geo.voxel_volumes_ml)
                    if truth < 15.0:
                        continue
                    hu = volume.hu.copy()
                    hu[blood] = rng.uniform(h0, h1) + noise[blood]
                    ring_ml = 0.0
                    if kind == "oedema":
                        width = rng.uniform(3, 8)
                        distance = ndimage.distance_transform_edt(~blood, sampling=(step, *ps))
                        ring = (distance > 0) & (distance <= width) & space & (volume.hu >= 10) & (volume.hu <= 50)
                        hu[ring] = rng.uniform(16, 26) + noise[ring]
                        ring_ml = mask_volume_ml(ring, geo.voxel_volumes_ml)
                    painted = replace(volume, hu=hu)
                    row: dict[str, Any] = {"head": head, "kind": kind, "centre": [int(c) for c in centre],
                                           "truth_ml": round(truth, 2), "oedema_ml": round(ring_ml, 1)}
                    for when, (cfg, seg) in runs.items():
                        result = analyse_volume(painted, seg, cfg)
                        extra = result.segmentation.details.get("extra_axial") or {}
                        row[when] = {"read_ml": round(result.measurement.volume_ml - clean[when], 2),
                                     "codes": list(result.quality.codes),
                                     "low_density_ml": extra.get("low_density_ml", 0.0),
                                     "refused_ml": extra.get("joined_deep_refused_ml", 0.0)}
                    keep_row(row, sink, rows)
                    done += 1
    _table(rows)


if __name__ == "__main__":
    main()
