"""Air inside the head painted into the real GE head: is air against bone or blood read as blood?

Usage (from the repository root, in the project's venv)::

    python bench/pneumocephalus.py [--cases 6] [--seed 1] [--kinds cap,bubbles,cavity]
        [--out pneumocephalus.jsonl] [--table FILES...]

Air in the intracranial space follows a craniotomy, a clot's evacuation, a drain or a skull-base
fracture: the follow-up scans that ``ichpipe`` links to measure residual blood and expansion. No scan
with intracranial air is in ``../shared/data``, so air is painted into the real GE HiSpeed head (DICOM),
the patient supine, air rising to the front (the series' own geometry says where the front is):

* ``cap``: frontal air against the inner table, the space's voxels within 3-15 mm (a level, straight
  across the slices) of its most anterior point: the "frontal cap" after a craniotomy. Truth 0 mL.
* ``bubbles``: 4-14 balls of 1-4 mm radius within 0-8 mm of the space's edge, on the upper two thirds of
  the head's slices (air in the sulci or the subarachnoid space). Truth 0 mL.
* ``cavity``: a clot (ellipsoid, radii 10-18 x 12-22 x 12-22 mm, 60-75 HU plus the head's noise) 10-40 mm
  deep whose front 20-50 % (a level) is air, as in a cavity after evacuation. Truth: the clot's voxels
  that are not air. The same clot whole, without air, is read too (``without_air``): what the networks
  make of the clot alone.

The air's edge is blurred as a scanner blurs it (the air fraction smoothed by 0.25 slice along the
normal, which leaves the next slice clear, and 0.7 pixel in plane; each voxel then mixes -1000 HU with
what it was), so that air against bone passes through blood's density as on a real scan. Each study goes through
:func:`~ichpipe.pipeline.jobs.analyse_volume.analyse_volume` (``run``'s analysis, default networks,
every quality check); ``read`` is the volume minus the clean head's. A volume is wrong when it is
0.5 mL or more off with no blood painted (the normal-head bar), or 1 mL and 25 % off with a clot. One
JSON line per study goes to ``--out``; the table gives, per kind, the wrong volumes, how many of them
raised no flag, and the flags raised. About 10 s a study on the 2-core VM.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from heterogeneous_clot import ellipsoid_q  # noqa: E402
from jsonl_rows import keep_row, read_rows  # noqa: E402
from posterior_fossa import _heads  # noqa: E402

from ichpipe import load_segmenter  # noqa: E402
from ichpipe.dicom_io.assemble import CTVolume  # noqa: E402
from ichpipe.pipeline.config import load_config  # noqa: E402
from ichpipe.pipeline.config.schema import Config  # noqa: E402
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume  # noqa: E402
from ichpipe.pipeline.segment.components import mask_volume_ml  # noqa: E402
from ichpipe.pipeline.segment.intracranial import find_intracranial_in  # noqa: E402

AIR_HU = -1000.0


def wrong(row: dict[str, Any]) -> bool:
    """0.5 mL or more read with no blood painted; 1 mL and 25 % off with a clot."""
    error = abs(row["read_ml"] - row["truth_ml"])
    if row["truth_ml"] == 0:
        return error >= 0.5
    return error >= 1.0 and error >= 0.25 * row["truth_ml"]


def _line(label: str, group: list[dict[str, Any]]) -> str:
    """One row of the table: air, truth, mean absolute error, wrong (with no flag), the flags raised."""
    bad = [r for r in group if wrong(r)]
    flags = Counter(code for r in group for code in r["codes"])
    raised = ", ".join(f"`{c}` {n}" for c, n in flags.most_common()) or "none"
    return (f"| {label} | {len(group)} | {np.median([r.get('air_ml', 0.0) for r in group]):.1f}"
            f" | {np.median([r['truth_ml'] for r in group]):.1f}"
            f" | {np.mean([abs(r['read_ml'] - r['truth_ml']) for r in group]):.2f}"
            f" | {len(bad)} ({sum(not r['codes'] for r in bad)}) | {raised} |")


def table(rows: list[dict[str, Any]]) -> None:
    """Per kind: air painted, the truth, the read, the wrong volumes (with no flag) and the flags raised; the
    cavities' clots read whole without air beside them."""
    print("| kind | studies | air mL (median) | truth mL (median) | mean abs. error mL | wrong (no flag) |"
          " flags raised (studies) |")
    print("|---|---:|---:|---:|---:|---|---|")
    for kind in KINDS:
        group = [r for r in rows if r["kind"] == kind]
        if group:
            print(_line(kind, group))
    control = [r["without_air"] for r in rows if "without_air" in r]
    if control:
        print(_line("cavity's clot whole, no air", control))


def with_air(hu: np.ndarray, air: np.ndarray) -> np.ndarray:
    """``hu`` with ``air`` set to air, its edge blurred (0.25 slice, 0.7 pixel) into what lies beside it."""
    fraction = np.clip(ndimage.gaussian_filter(air.astype(np.float32), (0.25, 0.7, 0.7)), 0.0, 1.0)
    fraction[air] = np.maximum(fraction[air], 0.9)
    return (hu * (1.0 - fraction) + AIR_HU * fraction).astype(np.float32)


KINDS = ("cap", "bubbles", "cavity")


