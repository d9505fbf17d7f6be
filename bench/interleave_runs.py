"""Before/after on one machine: ``ichpipe run --json`` of two worktrees, interleaved run by run.

Usage (any Python; each tree's own ``.venv/bin/ichpipe`` runs)::

    python bench/interleave_runs.py --before /work/main --after . --study STUDY [--repeats 3]
                                    [--cases threshold,default,full] [--work DIR]

Each repeat runs every case with the *before* tree, then the *after* tree, so
both see the same load; the whole command runs under ``/usr/bin/time -v`` and
``nice -n 10``. ``full`` is the full-size SA-CBAM U-Net with random weights
(seed 0), saved once by the *after* tree (the state-dict keys are the same in
both). Prints one JSON line per run, then a Markdown table of medians (wall
time, peak RSS, stages from the report's ``timings_s``) and the before/after
ratio per case, with the load average at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

STAGES = ["load_model", "intracranial", "segment", "cross_check", "quality", "outputs", "store"]


def _full_checkpoint(tree: Path, path: Path) -> None:
    code = (
        "import torch; from pathlib import Path; from ichpipe.models import build_model, save_checkpoint;"
        " torch.manual_seed(0); m = build_model('sa_cbam_unet');"
        f" save_checkpoint(Path({str(path)!r}), m, name='sa_cbam_unet', input_size=(512, 512),"
        " window={'width': 80.0, 'level': 40.0}, normalisation={'scale': 1 / 255, 'offset': 0.0},"
        " training_data='none: random weights for timing only')"
    )
    subprocess.run([str(tree / ".venv/bin/python"), "-c", code], check=True, cwd=tree)


def run_once(tree: Path, study: Path, out: Path, config: Path, args: list[str]) -> dict[str, Any]:
    """One whole ``ichpipe run --json`` of ``tree``: wall s, peak RSS MB, 1-min load before, volume, stages."""
    cmd = ["/usr/bin/time", "-v", "nice", "-n", "10", str(tree / ".venv/bin/ichpipe"), "run", "--study", str(study),
           "--out", str(out), "--json", "--config", str(config), *args]
    load = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: ichpipe run failed: {proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    return {"wall": round(wall, 2), "rss": round(int(match.group(1)) / 1024) if match else None,
            "load1": round(load, 2), "volume": report["hematoma"]["volume_ml"], "t": report["timings_s"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="Worktree with its own .venv (the old code).")
    parser.add_argument("--after", type=Path, required=True, help="Worktree with its own .venv (the new code).")
    parser.add_argument("--study", type=Path, required=True, help="Study folder (e.g. an `ichpipe phantom`).")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default="threshold,default,full")
    parser.add_argument("--work", type=Path, default=Path("bench-results/interleave"))
    opts = parser.parse_args()
    trees = {"before": opts.before.resolve(), "after": opts.after.resolve()}
    cases = [c for c in opts.cases.split(",") if c]
    opts.work.mkdir(parents=True, exist_ok=True)
    full = opts.work.resolve() / "full.pt"
    if "full" in cases and not full.exists():
        _full_checkpoint(trees["after"], full)
    args = {"threshold": ["--segmenter", "threshold"],
            "default": ["--checkpoint", "models/checkpoints/ichpipe-default.pt"],
            "full": ["--segmenter", "sa_cbam_unet", "--checkpoint", str(full)]}
    rows: list[dict[str, Any]] = []
    print(f"start: load average {os.getloadavg()}, {time.strftime('%H:%M:%S')}", flush=True)
    for rep in range(opts.repeats):
        for case in cases:
            for name, tree in trees.items():
                config = opts.work / f"config-{name}.yaml"
                config.write_text(f"store:\n  path: {(opts.work / f'store-{name}.sqlite').resolve()}\n")
                out = opts.work / f"out-{name}-{case}-{rep}"
                row = {"tree": name, "case": case, "rep": rep,
                       **run_once(tree, opts.study.resolve(), out.resolve(), config.resolve(), args[case])}
                rows.append(row)
                print(json.dumps(row), flush=True)
                subprocess.run(["rm", "-rf", str(out)], check=True)
    print(f"end: load average {os.getloadavg()}, {time.strftime('%H:%M:%S')}", flush=True)
    (opts.work / f"rows-{opts.study.name}.json").write_text(json.dumps(rows, indent=1) + "\n")
    print("| case | tree | wall s (median) | runs | peak RSS MB | " + " | ".join(STAGES) + " | volume mL |")
    print("|---|---|---:|---|---:|" + "---:|" * (len(STAGES) + 1))
    for case in cases:
        for name in trees:
            rs = [r for r in rows if r["tree"] == name and r["case"] == case]
            stages = " | ".join(f"{statistics.median(r['t'].get(s, 0.0) for r in rs):.2f}" for s in STAGES)
            print(f"| {case} | {name} | {statistics.median(r['wall'] for r in rs):.2f} |"
                  f" {', '.join(str(r['wall']) for r in rs)} | {statistics.median(r['rss'] or 0 for r in rs):.0f} |"
                  f" {stages} | {rs[0]['volume']} |")
        before = statistics.median(r["wall"] for r in rows if r["tree"] == "before" and r["case"] == case)
        after = statistics.median(r["wall"] for r in rows if r["tree"] == "after" and r["case"] == case)
        print(f"\nratio {case}: before / after = {before / after:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
