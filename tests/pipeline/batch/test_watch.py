"""``ichpipe watch``: polls the inbox, picks up new studies, stops gracefully on SIGTERM (exit 0)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from batch_support import (
    assert_clean_outputs,
    ichpipe_command,
    series_folders,
    subprocess_env,
    valid_study,
    write_config,
)

from ichpipe.pipeline.batch.ledger import list_ledger
from ichpipe.pipeline.batch.options import BatchOptions
from ichpipe.pipeline.batch.summary import BatchReport, JobOutcome
from ichpipe.pipeline.batch.watch import watch
from ichpipe.pipeline.config import load_config
from ichpipe.pipeline.serial.store import open_store


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("watch-template")
    for i in range(6):
        valid_study(root / f"s{i}", 400 + i)
    return root


class _StopAfterFirst:
    """A progress receiver that asks the watch to stop once the first study is done."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.seen: list[JobOutcome] = []

    def start(self, total: int) -> None:
        pass

    def advance(self, outcome: JobOutcome) -> None:
        self.seen.append(outcome)
        self.stop.set()

    def close(self) -> None:
        pass


def test_stop_finishes_the_current_study_and_starts_no_other(template: Path, tmp_path: Path) -> None:
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    for name in ("s0", "s1", "s2"):
        shutil.copytree(template / name, inbox / name)
    config = load_config(write_config(tmp_path / "cfg.json", store=tmp_path / "store.sqlite",
                                      batch={"poll_interval_s": 0.1}))
    stop = threading.Event()
    reports: list[BatchReport] = []
    code = watch(BatchOptions(inbox=inbox, out=out, segmenter="threshold"), config, stop=stop,
                 progress=lambda: _StopAfterFirst(stop), on_cycle=reports.append)
    assert code == 0 and len(reports) == 1
    assert (reports[0].counts["processed"], reports[0].counts["cancelled"]) == (1, 2)
    with open_store(config.store) as store:
        assert [r.status for r in list_ledger(store)] == ["done"]
    assert len(assert_clean_outputs(out)) == 1
    # The next start picks up the rest.
    code = watch(BatchOptions(inbox=inbox, out=out, segmenter="threshold"), config, max_cycles=1,
                 on_cycle=reports.append)
    assert code == 0 and (reports[1].counts["processed"], reports[1].counts["skipped"]) == (2, 1)


def _reader(stream: object, lines: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line)


def _wait_for(lines: queue.Queue[str], needle: str, timeout_s: float, log: list[str]) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        log.append(line)
        if needle in line:
            return line
    raise AssertionError(f"no line with {needle!r} within {timeout_s} s; stderr so far:\n{''.join(log)[-3000:]}")


@pytest.mark.slow
def test_watch_service_picks_up_arrivals_and_exits_0_on_sigterm(template: Path, tmp_path: Path) -> None:
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    shutil.copytree(template / "s0", inbox / "s0")
    config_file = write_config(tmp_path / "cfg.json", store=tmp_path / "store.sqlite")
    proc = subprocess.Popen(
        ichpipe_command("watch", "--inbox", str(inbox), "--out", str(out), "--segmenter", "threshold",
                        "--interval-s", "0.3", "--config", str(config_file)),
        cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stderr, lines), daemon=True).start()
    log: list[str] = []
    try:
        _wait_for(lines, "processed", 120, log)
        # A study arrives while the service runs (written under a hidden name, then renamed, as receivers do).
        shutil.copytree(template / "s1", inbox / ".incoming-s1")
        os.rename(inbox / ".incoming-s1", inbox / "s1")
        _wait_for(lines, "processed", 60, log)
        assert len(series_folders(out)) == 2
        # Four more at once; SIGTERM as soon as the first is done: the one in progress finishes, no other starts.
        # (One folder holding four studies appears in one rename: the inbox groups by StudyInstanceUID.)
        for name in ("s2", "s3", "s4", "s5"):
            shutil.copytree(template / name, inbox / ".incoming-batch" / name)
        os.rename(inbox / ".incoming-batch", inbox / "batch")
        _wait_for(lines, "processed", 60, log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, "".join(log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    with open_store(load_config(config_file).store) as store:
        rows = list_ledger(store)
    assert all(r.status == "done" for r in rows) and 3 <= len(rows) < 6, len(rows)
    assert len(assert_clean_outputs(out)) == len(rows)  # nothing half-done
    summaries = sorted((out / "batch-runs").glob("*.json"))
    assert summaries, "cycles that did work write a summary"
    last = json.loads(summaries[-1].read_text())
    assert last["counts"]["cancelled"] == 6 - len(rows)
