"""An unchanged bleed scanned again: how far apart ``run`` reads the two scans, and whether the expansion rule fires.

Usage (from the repository root, in the project's venv)::

    python bench/rescan_repeatability.py [--cases 16] [--seed 1] [--volume 2,40]
        [--scans base,phase,tilt,tilt_fov] [--out rescan.jsonl]
        [--table FILES...]

Serial scans of one patient are held to the expansion rule (``expansion``: growth of >= 6 mL or >= 33 %
over the first scan). A bleed that has not changed, scanned again with the head placed differently,
must not read as grown; how far two such scans read apart is the noise floor of every expansion call.
No real scan pair of an unchanged bleed is in ``../shared/data``, so the generator's analytic phantom
head and bleed (one per case: a volume drawn log-uniform from ``--volume``, against the inner table
in half of the cases, ellipsoid or irregular by turns, 60-80 HU, image noise 5 HU) are written as DICOM
studies several times, the anatomy and the bleed the same, the acquisition not, each with its own noise:

- ``base``: 32 slices of 5 mm, no tilt, a 230 mm field;
- ``phase``: 33 slices, so that every slice lies 2.5 mm along the normal from ``base``'s;
- ``tilt``: a gantry tilt of 12 degrees;
- ``tilt_fov``: a tilt of 20 degrees and a 250 mm field (larger pixels);

and, when ``--scans`` names them, another protocol (a transfer's follow-up made at another hospital):

- ``thin``: 64 slices of 2.5 mm;
- ``noisy``: image noise of 8 HU (a lower dose).

Each study goes through ``run`` (:func:`~ichpipe.pipeline.jobs.run_study.run_study`: DICOM read, series
selection, the geometry along the normal, the default networks, every quality check); each scan's truth
is its own label volume (the bleed as that scan samples it). For every ordered pair of scans of one
bleed (the first as the baseline) the growth that ``run``'s volume, its ABC/2 and the truth show is held
to the configured rule (:meth:`~ichpipe.pipeline.serial.expansion.ExpansionRule.criteria_met`); a pair
that meets it is a false expansion. One JSON line per case goes to ``--out``; the table gives, per bleed
size, the pairs, the false expansions by each measure (and how many of those had a quality flag on
either scan, which makes the serial verdict ``undetermined`` instead), and the 95 % limits of agreement
(1.96 standard deviations of the pairs' differences, in mL and in % of their mean). About 25 s a case
with the four default scans on the 2-core VM (more with ``thin``).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from jsonl_rows import keep_row, read_rows  # noqa: E402

from ichpipe.pipeline.config import Config, load_config  # noqa: E402
from ichpipe.pipeline.jobs.run_study import RunOptions, build_segmenter, run_study  # noqa: E402
from ichpipe.pipeline.serial.expansion import ExpansionRule  # noqa: E402
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study  # noqa: E402

#: The acquisitions of one bleed: PhantomSpec fields that differ from ``base``.
SCANS: dict[str, dict[str, Any]] = {
    "base": {},
    "phase": {"n_slices": 33},
    "tilt": {"gantry_tilt_deg": 12.0},
    "tilt_fov": {"gantry_tilt_deg": 20.0, "field_of_view_mm": 250.0},
    "thin": {"n_slices": 64, "slice_spacing_mm": 2.5},
    "noisy": {"noise_hu": 8.0},
}

#: Bleed sizes the table groups by (mL of the first scan's truth): (label, least, below).
BANDS = (("under 5 mL", 0.0, 5.0), ("5-15 mL", 5.0, 15.0), ("15 mL and more", 15.0, np.inf))


def _read(study: Path, config: Config, work: Path) -> dict[str, Any]:
    """``run``'s volume, ABC/2 and quality codes for one study."""
    options = RunOptions(study=study, out=work / "out")
    report = run_study(options, config, segmenter=build_segmenter(options, config)).report
    return {"read_ml": round(float(report["hematoma"]["volume_ml"]), 3),
            "abc2_ml": round(float(report["hematoma"]["abc2_ml"]), 3),
            "codes": [f["code"] for f in report["quality"]["flags"]]}


