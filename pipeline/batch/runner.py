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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ichpipe.errors import ConfigError, IchpipeError, OutputError, UsageError
from ichpipe.models.hashing import file_sha256
from ichpipe.pipeline.batch.executors import StopCheck, _never, _run_dask, _run_inline, _run_pool
from ichpipe.pipeline.batch.inbox import StudyJob, find_studies
from ichpipe.pipeline.batch.ledger import Decision, config_hash, decide, get_rows, known_study_uids
from ichpipe.pipeline.batch.locks import acquire_lock
from ichpipe.pipeline.batch.options import BatchOptions
from ichpipe.pipeline.batch.qc_page import write_qc_page
from ichpipe.pipeline.batch.summary import BatchReport, JobOutcome, prune_summaries, write_summary
from ichpipe.pipeline.batch.worker import JobContext, _describe, _from_row, _remove_tree, new_run_id
from ichpipe.pipeline.config import Config, to_plain
from ichpipe.pipeline.config.models_config import resolve_checkpoint
from ichpipe.pipeline.segment import segmenter_choices
from ichpipe.pipeline.segment.threshold import BASELINE_LIMITS
from ichpipe.pipeline.serial.store import open_store

__all__ = ["BatchProgress", "run_batch"]

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


def _sweep_staging(ctx: JobContext) -> None:
    """Remove staging folders left by killed runs (those whose lock nobody holds)."""
    if not ctx.staging_dir.is_dir():
        return
    for folder in ctx.staging_dir.iterdir():
        if folder.name.startswith("."):
            _remove_tree(folder)
            continue
        lock = acquire_lock(ctx.lock_dir, folder.name, wait=False)
        if lock is not None:
            with lock:
                _remove_tree(folder)


def run_batch(
    options: BatchOptions,
    config: Config,
    *,
    progress: BatchProgress | None = None,
    should_stop: StopCheck | None = None,
) -> BatchReport:
    """Process every new or changed study of ``options.inbox``.

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
        and the run returns after the running ones finish (``watch`` uses it).

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
    inbox = Path(options.inbox).resolve()
    out_root = Path(options.out or config.outputs.directory).resolve()
    _check_folders(inbox, out_root)
    send = config.pacs.send if options.send is None else options.send
    pull = config.pacs.pull if options.pull is None else options.pull
    settle_s = bc.settle_s if options.settle_s is None else options.settle_s
    segmenter_name, checkpoint, checkpoint_sha = _resolve_segmenter(options, config)
    plain = to_plain(config)
    run_id = new_run_id()
    ctx = JobContext(
        config_plain=plain, config_digest=_digest(plain), config_hash=config_hash(config, segmenter=segmenter_name),
        out_root=out_root, segmenter=options.segmenter, segmenter_name=segmenter_name, checkpoint=checkpoint,
        checkpoint_sha256=checkpoint_sha, device=options.device,
        wait_for_locks=(options.on_locked or bc.on_locked) == "wait", lock_wait_s=bc.lock_wait_s,
        retry_failed=bc.retry_failed, send=send, run_id=run_id,
    )
    report = BatchReport(run_id=run_id, inbox=str(inbox), out=str(out_root),
                         started_at=datetime.now(UTC).isoformat(timespec="seconds"), executor=executor,
                         workers=workers if executor == "local" else 0, segmenter=segmenter_name,
                         checkpoint_sha256=checkpoint_sha, config_hash=ctx.config_hash)
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot create the output folder {out_root}: {exc.strerror or exc}.") from exc
    if pull:
        _pull(inbox, config, report)
    _sweep_staging(ctx)
    scan = find_studies(inbox, config=config, settle_s=settle_s)
    for w in scan.waiting:
        log.info("%s: still arriving (changed %.0f s ago); left for the next run", w.label, w.age_s)
        report.items.append(JobOutcome(status="waiting", key=f"path:{w.source}", label=w.label,
                                       source=str(w.source)))
    to_run: list[StudyJob] = []
    with open_store(config.store) as store:
        rows = get_rows(store, [j.key for j in scan.jobs])
    for job in scan.jobs:
        row = rows.get(job.key)
        decision = decide(row, fingerprint=job.fingerprint, config_hash=ctx.config_hash,
                          checkpoint_sha256=checkpoint_sha, retry_failed=ctx.retry_failed, send=send,
                          out_root=out_root, require_report=config.outputs.report)
        if row is not None and decision is Decision.SKIP_DONE:
            report.items.append(_from_row(job, "skipped", row))
        elif row is not None and decision is Decision.SKIP_FAILED:
            report.items.append(_from_row(job, "skipped_failed", row))
        else:
            to_run.append(job)
    log.info("batch %s: %d studies found, %d to process, %d still arriving", run_id, len(scan.jobs),
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
    report.items.sort(key=lambda i: i.key)
    report.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    report.duration_s = round(time.perf_counter() - t0, 3)
    if options.write_summary is True or (options.write_summary == "auto" and report.did_work):
        folder = Path(bc.summary_dir).expanduser().resolve() if bc.summary_dir else out_root / "batch-runs"
        write_summary(report, folder)
        write_qc_page(report, folder)
        write_summary(report, folder)  # again, so that the JSON names the HTML page too
        prune_summaries(folder, keep=bc.keep_summaries)
    return report


def _pull(inbox: Path, config: Config, report: BatchReport) -> None:
    from ichpipe.pipeline.batch.pacs.retrieve import pull_new_studies

    try:
        with open_store(config.store) as store:
            known = known_study_uids(store)
        report.pulled = pull_new_studies(inbox, config=config.pacs, exclude=known)
    except IchpipeError as exc:
        report.pull_error = str(exc)
        log.error("pulling new studies from the PACS failed: %s", exc)
    except Exception as exc:
        report.pull_error = _describe(exc)
        log.error("pulling new studies from the PACS failed with an unexpected %s", _describe(exc), exc_info=True)
