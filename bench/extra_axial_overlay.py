"""An extra-axial phantom measured with and without the low-density growth: volumes and an overlay for the card.

Usage (from the repository root, in the project's venv, after ``ichpipe train data`` made the set)::

    python bench/extra_axial_overlay.py [--manifest generated/xa-eval/manifest.csv] [--case xa-4-0005]
                                        [--png docs/isodense_subdural.png]

The case is measured by :func:`~ichpipe.pipeline.jobs.analyse_volume.analyse_volume`
(the code ``run`` uses) with the default configuration, once with
``inference.extra_axial.low_density_grow_threshold`` off and once as configured.
Printed: the true volume and each measurement with its recall and flags. Drawn:
four slices through the largest part of the truth, brain window, the true mask
in green, the measurement without the growth in yellow and the growth in red.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from ivh_example import overlay  # noqa: E402

from ichpipe.dicom_io.window import WindowPreset  # noqa: E402
from ichpipe.pipeline.config import load_config  # noqa: E402
from ichpipe.pipeline.datasets import load_case  # noqa: E402
from ichpipe.pipeline.datasets.manifest import read_manifest  # noqa: E402
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume  # noqa: E402
from ichpipe.pipeline.jobs.run_study import RunOptions, build_segmenter  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, default=REPO / "generated" / "xa-eval" / "manifest.csv")
    parser.add_argument("--case", default="xa-4-0005")
    parser.add_argument("--png", type=Path, default=REPO / "docs" / "isodense_subdural.png")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if not args.manifest.is_file():
        print(f"skipped: {args.manifest} is absent (make it with `ichpipe train data`; the model card has the command)")
        return 0
    entries = [e for e in read_manifest(args.manifest).entries if e.case_id == args.case]
    if not entries:
        raise SystemExit(f"error: no case '{args.case}' in {args.manifest}")
    case = load_case(entries[0])
    volume = case.as_ct_volume(WindowPreset(width=80.0, level=40.0))
    truth = case.mask.astype(bool)
    ml = volume.geometry.voxel_volumes_ml[:, None, None]
    base = load_config(None)
    masks = {}
    for name, grow in (("without growth", None), ("default", base.inference.extra_axial.low_density_grow_threshold)):
        extra = replace(base.inference.extra_axial, low_density_grow_threshold=grow)
        config = replace(base, inference=replace(base.inference, threads=args.threads, device="cpu",
                                                 extra_axial=extra))
        analysis = analyse_volume(volume, build_segmenter(RunOptions(study=args.manifest), config), config)
        masks[name] = analysis.mask
        print(json.dumps({name: {
            "low_density_grow_threshold": grow,
            "volume_ml": round(analysis.measurement.volume_ml, 2),
            "true_ml": round(float((truth * ml).sum()), 2),
            "recall": round(float((analysis.mask & truth).sum() / max(1, truth.sum())), 3),
            "flags": [f.code for f in analysis.quality.flags],
        }}), flush=True)
    z = int(np.argmax(truth.sum(axis=(1, 2))))
    slices = [k for k in (z - 3, z - 1, z + 1, z + 3) if 0 <= k < truth.shape[0]]
    grown = masks["default"] & ~masks["without growth"]
    overlay(volume, slices, [(truth, (0, 220, 0)), (masks["without growth"], (255, 220, 0)), (grown, (255, 40, 40))],
            (slice(40, 472), slice(40, 472)), args.png, scale=1)
    print(f"wrote {args.png} (slices {slices}; green truth, yellow without growth, red grown)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
