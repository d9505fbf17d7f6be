"""Clots with a less dense side (the blend sign) in the training-data generator (``--blend-fraction``)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.synthetic.lesion_painting import BlendSide, ShapedHematoma, with_blend_side
from ichpipe.pipeline.synthetic.lesion_shapes import builtin_shape, shape_bank
from ichpipe.pipeline.synthetic.recipes import GeneratorOptions, draw_recipe
from ichpipe.pipeline.synthetic.training_data import render_phantom_study


def _clot(hu: float = 70.0) -> ShapedHematoma:
    return ShapedHematoma(builtin_shape(1), np.zeros(3), np.eye(3), 1.0, hu)


def test_side_lowers_only_the_points_beyond_its_plane() -> None:
    side = BlendSide(normal=np.array([1.0, 0.0, 0.0]), offset_mm=2.0, hu=42.0)
    clot = replace(_clot(), side=side)
    points = np.array([[5.0, 0.0, 0.0], [-5.0, 0.0, 0.0], [1.0, 3.0, 0.0]])
    assert clot.hu_at(points).tolist() == [42.0, 70.0, 70.0]
    assert clot.contains(points).tolist() == _clot().contains(points).tolist()  # the side is haematoma
    assert 0.0 < clot.side_share() < 0.5 and _clot().side_share() == 0.0


def test_drawn_side_is_in_range_and_under_the_clot() -> None:
    rng = np.random.default_rng(4)
    sides = [with_blend_side(_clot(), rng).side for _ in range(30)]
    assert all(s is not None and 35.0 <= s.hu <= 50.0 and abs(s.normal[2]) <= 1 / 3 for s in sides)
    faint = with_blend_side(_clot(52.0), rng).side
    assert faint is not None and faint.hu <= 42.0  # at least 10 HU under the clot


def test_bad_sides_are_refused() -> None:
    with pytest.raises(ValueError, match="'normal' must be a unit vector"):
        BlendSide(normal=np.array([1.0, 1.0, 0.0]), offset_mm=0.0, hu=40.0)
    with pytest.raises(ValueError, match="'hu_range'"):
        with_blend_side(_clot(), np.random.default_rng(0), hu_range=(50.0, 40.0))
    with pytest.raises(ValueError, match="'max_offset'"):
        with_blend_side(_clot(), np.random.default_rng(0), max_offset=1.0)
    with pytest.raises(ValueError, match="'blend_fraction'"):
        GeneratorOptions(n=1, blend_fraction=1.5)


def _acute_shaped_recipe(options: GeneratorOptions):  # type: ignore[no-untyped-def]
    for index in range(200):
        recipe = draw_recipe(options, index)
        if recipe.stage == "acute" and recipe.n_shaped >= 1:
            return recipe
    raise AssertionError("no acute study with a shaped haematoma in 200 draws")


def test_a_blend_study_differs_from_its_twin_only_by_the_side() -> None:
    base = GeneratorOptions(n=1, seed=7, size=64, shapes="builtin")
    plain = _acute_shaped_recipe(base)
    blend = replace(plain, blend_fraction=1.0)
    assert draw_recipe(replace(base, blend_fraction=1.0), 0) == replace(draw_recipe(base, 0), blend_fraction=1.0)
    bank = shape_bank("builtin")
    hu0, mask0, _, lesions0 = render_phantom_study(plain, bank)
    hu1, mask1, _, lesions1 = render_phantom_study(blend, bank)
    assert np.array_equal(mask0, mask1)  # the side is counted: the truth does not move
    shaped = [lesion for lesion in lesions1 if lesion["kind"] == "shaped"]
    assert shaped and all(35.0 <= lesion["blend_side_hu"] <= 50.0 for lesion in shaped)
    assert not any("blend_side_hu" in lesion for lesion in lesions0)
    lower = hu1 < hu0 - 5.0
    assert lower.any() and mask0[lower].mean() > 0.8  # what is darker lies in the blood (the blur spills a little)


def test_cli_passes_and_refuses_the_share(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["train", "data", "--out", str(tmp_path / "x"), "--n", "1",
                                   "--blend-fraction", "1.5"])
    assert res.exit_code == 2 and "blend-fraction" in res.output


def test_real_background_needs_the_blend_stream() -> None:
    from ichpipe.pipeline.synthetic.real_backgrounds import render_real_study

    with pytest.raises(ValueError, match="'blend_rng' must be given"):
        render_real_study(None, np.random.default_rng(0), shape_bank("builtin"), "x",  # type: ignore[arg-type]
                          blend_fraction=0.5)


def test_the_blend_group_names_the_studies_with_a_side_in_the_manifest(tmp_path: Path) -> None:
    from ichpipe.pipeline.datasets.manifest import read_manifest
    from ichpipe.pipeline.synthetic.training_data import generate_dataset

    options = GeneratorOptions(n=4, seed=3, size=64, shapes="builtin", val_fraction=0.0, blend_fraction=1.0,
                               blend_group="blend")
    manifest = generate_dataset(tmp_path / "set", options)
    records = {c["case_id"]: c for c in json.loads((tmp_path / "set" / "dataset.json").read_text())["cases"]}
    groups = {e.case_id: e.extra.get("sampling_group", "") for e in read_manifest(manifest).entries}
    sided = {k for k, c in records.items() if any("blend_side_hu" in lesion for lesion in c["lesions"])}
    assert sided and sided != set(groups)  # some studies with a side, some without (no acute shaped clot)
    assert {k for k, g in groups.items() if g == "blend"} == sided
    with pytest.raises(ValueError, match="'blend_group' must be a group name"):
        GeneratorOptions(n=1, blend_group="Blend side")
