"""A head turned in the image: does the reported volume depend on how the head lies?

Usage (from the repository root, in the project's venv)::

    python bench/head_rotation.py [--set generated/eval-v6 --cases 6] [--real] [--phe]
                                  [--angles 15 30 90 180] [--out FILE.jsonl]

A patient's head is often turned on the table, and a decubitus or prone scan lies at 90 or 180 degrees
in the image; the networks learnt heads within small turns of upright (and flipped front to back).
Each study is turned in plane by each angle (90, 180 and 270 exactly, by whole pixels; other angles by
linear interpolation, the field outside filled with the image's air) and runs through
:func:`~ichpipe.pipeline.jobs.analyse_volume.analyse_volume` (``run``'s analysis: the default network,
the threshold baseline beside it, every quality check). An interpolated turn also smooths the image, so
for those angles the study is also turned there and back (``back``: the same smoothing, upright): the
difference between the two is what the orientation does.

Studies: ``--set`` phantom bleeds of 1 mL or more (the truth known); ``--real`` 4 bleeds painted into
the real GE normal head (``../shared/data/ct-real``; as ``bench/head_motion.py --painted 4``);
``--phe`` the 51 real PHE-SICH-CT-IDS patients (``../shared/data/phe-sich-ct-ids-dev``, PNG stacks
under the evaluation's assumed window and spacing; no truth: the change from upright is reported).
One JSON line per study and angle goes to ``--out`` (runs already there are skipped), with the turn
the pipeline measured and whether the networks read the head upright (``quality.measurements.head_turn``;
since the twenty-eighth session from 10 degrees; ``--as-lies`` turns that off, as before).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_cases import set_bleeds  # noqa: E402
from head_motion import _painted_bleeds  # noqa: E402
from posterior_fossa import _heads  # noqa: E402

from ichpipe import load_segmenter  # noqa: E402
from ichpipe.dicom_io.assemble import CTVolume  # noqa: E402
from ichpipe.pipeline.config import load_config  # noqa: E402
from ichpipe.pipeline.evaluation.box_slices import PngAssumptions, list_box_patients, patient_volume  # noqa: E402
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume  # noqa: E402
from ichpipe.pipeline.segment.components import mask_volume_ml  # noqa: E402
from ichpipe.pipeline.segment.intracranial import intracranial_mask  # noqa: E402
from ichpipe.pipeline.segment.upright import turn_slices  # noqa: E402

DATA = REPO.parent / "shared" / "data"


def turned(hu: np.ndarray, angle: float) -> np.ndarray:
    """``hu`` turned in plane by ``angle`` degrees (whole quarter turns exactly, others interpolated as the
    networks' own turn is, :func:`turn_slices`, the field outside filled with the image's air)."""
    if angle % 90 == 0:
        return np.ascontiguousarray(np.rot90(hu, int(angle // 90) % 4, axes=(1, 2)))
    return turn_slices(hu, angle, fill=float(np.percentile(hu, 1)))


def _studies(args: argparse.Namespace) -> Iterator[tuple[str, CTVolume, float | None]]:
    if args.real:
        volume = _heads(load_config())["ge"]
        space = intracranial_mask(volume.hu, volume.geometry)
        for k, hu, blood in _painted_bleeds(volume, space, 4, 0):
            yield f"ge-painted-{k}", replace(volume, hu=hu), mask_volume_ml(blood, volume.geometry.voxel_volumes_ml)
    if args.phe:
        for patient in list_box_patients(DATA / "phe-sich-ct-ids-dev"):
            yield f"phe-{patient.patient_id}", patient_volume(patient, PngAssumptions()), None
    if args.set is not None:
        for case_id, volume, truth_ml, _ in set_bleeds(args.set, args.cases):
            yield case_id, volume, truth_ml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", help="a generated DICOM set (its manifest.csv)")
    parser.add_argument("--cases", type=int, help="at most this many studies with blood from the set")
    parser.add_argument("--real", action="store_true", help="4 bleeds painted into the real GE normal head")
    parser.add_argument("--phe", action="store_true", help="the 51 real PHE-SICH patients (no truth)")
    parser.add_argument("--angles", type=float, nargs="+", default=[15.0, 30.0, 90.0, 180.0])
    parser.add_argument("--as-lies", action="store_true",
                        help="inference.upright_min_degrees null: the networks read every head as it lies")
    parser.add_argument("--out", type=Path, default=Path("head_rotation.jsonl"))
    args = parser.parse_args()
    done = {(r["study"], r["angle"]) for r in map(json.loads, args.out.read_text().splitlines())} \
        if args.out.exists() else set()
    config = load_config()
    if args.as_lies:
        config = replace(config, inference=replace(config.inference, upright_min_degrees=None))
    segmenter = load_segmenter(config=config)
    with args.out.open("a") as sink:
        for study, volume, truth_ml in _studies(args):
            for angle in (0.0, *args.angles):
                if (study, angle) in done:
                    continue
                row = {"study": study, "truth_ml": truth_ml, "angle": angle}
                result = analyse_volume(replace(volume, hu=turned(volume.hu, angle)), segmenter, config)
                row.update(ml=round(result.measurement.volume_ml, 3), codes=list(result.quality.codes),
                           head_turn=result.quality.measurements.get("head_turn"))
                if angle % 90:
                    back = turned(turned(volume.hu, angle), -angle)
                    result = analyse_volume(replace(volume, hu=back), segmenter, config)
                    row.update(back_ml=round(result.measurement.volume_ml, 3), back_codes=list(result.quality.codes))
                print(json.dumps(row), flush=True)
                sink.write(json.dumps(row) + "\n")
                sink.flush()


if __name__ == "__main__":
    main()
