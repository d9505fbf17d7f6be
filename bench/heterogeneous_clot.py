"""Clots that are not of one density, painted into the real heads: what ``run`` reads.

Usage (from the repository root, in the project's venv)::

    python bench/heterogeneous_clot.py [--cases 5] [--seed 0] [--kinds swirl,hole,blend,plain]
        [--blend-hu 40,50] [--depth 20,] [--checkpoint FILE] [--skip-before] [--out heterogeneous_clot.jsonl]

An acute haematoma often holds hypodense parts: streaks and islands of unclotted blood (the swirl
sign), one enclosed hypodense area (the black hole sign), or a hypodense side with a sharp margin
against the dense part (the blend sign); clinical volumes count the whole haematoma. No real scan
with such a clot and a mask is in ``../shared/data``, so clots are painted into both real heads
there (the GE HiSpeed head, DICOM; the IVH example, NIfTI): an ellipsoid (in-plane radii 10-18 mm,
6-10 mm along the normal) centred at least 20 mm inside the intracranial space (``--depth LEAST,MOST``:
``6,12`` paints lobar clots clipped by the inner table), every voxel of it
in the space from -50 to 90 HU (brain, CSF; not bone or calcification) set to a clot level drawn
from 62-75 HU plus the head's own noise there (the image minus its 2-pixel Gaussian blur, clipped to
+-20 HU); then its hypodense part lowered:

- ``swirl``: blobs of smoothed noise (the top 35 % of it) in the inner 55 % of the ellipsoid, 32-45 HU;
- ``hole``: an inner ellipsoid of 39-55 % of the radii, 30-42 HU;
- ``blend``: the side of a random plane through the centre (+-3 mm), 40-50 HU (``--blend-hu``);
- ``plain``: none (the clot of one density).

The truth is the painted ellipsoid (kept when >= 3 mL). Each study goes through
:func:`~ichpipe.pipeline.jobs.analyse_volume.analyse_volume` (``run``'s analysis, default network)
with ``inference.enclosed_close_mm`` off (``before``) and as configured (``after``); ``read`` is the
volume minus the clean head's (the IVH example has its own blood). One JSON line per study goes to
``--out``; a table per head and kind follows (wrong: >= 1 mL and >= 25 % off, as in ``evaluate
--flags``; silent: wrong with no quality flag but the two that every study of the IVH example
raises, ``skull_absent`` and ``hu_no_air``). About 20 s a study on the 2-core VM.
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

from jsonl_rows import keep_row  # noqa: E402
from posterior_fossa import _heads  # noqa: E402

from ichpipe import load_segmenter  # noqa: E402
from ichpipe.dicom_io.assemble import CTVolume  # noqa: E402
from ichpipe.pipeline.config import Config, load_config  # noqa: E402
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume  # noqa: E402
from ichpipe.pipeline.segment.components import mask_volume_ml  # noqa: E402
from ichpipe.pipeline.segment.intracranial import find_intracranial_in  # noqa: E402
from ichpipe.pipeline.segment.segmenter import Segmenter  # noqa: E402

#: Flags the IVH example raises on every study (a skull-stripped export), not counted as catching a wrong volume.
ALWAYS = {"skull_absent", "hu_no_air"}


def ellipsoid_q(grid: list[np.ndarray], centre: np.ndarray, radii: tuple[float, ...],
                spacing: tuple[float, ...]) -> tuple[list[np.ndarray], np.ndarray]:
    """(offsets in mm from ``centre`` per axis, the normalised radius squared) of an ellipsoid of ``radii``
    (mm, per axis) on ``grid`` (``np.ogrid`` of the volume) with voxel ``spacing`` (mm)."""
    offset = [(g - c) * s for g, c, s in zip(grid, centre, spacing, strict=True)]
    return offset, sum((o / r) ** 2 for o, r in zip(offset, radii, strict=True))


def _low_part(kind: str, q: np.ndarray, blood: np.ndarray, offset_mm: list[np.ndarray], rng: np.random.Generator,
              blend_hu: tuple[float, float] = (40.0, 50.0)) -> tuple[np.ndarray, float]:
    """The hypodense part of a clot and its HU; ``q`` is the ellipsoid's normalised radius squared."""
    if kind == "swirl":
        noise = ndimage.gaussian_filter(rng.normal(size=blood.shape).astype(np.float32), (0.3, 6, 6))
        inner = q <= 0.55
        return inner & blood & (noise > np.quantile(noise[inner], 0.65)), float(rng.uniform(32, 45))
    if kind == "hole":
        return blood & (q <= rng.uniform(0.15, 0.3)), float(rng.uniform(30, 42))
    if kind == "blend":
        direction = rng.normal(size=2)
        direction /= np.linalg.norm(direction)
        side = offset_mm[1] * direction[0] + offset_mm[2] * direction[1] > rng.uniform(-3, 3)
        return blood & side, float(rng.uniform(*blend_hu))
    return np.zeros_like(blood), 0.0


def _read(volume: CTVolume, segmenter: Segmenter, config: Config) -> tuple[float, list[str], float | None]:
    """Volume, quality codes and (when ``inference.blend_side`` runs) the blend side read beside the blood and
    not counted."""
    result = analyse_volume(volume, segmenter, config)
    side = result.segmentation.details.get("blend_side")
    return result.measurement.volume_ml, list(result.quality.codes), None if side is None else side["uncounted_ml"]


