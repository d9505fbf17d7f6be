"""``ichpipe train data --subacute-fraction``: the share of intraparenchymal blood drawn subacute."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.synthetic.recipes import GeneratorOptions, draw_blood_hu, draw_recipe


def _stages(options: GeneratorOptions, n: int = 200) -> list[tuple[str, float]]:
    return [(r.stage, r.blood_hu) for r in (draw_recipe(options, i) for i in range(n))]


def test_default_share_keeps_the_shipped_recipes() -> None:
    # the default (0.25) must draw exactly what the shipped network's training data drew
    default = _stages(GeneratorOptions(n=1, seed=5))
    explicit = _stages(GeneratorOptions(n=1, seed=5, subacute_fraction=0.25))
    assert default == explicit
    share = sum(stage == "subacute" for stage, _ in default) / len(default)
    assert 0.15 < share < 0.35


def test_share_moves_the_stage_and_its_density() -> None:
    rich = _stages(GeneratorOptions(n=1, seed=5, subacute_fraction=0.7))
    share = sum(stage == "subacute" for stage, _ in rich) / len(rich)
    assert 0.6 < share < 0.8
    assert all(42.0 <= hu <= 58.0 for stage, hu in rich if stage == "subacute")
    assert all(60.0 <= hu <= 85.0 for stage, hu in rich if stage == "acute")
    assert {s for s, _ in _stages(GeneratorOptions(n=1, seed=5, subacute_fraction=1.0))} == {"subacute"}
    assert {s for s, _ in _stages(GeneratorOptions(n=1, seed=5, subacute_fraction=0.0))} == {"acute"}


def test_draw_blood_hu_follows_its_argument() -> None:
    rng = np.random.default_rng(0)
    assert {draw_blood_hu(rng, subacute_fraction=1.0)[0] for _ in range(50)} == {"subacute"}
    assert {draw_blood_hu(rng, subacute_fraction=0.0)[0] for _ in range(50)} == {"acute"}


def test_bad_share_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="subacute_fraction"):
        GeneratorOptions(n=1, subacute_fraction=1.5)
    res = CliRunner().invoke(cli, ["train", "data", "--out", str(tmp_path / "x"), "--n", "1",
                                   "--subacute-fraction", "-0.1"])
    assert res.exit_code == 2 and "subacute-fraction" in res.output
