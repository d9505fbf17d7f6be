"""Fuzzing the DICOM reading path (``scan_study`` + ``assemble_series``) with hypothesis.

The seed is a small valid series (5 slices of 16x16: explicit VR, implicit VR
and RLE-compressed files). Two strategies mutate it:

* **bytes**: flips, overwrites, truncations, insertions and deletions at any
  offset of any file;
* **tags**: a geometry, pixel-format, rescale or identity attribute rewritten
  with any VR and a hostile value (NaN, infinities, huge and negative
  numbers, text, empty, multi-valued, binary).

The target (:func:`hardening_corpus.read_study`) must return or raise
:class:`~ichpipe.errors.IchpipeError`; any other exception, or an example
running past :data:`EXAMPLE_LIMIT_S`, fails the test (hypothesis then
shrinks it to a minimal reproducer). The run is bounded: ``FUZZ_EXAMPLES``
examples per strategy (environment variable ``ICHPIPE_FUZZ_EXAMPLES``
overrides it for longer local runs); under CI the examples are derandomised
so a run is reproducible.

``atheris_fuzz.py`` beside this file is a coverage-guided libFuzzer harness
of the same target, run by :func:`test_atheris_harness` for a bounded number
of inputs when atheris is installed (it is optional, not a dependency).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hardening_corpus import HardeningStats, ReadOutcome, read_study, time_limit, write_minimal_series
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.uid import ImplicitVRLittleEndian, RLELossless

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")

FUZZ_EXAMPLES = int(os.environ.get("ICHPIPE_FUZZ_EXAMPLES", "300"))
EXAMPLE_LIMIT_S = 30.0

_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


def _seed_series() -> list[bytes]:
    """Bytes of the seed series: 5 slices, one implicit VR, one RLE lossless."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_minimal_series(Path(tmp), n=5)
        ds = pydicom.dcmread(paths[1])
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.save_as(paths[1], enforce_file_format=True)
        ds = pydicom.dcmread(paths[3])
        ds.compress(RLELossless)
        ds.save_as(paths[3], enforce_file_format=True)
        return [p.read_bytes() for p in paths]


SEED = _seed_series()

# ----------------------------------------------------------------------------- strategies

_byte_op = st.tuples(
    st.sampled_from(["flip", "set", "truncate", "insert", "delete"]),
    st.integers(0, len(SEED) - 1),
    st.floats(0.0, 1.0, allow_nan=False),
    st.binary(min_size=1, max_size=16),
)

# Attributes the reading path looks at, and values that have broken readers elsewhere.
_TAGS = {
    "Rows": 0x00280010, "Columns": 0x00280011, "NumberOfFrames": 0x00280008, "BitsAllocated": 0x00280100,
    "BitsStored": 0x00280101, "HighBit": 0x00280102, "PixelRepresentation": 0x00280103,
    "SamplesPerPixel": 0x00280002, "PhotometricInterpretation": 0x00280004, "RescaleSlope": 0x00281053,
    "RescaleIntercept": 0x00281052, "PixelSpacing": 0x00280030, "ImagePositionPatient": 0x00200032,
    "ImageOrientationPatient": 0x00200037, "SliceThickness": 0x00180050, "PixelPaddingValue": 0x00280120,
    "PixelPaddingRangeLimit": 0x00280121, "InstanceNumber": 0x00200013, "SOPInstanceUID": 0x00080018,
    "SeriesInstanceUID": 0x0020000E, "StudyInstanceUID": 0x0020000D, "FrameOfReferenceUID": 0x00200052,
    "GantryDetectorTilt": 0x00181120, "ImageType": 0x00080008, "Modality": 0x00080060,
    "SOPClassUID": 0x00080016, "PixelData": 0x7FE00010, "SeriesNumber": 0x00200011,
}
_TEXT_VALUES = ["NaN", "-inf", "inf", "1e308", "-1e308", "0", "-0", "-5", "65535", "4294967295", "1e-320", "",
                "abc", "1\\2", "1\\2\\3", "NaN\\NaN\\NaN", "0\\0\\0\\0\\0\\0", "1\\0\\0\\0\\1\\0",
                "1\\0\\0\\1\\0\\0", "MONOCHROME1", "RGB", "../../etc", "1.2/../../x", "x" * 70]
_value = st.one_of(
    st.sampled_from(_TEXT_VALUES),
    st.integers(-(2**31), 2**32 - 1),
    st.lists(st.integers(0, 65535), min_size=0, max_size=4),
    st.floats(allow_nan=True, allow_infinity=True),
    st.binary(min_size=0, max_size=12),
)
_tag_op = st.tuples(
    st.integers(0, len(SEED) - 1),
    st.sampled_from(sorted(_TAGS)),
    st.sampled_from(["DS", "IS", "US", "SS", "UL", "FD", "LO", "CS", "UI", "OB", "UN", "SQ"]),
    _value,
)


def _apply_bytes(files: list[bytearray], op: tuple[str, int, float, bytes]) -> None:
    kind, index, where, data = op
    raw = files[index]
    at = min(len(raw), int(where * len(raw)))
    if kind == "flip" and raw:
        raw[min(at, len(raw) - 1)] ^= data[0] or 0xFF
    elif kind == "set":
        raw[at : at + len(data)] = data
    elif kind == "truncate":
        del raw[at:]
    elif kind == "insert":
        raw[at:at] = data
    elif kind == "delete":
        del raw[at : at + len(data)]


