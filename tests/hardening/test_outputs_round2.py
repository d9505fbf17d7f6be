"""Outputs, temporary files, locks, archives, configuration and header values (issue 18): each failure found
under adversarial testing, reproduced."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner
from hardening_corpus import copy_study, dicom_files, edit_files

from ichpipe.pipeline.cli import cli

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _run(study: Path, out: Path, config: Path, *extra: str) -> tuple[int, str, str]:
    return _cli("run", "--study", str(study), "--out", str(out), "--segmenter", "threshold", "--config",
                str(config), *extra)


def _series_folders(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("*/*") if p.is_dir() and p.parts[-2][0].isdigit())


# ----------------------------------------------------------------------------- configuration


@pytest.mark.parametrize("text", ["threshold:\n  blood_hu: [.nan, 90]\n", "threshold:\n  min_component_ml: .NaN\n"])
def test_a_nan_config_threshold_is_refused_at_load(text: str, tmp_path: Path, good_study: Path) -> None:
    cfg = tmp_path / "nan.yaml"
    cfg.write_text(text)
    code, _, stderr = _run(good_study, tmp_path / "out", cfg)
    assert code == 2 and "NaN" in stderr and stderr.count("\n") == 1, stderr


def test_a_deeply_nested_config_file_is_a_clear_error(tmp_path: Path, good_study: Path) -> None:
    cfg = tmp_path / "deep.yaml"
    cfg.write_text("threshold: " + "[" * 5000 + "]" * 5000 + "\n")
    code, _, stderr = _run(good_study, tmp_path / "out", cfg)
    assert code == 2 and "nests" in stderr and "Traceback" not in stderr, stderr[-2000:]


def test_a_config_file_that_is_not_utf8_is_a_clear_error(tmp_path: Path, good_study: Path) -> None:
    cfg = tmp_path / "latin1.yaml"
    cfg.write_bytes("outputs:\n  directory: /tmp/r\xe9sultats\n".encode("latin-1"))
    code, _, stderr = _run(good_study, tmp_path / "out", cfg)
    assert code == 2 and "not UTF-8" in stderr and "Traceback" not in stderr, stderr[-2000:]


# ----------------------------------------------------------------------------- header values


def test_a_malformed_birth_date_does_not_fail_the_study(good_study: Path, tmp_path: Path,
                                                        store_config: Path) -> None:
    study = copy_study(good_study, tmp_path / "study")
    edit_files(dicom_files(study), lambda ds: setattr(ds, "PatientBirthDate", "19451317"))
    code, _, stderr = _run(study, tmp_path / "out", store_config, "--json")
    assert code == 0, stderr
    assert "PatientBirthDate of the source is not a valid value" in stderr
    (folder,) = _series_folders(tmp_path / "out")
    for name in ("seg.dcm", "key_image_sc.dcm"):
        assert pydicom.dcmread(folder / name).PatientBirthDate == ""


# ----------------------------------------------------------------------------- archives


def test_many_small_members_cannot_add_up_to_a_zip_bomb(tmp_path: Path, store_config: Path) -> None:
    archive = tmp_path / "bomb.zip"
    block = b"\0" * (1 << 20)
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for i in range(100):  # each member 1 MiB (under the per-member floor), ~1 kB compressed
            zf.writestr(f"m{i:03d}.dcm", block)
    assert archive.stat().st_size < 300_000
    code, _, stderr = _run(archive, tmp_path / "out", store_config)
    assert code == 1 and "zip bomb" in stderr, stderr


def test_the_next_run_removes_the_extraction_folder_a_killed_run_left(good_study: Path, tmp_path: Path,
                                                                       store_config: Path) -> None:
    tmp = tmp_path / "tmp"
    left = tmp / "ichpipe-zip-killed"
    left.mkdir(parents=True)
    (left / ".owner").write_bytes(b"")  # its owner lock died with the killed run
    (left / "000001.dcm").write_bytes(b"\0" * 100_000)
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", "from ichpipe.pipeline.cli import main; main()", "run",
                             "--study", str(good_study), "--out", str(tmp_path / "out"), "--segmenter", "threshold",
                             "--config", str(store_config)], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert not left.exists() and "temporary extraction folder" in result.stderr


# ----------------------------------------------------------------------------- temporary files, store, locks


def test_part_files_a_killed_run_left_do_not_survive_the_next_run(good_study: Path, tmp_path: Path,
                                                                   store_config: Path) -> None:
    out = tmp_path / "out"
    assert _run(good_study, out, store_config)[0] == 0
    (folder,) = _series_folders(out)
    stale = folder / ".seg.dcm.0123456789abcdef0123456789abcdef.part"  # an atomic write cut by kill -9
    stale.write_bytes(b"half a file")
    staged = out / ".ichpipe" / "staging" / "run-0123" / "x" / ".report.json.feed.part"
    staged.parent.mkdir(parents=True)
    staged.write_bytes(b"half")
    assert _run(good_study, out, store_config)[0] == 0
    leftovers = [p for p in out.rglob("*") if p.name.endswith(".part")]
    assert leftovers == [] and not (out / ".ichpipe" / "staging" / "run-0123").exists()


def test_a_killed_run_leaves_nothing_the_next_run_does_not_remove(good_study: Path, tmp_path: Path,
                                                                 store_config: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", "from ichpipe.pipeline.cli import main; main()", "run",
                             "--study", str(good_study), "--out", str(out), "--segmenter", "threshold",
                             "--config", str(store_config)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(out.glob(".ichpipe/staging/run-*/*/*/*")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _run(good_study, out, store_config)[0] == 0
    assert [p for p in out.rglob("*") if p.name.endswith(".part")] == []
    assert list((out / ".ichpipe" / "staging").iterdir()) == []
    assert {p.name for p in _series_folders(out)[0].iterdir()} >= {"report.json", "seg.dcm"}


def test_a_store_that_cannot_be_written_leaves_no_outputs(good_study: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "store-is-a-folder"
    blocked.mkdir()
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"store:\n  path: {blocked}\n")
    code, _, stderr = _run(good_study, tmp_path / "out", cfg)
    assert code == 1, stderr
    assert _series_folders(tmp_path / "out") == []  # no SEG or key image without report and store row
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []


def test_run_waits_for_the_series_lock_a_batch_holds_while_it_publishes(good_study: Path, tmp_path: Path,
                                                                       store_config: Path) -> None:
    from ichpipe.pipeline.batch.locks import acquire_lock, lock_name

    out = tmp_path / "out"
    assert _run(good_study, out, store_config)[0] == 0
    (folder,) = _series_folders(out)
    before = {p.name: p.stat().st_ino for p in folder.iterdir()}
    lock = acquire_lock(out / ".ichpipe" / "locks", lock_name(f"series:{folder.name}"), wait=False)
    assert lock is not None
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", "from ichpipe.pipeline.cli import main; main()", "run",
                             "--study", str(good_study), "--out", str(out), "--segmenter", "threshold",
                             "--config", str(store_config)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(8)  # long enough for the run to finish its work and reach the publishing step
        assert proc.poll() is None, proc.communicate()
        assert {p.name: p.stat().st_ino for p in folder.iterdir()} == before  # nothing touched meanwhile
    finally:
        lock.release()
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert {p.name for p in folder.iterdir()} == set(before)


# ----------------------------------------------------------------------------- batch summaries


def test_summary_pruning_touches_only_the_summaries_it_wrote(good_study: Path, tmp_path: Path) -> None:
    from ichpipe.pipeline.batch.options import BatchOptions
    from ichpipe.pipeline.batch.runner import run_batch
    from ichpipe.pipeline.config import load_config

    shared = tmp_path / "shared-reports"
    shared.mkdir()
    others = {"notes.json": "{}", "2019-audit.csv": "a,b\n", "zz-plan.json": "[]", "20200101T000000000000Z-x-1.json":
              json.dumps({"run_id": "someone else"})}
    for name, text in others.items():
        (shared / name).write_text(text)
    partial = shared / ".20200101T000000000000Z-host-7.json.0123456789abcdef0123456789abcdef.part"
    partial.write_text("{half")  # a summary write cut by kill -9, long ago
    os.utime(partial, (time.time() - 3600, time.time() - 3600))
    inbox = tmp_path / "inbox"
    copy_study(good_study, inbox / "s1")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"store:\n  path: {tmp_path / 'store.sqlite'}\nbatch:\n  settle_s: 0\n  summary_dir: {shared}\n"
                   "  keep_summaries: 1\n")
    config = load_config(cfg)
    for _ in range(2):
        run_batch(BatchOptions(inbox=inbox, out=tmp_path / "out", segmenter="threshold", write_summary=True), config)
    names = {p.name for p in shared.iterdir()}
    assert set(others) <= names, names
    assert not partial.exists()
    assert {n.rsplit(".", 1)[1] for n in names - set(others)} == {"json", "csv", "html"}  # the newest run only

