"""Convexity meningiomas painted into the real GE head: is a dense dural-based mass read as blood?

Usage (from the repository root, in the project's venv)::

    python bench/meningiomas.py [--cases 10] [--seed 1] [--level 55,70] [--out meningiomas.jsonl]
        [--table FILES...]

A meningioma is the commonest incidental mass on the head CT of an older patient: a dural-based,
round mass, on a non-contrast scan often denser than the brain (some calcified), against the inner
table, where an extradural or a lobar haematoma also lies. No scan of one is in ``../shared/data``,
so they are painted into the real GE HiSpeed head (DICOM): a ball of radius 8-18 mm centred on the
intracranial space's edge (within 1 mm of it in plane) on a slice of at least 0.7 of the widest
section, so that half of it lies inside the space against the table; its voxels in the space from
-50 to 90 HU are set to a level drawn from ``--level`` plus the head's own noise (the image minus
its 2-pixel blur, clipped to +-20 HU); in half of the studies 1 % of its voxels, grown by one
voxel, are raised by 120 HU (calcified specks). It is not blood: the truth is 0 mL. Each study goes
through :func:`~ichpipe.pipeline.jobs.analyse_volume.analyse_volume` (``run``'s analysis, default
networks, every quality check); ``read`` is the volume minus the clean head's. One JSON line per
study goes to ``--out``; the table gives the reads over 0.5 mL (the normal-head bar), how many of them
raised no flag, and the flags raised. About 10 s a study on the 2-core VM.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from jsonl_rows import keep_row, read_rows  # noqa: E402
from posterior_fossa import _heads  # noqa: E402

from ichpipe import load_segmenter  # noqa: E402
from ichpipe.pipeline.config import load_config  # noqa: E402
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume  # noqa: E402
from ichpipe.pipeline.segment.components import mask_volume_ml  # noqa: E402
from ichpipe.pipeline.segment.intracranial import find_intracranial_in, plane_depth_mm  # noqa: E402


def table(rows: list[dict[str, Any]]) -> None:
    """Per calcified or not: the reads over 0.5 mL, how many raised no flag, and the flags raised."""
    print("| calcified specks | studies | mass mL (median) | mean read mL | read over 0.5 mL (no flag) |"
          " share of the mass read (median) | flags raised (studies) |")
    print("|---|---:|---:|---:|---|---:|---|")
    for calcified in (False, True):
        group = [r for r in rows if r["calcified"] is calcified]
        if not group:
            continue
        over = [r for r in group if r["read_ml"] > 0.5]
        flags = Counter(code for r in group for code in r["codes"])
        raised = ", ".join(f"`{c}` {n}" for c, n in flags.most_common()) or "none"
        print(f"| {'yes' if calcified else 'no'} | {len(group)} | {np.median([r['mass_ml'] for r in group]):.1f}"
              f" | {np.mean([r['read_ml'] for r in group]):.2f} | {len(over)} ({sum(not r['codes'] for r in over)})"
              f" | {np.median([r['on_mass_ml'] / r['mass_ml'] for r in group]):.2f} | {raised} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--level", default="55,70", help="LEAST,MOST: the mass's HU")
    parser.add_argument("--out", type=Path, default=Path("meningiomas.jsonl"))
    parser.add_argument("--table", type=Path, nargs="+", help="print the table of these JSON-line files, run nothing")
    args = parser.parse_args()
    if args.table:
        table(read_rows(args.table))
        return
    least, most = (float(v) for v in args.level.split(","))
    config = load_config()
    segmenter = load_segmenter(config=config)
    volume = _heads(config)["ge"]
    geo = volume.geometry
    spacing = geo.pixel_spacing_mm
    step = float(np.asarray(geo.slice_thickness_mm, dtype=float).reshape(-1)[0])
    space = find_intracranial_in(volume.hu, geo, config.anatomy).mask
    area = space.reshape(space.shape[0], -1).sum(axis=1)
    usable = np.flatnonzero(area >= 0.7 * area.max())
    noise = np.clip(volume.hu - ndimage.gaussian_filter(volume.hu.astype(np.float32), (0, 2, 2)), -20, 20)
    clean = analyse_volume(volume, segmenter, config).measurement.volume_ml
    grid = np.ogrid[: space.shape[0], : space.shape[1], : space.shape[2]]
    rng = np.random.default_rng(args.seed)
    rows: list[dict[str, Any]] = []
    with args.out.open("w") as sink:
        for _ in range(args.cases):
            z = int(rng.choice(usable))
            depth = plane_depth_mm(space[z], spacing)
            edge = np.argwhere(space[z] & (depth <= 1.0))
            row_c, col_c = edge[rng.integers(len(edge))]
            radius, level = float(rng.uniform(8, 18)), float(rng.uniform(least, most))
            distance = np.sqrt(((grid[0] - z) * step) ** 2 + ((grid[1] - row_c) * spacing[0]) ** 2
                               + ((grid[2] - col_c) * spacing[1]) ** 2)
            mass = (distance <= radius) & space & (volume.hu >= -50) & (volume.hu <= 90)
            hu = volume.hu.astype(np.float32).copy()
            hu[mass] = level + noise[mass]
            calcified = bool(rng.random() < 0.5)
            if calcified:
                specks = mass & (rng.random(mass.shape) < 0.01)
                hu[ndimage.binary_dilation(specks) & mass] += 120.0
            result = analyse_volume(replace(volume, hu=hu), segmenter, config)
            row = {"slice": z, "radius_mm": round(radius, 1), "level_hu": round(level, 1), "calcified": calcified,
                   "mass_ml": round(mask_volume_ml(mass, geo.voxel_volumes_ml), 2),
                   "read_ml": round(result.measurement.volume_ml - clean, 2),
                   "on_mass_ml": round(mask_volume_ml(result.mask & mass, geo.voxel_volumes_ml), 2),
                   "codes": list(result.quality.codes)}
            keep_row(row, sink, rows)
    table(rows)


if __name__ == "__main__":
    main()
