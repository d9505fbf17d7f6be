"""Ischaemic strokes painted into the real GE head: does ``run`` read an infarct as blood?

Usage (from the repository root, in the project's venv)::

    python bench/infarcts.py [--cases 8] [--seed 1] [--kinds early,acute,old,ht,stain] [--stain-peak 80,200]
        [--out infarcts.jsonl] [--png FILE] [--table FILES...]

Most head CTs of a stroke service show no haemorrhage: an infarct (hypodense, reaching the cortex), an
old one (near CSF density), or an infarct that has bled (haemorrhagic transformation). No real scan of
one is in ``../shared/data``, so infarcts are painted into the real GE HiSpeed head (DICOM, the only
real head there with its skull): a wedge of a middle-cerebral-artery territory on 3-6 consecutive
slices of at least 0.6 of the largest intracranial section, its base on the inner table of one side
(a sector of 36-70 degrees about the section's centroid, pointing within 35 degrees of lateral), its
apex 25-45 mm deep; the wedge's brain voxels (15-50 HU; ventricles and bone left alone) are set to
the kind's level plus the head's own noise (the image minus its 2-pixel blur, clipped to +-20 HU),
blended into the brain over a 1.5 mm edge:

- ``early``: 26-30 HU (hours: grey and white matter merge, a few HU below the brain's 31-32);
- ``acute``: 18-26 HU (a day to a week: the wedge clearly hypodense);
- ``old``: 4-12 HU (months: near CSF density);
- ``ht``: ``acute`` with a clot inside it (haemorrhagic transformation, a parenchymal haematoma): an
  ellipsoid (in-plane radii 8-14 mm, 5-8 mm along the normal) centred 12-30 mm deep in the wedge,
  its voxels set to 60-75 HU plus the noise;
- ``stain``: ``acute`` with contrast medium staining its deep part, as after a thrombectomy: the same
  ellipsoid mottled (smoothed noise of 2 mm) from 40 HU up to a peak drawn from ``--stain-peak`` (80-200
  HU), plus the noise. It is not blood.

The truth is 0 mL, or the clot (its voxels in the intracranial space). Each study goes through
:func:`~ichpipe.pipeline.jobs.analyse_volume.analyse_volume` (``run``'s analysis, default networks,
every quality check); ``read`` is the volume minus the clean head's. One JSON line per study goes to
``--out``; the table gives per kind the reads over 0.5 mL (the normal-head bar) or the wrong volumes
(>= 1 mL and >= 25 % off, as in ``evaluate --flags``), how many of those raised no flag, and every flag
raised. ``--png`` writes one slice of each kind's first study: the wedge (blue), the clot or stain
(green) and what was read (yellow). About 5 s a study on the 2-core VM.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from heterogeneous_clot import ellipsoid_q  # noqa: E402
from jsonl_rows import keep_row, read_rows  # noqa: E402
from posterior_fossa import _heads  # noqa: E402

from ichpipe import load_segmenter  # noqa: E402
from ichpipe.dicom_io.assemble import CTVolume  # noqa: E402
from ichpipe.pipeline.config import load_config  # noqa: E402
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume  # noqa: E402
from ichpipe.pipeline.segment.components import mask_volume_ml  # noqa: E402
from ichpipe.pipeline.segment.intracranial import find_intracranial_in  # noqa: E402

#: Each kind's level (least, most HU) inside the wedge.
LEVELS = {"early": (26.0, 30.0), "acute": (18.0, 26.0), "old": (4.0, 12.0), "ht": (18.0, 26.0), "stain": (18.0, 26.0)}


def paint_wedge(volume: CTVolume, space: np.ndarray, depth: np.ndarray, noise: np.ndarray,
                rng: np.random.Generator, level: float, slices: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """``volume.hu`` with a wedge of ``level`` HU on ``slices``, and the wedge's mask (before its blended edge)."""
    ps = volume.geometry.pixel_spacing_mm
    side = float(rng.choice([-1.0, 1.0]))
    turn, half, reach = np.deg2rad(rng.uniform(-35, 35)), np.deg2rad(rng.uniform(18, 35)), rng.uniform(25, 45)
    ref = np.arctan2(side * np.sin(turn), side * np.cos(turn))  # 0: toward increasing columns
    rows = np.arange(space.shape[1])[:, None] * ps[0]
    cols = np.arange(space.shape[2])[None, :] * ps[1]
    hu = volume.hu.astype(np.float32).copy()
    wedge = np.zeros(space.shape, dtype=bool)
    for z in slices:
        yy, xx = np.nonzero(space[z])
        angle = np.arctan2(rows - yy.mean() * ps[0], cols - xx.mean() * ps[1])
        off = np.abs((angle - ref + np.pi) % (2 * np.pi) - np.pi)
        wedge[z] = space[z] & (off <= half) & (depth[z] <= reach) & (volume.hu[z] >= 15) & (volume.hu[z] <= 50)
        soft = ndimage.gaussian_filter(wedge[z].astype(np.float32), 1.5 / ps[0])
        soft *= space[z] & (volume.hu[z] >= 10) & (volume.hu[z] <= 60)
        hu[z] = hu[z] * (1 - soft) + (level + noise[z]) * soft
    return hu, wedge