def _table(rows: list[dict[str, Any]]) -> None:
    print("| head | kind | studies | truth mL (median) | before: MAE mL, median error % | wrong (silent)"
          " | after: MAE mL, median error % | wrong (silent) |")
    print("|---|---|---:|---:|---|---|---|---|")
    for head in dict.fromkeys(r["head"] for r in rows):
        for kind in dict.fromkeys(r["kind"] for r in rows):
            group = [r for r in rows if r["head"] == head and r["kind"] == kind]
            if not group:
                continue
            cells = []
            for when in ("before", "after"):
                if when not in group[0]:  # --skip-before
                    cells.append("not run | not run")
                    continue
                err = np.array([r[when]["read_ml"] - r["truth_ml"] for r in group])
                pct = 100 * err / np.array([r["truth_ml"] for r in group])
                wrong = [(abs(e) >= 1 and abs(p) >= 25) for e, p in zip(err, pct, strict=True)]
                silent = sum(w and not set(r[when]["codes"]) - ALWAYS for w, r in zip(wrong, group, strict=True))
                cells.append(f"{np.mean(np.abs(err)):.2f}, {np.median(pct):+.0f} % | {sum(wrong)} ({silent})")
            truth = np.median([r["truth_ml"] for r in group])
            print(f"| {head} | {kind} | {len(group)} | {truth:.1f} | {cells[0]} | {cells[1]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5, help="clots painted per head and kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", default="swirl,hole,blend,plain")
    parser.add_argument("--blend-hu", default="40,50", help="the blend side's HU is drawn from LEAST,MOST")
    parser.add_argument("--depth", default="20,",
                        help="the clot's centre lies LEAST,MOST mm inside the intracranial space (MOST may be empty)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="the main network's checkpoint (default: the shipped one)")
    parser.add_argument("--skip-before", action="store_true",
                        help="read each study only as configured (no run without the enclosed fill)")
    parser.add_argument("--out", type=Path, default=Path("heterogeneous_clot.jsonl"))
    args = parser.parse_args()
    bounds = [float(v) for v in args.blend_hu.split(",")]
    if len(bounds) != 2 or not bounds[0] < bounds[1]:
        parser.error(f"--blend-hu must be LEAST,MOST with LEAST < MOST; got {args.blend_hu!r}")
    blend_hu = (bounds[0], bounds[1])
    least, _, most = args.depth.partition(",")
    if not least or (most and not float(least) < float(most)):
        parser.error(f"--depth must be LEAST,MOST with LEAST < MOST, or LEAST,; got {args.depth!r}")
    depth_range = (float(least), float(most) if most else np.inf)
    config = load_config()
    before = replace(config, inference=replace(config.inference, enclosed_close_mm=None))
    segmenters = {"after": load_segmenter(config=config, checkpoint=args.checkpoint)}
    if not args.skip_before:
        segmenters["before"] = load_segmenter(config=before, checkpoint=args.checkpoint)
    rng = np.random.default_rng(args.seed)
    rows: list[dict[str, Any]] = []
    with args.out.open("w") as sink:
        for head, volume in _heads(config).items():
            space = find_intracranial_in(volume.hu, volume.geometry, config.anatomy).mask
            geo = volume.geometry
            step = float(np.asarray(geo.slice_thickness_mm, dtype=float).reshape(-1)[0])
            ps = geo.pixel_spacing_mm
            depth = np.stack([ndimage.distance_transform_edt(p, sampling=ps) for p in space])
            candidates = np.argwhere((depth >= depth_range[0]) & (depth <= depth_range[1]) & (volume.hu >= 15)
                                    & (volume.hu <= 50))
            noise = np.clip(volume.hu - ndimage.gaussian_filter(volume.hu.astype(np.float32), (0, 2, 2)), -20, 20)
            runs = (("after", config),) if args.skip_before else (("before", before), ("after", config))
            clean = {when: _read(volume, segmenters[when], cfg)[0] for when, cfg in runs}
            grid = np.ogrid[: space.shape[0], : space.shape[1], : space.shape[2]]
            for kind in args.kinds.split(","):
                done = 0
                while done < args.cases:
                    centre = candidates[rng.integers(len(candidates))]
                    radii = (rng.uniform(6, 10), rng.uniform(10, 18), rng.uniform(10, 18))
                    offset, q = ellipsoid_q(grid, centre, radii, (step, *ps))
                    blood = (q <= 1.0) & space & (volume.hu >= -50) & (volume.hu <= 90)
                    truth = mask_volume_ml(blood, geo.voxel_volumes_ml)
                    if truth < 3.0:
                        continue
                    level = float(rng.uniform(62, 75))
                    low, low_hu = _low_part(kind, q, blood, offset, rng, blend_hu)
                    hu = volume.hu.copy()
                    hu[blood] = level + noise[blood]
                    hu[low] += low_hu - level
                    painted = replace(volume, hu=hu)
                    row: dict[str, Any] = {"head": head, "kind": kind, "centre": [int(c) for c in centre],
                                           "truth_ml": round(truth, 2), "clot_hu": round(level, 1),
                                           "low_hu": round(low_hu, 1),
                                           "low_ml": round(mask_volume_ml(low, geo.voxel_volumes_ml), 2)}
                    for when, cfg in runs:
                        ml, codes, side_ml = _read(painted, segmenters[when], cfg)
                        row[when] = {"read_ml": round(ml - clean[when], 2), "codes": codes}
                        if side_ml is not None:
                            row[when]["blend_side_uncounted_ml"] = side_ml
                    keep_row(row, sink, rows)
                    done += 1
    _table(rows)


if __name__ == "__main__":
    main()
