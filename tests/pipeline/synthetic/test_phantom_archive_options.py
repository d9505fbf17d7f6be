"""The phantom options that imitate archive quirks: validation, and that they change what they say and nothing else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study
from ichpipe.pipeline.synthetic.phantom.render import build_model, flap_bone

TINY = {"seed": 4, "rows": 64, "columns": 64, "n_slices": 12}


@pytest.mark.parametrize(("options", "message"), [
    ({"skull_flap_deg": 70.0, "n_hematomas": 0}, "'skull_flap_deg' needs a hematoma"),
    ({"skull_flap_deg": 5.0}, "'skull_flap_deg' must be in"),
    ({"export": "windowed"}, "'export' must be one of"),
    ({"clip_hu": 40.0}, "'clip_hu' must be in"),
    ({"photometric": "RGB"}, "'photometric' must be one of"),
    ({"frame_of_reference": "no"}, "'frame_of_reference' must be true or false"),
])
def test_invalid_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PhantomSpec(**TINY, **options)  # type: ignore[arg-type]


def test_defaults_keep_the_uids_of_earlier_phantoms() -> None:
    assert PhantomSpec(**TINY).digest() == PhantomSpec(**TINY, export="full", clip_hu=None).digest()
    assert PhantomSpec(**TINY).digest() != PhantomSpec(**TINY, clip_hu=320.0).digest()


def test_the_flap_is_bone_over_the_first_hematoma() -> None:
    model = build_model(PhantomSpec(**TINY, touch_skull=True, skull_flap_deg=70.0))
    points = np.stack([model.plan.voxel_centres(i) for i in range(model.plan.n_planned)])
    flap = flap_bone(model, points)
    hu = model.head.sample_hu(points)
    assert flap.any() and (hu[flap] >= 300).all()  # skull voxels only, and some of them
    centre = np.asarray(model.hematomas[0].centre)
    assert np.linalg.norm(points[flap].mean(axis=0) - centre) < np.linalg.norm(points[hu >= 300].mean(axis=0) - centre)


def _values(folder: Path) -> tuple[float, float]:
    hus = []
    for f in (folder / "DICOM").iterdir():
        ds = pydicom.dcmread(f)
        if ds.get("SeriesNumber") == 2:
            hus.append(ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept))
    stack = np.stack(hus)
    return float(stack.max()), float(np.mean(stack == 0.0))


def test_exports_and_clip_change_the_stored_values(tmp_path: Path) -> None:
    write_phantom_study(tmp_path / "full", PhantomSpec(**TINY))
    write_phantom_study(tmp_path / "clip", PhantomSpec(**TINY, clip_hu=320.0))
    write_phantom_study(tmp_path / "strip", PhantomSpec(**TINY, export="skull_air_stripped"))
    full_max, full_zero = _values(tmp_path / "full")
    clip_max, _ = _values(tmp_path / "clip")
    strip_max, strip_zero = _values(tmp_path / "strip")
    assert full_max > 1000 and clip_max == 320.0
    assert strip_max <= 150.0 and strip_zero > 0.3 > full_zero