def paint_clot(hu: np.ndarray, volume: CTVolume, space: np.ndarray, wedge: np.ndarray, depth: np.ndarray,
               noise: np.ndarray, rng: np.random.Generator,
               stain_peak: tuple[float, float] | None = None) -> np.ndarray:
    """Paint a clot 12-30 mm deep inside ``wedge`` into ``hu`` (in place), or with ``stain_peak`` (least, most HU) a
    mottled contrast stain; its mask (empty when none fits)."""
    places = np.argwhere(wedge & (depth >= 12) & (depth <= 30))
    if not len(places):
        return np.zeros(space.shape, dtype=bool)
    step = float(np.asarray(volume.geometry.slice_thickness_mm, dtype=float).reshape(-1)[0])
    ps = volume.geometry.pixel_spacing_mm
    grid = np.ogrid[: space.shape[0], : space.shape[1], : space.shape[2]]
    radii = (rng.uniform(5, 8), rng.uniform(8, 14), rng.uniform(8, 14))
    _, q = ellipsoid_q(grid, places[rng.integers(len(places))], radii, (step, *ps))
    painted = (q <= 1.0) & space & (hu >= -50) & (hu <= 90)
    if stain_peak is None:
        hu[painted] = rng.uniform(60, 75) + noise[painted]
        return painted
    mottle = ndimage.gaussian_filter(rng.normal(size=hu.shape).astype(np.float32), (0.3, 2 / ps[0], 2 / ps[1]))
    inside = mottle[painted]
    share = (inside - inside.min()) / max(float(inside.max() - inside.min()), 1e-6)
    hu[painted] = 40.0 + (rng.uniform(*stain_peak) - 40.0) * (0.55 + 0.45 * share) + noise[painted]
    return painted


