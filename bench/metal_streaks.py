"""Metal in the head: what a clip, a coil or a probe with its streaks does to the reported volume.

Usage (from the repository root, in the project's venv)::

    python bench/metal_streaks.py --set generated/eval-v6 [--cases 7] [--ge] [--out FILE.jsonl]

No CT with metal in the head is in ``../shared/data``. This puts metal with its streaks
(:func:`ichpipe.pipeline.synthetic.metal_streaks.metal_streaks`) into studies and runs each through
:func:`~ichpipe.pipeline.jobs.analyse_volume.analyse_volume` (``run``'s analysis: the default network,
the threshold baseline beside it, every quality check), once without metal and once per kind:

* ``probe``: a 2.5 mm metal rod (0.5 per mm) through the bleed's centre on its slices and one beyond
  each end (a drain's or pressure probe's metal; on the GE head high in the right frontal lobe);
* ``clip``: a 4 x 8 mm block (0.5 per mm, a cobalt-chromium aneurysm clip) on the bleed's largest
  slice, 12-20 mm from the bleed and 15 mm or more inside the intracranial space;
* ``coil``: an 8 x 8 mm coil pack (1.5 per mm, platinum) on that slice and the next, placed the same way.

Phantom studies without blood (under 1 mL of truth) are skipped. ``--ge`` adds the real GE normal head
(``../shared/data/ct-real/ge-hispeed-head-tilt``) with each kind at a fixed place. One JSON line per run
goes to ``--out`` (runs already there are skipped, so an interrupted run resumes); the table printed at
the end gives, per kind, how far the volume moved from the run without metal, the wrong volumes (the
census's bar: >= 1 mL and >= 25 % from the truth), those with no flag but ``metal_artifact`` (silent
without it) and the runs flagged ``metal_artifact``. About a minute a run on the 2-core VM.
"""

from __future__ import annotations

import argparse
import json
import sys
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

from ichpipe import load_segmenter  # noqa: E402
from ichpipe.dicom_io.assemble import CTVolume, assemble_series  # noqa: E402
from ichpipe.dicom_io.study import scan_study  # noqa: E402
from ichpipe.pipeline.config import Config, load_config  # noqa: E402
from ichpipe.pipeline.evaluation.flag_scoring import WrongVolume  # noqa: E402
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume  # noqa: E402
from ichpipe.pipeline.segment.intracranial import intracranial_mask  # noqa: E402
from ichpipe.pipeline.synthetic.metal_streaks import metal_streaks  # noqa: E402

GE = REPO.parent / "shared" / "data" / "ct-real" / "ge-hispeed-head-tilt"
#: kind: (half height mm, half width mm, attenuation per mm)
KINDS = {"probe": (1.25, 1.25, 0.5), "clip": (2.0, 4.0, 0.5), "coil": (4.0, 4.0, 1.5)}


def _ellipse(shape: tuple[int, ...], centre: tuple[float, float], ry: float, rx: float) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return ((yy - centre[0]) / ry) ** 2 + ((xx - centre[1]) / rx) ** 2 <= 1.0


def _with_metal(volume: CTVolume, kind: str, placements: list[tuple[int, float, float]]) -> CTVolume:
    ry, rx, mu = KINDS[kind]
    px = volume.geometry.pixel_spacing_mm
    hu = volume.hu.copy()
    for z, cy, cx in placements:
        metal = _ellipse(hu.shape[1:], (cy, cx), ry / px[0], rx / px[1])
        hu[z] = metal_streaks(hu[z], metal, pixel_mm=float(px[0]), metal_mu_per_mm=mu, seed=z)
    return replace(volume, hu=hu)


def _phantom_placements(volume: CTVolume, truth: np.ndarray, space: np.ndarray) -> dict[str, list]:
    px = float(volume.geometry.pixel_spacing_mm[0])
    z = int(np.argmax(truth.sum(axis=(1, 2))))
    out: dict[str, list] = {}
    ys, xs = np.nonzero(truth[z])
    ends = np.flatnonzero(truth.any(axis=(1, 2)))
    out["probe"] = [(k, float(ys.mean()), float(xs.mean()))
                    for k in range(max(0, ends[0] - 1), min(truth.shape[0], ends[-1] + 2))]
    away = ndimage.distance_transform_edt(~truth[z]) * px
    depth = ndimage.distance_transform_edt(space[z]) * px
    ok = (away >= 12) & (away <= 20) & (depth >= 15)
    if ok.any():
        cy, cx = (int(v[np.argmax(depth[ok])]) for v in np.nonzero(ok))
        out["clip"] = [(z, cy, cx)]
        out["coil"] = [(k, cy, cx) for k in (z, z + 1) if k < truth.shape[0]]
    return out


