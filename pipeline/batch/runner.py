"""Run a batch: plan from the inbox and the ledger, then process studies in-process, in a pool or on Dask.

:func:`run_batch` is what ``ichpipe batch`` (and each cycle of ``ichpipe
watch``) calls. Every study goes through :func:`process_job`, wherever it
runs:

1. take the series lock (skip or wait when another run holds it);
2. read the ledger row again (another run may have finished it meanwhile)
   and decide: process, only deliver, or skip;
3. run the main job (:func:`ichpipe.pipeline.jobs.run_study.run_study`) into a private staging
   folder ``OUT/.ichpipe/staging/<lock>/``, then rename the finished series
   folder to ``OUT/<StudyInstanceUID>/<SeriesInstanceUID>/`` (a folder is
   replaced whole, never half-written);
4. optionally send the DICOM SEG and key image to the PACS;
5. write the ledger row (last), release the lock.

A study that fails is recorded with its error type and message and never
stops the others. Project errors (:class:`~ichpipe.errors.IchpipeError`) are
expected; anything else is logged with its traceback at error level and
recorded too.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import logging
import multiprocessing
import os
import re
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from ichpipe import __version__
from ichpipe.atomic import atomic_write
from ichpipe.errors import (
    ConfigError,
    DicomInputError,
    IchpipeError,
    OutputError,
    UsageError,
)
from ichpipe.extras import import_extra
from ichpipe.models.hashing import file_sha256
from ichpipe.pipeline.batch.inbox import StudyJob, find_studies
from ichpipe.pipeline.batch.ledger import (
    Decision,
    LedgerEntry,
    LedgerRow,
    config_hash,
    decide,
    get_rows,
    known_study_uids,
    record_entry,
)
from ichpipe.pipeline.batch.locks import acquire_lock, lock_name
from ichpipe.pipeline.batch.options import BatchOptions
from ichpipe.pipeline.batch.summary import BatchReport, JobOutcome, Status, prune_summaries, write_summary
from ichpipe.pipeline.config import Config, to_plain
from ichpipe.pipeline.config.inference_config import Device
from ichpipe.pipeline.config.loader import build_dataclass
from ichpipe.pipeline.config.models_config import resolve_checkpoint
from ichpipe.pipeline.segment import Segmenter, segmenter_choices
from ichpipe.pipeline.serial.store import Store, open_store

__all__ = ["BatchProgress", "JobContext", "new_run_id", "process_job", "run_batch"]

log = logging.getLogger(__name__)

#: Where the batch keeps its private files inside the output root.
PRIVATE_DIR = ".ichpipe"

#: How long a batch tries to reach the Dask scheduler before giving up.
DASK_CONNECT_TIMEOUT_S = 30.0


class BatchProgress(Protocol):
    """Receives the progress of a batch (a progress bar, log lines)."""

    def start(self, total: int) -> None:
        """``total`` studies are about to be processed."""

    def advance(self, outcome: JobOutcome) -> None:
        """One study finished (whatever its outcome)."""

    def close(self) -> None:
        """The batch finished."""


@dataclass(frozen=True, kw_only=True)
class JobContext:
    """Everything a worker needs besides the job (picklable: plain values only).

    The config travels as plain values (``to_plain``) and is rebuilt, once
    per process, in the worker.
    """

    config_plain: dict[str, Any]
    config_digest: str
    config_hash: str
    out_root: Path
    segmenter: str | None
    segmenter_name: str
    checkpoint: Path | None
    checkpoint_sha256: str | None
    device: Device | None
    wait_for_locks: bool
    lock_wait_s: float
    retry_failed: bool
    send: bool
    run_id: str

    @property
    def lock_dir(self) -> Path:
        """Folder of the series lock files."""
        return self.out_root / PRIVATE_DIR / "locks"

    @property
    def staging_dir(self) -> Path:
        """Folder of the per-job staging folders."""
        return self.out_root / PRIVATE_DIR / "staging"


def new_run_id() -> str:
    """``<UTC time to the microsecond>Z-<host>-<pid>``: unique, and sorts by time."""
    host = re.sub(r"[^A-Za-z0-9-]", "", socket.gethostname().split(".")[0])[:24] or "host"
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}Z-{host}-{os.getpid()}"


# ---------------------------------------------------------------------------
# Worker side
# ---------------------------------------------------------------------------

_CACHE_LOCK = threading.Lock()
_CONFIGS: dict[str, Config] = {}
_SEGMENTERS: dict[tuple[str, ...], Segmenter] = {}


def _config(ctx: JobContext) -> Config:
    with _CACHE_LOCK:
        config = _CONFIGS.get(ctx.config_digest)
        if config is None:
            config = build_dataclass(Config, ctx.config_plain)
            _CONFIGS[ctx.config_digest] = config
        return config


def _segmenter(ctx: JobContext, config: Config) -> Segmenter:
    from ichpipe.pipeline.jobs.run_study import RunOptions, build_segmenter

    key = (str(ctx.segmenter), str(ctx.checkpoint), str(ctx.device), ctx.config_digest)
    with _CACHE_LOCK:
        segmenter = _SEGMENTERS.get(key)
        if segmenter is None:
            options = RunOptions(study=Path("."), segmenter=ctx.segmenter, checkpoint=ctx.checkpoint,
                                 device=ctx.device)
            segmenter = build_segmenter(options, config)
            _SEGMENTERS[key] = segmenter
        return segmenter


def _remove_tree(path: Path) -> None:
    """Remove a private folder; a failure is logged (the next run tries again)."""
    if not path.exists():
        return
    try:
        shutil.rmtree(path)
    except OSError as exc:
        log.warning("could not remove %s: %s", path, exc)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        log.debug("fsync of %s failed: %s", path, exc)
    finally:
        os.close(fd)


def _publish(report: dict[str, Any], staged: Path, staging_root: Path, out_root: Path,
             config: Config) -> tuple[Path, dict[str, Any]]:
    """Move a finished series folder from staging to its final place; return it and the report.

    The report's output paths are rewritten to the final folder (and
    ``report.json`` rewritten in staging) before the move.
    """
    final = out_root / staged.relative_to(staging_root)
    outputs = {}
    for name, value in (report.get("outputs") or {}).items():
        path = Path(value)
        outputs[name] = str(final / path.relative_to(staged)) if path.is_relative_to(staged) else value
    report = {**report, "outputs": outputs}
    if config.outputs.report:
        data = (json.dumps(report, indent=2) + "\n").encode("utf-8")

        def write(fh: BinaryIO) -> None:
            fh.write(data)

        atomic_write(staged / "report.json", write)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        old = staging_root / ".replaced"
        _remove_tree(old)
        replaced = False
        if final.exists():
            os.rename(final, old)
            replaced = True
        os.rename(staged, final)
        _fsync_dir(final.parent)
    except OSError as exc:
        raise OutputError(f"Cannot move the outputs into {final}: {exc.strerror or exc}.") from exc
    if replaced:
        _remove_tree(old)
    return final, report


def _outcome(job: StudyJob, status: Status, **kw: Any) -> JobOutcome:
    return JobOutcome(status=status, key=job.key, label=job.label, source=str(job.source),
                      study_instance_uid=kw.pop("study_instance_uid", job.study_uid),
                      series_instance_uid=kw.pop("series_instance_uid", job.series_uid),
                      n_instances=job.n_instances, **kw)


def _from_row(job: StudyJob, status: Status, row: LedgerRow) -> JobOutcome:
    return _outcome(job, status, volume_ml=row.volume_ml, output_dir=row.output_dir, attempts=row.attempts,
                    error_type=row.error_type if status == "skipped_failed" else None,
                    error=row.error if status == "skipped_failed" else None,
                    study_instance_uid=row.study_instance_uid or job.study_uid,
                    series_instance_uid=row.series_instance_uid or job.series_uid)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _deliver(files: Sequence[Path], config: Config) -> None:
    from ichpipe.pipeline.pacs.store_scu import send_files

    send_files(files, config=config.pacs)


def _delivery_files(output_dir: Path, config: Config) -> list[Path]:
    names = {"seg": "seg.dcm", "secondary_capture": "key_image_sc.dcm"}
    files = [output_dir / names[n] for n in config.pacs.send_outputs]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise OutputError(
            f"Cannot send {', '.join(missing)} from {output_dir}: not written; enable the output in the"
            " config (outputs.seg / outputs.secondary_capture) or remove it from pacs.send_outputs."
        )
    return files


def process_job(job: StudyJob, ctx: JobContext) -> JobOutcome:
    """Process one study of the inbox (lock, recheck, run, publish, deliver, ledger); never raises.

    Returns
    -------
    JobOutcome
        ``processed``, ``delivered``, ``failed``, ``skipped``,
        ``skipped_failed`` or ``locked``.
    """
    started = time.perf_counter()
    try:
        config = _config(ctx)
        lock = acquire_lock(ctx.lock_dir, lock_name(job.key), wait=ctx.wait_for_locks, timeout_s=ctx.lock_wait_s)
        if lock is None:
            log.info("%s: another run is processing it; left to that run", job.label)
            return _outcome(job, "locked")
        with lock, open_store(config.store) as store:
            row = get_rows(store, [job.key]).get(job.key)
            decision = decide(row, fingerprint=job.fingerprint, config_hash=ctx.config_hash,
                              checkpoint_sha256=ctx.checkpoint_sha256, retry_failed=ctx.retry_failed,
                              send=ctx.send, out_root=ctx.out_root, require_report=config.outputs.report)
            if row is not None and decision is Decision.SKIP_DONE:
                return _from_row(job, "skipped", row)
            if row is not None and decision is Decision.SKIP_FAILED:
                return _from_row(job, "skipped_failed", row)
            if row is not None and decision is Decision.DELIVER:
                return _deliver_only(job, ctx, config, store, row, started)
            return _process(job, ctx, config, store, started)
    except IchpipeError as exc:
        log.error("%s: %s", job.label, exc)
        return _outcome(job, "failed", error_type=type(exc).__name__, error=str(exc),
                        duration_s=round(time.perf_counter() - started, 3))
    except Exception as exc:
        log.error("%s: unexpected %s", job.label, _describe(exc), exc_info=True)
        return _outcome(job, "failed", error_type=type(exc).__name__, error=str(exc),
                        duration_s=round(time.perf_counter() - started, 3))


def _process(job: StudyJob, ctx: JobContext, config: Config, store: Store, started: float) -> JobOutcome:
    from ichpipe.pipeline.jobs.run_study import RunOptions, run_study

    staging = ctx.staging_dir / lock_name(job.key)
    _remove_tree(staging)  # left by a run killed while processing this study
    error: BaseException | None = None
    retry = False
    final: Path | None = None
    report: dict[str, Any] = {}
    try:
        segmenter = _segmenter(ctx, config)
        options = RunOptions(study=job.source, out=staging, segmenter=ctx.segmenter, checkpoint=ctx.checkpoint,
                             device=ctx.device, files=job.files)
        result = run_study(options, config, segmenter=segmenter)
        final, report = _publish(result.report, result.output_dir, staging, ctx.out_root, config)
    except IchpipeError as exc:
        error, retry = exc, not isinstance(exc, DicomInputError)
        log.error("%s failed: %s", job.label, exc)
    except Exception as exc:
        error, retry = exc, True
        log.error("%s failed with an unexpected %s", job.label, _describe(exc), exc_info=True)
    finally:
        _remove_tree(staging)
    series_uid = report.get("series_instance_uid") or job.series_uid
    fp = job.fingerprint
    if error is None and job.kind == "series" and series_uid != job.series_uid:
        log.warning("%s changed while it was processed (series %s was selected); it is redone next run",
                    job.label, series_uid)
        fp = ""
    delivered_at: datetime | None = None
    delivery_error: str | None = None
    if error is None and final is not None and ctx.send:
        delivered_at, delivery_error = _try_delivery(job, final, config)
    volume = (report.get("hematoma") or {}).get("volume_ml")
    duration = round(time.perf_counter() - started, 3)
    entry = LedgerEntry(
        job_key=job.key, kind=job.kind, source=str(job.source), status="failed" if error else "done",
        fingerprint=fp, n_instances=job.n_instances, config_hash=ctx.config_hash,
        study_instance_uid=report.get("study_instance_uid") or job.study_uid, series_instance_uid=series_uid,
        retry=retry, segmenter=ctx.segmenter_name, checkpoint_sha256=ctx.checkpoint_sha256,
        output_dir=str(final) if final else None, volume_ml=volume,
        error_type=type(error).__name__ if error else None, error=str(error) if error else None,
        delivered_at=delivered_at, delivery_error=delivery_error, run_id=ctx.run_id,
        ichpipe_version=__version__, duration_s=duration,
    )
    attempts = record_entry(store, entry)
    if error is not None:
        return _outcome(job, "failed", series_instance_uid=series_uid, duration_s=duration, attempts=attempts,
                        error_type=type(error).__name__, error=str(error))
    if delivery_error is not None:
        return _outcome(job, "failed", series_instance_uid=series_uid, duration_s=duration, attempts=attempts,
                        volume_ml=volume, output_dir=str(final), error_type="PacsError",
                        error=f"processed, but sending to the PACS failed: {delivery_error}")
    log.info("%s: processed in %.1f s", job.label, duration)
    return _outcome(job, "processed", series_instance_uid=series_uid, volume_ml=volume, output_dir=str(final),
                    duration_s=duration, attempts=attempts)


def _try_delivery(job: StudyJob, output_dir: Path, config: Config) -> tuple[datetime | None, str | None]:
    try:
        _deliver(_delivery_files(output_dir, config), config)
    except IchpipeError as exc:
        log.error("%s: sending to the PACS failed: %s", job.label, exc)
        return None, str(exc)
    except Exception as exc:
        log.error("%s: sending to the PACS failed with an unexpected %s", job.label, _describe(exc), exc_info=True)
        return None, _describe(exc)
    return datetime.now(UTC).replace(tzinfo=None), None


def _deliver_only(job: StudyJob, ctx: JobContext, config: Config, store: Store, row: LedgerRow,
                  started: float) -> JobOutcome:
    output_dir = Path(row.output_dir or "")
    delivered_at, delivery_error = _try_delivery(job, output_dir, config)
    values = {f: getattr(row, f) for f in LedgerEntry.__dataclass_fields__}
    values.update(delivered_at=delivered_at, delivery_error=delivery_error, run_id=ctx.run_id)
    attempts = record_entry(store, LedgerEntry(**values))
    duration = round(time.perf_counter() - started, 3)
    if delivery_error is not None:
        return _outcome(job, "failed", volume_ml=row.volume_ml, output_dir=row.output_dir, duration_s=duration,
                        attempts=attempts, error_type="PacsError",
                        error=f"sending to the PACS failed: {delivery_error}")
    return _outcome(job, "delivered", volume_ml=row.volume_ml, output_dir=row.output_dir, duration_s=duration,
                    attempts=attempts)


# ---------------------------------------------------------------------------
# Executors
# ---------------------------------------------------------------------------

StopCheck = Callable[[], bool]


def _never() -> bool:
    return False


def _run_inline(jobs: Sequence[StudyJob], ctx: JobContext, should_stop: StopCheck,
                done: Callable[[JobOutcome], None]) -> None:
    for i, job in enumerate(jobs):
        if should_stop():
            for rest in jobs[i:]:
                done(_outcome(rest, "cancelled"))
            return
        done(process_job(job, ctx))


def _init_pool_worker(threads: int, level: int) -> None:
    """Pool worker set-up: ignore Ctrl-C (the parent stops gracefully), share the cores, log to stderr."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    logging.basicConfig(level=level, format="%(levelname)s %(name)s[%(process)d]: %(message)s")


