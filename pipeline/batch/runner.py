"""Run a batch: plan from the inbox and the ledger, then process studies in-process, in a pool or on Dask.

:func:`run_batch` is what ``ichpipe batch`` (and each cycle of ``ichpipe
watch``) calls. Every study goes through :func:`~ichpipe.pipeline.batch.worker.process_job`,
wherever it runs (:mod:`~ichpipe.pipeline.batch.executors`): series lock,
ledger, the main job into a private staging folder, publish, optional PACS
delivery, ledger row (the steps are in :mod:`~ichpipe.pipeline.batch.worker`).
A study that fails never stops the others.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ichpipe.errors import ConfigError, IchpipeError, OutputError, UsageError
from ichpipe.logs import current_settings, redact
from ichpipe.models.hashing import file_sha256
from ichpipe.pipeline.batch.case_list import find_cases
from ichpipe.pipeline.batch.executors import StopCheck, _never, _run_dask, _run_inline, _run_pool
from ichpipe.pipeline.batch.inbox import StudyJob, find_studies
from ichpipe.pipeline.batch.ledger import Decision, config_hash, decide, get_rows, known_study_uids
from ichpipe.pipeline.batch.lifecycle import find_stale_workers
from ichpipe.pipeline.batch.options import BatchOptions
from ichpipe.pipeline.batch.qc_page import write_qc_page
from ichpipe.pipeline.batch.summary import (
    BatchReport,
    JobOutcome,
    prune_summaries,
    sweep_partial_summaries,
    write_summary,
)
from ichpipe.pipeline.batch.worker import JobContext, _describe, _from_row, new_run_id
from ichpipe.pipeline.config import Config, to_plain
from ichpipe.pipeline.config.models_config import resolve_checkpoint
from ichpipe.pipeline.outputs.publish import sweep_staging
from ichpipe.pipeline.segment import segmenter_choices
from ichpipe.pipeline.segment.threshold import BASELINE_LIMITS
from ichpipe.pipeline.serial.store import open_store

__all__ = ["BatchProgress", "find_leftovers", "run_batch"]

log = logging.getLogger(__name__)


class BatchProgress(Protocol):
    """Receives the progress of a batch (a progress bar, log lines)."""

    def start(self, total: int) -> None:
        """``total`` studies are about to be processed."""

    def advance(self, outcome: JobOutcome) -> None:
        """One study finished (whatever its outcome)."""

    def close(self) -> None:
        """The batch finished."""


def _digest(plain: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()


def _resolve_segmenter(options: BatchOptions, config: Config) -> tuple[str, Path | None, str | None]:
    """Effective segmenter name, checkpoint and its SHA-256; problems are config errors (exit 2)."""
    name = options.segmenter or (None if options.checkpoint else config.models.default_segmenter)
    if name is not None and name not in segmenter_choices():
        raise UsageError(f"Unknown segmenter '{name}'; choose one of: {', '.join(segmenter_choices())}.")
    if name == "threshold":
        return name, None, None
    checkpoint = options.checkpoint or resolve_checkpoint(config.models.default_checkpoint)
    if not checkpoint.is_file():
        raise ConfigError(
            f"Segmenter '{name or 'network'}' needs a trained checkpoint and {checkpoint} does not exist."
            " Pass --checkpoint FILE or set models.default_checkpoint in the config. --segmenter threshold"
            " needs no checkpoint, but it is a classical HU-threshold baseline, not a trained model:"
            f" {BASELINE_LIMITS} (see MODEL_CARD.md)."
        )
    digest = file_sha256(checkpoint)
    allow = config.models.checkpoint_sha256_allowlist
    if allow and digest not in allow:
        raise ConfigError(f"Checkpoint {checkpoint} (SHA-256 {digest}) is not in models.checkpoint_sha256_allowlist;"
                          " add its digest to the config if you trust it.")
    return name or "network", checkpoint.resolve(), digest


def _check_folders(inbox: Path, out_root: Path) -> None:
    if not inbox.is_dir():
        raise UsageError(f"--inbox {inbox} is not a folder; point it at the folder studies arrive in.")
    if out_root.is_relative_to(inbox) or inbox.is_relative_to(out_root):
        raise UsageError(f"The output folder {out_root} and the inbox {inbox} overlap; keep them apart"
                         " (outputs are DICOM too and would be read back as new studies).")


def find_leftovers(ctx: JobContext) -> list[str]:
    """What earlier runs left behind, found and (where it is safe) removed when a run starts.

    Stale pool workers (alive without their parent: reported, never killed
    here), zip extraction folders in the temporary folder and staging folders
    nobody holds (removed).
    """
    from ichpipe.dicom_io.sources import sweep_stale_extractions

    found = [w.describe() for w in find_stale_workers(ctx.workers_dir)]
    found += sweep_stale_extractions()
    found += sweep_staging(ctx.out_root)
    for line in found:
        log.warning("%s", line)
    return found


def run_batch(
    options: BatchOptions,
    config: Config,
    *,
    progress: BatchProgress | None = None,
    should_stop: StopCheck | None = None,
    stop_reason: Callable[[], str | None] | None = None,
) -> BatchReport:
    """Process every new or changed study of ``options.inbox`` (or case of ``options.case_list``).

    Parameters
    ----------
    options:
        The run's options (command line over config).
    config:
        The configuration.
    progress:
        Told the number of studies to process and each outcome.
    should_stop:
        Checked between studies; once it returns true no new study starts
        and the run returns after the running ones finish (``batch`` and
        ``watch`` set it on SIGINT/SIGTERM). A ``KeyboardInterrupt`` (their
        second signal) abandons the running studies. Either way the summary
        is written.
    stop_reason:
        Why it stopped (``SIGTERM``), for the summary.

    Returns
    -------
    BatchReport
        Every study's outcome; its ``exit_code`` is the command's.

    Raises
    ------
    ichpipe.errors.UsageError, ichpipe.errors.ConfigError
        Bad folders, segmenter, checkpoint or executor settings (exit status 2).
    ichpipe.errors.IchpipeError
        When the results store cannot be opened or the summary not written.
    """
    t0 = time.perf_counter()
    bc = config.batch
    should_stop = should_stop or _never
    executor = options.executor or bc.executor
    scheduler = options.scheduler or bc.scheduler
    workers = options.workers or bc.workers
    if executor == "dask" and not scheduler:
        raise UsageError("--executor dask needs --scheduler ADDRESS (or batch.scheduler in the config).")
    case_list = Path(options.case_list).resolve() if options.case_list is not None else None
    inbox = Path(options.inbox if options.inbox is not None else str(case_list)).resolve()
    out_root = Path(options.out or config.outputs.directory).resolve()
    if case_list is None:
        _check_folders(inbox, out_root)
    send = config.pacs.send if options.send is None else options.send
    pull = config.pacs.pull if options.pull is None else options.pull
    if case_list is not None and pull:
        raise UsageError("--pull fetches studies into an inbox; it does not work with --list.")
    settle_s = bc.settle_s if options.settle_s is None else options.settle_s
    segmenter_name, checkpoint, checkpoint_sha = _resolve_segmenter(options, config)
    plain = to_plain(config)
    run_id = new_run_id()
    ctx = JobContext(
        config_plain=plain, config_digest=_digest(plain), config_hash=config_hash(config, segmenter=segmenter_name),
        out_root=out_root, segmenter=options.segmenter, segmenter_name=segmenter_name, checkpoint=checkpoint,
        checkpoint_sha256=checkpoint_sha, device=options.device,
        wait_for_locks=(options.on_locked or bc.on_locked) == "wait", lock_wait_s=bc.lock_wait_s,
        retry_failed=bc.retry_failed, send=send, run_id=run_id, inbox=inbox, log_settings=current_settings(),
    )
    report = BatchReport(run_id=run_id, inbox=None if case_list else str(inbox), out=str(out_root),
                         case_list=str(case_list) if case_list else None,
                         started_at=datetime.now(UTC).isoformat(timespec="seconds"), executor=executor,
                         workers=workers if executor == "local" else 0, segmenter=segmenter_name,
                         checkpoint_sha256=checkpoint_sha, config_hash=ctx.config_hash)
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot create the output folder {out_root}: {exc.strerror or exc}.") from exc
    try:
        _execute(options, config, ctx, report, progress, should_stop, pull=pull, settle_s=settle_s,
                 executor=executor, scheduler=scheduler, workers=workers)
    except KeyboardInterrupt:  # stopped at once outside a study (scanning, pulling): still summarise
        log.warning("batch %s stopped at once", run_id)
        report.stopped_by = report.stopped_by or "interrupt"
    if should_stop():
        report.stopped_by = (stop_reason() if stop_reason else None) or "a stop request"
    if report.counts["interrupted"]:
        sweep_staging(out_root)  # what the abandoned studies had staged (their workers are gone)
    report.items.sort(key=lambda i: i.key)
    report.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    report.duration_s = round(time.perf_counter() - t0, 3)
    if options.write_summary is True or (options.write_summary == "auto" and report.did_work):
        folder = Path(bc.summary_dir).expanduser().resolve() if bc.summary_dir else out_root / "batch-runs"
        for line in sweep_partial_summaries(folder):
            log.warning("%s", line)
        write_summary(report, folder)
        write_qc_page(report, folder)
        write_summary(report, folder)  # again, so that the JSON names the HTML page too
        prune_summaries(folder, keep=bc.keep_summaries)
    return report


def _execute(options: BatchOptions, config: Config, ctx: JobContext, report: BatchReport,
             progress: BatchProgress | None, should_stop: StopCheck, *, pull: bool, settle_s: float,
             executor: str, scheduler: str | None, workers: int) -> None:
    """Find leftovers, pull, scan, decide and process: everything between the set-up and the summary."""
    inbox, out_root, checkpoint_sha = Path(str(ctx.inbox)), ctx.out_root, ctx.checkpoint_sha256
    report.leftovers = find_leftovers(ctx)
    pulled: list[Path] = []
    if pull and not should_stop():
        _pull(inbox, config, report, pulled)
    case_list = Path(options.case_list).resolve() if options.case_list is not None else None
    scan = (find_studies(inbox, config=config, settle_s=settle_s, settled=pulled) if case_list is None
            else find_cases(case_list, config=config, out_root=out_root))
    for w in scan.waiting:
        log.info("%s: still arriving (changed %.0f s ago); left for the next run", w.label, w.age_s)
        report.items.append(JobOutcome(status="waiting", key=f"path:{w.source}", label=w.label,
                                       source=redact(str(w.source))))
    to_run: list[StudyJob] = []
    with open_store(config.store) as store:
        rows = get_rows(store, [j.key for j in scan.jobs])
    for job in scan.jobs:
        row = rows.get(job.key)
        decision = decide(row, fingerprint=job.fingerprint, config_hash=ctx.config_hash,
                          checkpoint_sha256=checkpoint_sha, retry_failed=ctx.retry_failed, send=ctx.send,
                          out_root=out_root, require_report=config.outputs.report)
        if row is not None and decision is Decision.SKIP_DONE:
            report.items.append(_from_row(job, "skipped", row))
        elif row is not None and decision is Decision.SKIP_FAILED:
            report.items.append(_from_row(job, "skipped_failed", row))
        else:
            to_run.append(job)
    log.info("batch %s: %d studies found, %d to process, %d still arriving", ctx.run_id, len(scan.jobs),
             len(to_run), len(scan.waiting))

    def done(outcome: JobOutcome) -> None:
        report.items.append(outcome)
        if progress is not None:
            progress.advance(outcome)

    if progress is not None:
        progress.start(len(to_run))
    try:
        if to_run:
            if executor == "dask":
                _run_dask(to_run, ctx, str(scheduler), should_stop, done)
            elif workers > 1 and len(to_run) > 1:
                _run_pool(to_run, ctx, min(workers, len(to_run)), should_stop, done)
            else:
                _run_inline(to_run, ctx, should_stop, done)
    finally:
        if progress is not None:
            progress.close()


def _pull(inbox: Path, config: Config, report: BatchReport, folders: list[Path]) -> None:
    from ichpipe.pipeline.batch.pacs.retrieve import pull_new_studies

    try:
        with open_store(config.store) as store:
            known = known_study_uids(store)
        report.pulled = pull_new_studies(inbox, config=config.pacs, exclude=known, folders=folders)
    except IchpipeError as exc:
        report.pull_error = str(exc)
        log.error("pulling new studies from the PACS failed: %s", exc)
    except Exception as exc:
        report.pull_error = _describe(exc)
        log.error("pulling new studies from the PACS failed with an unexpected %s", _describe(exc), exc_info=True)
