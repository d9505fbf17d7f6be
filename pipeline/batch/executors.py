"""Where a batch's studies run: in this process, in a local process pool, or on a Dask cluster.

Each executor calls :func:`~ichpipe.pipeline.batch.worker.process_job` for every study and reports
outcomes as they finish; a stop request lets running studies finish and starts no new one.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

from ichpipe.errors import UsageError
from ichpipe.extras import import_extra
from ichpipe.pipeline.batch.inbox import StudyJob
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
