"""A dense venous sinus, a classic mimic of blood: is it read as a bleed?

Usage (from the repository root, in the project's venv)::

    python bench/dense_sinus.py [--hu 55 65 75] [--radius-mm 3.5 5] [--clot-hu 70] [--out FILE.jsonl]

The superior sagittal sinus and the torcula are dense on a normal CT when the haematocrit is high
(dehydration, polycythaemia) and when they thrombose; they lie against the inner table in the midline,
where extra-axial blood lies. No such scan is in ``../shared/data``, so the sinus is painted into the
real GE normal head (``../shared/data/ct-real/ge-hispeed-head-tilt``): on each intracranial slice from
13 up (from 19 up also at the front, where the sinus runs along the vertex) a disc of ``--radius-mm``
centred that far inside the inner table at the midline's posterior (and anterior) end, its voxels
moved to a median of ``--hu`` with the real noise kept. Each study runs through
:func:`~ichpipe.pipeline.jobs.analyse_volume.analyse_volume` (``run``'s analysis: the default network,
the threshold baseline beside it, every quality check). The truth is 0 mL of blood. One JSON line per
study goes to ``--out``.

With ``--clot-hu`` a clot of that median HU is painted too, against the posterior sinus in front of it
on five slices (an occipital or parafalcine bleed beside a dense sinus; a ball of 12 mm in plane on its
middle slice, narrower above and below): the truth is the clot's voxels outside the sinus, and what is
read in the sinus is what the steps that grow found blood over clot density took of it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from posterior_fossa import _heads  # noqa: E402

from ichpipe import load_segmenter  # noqa: E402
from ichpipe.pipeline.config import load_config  # noqa: E402
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume  # noqa: E402
from ichpipe.pipeline.segment.components import mask_volume_ml  # noqa: E402
from ichpipe.pipeline.segment.intracranial import intracranial_mask  # noqa: E402


def sinus_discs(space: np.ndarray, pixel_mm: float, radius_mm: float, *, first: int = 12,
                front_from: int = 18) -> np.ndarray:
    """Discs of ``radius_mm`` against the inner table at the midline's ends (see the module's docstring)."""
    discs = np.zeros(space.shape, dtype=bool)
    rows, cols = np.ogrid[: space.shape[1], : space.shape[2]]
    inset = round(radius_mm / pixel_mm)
    for z in range(first, space.shape[0]):
        inside = np.flatnonzero(space[z].any(axis=1))
        if not len(inside):
            continue
        ends = [(int(inside[-1]), -inset)] + ([(int(inside[0]), inset)] if z >= front_from else [])
        for row, step in ends:
            centre_col = int(np.median(np.flatnonzero(space[z, row])))
            disc = (rows - (row + step)) ** 2 + (cols - centre_col) ** 2 <= (radius_mm / pixel_mm) ** 2
            discs[z] |= disc & space[z]
    return discs


def clot_before(space: np.ndarray, sinus: np.ndarray, pixel_mm: float, *, first: int = 12,
                radius_mm: float = 12.0) -> np.ndarray:
    """A clot touching the posterior sinus disc from the front on slices ``first`` + 2 ... + 6."""
    clot = np.zeros(space.shape, dtype=bool)
    rows, cols = np.ogrid[: space.shape[1], : space.shape[2]]
    for k, z in enumerate(range(first + 2, first + 7)):
        back = np.flatnonzero(sinus[z].any(axis=1))
        back = back[back > np.median(np.flatnonzero(space[z].any(axis=1)))]  # the posterior disc's rows
        if not len(back):
            continue
        front = int(back[0])  # its front row
        centre_col = int(np.median(np.flatnonzero(sinus[z, back[len(back) // 2]])))
        r = radius_mm / pixel_mm * np.sqrt(max(0.0, 1.0 - ((k - 2) / 3.0) ** 2))
        disc = (rows - (front - r + 1)) ** 2 + (cols - centre_col) ** 2 <= r ** 2
        clot[z] |= disc & space[z]
    return clot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hu", type=float, nargs="+", default=[55.0, 65.0, 75.0])
    parser.add_argument("--radius-mm", type=float, nargs="+", default=[3.5, 5.0])
    parser.add_argument("--clot-hu", type=float, default=None,
                        help="also paint a clot of this median HU against the posterior sinus")
    parser.add_argument("--out", type=Path, default=Path("dense_sinus.jsonl"))
    args = parser.parse_args()
    config = load_config()
    segmenter = load_segmenter()
    volume = _heads(config)["ge"]
    space = intracranial_mask(volume.hu, volume.geometry)
    print("| sinus | its median HU | truth (mL) | volume (mL) | of it in the sinus | network / baseline beside (mL)"
          " | flags |")
    print("|---|---:|---:|---:|---:|---|---|")
    with args.out.open("a") as sink:
        for radius in args.radius_mm:
            sinus = sinus_discs(space, float(volume.geometry.pixel_spacing_mm[0]), radius)
            sinus_ml = mask_volume_ml(sinus, volume.geometry.voxel_volumes_ml)
            clot = np.zeros_like(sinus)
            if args.clot_hu is not None:
                clot = clot_before(space, sinus, float(volume.geometry.pixel_spacing_mm[0])) & ~sinus
            for level in args.hu:
                hu = volume.hu.copy()
                hu[sinus] += level - float(np.median(volume.hu[sinus]))
                if clot.any():
                    hu[clot] += float(args.clot_hu) - float(np.median(volume.hu[clot]))
                result = analyse_volume(replace(volume, hu=hu), segmenter, config)
                row = {"radius_mm": radius, "sinus_ml": round(sinus_ml, 2), "hu": level,
                       "truth_ml": round(mask_volume_ml(clot, volume.geometry.voxel_volumes_ml), 3),
                       "ml": round(result.measurement.volume_ml, 3),
                       "in_sinus_ml": round(mask_volume_ml(result.mask & sinus, volume.geometry.voxel_volumes_ml), 3),
                       "volumes_ml": result.quality.measurements.get("volumes_ml"),
                       "codes": list(result.quality.codes)}
                sink.write(json.dumps(row) + "\n")
                sink.flush()
                both = " / ".join(f"{v:.2f}" for v in (row["volumes_ml"] or {}).values())
                print(f"| {2 * radius:g} mm discs, {sinus_ml:.1f} mL | {level:g} | {row['truth_ml']:.2f} | "
                      f"{row['ml']:.2f} | {row['in_sinus_ml']:.2f} | {both} | {', '.join(row['codes']) or 'none'} |",
                      flush=True)


if __name__ == "__main__":
    main()