def _pairs(row: dict[str, Any], key: str, rule: ExpansionRule) -> list[tuple[float, float, bool, bool]]:
    """Per ordered pair of scans: (difference, mean, the rule met, a flag on either scan) of measure ``key``."""
    out = []
    for a, b in itertools.permutations(row["scans"], 2):
        first, second = row["scans"][a][key], row["scans"][b][key]
        delta = second - first
        pct = 100.0 * delta / first if first > 0 else None
        flagged = bool(row["scans"][a]["codes"] or row["scans"][b]["codes"])
        out.append((delta, (first + second) / 2, bool(rule.criteria_met(delta, pct)), flagged))
    return out


def table(rows: list[dict[str, Any]], rule: ExpansionRule) -> None:
    """Per bleed size: ordered pairs, false expansions by run's volume / ABC/2 / truth, limits of agreement."""
    print(f"Rule: {rule.describe()}.")
    print("| bleed (first scan's truth) | cases | pairs | false expansions: volume (with a flag) | ABC/2 | truth"
          " | volume: 95 % limits mL | % of the mean | largest difference mL |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for label, least, below in BANDS:
        group = [r for r in rows if least <= next(iter(r["scans"].values()))["truth_ml"] < below]
        if not group:
            continue
        cells = {key: [p for r in group for p in _pairs(r, key, rule)] for key in ("read_ml", "abc2_ml", "truth_ml")}
        vol = cells["read_ml"]
        diffs = np.array([d for d, _, _, _ in vol])
        pct = np.array([100 * d / m for d, m, _, _ in vol if m > 0])
        fired = [p for p in vol if p[2]]
        print(f"| {label} | {len(group)} | {len(vol)} | {len(fired)} ({sum(p[3] for p in fired)})"
              f" | {sum(p[2] for p in cells['abc2_ml'])} | {sum(p[2] for p in cells['truth_ml'])}"
              f" | +-{1.96 * diffs.std():.2f} | +-{1.96 * pct.std():.0f} | {np.abs(diffs).max():.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--volume", default="2,40", help="LEAST,MOST mL: the bleed's volume, drawn log-uniform")
    parser.add_argument("--scans", default="base,phase,tilt,tilt_fov",
                        help=f"the acquisitions of each bleed, from {', '.join(SCANS)}; the first is the size's")
    parser.add_argument("--out", type=Path, default=Path("rescan.jsonl"))
    parser.add_argument("--table", type=Path, nargs="+", help="print the table of these JSON-line files, run nothing")
    args = parser.parse_args()
    least, most = (float(v) for v in args.volume.split(","))
    if not 0 < least < most:
        parser.error(f"--volume must be LEAST,MOST with 0 < LEAST < MOST; got {args.volume!r}")
    scans = args.scans.split(",")
    if len(scans) < 2 or len(set(scans)) < len(scans) or not set(scans) <= set(SCANS):
        parser.error(f"--scans must name two or more of {', '.join(SCANS)}, once each; got {args.scans!r}")
    rule = load_config().expansion.rule()
    if args.table:
        table(read_rows(args.table), rule)
        return
    rng = np.random.default_rng(args.seed)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ichpipe-rescan-") as tmp, args.out.open("w") as sink:
        work = Path(tmp)
        base = load_config(None, overrides={"store": {"path": str(work / "store.sqlite")}})
        config = replace(base, inference=replace(base.inference, device="cpu"))
        case = 0
        while case < args.cases:
            spec = PhantomSpec(seed=int(rng.integers(2**31)), touch_skull=bool(rng.uniform() < 0.5),
                               shape="irregular" if case % 2 else "ellipsoid", noise_hu=5.0,
                               volume_ml=float(np.exp(rng.uniform(np.log(least), np.log(most)))))
            row: dict[str, Any] = {"seed": spec.seed, "touch_skull": spec.touch_skull, "shape": spec.shape,
                                   "volume_ml": round(float(spec.volume_ml or 0), 2), "scans": {}}
            try:
                truths = {name: write_phantom_study(work / f"case{case}-{name}", replace(spec, **change)).volume_ml
                          for name, change in SCANS.items() if name in scans}
            except ValueError as exc:  # the bleed does not fit this head or slab: draw another
                print(f"seed {spec.seed} skipped: {exc}", flush=True)
                continue
            for name in scans:
                row["scans"][name] = {"truth_ml": round(float(truths[name]), 3),
                                      **_read(work / f"case{case}-{name}", config, work)}
            keep_row(row, sink, rows)
            case += 1
    table(rows, rule)


if __name__ == "__main__":
    main()
