"""``ichpipe batch`` over an inbox of tiny phantom studies: outcomes, incremental runs, exit codes."""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from batch_support import (
    assert_clean_outputs,
    copy_study,
    corrupt_headers,
    corrupt_pixels,
    dicom_files,
    mr_study,
    series_folders,
    valid_study,
    write_config,
    zip_study,
)
from click.testing import CliRunner

from ichpipe.pipeline.batch.inbox import source_alias
from ichpipe.pipeline.batch.ledger import list_ledger
from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.config import load_config
from ichpipe.pipeline.serial.store import list_measurements, open_store

N_FOLDERS = 15  # plus one nested folder and one zip: 17 valid studies


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 studies written once: 17 valid (mixed geometries, one nested, one zipped), 2 corrupt, 1 MR."""
    root = tmp_path_factory.mktemp("inbox-template")
    scratch = tmp_path_factory.mktemp("scratch")
    for i in range(N_FOLDERS):
        valid_study(root / f"study-{i:02d}", i)
    valid_study(root / "patient-x" / "visit-1", 40)
    zip_study(root / "archive.zip", 41, scratch)
    corrupt_headers(root / "broken-headers", 50)
    corrupt_pixels(root / "broken-pixels", 51)
    mr_study(root / "not-ct", 52)
    return root


@pytest.fixture
def inbox(template: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "inbox"
    shutil.copytree(template, dest)
    return dest


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return write_config(tmp_path / "cfg.json", store=tmp_path / "store.sqlite")


def batch(inbox: Path, out: Path, config: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(cli, ["batch", "--inbox", str(inbox), "--out", str(out), "--segmenter",
                                      "threshold", "--config", str(config), "--json", *extra])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout)


def ledger(config: Path) -> dict[str, Any]:
    with open_store(load_config(config).store, create=False) as store:
        return {r.job_key: r for r in list_ledger(store)}


def test_twenty_studies_then_nothing_then_one_more(inbox: Path, tmp_path: Path, config_file: Path,
                                                    template: Path) -> None:
    out = tmp_path / "out"
    code, first = batch(inbox, out, config_file)
    assert code == 1
    assert (first["counts"]["processed"], first["counts"]["failed"]) == (17, 3), first["counts"]
    assert first["exit_code"] == 1
    failed = {i["label"]: i for i in first["items"] if i["status"] == "failed"}
    # Headers cut short parse as DICOM without UIDs: the folder is a job of its own and has no usable series.
    # Folder names may hold patient names: the label names the folder by a digest of its path in the inbox.
    assert "usable axial head CT" in failed[f"folder {source_alias(inbox / 'broken-headers', inbox)}"]["error"]
    (pixels,) = [i for i in failed.values() if i["error_type"] == "DicomInputError"]
    assert "pixel data" in pixels["error"] and pixels["label"].startswith("series ")
    (mr,) = [i for lab, i in failed.items() if lab.startswith("study ")]
    assert "MR series" in mr["error"] and mr["error_type"] == "NoSeriesSelectedError"
    # One folder per series, complete; the right series chosen where distractors are present.
    reports = assert_clean_outputs(out)
    assert len(reports) == 17 and len(series_folders(out)) == 17
    for i in range(N_FOLDERS):
        truth = json.loads((template / f"study-{i:02d}" / "truth.json").read_text())
        assert (out / truth["study_instance_uid"] / truth["selected_series_instance_uid"]).is_dir()
    # Summary files; the CSV has one row per study.
    assert Path(first["summary_files"]["json"]).is_file()
    csv_lines = Path(first["summary_files"]["csv"]).read_text().strip().splitlines()
    assert len(csv_lines) == 1 + 20
    rows = ledger(config_file)
    assert Counter(r.status for r in rows.values()) == Counter({"done": 17, "failed": 3})
    assert all(r.attempts == 1 for r in rows.values())
    with open_store(load_config(config_file).store, create=False) as store:
        assert len(list_measurements(store)) == 17

    code, second = batch(inbox, out, config_file)
    assert code == 0 and second["exit_code"] == 0
    assert second["counts"]["processed"] == 0 and second["counts"]["failed"] == 0
    assert (second["counts"]["skipped"], second["counts"]["skipped_failed"]) == (17, 3)
    assert second["duration_s"] < first["duration_s"]
    assert all(r.attempts == 1 for r in ledger(config_file).values())

    valid_study(inbox / "late-arrival", 60)
    code, third = batch(inbox, out, config_file)
    assert code == 0
    assert third["counts"]["processed"] == 1 and third["counts"]["skipped"] == 17
    (new,) = [i for i in third["items"] if i["status"] == "processed"]
    truth = json.loads((inbox / "late-arrival" / "truth.json").read_text())
    assert new["series_instance_uid"] == truth["selected_series_instance_uid"]
    assert len(series_folders(out)) == 18


def test_changed_series_config_or_missing_outputs_are_redone(tmp_path: Path, config_file: Path) -> None:
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    a = valid_study(inbox / "a", 1)
    valid_study(inbox / "b", 2)
    assert batch(inbox, out, config_file)[1]["counts"]["processed"] == 2

    # One instance re-sent (new modification time): that series only is redone.
    f = dicom_files(a)[3]
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns - 5_000_000_000))
    _, run = batch(inbox, out, config_file)
    assert (run["counts"]["processed"], run["counts"]["skipped"]) == (1, 1)
    truth_a = json.loads((a / "truth.json").read_text())
    (redone,) = [i for i in run["items"] if i["status"] == "processed"]
    assert redone["series_instance_uid"] == truth_a["selected_series_instance_uid"]
    assert redone["attempts"] == 2

    # A setting that changes results: everything is redone.
    changed = json.loads(config_file.read_text())
    changed["threshold"] = {"min_component_ml": 0.3}  # the default is 0.1
    config_file.write_text(json.dumps(changed))
    assert batch(inbox, out, config_file)[1]["counts"]["processed"] == 2
    # A setting that does not (the summary count): nothing is redone.
    changed["batch"]["keep_summaries"] = 50
    config_file.write_text(json.dumps(changed))
    assert batch(inbox, out, config_file)[1]["counts"]["processed"] == 0

    # Outputs deleted by someone: redone.
    shutil.rmtree(out / truth_a["study_instance_uid"])
    _, run = batch(inbox, out, config_file)
    assert run["counts"]["processed"] == 1
    assert_clean_outputs(out)


def test_a_study_still_arriving_is_left_for_the_next_run(tmp_path: Path, config_file: Path,
                                                         template: Path) -> None:
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    copy_study(template / "study-00", inbox / "old")
    valid_study(inbox / "fresh", 70)  # written just now
    old_time = 1_600_000_000
    for f in (inbox / "old").rglob("*"):
        os.utime(f, (old_time, old_time))
    # ctime cannot be set back: the copy counts as new too with a long settle time, as it should.
    code, run = batch(inbox, out, config_file, "--settle-s", "3600")
    assert code == 0 and run["counts"]["waiting"] == 2 and run["counts"]["processed"] == 0
    assert series_folders(out) == []
    code, run = batch(inbox, out, config_file, "--settle-s", "0")
    assert code == 0 and run["counts"]["processed"] == 2


def test_unexpected_errors_are_logged_recorded_and_retried(tmp_path: Path, config_file: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import ichpipe.pipeline.jobs.run_study

    inbox, out = tmp_path / "inbox", tmp_path / "out"
    valid_study(inbox / "a", 1)
    valid_study(inbox / "b", 2)
    real = ichpipe.pipeline.jobs.run_study.run_study
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated bug")
        return real(*args, **kwargs)

    monkeypatch.setattr(ichpipe.pipeline.jobs.run_study, "run_study", flaky)
    result = CliRunner().invoke(cli, ["batch", "--inbox", str(inbox), "--out", str(out), "--segmenter",
                                      "threshold", "--config", str(config_file), "--json"])
    run = json.loads(result.stdout)
    assert result.exit_code == 1 and (run["counts"]["processed"], run["counts"]["failed"]) == (1, 1)
    (bad,) = [i for i in run["items"] if i["status"] == "failed"]
    assert bad["error_type"] == "RuntimeError" and bad["error"] == "simulated bug"
    # Logged at error level with its traceback (the CLI's log handler writes to stderr).
    assert "ERROR" in result.stderr and "Traceback" in result.stderr and "simulated bug" in result.stderr
    rows = ledger(config_file)
    assert [r.retry for r in rows.values() if r.status == "failed"] == [True]
    # Not an input problem: retried (and done) on the next run even though nothing changed.
    code, run = batch(inbox, out, config_file)
    assert code == 0 and run["counts"]["processed"] == 1 and run["counts"]["skipped"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "{inbox}/out"], "overlap"),
        (["--executor", "dask"], "--scheduler"),
        (["--segmenter", "nope"], "Unknown segmenter"),
        (["--checkpoint", "{tmp}/missing.pt", "--segmenter", "sa_cbam_unet"], "does not exist"),
    ],
)
def test_usage_and_config_errors_exit_2(tmp_path: Path, config_file: Path, args: list[str], message: str) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    argv = ["batch", "--inbox", str(inbox), "--config", str(config_file)]
    argv += [a.format(inbox=inbox, tmp=tmp_path) for a in args]
    if "--out" not in args:
        argv += ["--out", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_missing_inbox_exits_2(tmp_path: Path, config_file: Path) -> None:
    result = CliRunner().invoke(cli, ["batch", "--inbox", str(tmp_path / "none"), "--out", str(tmp_path / "o"),
                                      "--segmenter", "threshold", "--config", str(config_file)])
    assert result.exit_code == 2 and "not a folder" in result.stderr


def test_quality_flags_are_in_the_summaries(tmp_path: Path, config_file: Path) -> None:
    """A skull-stripped study is processed (its volume written) and its flags are in the JSON and CSV summaries."""
    from batch_support import tiny_spec

    from ichpipe.pipeline.synthetic.phantom import write_phantom_study

    inbox = tmp_path / "inbox"
    valid_study(inbox / "fine", 0)
    write_phantom_study(inbox / "stripped", tiny_spec(1, export="skull_air_stripped"))
    code, summary = batch(inbox, tmp_path / "out", config_file)
    assert code == 0 and summary["counts"]["processed"] == 2
    # summaries name studies by UID, never by folder name (issue 18): find each by its truth's series UID
    uid = {name: json.loads((inbox / name / "truth.json").read_text())["selected_series_instance_uid"]
           for name in ("fine", "stripped")}
    by_uid = {i["series_instance_uid"]: i for i in summary["items"]}
    assert by_uid[uid["fine"]]["quality_flags"] == []
    assert {"skull_absent", "hu_no_air"} <= set(by_uid[uid["stripped"]]["quality_flags"])
    assert summary["flagged"] == 1
    rows = {r["series_instance_uid"]: r for r in csv.DictReader(
        Path(summary["summary_files"]["csv"]).read_text().splitlines())}
    assert rows[uid["fine"]]["quality_flags"] == "none"
    assert "skull_absent" in rows[uid["stripped"]]["quality_flags"].split(";")
    code, again = batch(inbox, tmp_path / "out", config_file)  # done before: the flags are read from its report
    assert {i["status"] for i in again["items"]} == {"skipped"}
    again_by_uid = {i["series_instance_uid"]: i for i in again["items"]}
    assert {"skull_absent"} <= set(again_by_uid[uid["stripped"]]["quality_flags"])
