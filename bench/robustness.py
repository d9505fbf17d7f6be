"""Robustness of ``ichpipe run`` on the scans archives hold: volume vs truth and the quality flags raised.

Usage (from the repository root, in the project's venv)::

    python bench/robustness.py [--out DIR] [--rows 512] [--segmenters threshold,network] [--threads 2]

Cases: phantoms (seed 3, one 30 mL hematoma against the inner table, 32 x 5 mm)
written by ``ichpipe phantom`` with a closed skull, a 70 deg bone flap removed
over the hematoma, a skull-stripped export (skull = 0 HU), a skull- and
air-stripped export (like the real IVH example), HU clipped at 320, MONOCHROME1
and no FrameOfReferenceUID; and the two real normal heads of
``../shared/data/ct-real`` (skipped, and said so, when that folder is absent).
Each case runs through :func:`~ichpipe.pipeline.jobs.run_study.run_study`, the
code of ``ichpipe run`` (DICOM in; report, SEG, key image, store row out), once
per segmenter: the threshold baseline, and the shipped default network (with
the baseline as its cross-check, as ``run`` does by default).

A case passes when its volume is within 15 % of truth (5 % for MONOCHROME1 and
no FrameOfReferenceUID, which must not change anything), or when it is flagged;
a real normal head passes with at most 1 mL unflagged (or flagged). The table
(Markdown) and every number (JSON) go to ``DIR`` (default
``bench-results/robustness``); the Markdown is what ``MODEL_CARD.md`` shows.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ichpipe.pipeline.config import Config, load_config  # noqa: E402
from ichpipe.pipeline.jobs.run_study import RunOptions, build_segmenter, run_study  # noqa: E402
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study  # noqa: E402

SHARED = REPO.parent / "shared" / "data"

#: name -> (phantom options, tolerance); None options = a real study folder under ../shared/data.
CASES: dict[str, tuple[dict[str, Any] | str, float]] = {
    "closed skull": ({}, 0.15),
    "open 70 deg flap over the hematoma": ({"skull_flap_deg": 70.0}, 0.15),
    "skull-stripped (skull = 0 HU)": ({"export": "skull_stripped"}, 0.15),
    "skull- and air-stripped (like the real IVH export)": ({"export": "skull_air_stripped"}, 0.15),
    "brain-only export (outside the inner table = 0 HU)": ({"export": "brain_only"}, 0.15),
    "HU clipped at 320": ({"clip_hu": 320.0}, 0.15),
    "MONOCHROME1": ({"photometric": "MONOCHROME1"}, 0.05),
    "no FrameOfReferenceUID": ({"frame_of_reference": False}, 0.05),
    "real GE HiSpeed head, normal (tilt 18.5 deg)": ("ct-real/ge-hispeed-head-tilt", 1.0),
    "real Philips head phantom, normal": ("ct-real/philips-ingenuity-head-phantom", 1.0),
}


def _verdict(volume: float, truth: float | None, tolerance: float, flags: list[str]) -> str:
    if truth is None:  # a real normal head: at most `tolerance` mL
        ok = volume <= tolerance
        return "ok (<= 1 mL)" if ok else ("flagged" if flags else "FAIL")
    if abs(volume - truth) <= tolerance * truth:
        return f"ok (within {tolerance:.0%})"
    return "flagged" if flags else "FAIL"


def run_case(name: str, study: Path, truth: float | None, tolerance: float, segmenter: str, config: Config,
             work: Path) -> dict[str, Any]:
    options = RunOptions(study=study, out=work / "out", segmenter=None if segmenter == "network" else segmenter)
    started = time.perf_counter()
    result = run_study(options, config, segmenter=build_segmenter(options, config))
    report = result.report
    flags = [f["code"] for f in report["quality"]["flags"]]
    volume = float(report["hematoma"]["volume_ml"])
    cross = report["quality"]["measurements"].get("cross_check")
    return {
        "case": name, "segmenter": report["segmenter"]["name"], "volume_ml": round(volume, 2),
        "truth_ml": truth, "error_pct": None if not truth else round(100.0 * (volume - truth) / truth, 1),
        "flags": flags, "verdict": _verdict(volume, truth, tolerance, flags),
        "method": report["quality"]["intracranial"].get("method"),
        "intracranial_ml": report["quality"]["intracranial"].get("intracranial_volume_ml"),
        "cross_check_ml": None if cross is None else cross["volume_ml"],
        "frame_of_reference_derived": report["frame_of_reference"]["derived"],
        "outputs": sorted(report["outputs"]), "timings_s": report["timings_s"],
        "wall_s": round(time.perf_counter() - started, 1), "n_slices": report["geometry"]["n_slices"],
    }


def markdown(rows: list[dict[str, Any]], skipped: list[str], header: str) -> str:
    lines = [header, "", "| case | segmenter | volume mL | truth mL | error | flags raised | verdict | intracranial"
             " method |", "|---|---|---:|---:|---:|---|---|---|"]
    for r in rows:
        truth = "normal" if r["truth_ml"] is None else f"{r['truth_ml']:.2f}"
        error = "" if r["error_pct"] is None else f"{r['error_pct']:+.1f} %"
        flags = ", ".join(f"`{f}`" for f in r["flags"]) or "none"
        lines.append(f"| {r['case']} | {r['segmenter']} | {r['volume_ml']:.2f} | {truth} | {error} | {flags} |"
                     f" {r['verdict']} | {r['method']} |")
    for s in skipped:
        lines.append(f"| {s} | - | - | - | - | - | skipped: ../shared/data absent | - |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "robustness")
    parser.add_argument("--rows", type=int, default=512, help="Phantom matrix (rows = columns).")
    parser.add_argument("--segmenters", default="threshold,network")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads.")
    parser.add_argument("--cases", default=None, help="Comma-separated substrings of case names to run.")
    args = parser.parse_args(argv)
    segmenters = [s.strip() for s in args.segmenters.split(",") if s.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ichpipe-robustness-") as tmp:
        work = Path(tmp)
        base = load_config(None, overrides={"store": {"path": str(work / "store.sqlite")}})
        config = replace(base, inference=replace(base.inference, threads=args.threads, device="cpu"))
        for name, (what, tolerance) in CASES.items():
            if args.cases and not any(c.strip() in name for c in args.cases.split(",")):
                continue
            if isinstance(what, str):
                study, truth = SHARED / what, None
                if not study.is_dir():
                    skipped.append(name)
                    print(f"skipped {name}: {study} is absent", flush=True)
                    continue
            else:
                study = work / f"case{len(rows)}"
                spec = PhantomSpec(seed=3, rows=args.rows, columns=args.rows, touch_skull=True, volume_ml=30.0,
                                   **what)
                truth = write_phantom_study(study, spec).volume_ml
            for segmenter in segmenters:
                row = run_case(name, study, truth, tolerance, segmenter, config, work)
                rows.append(row)
                print(json.dumps({k: row[k] for k in ("case", "segmenter", "volume_ml", "truth_ml", "flags",
                                                      "verdict", "wall_s")}), flush=True)
    header = (f"Measured {date.today().isoformat()} on {platform.node()} ({platform.processor() or 'CPU'}), "
              f"phantoms {args.rows}x{args.rows} x 32 slices, `python bench/robustness.py`.")
    (args.out / "robustness.md").write_text(markdown(rows, skipped, header))
    (args.out / "robustness.json").write_text(json.dumps({"rows": rows, "skipped": skipped}, indent=2) + "\n")
    print(markdown(rows, skipped, header))
    return 1 if any(r["verdict"] == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
