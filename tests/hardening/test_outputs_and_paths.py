"""Output paths from validated UIDs only; disk full and unwritable folders leave no partial outputs.

Tests run as root, for whom ``chmod`` stops nothing: an unwritable folder is
simulated by a path whose parent is a file, a full disk by making ``os.replace``
or ``os.fsync`` raise ``OSError(ENOSPC)``.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from hardening_corpus import copy_study, dicom_files, edit_files

from ichpipe.errors import DicomInputError
from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.outputs.paths import series_output_dir, validate_uid


def _run(study: Path, out: Path, config: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["run", "--study", str(study), "--out", str(out), "--segmenter", "threshold",
                                      "--json", "--config", str(config)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("uid", ["1.2/../../x", "../../etc", "1.2.3\0", "", "1." * 40 + "1", "1.02.3", "1.2.3 ",
                                 "1.2.x", "１.２"])
def test_invalid_uids_never_make_a_path(uid: str, tmp_path: Path) -> None:
    with pytest.raises(DicomInputError, match=r"is not a valid DICOM UID .* refusing to build an output path"):
        series_output_dir(tmp_path, uid, "1.2.3")
    with pytest.raises(DicomInputError, match=r"SeriesInstanceUID"):
        validate_uid(uid, what="SeriesInstanceUID")


def test_free_text_tags_never_reach_a_path(good_study: Path, tmp_path: Path, store_config: Path) -> None:
    study = copy_study(good_study, tmp_path / "study")

    def hostile(ds: object) -> None:
        for keyword in ("PatientName", "SeriesDescription", "StudyDescription", "AccessionNumber", "PatientID",
                        "InstitutionName", "ProtocolName"):
            setattr(ds, keyword, "../../etc")

    edit_files(dicom_files(study), hostile)
    out = tmp_path / "nested" / "out"
    code, stdout, stderr = _run(study, out, store_config)
    assert code == 0, stderr
    report = json.loads(stdout)
    expected = out / report["study_instance_uid"] / report["series_instance_uid"]
    for value in report["outputs"].values():
        assert Path(value).parent == expected
    assert sorted(p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*") if p.is_file()
                  and not p.is_relative_to(study)) == ["cfg.yaml", *["nested"] * 5, "store.sqlite"]  # 5: +SR
    assert not (tmp_path / "etc").exists() and not (out.parent / "etc").exists()


def test_a_uid_with_a_path_in_it_is_refused(good_study: Path, tmp_path: Path, store_config: Path) -> None:
    study = copy_study(good_study, tmp_path / "study")
    edit_files(dicom_files(study), lambda ds: setattr(ds, "StudyInstanceUID", "1.2/../../x"))
    code, _, stderr = _run(study, tmp_path / "out", store_config)
    assert code == 1
    assert "StudyInstanceUID '1.2/../../x' is not a valid DICOM UID" in stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "x").exists()


def test_output_folder_under_a_file_is_a_clear_error(good_study: Path, tmp_path: Path, store_config: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code, _, stderr = _run(good_study, blocker / "out", store_config)
    assert code == 1
    assert stderr.startswith("ichpipe: error: Cannot create output folder") and "Not a directory" in stderr


def _no_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4])
@pytest.mark.parametrize("where", ["replace", "fsync"])
def test_disk_full_leaves_no_partial_outputs(where: str, fail_at: int, good_study: Path, tmp_path: Path,
                                             store_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The n-th file write fails with ENOSPC: exit 1, a clear message, and no output file at all."""
    real = getattr(os, where)
    calls = {"n": 0}

    def full(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(*args, **kwargs)

    monkeypatch.setattr(os, where, full)
    out = tmp_path / "out"
    code, _, stderr = _run(good_study, out, store_config)
    monkeypatch.undo()
    assert calls["n"] >= fail_at  # the failure really happened
    assert code == 1, stderr
    assert "No space left on device" in stderr and stderr.count("ichpipe: error:") == 1
    assert _no_files(out) == []  # neither finished outputs of the set nor temporary files