def _drain(futures: dict[Any, StudyJob], should_stop: StopCheck, done: Callable[[JobOutcome], None],
           wait: Callable[[set[Any]], tuple[set[Any], set[Any]]], cancel: Callable[[Any], bool],
           result: Callable[[Any], JobOutcome]) -> None:
    pending = set(futures)
    stopping = False
    while pending:
        if not stopping and should_stop():
            stopping = True
            for fut in list(pending):
                if cancel(fut):
                    pending.discard(fut)
                    done(_outcome(futures[fut], "cancelled"))
        finished, pending = wait(pending)
        for fut in finished:
            job = futures[fut]
            try:
                done(result(fut))
            except Exception as exc:  # the worker process died (killed, out of memory...)
                log.error("%s: the worker running it failed: %s", job.label, _describe(exc), exc_info=True)
                done(_outcome(job, "failed", error_type=type(exc).__name__, error=str(exc)))


def _run_pool(jobs: Sequence[StudyJob], ctx: JobContext, workers: int, should_stop: StopCheck,
              done: Callable[[JobOutcome], None]) -> None:
    threads = max(1, (os.cpu_count() or 1) // workers)
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                initializer=_init_pool_worker,
                                initargs=(threads, logging.getLogger().getEffectiveLevel())) as pool:
        futures = {pool.submit(process_job, job, ctx): job for job in jobs}

        def wait(pending: set[Any]) -> tuple[set[Any], set[Any]]:
            finished, rest = cf.wait(pending, timeout=0.5, return_when=cf.FIRST_COMPLETED)
            return set(finished), set(rest)

        _drain(futures, should_stop, done, wait, lambda f: bool(f.cancel()), lambda f: f.result())


