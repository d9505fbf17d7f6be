"""Patient identifiers in every process and every text ichpipe prints (issue 18): pool and Dask workers,
failure lines, batch summaries, inspect errors, file names, control characters, library chatter."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner
from hardening_corpus import (
    BIRTH_DATE,
    PATIENT_ID,
    PATIENT_NAME,
    copy_study,
    dicom_files,
    edit_files,
    good_phantom,
    read_study,
)
from pydicom.tag import Tag, tag_in_exception

from ichpipe.dicom_io._privacy import forget_identifiers
from ichpipe.errors import DicomInputError
from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.cli._common import setup_logging

REPO = Path(__file__).resolve().parents[2]
SECRETS = (PATIENT_ID, *PATIENT_NAME.split("^"), BIRTH_DATE, "1923-04-05")
PATIENT_FOLDER = f"{PATIENT_ID}_{PATIENT_NAME.replace('^', '_')}"


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s.casefold() in text.casefold()]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    return env


def _ichpipe(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from ichpipe.pipeline.cli import main; main()", *args],
                          cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    forget_identifiers()
    yield
    setup_logging(verbose=False, debug=False)
    forget_identifiers()


@pytest.fixture(scope="module")
def phi_inbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An inbox whose folders are named after the patient: two good studies, one MR study, one unreadable."""
    root = tmp_path_factory.mktemp("phi-inbox") / "inbox"
    good_phantom(root / f"{PATIENT_FOLDER}_1", seed=11)
    good_phantom(root / f"{PATIENT_FOLDER}_2", seed=12)
    mr = good_phantom(root / f"{PATIENT_FOLDER}_MR", seed=13)
    edit_files(dicom_files(mr), lambda ds: setattr(ds, "Modality", "MR"))
    junk = root / f"{PATIENT_FOLDER}_junk"
    junk.mkdir()
    for i in range(3):
        (junk / f"{PATIENT_NAME.replace('^', '_')}_{i}.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02" * 40)
    return root


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"store": {"path": str(tmp_path / "store.sqlite")}, "batch": {"settle_s": 0}}))
    return cfg


