"""Clots painted on the real heads' lower slices: what ``run`` reads with and without ``inference.dense_ends``.

Usage (from the repository root, in the project's venv)::

    python bench/lower_slices.py [--cases 14] [--seed 5] [--slices 7,13] [--head ge]
        [--out lower_slices.jsonl]

Below the widest intracranial section, where the head narrows toward the skull base (temporal lobes,
the fossae), the networks learnt no bleed: on the real GE head they read a clot there on its upper
slices and stop, or miss it. No real scan with such a bleed is in ``../shared/data``, so clots are
painted into the real heads there (``--head ge``: the GE HiSpeed head, DICOM; ``ivh``: the IVH
example, NIfTI, which has its own blood): an ellipsoid (in-plane radii 8-16 mm, 6-10 mm along the
normal) centred on a brain voxel of the slices ``--slices FIRST,LAST`` (volume order), at least 3 mm
inside the intracranial space; every voxel of it in the space from -50 to 90 HU set to a clot level
drawn from 60-75 HU plus the head's own noise there (the image minus its 2-pixel Gaussian blur,
clipped to +-20 HU). The truth is the painted ellipsoid (kept when >= 2 mL). Each study goes through
:func:`~ichpipe.pipeline.jobs.analyse_volume.analyse_volume` (``run``'s analysis, default networks)
with ``inference.dense_ends`` off (``off``) and as configured (``on``); ``read`` is the volume minus
the clean head's. One JSON line per study goes to ``--out``; a table follows (wrong: >= 1 mL and >= 25 %
off, as in ``evaluate --flags``; silent: wrong with no quality flag but the two the IVH example raises
on every study, ``skull_absent`` and ``hu_no_air``). About 10 s a study on the 2-core VM.
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
from posterior_fossa import _heads  # noqa: E402

from ichpipe import load_segmenter  # noqa: E402
from ichpipe.pipeline.config import load_config  # noqa: E402
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume  # noqa: E402
from ichpipe.pipeline.segment.components import mask_volume_ml  # noqa: E402
from ichpipe.pipeline.segment.intracranial import find_intracranial_in  # noqa: E402

#: Flags the IVH example raises on every study (a skull-stripped export), not counted as catching a wrong volume.
ALWAYS = {"skull_absent", "hu_no_air"}


def summary_cells(rows: list[dict[str, Any]], when: str) -> str:
    """``| studies | MAE mL | median error % | wrong (silent) |`` of the JSON rows' reads ``when`` (off or on)."""
    truth = np.array([r["truth_ml"] for r in rows])
    err = np.array([r[when]["read_ml"] - r["truth_ml"] for r in rows])
    wrong = (np.abs(err) >= 1) & (np.abs(err) >= 0.25 * truth)
    silent = sum(bool(w) and not set(r[when]["codes"]) - ALWAYS for w, r in zip(wrong, rows, strict=True))
    return (f"| {len(rows)} | {np.mean(np.abs(err)):.2f} | {np.median(100 * err / truth):+.0f} |"
            f" {int(wrong.sum())} ({silent}) |")


def _table(rows: list[dict[str, Any]]) -> None:
    print("| dense_ends | studies | MAE mL | median error % | wrong (silent) | studies it added to |")
    print("|---|---:|---:|---:|---|---:|")
    for when in ("off", "on"):
        added = sum(1 for r in rows if (r[when]["dense_ml"] or 0) > 0)
        print(f"| {when} {summary_cells(rows, when)} {added} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=14, help="clots painted")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--slices", default="7,13", help="FIRST,LAST: the slices (volume order) a centre lies on")
    parser.add_argument("--head", choices=("ge", "ivh"), default="ge")
    parser.add_argument("--out", type=Path, default=Path("lower_slices.jsonl"))
    args = parser.parse_args()
    first, last = (int(v) for v in args.slices.split(","))
    on = load_config()
    if on.inference.dense_ends.min_hu is None:
        parser.error("inference.dense_ends.min_hu is null in the configuration: nothing to compare")
    off = replace(on, inference=replace(on.inference, dense_ends=replace(on.inference.dense_ends, min_hu=None)))
    runs = {"off": (off, load_segmenter(config=off)), "on": (on, load_segmenter(config=on))}
    volume = _heads(on)[args.head]
    geo = volume.geometry
    ps = geo.pixel_spacing_mm
    step = float(np.asarray(geo.slice_thickness_mm, dtype=float).reshape(-1)[0])
    space = find_intracranial_in(volume.hu, geo, on.anatomy).mask
    depth = np.stack([ndimage.distance_transform_edt(p, sampling=ps) for p in space])
    candidates = np.argwhere((depth >= 3) & (volume.hu >= 15) & (volume.hu <= 50))
    candidates = candidates[(candidates[:, 0] >= first) & (candidates[:, 0] <= last)]
    if not len(candidates):
        parser.error(f"no brain voxel 3 mm inside the intracranial space on slices {first}-{last}")
    noise = np.clip(volume.hu - ndimage.gaussian_filter(volume.hu.astype(np.float32), (0, 2, 2)), -20, 20)
    grid = np.ogrid[: space.shape[0], : space.shape[1], : space.shape[2]]
    rng = np.random.default_rng(args.seed)
    clean = {when: analyse_volume(volume, seg, cfg).measurement.volume_ml for when, (cfg, seg) in runs.items()}
    print(f"the clean head reads {clean['off']:.2f} mL off, {clean['on']:.2f} mL on", flush=True)
    rows: list[dict[str, Any]] = []
    with args.out.open("w") as sink:
        while len(rows) < args.cases:
            centre = candidates[rng.integers(len(candidates))]
            radii = (rng.uniform(6, 10), rng.uniform(8, 16), rng.uniform(8, 16))
            _, q = ellipsoid_q(grid, centre, radii, (step, *ps))
            blood = (q <= 1) & space & (volume.hu >= -50) & (volume.hu <= 90)
            truth = mask_volume_ml(blood, geo.voxel_volumes_ml)
            if truth < 2.0:
                continue
            hu = volume.hu.copy()
            hu[blood] = rng.uniform(60, 75) + noise[blood]
            painted = replace(volume, hu=hu)
            row: dict[str, Any] = {"head": args.head, "centre": [int(c) for c in centre], "truth_ml": round(truth, 2)}
            for when, (cfg, seg) in runs.items():
                result = analyse_volume(painted, seg, cfg)
                row[when] = {"read_ml": round(result.measurement.volume_ml - clean[when], 2),
                             "codes": list(result.quality.codes),
                             "dense_ml": (result.segmentation.details.get("dense_ends") or {}).get("added_ml")}
            keep_row(row, sink, rows)
    _table(rows)


if __name__ == "__main__":
    main()
