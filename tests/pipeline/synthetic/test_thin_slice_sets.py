"""``ichpipe train data --slice-spacing-mm --noise-scale``: thin-slice and noisy test sets of the same patients."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.synthetic.recipes import GeneratorOptions, draw_recipe


def test_same_patients_at_another_spacing_and_noise() -> None:
    for i in range(20):
        plain = draw_recipe(GeneratorOptions(n=1, seed=61, format="dicom"), i)
        thin = draw_recipe(GeneratorOptions(n=1, seed=61, format="dicom", slice_spacing_mm=0.625, noise_scale=2.83), i)
        assert thin.slice_spacing_mm == 0.625 and thin.noise_hu == pytest.approx(plain.noise_hu * 2.83)
        assert thin.n_slices == round(plain.n_slices * plain.slice_spacing_mm / 0.625)  # the same head length
        others = {k: v for k, v in asdict(plain).items() if k not in ("slice_spacing_mm", "n_slices", "noise_hu")}
        assert {k: v for k, v in asdict(thin).items() if k in others} == others


def test_bad_spacing_or_noise_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'slice_spacing_mm' must be between"):
        GeneratorOptions(n=1, slice_spacing_mm=0.1)
    with pytest.raises(ValueError, match="'noise_scale' must be in"):
        GeneratorOptions(n=1, noise_scale=0.0)
    res = CliRunner().invoke(cli, ["train", "data", "--out", str(tmp_path / "x"), "--n", "1", "--noise-scale", "0"])
    assert res.exit_code == 2 and "noise-scale" in res.output


def test_thin_set_is_written_at_that_spacing(tmp_path: Path) -> None:
    out = tmp_path / "thin"
    res = CliRunner().invoke(cli, ["train", "data", "--out", str(out), "--n", "1", "--size", "64", "--seed", "3",
                                   "--shapes", "builtin", "--slice-spacing-mm", "2.0", "--noise-scale", "2"])
    assert res.exit_code == 0, res.output
    recipe = json.loads((out / "dataset.json").read_text())["cases"][0]["recipe"]
    assert recipe["slice_spacing_mm"] == 2.0
    assert json.loads((out / "dataset.json").read_text())["options"]["noise_scale"] == 2.0
