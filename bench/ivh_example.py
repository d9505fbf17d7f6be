"""The real intraventricular-haemorrhage example: what ``run`` would report, and an overlay for the model card.

Usage (from the repository root, in the project's venv)::

    python bench/ivh_example.py [--png docs/ivh_example_overlay.png] [--json FILE] [--checkpoint FILE]

``../shared/data/ct-real-ich/ivh-deepbleed-example.nii.gz`` (0.46 x 0.46 x 5 mm,
skull-stripped: skull and air set to 0 HU, clipped at 320 HU) is a NIfTI image
(``ichpipe run --study`` on it gives the same report for one segmenter). Here it
is turned into a :class:`~ichpipe.dicom_io.assemble.CTVolume` with the geometry
of its header and measured by
:func:`~ichpipe.pipeline.jobs.analyse_volume.analyse_volume`, the code ``run``
uses, with both segmenters: the threshold baseline, and the shipped default
network with the baseline as its cross-check. Both volumes are printed with
their quality flags, each method's agreement with the reference (shared mL and
Dice), and the overlay is drawn.

There is no expert mask for this image. The reference drawn in the overlay is
semi-automatic (made by the helper who studied the image, rebuilt here): two
boxes placed by eye around the occipital horns (slices 12-20 of the file), an
in-plane 5 x 5 median, voxels >= 42 HU and < 100 HU within 6 mm of ventricular
CSF (<= 15 HU), 3D-connected to a voxel within 1.5 mm of that CSF, and more than
1.5 mm from calcification (>= 100 HU). 42 HU lies half way between this scan's
brain peak (34.5 HU) and the layered blood (~50 HU). It is a judgement aid, not
a truth: 44 HU gives less, 40 HU more (printed).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ichpipe.dicom_io.assemble import CTVolume  # noqa: E402
from ichpipe.dicom_io.geometry import compute_geometry  # noqa: E402
from ichpipe.dicom_io.window import WindowPreset, apply_window  # noqa: E402
from ichpipe.pipeline.config import load_config  # noqa: E402
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume  # noqa: E402
from ichpipe.pipeline.jobs.run_study import RunOptions, build_segmenter  # noqa: E402
from ichpipe.pipeline.measure.nifti_masks import LPS_FROM_RAS  # noqa: E402

IVH = REPO.parent / "shared" / "data" / "ct-real-ich" / "ivh-deepbleed-example.nii.gz"
#: Boxes around the two occipital horns, in the file's (k, j, i) voxel indices, placed by eye.
BOXES_KJI = ((slice(12, 21), slice(140, 215), slice(255, 325)), (slice(12, 21), slice(140, 215), slice(350, 425)))


def load_volume(path: Path) -> tuple[CTVolume, bool]:
    """The NIfTI image as a CTVolume (slices along the normal) and whether the file's k axis was reversed."""
    img = nib.load(str(path))
    data = np.asarray(img.dataobj, dtype=np.float32)
    lps = LPS_FROM_RAS @ np.asarray(img.affine, dtype=np.float64)
    col_vec, row_vec, k_vec, origin = lps[:3, 0], lps[:3, 1], lps[:3, 2].copy(), lps[:3, 3].copy()
    row_dir, col_dir = col_vec / np.linalg.norm(col_vec), row_vec / np.linalg.norm(row_vec)
    reversed_k = float(k_vec @ np.cross(row_dir, col_dir)) < 0
    if reversed_k:
        data = data[:, :, ::-1]
        origin = origin + (data.shape[2] - 1) * k_vec
        k_vec = -k_vec
    positions = origin[None, :] + np.arange(data.shape[2])[:, None] * k_vec[None, :]
    geometry = compute_geometry(orientation=(*row_dir, *col_dir), positions=positions,
                                pixel_spacing=(float(np.linalg.norm(row_vec)), float(np.linalg.norm(col_vec))),
                                rows=data.shape[1], columns=data.shape[0])
    hu = np.ascontiguousarray(data.transpose(2, 1, 0))
    return CTVolume(hu=hu, geometry=geometry, slices=(), study_uid="", series_uid="nifti", warnings=()), reversed_k


def _disk(mm: float, spacing: float) -> np.ndarray:
    r = round(mm / spacing)
    y, x = np.ogrid[-r : r + 1, -r : r + 1]
    return (x * x + y * y <= r * r)[None]


def reference(volume: CTVolume, intracranial: np.ndarray, boxes: list[tuple[slice, slice, slice]],
              threshold_hu: float) -> np.ndarray:
    """The semi-automatic layered-blood reference (module docstring)."""
    hu, ps = volume.hu, min(volume.geometry.pixel_spacing_mm)
    box = np.zeros(hu.shape, dtype=bool)
    for b in boxes:
        box[b] = True
    sm3 = ndimage.median_filter(hu, size=(1, 3, 3))
    sm5 = ndimage.median_filter(hu, size=(1, 5, 5))
    csf = ndimage.binary_opening(intracranial & (sm3 <= 15) & (sm3 > -10) & box, structure=_disk(0.5, ps))
    zone = ndimage.binary_dilation(csf, structure=_disk(6.0, ps)) & box & intracranial
    near = ndimage.binary_dilation(csf, structure=_disk(1.5, ps))
    calc = ndimage.binary_dilation(intracranial & (sm3 >= 100), structure=_disk(1.5, ps))
    candidate = zone & (sm5 >= threshold_hu) & (sm5 < 100) & ~calc
    labels, _ = ndimage.label(candidate, structure=np.ones((3, 3, 3), dtype=bool))
    keep = np.unique(labels[candidate & near])
    return np.isin(labels, keep[keep > 0])


