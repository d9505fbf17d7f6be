"""Overlapping batch runs over one inbox (two cron runs, or cron beside watch): each series processed once."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
from batch_support import assert_clean_outputs, start_batch, valid_study, write_config

from ichpipe.pipeline.batch.ledger import list_ledger
from ichpipe.pipeline.batch.locks import acquire_lock
from ichpipe.pipeline.batch.options import BatchOptions
from ichpipe.pipeline.batch.runner import run_batch
from ichpipe.pipeline.batch.summary import BatchReport
from ichpipe.pipeline.config import load_config
from ichpipe.pipeline.serial.store import list_measurements, open_store

N_STUDIES = 10


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("overlap-template")
    for i in range(N_STUDIES):
        valid_study(root / f"s{i}", 200 + i)
    return root


def _check_once(config_file: Path, out: Path, processed: list[set[str]]) -> None:
    """Each series processed by exactly one of the runs, recorded once, one folder each."""
    union = set().union(*processed)
    assert len(union) == N_STUDIES and sum(len(p) for p in processed) == N_STUDIES, [len(p) for p in processed]
    config = load_config(config_file)
    with open_store(config.store) as store:
        rows = list_ledger(store)
        measurements = list_measurements(store)
    assert len(rows) == N_STUDIES and all(r.status == "done" and r.attempts == 1 for r in rows)
    assert len(measurements) == N_STUDIES
    assert len(assert_clean_outputs(out)) == N_STUDIES


@pytest.mark.slow
def test_two_overlapping_processes(template: Path, tmp_path: Path) -> None:
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    shutil.copytree(template, inbox)
    config_file = write_config(tmp_path / "cfg.json", store=tmp_path / "store.sqlite")
    args = ("--inbox", str(inbox), "--out", str(out), "--segmenter", "threshold", "--config", str(config_file),
            "--on-locked", "skip", "--json")
    procs = [start_batch(*args, cwd=tmp_path) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in results]
    summaries = [json.loads(stdout) for stdout, _ in results]
    processed = [{i["key"] for i in s["items"] if i["status"] == "processed"} for s in summaries]
    print("processed per run:", [len(p) for p in processed],
          "locked:", [s["counts"]["locked"] for s in summaries])
    _check_once(config_file, out, processed)


def test_overlapping_runs_in_threads(template: Path, tmp_path: Path) -> None:
    """Two runs in one process started together (locks are per open file, so threads contend too)."""
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    shutil.copytree(template, inbox)
    config_file = write_config(tmp_path / "cfg.json", store=tmp_path / "store.sqlite")
    config = load_config(config_file)
    barrier = threading.Barrier(2)
    reports: list[BatchReport] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            barrier.wait(timeout=30)
            reports.append(run_batch(BatchOptions(inbox=inbox, out=out, segmenter="threshold"), config))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == [] and len(reports) == 2
    assert all(r.exit_code == 0 for r in reports)
    _check_once(config_file, out, [{i.key for i in r.items if i.status == "processed"} for r in reports])


def test_a_series_locked_by_another_run_is_skipped_then_done(template: Path, tmp_path: Path) -> None:
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    shutil.copytree(template / "s0", inbox / "s0")
    shutil.copytree(template / "s1", inbox / "s1")
    config = load_config(write_config(tmp_path / "cfg.json", store=tmp_path / "store.sqlite"))
    truth = json.loads((inbox / "s0" / "truth.json").read_text())
    held = acquire_lock(out / ".ichpipe" / "locks", f"series-{truth['selected_series_instance_uid']}", wait=False)
    assert held is not None
    try:
        report = run_batch(BatchOptions(inbox=inbox, out=out, segmenter="threshold"), config)
        assert (report.counts["locked"], report.counts["processed"], report.exit_code) == (1, 1, 0)
        # With on_locked=wait the run waits for the holder, then does the work.
        threading.Timer(1.0, held.release).start()
        report = run_batch(BatchOptions(inbox=inbox, out=out, segmenter="threshold", on_locked="wait"), config)
        assert (report.counts["processed"], report.counts["skipped"]) == (1, 1)
    finally:
        held.release()