@pytest.mark.slow
def test_pool_workers_failure_lines_and_summaries_carry_no_identifier(phi_inbox: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _ichpipe("-v", "batch", "--inbox", str(phi_inbox), "--out", str(out), "--segmenter", "threshold",
                      "--workers", "2", "--json", "--config", str(_config(tmp_path)), cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # the MR study and the junk folder fail
    assert "patient [PatientID] ([PatientName])" in result.stderr  # the workers' INFO line, masked
    assert _leaks(result.stderr) == [], result.stderr
    assert _leaks(result.stdout) == [], result.stdout
    summaries = list((out / "batch-runs").iterdir())
    assert sorted(p.suffix for p in summaries) == [".csv", ".html", ".json"]  # the QC page too
    for path in summaries:
        assert _leaks(path.read_text()) == [], path.name
    data = json.loads(result.stdout)
    assert {i["status"] for i in data["items"]} == {"processed", "failed"}
    assert all(i["source"].startswith("<inbox>") for i in data["items"])


@pytest.mark.slow
def test_log_phi_shows_the_folder_names_again(phi_inbox: Path, tmp_path: Path) -> None:
    result = _ichpipe("--log-phi", "batch", "--inbox", str(phi_inbox), "--out", str(tmp_path / "out"),
                      "--segmenter", "threshold", "--config", str(_config(tmp_path)), cwd=tmp_path)
    assert result.returncode == 1 and PATIENT_FOLDER in result.stderr


@pytest.mark.slow
def test_dask_worker_processes_mask_identifiers(phi_inbox: Path, tmp_path: Path) -> None:
    pytest.importorskip("distributed", reason="the Dask executor needs the [dask] extra")
    script = textwrap.dedent(f"""
        import logging, sys
        from pathlib import Path
        import distributed
        from ichpipe.logs import LogSettings, configure_logging
        from ichpipe.pipeline.batch.options import BatchOptions
        from ichpipe.pipeline.batch.runner import run_batch
        from ichpipe.pipeline.config import load_config

        if __name__ == "__main__":
            configure_logging(LogSettings(level=logging.INFO))
            with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, protocol="tcp",
                                          host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR,
                                          worker_class=distributed.Nanny) as cluster:
                options = BatchOptions(inbox=Path({str(phi_inbox)!r}), out=Path({str(tmp_path / 'out')!r}),
                                       segmenter="threshold", executor="dask", scheduler=cluster.scheduler_address)
                report = run_batch(options, load_config(Path({str(_config(tmp_path))!r})))
                print(report.counts["processed"], report.counts["failed"])
    """)
    (tmp_path / "dask_run.py").write_text(script)
    env = {**_env(), "DASK_TEMPORARY_DIRECTORY": str(tmp_path / "dask")}  # no dask-scratch-space left in /tmp
    result = subprocess.run([sys.executable, str(tmp_path / "dask_run.py")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["2", "2"], result.stdout
    assert "[PatientID]" in result.stderr  # the worker process logged (masked) ...
    assert _leaks(result.stderr) == [], result.stderr[-3000:]  # ... and leaked nothing


def test_inspect_error_on_a_patient_named_folder_without_dicom_is_masked(tmp_path: Path) -> None:
    folder = tmp_path / PATIENT_FOLDER
    folder.mkdir()
    (folder / "notes.txt").write_text("not DICOM")
    for args in (["inspect", "--study", str(folder)], ["-v", "run", "--study", str(folder), "--out",
                                                       str(tmp_path / "out"), "--segmenter", "threshold"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1 and "<study>" in result.stderr, result.stderr
        assert _leaks(result.stderr) == [], result.stderr


def test_a_file_name_with_a_newline_cannot_forge_a_log_line(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    study = good_phantom(tmp_path / "src", seed=21)
    inbox.mkdir()
    src = dicom_files(study)[0]
    ds = pydicom.dcmread(src)
    del ds.StudyInstanceUID  # logged by name: "a DICOM file without StudyInstanceUID is ignored"
    hostile = inbox / "x\nERROR ichpipe: forged line \x1b[2J.dcm"
    ds.save_as(hostile)
    for flags in ([], ["--log-phi"]):
        result = _ichpipe(*flags, "batch", "--inbox", str(inbox), "--out", str(tmp_path / "out"), "--segmenter",
                          "threshold", "--config", str(_config(tmp_path)), cwd=tmp_path)
        lines = result.stderr.splitlines()
        assert not any(line.startswith("ERROR ichpipe: forged") for line in lines), result.stderr
        assert "\x1b" not in result.stderr
    assert "\\nERROR ichpipe: forged line \\x1b[2J" in result.stderr  # shown, escaped, with --log-phi


def test_a_newline_in_a_hostile_series_uid_stays_inside_one_line(good_study: Path, tmp_path: Path) -> None:
    study = copy_study(good_study, tmp_path / "study")
    files = dicom_files(study)

    def hostile(ds: pydicom.Dataset) -> None:
        ds.SeriesInstanceUID = "1.2.3\nERROR forged"
        if ds.InstanceNumber == 3:
            ds.ImageOrientationPatient = [1, 0, 0, 1, 0, 0]  # degenerate: the series is refused, naming it

    edit_files(files, hostile)
    outcome = read_study(study)
    messages = [str(e) for e in outcome.errors]
    assert messages and all("\n" not in m for m in messages), messages
    assert any("1.2.3\\nERROR forged" in m for m in messages), messages


def test_pydicom_tracebacks_inside_error_messages_are_cut_to_one_line() -> None:
    try:
        with tag_in_exception(Tag(0x00280030)):
            float("1.2.3")
    except ValueError as exc:
        error = DicomInputError(f"Cannot read the pixel spacing of x.dcm ({exc}).")
    text = str(error)
    assert "\n" not in text and "Traceback" not in text and "File " not in text
    assert text.startswith("Cannot read the pixel spacing of x.dcm (With tag (0028,0030) got exception: could not")


@pytest.mark.parametrize(("flags", "level"), [([], logging.WARNING), (["-v"], logging.WARNING),
                                              (["--debug"], logging.DEBUG)])
def test_pynetdicom_logs_at_warning_unless_debug(flags: list[str], level: int, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, [*flags, "inspect", "--study", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert logging.getLogger("pynetdicom").getEffectiveLevel() == level
