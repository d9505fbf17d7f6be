"""``ichpipe inspect``: every series found, the one selected and why, its geometry."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ichpipe.logs import escape_controls, redact, register_path_alias, safe_text
from ichpipe.pipeline.cli._common import config_option, echo_json, handle_errors, load_cli_config
from ichpipe.progress import ProgressDisplay

__all__ = ["inspect"]


@click.command()
@click.option("--study", required=True, type=click.Path(path_type=Path), help="Study folder, DICOMDIR or .zip.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("--explain", is_flag=True, help="Show every selection rule's verdict for every series.")
@config_option
@handle_errors
def inspect(study: Path, as_json: bool, explain: bool, config_path: Path | None) -> None:
    """List every series in STUDY, the one selected and why, and its geometry.

    Exit status 0 when a series is selected, 1 when none passes the rules.
    """
    from ichpipe.pipeline.jobs.inspect_study import inspect_study

    config = load_cli_config(config_path)
    register_path_alias(study, "<study>")  # its name often holds the patient's: masked unless --log-phi
    with ProgressDisplay(interval_s=config.progress.interval_s):
        report = inspect_study(study, config)
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(escape_controls(redact(report.to_text(explain=explain)), keep_newlines=True))
    if report.exit_code:
        click.echo(
            f"ichpipe: error: {safe_text(f'no series in {study} passed the selection rules')} (see reasons above).",
            err=True,
        )
    sys.exit(report.exit_code)
