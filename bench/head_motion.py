"""A head that moves during the scan: what motion does to the reported volume, and whether it is flagged.

Usage (from the repository root, in the project's venv)::

    python bench/head_motion.py --set generated/eval-v6 [--cases 6] [--real] [--out FILE.jsonl] [--keep DIR]

No CT with motion is in ``../shared/data``. This adds in-plane motion during the gantry's rotation
(:func:`ichpipe.pipeline.synthetic.head_motion.head_motion`: a jerk that turns the head about the image
centre and shifts it, at a random moment of each slice's rotation and in a random direction) and runs each
study through :func:`~ichpipe.pipeline.jobs.analyse_volume.analyse_volume` (``run``'s analysis: the default
network, the threshold baseline beside it, every quality check), once still and once per kind:

* ``slight``: 1 degree and 1 mm; ``moderate``: 2 degrees and 2 mm; ``strong``: 4 degrees and 3 mm.

On a phantom study the motion is on the bleed's slices and one beyond each end (phantom studies under
1 mL of truth are skipped). ``--real`` adds the real GE normal head
(``../shared/data/ct-real/ge-hispeed-head-tilt``; motion on the 8 slices round the widest intracranial
slice; its truth is 0 mL), ``--painted N`` bleeds painted into it one at a time (60-75 HU ellipsoids
15 mm or more inside the space, on those slices; motion on each one's slices and one beyond each end)
and the real IVH example (``../shared/data/ct-real-ich``, motion on its middle
8 slices; no truth: its volume change is reported). One JSON line per run goes to ``--out``, with the
volume, the flags and ``quality.measurements.skipped_slice`` (runs already there are skipped, so an
interrupted run resumes); ``--keep DIR`` saves the moved slices
(``DIR/STUDY-KIND.npz``). The table printed at the end gives, per kind, how far the volume moved from the
still run, the wrong volumes (the census's bar: >= 1 mL and >= 25 % from the truth), the silent ones (no
quality flag at all; the IVH example has no truth) and the runs with any flag (no flag names
motion). About 5 s a moved slice of 512 x 512 (984 views) on the 2-core VM, then ``run``'s analysis.
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_cases import set_bleeds  # noqa: E402
from posterior_fossa import _heads, _paint  # noqa: E402

from ichpipe import load_segmenter  # noqa: E402
from ichpipe.dicom_io.assemble import CTVolume  # noqa: E402
from ichpipe.pipeline.config import load_config  # noqa: E402
from ichpipe.pipeline.evaluation.flag_scoring import WrongVolume  # noqa: E402
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume  # noqa: E402
from ichpipe.pipeline.segment.components import mask_volume_ml  # noqa: E402
from ichpipe.pipeline.segment.intracranial import intracranial_mask  # noqa: E402
from ichpipe.pipeline.synthetic.head_motion import head_motion  # noqa: E402

DATA = REPO.parent / "shared" / "data"
#: kind: (turn in degrees, shift in mm)
KINDS = {"slight": (1.0, 1.0), "moderate": (2.0, 2.0), "strong": (4.0, 3.0)}


def _with_motion(volume: CTVolume, kind: str, slices: list[int], seed: int) -> tuple[CTVolume, np.ndarray]:
    turn, shift = KINDS[kind]
    rng = np.random.default_rng(seed)
    px = float(volume.geometry.pixel_spacing_mm[0])
    hu = volume.hu.copy()
    for z in slices:
        direction = rng.uniform(0.0, 2.0 * np.pi)
        hu[z] = head_motion(hu[z], pixel_mm=px, rotation_deg=float(rng.choice([-1.0, 1.0])) * turn,
                            shift_mm=(shift * float(np.sin(direction)), shift * float(np.cos(direction))),
                            start=float(rng.uniform(0.2, 0.6)))
    return replace(volume, hu=hu), hu[slices]


def _middle(space: np.ndarray, count: int = 8) -> list[int]:
    widest = int(np.argmax(space.sum(axis=(1, 2))))
    first = max(0, min(widest - count // 2, space.shape[0] - count))
    return list(range(first, min(first + count, space.shape[0])))


def _painted_bleeds(volume: CTVolume, space: np.ndarray, count: int, seed: int
                    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``count`` bleeds painted one at a time into ``volume``: (k, its HU, the bleed).

    60-75 HU ellipsoids (4-8 mm along the normal, 8-14 mm in plane) centred 15 mm or more inside ``space``
    on the 8 slices round its widest (:func:`_middle`).
    """
    rng = np.random.default_rng(seed)
    ps = volume.geometry.pixel_spacing_mm
    depth = np.stack([ndimage.distance_transform_edt(p, sampling=ps) for p in space])
    allowed = np.zeros(space.shape, dtype=bool)
    near = _middle(space)
    allowed[near] = depth[near] >= 15.0
    candidates = np.argwhere(allowed)
    for k in range(count):
        centre = tuple(int(v) for v in candidates[rng.integers(len(candidates))])
        radii = (float(rng.uniform(4, 8)), float(rng.uniform(8, 14)), float(rng.uniform(8, 14)))
        hu, blood = _paint(volume, space, centre, radii, float(rng.uniform(60, 75)))
        yield k, hu, blood


