"""Patient identifiers never reach stderr unless ``ichpipe --log-phi`` is given."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner
from hardening_corpus import BIRTH_DATE, PATIENT_ID, PATIENT_NAME, copy_study, dicom_files, edit_files

from ichpipe.dicom_io._privacy import forget_identifiers, known_identifiers, remember_identifiers
from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.cli._common import RedactingFormatter, redact, setup_logging

SECRETS = (PATIENT_ID, PATIENT_NAME, *PATIENT_NAME.split("^"), BIRTH_DATE, "1923-04-05")


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s.casefold() in text.casefold()]


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stderr


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    forget_identifiers()
    yield
    setup_logging(verbose=False, debug=False)
    forget_identifiers()


@pytest.mark.parametrize("flags", [[], ["-v"], ["--debug"], ["-v", "--debug"]], ids=["quiet", "v", "debug", "both"])
def test_run_and_inspect_logs_carry_no_identifiers(flags: list[str], good_study: Path, tmp_path: Path,
                                                   store_config: Path) -> None:
    code, stderr = _run(*flags, "run", "--study", str(good_study), "--out", str(tmp_path / "out"),
                        "--segmenter", "threshold", "--config", str(store_config))
    assert code == 0
    if "-v" in flags or "--debug" in flags:
        assert "series " in stderr and "patient [PatientID] ([PatientName])" in stderr  # the line is logged, masked
    assert _leaks(stderr) == []
    code, stderr = _run(*flags, "inspect", "--study", str(good_study))
    assert code == 0 and _leaks(stderr) == []


def test_log_phi_shows_them_where_they_are_logged(good_study: Path, tmp_path: Path, store_config: Path) -> None:
    code, stderr = _run("--log-phi", "-v", "run", "--study", str(good_study), "--out", str(tmp_path / "out"),
                        "--segmenter", "threshold", "--config", str(store_config))
    assert code == 0
    assert f"patient {PATIENT_ID} ({PATIENT_NAME}), born {BIRTH_DATE}" in stderr


def test_error_message_naming_a_patient_folder_is_masked(good_study: Path, tmp_path: Path,
                                                         store_config: Path) -> None:
    # Sites often name folders after the patient; a refusal quoting the path must not leak it.
    study = copy_study(good_study, tmp_path / PATIENT_ID / PATIENT_NAME.replace("^", "_"))
    edit_files(dicom_files(study), lambda ds: setattr(ds, "Modality", "MR"))
    for flags in ([], ["--debug"]):
        code, stderr = _run(*flags, "run", "--study", str(study), "--out", str(tmp_path / "out"),
                            "--segmenter", "threshold", "--config", str(store_config))
        assert code == 1 and "No series in <study>" in stderr  # the folder named after the patient: by alias
        assert _leaks(stderr) == [], stderr
    code, stderr = _run("--log-phi", "run", "--study", str(study), "--out", str(tmp_path / "out"),
                        "--segmenter", "threshold", "--config", str(store_config))
    assert code == 1 and PATIENT_ID in stderr


def test_library_warnings_quoting_a_name_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(verbose=False, debug=False)
    ds = pydicom.Dataset()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = PATIENT_NAME, PATIENT_ID, BIRTH_DATE
    remember_identifiers(ds)
    with warnings.catch_warnings():  # pytest records warnings itself; let this one reach the logging handler
        warnings.simplefilter("always")
        logging.captureWarnings(False)  # (re)route warnings to logging as `ichpipe` does at start-up
        logging.captureWarnings(True)
        warnings.warn(f"The string {PATIENT_NAME.split('^')[0]!r} is unlikely to be a name", UserWarning,
                      stacklevel=1)
    logging.getLogger("ichpipe.dicom_io.test").warning("file of %s born %s", PATIENT_ID, "1923-04-05")
    err = capsys.readouterr().err
    assert "[PatientName]" in err and "file of [PatientID] born [PatientBirthDate]" in err
    assert _leaks(err) == []


def test_tracebacks_are_masked_too() -> None:
    ds = pydicom.Dataset()
    ds.PatientID = PATIENT_ID
    remember_identifiers(ds)
    try:
        raise ValueError(f"cannot read {PATIENT_ID}")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, exc_info=sys.exc_info())
    text = RedactingFormatter("%(message)s").format(record)
    assert "Traceback" in text and "cannot read [PatientID]" in text and PATIENT_ID not in text


def test_redaction_matches_whole_words_only_and_ignores_short_values() -> None:
    ds = pydicom.Dataset()
    ds.PatientName, ds.PatientID, ds.AccessionNumber = "Lee^Al", "12", "ACC777"
    remember_identifiers(ds)
    assert known_identifiers()["Lee"] == "PatientName"
    assert redact("LEE scanned; Leeds; acc777 and ACC7778; id 12; uid 1.2.12") == (
        "[PatientName] scanned; Leeds; [AccessionNumber] and ACC7778; id 12; uid 1.2.12"
    )


def test_log_phi_turns_redaction_off() -> None:
    ds = pydicom.Dataset()
    ds.PatientID = PATIENT_ID
    setup_logging(verbose=False, debug=False, log_phi=True)
    remember_identifiers(ds)
    assert redact(f"id {PATIENT_ID}") == f"id {PATIENT_ID}"
    setup_logging(verbose=False, debug=False)  # a new command starts with an empty record, masked
    remember_identifiers(ds)
    assert redact(f"id {PATIENT_ID}") == "id [PatientID]"
