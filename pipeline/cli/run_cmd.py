"""``ichpipe run``: the main job for one study."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ichpipe.logs import register_path_alias
from ichpipe.pipeline.cli._common import config_option, echo_json, handle_errors, load_cli_config
from ichpipe.pipeline.jobs.run_study import RunOptions, run_study

__all__ = ["run"]


class _Progress:
    """A click progress bar on a terminal (stderr); silent when stderr is not a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=total, label="segmenting slices", file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(done - self.bar.pos)
        if done >= total:
            self.bar.__exit__(None, None, None)
            self.bar = None


@click.command()
@click.option("--study", required=True, type=click.Path(path_type=Path), help="Study folder, DICOMDIR or .zip.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output root (default: outputs.directory in the config, ./ichpipe-out).")
@click.option("--segmenter", default=None, help="threshold or a network name (default: models.default_segmenter).")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Network checkpoint (default: models.default_checkpoint).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="Where networks run (default: inference.device, auto).")
@click.option("--json", "as_json", is_flag=True, help="Print the study report as JSON on stdout.")
@click.option("--deidentify", is_flag=True, default=None,
              help="Write report, SEG and key image without direct patient identifiers (outputs.deidentify).")
@config_option
@handle_errors
def run(study: Path, out: Path | None, segmenter: str | None, checkpoint: Path | None, device: str | None,
        as_json: bool, deidentify: bool | None, config_path: Path | None) -> None:
    """Segment the hematoma in STUDY, measure it and write SEG, key image and report.

    Outputs go to OUT/<StudyInstanceUID>/<SeriesInstanceUID>/.
    """
    config = load_cli_config(config_path, {"outputs": {"deidentify": True}} if deidentify else None)
    register_path_alias(study, "<study>")  # its name often holds the patient's: masked unless --log-phi
    options = RunOptions(study=study, out=out, segmenter=segmenter, checkpoint=checkpoint,
                         device=device)  # type: ignore[arg-type]
    result = run_study(options, config, progress=_Progress())
    if as_json:
        echo_json(result.report)
    else:
        h = result.report["hematoma"]
        click.echo(f"Hematoma volume {h['volume_ml']:.2f} mL (ABC/2 {h['abc2_ml']:.2f} mL),"
                   f" {h['n_voxels']} voxels; outputs in {result.output_dir}")
    sys.exit(result.exit_code)
