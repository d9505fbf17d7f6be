"""Calcifications painted into the real GE head: are they read as blood, with and without ``inference.calcified``?

Usage (from the repository root, in the project's venv)::

    python bench/calcifications.py [--cases 6] [--seed 1] [--kinds basal_ganglia,one_side,dentate,clot_beside]
        [--peak 150,300] [--out calcifications.jsonl] [--png docs/calcifications.png]
    python bench/calcifications.py --table calcifications.jsonl [more.jsonl ...]

Physiological calcifications of the basal ganglia (the globus pallidus), the dentate nuclei and the
falx are common on the CT of older patients, who are those who have strokes. No such scan is in
``../shared/data``, so clusters are painted into the real GE normal head
(``../shared/data/ct-real/ge-hispeed-head-tilt``, 4 mm slices): on two slices, 6-16 specks of 1-2 mm
radius placed at random within an ellipse of 9 x 4 mm (semi-axes) where the structure lies (found
from the intracranial section's extent: the globus pallidus 19 % of the section's width either side
of its centre on slices 15-16, the dentate nuclei 12 % either side and 22 % of its length behind the
centre on slices 8-9), each at a peak drawn from ``--peak`` HU times a partial-volume share of
0.3-1 above the brain's 35 HU, the sum blurred by the scanner's point spread (0.6 mm) and added to
the image, its noise kept. Kinds: ``basal_ganglia`` (both sides), ``one_side``, ``dentate`` (both
sides): the truth is 0 mL. ``clot_beside``: a putaminal clot (ellipsoid of 14 x 9 mm in plane on
slices 15-16, 60 % of that on 14 and 17, 58-78 HU plus the head's own noise) just lateral to one
globus pallidus, calcified on both sides: the truth is the clot less the voxels a speck raised by
15 HU or more. Each study goes through :func:`~ichpipe.pipeline.jobs.analyse_volume.analyse_volume`
(``run``'s analysis, default networks) with the step off (``off``) and as configured (``on``). One
JSON line per study goes to ``--out``, a table follows: for the calcifications alone how many read
over 0.5 mL (the normal-head bar of issue 13) and how many of those raised no quality flag; for the
clots the MAE and the wrong reads (>= 1 mL and >= 25 % off). ``--png``: one tile per kind, its first
study's first painted slice with the truth, the read off and on outlined. About 15 s a study on the
2-core VM.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
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
from ichpipe.pipeline.segment.intracranial import find_intracranial_in  # noqa: E402

#: Where each structure lies: slices, lateral offset and forward offset (shares of the section's width
#: and length; rows grow toward the back of the GE head), which sides.
PLACES = {"basal_ganglia": ((15, 16), 0.19, -0.02, (-1, 1)), "one_side": ((15, 16), 0.19, -0.02, (1,)),
          "dentate": ((8, 9), 0.12, 0.22, (-1, 1)), "clot_beside": ((15, 16), 0.19, -0.02, (-1, 1))}
BRAIN_HU = 35.0


def _section(space: np.ndarray, z: int) -> tuple[float, float, float, float]:
    rows, cols = np.flatnonzero(space[z].any(axis=1)), np.flatnonzero(space[z].any(axis=0))
    return (rows[0] + rows[-1]) / 2, (cols[0] + cols[-1]) / 2, rows[-1] - rows[0], cols[-1] - cols[0]


def paint_cluster(hu: np.ndarray, space: np.ndarray, pixel_mm: float, rng: np.random.Generator, kind: str,
                  peak: float, specks: int) -> tuple[np.ndarray, np.ndarray]:
    """``hu`` with the clusters of ``kind`` added, and where a speck raised it by 15 HU or more."""
    slices, lateral, forward, sides = PLACES[kind]
    out = hu.astype(np.float32).copy()
    raised = np.zeros(hu.shape, dtype=bool)
    rows, cols = np.ogrid[: hu.shape[1], : hu.shape[2]]
    for z in slices:
        centre_row, centre_col, length, width = _section(space, z)
        added = np.zeros(hu.shape[1:], dtype=np.float32)
        for side in sides:
            for _ in range(specks):
                while True:
                    u = rng.uniform(-1, 1, 2)
                    if (u ** 2).sum() <= 1:
                        break
                row = centre_row + forward * length + u[0] * 9.0 / pixel_mm
                col = centre_col + side * lateral * width + u[1] * 4.0 / pixel_mm
                speck = (rows - row) ** 2 + (cols - col) ** 2 <= (rng.uniform(1.0, 2.0) / pixel_mm) ** 2
                added = np.maximum(added, speck * rng.uniform(0.3, 1.0) * (peak - BRAIN_HU))
        added = ndimage.gaussian_filter(added, 0.6 / pixel_mm) * space[z]
        out[z] += added
        raised[z] = added >= 15.0
    return out, raised


def paint_clot(hu: np.ndarray, space: np.ndarray, pixel_mm: float, rng: np.random.Generator,
               noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``hu`` with a putaminal clot lateral to the right-hand globus pallidus, and the clot's mask."""
    out = hu.astype(np.float32).copy()
    blood = np.zeros(hu.shape, dtype=bool)
    rows, cols = np.ogrid[: hu.shape[1], : hu.shape[2]]
    for z, scale in ((14, 0.6), (15, 1.0), (16, 1.0), (17, 0.6)):
        centre_row, centre_col, length, width = _section(space, z)
        row, col = centre_row - 0.02 * length, centre_col + 0.27 * width
        blood[z] = (((rows - row) * pixel_mm / (14.0 * scale)) ** 2
                    + ((cols - col) * pixel_mm / (9.0 * scale)) ** 2 <= 1.0) & space[z]
    out[blood] = rng.uniform(58.0, 78.0) + noise[blood]
    return out, blood


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=6, help="studies per kind")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kinds", default="basal_ganglia,one_side,dentate,clot_beside")
    parser.add_argument("--peak", default="150,300", help="LEAST,MOST: a speck's peak HU (before partial volume)")
    parser.add_argument("--out", type=Path, default=Path("calcifications.jsonl"))
    parser.add_argument("--table", type=Path, nargs="+", help="print the table of these JSON-line files, run nothing")
    parser.add_argument("--png", type=Path, help="also write an overlay of each kind's first study here")
    args = parser.parse_args()
    if args.table:
        table(read_rows(args.table))
        return
    least, most = (float(v) for v in args.peak.split(","))
    on = load_config()
    if on.inference.calcified.min_share is None:
        parser.error("inference.calcified.min_share is null in the configuration: nothing to compare")
    off = replace(on, inference=replace(on.inference, calcified=replace(on.inference.calcified, min_share=None)))
    runs = {"off": (off, load_segmenter(config=off)), "on": (on, load_segmenter(config=on))}
    volume = _heads(on)["ge"]
    geo = volume.geometry
    pixel_mm = float(geo.pixel_spacing_mm[0])
    space = find_intracranial_in(volume.hu, geo, on.anatomy).mask
    noise = np.clip(volume.hu - ndimage.gaussian_filter(volume.hu.astype(np.float32), (0, 2, 2)), -20, 20)
    clean = {when: analyse_volume(volume, seg, cfg).measurement.volume_ml for when, (cfg, seg) in runs.items()}
    rng = np.random.default_rng(args.seed)
    rows: list[dict[str, Any]] = []
    tiles: dict[str, Image.Image] = {}
    with args.out.open("w") as sink:
        for kind in args.kinds.split(","):
            if kind not in PLACES:
                parser.error(f"unknown kind {kind!r}; choose from {', '.join(PLACES)}")
            for _ in range(args.cases):
                peak, specks = float(rng.uniform(least, most)), int(rng.integers(6, 17))
                hu, blood = volume.hu, np.zeros(volume.hu.shape, dtype=bool)
                if kind == "clot_beside":
                    hu, blood = paint_clot(hu, space, pixel_mm, rng, noise)
                hu, raised = paint_cluster(hu, space, pixel_mm, rng, kind, peak, specks)
                truth = mask_volume_ml(blood & ~raised, geo.voxel_volumes_ml)
                row: dict[str, Any] = {"kind": kind, "peak_hu": round(peak), "specks": specks,
                                       "calcified_ml": round(mask_volume_ml(raised, geo.voxel_volumes_ml), 2),
                                       "truth_ml": round(truth, 2)}
                masks = {}
                for when, (cfg, seg) in runs.items():
                    result = analyse_volume(replace(volume, hu=hu), seg, cfg)
                    masks[when] = result.mask
                    dropped = result.segmentation.details.get("calcified") or {}
                    row[when] = {"read_ml": round(result.measurement.volume_ml - clean[when], 2),
                                 "codes": list(result.quality.codes),
                                 "dropped_ml": round(dropped.get("removed_ml", 0.0)
                                                     + dropped.get("parts_removed_ml", 0.0), 4)}
                if args.png and kind not in tiles:
                    tiles[kind] = overlay_tile(hu, {"truth": blood & ~raised, **masks}, PLACES[kind][0][0], kind)
                keep_row(row, sink, rows)
    if args.png and tiles:
        sheet = Image.new("RGB", (sum(t.width for t in tiles.values()), max(t.height for t in tiles.values())))
        left = 0
        for tile in tiles.values():
            sheet.paste(tile, (left, 0))
            left += tile.width
        sheet.save(args.png)
        print(f"wrote {args.png}")
    table(rows)


