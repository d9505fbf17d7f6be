"""A batch killed with SIGKILL at random points, then run again: every study done exactly once, nothing half-written."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from batch_support import alive, assert_clean_outputs, descendants, start_batch, valid_study, write_config

from ichpipe.pipeline.batch.ledger import list_ledger
from ichpipe.pipeline.batch.options import BatchOptions
from ichpipe.pipeline.batch.runner import run_batch
from ichpipe.pipeline.config import load_config
from ichpipe.pipeline.serial.store import list_measurements, open_store

N_STUDIES = 8


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kill-template")
    for i in range(N_STUDIES):
        valid_study(root / f"s{i}", 100 + i)
    return root


#: Longest a worker may outlive its killed parent (the parent-death signal is immediate on Linux; the
#: watchdog elsewhere checks once a second).
SURVIVAL_LIMIT_S = 5.0


def _kill_mid_batch(
    proc: subprocess.Popen[str], rng: random.Random, *, pool: bool, timeout_s: float = 120.0
) -> tuple[str, set[int]]:
    """Wait until the batch has finished a random number of studies, then SIGKILL it after a random pause.

    A process pool runs ahead of the progress lines its parent prints, so with
    ``pool`` the kill comes right after the first finished study (no pause):
    otherwise a fast pool can finish all eight before the kill lands.
    """
    assert proc.stderr is not None
    after = 1 if pool else rng.randint(1, N_STUDIES // 2)
    pause = 0.0 if pool else rng.uniform(0.0, 0.25)
    deadline = time.monotonic() + timeout_s
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
        if line.startswith(f"[{after}/"):
            time.sleep(pause)
            break
    workers = descendants(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return seen, workers


def _assert_no_survivor(workers: set[int]) -> None:
    """No process the killed batch started (pool workers, resource tracker) lives on; reap any that does."""
    deadline = time.monotonic() + SURVIVAL_LIMIT_S
    while alive(workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = alive(workers)
    for pid in survivors:  # the test ends what it started, even when the code under test failed
        os.kill(pid, signal.SIGKILL)
    assert survivors == set(), f"{len(survivors)} process(es) outlived the killed batch by {SURVIVAL_LIMIT_S} s"


@pytest.mark.slow
@pytest.mark.parametrize("trial", [0, 1, 2])
def test_killed_batch_is_completed_by_the_next_run(trial: int, template: Path, tmp_path: Path) -> None:
    rng = random.Random(1000 + trial)
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    shutil.copytree(template, inbox)
    config_file = write_config(tmp_path / "cfg.json", store=tmp_path / "store.sqlite")
    workers = "2" if trial == 2 else "1"  # trial 2: kill the parent of a process pool
    proc = start_batch("--inbox", str(inbox), "--out", str(out), "--segmenter", "threshold", "--config",
                       str(config_file), "--workers", workers, cwd=tmp_path)
    seen, started = _kill_mid_batch(proc, rng, pool=workers != "1")
    assert proc.returncode == -signal.SIGKILL, seen
    if workers != "1":
        assert len(started) >= 2, started  # two pool workers (and the resource tracker) were running
    _assert_no_survivor(started)

    config = load_config(config_file)
    with open_store(config.store) as store:
        done_before = {r.job_key for r in list_ledger(store) if r.status == "done"}
    assert len(done_before) < N_STUDIES, "the kill came too late to test anything"
    report = run_batch(BatchOptions(inbox=inbox, out=out, segmenter="threshold"), config)
    assert report.exit_code == 0, [(i.label, i.error) for i in report.failed]
    counts = report.counts
    processed = {i.key for i in report.items if i.status == "processed"}
    skipped = {i.key for i in report.items if i.status == "skipped"}
    assert counts["processed"] + counts["skipped"] == N_STUDIES, counts
    assert processed.isdisjoint(done_before) and done_before <= skipped | processed

    with open_store(config.store) as store:
        rows = list_ledger(store)
        measurements = list_measurements(store)
    assert Counter(r.status for r in rows) == Counter({"done": N_STUDIES})
    assert len(measurements) == N_STUDIES and len({m.series_instance_uid for m in measurements}) == N_STUDIES
    reports = assert_clean_outputs(out)
    assert sorted(r["series_instance_uid"] for r in reports) == sorted(r.series_instance_uid for r in rows)

    again = run_batch(BatchOptions(inbox=inbox, out=out, segmenter="threshold"), config)
    assert again.counts["processed"] == 0 and again.counts["skipped"] == N_STUDIES
