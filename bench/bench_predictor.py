"""Speed of the expansion predictor: imaging features of one series, and training the default network.

Run with ``pytest bench/bench_predictor.py -o python_files='bench_*.py' --benchmark-only``.

* ``test_features_32x512x512``: every imaging feature (shape with the smooth
  mesh, first-order HU, location) of a 30-mL phantom hematoma on a
  32 x 512 x 512 series, as ``ichpipe run`` computes them.
* ``test_train_predictor_end_to_end``: ``ichpipe train predictor --no-cv``'s
  job on the contest tables (96 labelled patients x 97 features; a synthetic
  table of that size when ../shared/data is absent): read the CSVs, train the
  self-attention CNN with early stopping, choose its threshold on 5 inner
  folds (5 more trainings), save the checkpoint and write the card, on CPU
  with one thread. Target: under 2 minutes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ichpipe.pipeline.config import load_config
from ichpipe.pipeline.measure.features.extract import feature_values
from ichpipe.pipeline.measure.features.grid import Grid
from ichpipe.pipeline.risk.feature_table import FeatureTable, write_features_csv, write_labels_csv
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, render_phantom

CONTEST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "contest-2023E"


@pytest.fixture(scope="module")
def phantom() -> tuple[np.ndarray, np.ndarray, Grid]:
    arrays = render_phantom(PhantomSpec(seed=3, volume_ml=30.0))  # 32 x 512 x 512, 5-mm slices
    orientation = np.asarray(arrays.orientation)
    grid = Grid(positions=arrays.positions_lps_mm, row_direction=orientation[:3], column_direction=orientation[3:],
                pixel_spacing_mm=arrays.pixel_spacing_mm, slice_thickness_mm=arrays.slice_thickness_mm)
    return arrays.hu, arrays.labels > 0, grid


def test_features_32x512x512(benchmark, phantom: tuple[np.ndarray, np.ndarray, Grid]) -> None:
    hu, mask, grid = phantom
    values = benchmark.pedantic(feature_values, args=(hu, mask, grid), rounds=5, warmup_rounds=1)
    assert values["original_shape_MeshVolume"] == pytest.approx(30_000, rel=0.05)


@pytest.fixture(scope="module")
def training_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("bench-predictor")
    if CONTEST.is_dir():
        from ichpipe.pipeline.risk.feature_table import contest_feature_table, contest_labels
        from ichpipe.pipeline.serial.clinical import load_clinical_mapping
        from ichpipe.pipeline.serial.expansion import PRESETS

        table = contest_feature_table(CONTEST, clinical_mapping=load_clinical_mapping("contest_2023e"))
        labels = contest_labels(CONTEST, rule=PRESETS["contest_2023e"])
    else:
        rng = np.random.default_rng(0)
        ids = tuple(f"p{i:03d}" for i in range(96))
        names = ("HM_volume_ml", *(f"f{j}" for j in range(96)))
        table = FeatureTable(ids, names, rng.normal(size=(96, 97)) + 5.0, "synthetic/1")
        labels = {pid: int(i < 23) for i, pid in enumerate(ids)}
    return write_features_csv(table, root / "features.csv"), write_labels_csv(labels, root / "labels.csv")


def test_train_predictor_end_to_end(benchmark, training_inputs: tuple[Path, Path], tmp_path: Path) -> None:
    from ichpipe.pipeline.jobs.train_predictor import TrainOptions, run_training

    features, labels = training_inputs
    config = load_config(None)
    options = TrainOptions(features=features, labels=labels, out=tmp_path / "out", cross_validate=False)
    report = benchmark.pedantic(run_training, args=(options, config), rounds=1, iterations=1)
    assert report.checkpoint_sha256 is not None and report.n_patients == 96
    assert benchmark.stats.stats.max < 120.0
