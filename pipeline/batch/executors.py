"""Where a batch's studies run: in this process, in a local process pool, or on a Dask cluster.

Each executor calls :func:`~ichpipe.pipeline.batch.worker.process_job` for every study and reports
outcomes as they finish. Studies are handed out one per free worker, so a stop request (the first
SIGINT/SIGTERM) starts nothing new at once and lets the running studies finish; a ``KeyboardInterrupt``
(the second signal) abandons them. Pool workers die with their parent
(:mod:`~ichpipe.pipeline.batch.lifecycle`) and log through :mod:`ichpipe.logs` like the parent.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from ichpipe.errors import UsageError
from ichpipe.extras import import_extra
from ichpipe.logs import LogSettings, configure_logging, configure_worker_logging
from ichpipe.pipeline.batch.inbox import StudyJob
from ichpipe.pipeline.batch.lifecycle import die_with_parent, register_worker
from ichpipe.pipeline.batch.summary import JobOutcome
from ichpipe.pipeline.batch.worker import JobContext, _describe, _outcome, process_job

__all__ = ["DASK_CONNECT_TIMEOUT_S", "StopCheck"]

log = logging.getLogger(__name__)

#: How long a batch tries to reach the Dask scheduler before giving up.
DASK_CONNECT_TIMEOUT_S = 30.0


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
        try:
            outcome = process_job(job, ctx)
        except KeyboardInterrupt:  # a second SIGINT/SIGTERM: abandon this study (its staging is removed)
            log.warning("%s: abandoned (stopped at once)", job.label)
            done(_outcome(job, "interrupted", error_type="Interrupted", error="stopped before it finished"))
            for rest in jobs[i + 1:]:
                done(_outcome(rest, "cancelled"))
            return
        done(outcome)


def _init_pool_worker(threads: int, settings: LogSettings, parent_pid: int, workers_dir: str, run_id: str) -> None:
    """Pool worker set-up: die with the parent, ignore SIGINT/SIGTERM (the parent stops gracefully), log
    through the one set-up, share the cores."""
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    configure_logging(settings, worker=True)
    register_worker(Path(workers_dir), run_id=run_id, parent_pid=parent_pid)


class _Executor(Protocol):
    def submit(self, job: StudyJob) -> Any: ...
    def wait(self, pending: set[Any]) -> set[Any]: ...
    def cancel(self, fut: Any) -> bool: ...
    def result(self, fut: Any) -> JobOutcome: ...
    def abandon(self) -> None: ...


def _drain(jobs: Sequence[StudyJob], executor: _Executor, max_in_flight: int, should_stop: StopCheck,
           done: Callable[[JobOutcome], None]) -> None:
    """Submit at most ``max_in_flight`` studies at a time; once ``should_stop`` is true nothing new starts.

    A ``KeyboardInterrupt`` (a second signal) abandons the running studies
    (``interrupted``) and cancels the rest; the caller still writes its summary.
    """
    queue = list(jobs)
    running: dict[Any, StudyJob] = {}
    try:
        while queue or running:
            while queue and len(running) < max_in_flight and not should_stop():
                job = queue.pop(0)
                running[executor.submit(job)] = job
            if should_stop():
                for fut in [f for f in running if executor.cancel(f)]:
                    done(_outcome(running.pop(fut), "cancelled"))
                for job in queue:
                    done(_outcome(job, "cancelled"))
                queue.clear()
            if not running:
                break
            for fut in executor.wait(set(running)):
                job = running.pop(fut)
                try:
                    done(executor.result(fut))
                except Exception as exc:  # the worker process died (killed, out of memory...)
                    log.error("%s: the worker running it failed: %s", job.label, _describe(exc), exc_info=True)
                    done(_outcome(job, "failed", error_type=type(exc).__name__, error=str(exc)))
    except KeyboardInterrupt:
        executor.abandon()
        for job in running.values():
            log.warning("%s: abandoned (stopped at once)", job.label)
            done(_outcome(job, "interrupted", error_type="Interrupted", error="stopped before it finished"))
        for job in queue:
            done(_outcome(job, "cancelled"))


class _Pool:
    def __init__(self, pool: cf.ProcessPoolExecutor, ctx: JobContext) -> None:
        self.pool, self.ctx = pool, ctx

    def submit(self, job: StudyJob) -> Any:
        return self.pool.submit(process_job, job, self.ctx)

    def wait(self, pending: set[Any]) -> set[Any]:
        finished, _ = cf.wait(pending, timeout=0.5, return_when=cf.FIRST_COMPLETED)
        return set(finished)

    def cancel(self, fut: Any) -> bool:
        return bool(fut.cancel())

    def result(self, fut: Any) -> JobOutcome:
        return fut.result()

    def abandon(self) -> None:
        # end the workers now: their studies are abandoned (staging removed by the next run, locks dropped)
        processes = list((getattr(self.pool, "_processes", None) or {}).values())
        for process in processes:
            process.kill()
        for process in processes:
            process.join(timeout=10)
        self.pool.shutdown(wait=False, cancel_futures=True)


def _run_pool(jobs: Sequence[StudyJob], ctx: JobContext, workers: int, should_stop: StopCheck,
              done: Callable[[JobOutcome], None]) -> None:
    threads = max(1, (os.cpu_count() or 1) // workers)
    initargs = (threads, ctx.log_settings, os.getpid(), str(ctx.workers_dir), ctx.run_id)
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                  initializer=_init_pool_worker, initargs=initargs)
    try:
        _drain(jobs, _Pool(pool, ctx), workers, should_stop, done)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for path in ctx.workers_dir.glob("*.json"):
            try:
                if json.loads(path.read_text()).get("run_id") == ctx.run_id:
                    path.unlink(missing_ok=True)
            except (OSError, ValueError):
                continue


def _dask_job(job: StudyJob, ctx: JobContext) -> JobOutcome:
    """A study on a Dask worker: log through the one set-up there (a process ichpipe did not start)."""
    if os.getpid() != ctx.parent_pid:
        configure_worker_logging(ctx.log_settings)
    return process_job(job, ctx)


class _Dask:
    def __init__(self, client: Any, ctx: JobContext) -> None:
        self.client, self.ctx, self.n = client, ctx, 0

    def submit(self, job: StudyJob) -> Any:
        self.n += 1
        return self.client.submit(_dask_job, job, self.ctx, pure=False, key=f"ichpipe-{self.ctx.run_id}-{self.n}")

    def wait(self, pending: set[Any]) -> set[Any]:
        finished = {f for f in pending if f.done()}
        if not finished:
            time.sleep(0.2)
        return finished

    def cancel(self, fut: Any) -> bool:
        if fut.status == "pending":
            fut.cancel()
            return True
        return False

    def result(self, fut: Any) -> JobOutcome:
        return fut.result()

    def abandon(self) -> None:
        return None  # the futures are cancelled when the client closes


def _run_dask(jobs: Sequence[StudyJob], ctx: JobContext, scheduler: str, should_stop: StopCheck,
              done: Callable[[JobOutcome], None]) -> None:
    import_extra("distributed", purpose="The Dask executor (--executor dask)")
    from distributed import Client

    try:
        client = Client(scheduler, timeout=DASK_CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"Cannot connect to the Dask scheduler at {scheduler}: {exc}; check --scheduler.") from exc
    try:
        _drain(jobs, _Dask(client, ctx), len(jobs), should_stop, done)
    finally:
        client.close()
