"""``ichpipe batch`` (one pass over an inbox, for cron) and ``ichpipe watch`` (a polling service)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ichpipe.logs import register_path_alias, safe_text
from ichpipe.pipeline.batch.options import BatchOptions
from ichpipe.pipeline.batch.summary import JobOutcome
from ichpipe.pipeline.cli._common import config_option, echo_json, handle_errors, load_cli_config
from ichpipe.progress import ProgressDisplay

__all__ = ["batch", "watch"]

F = TypeVar("F", bound=Callable[..., Any])

_QUIET = ("skipped", "skipped_failed", "waiting")


class _Progress:
    """A tqdm bar on a terminal (stderr); plain lines when stderr is a log file."""

    def __init__(self, *, quiet_skips: bool = False) -> None:
        self.tty = sys.stderr.isatty()
        self.bar: Any = None
        self.total = 0
        self.done = 0
        self.quiet_skips = quiet_skips

    def start(self, total: int) -> None:
        self.total, self.done = total, 0
        if self.tty and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="study", file=sys.stderr, dynamic_ncols=True)

    def advance(self, outcome: JobOutcome) -> None:
        self.done += 1
        line = _line(outcome)
        if self.bar is not None:
            self.bar.update(1)
            if outcome.status == "failed":
                self.bar.write(line, file=sys.stderr)
            return
        if not (self.quiet_skips and outcome.status in _QUIET):
            click.echo(f"[{self.done}/{self.total}] {line}", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _line(o: JobOutcome) -> str:
    parts = [o.status, o.label]
    if o.duration_s is not None:
        parts.append(f"{o.duration_s:.1f} s")
    if o.volume_ml is not None:
        parts.append(f"{o.volume_ml:.1f} mL")
    if o.error:
        parts.append(f"{o.error_type}: {o.error}")
    return safe_text(" | ".join(parts))


def _shared_options(func: F) -> F:
    options = [
        click.option("--inbox", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Folder the studies arrive in (any layout; never modified)."),
        click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Output root (default: outputs.directory); one folder per series, summaries"
                          " in OUT/batch-runs."),
        click.option("--workers", type=click.IntRange(min=1), default=None,
                     help="Studies processed at once by a local process pool (default: batch.workers)."),
        click.option("--executor", type=click.Choice(["local", "dask"]), default=None,
                     help="local (in-process or process pool) or dask (default: batch.executor)."),
        click.option("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://10.0.0.5:8786."),
        click.option("--segmenter", default=None, help="threshold or a network (default: models.default_segmenter)."),
        click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Network checkpoint (default: models.default_checkpoint)."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
                     help="Where networks run (default: inference.device)."),
        click.option("--settle-s", type=click.FloatRange(min=0), default=None,
                     help="Leave folders changed less than this many seconds ago (default: batch.settle_s)."),
        click.option("--on-locked", type=click.Choice(["skip", "wait"]), default=None,
                     help="A series another run is processing: skip it or wait (default: batch.on_locked)."),
        click.option("--pull/--no-pull", default=None, help="Pull new studies from the PACS first (pacs.pull)."),
        click.option("--send/--no-send", default=None, help="Send SEG and key image to the PACS (pacs.send)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _register_aliases(kw: dict[str, Any]) -> None:
    """Mask the inbox (or the case list's folder) in every logged path unless ``--log-phi``."""
    if kw.get("inbox") is not None:
        register_path_alias(kw["inbox"], "<inbox>")
    if kw.get("case_list") is not None:
        register_path_alias(Path(kw["case_list"]).parent, "<list>")


def _options(kw: dict[str, Any]) -> BatchOptions:
    return BatchOptions(inbox=kw["inbox"], case_list=kw.get("case_list"), out=kw["out"], workers=kw["workers"],
                        executor=kw["executor"],
                        scheduler=kw["scheduler"], segmenter=kw["segmenter"], checkpoint=kw["checkpoint"],
                        device=kw["device"], settle_s=kw["settle_s"], on_locked=kw["on_locked"],
                        pull=kw["pull"], send=kw["send"])


@click.command()
@_shared_options
@click.option("--list", "case_list", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Instead of --inbox: a CSV of cases (research cohorts). Columns: path (required: NIfTI CT,"
                   " study folder, DICOMDIR or .zip, relative to the CSV's folder), case_id, and for NIfTI"
                   " cases patient_id, accession_number, acquisition_datetime (ISO 8601); others ignored.")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON on stdout.")
@config_option
@handle_errors
def batch(as_json: bool, config_path: Path | None, **kw: Any) -> None:
    """Process every new or changed study of INBOX (or case of a --list), one result folder per series.

    Incremental: a series already processed with the same instances, config
    and checkpoint is skipped (the results store is the ledger); folders still
    arriving are left for the next run. SIGINT/SIGTERM: no new study starts,
    the running ones finish (a second signal abandons them), the summary is
    written. Exit status: 0 nothing failed, 1 some studies failed or the run
    was stopped (see the summary), 2 bad usage or config.

    With --list cases.csv (a research cohort) the cases are the rows of the
    CSV instead: NIfTI files or study folders, processed with the same
    ledger, summary and QC page; a NIfTI case with a patient_id is recorded in
    the results store under that patient, with its accession_number and
    acquisition_datetime (a date alone is allowed), since the file has no
    header to say them. Example:

    \b
        case_id,path,patient_id,accession_number,acquisition_datetime
        c01,nifti/c01_ct.nii.gz,P01,A100,2024-03-01T08:30
        c02,nifti/c02_ct.nii.gz,P01,A101,2024-03-02T07:10
        c03,dicom/c03/,,,
    """
    from ichpipe.pipeline.batch.runner import run_batch
    from ichpipe.pipeline.batch.watch import StopRequest, stop_on_signals

    if (kw["inbox"] is None) == (kw["case_list"] is None):
        raise click.UsageError("Give either --inbox DIR or --list cases.csv.")
    config = load_cli_config(config_path)
    _register_aliases(kw)
    with stop_on_signals(StopRequest()) as stop, ProgressDisplay(interval_s=config.progress.interval_s):
        report = run_batch(_options(kw), config, progress=_Progress(), should_stop=stop.is_set,
                           stop_reason=lambda: getattr(stop, "reason", None))
    if as_json:
        echo_json(report.to_dict())
    else:
        where = f"; summary {report.summary_files['json']}" if report.summary_files else ""
        if "html" in report.summary_files:
            where += f"; QC page {report.summary_files['html']}"
        click.echo(report.line() + where)
    for item in report.failed:
        click.echo(f"ichpipe: failed: {safe_text(item.label)}: {item.error_type}: {safe_text(item.error)}", err=True)
    sys.exit(report.exit_code)


@click.command()
@_shared_options
@click.option("--interval-s", type=click.FloatRange(min=0.1), default=None,
              help="Seconds between two scans of the inbox (default: batch.poll_interval_s).")
@config_option
@handle_errors
def watch(interval_s: float | None, config_path: Path | None, **kw: Any) -> None:
    """Poll INBOX and process new studies as they settle, until SIGTERM or Ctrl-C.

    On SIGTERM/SIGINT the study being processed is finished, then it exits 0.
    """
    from ichpipe.pipeline.batch.watch import StopRequest, stop_on_signals
    from ichpipe.pipeline.batch.watch import watch as run_watch

    if kw["inbox"] is None:
        raise click.UsageError("Missing option '--inbox'.")
    overrides = {"batch": {"poll_interval_s": interval_s}} if interval_s is not None else None
    config = load_cli_config(config_path, overrides)
    _register_aliases(kw)
    with stop_on_signals(StopRequest()) as stop, ProgressDisplay(interval_s=config.progress.interval_s):
        code = run_watch(_options(kw), config, stop=stop, progress=lambda: _Progress(quiet_skips=True))
    sys.exit(code)
