"""A large field of view: the head small in the matrix, and what the networks read there.

Usage (from the repository root, in the project's venv)::

    python bench/large_field.py [--seeds 1,2,3] [--pixels 0.45,0.65,0.85,0.9,0.95,1.0,1.2] [--real] [--painted 4]
        [--out large_field.jsonl]

Every network reads a slice resized to its checkpoint's input size (256 x 256); the networks learnt
200-250 mm fields on 512 x 512 (a network pixel of 0.78-0.98 mm). A reconstruction with a larger field
(a trauma protocol's body field, a site's 300-500 mm head field) shows them a smaller head.
``inference.max_network_pixel_mm`` (1.1 mm) resizes such a slice to a larger grid instead. This runs
:func:`~ichpipe.pipeline.jobs.analyse_volume.analyse_volume` (``run``'s analysis: the default networks,
the threshold baseline beside them, every quality check) with ``max_network_pixel_mm`` off (``before``)
and as configured (``after``) on:

* phantoms made by ``ichpipe phantom --seed S --pixel-spacing P`` (512 x 512, the same synthetic patient
  at each pixel size; truth from its ``truth.json``), for each seed and pixel size;
* with ``--real``, the real GE HiSpeed head (``../shared/data/ct-real/ge-hispeed-head-tilt``) with
  ``--painted N`` bleeds painted one at a time (60-75 HU ellipsoids 15 mm or more inside the intracranial
  space, on the 8 slices round its widest), each read at its own 0.49 mm pixels and shrunk by 2 into a
  512 x 512 matrix of 0.98 mm pixels (a 500 mm field; padded with the image's corner value). Both on an
  even axial geometry at its median slice spacing (4 mm: its gantry tilt and its 7 mm upper spacing
  dropped, the same for both), truth the painted voxels in it;
  and the real IVH example (``../shared/data/ct-real-ich``, a skull-stripped export with its own blood, no
  truth: printed, not in the table) read the same two ways.

One JSON line per study goes to ``--out``; a table per pixel size follows (wrong: >= 1 mL and >= 25 % off,
as in ``evaluate --flags``; silent: wrong with no quality flag). About 20-40 s a study on the 2-core VM.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from head_motion import _painted_bleeds  # noqa: E402
from jsonl_rows import keep_row  # noqa: E402
from posterior_fossa import _heads  # noqa: E402

from ichpipe import load_segmenter  # noqa: E402
from ichpipe.dicom_io.assemble import CTVolume, assemble_series  # noqa: E402
from ichpipe.dicom_io.study import scan_study  # noqa: E402
from ichpipe.pipeline.config import Config, load_config  # noqa: E402
from ichpipe.pipeline.datasets.case import uniform_geometry  # noqa: E402
from ichpipe.pipeline.evaluation.flag_scoring import WrongVolume  # noqa: E402
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume  # noqa: E402
from ichpipe.pipeline.segment.components import mask_volume_ml  # noqa: E402
from ichpipe.pipeline.segment.intracranial import intracranial_mask  # noqa: E402
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study  # noqa: E402


def _phantom(seed: int, pixel_mm: float, config: Config, folder: Path) -> tuple[CTVolume, float]:
    """``ichpipe phantom --seed SEED --pixel-spacing PIXEL_MM``'s study, read as ``run`` reads it, and its truth."""
    out = folder / f"s{seed}-p{pixel_mm}"
    truth = write_phantom_study(out, PhantomSpec(seed=seed, pixel_spacing_mm=pixel_mm)).data["hematoma"]["volume_ml"]
    with scan_study(out, discovery=config.discovery, selection=config.selection, geometry=config.geometry) as scan:
        return assemble_series(scan.require_selected().series, config=config.geometry), float(truth)


def _even(volume: CTVolume, hu: np.ndarray, pixel_mm: float) -> CTVolume:
    step = float(np.median(np.diff(np.asarray(volume.geometry.offsets_mm, dtype=float))))
    geometry = uniform_geometry(n_slices=hu.shape[0], rows=hu.shape[1], columns=hu.shape[2],
                                pixel_spacing_mm=pixel_mm, slice_thickness_mm=step)
    return replace(volume, hu=np.ascontiguousarray(hu, dtype=np.float32), geometry=geometry)


