"""The batch ledger (fingerprints, config hash, decisions, the store table and its migration), locks, summaries."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from batch_support import subprocess_env

from ichpipe.pipeline.batch.ledger import (
    Decision,
    LedgerEntry,
    LedgerRow,
    config_hash,
    decide,
    fingerprint,
    get_rows,
    known_study_uids,
    list_ledger,
    record_entry,
)
from ichpipe.pipeline.batch.locks import acquire_lock, lock_name
from ichpipe.pipeline.batch.options import BatchOptions
from ichpipe.pipeline.batch.summary import BatchReport, JobOutcome, prune_summaries, write_summary
from ichpipe.pipeline.config import Config
from ichpipe.pipeline.config.batch_config import BatchConfig
from ichpipe.pipeline.config.pacs_config import PacsConfig
from ichpipe.pipeline.config.store_config import StoreConfig
from ichpipe.pipeline.config.threshold_config import ThresholdConfig
from ichpipe.pipeline.serial.store import (
    SCHEMA_VERSION,
    list_measurements,
    open_store,
    schema_version,
)

# ---------------------------------------------------------------------------
# Fingerprints and the config hash
# ---------------------------------------------------------------------------


def test_fingerprint_ignores_order_and_sees_every_change() -> None:
    base = [("1.2.1", 1000, 10), ("1.2.2", 1000, 11)]
    fp = fingerprint(base)
    assert fp == fingerprint(reversed(base))
    assert fp != fingerprint([("1.2.1", 1000, 10)])  # an instance missing
    assert fp != fingerprint([("1.2.1", 1001, 10), ("1.2.2", 1000, 11)])  # size
    assert fp != fingerprint([("1.2.1", 1000, 12), ("1.2.2", 1000, 11)])  # mtime
    assert fp != fingerprint([("1.2.3", 1000, 10), ("1.2.2", 1000, 11)])  # another instance


def test_config_hash_counts_what_changes_results_only() -> None:
    base = Config()
    h = config_hash(base, segmenter="threshold")
    assert h == config_hash(Config(), segmenter="threshold")
    assert h != config_hash(base, segmenter="sa_cbam_unet")
    assert h != config_hash(dataclasses.replace(base, threshold=ThresholdConfig(min_component_ml=0.2)),
                            segmenter="threshold")
    same = dataclasses.replace(base, store=StoreConfig(path="/elsewhere.sqlite"), batch=BatchConfig(workers=4),
                               pacs=PacsConfig(send=True),
                               outputs=dataclasses.replace(base.outputs, directory="/other"))
    assert config_hash(same, segmenter="threshold") == h


# ---------------------------------------------------------------------------
# Decisions
# ---------------------------------------------------------------------------


def _row(tmp_path: Path, **kw: object) -> LedgerRow:
    out = tmp_path / "out" / "1.2" / "1.2.3"
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text("{}")
    values: dict[str, object] = dict(job_key="series:1.2.3", kind="series", source="x", status="done",
                                     fingerprint="F", n_instances=3, config_hash="C", checkpoint_sha256=None,
                                     output_dir=str(out), attempts=1, processed_at=datetime(2026, 1, 1))
    values.update(kw)
    return LedgerRow(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("row_kw", "now_kw", "expected"),
    [
        ({}, {}, Decision.SKIP_DONE),
        ({}, {"fingerprint": "G"}, Decision.PROCESS),
        ({}, {"config_hash": "D"}, Decision.PROCESS),
        ({}, {"checkpoint_sha256": "ab" * 32}, Decision.PROCESS),
        ({"checkpoint_sha256": "ab" * 32}, {"checkpoint_sha256": "cd" * 32}, Decision.PROCESS),
        ({"status": "failed"}, {}, Decision.SKIP_FAILED),
        ({"status": "failed"}, {"retry_failed": True}, Decision.PROCESS),
        ({"status": "failed", "retry": True}, {}, Decision.PROCESS),
        ({"status": "failed"}, {"fingerprint": "G"}, Decision.PROCESS),
        ({}, {"send": True}, Decision.DELIVER),
        ({"delivered_at": datetime(2026, 1, 2)}, {"send": True}, Decision.SKIP_DONE),
        ({"output_dir": None}, {}, Decision.PROCESS),
    ],
)
def test_decide(tmp_path: Path, row_kw: dict[str, object], now_kw: dict[str, object], expected: Decision) -> None:
    now: dict[str, object] = dict(fingerprint="F", config_hash="C", checkpoint_sha256=None, retry_failed=False,
                                  send=False, out_root=tmp_path / "out", require_report=True)
    now.update(now_kw)
    assert decide(_row(tmp_path, **row_kw), **now) is expected  # type: ignore[arg-type]


def test_decide_redoes_when_outputs_are_gone_or_elsewhere(tmp_path: Path) -> None:
    row = _row(tmp_path)
    kw: dict[str, object] = dict(fingerprint="F", config_hash="C", checkpoint_sha256=None, retry_failed=False,
                                 send=False, require_report=True)
    assert decide(row, out_root=tmp_path / "other-out", **kw) is Decision.PROCESS  # type: ignore[arg-type]
    assert decide(None, out_root=tmp_path / "out", **kw) is Decision.PROCESS  # type: ignore[arg-type]
    (Path(str(row.output_dir)) / "report.json").unlink()
    assert decide(row, out_root=tmp_path / "out", **kw) is Decision.PROCESS  # type: ignore[arg-type]
    assert decide(row, out_root=tmp_path / "out", **{**kw, "require_report": False}) is Decision.SKIP_DONE  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# The ledger table and its migration
# ---------------------------------------------------------------------------


def _entry(key: str = "series:1.2.3", **kw: object) -> LedgerEntry:
    values: dict[str, object] = dict(job_key=key, kind="series", source="/inbox/a", status="done",
                                     fingerprint="F", n_instances=12, config_hash="C", study_instance_uid="1.2",
                                     series_instance_uid="1.2.3", segmenter="threshold", volume_ml=12.5)
    values.update(kw)
    return LedgerEntry(**values)  # type: ignore[arg-type]


def test_record_entry_upserts_and_counts_attempts(tmp_path: Path) -> None:
    with open_store(StoreConfig(path=str(tmp_path / "s.sqlite"))) as store:
        assert record_entry(store, _entry(status="failed", error="x", error_type="DicomInputError")) == 1
        assert record_entry(store, _entry()) == 2
        record_entry(store, _entry("study:9.9", kind="study", study_instance_uid="9.9", series_instance_uid=None))
        rows = list_ledger(store)
        assert [r.job_key for r in rows] == ["series:1.2.3", "study:9.9"]
        row = get_rows(store, ["series:1.2.3", "series:none"])["series:1.2.3"]
        assert (row.status, row.attempts, row.error, row.volume_ml) == ("done", 2, None, 12.5)
        assert known_study_uids(store) == {"1.2", "9.9"}


def test_ledger_entry_validation() -> None:
    with pytest.raises(ValueError, match="'status'"):
        _entry(status="maybe")
    with pytest.raises(ValueError, match="'kind'"):
        _entry(kind="patient")


def test_a_version_2_store_upgrades_to_the_ledger_schema(tmp_path: Path) -> None:
    config = StoreConfig(path=str(tmp_path / "old.sqlite"))
    with open_store(config, migrate_to=2) as store:
        assert schema_version(store) == 2
    con = sqlite3.connect(config.path)
    try:  # a row as a version-2 ichpipe wrote it (today's code writes later columns)
        con.execute("INSERT INTO measurements (series_instance_uid, patient_id, acquisition_datetime, volume_ml, "
                    "recorded_at) VALUES ('1.2.3', 'P1', '2025-05-01 08:00:00.000000', 9.0, "
                    "'2025-05-01 09:00:00.000000')")
        con.commit()
        tables = {n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        con.close()
    assert "batch_ledger" not in tables
    with open_store(config) as store:  # an ichpipe with the ledger opens the old store
        assert schema_version(store) == SCHEMA_VERSION
        assert [m.series_instance_uid for m in list_measurements(store)] == ["1.2.3"]
        assert record_entry(store, _entry()) == 1
        assert list_ledger(store)[0].fingerprint == "F"
    con = sqlite3.connect(config.path)
    try:
        versions = [v for (v,) in con.execute("SELECT version FROM schema_version ORDER BY version")]
        indexes = {n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    finally:
        con.close()
    assert versions == list(range(1, SCHEMA_VERSION + 1)) and "ix_batch_ledger_study" in indexes


# ---------------------------------------------------------------------------
# Locks
# ---------------------------------------------------------------------------


def test_lock_names_are_safe_file_names() -> None:
    assert lock_name("series:1.2.840.1") == "series-1.2.840.1"
    hashed = lock_name("path:/inbox/../etc/passwd")
    assert hashed.startswith("path-") and "/" not in hashed and len(hashed) == 45
    with pytest.raises(ValueError, match="'job_key'"):
        lock_name("nonsense")


def test_a_held_lock_is_skipped_or_waited_for(tmp_path: Path) -> None:
    first = acquire_lock(tmp_path, "series-1.2", wait=False)
    assert first is not None and first.held
    assert acquire_lock(tmp_path, "series-1.2", wait=False) is None
    started = time.monotonic()
    assert acquire_lock(tmp_path, "series-1.2", wait=True, timeout_s=0.3, poll_s=0.05) is None
    assert time.monotonic() - started >= 0.3
    threading.Timer(0.3, first.release).start()
    second = acquire_lock(tmp_path, "series-1.2", wait=True, timeout_s=10, poll_s=0.05)
    assert second is not None
    second.release()
    second.release()  # idempotent
    assert not (tmp_path / "series-1.2.lock").exists()
    with pytest.raises(ValueError, match="'name'"):
        acquire_lock(tmp_path, "../x", wait=False)


_HOLDER = """
import sys, time
from pathlib import Path
from ichpipe.pipeline.batch.locks import acquire_lock
lock = acquire_lock(Path(sys.argv[1]), "series-7.7", wait=False)
print("held" if lock else "busy", flush=True)
time.sleep(60)
"""


def test_a_lock_dies_with_a_killed_process(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            env=subprocess_env())
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        assert acquire_lock(tmp_path, "series-7.7", wait=False) is None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert (tmp_path / "series-7.7.lock").exists()  # the file stays; the lock does not
        lock = acquire_lock(tmp_path, "series-7.7", wait=True, timeout_s=10)
        assert lock is not None
        lock.release()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


# ---------------------------------------------------------------------------
# Options, summaries
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "name"),
    [({"workers": 0}, "workers"), ({"settle_s": -1.0}, "settle_s"), ({"executor": "spark"}, "executor"),
     ({"on_locked": "kill"}, "on_locked"), ({"scheduler": " "}, "scheduler")],
)
def test_batch_options_name_the_bad_argument(kw: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=f"'{name}'"):
        BatchOptions(inbox=Path("in"), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cls", "kw", "name"),
    [(BatchConfig, {"workers": 0}, "workers"), (BatchConfig, {"settle_s": -5.0}, "settle_s"),
     (BatchConfig, {"poll_interval_s": 0.0}, "poll_interval_s"),
     (PacsConfig, {"ae_title": "A" * 17}, "ae_title"), (PacsConfig, {"remote_port": 0}, "remote_port"),
     (PacsConfig, {"send_outputs": ("nifti",)}, "send_outputs"), (PacsConfig, {"pull_days": -1}, "pull_days")],
)
def test_config_sections_name_the_bad_argument(cls: type, kw: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=f"'{name}'"):
        cls(**kw)


def test_report_exit_code_and_summary_files(tmp_path: Path) -> None:
    def item(status: str, key: str) -> JobOutcome:
        return JobOutcome(status=status, key=key, label=key, source="s")  # type: ignore[arg-type]

    report = BatchReport(run_id="20260101T000000000000Z-h-1", inbox="i", out="o", started_at="t")
    report.items = [item("processed", "series:1"), item("skipped", "series:2"), item("waiting", "path:x")]
    assert report.exit_code == 0 and report.did_work
    report.items.append(item("failed", "series:3"))
    assert report.exit_code == 1
    files = write_summary(report, tmp_path)
    data = json.loads(Path(files["json"]).read_text())
    assert data["counts"]["failed"] == 1 and data["exit_code"] == 1 and len(data["items"]) == 4
    assert Path(files["csv"]).read_text().count("\n") == 5
    idle = BatchReport(run_id="20260101T000001000000Z-h-1", inbox="i", out="o", started_at="t",
                       items=[item("skipped", "series:2")])
    assert idle.exit_code == 0 and not idle.did_work
    assert BatchReport(run_id="r", inbox="i", out="o", started_at="t", pull_error="refused").exit_code == 1
    for k in range(3):
        write_summary(BatchReport(run_id=f"20270101T00000{k}000000Z-h-1", inbox="i", out="o", started_at="t"),
                      tmp_path)
    assert prune_summaries(tmp_path, keep=2) == 2
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [
        "20270101T000001000000Z-h-1.json", "20270101T000002000000Z-h-1.json"]
    with pytest.raises(ValueError, match="'status'"):
        item("exploded", "k")
