"""``ichpipe train data --touch-skull-fraction``: the share of haematomas placed against the inner table."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.synthetic.recipes import GeneratorOptions, draw_recipe


def _touches(options: GeneratorOptions, n: int = 300) -> list[bool]:
    recipes = [draw_recipe(options, i) for i in range(n)]
    return [t for r in recipes for t in (*r.shaped_touch_skull, *((r.touch_skull,) if r.n_hematomas else ()))]


def test_default_share_is_about_a_third() -> None:
    touches = _touches(GeneratorOptions(n=1, seed=3))
    assert 0.2 < sum(touches) / len(touches) < 0.4


def test_share_moves_only_which_lesions_touch() -> None:
    default = [draw_recipe(GeneratorOptions(n=1, seed=3), i) for i in range(100)]
    lobar = [draw_recipe(GeneratorOptions(n=1, seed=3, touch_skull_fraction=0.8), i) for i in range(100)]
    # the same patients, stages and sizes: only the placement draws' outcome changes
    assert [(r.phantom_seed, r.stage, r.n_shaped, r.volume_ml) for r in default] == [
        (r.phantom_seed, r.stage, r.n_shaped, r.volume_ml) for r in lobar]
    touches = _touches(GeneratorOptions(n=1, seed=3, touch_skull_fraction=0.8))
    assert 0.7 < sum(touches) / len(touches) < 0.9
    assert all(_touches(GeneratorOptions(n=1, seed=3, touch_skull_fraction=1.0)))
    assert not any(_touches(GeneratorOptions(n=1, seed=3, touch_skull_fraction=0.0)))


def test_bad_share_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="touch_skull_fraction"):
        GeneratorOptions(n=1, touch_skull_fraction=1.2)
    res = CliRunner().invoke(cli, ["train", "data", "--out", str(tmp_path / "x"), "--n", "1",
                                   "--touch-skull-fraction", "-0.1"])
    assert res.exit_code == 2 and "touch-skull-fraction" in res.output
