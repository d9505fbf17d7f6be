"""``ichpipe run`` through click: quality flags on stderr, one line each; ``--strict`` exits 1 after writing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study

SMALL = {"seed": 3, "rows": 128, "columns": 128, "touch_skull": True, "volume_ml": 30.0}


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli-quality")
    out = {}
    for name, options in (("fine", {}), ("flap", {"skull_flap_deg": 70.0})):
        write_phantom_study(root / name, PhantomSpec(**SMALL, **options))  # type: ignore[arg-type]
        out[name] = root / name
    return out


def _run(study: Path, tmp_path: Path, *extra: str, config: str = "") -> Result:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"store:\n  path: {tmp_path / 'store.sqlite'}\n{config}")
    return CliRunner().invoke(cli, ["run", "--study", str(study), "--out", str(tmp_path / "out"), "--segmenter",
                                    "threshold", "--config", str(cfg), *extra])


def _flag_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("ichpipe: quality flag ")]


def test_flags_are_printed_and_do_not_fail_the_run(studies: dict[str, Path], tmp_path: Path) -> None:
    result = _run(studies["flap"], tmp_path)
    assert result.exit_code == 0, result.output
    (line,) = _flag_lines(result)
    assert line.startswith("ichpipe: quality flag skull_open: The bone ring is open over up to")
    assert "1 quality flag(s)" in result.stdout and "threshold baseline" in result.stdout
    assert "skull_open" not in result.stdout  # the flags go to stderr; stdout stays one summary line


def test_strict_exits_1_after_writing_every_output(studies: dict[str, Path], tmp_path: Path) -> None:
    result = _run(studies["flap"], tmp_path, "--strict", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert [f["code"] for f in report["quality"]["flags"]] == ["skull_open"]
    assert report["hematoma"]["volume_ml"] > 25.0
    for name in ("seg", "key_image_png", "secondary_capture", "report"):
        assert Path(report["outputs"][name]).is_file()
    assert len(_flag_lines(result)) == 1
    assert "--strict: 1 quality flag(s) raised; the outputs were written, exit status 1." in result.stderr


def test_strict_passes_a_fine_study(studies: dict[str, Path], tmp_path: Path) -> None:
    result = _run(studies["fine"], tmp_path, "--strict")
    assert result.exit_code == 0, result.output
    assert _flag_lines(result) == []
    assert "0 quality flag(s)" in result.stdout


def test_quality_strict_in_the_config_and_no_strict_on_the_command_line(studies: dict[str, Path],
                                                                        tmp_path: Path) -> None:
    strict = "quality:\n  strict: true\n"
    assert _run(studies["flap"], tmp_path, config=strict).exit_code == 1
    assert _run(studies["flap"], tmp_path, "--no-strict", config=strict).exit_code == 0