@dataclass(frozen=True)
class Head:
    """The real head and what the painter reads of it: the intracranial space, each voxel's in-plane depth in it
    and its anterior-posterior coordinate (LPS y, anterior low), the head's noise and its upper slices."""

    volume: CTVolume
    space: np.ndarray
    depth: np.ndarray
    y: np.ndarray
    noise: np.ndarray
    upper: np.ndarray
    grid: list[np.ndarray]
    spacing: tuple[float, float, float]

    @classmethod
    def of(cls, volume: CTVolume, config: Config) -> Head:
        geo = volume.geometry
        ps = geo.pixel_spacing_mm
        space = find_intracranial_in(volume.hu, geo, config.anatomy).mask
        grid = list(np.ogrid[: space.shape[0], : space.shape[1], : space.shape[2]])
        y = (np.asarray(geo.positions, dtype=float)[:, 1][:, None, None]
             + grid[1] * ps[0] * float(geo.column_direction[1]) + grid[2] * ps[1] * float(geo.row_direction[1]))
        area = space.reshape(space.shape[0], -1).sum(axis=1)
        return cls(volume, space, np.stack([ndimage.distance_transform_edt(p, sampling=ps) for p in space]), y,
                   np.clip(volume.hu - ndimage.gaussian_filter(volume.hu.astype(np.float32), (0, 2, 2)), -20, 20),
                   np.flatnonzero(area >= 0.5 * area.max()), grid,
                   (float(np.asarray(geo.slice_thickness_mm, dtype=float).reshape(-1)[0]), *ps))


def paint(kind: str, rng: np.random.Generator,
          head: Head) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, float]]:
    """(HU before the air is set, the air, the blood, what was drawn) of one study of ``kind``."""
    space, grid = head.space, head.grid
    hu = head.volume.hu.astype(np.float32).copy()
    blood = np.zeros(space.shape, dtype=bool)
    upper = np.isin(grid[0], head.upper)
    if kind == "cap":
        level = float(rng.uniform(3, 15))
        return hu, space & (head.y <= head.y[space].min() + level), blood, {"level_mm": round(level, 1)}
    if kind == "bubbles":
        air = np.zeros(space.shape, dtype=bool)
        spots = np.argwhere(space & (head.depth <= 8.0) & upper)
        for _bubble in range(int(rng.integers(4, 15))):
            _, q = ellipsoid_q(grid, spots[rng.integers(len(spots))], (rng.uniform(1, 4),) * 3, head.spacing)
            air |= (q <= 1.0) & space
        return hu, air, blood, {}
    spots = np.argwhere(space & (head.depth >= 10.0) & (head.depth <= 40.0) & upper)
    centre = spots[rng.integers(len(spots))]
    radii = (rng.uniform(10, 18), rng.uniform(12, 22), rng.uniform(12, 22))
    _, q = ellipsoid_q(grid, centre, radii, head.spacing)
    clot = (q <= 1.0) & space & (hu >= -50) & (hu <= 90)
    hu[clot] = rng.uniform(60, 75) + head.noise[clot]
    share = float(rng.uniform(0.2, 0.5))
    air = clot & (head.y <= np.quantile(head.y[clot], share))
    return hu, air, clot & ~air, {"air_share": round(share, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=6, help="studies per kind")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kinds", default="cap,bubbles,cavity")
    parser.add_argument("--out", type=Path, default=Path("pneumocephalus.jsonl"))
    parser.add_argument("--table", type=Path, nargs="+", help="print the table of these JSON-line files, run nothing")
    args = parser.parse_args()
    if args.table:
        table(read_rows(args.table))
        return
    config = load_config()
    segmenter = load_segmenter(config=config)
    volume = _heads(config)["ge"]
    head = Head.of(volume, config)
    geo = volume.geometry
    clean = analyse_volume(volume, segmenter, config).measurement.volume_ml
    rng = np.random.default_rng(args.seed)
    rows: list[dict[str, Any]] = []
    with args.out.open("w") as sink:
        for kind in args.kinds.split(","):
            if kind not in KINDS:
                parser.error(f"--kinds: unknown kind {kind!r}; choose from {', '.join(KINDS)}")
            for _ in range(args.cases):
                hu, air, blood, detail = paint(kind, rng, head)
                result = analyse_volume(replace(volume, hu=with_air(hu, air)), segmenter, config)
                row = {"kind": kind, **detail, "air_ml": round(mask_volume_ml(air, geo.voxel_volumes_ml), 2),
                       "truth_ml": round(mask_volume_ml(blood, geo.voxel_volumes_ml), 2),
                       "read_ml": round(result.measurement.volume_ml - clean, 2),
                       "on_air_ml": round(mask_volume_ml(result.mask & ndimage.binary_dilation(air, iterations=2)
                                                         & ~blood, geo.voxel_volumes_ml), 2),
                       "codes": list(result.quality.codes)}
                if kind == "cavity":  # the same clot whole, no air: what the networks make of it without the cavity
                    whole = analyse_volume(replace(volume, hu=hu), segmenter, config)
                    row["without_air"] = {"truth_ml": round(mask_volume_ml(blood | air, geo.voxel_volumes_ml), 2),
                                          "read_ml": round(whole.measurement.volume_ml - clean, 2),
                                          "codes": list(whole.quality.codes)}
                keep_row(row, sink, rows)
    table(rows)


if __name__ == "__main__":
    main()