def _ml(mask: np.ndarray, volume: CTVolume) -> float:
    return round(float(np.sum(mask.reshape(mask.shape[0], -1).sum(axis=1) * volume.geometry.voxel_volumes_ml)), 2)


def overlay(volume: CTVolume, slices: list[int], masks: list[tuple[np.ndarray, tuple[int, int, int]]],
            crop: tuple[slice, slice], path: Path, *, scale: int = 2) -> None:
    """Tiles of ``slices`` (brain window), each mask's outline in its colour, the slice index in a corner."""
    tiles = []
    for z in slices:
        grey = apply_window(volume.hu[z][crop], WindowPreset(width=80.0, level=40.0))
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
        for mask, colour in masks:
            m = mask[z][crop]
            rgb[m & ~ndimage.binary_erosion(m)] = colour
        img = Image.fromarray(np.kron(rgb, np.ones((scale, scale, 1), dtype=np.uint8)), mode="RGB")
        ImageDraw.Draw(img).text((4, 2), f"slice {z}", fill=(255, 255, 0))
        tiles.append(img)
    w, h = tiles[0].size
    sheet = Image.new("RGB", (2 * w, ((len(tiles) + 1) // 2) * h))
    for n, tile in enumerate(tiles):
        sheet.paste(tile, ((n % 2) * w, (n // 2) * h))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG", optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--png", type=Path, default=REPO / "docs" / "ivh_example_overlay.png")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="network checkpoint to measure instead of the shipped default")
    args = parser.parse_args(argv)
    if not IVH.is_file():
        print(f"skipped: {IVH} is absent")
        return 0
    volume, reversed_k = load_volume(IVH)
    base = load_config(None)
    config = replace(base, inference=replace(base.inference, threads=args.threads, device="cpu"))
    out: dict[str, Any] = {"image": str(IVH.name), "shape": list(volume.hu.shape)}
    masks: dict[str, np.ndarray] = {}
    for name in ("threshold", "network"):
        options = RunOptions(study=IVH, segmenter="threshold" if name == "threshold" else None,
                             checkpoint=None if name == "threshold" else args.checkpoint)
        analysis = analyse_volume(volume, build_segmenter(options, config), config)
        masks[name] = analysis.mask
        out[name] = {
            "segmenter": name,
            "volume_ml": round(analysis.measurement.volume_ml, 2),
            "slices_with_blood": np.flatnonzero(analysis.mask.any(axis=(1, 2))).tolist(),
            "flags": [f.to_dict() for f in analysis.quality.flags],
            "intracranial_method": analysis.intracranial.method,
            "intracranial_ml": round(analysis.intracranial.volume_ml, 1),
            "cross_check": analysis.cross_check,
            "unrestricted_ml": analysis.segmentation.unrestricted_ml,
        }
        space = analysis.intracranial.mask
        print(json.dumps({name: out[name]}, indent=1), flush=True)
    nk = volume.hu.shape[0]
    boxes = [((slice(nk - b[0].stop, nk - b[0].start) if reversed_k else b[0]), b[1], b[2]) for b in BOXES_KJI]
    refs = {t: reference(volume, space, boxes, t) for t in (40.0, 42.0, 44.0)}
    out["reference_ml"] = {f"{t:g} HU": _ml(m, volume) for t, m in refs.items()}
    out["baseline_in_the_horn_boxes_ml"] = _ml(masks["threshold"] & _box_mask(volume.hu.shape, boxes), volume)
    # agreement of each method with each reference: the volume they share and the Dice
    out["agreement"] = {
        name: {f"{t:g} HU": {"overlap_ml": _ml(masks[name] & ref, volume),
                             "dice": round(2.0 * float((masks[name] & ref).sum())
                                           / max(1, int(masks[name].sum() + ref.sum())), 3)}
               for t, ref in refs.items()}
        for name in masks
    }
    print(json.dumps({"reference_ml": out["reference_ml"],
                      "baseline_in_the_horn_boxes_ml": out["baseline_in_the_horn_boxes_ml"],
                      "agreement": out["agreement"]}), flush=True)
    z_ref = [int(z) for z in np.flatnonzero(refs[42.0].any(axis=(1, 2)))]
    mid = z_ref[len(z_ref) // 2] if z_ref else nk // 2
    overlay(volume, [mid - 2, mid - 1, mid, mid + 1],
            [(refs[42.0], (0, 220, 0)), (masks["threshold"], (255, 40, 40)), (masks["network"], (0, 160, 255))],
            (slice(130, 230), slice(250, 430)), args.png)
    out["overlay"] = {"png": str(args.png.relative_to(REPO)) if args.png.is_relative_to(REPO) else str(args.png),
                      "slices": [mid - 2, mid - 1, mid, mid + 1],
                      "colours": {"green": "reference >= 42 HU", "red": "threshold baseline",
                                  "blue": "network"}}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


def _box_mask(shape: tuple[int, ...], boxes: list[tuple[slice, slice, slice]]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for b in boxes:
        mask[b] = True
    return mask


if __name__ == "__main__":
    sys.exit(main())
