"""Overlays of the PHE-SICH boxes that the end-slice network changes: the default alone vs with it.

Usage (from the repository root, in the project's venv), after two ``ichpipe evaluate --boxes ...
--save-masks`` runs on the same patients, one with ``inference.end_extension.checkpoint: ""``::

    python bench/end_slice_overlays.py --alone DIR_A/masks/ROW --pair DIR_B/masks/ROW \\
        [--patients 0001,0002,...] [--png docs/end_slice_overlays.png]

For every box whose hit differs between the two runs (>= 20 predicted pixels inside it, the
``evaluate --boxes`` rule), and every box both miss, one tile: the PNG slice around the box
(grey as stored, 2x), the box in green, the default alone in blue, what the end-slice network
added in red. The patients' boxes are the only reference (no blood masks exist).
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
PAD = 40


def _outline(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask)


def _tile(grey: np.ndarray, box: tuple[int, int, int, int], alone: np.ndarray, pair: np.ndarray,
          label: str) -> Image.Image:
    x0, y0, x1, y1 = box
    ya, yb = max(0, y0 - PAD), min(grey.shape[0], y1 + PAD)
    xa, xb = max(0, x0 - PAD), min(grey.shape[1], x1 + PAD)
    rgb = np.repeat(grey[ya:yb, xa:xb, None], 3, axis=2).astype(np.uint8)
    added = pair[ya:yb, xa:xb] & ~alone[ya:yb, xa:xb]
    rgb[_outline(alone[ya:yb, xa:xb])] = (60, 140, 255)
    rgb[_outline(added)] = (255, 60, 60)
    img = Image.fromarray(rgb).resize(((xb - xa) * 2, (yb - ya) * 2), Image.NEAREST)
    draw = ImageDraw.Draw(img)
    draw.rectangle([(x0 - xa) * 2, (y0 - ya) * 2, (x1 - xa) * 2, (y1 - ya) * 2], outline=(0, 220, 0))
    draw.text((3, 3), label, fill=(255, 255, 0))
    return img


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alone", type=Path, required=True, help="masks folder of the run without the step")
    parser.add_argument("--pair", type=Path, required=True, help="masks folder of the run with it (default)")
    parser.add_argument("--patients", default=None, help="comma-separated patient ids (default: all saved)")
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--png", type=Path, default=Path("docs/end_slice_overlays.png"))
    args = parser.parse_args()
    ids = args.patients.split(",") if args.patients else sorted(p.stem for p in args.alone.glob("*.npz"))
    tiles: list[Image.Image] = []
    for patient in list_box_patients(args.root, patients=ids):
        first = np.asarray(Image.open(patient.images[0]))
        shape = (len(patient.images), *first.shape[:2])
        alone = load_teacher_masks(args.alone / f"{patient.patient_id}.npz", shape=shape)
        pair = load_teacher_masks(args.pair / f"{patient.patient_id}.npz", shape=shape)
        for s, boxes in enumerate(patient.boxes):
            for box in boxes:
                x0, y0, x1, y1 = box
                hit_a = int(alone[s, y0:y1 + 1, x0:x1 + 1].sum()) >= 20
                hit_p = int(pair[s, y0:y1 + 1, x0:x1 + 1].sum()) >= 20
                if hit_a and hit_p:
                    continue
                verdict = "added: hit" if hit_p and not hit_a else ("lost" if hit_a else "both miss")
                grey = np.asarray(Image.open(patient.images[s]).convert("L"))
                tiles.append(_tile(grey, box, alone[s], pair[s], f"{patient.patient_id} slice {s}: {verdict}"))
                print(patient.patient_id, s, box, verdict)
    if not tiles:
        print("no box differs and none is missed")
        return
    columns = 4
    w = max(t.size[0] for t in tiles)
    h = max(t.size[1] for t in tiles)
    sheet = Image.new("RGB", (columns * w, -(-len(tiles) // columns) * h))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % columns) * w, (i // columns) * h))
    args.png.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.png)
    print(f"wrote {args.png} ({len(tiles)} tiles)")


if __name__ == "__main__":
    main()