def _shrunk(hu: np.ndarray) -> np.ndarray:
    """Each slice shrunk by 2 (2 x 2 means) into the middle of a matrix of the same size, padded."""
    n, rows, cols = hu.shape
    small = hu.reshape(n, rows // 2, 2, cols // 2, 2).mean(axis=(2, 4))
    out = np.full(hu.shape, float(hu[0, 0, 0]), dtype=np.float32)
    out[:, rows // 4 : rows // 4 + rows // 2, cols // 4 : cols // 4 + cols // 2] = small
    return out


def _painted_ge(count: int, seed: int, config: Config) -> list[tuple[str, CTVolume, float | None]]:
    ge = _heads(config)["ge"]
    px = float(ge.geometry.pixel_spacing_mm[0])
    studies: list[tuple[str, CTVolume, float | None]] = []
    for k, hu, blood in _painted_bleeds(ge, intracranial_mask(ge.hu, ge.geometry), count, seed):
        native = _even(ge, hu, px)
        truth = mask_volume_ml(blood, native.geometry.voxel_volumes_ml)
        studies.append((f"ge-painted-{k}-p{px:.2f}", native, truth))
        studies.append((f"ge-painted-{k}-p{2 * px:.2f}", _even(ge, _shrunk(hu), 2 * px), truth))
    return studies


def _ivh_example(config: Config) -> list[tuple[str, CTVolume, float | None]]:
    """The real IVH example (a skull-stripped export, no truth) at its own pixels and shrunk by 2."""
    ivh = _heads(config)["ivh"]
    px = float(ivh.geometry.pixel_spacing_mm[0])
    return [(f"ivh-example-p{px:.2f}", _even(ivh, ivh.hu, px), None),
            (f"ivh-example-p{2 * px:.2f}", _even(ivh, _shrunk(ivh.hu), 2 * px), None)]


def _studies(args: argparse.Namespace, config: Config, folder: Path) -> Iterator[tuple[str, CTVolume, float | None]]:
    """The studies to read, each made when it is reached (the real ones first, with ``--real``)."""
    if args.real:
        yield from [*_painted_ge(args.painted, args.seed, config), *_ivh_example(config)]
    for seed in (int(s) for s in args.seeds.split(",") if s):
        for pixel in (float(p) for p in args.pixels.split(",") if p):
            yield (f"phantom-s{seed}-p{pixel}", *_phantom(seed, pixel, config, folder))


def _table(rows: list[dict[str, Any]]) -> None:
    print("| pixel mm | studies | before: read / truth, median (range) | wrong (silent) | after: read / truth,"
          " median (range) | wrong (silent) |")
    print("|---:|---:|---|---|---|---|")
    for pixel in sorted({r["pixel_mm"] for r in rows if r["truth_ml"] is not None}):
        group = [r for r in rows if r["pixel_mm"] == pixel and r["truth_ml"] is not None]
        cells = []
        for when in ("before", "after"):
            share = [r[when]["ml"] / r["truth_ml"] for r in group]
            wrong = [r for r in group if WrongVolume().is_wrong(predicted_ml=r[when]["ml"], true_ml=r["truth_ml"])]
            silent = sum(not r[when]["codes"] for r in wrong)
            cells.append(f"{np.median(share):.2f} ({min(share):.2f}-{max(share):.2f}) | {len(wrong)} ({silent})")
        print(f"| {pixel:.2f} | {len(group)} | {cells[0]} | {cells[1]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3", help="phantom seeds (one synthetic patient each)")
    parser.add_argument("--pixels", default="0.45,0.65,0.85,0.9,0.95,1.0,1.2", help="phantom pixel sizes, mm")
    parser.add_argument("--real", action="store_true", help="also the real GE head with painted bleeds")
    parser.add_argument("--painted", type=int, default=4, help="with --real: bleeds painted, a study each")
    parser.add_argument("--seed", type=int, default=0, help="seed of the painted bleeds' places and sizes")
    parser.add_argument("--out", type=Path, default=Path("large_field.jsonl"))
    args = parser.parse_args()
    config = load_config()
    before = replace(config, inference=replace(config.inference, max_network_pixel_mm=None))
    segmenters = {"before": load_segmenter(config=before), "after": load_segmenter(config=config)}
    runs = (("before", before), ("after", config))
    rows: list[dict[str, Any]] = []
    with args.out.open("w") as sink, TemporaryDirectory(prefix="ichpipe-large-field-") as folder:
        for name, volume, truth in _studies(args, config, Path(folder)):
            row: dict[str, Any] = {"study": name, "pixel_mm": round(float(volume.geometry.pixel_spacing_mm[0]), 3),
                                   "truth_ml": None if truth is None else round(truth, 3)}
            for when, cfg in runs:
                result = analyse_volume(volume, segmenters[when], cfg)
                row[when] = {"ml": round(result.measurement.volume_ml, 3), "codes": list(result.quality.codes)}
            keep_row(row, sink, rows)
    _table(rows)


if __name__ == "__main__":
    main()