def _run_dask(jobs: Sequence[StudyJob], ctx: JobContext, scheduler: str, should_stop: StopCheck,
              done: Callable[[JobOutcome], None]) -> None:
    import_extra("distributed", purpose="The Dask executor (--executor dask)")
    from distributed import Client

    try:
        client = Client(scheduler, timeout=DASK_CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"Cannot connect to the Dask scheduler at {scheduler}: {exc}; check --scheduler.") from exc
    try:
        futures = {client.submit(process_job, job, ctx, pure=False, key=f"ichpipe-{ctx.run_id}-{i}"): job
                   for i, job in enumerate(jobs)}

        def wait(pending: set[Any]) -> tuple[set[Any], set[Any]]:
            finished = {f for f in pending if f.done()}
            if not finished:
                time.sleep(0.2)
            return finished, pending - finished

        def cancel(fut: Any) -> bool:
            if fut.status == "pending":
                fut.cancel()
                return True
            return False

        _drain(futures, should_stop, done, wait, cancel, lambda f: f.result())
    finally:
        client.close()


# ---------------------------------------------------------------------------
# The batch
# ---------------------------------------------------------------------------


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
            " Pass --checkpoint FILE, set models.default_checkpoint in the config,"
            " or use --segmenter threshold (the classical method, no checkpoint needed)."
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
        prune_summaries(folder, keep=bc.keep_summaries)
    return report


def _pull(inbox: Path, config: Config, report: BatchReport) -> None:
    from ichpipe.pipeline.pacs.retrieve import pull_new_studies

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

