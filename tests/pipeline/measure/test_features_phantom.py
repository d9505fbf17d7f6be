"""Imaging features on phantom studies: analytic ellipsoid values, and the run job recording them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from ichpipe.dicom_io.assemble import assemble_series
from ichpipe.dicom_io.study import scan_study
from ichpipe.pipeline.config import load_config
from ichpipe.pipeline.config.store_config import StoreConfig
from ichpipe.pipeline.jobs.run_study import RunOptions, run_study
from ichpipe.pipeline.measure.features.extract import FEATURE_SPACE, compute_features
from ichpipe.pipeline.measure.nifti_masks import align_nifti_mask
from ichpipe.pipeline.serial.store import list_measurements, open_store
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study

CASES = {
    "plain": {},
    "tilt": {"gantry_tilt_deg": 18.5},
    "uneven": {"uneven_spacing_mm": (2.5, 5.0), "n_slices": 40},
}


def _ellipsoid_truth(study: Path) -> tuple[float, float, float]:
    truth = json.loads((study / "truth.json").read_text())
    (hem,) = truth["hematoma"]["hematomas"]
    assert hem["shape"] == "ellipsoid" and not hem["touches_skull"]
    a, b, c = sorted(hem["semi_axes_mm"], reverse=True)
    return a, b, c


@pytest.mark.parametrize("case", sorted(CASES))
def test_phantom_shape_features_match_the_analytic_ellipsoid(case: str, tmp_path: Path) -> None:
    options = {"n_slices": 28, **CASES[case]}
    spec = PhantomSpec(seed=11, rows=256, columns=256, volume_ml=25.0, **options)
    write_phantom_study(tmp_path / "study", spec)
    with scan_study(tmp_path / "study") as scan:
        volume = assemble_series(scan.require_selected().series)
    mask = align_nifti_mask(tmp_path / "study" / "truth_mask.nii.gz", volume.geometry).mask
    features = compute_features(volume, mask)
    assert features["feature_space"] == FEATURE_SPACE
    v = features["values"]
    a, b, c = _ellipsoid_truth(tmp_path / "study")
    volume_mm3 = 4 / 3 * math.pi * a * b * c
    p = 1.6075
    area = 4 * math.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)
    expected = {
        "original_shape_MeshVolume": volume_mm3,
        "original_shape_VoxelVolume": volume_mm3,
        "original_shape_SurfaceArea": area,
        "original_shape_Sphericity": (36 * math.pi * volume_mm3**2) ** (1 / 3) / area,
        "original_shape_Maximum3DDiameter": 2 * a,
        "original_shape_MajorAxisLength": 4 * a / math.sqrt(5),
        "original_shape_MinorAxisLength": 4 * b / math.sqrt(5),
        "original_shape_LeastAxisLength": 4 * c / math.sqrt(5),
    }
    for name, value in expected.items():
        assert v[name] == pytest.approx(value, rel=0.05), (case, name, v[name], value)
    hu = json.loads((tmp_path / "study" / "truth.json").read_text())["hematoma"]["hu"]
    assert v["original_firstorder_Mean"] == pytest.approx(hu, abs=3.0)
    assert v["location_left_fraction"] in (0.0, 1.0)  # a putamen or lobar site, one side


@pytest.fixture(scope="module")
def phantom_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    study = tmp_path_factory.mktemp("run-features") / "study"
    write_phantom_study(study, PhantomSpec(seed=5, rows=256, columns=256, n_slices=28, volume_ml=20.0))
    return study


def _run(study: Path, tmp_path: Path, *, enabled: bool) -> dict[str, Any]:
    config = load_config(None, overrides={
        "store": {"path": str(tmp_path / "store.sqlite")},
        "predictor": {"features": {"enabled": enabled}},
    })
    options = RunOptions(study=study, out=tmp_path / "out", segmenter="threshold")
    return run_study(options, config).report


def test_run_records_features_in_report_and_store(phantom_study: Path, tmp_path: Path) -> None:
    report = _run(phantom_study, tmp_path, enabled=True)
    values = report["features"]["values"]
    assert values["volume_ml"] == pytest.approx(report["hematoma"]["volume_ml"], abs=1e-4)  # report rounds
    assert values["original_shape_MeshVolume"] / 1000 == pytest.approx(report["hematoma"]["volume_ml"], rel=0.05)
    assert "features" in report["timings_s"]
    saved = json.loads((Path(report["outputs"]["report"])).read_text())
    assert saved["features"] == report["features"]
    with open_store(StoreConfig(path=str(tmp_path / "store.sqlite")), create=False) as store:
        (stored,) = list_measurements(store)
    assert stored.features is not None
    assert stored.features["feature_space"] == FEATURE_SPACE
    assert stored.features["values"]["original_shape_Sphericity"] == values["original_shape_Sphericity"]


def test_run_without_features_when_switched_off(phantom_study: Path, tmp_path: Path) -> None:
    report = _run(phantom_study, tmp_path, enabled=False)
    assert "features" not in report and "features" not in report["timings_s"]
    with open_store(StoreConfig(path=str(tmp_path / "store.sqlite")), create=False) as store:
        (stored,) = list_measurements(store)
    assert stored.features is None
