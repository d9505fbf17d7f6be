"""Studies the robustness benches share: the bleeds of a generated phantom set."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ichpipe.dicom_io.assemble import CTVolume  # noqa: E402
from ichpipe.dicom_io.window import WindowPreset  # noqa: E402
from ichpipe.pipeline.datasets import load_case  # noqa: E402
from ichpipe.pipeline.datasets.manifest import read_manifest  # noqa: E402
from ichpipe.pipeline.segment.components import mask_volume_ml  # noqa: E402


def set_bleeds(set_dir: str | Path, cases: int | None = None, *, min_ml: float = 1.0
               ) -> Iterator[tuple[str, CTVolume, float, np.ndarray]]:
    """(case id, volume, truth in mL, truth mask) of the first ``cases`` studies of a set with ``min_ml`` of blood.

    ``set_dir`` holds the set's ``manifest.csv`` (``ichpipe train data``); the volume is read through the
    brain window's preset, as the benches have always read it.
    """
    n = 0
    for entry in read_manifest(Path(set_dir) / "manifest.csv").entries:
        if cases is not None and n >= cases:
            return
        case = load_case(entry)
        volume = case.as_ct_volume(WindowPreset(80, 40))
        truth_ml = mask_volume_ml(case.mask, volume.geometry.voxel_volumes_ml)
        if truth_ml < min_ml:
            continue
        yield entry.case_id, volume, truth_ml, case.mask
        n += 1
