"""A bleed on a head's top slices, read as the slices are and enlarged: the picture and the volumes.

Usage (from the repository root, in the project's venv)::

    python bench/vertex_zoom.py [--out docs/vertex_zoom.png] [--share 0.37]

Two real heads of ``../shared/data`` (skipped, and said so, when a file is absent): the GE HiSpeed
normal head with a bleed painted on the slice above its widest intracranial section whose section is
nearest ``--share`` of the widest one's area (an ellipsoid of 5 x 9 x 9 mm radii at the section's
centroid, brain voxels raised to 68 HU keeping their noise, as ``bench/posterior_fossa.py`` paints),
and PHE-SICH-CT-IDS patient 0013 (PNG stack, the evaluation's assumed window and spacing: a deep
haematoma and a small dense spot on its top slices, no box on any slice, no reference). Each is read
by ``run``'s analysis (``analyse_volume``, default network) with the default configuration and with
``inference.vertex_zoom_share: null`` (the slices as they are, as before the twenty-ninth session).
Prints the volumes and writes one row of tiles per head: the slices where the two readings differ
most (up to three; 180 x 180 pixels round the blood, shown 2x), grey W80/L40, green the painted
truth, yellow enlarged, red as they are (drawn last: yellow shows what the enlarged reading adds).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from posterior_fossa import _paint  # noqa: E402

from ichpipe import load_segmenter  # noqa: E402
from ichpipe.dicom_io.assemble import CTVolume  # noqa: E402
from ichpipe.pipeline.config import Config, load_config  # noqa: E402
from ichpipe.pipeline.datasets.dicom_seg import read_dicom_series  # noqa: E402
from ichpipe.pipeline.evaluation.box_slices import PngAssumptions, list_box_patients, patient_volume  # noqa: E402
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume  # noqa: E402
from ichpipe.pipeline.segment.components import mask_volume_ml  # noqa: E402
from ichpipe.pipeline.segment.intracranial import find_intracranial_in  # noqa: E402

DATA = REPO.parent / "shared" / "data"
HALF = 90  # each tile: 180 x 180 image pixels round the blood of its slice, shown 2x


def _painted_ge(config: Config, share: float) -> tuple[CTVolume, np.ndarray] | None:
    folder = DATA / "ct-real" / "ge-hispeed-head-tilt"
    if not folder.is_dir():
        print(f"skipped: {folder} is absent")
        return None
    volume = read_dicom_series(folder, discovery=config.discovery, selection=config.selection,
                               geometry=config.geometry)
    space = find_intracranial_in(volume.hu, volume.geometry, config.anatomy).mask
    areas = space.sum(axis=(1, 2))
    widest = int(np.argmax(areas))
    height = volume.geometry.positions[:, 2]
    above = [z for z in range(len(areas)) if height[z] > height[widest] and areas[z] > 0]
    z = min(above, key=lambda s: abs(areas[s] / areas[widest] - share))
    row, col = (round(float(c)) for c in ndimage.center_of_mass(space[z]))
    hu, blood = _paint(volume, space, (z, row, col), (5.0, 9.0, 9.0), 68.0)
    return replace(volume, hu=hu), blood


def _phe_0013() -> CTVolume | None:
    root = DATA / "phe-sich-ct-ids-dev"
    if not root.is_dir():
        print(f"skipped: {root} is absent")
        return None
    return patient_volume(list_box_patients(root, patients=["0013"])[0], PngAssumptions())


def _tiles(volume: CTVolume, truth: np.ndarray | None, plain: np.ndarray, zoomed: np.ndarray) -> np.ndarray:
    differ = (plain ^ zoomed).sum(axis=(1, 2))
    picked = sorted(int(z) for z in np.argsort(differ)[::-1][:3] if differ[z] > 0)
    if not picked:  # the two readings agree: the slice with the most blood
        picked = [int(np.argmax((plain | zoomed).sum(axis=(1, 2))))]
    tiles = []
    for z in picked:
        grey = np.clip((volume.hu[z] - 0.0) / 80.0, 0.0, 1.0) * 255.0
        rgb = np.stack([grey] * 3, axis=-1)
        for mask, colour in ((truth, (0, 255, 0)), (zoomed, (255, 255, 0)), (plain, (255, 0, 0))):
            if mask is not None:
                rgb[mask[z] & ~ndimage.binary_erosion(mask[z])] = colour
        found = plain[z] | zoomed[z] | (truth[z] if truth is not None else False)
        row, col = (round(float(c)) for c in ndimage.center_of_mass(found))
        top = int(np.clip(row - HALF, 0, rgb.shape[0] - 2 * HALF))
        left = int(np.clip(col - HALF, 0, rgb.shape[1] - 2 * HALF))
        window = rgb[top:top + 2 * HALF, left:left + 2 * HALF]
        tiles.append(window.repeat(2, axis=0).repeat(2, axis=1))  # 2x, nearest: the contours stay sharp
    return np.concatenate(tiles, axis=1).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("vertex_zoom.png"))
    parser.add_argument("--share", type=float, default=0.37,
                        help="paint the GE bleed on the slice whose section is nearest this share of the widest")
    args = parser.parse_args()
    zoom_config = load_config()
    plain_config = replace(zoom_config, inference=replace(zoom_config.inference, vertex_zoom_share=None))
    readers = [(load_segmenter(config=cfg), cfg) for cfg in (plain_config, zoom_config)]
    rows = []
    cases: list[tuple[str, CTVolume, np.ndarray | None]] = []
    painted = _painted_ge(zoom_config, args.share)
    if painted is not None:
        cases.append(("GE head, painted", painted[0], painted[1]))
    phe = _phe_0013()
    if phe is not None:
        cases.append(("PHE-SICH 0013", phe, None))
    for name, volume, truth in cases:
        masks, said = [], []
        for segmenter, cfg in readers:
            result = analyse_volume(volume, segmenter, cfg)
            masks.append(result.mask)
            said.append(f"{result.measurement.volume_ml:.2f} mL [{', '.join(result.quality.codes) or 'no flag'}]")
        true_ml = "" if truth is None else f"truth {mask_volume_ml(truth, volume.geometry.voxel_volumes_ml):.2f} mL; "
        print(f"{name}: {true_ml}as they are {said[0]}; enlarged {said[1]}")
        rows.append(_tiles(volume, truth, masks[0], masks[1]))
    if rows:
        width = max(r.shape[1] for r in rows)
        rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
        Image.fromarray(np.concatenate(rows, axis=0)).save(args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
