"""Progress through the command line (stderr is not a terminal under CliRunner: plain lines).

A slow stage is simulated by ``progress.interval_s: 0`` (a line at every
step) rather than by a slow study; with the default 10 s a small study
prints no progress at all. Progress goes to stderr only: ``--json`` output on
stdout still parses.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ichpipe.models.checkpoint import save_checkpoint
from ichpipe.models.registry import build_model
from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study


def _config(tmp_path: Path, interval_s: float | None) -> Path:
    path = tmp_path / f"cfg-{interval_s}.yaml"
    text = f"store:\n  path: {tmp_path / 'store.sqlite'}\nbatch:\n  settle_s: 0\n"
    if interval_s is not None:
        text += f"progress:\n  interval_s: {interval_s}\n"
    path.write_text(text)
    return path


def _tiny_checkpoint(tmp_path: Path) -> Path:
    """A random-weight SA-CBAM U-Net with 4 base channels: fast, and it makes the segmentation stage run."""
    model = build_model("sa_cbam_unet", base_channels=4, input_size=64, num_heads=2)
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, model, name="sa_cbam_unet", input_size=(64, 64), window={"width": 80.0, "level": 40.0},
                    normalisation={"scale": 1 / 255, "offset": 0.0}, training_data="random weights (test)",
                    model_kwargs={"base_channels": 4, "input_size": 64, "num_heads": 2})
    return path


@pytest.fixture
def study(tmp_path: Path) -> Path:
    write_phantom_study(tmp_path / "study", PhantomSpec(seed=5, rows=64, columns=64, n_slices=12))
    return tmp_path / "study"


def _progress_lines(result: Result, stage: str) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith(f"ichpipe: {stage} ")]


def test_run_shows_every_stage_on_stderr_and_keeps_json_on_stdout(tmp_path: Path, study: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "--study", str(study), "--out", str(tmp_path / "out"), "--json",
                                      "--checkpoint", str(_tiny_checkpoint(tmp_path)),
                                      "--config", str(_config(tmp_path, 0))])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # nothing but the report on stdout
    assert report["geometry"]["n_slices"] == 12
    for name, total in (("reading headers", None), ("decoding slices", 12), ("writing outputs", 3)):
        lines = _progress_lines(result, name)
        assert lines, f"no progress line for {name}: {result.stderr}"
        assert lines[-1].split(" done in ")[0].endswith(f"/{total}" if total else "")
        assert " done in " in lines[-1]
    segmenting = _progress_lines(result, "segmenting slices")
    assert segmenting and segmenting[0].startswith("ichpipe: segmenting slices 0/")
    assert " done in " in segmenting[-1]
    assert any("(seg.dcm)" in line for line in _progress_lines(result, "writing outputs"))
    assert "ichpipe:" not in result.stdout


def test_a_fast_run_prints_no_progress_with_the_default_interval(tmp_path: Path, study: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "--study", str(study), "--out", str(tmp_path / "out"),
                                      "--segmenter", "threshold", "--config", str(_config(tmp_path, None))])
    assert result.exit_code == 0, result.output
    assert not [line for line in result.stderr.splitlines() if " done in " in line or "/12" in line]


def test_inspect_shows_discovery_progress(tmp_path: Path, study: Path) -> None:
    result = CliRunner().invoke(cli, ["inspect", "--study", str(study), "--json",
                                      "--config", str(_config(tmp_path, 0))])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["series"]
    lines = _progress_lines(result, "reading headers")
    assert lines[0].startswith("ichpipe: reading headers 0/") and " done in " in lines[-1]


def test_batch_shows_the_inbox_scan_and_each_study_stage(tmp_path: Path, study: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    study.rename(inbox / "s1")
    result = CliRunner().invoke(cli, ["batch", "--inbox", str(inbox), "--out", str(tmp_path / "out"), "--json",
                                      "--segmenter", "threshold", "--config", str(_config(tmp_path, 0))])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["processed"] == 1
    for name in ("scanning the inbox", "selecting series", "reading headers", "decoding slices", "writing outputs"):
        assert _progress_lines(result, name), f"no progress line for {name}: {result.stderr}"
