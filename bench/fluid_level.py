"""A fluid level in phantom bleeds: what ``run`` reads, and whether ``fluid_level`` says so.

Usage (from the repository root, in the project's venv)::

    python bench/fluid_level.py --set generated/eval-v8 [--cases 5] [--serum-hu 30] [--out FILE.jsonl]

A bleed that does not clot (anticoagulants, a clotting disorder) layers: cells below, serum above a
horizontal level. No such real scan is in ``../shared/data``. Here each phantom bleed of the set (at
least 3 mL, not intraventricular) gets a level at its middle row: the part above it (anterior, the
patient supine) is moved to ``--serum-hu`` keeping its noise; the truth stays the whole bleed. Each
study goes through :func:`~ichpipe.pipeline.jobs.analyse_volume.analyse_volume` (``run``'s analysis,
default config). One JSON line per study goes to ``--out``; a table follows. About a minute a study
on the 2-core VM.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jsonl_rows import keep_row  # noqa: E402

from ichpipe import load_segmenter  # noqa: E402
from ichpipe.dicom_io.window import WindowPreset  # noqa: E402
from ichpipe.pipeline.config import load_config  # noqa: E402
from ichpipe.pipeline.datasets import load_case  # noqa: E402
from ichpipe.pipeline.datasets.manifest import read_manifest  # noqa: E402
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume  # noqa: E402
from ichpipe.pipeline.segment.components import mask_volume_ml  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", required=True, help="a generated DICOM set (its manifest.csv)")
    parser.add_argument("--cases", type=int, default=5, help="this many studies with blood from the set")
    parser.add_argument("--serum-hu", type=float, default=30.0, help="the layer above the level")
    parser.add_argument("--out", type=Path, default=Path("fluid_level.jsonl"))
    args = parser.parse_args()
    config, segmenter = load_config(), load_segmenter()
    rows = []
    with args.out.open("w") as sink:
        for entry in read_manifest(Path(args.set) / "manifest.csv").entries:
            if len(rows) >= args.cases:
                break
            case = load_case(entry)
            volume = case.as_ct_volume(WindowPreset(80, 40))
            blood = case.mask
            voxel_ml = volume.geometry.voxel_volumes_ml
            truth_ml = mask_volume_ml(blood, voxel_ml)
            if truth_ml < 3.0 or "intraventricular" in entry.source:
                continue
            level = int(np.median(np.nonzero(blood)[1]))  # rows grow posterior (HFS): above = smaller rows
            serum = blood.copy()
            serum[:, level:, :] = False
            hu = volume.hu.copy()
            hu[serum] = args.serum_hu + (hu[serum] - float(np.median(volume.hu[blood])))
            result = analyse_volume(replace(volume, hu=hu), segmenter, config)
            row = {"study": entry.case_id, "truth_ml": round(truth_ml, 2),
                   "serum_ml": round(mask_volume_ml(serum, voxel_ml), 2),
                   "ml": round(result.measurement.volume_ml, 2), "codes": list(result.quality.codes),
                   "fluid_level": result.quality.measurements.get("fluid_level")}
            keep_row(row, sink, rows)
    print("| study | truth mL | serum mL | read mL | flags |\n|---|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['study']} | {r['truth_ml']} | {r['serum_ml']} | {r['ml']} | {', '.join(r['codes']) or 'none'} |")


if __name__ == "__main__":
    main()
