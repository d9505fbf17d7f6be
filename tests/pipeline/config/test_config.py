from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ichpipe.errors import ConfigError
from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.config import Config, load_config, to_plain

REPO = Path(__file__).resolve().parents[3]


def test_config_yaml_mirrors_built_in_defaults() -> None:
    assert to_plain(load_config(REPO / "config.yaml")) == to_plain(Config())


def test_defaults_without_file() -> None:
    cfg = load_config(None)
    assert cfg.windows.get("brain").width == 80.0
    assert cfg.windows.get("brain").level == 40.0
    assert cfg.geometry.gap_factor == 1.5


def test_partial_file_overrides_one_key(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("geometry:\n  gap_factor: 2.0\n")
    cfg = load_config(f)
    assert cfg.geometry.gap_factor == 2.0
    assert cfg.geometry.padding_hu == -1024.0


def test_cli_overrides_win_over_file(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("geometry:\n  gap_factor: 2.0\n")
    cfg = load_config(f, overrides={"geometry": {"gap_factor": 3.0}})
    assert cfg.geometry.gap_factor == 3.0


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("geometry:\n  gap_factr: 2.0\n", r"Unknown config key 'geometry.gap_factr'"),
        ("geometry:\n  gap_factor: big\n", r"'geometry.gap_factor' must be a number"),
        ("discovery:\n  follow_symlinks: 1\n", r"'discovery.follow_symlinks' must be true or false"),
        ("windows:\n  presets:\n    brain: {width: 80}\n", r"windows.presets.brain"),
        ("selection:\n  rules:\n    - {name: x, attribute: Modality, op: similar, values: [CT]}\n",
         r"selection.rules\[0\].op' must be one of"),
        ("geometry:\n  gap_factor: 0.5\n", r"gap_factor' must be greater than 1"),
        ("nonsense: 1\n", r"Unknown config key 'nonsense'"),
        ("- a list\n", r"must hold a mapping"),
        ("geometry: [\n", r"not valid YAML"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, match: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(f)


def test_bad_config_exits_2_from_the_cli(tmp_path: Path, make_series) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("geometry:\n  gap_factr: 2.0\n")
    study = make_series()
    result = CliRunner().invoke(cli, ["inspect", "--study", str(study), "--config", str(f)])
    assert result.exit_code == 2
    assert "gap_factr" in result.output


def test_env_var_names_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("windows:\n  default: bone\n")
    monkeypatch.setenv("ICHPIPE_CONFIG", str(f))
    assert load_config(None).windows.default == "bone"
