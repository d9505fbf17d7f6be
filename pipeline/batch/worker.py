"""One study of a batch, wherever it runs (:func:`process_job`: in-process, in a pool worker or on Dask):

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

import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ichpipe import __version__
from ichpipe.errors import DicomInputError, IchpipeError, OutputError
from ichpipe.logs import LogSettings, redact, register_path_alias, safe_text
from ichpipe.pipeline.batch.inbox import StudyJob
from ichpipe.pipeline.batch.ledger import Decision, LedgerEntry, LedgerRow, decide, get_rows, record_entry
from ichpipe.pipeline.batch.locks import acquire_lock, lock_name
from ichpipe.pipeline.batch.summary import JobOutcome, Status
from ichpipe.pipeline.config import Config
from ichpipe.pipeline.config.inference_config import Device
from ichpipe.pipeline.config.loader import build_dataclass
from ichpipe.pipeline.outputs.publish import PRIVATE_DIR, publish_series, remove_tree, rewrite_outputs
from ichpipe.pipeline.segment import Segmenter
from ichpipe.pipeline.serial.store import Store, open_store

__all__ = ["PRIVATE_DIR", "JobContext", "new_run_id", "process_job"]

log = logging.getLogger(__name__)



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
    inbox: Path | None = None
    log_settings: LogSettings = field(default_factory=LogSettings)
    parent_pid: int = field(default_factory=os.getpid)

    @property
    def lock_dir(self) -> Path:
        """Folder of the series lock files."""
        return self.out_root / PRIVATE_DIR / "locks"

    @property
    def staging_dir(self) -> Path:
        """Folder of the per-job staging folders."""
        return self.out_root / PRIVATE_DIR / "staging"

    @property
    def workers_dir(self) -> Path:
        """Folder where pool workers record themselves (:mod:`~ichpipe.pipeline.batch.lifecycle`)."""
        return self.out_root / PRIVATE_DIR / "workers"


def new_run_id() -> str:
    """``<UTC time to the microsecond>Z-<host>-<pid>``: unique, and sorts by time."""
    host = re.sub(r"[^A-Za-z0-9-]", "", socket.gethostname().split(".")[0])[:24] or "host"
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}Z-{host}-{os.getpid()}"


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


def _publish(report: dict[str, Any], staged: Path, staging_root: Path, out_root: Path, config: Config,
             lock: str) -> tuple[Path, dict[str, Any]]:
    """Move a finished series folder from staging to its final place (the series lock is held); return both."""
    final = out_root / staged.relative_to(staging_root)
    report = rewrite_outputs(report, staged, final, write_report=config.outputs.report)
    publish_series(staged, final, staging_root=ctx_staging_root(out_root), lock=lock)
    return final, report


def ctx_staging_root(out_root: Path) -> Path:
    """``OUT/.ichpipe/staging``."""
    return out_root / PRIVATE_DIR / "staging"


def _outcome(job: StudyJob, status: Status, **kw: Any) -> JobOutcome:
    """The outcome of ``job``: its source shown by alias and its error masked (unless ``--log-phi``), one line."""
    register_path_alias(job.source, job.source_alias)
    if kw.get("error") is not None:
        kw["error"] = safe_text(kw["error"])
    return JobOutcome(status=status, key=job.key, label=job.label, source=redact(str(job.source)),
                      study_instance_uid=kw.pop("study_instance_uid", job.study_uid),
                      series_instance_uid=kw.pop("series_instance_uid", job.series_uid),
                      n_instances=job.n_instances, case_id=job.case.case_id if job.case else None, **kw)


def _flag_codes(report: dict[str, Any] | None) -> tuple[str, ...] | None:
    """The quality flag codes of a study report; ``None`` when it has no readable quality block."""
    flags = ((report or {}).get("quality") or {}).get("flags")
    if not isinstance(flags, list):
        return None
    return tuple(str(f.get("code")) for f in flags if isinstance(f, dict))


def _flags_in(output_dir: str | None) -> tuple[str, ...] | None:
    """The quality flag codes in ``output_dir/report.json`` (a study done in an earlier run), if readable."""
    if not output_dir:
        return None
    try:
        return _flag_codes(json.loads((Path(output_dir) / "report.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def _from_row(job: StudyJob, status: Status, row: LedgerRow) -> JobOutcome:
    flags = _flags_in(row.output_dir) if status in ("skipped", "delivered") else None
    return _outcome(job, status, volume_ml=row.volume_ml, quality_flags=flags, output_dir=row.output_dir,
                    attempts=row.attempts,
                    error_type=row.error_type if status == "skipped_failed" else None,
                    error=row.error if status == "skipped_failed" else None,
                    study_instance_uid=row.study_instance_uid or job.study_uid,
                    series_instance_uid=row.series_instance_uid or job.series_uid)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _deliver(files: Sequence[Path], config: Config) -> list[str]:
    """Send ``files``; return the SeriesInstanceUIDs stored."""
    from ichpipe.pipeline.batch.pacs.store_scu import send_files

    results = send_files(files, config=config.pacs)
    return sorted({r.series_instance_uid for r in results if r.series_instance_uid})


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
    register_path_alias(job.source, job.source_alias)  # logs name the inbox entry by its alias
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
    remove_tree(staging)  # left by a run killed while processing this study
    error: BaseException | None = None
    retry = False
    final: Path | None = None
    report: dict[str, Any] = {}
    try:
        segmenter = _segmenter(ctx, config)
        options = RunOptions(study=job.source, out=staging, segmenter=ctx.segmenter, checkpoint=ctx.checkpoint,
                             device=ctx.device, files=job.files, case=job.case, staged=True)
        result = run_study(options, config, segmenter=segmenter)
        final, report = _publish(result.report, result.output_dir, staging, ctx.out_root, config,
                                 lock_name(job.key))
    except IchpipeError as exc:
        error, retry = exc, not isinstance(exc, DicomInputError)
        log.error("%s failed: %s", job.label, exc)
    except Exception as exc:
        error, retry = exc, True
        log.error("%s failed with an unexpected %s", job.label, _describe(exc), exc_info=True)
    finally:
        remove_tree(staging)
    series_uid = report.get("series_instance_uid") or job.series_uid
    fp = job.fingerprint
    if error is None and job.kind == "series" and series_uid != job.series_uid:
        log.warning("%s changed while it was processed (series %s was selected); it is redone next run",
                    job.label, series_uid)
        fp = ""
    delivered_at: datetime | None = None
    delivery_error: str | None = None
    if error is None and final is not None and ctx.send:
        delivered_at, delivery_error = _try_delivery(job, final, config, ctx)
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
    flags = _flag_codes(report)
    if flags:
        log.warning("%s: processed with quality flags %s (the volume may be wrong; see its report)", job.label,
                    ", ".join(flags))
    log.info("%s: processed in %.1f s", job.label, duration)
    return _outcome(job, "processed", series_instance_uid=series_uid, volume_ml=volume, quality_flags=flags,
                    output_dir=str(final), duration_s=duration, attempts=attempts)


def _try_delivery(job: StudyJob, output_dir: Path, config: Config,
                  ctx: JobContext) -> tuple[datetime | None, str | None]:
    try:
        series = _deliver(_delivery_files(output_dir, config), config)
    except IchpipeError as exc:
        log.error("%s: sending to the PACS failed: %s", job.label, exc)
        return None, str(exc)
    except Exception as exc:
        log.error("%s: sending to the PACS failed with an unexpected %s", job.label, _describe(exc), exc_info=True)
        return None, _describe(exc)
    from ichpipe.pipeline.batch.pacs.replace import replace_previous

    try:  # the new outputs are in the PACS: retire the ones sent before for this series
        replace_previous(ctx.out_root, lock_name(job.key), series, config.pacs)
    except IchpipeError as exc:
        log.warning("%s: could not record or replace the earlier deliveries: %s", job.label, exc)
    return datetime.now(UTC).replace(tzinfo=None), None


def _deliver_only(job: StudyJob, ctx: JobContext, config: Config, store: Store, row: LedgerRow,
                  started: float) -> JobOutcome:
    output_dir = Path(row.output_dir or "")
    delivered_at, delivery_error = _try_delivery(job, output_dir, config, ctx)
    values = {f: getattr(row, f) for f in LedgerEntry.__dataclass_fields__}
    values.update(delivered_at=delivered_at, delivery_error=delivery_error, run_id=ctx.run_id)
    attempts = record_entry(store, LedgerEntry(**values))
    duration = round(time.perf_counter() - started, 3)
    if delivery_error is not None:
        return _outcome(job, "failed", volume_ml=row.volume_ml, output_dir=row.output_dir, duration_s=duration,
                        attempts=attempts, error_type="PacsError",
                        error=f"sending to the PACS failed: {delivery_error}")
    return _outcome(job, "delivered", volume_ml=row.volume_ml, quality_flags=_flags_in(row.output_dir),
                    output_dir=row.output_dir, duration_s=duration, attempts=attempts)