def _studies(args: argparse.Namespace) -> Iterator[tuple[str, CTVolume, float | None, list[int]]]:
    if args.real:
        for name, volume in _heads(load_config()).items():
            space = intracranial_mask(volume.hu, volume.geometry)
            yield {"ge": "ge-hispeed-head", "ivh": "ivh-example"}[name], volume, (0.0 if name == "ge" else None), \
                _middle(space)
            if name != "ge":
                continue
            for k, hu, blood in _painted_bleeds(volume, space, args.painted, args.seed):
                ends = np.flatnonzero(blood.any(axis=(1, 2)))
                truth_ml = mask_volume_ml(blood, volume.geometry.voxel_volumes_ml)
                yield f"ge-painted-{k}", replace(volume, hu=hu), truth_ml, \
                    list(range(max(0, ends[0] - 1), min(space.shape[0], ends[-1] + 2)))
    if args.set is None:
        return
    for case_id, volume, truth_ml, mask in set_bleeds(args.set, args.cases):
        ends = np.flatnonzero(mask.any(axis=(1, 2)))
        yield case_id, volume, truth_ml, list(range(max(0, ends[0] - 1), min(mask.shape[0], ends[-1] + 2)))


def _wrong(ml: float, truth_ml: float | None) -> bool | None:
    """The census's bar (:class:`WrongVolume`: >= 1 mL and >= 25 % of the truth off); None without a truth."""
    return None if truth_ml is None else WrongVolume().is_wrong(predicted_ml=ml, true_ml=truth_ml)


def _summary(rows: list[dict[str, Any]]) -> str:
    still = {r["study"]: r for r in rows if r["kind"] == "still"}
    lines = ["| kind | runs | volume change against the still head: median (range) | wrong | wrong with no flag"
             " (silent) | runs with a flag |", "|---|---:|---|---:|---:|---:|"]
    for kind in ("still", *KINDS):
        runs = [r for r in rows if r["kind"] == kind and r["study"] in still]
        if not runs:
            continue
        change = [r["ml"] - still[r["study"]]["ml"] for r in runs]
        wrong = [r for r in runs if _wrong(r["ml"], r["truth_ml"])]
        silent = sum(not r["codes"] for r in wrong)
        flagged = sum(bool(r["codes"]) for r in runs)
        lines.append(f"| {kind} | {len(runs)} | {np.median(change):+.2f} mL ({min(change):+.2f} to"
                     f" {max(change):+.2f}) | {len(wrong)} | {silent} | {flagged} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", help="a generated DICOM set (its manifest.csv)")
    parser.add_argument("--cases", type=int, help="at most this many studies with blood from the set")
    parser.add_argument("--real", action="store_true", help="also the real GE normal head and IVH example")
    parser.add_argument("--painted", type=int, default=0, help="with --real: bleeds painted into the GE head")
    parser.add_argument("--seed", type=int, default=0, help="seed of the painted bleeds' places and sizes")
    parser.add_argument("--out", type=Path, default=Path("head_motion.jsonl"))
    parser.add_argument("--keep", type=Path, help="save the moved slices here (STUDY-KIND.npz)")
    args = parser.parse_args()
    if args.real and not DATA.is_dir():
        parser.error(f"--real needs {DATA}")
    done = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.exists() else []
    seen = {(r["study"], r["kind"]) for r in done}
    config = load_config()
    segmenter = load_segmenter()
    with args.out.open("a") as sink:
        for study, volume, truth_ml, slices in _studies(args):
            for kind in ("still", *KINDS):
                if (study, kind) in seen:
                    continue
                moved = volume
                if kind != "still":
                    moved, planes = _with_motion(volume, kind, slices, seed=zlib.crc32(study.encode()))
                    if args.keep is not None:
                        args.keep.mkdir(parents=True, exist_ok=True)
                        np.savez_compressed(args.keep / f"{study}-{kind}.npz", slices=np.asarray(slices),
                                            hu=planes.astype(np.float32))
                result = analyse_volume(moved, segmenter, config)
                quality = result.quality.measurements
                row = {"study": study, "kind": kind, "truth_ml": truth_ml, "slices": slices,
                       "ml": round(result.measurement.volume_ml, 3),
                       "beside_ml": (quality.get("cross_check") or {}).get("volume_ml"),
                       "codes": list(result.quality.codes), "skipped_slice": quality.get("skipped_slice")}
                wrong = _wrong(row["ml"], truth_ml)
                print(json.dumps({**row, "wrong": wrong}), flush=True)
                sink.write(json.dumps(row) + "\n")
                sink.flush()
                done.append(row)
    print(_summary(done))


if __name__ == "__main__":
    main()