def _apply_tag(files: list[bytearray], op: tuple[int, str, str, object], folder: Path) -> bool:
    """Rewrite one attribute with any VR and value; ``False`` when pydicom cannot even write that."""
    index, keyword, vr, value = op
    path = folder / "edit.dcm"
    path.write_bytes(bytes(files[index]))
    tag = _TAGS[keyword]
    try:
        ds = pydicom.dcmread(path)
        if tag in ds:
            del ds[tag]
        if vr == "SQ":
            ds.add_new(tag, vr, [])
        else:
            if isinstance(value, float) and vr in ("DS", "IS", "LO", "CS", "UI"):
                value = repr(value)
            ds.add_new(tag, vr, value)
        ds.save_as(path)
    except Exception:  # pydicom refused to write this value/VR pair: the op is dropped, not read
        return False
    files[index] = bytearray(path.read_bytes())
    path.unlink()
    return True


@pytest.fixture(scope="module")
def fuzz_clock(hardening_stats: HardeningStats) -> Iterator[HardeningStats]:
    """The session counters; the module's fuzzing wall time is added to them at its end."""
    started = time.perf_counter()
    yield hardening_stats
    hardening_stats.fuzz_seconds += time.perf_counter() - started


def _target(files: list[bytearray], stats: HardeningStats, strategy: str) -> ReadOutcome:
    """Write the files and read them; count the outcome; re-raise anything unexpected."""
    stats.fuzz_examples[strategy] = stats.fuzz_examples.get(strategy, 0) + 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "study"
        folder.mkdir()
        for i, raw in enumerate(files):
            (folder / f"{i}.dcm").write_bytes(bytes(raw))
        try:
            with time_limit(EXAMPLE_LIMIT_S, what=f"fuzz example ({strategy})"):
                outcome = read_study(folder)
        except Exception as exc:  # recorded for the summary, then the example fails
            stats.fuzz_unexpected.append(f"{strategy}: {type(exc).__name__}: {str(exc)[:200]}")
            raise
    stats.fuzz_project_errors += len(outcome.errors)
    for message in (str(e) for e in outcome.errors):
        assert message and "\n" not in message and "Traceback" not in message, message
    for volume in outcome.volumes.values():
        assert volume.hu.ndim == 3 and volume.hu.shape[0] == volume.geometry.n_slices
        assert np.all(np.isfinite(volume.geometry.slice_thickness_mm))
        assert all(math.isfinite(v) for v in volume.geometry.pixel_spacing_mm)
    return outcome


@_SETTINGS
@given(ops=st.lists(_byte_op, min_size=1, max_size=6))
def test_fuzz_bytes(ops: list[tuple[str, int, float, bytes]], fuzz_clock: HardeningStats) -> None:
    files = [bytearray(b) for b in SEED]
    for op in ops:
        _apply_bytes(files, op)
    _target(files, fuzz_clock, "byte mutations")


@_SETTINGS
@given(ops=st.lists(_tag_op, min_size=1, max_size=4))
def test_fuzz_tags(ops: list[tuple[int, str, str, object]], fuzz_clock: HardeningStats) -> None:
    files = [bytearray(b) for b in SEED]
    with tempfile.TemporaryDirectory() as tmp:
        applied = [_apply_tag(files, op, Path(tmp)) for op in ops]
    if not any(applied):
        return  # pydicom could not write any of these values: nothing to read
    _target(files, fuzz_clock, "tag mutations")


def test_seed_series_reads_cleanly() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for i, raw in enumerate(SEED):
            (Path(tmp) / f"{i}.dcm").write_bytes(raw)
        outcome = read_study(Path(tmp))
    assert not outcome.series_errors and len(outcome.volumes) == 1  # (5 slices: too few to be *selected*)
    (volume,) = outcome.volumes.values()
    assert volume.hu.shape == (5, 16, 16) and np.allclose(volume.hu, 40.0)


ATHERIS_RUNS = int(os.environ.get("ICHPIPE_ATHERIS_RUNS", "200"))


def test_atheris_harness(tmp_path: Path, fuzz_clock: HardeningStats) -> None:
    """Coverage-guided fuzzing with atheris for a bounded number of inputs (optional tool)."""
    pytest.importorskip("atheris", reason="atheris is optional (pip install atheris); hypothesis covers CI")
    harness = Path(__file__).with_name("atheris_fuzz.py")
    result = subprocess.run(
        [sys.executable, str(harness), f"-runs={ATHERIS_RUNS}", "-max_total_time=60", "-rss_limit_mb=4096",
         f"-artifact_prefix={tmp_path}/"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(harness.parent), *sys.path]),
             "ICHPIPE_ATHERIS_WORK": str(tmp_path / "work")},
    )
    done = [line for line in result.stderr.splitlines() if line.startswith("Done ")]
    runs = int(done[-1].split()[1]) if done else 0
    fuzz_clock.fuzz_examples["atheris inputs"] = runs
    if result.returncode != 0:
        fuzz_clock.fuzz_unexpected.append(f"atheris: {result.stderr[-500:]}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert runs > 0, result.stderr[-2000:]
    assert (tmp_path / "work" / "seed").is_dir(), "the harness must work in the folder it is given, not in /tmp"
