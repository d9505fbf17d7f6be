"""The bad-input corpus: good phantom (and real) studies broken in every way the issue lists.

Each case copies a good 12-slice 32x32 phantom study, breaks it, and then

1. reads it as ``run`` and ``inspect`` do (:func:`hardening_corpus.read_study`:
   scan, select, assemble every series) under a time limit: only project
   errors may come out, and the outcome must be the one the case expects
   (read, read with a given warning, or refused with a given message);
2. runs ``ichpipe run --segmenter threshold`` on it: exit 0 with a report, or
   exit 1 with one clear line on stderr (what, where) and no output files;
3. runs ``ichpipe inspect``: exit 0 when a series is usable, 1 otherwise.

Counts go to the session summary (see ``conftest.py``).

This module is long because it holds the corpus itself: one entry per broken
study (88), each with the outcome it expects, next to the four tests that run them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from hardening_corpus import (
    CaseTimeout,
    HardeningStats,
    ReadOutcome,
    assert_clear_message,
    axial_files,
    copy_study,
    dicom_files,
    edit_files,
    good_phantom,
    pixel_data_offset,
    read_study,
    time_limit,
    write_minimal_series,
)
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import RLELossless, generate_uid

from ichpipe.dicom_io.discover import DiscoveryConfig
from ichpipe.pipeline.cli import cli

Expect = Literal["ok", "error", "any"]

# pydicom warns about every oddity of a corrupt file; the cases are about our behaviour.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom")

#: Seconds one case may take to be read; far above what any case needs (a hang fails fast).
READ_LIMIT_S = 60.0


@dataclass(frozen=True)
class Case:
    """One broken study.

    Attributes
    ----------
    build:
        ``build(study, tmp)`` breaks the copy ``study`` of the good phantom
        (or builds something else under ``tmp``) and returns the path to read.
    expect:
        ``ok`` (the selected series assembles), ``error`` (refused with a
        project error) or ``any`` (random damage: either, but never a crash).
    match:
        Regular expression: for ``ok`` it must match a warning (or a skipped
        file's reason), for ``error`` the error messages.
    config:
        YAML for the command-line runs (discovery limits...).
    run_cli:
        Whether to run ``ichpipe run`` and ``inspect`` too (off only for the
        large cases, which are timed by reading alone).
    """

    build: Callable[[Path, Path], Path]
    expect: Expect
    match: str = ""
    config: str = ""
    run_cli: bool = True


# --------------------------------------------------------------------------- builders


def _middle(study: Path) -> list[Path]:
    """The middle slice of the axial series, as a one-element list."""
    files = axial_files(study)
    return [files[len(files) // 2]]


def _on_middle(change: Callable[[Dataset], object]) -> Callable[[Path, Path], Path]:
    def build(study: Path, tmp: Path) -> Path:
        edit_files(_middle(study), change)
        return study

    return build


def _on_all(change: Callable[[Dataset], object]) -> Callable[[Path, Path], Path]:
    def build(study: Path, tmp: Path) -> Path:
        edit_files(axial_files(study), change)
        return study

    return build


def _truncate_middle(where: Callable[[Path], int]) -> Callable[[Path, Path], Path]:
    def build(study: Path, tmp: Path) -> Path:
        path = _middle(study)[0]
        raw = path.read_bytes()
        path.write_bytes(raw[: max(0, min(len(raw) - 1, where(path)))])
        return study

    return build


def _truncate_all(offset: int) -> Callable[[Path, Path], Path]:
    def build(study: Path, tmp: Path) -> Path:
        for path in dicom_files(study):
            path.write_bytes(path.read_bytes()[:offset])
        return study

    return build


def _flip(region: Literal["header", "pixels"], seed: int, n: int = 6) -> Callable[[Path, Path], Path]:
    def build(study: Path, tmp: Path) -> Path:
        rng = np.random.default_rng(seed)
        for path in _middle(study) if region == "pixels" else axial_files(study)[: 1 + seed % 3]:
            raw = bytearray(path.read_bytes())
            start, stop = (132, pixel_data_offset(path)) if region == "header" else (pixel_data_offset(path) + 12,
                                                                                      len(raw))
            for at in rng.integers(start, stop, size=n):
                raw[int(at)] ^= int(rng.integers(1, 256))
            path.write_bytes(bytes(raw))
        return study

    return build


def _set_raw(tag: int, vr: str, value: object, *, every: bool = False) -> Callable[[Path, Path], Path]:
    """Write ``tag`` with a wrong VR (pydicom writes it as given)."""

    def change(ds: Dataset) -> None:
        if tag in ds:
            del ds[tag]
        ds.add_new(tag, vr, value)

    return _on_all(change) if every else _on_middle(change)


def _delete(keyword: str, *, every: bool) -> Callable[[Path, Path], Path]:
    def change(ds: Dataset) -> None:
        delattr(ds, keyword)

    return _on_all(change) if every else _on_middle(change)


def _set(keyword: str, value: object, *, every: bool) -> Callable[[Path, Path], Path]:
    def change(ds: Dataset) -> None:
        setattr(ds, keyword, value)

    return _on_all(change) if every else _on_middle(change)


def _pixel_bytes(change: Callable[[bytes], bytes]) -> Callable[[Path, Path], Path]:
    def edit(ds: Dataset) -> None:
        ds.PixelData = change(ds.PixelData)

    return _on_middle(edit)


def _rle_frames(frames: int, rows: int | None = None) -> Callable[[Path, Path], Path]:
    def edit(ds: Dataset) -> None:
        ds.compress(RLELossless)
        ds.NumberOfFrames = frames
        if rows is not None:
            ds.Rows = ds.Columns = rows

    return _on_middle(edit)


def _duplicate_sop(*, same_content: bool, same_position: bool) -> Callable[[Path, Path], Path]:
    def build(study: Path, tmp: Path) -> Path:
        files = axial_files(study)
        a = pydicom.dcmread(files[5])
        b = pydicom.dcmread(files[5] if same_position else files[6])
        if not same_content or not same_position:
            stored = np.frombuffer(b.PixelData, dtype=np.uint16 if b.PixelRepresentation == 0 else np.int16)
            b.PixelData = (stored + 7).astype(stored.dtype).tobytes()
        b.SOPInstanceUID = b.file_meta.MediaStorageSOPInstanceUID = a.SOPInstanceUID
        target = files[5].with_name("DUPLICATE") if same_position else files[6]
        if same_content and same_position:
            shutil.copyfile(files[5], target)
        else:
            b.save_as(target)
        return study

    return build


def _frame_of_reference(first: int, last: int) -> Callable[[Path, Path], Path]:
    def build(study: Path, tmp: Path) -> Path:
        other = generate_uid()
        edit_files(axial_files(study)[first:last], lambda ds: setattr(ds, "FrameOfReferenceUID", other))
        return study

    return build


def _one_slice(study: Path, tmp: Path) -> Path:
    for path in axial_files(study)[1:]:
        path.unlink()
    return study


def _same_position(study: Path, tmp: Path) -> Path:
    edit_files(axial_files(study), lambda ds: setattr(ds, "ImagePositionPatient", [0.0, 0.0, 0.0]))
    return study


def _reversed_positions(study: Path, tmp: Path) -> Path:
    files = axial_files(study)
    zs = [float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in files]
    for f, z in zip(files, reversed(zs), strict=True):
        ds = pydicom.dcmread(f)
        ds.ImagePositionPatient = [*ds.ImagePositionPatient[:2], z]
        ds.save_as(f)
    return study


def _nested_sequence_file(study: Path, tmp: Path) -> Path:
    """A file whose header nests 5,000 undefined-length sequences (a parser recursion bomb)."""
    depth = 5000
    item = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"  # item, undefined length
    seq = b"\x08\x00\x40\x11SQ\x00\x00\xff\xff\xff\xff"  # (0008,1140) SQ undefined length
    body = (seq + item) * depth + (b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00") * depth
    good = _middle(study)[0].read_bytes()
    head_end = 144 + int.from_bytes(good[140:144], "little")  # end of the file meta group
    (study / "DICOM" / "NESTED").write_bytes(good[:head_end] + body)
    return study


def _junk_files(study: Path, tmp: Path) -> Path:
    rng = np.random.default_rng(3)
    (study / "notes.txt").write_text("not an image")
    (study / "empty.dcm").write_bytes(b"")
    (study / "dicm_only.dcm").write_bytes(b"\0" * 128 + b"DICM")
    (study / "random.bin").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (study / "raw_like.dcm").write_bytes(b"\x08\x00\x05\x00" + rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
    os.mkfifo(study / "a_fifo")  # opening it would block: must never be read
    return study


def _huge_value_length(study: Path, tmp: Path) -> Path:
    path = _middle(study)[0]
    raw = bytearray(path.read_bytes())
    at = raw.find(b"\x10\x00\x10\x00PN")  # PatientName, explicit VR: 2-byte length
    raw[at + 6 : at + 8] = b"\xff\xff"
    path.write_bytes(bytes(raw))
    return study


def _many_files(n: int) -> Callable[[Path, Path], Path]:
    def build(study: Path, tmp: Path) -> Path:
        folder = tmp / f"files{n}"
        write_minimal_series(folder, n=n, spacing_mm=0.5)
        return folder

    return build


def _zip(study: Path, tmp: Path) -> Path:
    archive = tmp / "study.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in dicom_files(study):
            zf.write(path, f"../../escape/{path.name}")  # names never reach the file system
    return archive


def _zip_bomb(study: Path, tmp: Path) -> Path:
    archive = _zip(study, tmp)
    with zipfile.ZipFile(archive, "a", zipfile.ZIP_DEFLATED) as zf, zf.open("bomb.dcm", "w", force_zip64=True) as out:
        block = b"\0" * (1 << 20)
        for _ in range(64):  # 64 MiB of zeros, about 64 KiB compressed (ratio ~1000)
            out.write(block)
    return archive


def _zip_declared_too_big(study: Path, tmp: Path) -> Path:
    return _zip(study, tmp)


def _zip_truncated(study: Path, tmp: Path) -> Path:
    archive = _zip(study, tmp)
    raw = archive.read_bytes()
    archive.write_bytes(raw[: len(raw) // 2])
    return archive


def _symlinks_out(study: Path, tmp: Path) -> Path:
    outside = tmp / "outside"
    write_minimal_series(outside, n=12)
    (study / "DICOM" / "linked_dir").symlink_to(outside, target_is_directory=True)
    for i, path in enumerate(sorted(outside.iterdir())[:3]):
        (study / "DICOM" / f"linked_{i}").symlink_to(path)
    (study / "DICOM" / "etc_passwd").symlink_to("/etc/passwd")
    return study


def _symlink_loop(study: Path, tmp: Path) -> Path:
    (study / "DICOM" / "loop").symlink_to(study / "DICOM", target_is_directory=True)
    return study


def _dicomdir_escape(study: Path, tmp: Path) -> Path:
    """A DICOMDIR whose records point outside its folder (path traversal)."""
    outside = tmp / "outside_dd"
    write_minimal_series(outside, n=12)
    ds = Dataset()
    ds.DirectoryRecordSequence = DicomSequence()
    for path in sorted(outside.iterdir()):
        record = Dataset()
        record.DirectoryRecordType = "IMAGE"
        record.ReferencedFileID = ["..", "outside_dd", path.name]
        ds.DirectoryRecordSequence.append(record)
    folder = tmp / "media"
    folder.mkdir()
    ds.save_as(folder / "DICOMDIR", implicit_vr=False, little_endian=True)
    return folder / "DICOMDIR"


def _real_data_slice_mangled(shared: Path) -> Callable[[Path, Path], Path]:
    def build(study: Path, tmp: Path) -> Path:
        src = shared / "ct-real" / "ge-hispeed-head-tilt"
        dest = tmp / "ge"
        shutil.copytree(src, dest)
        files = sorted(p for p in dest.rglob("*") if p.is_file())
        files[3].write_bytes(files[3].read_bytes()[: 3000])
        raw = bytearray(files[5].read_bytes())
        for at in np.random.default_rng(5).integers(132, 2000, size=8):
            raw[int(at)] ^= 0x5A
        files[5].write_bytes(bytes(raw))
        files[7].write_bytes(files[7].read_bytes()[:-1000])
        return dest

    return build


CASES: dict[str, Case] = {
    # truncated files: one slice at many offsets (it is skipped), every file in the header (refused)
    **{
        f"truncate_one_at_{label}": Case(_truncate_middle(where), "ok")
        for label, where in {
            "0": lambda p: 0,
            "1": lambda p: 1,
            "64": lambda p: 64,
            "131": lambda p: 131,
            "132": lambda p: 132,
            "140": lambda p: 140,
            "300": lambda p: 300,
            "600": lambda p: 600,
            "pixel_tag": pixel_data_offset,
            "pixel_tag_plus_6": lambda p: pixel_data_offset(p) + 6,
            "pixel_start": lambda p: pixel_data_offset(p) + 12,
            "mid_pixels": lambda p: (pixel_data_offset(p) + p.stat().st_size) // 2,
            "last_byte": lambda p: p.stat().st_size - 1,
        }.items()
    },
    **{f"truncate_all_at_{n}": Case(_truncate_all(n), "error", r"No readable DICOM image|No series in")
       for n in (0, 132, 400)},
    # flipped bytes
    **{f"flip_header_seed{s}": Case(_flip("header", s), "any") for s in range(8)},
    **{f"flip_pixels_seed{s}": Case(_flip("pixels", s), "ok") for s in range(3)},
    # missing or wrong-VR geometry
    "missing_position_one": Case(_delete("ImagePositionPatient", every=False), "ok",
                                 r"no usable ImagePositionPatient"),
    "missing_orientation_all": Case(_delete("ImageOrientationPatient", every=True), "error",
                                    r"no usable ImageOrientationPatient"),
    "missing_spacing_all": Case(_delete("PixelSpacing", every=True), "error", r"no usable PixelSpacing"),
    "position_as_text_LO_one": Case(_set_raw(0x00200032, "LO", "left\\up\\head"), "ok",
                                    r"no usable ImagePositionPatient"),
    "position_as_OB_one": Case(_set_raw(0x00200032, "OB", b"\x01\x02\x03\x04"), "ok",
                               r"no usable ImagePositionPatient"),
    "orientation_as_OB_all": Case(_set_raw(0x00200037, "OB", b"\x01\x00\x00\x00\x01\x00", every=True), "error",
                                  r"no usable ImageOrientationPatient"),
    "spacing_as_LO_all": Case(_set_raw(0x00280030, "LO", "half\\half", every=True), "error",
                              r"no usable PixelSpacing"),
    "rows_as_text_one": Case(_set_raw(0x00280010, "LO", "many"), "ok"),
    "rows_multivalued_one": Case(_set_raw(0x00280010, "US", [32, 32]), "ok"),
    "padding_as_text_one": Case(_set_raw(0x00280120, "LO", "none"), "ok", r"cannot be converted to HU"),
    "instance_number_as_text": Case(_set_raw(0x00200013, "LO", "first", every=True), "ok"),
    # PixelData length
    "pixels_short_one": Case(_pixel_bytes(lambda b: b[: len(b) // 3]), "ok", r"pixel data unreadable"),
    "pixels_long_by_a_frame_one": Case(_pixel_bytes(lambda b: b + b), "ok", r"pixel data has shape"),
    "pixels_long_by_2_bytes_one": Case(_pixel_bytes(lambda b: b + b"\0\0"), "ok"),
    "pixels_missing_one": Case(_on_middle(lambda ds: delattr(ds, "PixelData")), "ok", r"pixel data unreadable"),
    # absurd sizes: refused before allocating
    "rows_65535_all": Case(_set("Rows", 65535, every=True), "error", r"matrix 65535x32 is outside"),
    "rows_0_all": Case(_set("Rows", 0, every=True), "error", r"matrix 0x32 is outside"),
    "rows_65535_one": Case(_set("Rows", 65535, every=False), "ok"),
    "frames_2e9_one": Case(_set("NumberOfFrames", 2**31 - 1, every=False), "ok", r"NumberOfFrames 2147483647"),
    "frames_2e9_all": Case(_set("NumberOfFrames", 2**31 - 1, every=True), "error",
                           r"no slice's pixel data could be decoded"),
    "frames_negative_one": Case(_set("NumberOfFrames", -5, every=False), "ok"),
    "rle_frames_2e9_one": Case(_rle_frames(2**31 - 1), "ok", r"NumberOfFrames 2147483647 is outside"),
    "rle_4000x4000x1000_one": Case(_rle_frames(1000, rows=4000), "ok"),
    # zero, negative, NaN and infinite DS values
    "spacing_zero_all": Case(_set("PixelSpacing", [0, 0.5], every=True), "error", r"PixelSpacing must be two"),
    "spacing_negative_all": Case(_set("PixelSpacing", [-0.5, -0.5], every=True), "error",
                                 r"PixelSpacing must be two"),
    "spacing_1e200_all": Case(_set("PixelSpacing", ["1e200", "1e200"], every=True), "error", r"at most 100 mm"),
    "spacing_nan_all": Case(_set("PixelSpacing", ["NaN", "0.5"], every=True), "error", r"no usable PixelSpacing"),
    "position_nan_one": Case(_set("ImagePositionPatient", ["NaN", "0", "10"], every=False), "ok",
                             r"no usable ImagePositionPatient"),
    "position_1e308_one": Case(_set("ImagePositionPatient", ["0", "0", "1e308"], every=False), "ok",
                               r"no usable ImagePositionPatient"),
    "position_inf_all": Case(_set("ImagePositionPatient", ["0", "0", "inf"], every=True), "error",
                             r"no usable ImagePositionPatient"),
    "orientation_nan_all": Case(_set("ImageOrientationPatient", ["NaN", 0, 0, 0, 1, 0], every=True), "error",
                                r"no usable ImageOrientationPatient"),
    "slope_nan_one": Case(_set("RescaleSlope", "NaN", every=False), "ok", r"not a usable rescale"),
    "slope_zero_one": Case(_set("RescaleSlope", 0, every=False), "ok", r"not a usable rescale"),
    "intercept_inf_one": Case(_set("RescaleIntercept", "-inf", every=False), "ok", r"not a usable rescale"),
    "thickness_nan_all": Case(_set("SliceThickness", "NaN", every=True), "ok"),
    "tilt_nan_all": Case(_set("GantryDetectorTilt", "NaN", every=True), "ok"),
    "all_at_one_position": Case(_same_position, "error", r"enough_slices|single-slice"),
    "positions_reversed": Case(_reversed_positions, "ok"),
    # identity and orientation
    "duplicate_sop_different_pixels": Case(_duplicate_sop(same_content=False, same_position=True), "error",
                                           r"SOPInstanceUID .* different content"),
    "duplicate_sop_other_position": Case(_duplicate_sop(same_content=False, same_position=False), "error",
                                         r"SOPInstanceUID .* different content"),
    "duplicate_file_identical_copy": Case(_duplicate_sop(same_content=True, same_position=True), "ok",
                                          r"is a copy of"),
    "frame_of_reference_one_differs": Case(_frame_of_reference(5, 6), "ok", r"missing"),
    "frame_of_reference_half_differ": Case(_frame_of_reference(0, 6), "error", r"enough_slices"),
    "orientation_not_orthogonal_all": Case(_set("ImageOrientationPatient", [1, 0, 0, 0.1, 0.995, 0], every=True),
                                           "error", r"not orthogonal"),
    "orientation_not_unit_all": Case(_set("ImageOrientationPatient", [2, 0, 0, 0, 1, 0], every=True), "error",
                                     r"not unit vectors"),
    "orientation_not_orthogonal_one": Case(_set("ImageOrientationPatient", [1, 0, 0, 0.1, 0.995, 0],
                                                every=False), "ok"),
    "one_slice": Case(_one_slice, "error", r"enough_slices"),
    # files that are not what they claim
    "junk_files_beside": Case(_junk_files, "ok"),
    "nested_sequences_5000": Case(_nested_sequence_file, "ok"),
    "huge_value_length_one": Case(_huge_value_length, "ok"),
    # size of the study
    "files_2000": Case(_many_files(2000), "ok", run_cli=False),
    "files_150_over_max_files": Case(_many_files(150), "error", r"more than 100 files",
                                     config="discovery:\n  max_files: 100\n"),
    # archives and links
    "zip_with_traversal_names": Case(_zip, "ok"),
    "zip_bomb": Case(_zip_bomb, "error", r"zip bomb"),
    "zip_declared_over_limit": Case(_zip_declared_too_big, "error", r"zip bomb",
                                    config="discovery:\n  max_zip_bytes: 10000\n"),
    "zip_truncated": Case(_zip_truncated, "error", r"not a readable zip|No readable DICOM"),
    "symlinks_outside": Case(_symlinks_out, "ok"),
    "symlinks_outside_followed": Case(_symlinks_out, "ok", config="discovery:\n  follow_symlinks: true\n"),
    "symlink_loop_followed": Case(_symlink_loop, "ok", config="discovery:\n  follow_symlinks: true\n"),
    "dicomdir_records_escape": Case(_dicomdir_escape, "error", r"No readable DICOM image"),
}


def _discovery(case: Case) -> DiscoveryConfig | None:
    options: dict[str, object] = {}
    for key, value in re.findall(r"(\w+): (\S+)", case.config):
        options[key] = value == "true" if value in ("true", "false") else int(value)
    return DiscoveryConfig(**options) if options else None  # type: ignore[arg-type]


def _check_outcome(name: str, case: Case, outcome: ReadOutcome, where: Path) -> None:
    usable = outcome.selected is not None and outcome.selected in outcome.volumes
    messages = [str(e) for e in outcome.errors]
    places = [str(where), where.name, "Series "]
    for message in messages:
        assert_clear_message(message, places=places)
    if case.expect == "ok":
        assert usable, f"{name}: expected the study to be read; errors: {messages}"
        if case.match:
            notes = outcome.warnings + [str(e) for e in outcome.series_errors.values()]
            assert any(re.search(case.match, n) for n in notes), f"{name}: no note matches {case.match!r}: {notes}"
    elif case.expect == "error":
        assert not usable, f"{name}: expected a refusal, but series {outcome.selected} was assembled"
        assert messages, f"{name}: refused without a message"
        assert any(re.search(case.match, m) for m in messages), f"{name}: no error matches {case.match!r}: {messages}"


def _check_cli(name: str, case: Case, study: Path, tmp: Path, store_config: Path, usable: bool,
               selected: bool) -> None:
    config = tmp / "case.yaml"
    config.write_text(store_config.read_text() + case.config)
    out = tmp / "out"
    result = CliRunner().invoke(cli, ["run", "--study", str(study), "--out", str(out), "--segmenter", "threshold",
                                      "--json", "--config", str(config)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == (0 if usable else 1), f"{name}: run exit {result.exit_code}: {result.stderr}"
    if usable:
        report = json.loads(result.stdout)
        assert report["geometry"]["n_slices"] >= 1
    else:
        *logged, last = result.stderr.rstrip("\n").split("\n")
        assert last.startswith("ichpipe: error: "), result.stderr
        assert all(line.startswith(("WARNING ", "INFO ")) for line in logged), result.stderr
        # through the CLI the study folder is named by its alias (folder names may hold patient names)
        assert_clear_message(last.removeprefix("ichpipe: error: "), places=[str(study), "<study>", "Series "])
        assert not out.exists() or not any(p.is_file() for p in out.rglob("*")), f"{name}: partial outputs"
    inspected = CliRunner().invoke(cli, ["inspect", "--study", str(study), "--config", str(config)])
    if inspected.exception is not None and not isinstance(inspected.exception, SystemExit):
        raise inspected.exception
    # inspect reads headers only: a series whose pixel data turns out unreadable is still "selected" there
    assert inspected.exit_code == (0 if selected else 1), f"{name}: inspect exit {inspected.exit_code}"


def _run_case(name: str, case: Case, study: Path, tmp: Path, store_config: Path, stats: HardeningStats) -> None:
    try:
        with time_limit(READ_LIMIT_S, what=name):
            outcome = read_study(study, discovery=_discovery(case))
    except (CaseTimeout, Exception) as exc:  # a crash or hang: counted, then the test fails with it
        stats.crash(name, exc)
        raise
    _check_outcome(name, case, outcome, study)
    usable = outcome.selected is not None and outcome.selected in outcome.volumes
    if case.run_cli:
        _check_cli(name, case, study, tmp, store_config, usable, outcome.selected is not None)
    stats.corpus(clear_error=not usable, warnings=bool(outcome.warnings or outcome.skipped_files))


#: The corpus is about reading and refusing input: `run` uses the threshold baseline and nothing beside
#: it. With the default `quality.cross_check: auto` the default networks would read every usable study
#: beside the baseline (about 1.5 of a case's 2 s; the networks are tested in tests/pipeline/segment).
NO_CROSS_CHECK = "quality:\n  cross_check: none\n"


@pytest.fixture
def corpus_config(store_config: Path) -> Path:
    """``store_config`` with nothing beside the threshold baseline (:data:`NO_CROSS_CHECK`)."""
    store_config.write_text(store_config.read_text() + NO_CROSS_CHECK)
    return store_config


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_case(name: str, good_study: Path, tmp_path: Path, corpus_config: Path,
                        hardening_stats: HardeningStats) -> None:
    case = CASES[name]
    study = case.build(copy_study(good_study, tmp_path / "study"), tmp_path)
    _run_case(name, case, study, tmp_path, corpus_config, hardening_stats)
    if name.startswith("symlinks_outside"):
        # the linked series (another study UID) must not have been read
        outcome = read_study(study, discovery=_discovery(case))
        studies = {v.study_uid for v in outcome.volumes.values()}
        assert len(studies) == 1, f"files outside the study were read: {studies}"
    if name == "zip_with_traversal_names":
        assert not (tmp_path.parent / "escape").exists() and not Path("/escape").exists()


REAL_CASES = ("real_ge_mangled",)


@pytest.mark.parametrize("name", REAL_CASES)
def test_bad_input_real_data(name: str, shared_data: Path, tmp_path: Path, store_config: Path,
                             hardening_stats: HardeningStats) -> None:
    case = Case(_real_data_slice_mangled(shared_data), "ok", run_cli=False)
    study = case.build(tmp_path / "unused", tmp_path)
    _run_case(name, case, study, tmp_path, store_config, hardening_stats)
    outcome = read_study(study)
    assert outcome.selected is not None
    volume = outcome.volumes[outcome.selected]
    assert 24 <= volume.hu.shape[0] <= 27  # 28 slices less the ones broken (two at least are unreadable)


def test_bad_studies_do_not_stop_the_next(good_study: Path, tmp_path: Path, corpus_config: Path) -> None:
    """A sequence of studies in one process, as a batch runs them: failures leave the next one working."""
    names = ["zip_bomb", "rle_frames_2e9_one", "duplicate_sop_different_pixels", "nested_sequences_5000",
             "one_slice"]
    runner = CliRunner()
    codes = []
    for i, name in enumerate(names):
        (tmp_path / f"t{i}").mkdir()
        study = CASES[name].build(copy_study(good_study, tmp_path / f"s{i}"), tmp_path / f"t{i}")
        for target in (study, good_study):
            result = runner.invoke(cli, ["run", "--study", str(target), "--out", str(tmp_path / "out"),
                                         "--segmenter", "threshold", "--config", str(corpus_config)])
            codes.append(result.exit_code)
    expected = [0 if CASES[n].expect == "ok" else 1 for n in names]
    assert codes[0::2] == expected
    assert codes[1::2] == [0] * len(names)


BATCH_CASES = ("zip_bomb", "rle_frames_2e9_one", "duplicate_sop_different_pixels", "nested_sequences_5000",
               "one_slice", "truncate_all_at_400", "orientation_not_orthogonal_all", "pixels_short_one")


def test_ichpipe_batch_continues_past_every_bad_study(tmp_path: Path, corpus_config: Path) -> None:
    """An inbox of broken studies and good ones: each bad one fails on its own line, the good ones are done."""
    inbox = tmp_path / "inbox"
    for i, name in enumerate(BATCH_CASES):
        scratch = tmp_path / f"scratch{i}"
        scratch.mkdir()
        built = CASES[name].build(good_phantom(scratch / "study", seed=100 + i), scratch)
        target = inbox / (name + (".zip" if built.suffix == ".zip" else ""))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(built), target)
    for seed in (1, 2):
        good_phantom(inbox / f"good-{seed}", seed=200 + seed)
    result = CliRunner().invoke(cli, ["batch", "--inbox", str(inbox), "--out", str(tmp_path / "out"), "--segmenter",
                                      "threshold", "--settle-s", "0", "--json", "--config", str(corpus_config)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    summary = json.loads(result.stdout)
    assert result.exit_code == 1 == summary["exit_code"]
    ok_cases = sum(CASES[n].expect == "ok" for n in BATCH_CASES)
    assert summary["counts"]["processed"] == 2 + ok_cases, summary["counts"]
    failed = [i for i in summary["items"] if i["status"] == "failed"]
    assert len(failed) >= len(BATCH_CASES) - ok_cases
    for item in failed:
        assert item["error_type"] in {"DicomInputError", "GeometryError", "NoSeriesSelectedError"}, item
        assert "\n" not in item["error"] and "Traceback" not in item["error"]