def _ge_placements(volume: CTVolume, space: np.ndarray) -> dict[str, list]:
    areas = space.sum(axis=(1, 2))
    widest = int(np.argmax(areas))
    low = int(np.argmax(areas[: widest + 1] > 0.5 * areas.max()))
    out: dict[str, list] = {}
    for kind, slices in (("probe", range(widest, min(widest + 4, len(areas)))), ("clip", [low]),
                         ("coil", [low, low + 1])):
        out[kind] = []
        for z in slices:
            ys, xs = np.nonzero(space[z])
            cy, cx = ys.mean(), xs.mean()
            if kind == "probe":  # high in the right frontal lobe
                cy, cx = cy - 0.45 * (ys.max() - cy), cx + 0.3 * (xs.max() - cx)
            out[kind].append((z, float(cy), float(cx)))
    return out


def _studies(args: argparse.Namespace, config: Config) -> Iterator[tuple[str, CTVolume, float | None, dict[str, list]]]:
    if args.ge:
        with scan_study(GE, discovery=config.discovery, selection=config.selection,
                        geometry=config.geometry) as scan:
            volume = assemble_series(scan.require_selected().series, config=config.geometry)
        yield "ge-hispeed-head", volume, 0.0, _ge_placements(volume, intracranial_mask(volume.hu, volume.geometry))
    if args.set is None:
        return
    for case_id, volume, truth_ml, mask in set_bleeds(args.set, args.cases):
        space = intracranial_mask(volume.hu, volume.geometry)
        yield case_id, volume, truth_ml, _phantom_placements(volume, mask, space)


def _summary(rows: list[dict[str, Any]]) -> str:
    base = {r["study"]: r for r in rows if r["kind"] == "none"}
    lines = ["| kind | runs | volume change against no metal: median (range) | wrong | wrong, with no flag but"
             " `metal_artifact` | flagged `metal_artifact` |", "|---|---:|---|---:|---:|---:|"]
    for kind in ("none", *KINDS):
        runs = [r for r in rows if r["kind"] == kind and r["study"] in base]
        if not runs:
            continue
        change = [r["ml"] - base[r["study"]]["ml"] for r in runs]
        wrong = [r for r in runs if WrongVolume().is_wrong(predicted_ml=r["ml"], true_ml=r["truth_ml"])]
        silent = sum(not set(r["codes"]) - {"metal_artifact"} for r in wrong)
        metal = sum("metal_artifact" in r["codes"] for r in runs)
        lines.append(f"| {kind} | {len(runs)} | {np.median(change):+.2f} mL ({min(change):+.2f} to"
                     f" {max(change):+.2f}) | {len(wrong)} | {silent} | {metal} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", help="a generated DICOM set (its manifest.csv)")
    parser.add_argument("--cases", type=int, help="at most this many studies with blood from the set")
    parser.add_argument("--ge", action="store_true", help="also the real GE normal head (../shared/data)")
    parser.add_argument("--out", type=Path, default=Path("metal_streaks.jsonl"))
    args = parser.parse_args()
    if args.ge and not GE.is_dir():
        parser.error(f"--ge needs {GE}")
    done = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.exists() else []
    seen = {(r["study"], r["kind"]) for r in done}
    config = load_config()
    segmenter = load_segmenter()
    with args.out.open("a") as sink:
        for study, volume, truth_ml, placements in _studies(args, config):
            for kind in ("none", *placements):
                if (study, kind) in seen:
                    continue
                metal = volume if kind == "none" else _with_metal(volume, kind, placements[kind])
                result = analyse_volume(metal, segmenter, config)
                row = {"study": study, "kind": kind, "truth_ml": truth_ml, "ml": round(result.measurement.volume_ml, 3),
                       "beside_ml": (result.quality.measurements.get("cross_check") or {}).get("volume_ml"),
                       "codes": list(result.quality.codes),
                       "metal_in_head": result.quality.measurements.get("metal_in_head")}
                print(json.dumps(row), flush=True)
                sink.write(json.dumps(row) + "\n")
                sink.flush()
                done.append(row)
    print(_summary(done))


if __name__ == "__main__":
    main()