def overlay_tile(hu: np.ndarray, wedge: np.ndarray, blood: np.ndarray, read: np.ndarray, z: int,
                 label: str) -> Image.Image:
    """Slice ``z`` (W80/L40): outlines of the wedge (blue), the clot (green) and what was read (yellow)."""
    grey = np.clip(hu[z] / 80.0 * 255.0, 0, 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    for plane, colour in ((wedge[z], (60, 120, 255)), (blood[z], (0, 220, 0)), (read[z], (255, 220, 0))):
        rgb[plane & ~ndimage.binary_erosion(plane)] = colour
    rows, cols = np.nonzero(wedge[z])
    top, left = max(0, int(rows.mean()) - 110), max(0, int(cols.mean()) - 110)
    tile = Image.fromarray(rgb[top: top + 220, left: left + 220])
    ImageDraw.Draw(tile).text((4, 4), label, fill=(255, 255, 255))
    return tile


def table(rows: list[dict[str, Any]]) -> None:
    """Per kind: the reads over 0.5 mL (no bleed) or the wrong volumes (a bleed), how many raised no flag, and
    the flags raised."""
    print("| kind | studies | infarct mL (median) | truth mL (median) | mean read mL (MAE) | over 0.5 mL or wrong"
          " (no flag) | flags raised (studies) |")
    print("|---|---:|---:|---:|---|---|---|")
    for kind in dict.fromkeys(r["kind"] for r in rows):
        group = [r for r in rows if r["kind"] == kind]
        truth = np.array([r["truth_ml"] for r in group])
        read = np.array([r["read_ml"] for r in group])
        err = read - truth
        if truth.max() > 0:
            bad = [abs(e) >= 1 and abs(e) >= 0.25 * t for e, t in zip(err, truth, strict=True)]
            mean = f"{read.mean():.2f} ({np.abs(err).mean():.2f})"
        else:
            bad = [r > 0.5 for r in read]
            mean = f"{read.mean():.2f}"
        silent = sum(b and not r["codes"] for b, r in zip(bad, group, strict=True))
        flags = Counter(code for r in group for code in r["codes"])
        raised = ", ".join(f"`{c}` {n}" for c, n in flags.most_common()) or "none"
        print(f"| {kind} | {len(group)} | {np.median([r['infarct_ml'] for r in group]):.1f} | {np.median(truth):.2f}"
              f" | {mean} | {sum(bad)} ({silent}) | {raised} |")
    stains = [r for r in rows if r.get("stain_median_hu") is not None]
    if stains:
        print("\n| stain's median HU | studies | stain mL (median) | read as blood, share of the stain (median) |"
              " over 0.5 mL (no flag) | flags raised (studies) |")
        print("|---|---:|---:|---:|---|---|")
        for low, high in ((0, 90), (90, 100), (100, 120), (120, 1000)):
            group = [r for r in stains if low <= r["stain_median_hu"] < high]
            if not group:
                continue
            flags = Counter(code for r in group for code in r["codes"])
            over = [r for r in group if r["read_ml"] > 0.5]
            name = f"{low}-{high}" if high < 1000 else f">= {low}"
            print(f"| {name} | {len(group)} | {np.median([r['stain_ml'] for r in group]):.1f}"
                  f" | {np.median([r['read_ml'] / r['stain_ml'] for r in group]):.2f}"
                  f" | {len(over)} ({sum(not r['codes'] for r in over)})"
                  f" | {', '.join(f'`{c}` {n}' for c, n in flags.most_common()) or 'none'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8, help="studies per kind")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kinds", default="early,acute,old,ht,stain")
    parser.add_argument("--stain-peak", default="80,200", help="LEAST,MOST: a stain's peak HU")
    parser.add_argument("--out", type=Path, default=Path("infarcts.jsonl"))
    parser.add_argument("--png", type=Path, help="also write one slice of each kind's first study here")
    parser.add_argument("--table", type=Path, nargs="+", help="print the table of these JSON-line files, run nothing")
    args = parser.parse_args()
    if args.table:
        table(read_rows(args.table))
        return
    kinds = args.kinds.split(",")
    unknown = [k for k in kinds if k not in LEVELS]
    if unknown:
        parser.error(f"unknown kind(s) {', '.join(unknown)}; choose from {', '.join(LEVELS)}")
    least, most = (float(v) for v in args.stain_peak.split(","))
    stain_peak = (least, most)
    config = load_config()
    segmenter = load_segmenter(config=config)
    volume = _heads(config)["ge"]
    geo = volume.geometry
    space = find_intracranial_in(volume.hu, geo, config.anatomy).mask
    area = space.reshape(space.shape[0], -1).sum(axis=1)
    usable = [int(z) for z in np.flatnonzero(area >= 0.6 * area.max())]
    depth = np.stack([ndimage.distance_transform_edt(s, sampling=geo.pixel_spacing_mm) for s in space])
    noise = np.clip(volume.hu - ndimage.gaussian_filter(volume.hu.astype(np.float32), (0, 2, 2)), -20, 20)
    clean = analyse_volume(volume, segmenter, config).measurement.volume_ml
    rng = np.random.default_rng(args.seed)
    rows: list[dict[str, Any]] = []
    tiles: list[Image.Image] = []
    with args.out.open("w") as sink:
        for kind in kinds:
            for case in range(args.cases):
                count = int(rng.integers(3, 7))
                first = int(rng.integers(usable[0], usable[-1] - count + 2))
                slices = [z for z in range(first, first + count) if z in usable]
                level = float(rng.uniform(*LEVELS[kind]))
                hu, wedge = paint_wedge(volume, space, depth, noise, rng, level, slices)
                blood = np.zeros(space.shape, dtype=bool)
                stain = np.zeros(space.shape, dtype=bool)
                if kind == "ht":
                    blood = paint_clot(hu, volume, space, wedge, depth, noise, rng)
                elif kind == "stain":
                    stain = paint_clot(hu, volume, space, wedge, depth, noise, rng, stain_peak=stain_peak)
                result = analyse_volume(replace(volume, hu=hu), segmenter, config)
                measured = result.quality.measurements
                row: dict[str, Any] = {
                    "kind": kind, "case": case, "slices": slices, "level_hu": round(level, 1),
                    "infarct_ml": round(mask_volume_ml(wedge, geo.voxel_volumes_ml), 1),
                    "truth_ml": round(mask_volume_ml(blood, geo.voxel_volumes_ml), 2),
                    "stain_ml": round(mask_volume_ml(stain, geo.voxel_volumes_ml), 2),
                    "stain_median_hu": round(float(np.median(hu[stain]))) if stain.any() else None,
                    "read_ml": round(result.measurement.volume_ml - clean, 2), "codes": list(result.quality.codes),
                    "hypodense_at_skull_ml": measured.get("hypodense_at_skull_ml"),
                    "cross_check_ml": (measured.get("cross_check") or {}).get("volume_ml")}
                if args.png and case == 0:
                    lesion = blood | stain
                    z = slices[len(slices) // 2] if not lesion.any() else int(np.argmax(lesion.sum(axis=(1, 2))))
                    tiles.append(overlay_tile(hu, wedge, lesion, result.mask, z, f"{kind}: read {row['read_ml']} mL"))
                keep_row(row, sink, rows)
    if args.png and tiles:
        sheet = Image.new("RGB", (sum(t.width for t in tiles), max(t.height for t in tiles)))
        for i, tile in enumerate(tiles):
            sheet.paste(tile, (sum(t.width for t in tiles[:i]), 0))
        sheet.save(args.png)
        print(f"wrote {args.png}")
    table(rows)


if __name__ == "__main__":
    main()
