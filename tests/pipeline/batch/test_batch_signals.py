"""SIGINT and SIGTERM stop a batch cleanly: nothing new starts, the running studies finish (or, on a second
signal, are abandoned), the summary is written, and no worker outlives the run (issue 18)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from batch_support import alive, assert_clean_outputs, descendants, start_batch, valid_study, write_config

N_STUDIES = 8


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("signal-template")
    for i in range(N_STUDIES):
        valid_study(root / f"s{i}", 500 + i)
    return root


def _start(template: Path, tmp_path: Path, workers: str) -> tuple[subprocess.Popen[str], Path]:
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    shutil.copytree(template, inbox)
    config = write_config(tmp_path / "cfg.json", store=tmp_path / "store.sqlite")
    proc = start_batch("--inbox", str(inbox), "--out", str(out), "--segmenter", "threshold", "--config",
                       str(config), "--workers", workers, cwd=tmp_path)
    return proc, out


def _after_first_study(proc: subprocess.Popen[str], timeout_s: float = 180.0) -> str:
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
        if line.startswith("[1/"):
            return seen
    proc.kill()
    raise AssertionError(f"the batch never finished a study:\n{seen}")


def _finish(proc: subprocess.Popen[str], workers: set[int]) -> tuple[int, str]:
    """Wait for the stopped batch; end and reap whatever it started in any case, then check nothing outlived it."""
    try:
        _, rest = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        deadline = time.monotonic() + 5
        while alive(workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = alive(workers)
        for pid in survivors:  # the test ends what it started, even when the code under test failed
            os.kill(pid, signal.SIGKILL)
    assert survivors == set(), "workers outlived the stopped batch"
    return proc.returncode, rest


def _summary(out: Path) -> dict[str, object]:
    files = sorted((out / "batch-runs").glob("*.json"))
    assert len(files) == 1, files
    data: dict[str, object] = json.loads(files[0].read_text())
    return data


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "workers"), [(signal.SIGINT, "2"), (signal.SIGTERM, "2"), (signal.SIGTERM, "1")],
                         ids=["sigint-pool", "sigterm-pool", "sigterm-inline"])
def test_one_signal_starts_nothing_new_finishes_the_running_studies_and_writes_the_summary(
        sig: signal.Signals, workers: str, template: Path, tmp_path: Path) -> None:
    proc, out = _start(template, tmp_path, workers)
    seen = _after_first_study(proc)
    started = descendants(proc.pid)
    os.kill(proc.pid, sig)
    code, rest = _finish(proc, started)
    stderr = seen + rest
    assert code == 1, stderr
    assert "Aborted!" not in stderr
    summary = _summary(out)
    counts = summary["counts"]
    assert isinstance(counts, dict)
    assert summary["stopped_by"] == sig.name
    assert counts["processed"] + counts["cancelled"] == N_STUDIES, counts
    # the one finished, at most one running per worker, and the race of one more: never the whole queue
    assert counts["processed"] <= 1 + 2 * int(workers) and counts["cancelled"] >= 1, counts
    assert len(assert_clean_outputs(out)) == counts["processed"]


@pytest.mark.slow
def test_a_second_signal_abandons_the_running_studies_and_still_writes_the_summary(template: Path,
                                                                                   tmp_path: Path) -> None:
    proc, out = _start(template, tmp_path, "2")
    seen = _after_first_study(proc)
    started = descendants(proc.pid)
    os.kill(proc.pid, signal.SIGTERM)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGTERM)
    code, rest = _finish(proc, started)
    assert code == 1, seen + rest
    summary = _summary(out)
    counts = summary["counts"]
    assert isinstance(counts, dict)
    assert counts["processed"] + counts["cancelled"] + counts["interrupted"] == N_STUDIES, counts
    assert_clean_outputs(out)


def test_a_run_reports_workers_of_earlier_runs_that_outlived_their_parent(tmp_path: Path) -> None:
    from ichpipe.pipeline.batch.lifecycle import process_start_time
    from ichpipe.pipeline.batch.options import BatchOptions
    from ichpipe.pipeline.batch.runner import run_batch
    from ichpipe.pipeline.config import load_config

    # an orphan: its parent starts it and exits at once (as a worker whose batch was killed would be)
    launcher = subprocess.run([sys.executable, "-c", "import subprocess, sys; p = subprocess.Popen(['sleep', '60'],"
                               " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
                               " print(p.pid, flush=True)"], capture_output=True, text=True, timeout=30)
    orphan = int(launcher.stdout.split()[0])
    try:
        out, inbox = tmp_path / "out", tmp_path / "inbox"
        inbox.mkdir()
        workers = out / ".ichpipe" / "workers"
        workers.mkdir(parents=True)
        (workers / f"{orphan}.json").write_text(json.dumps({
            "pid": orphan, "parent_pid": 999999, "start_time": process_start_time(orphan),
            "parent_start_time": "1", "run_id": "20260101T000000000000Z-host-1"}))
        (workers / "4194303.json").write_text(json.dumps({"pid": 4194303, "parent_pid": 1, "run_id": "x"}))  # dead
        config = load_config(write_config(tmp_path / "cfg.json", store=tmp_path / "store.sqlite"))
        report = run_batch(BatchOptions(inbox=inbox, out=out, segmenter="threshold", write_summary=True), config)
        assert [line for line in report.leftovers if f"worker process {orphan} " in line], report.leftovers
        assert not (workers / "4194303.json").exists()  # the record of a dead worker is removed
        summary = json.loads(Path(report.summary_files["json"]).read_text())
        assert any(str(orphan) in line for line in summary["leftovers"])
    finally:
        os.kill(orphan, signal.SIGKILL)
