"""Overlay of the partial-volume rim on real PHE-SICH slices: the default without it, with it, and a peer.

Usage (from the repository root, in the project's venv), after three ``ichpipe evaluate --boxes ...
--save-masks`` runs on the same patients (the default with ``inference.rim_mm: null``, the default,
and ``--segmenter blast_ct``)::

    python bench/rim_overlay.py --without DIR_A/masks/ROW --with DIR_B/masks/ROW --peer DIR_C/masks/ROW \\
        [--patients 0017,0042,0046,0030] [--png docs/rim_phe_sich.png]

One tile per patient: the slice where the default finds the most blood, around the bleed (grey as
stored, 4x), outlines of the peer in green, the default without the rim in red and with it in yellow
(drawn in that order), and each one's whole-patient volume under the PNG assumptions (0.45 mm pixels,
5 mm slices). No blood mask exists for these slices: the peer is not a reference.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from ichpipe.pipeline.datasets.phe_sich.phe_teacher import load_teacher_masks
from ichpipe.pipeline.evaluation.box_slices import list_box_patients

ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "phe-sich-ct-ids-dev"
HALF, ZOOM = 48, 4
VOXEL_ML = 0.45 * 0.45 * 5.0 / 1000.0
COLOURS = (("peer", (0, 220, 0)), ("without", (255, 40, 40)), ("with", (255, 220, 0)))


def _tile(grey: np.ndarray, masks: dict[str, np.ndarray], k: int, label: str) -> Image.Image:
    ys, xs = np.nonzero(masks["with"][k] | masks["peer"][k])
    cy, cx = (int(ys.mean()), int(xs.mean())) if len(ys) else (grey.shape[0] // 2, grey.shape[1] // 2)
    y0, x0 = max(0, cy - HALF), max(0, cx - HALF)
    crop = (slice(y0, y0 + 2 * HALF), slice(x0, x0 + 2 * HALF))
    rgb = np.repeat(grey[crop][..., None], 3, axis=2).repeat(ZOOM, 0).repeat(ZOOM, 1).astype(np.uint8)
    for key, colour in COLOURS:
        big = masks[key][k][crop].repeat(ZOOM, 0).repeat(ZOOM, 1)
        rgb[big & ~ndimage.binary_erosion(big, iterations=2)] = colour
    tile = Image.fromarray(rgb)
    ImageDraw.Draw(tile).text((4, 4), label, fill=(255, 255, 255))
    return tile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--without", type=Path, required=True, help="masks of the default with rim_mm: null")
    parser.add_argument("--with", dest="with_", type=Path, required=True, help="masks of the default")
    parser.add_argument("--peer", type=Path, required=True, help="masks of the peer (BLAST-CT)")
    parser.add_argument("--patients", default="0017,0042,0046,0030")
    parser.add_argument("--png", type=Path, default=Path("docs/rim_phe_sich.png"))
    args = parser.parse_args()
    tiles = []
    for patient in list_box_patients(ROOT, patients=args.patients.split(",")):
        with Image.open(patient.images[0]) as first:
            shape = (len(patient.images), first.height, first.width)
        masks = {key: load_teacher_masks(folder / f"{patient.patient_id}.npz", shape=shape)
                 for key, folder in (("without", args.without), ("with", args.with_), ("peer", args.peer))}
        k = int(np.argmax(masks["with"].sum(axis=(1, 2))))
        with Image.open(patient.images[k]) as im:
            grey = np.asarray(im.convert("L"))
        ml = {key: float(m.sum()) * VOXEL_ML for key, m in masks.items()}
        tiles.append(_tile(grey, masks, k, f"{patient.patient_id} slice {k}: no rim {ml['without']:.1f}, rim"
                                           f" {ml['with']:.1f}, BLAST-CT {ml['peer']:.1f} mL"))
    side = 2 * HALF * ZOOM
    columns = min(2, len(tiles))
    out = Image.new("RGB", (columns * side, -(-len(tiles) // columns) * side))
    for i, tile in enumerate(tiles):
        out.paste(tile, ((i % columns) * side, (i // columns) * side))
    out.save(args.png, optimize=True)
    print(args.png)


if __name__ == "__main__":
    main()