def overlay_tile(hu: np.ndarray, masks: dict[str, np.ndarray], z: int, label: str) -> Image.Image:
    """Slice ``z`` around the painted structure (W80/L40, 2x): outlines of the truth (green), the read with
    the step off (red) and on (yellow), drawn in that order."""
    grey = np.clip(hu[z] / 80.0 * 255.0, 0, 255).astype(np.uint8)
    rows, cols = np.nonzero(masks["off"][z] | masks["on"][z] | masks["truth"][z])
    centre = (int(rows.mean()), int(cols.mean())) if len(rows) else (grey.shape[0] // 2, grey.shape[1] // 2)
    top, left = max(0, centre[0] - 80), max(0, centre[1] - 120)
    crop = (slice(top, top + 160), slice(left, left + 240))
    rgb = np.repeat(grey[crop][..., None], 3, axis=2)
    for key, colour in (("truth", (0, 220, 0)), ("off", (255, 40, 40)), ("on", (255, 220, 0))):
        plane = masks[key][z][crop]
        rgb[plane & ~ndimage.binary_erosion(plane)] = colour
    tile = Image.fromarray(rgb).resize((rgb.shape[1] * 2, rgb.shape[0] * 2), Image.NEAREST)
    ImageDraw.Draw(tile).text((4, 4), f"{label}: truth green, off red, on yellow", fill=(255, 255, 255))
    return tile


def table(rows: list[dict[str, Any]]) -> None:
    """Per kind and setting: the calcifications' reads over 0.5 mL, or the clots' MAE and wrong reads; of those, how
    many raised no flag, and how many only ``out_of_domain_contrast`` (which the painted calcification itself raises:
    a false alarm that happens to stand beside the wrong volume)."""
    print("| kind | step | studies | mean read (mL) | read > 0.5 mL or wrong (no flag; only out_of_domain_contrast) |"
          " not counted (mL, all) |")
    print("|---|---|---:|---:|---|---:|")
    for kind in dict.fromkeys(r["kind"] for r in rows):
        mine = [r for r in rows if r["kind"] == kind]
        for when in ("off", "on"):
            read = np.array([r[when]["read_ml"] for r in mine])
            truth = np.array([r["truth_ml"] for r in mine])
            err = read - truth
            bad = (read > 0.5) if not truth.any() else (np.abs(err) >= 1) & (np.abs(err) >= 0.25 * truth)
            silent = sum(bool(b) and not r[when]["codes"] for b, r in zip(bad, mine, strict=True))
            contrast = sum(bool(b) and r[when]["codes"] == ["out_of_domain_contrast"]
                           for b, r in zip(bad, mine, strict=True))
            shown = f"{np.mean(read):.2f}" if not truth.any() else f"MAE {np.mean(np.abs(err)):.2f}"
            dropped = sum(r[when]["dropped_ml"] for r in mine)
            print(f"| {kind} | {when} | {len(mine)} | {shown} | {int(bad.sum())} ({silent}; {contrast}) |"
                  f" {dropped:.2f} |")


if __name__ == "__main__":
    main()
