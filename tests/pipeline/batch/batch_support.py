"""Helpers shared by the batch, watch and PACS tests: tiny phantom studies, configs, checks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pydicom
from pydicom.uid import MRImageStorage

from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study

REPO = Path(__file__).resolve().parents[3]

#: Geometry variants of the valid studies (each a tiny 64 x 64 x 12 phantom).
VARIANTS: tuple[dict[str, Any], ...] = (
    {},
    {"gantry_tilt_deg": 15.0},
    {"uneven_spacing_mm": (4.0, 7.0)},
    {"drop_slice": 5},
    {"duplicate_slice": 4},
    {"transfer_syntax": "rle"},
    {"rows": 48, "columns": 64},
    {"distractors": ("localizer",)},
    {"rescale": "scaled", "pixel_spacing_mm": 3.0},
)


def tiny_spec(seed: int, **extra: Any) -> PhantomSpec:
    """A 64 x 64 x 12 phantom (fast to write and to process)."""
    values: dict[str, Any] = {"rows": 64, "columns": 64, "n_slices": 12, "volume_ml": 15.0, "noise_hu": 3.0}
    values.update(extra)
    return PhantomSpec(seed=seed, **values)


def valid_study(dest: Path, seed: int) -> Path:
    """A valid study with the geometry variant ``seed % len(VARIANTS)``; returns its folder."""
    write_phantom_study(dest, tiny_spec(seed, **VARIANTS[seed % len(VARIANTS)]))
    return dest


def dicom_files(folder: Path) -> list[Path]:
    """The phantom's DICOM files (its truth.json and NIfTI mask left out)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix not in (".json", ".gz"))


def corrupt_headers(dest: Path, seed: int) -> Path:
    """A study whose files are cut inside the header: no readable DICOM at all."""
    valid_study(dest, seed)
    for f in dicom_files(dest):
        f.write_bytes(f.read_bytes()[:300])
    return dest


def corrupt_pixels(dest: Path, seed: int) -> Path:
    """A study with readable headers whose pixel data is truncated in every file."""
    valid_study(dest, seed)
    for f in dicom_files(dest):
        data = f.read_bytes()
        f.write_bytes(data[: len(data) - 3000])
    return dest


def mr_study(dest: Path, seed: int) -> Path:
    """A study that is not CT (headers rewritten to MR Image Storage)."""
    valid_study(dest, seed)
    for f in dicom_files(dest):
        ds = pydicom.dcmread(f)
        ds.Modality = "MR"
        ds.SOPClassUID = MRImageStorage
        ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        ds.save_as(f, enforce_file_format=True)
    return dest


def zip_study(dest_zip: Path, seed: int, scratch: Path) -> Path:
    """A valid study as a ``.zip`` archive."""
    folder = valid_study(scratch / f"zip-src-{seed}", seed)
    with zipfile.ZipFile(dest_zip, "w") as zf:
        for f in dicom_files(folder):
            zf.write(f, f.relative_to(folder).as_posix())
    shutil.rmtree(folder)
    return dest_zip


def copy_study(src: Path, dest: Path) -> Path:
    """Copy a study keeping modification times (as a receiver writing old files would)."""
    if src.is_dir():
        shutil.copytree(src, dest)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
    return dest


def write_config(path: Path, *, store: Path, batch: dict[str, Any] | None = None,
                 pacs: dict[str, Any] | None = None) -> Path:
    """A config YAML (JSON is YAML) with the store at ``store``, settle time 0 unless given.

    The batch tests run the threshold baseline for speed, with nothing beside it
    (``quality.cross_check: threshold``): the default network beside the baseline would load
    in every batch process (about 2 s each); it is tested in ``tests/pipeline/jobs/test_cross_check.py``.
    Their 12-slice phantoms are cut heads (fast to write), which ``head_not_covered`` rightly flags:
    it is off here (``quality.coverage.max_end_share: null``) and tested in ``test_coverage.py``.
    """
    data: dict[str, Any] = {"store": {"path": str(store)}, "batch": {"settle_s": 0, **(batch or {})},
                            "quality": {"cross_check": "threshold", "coverage": {"max_end_share": None}}}
    if pacs:
        data["pacs"] = pacs
    path.write_text(json.dumps(data, indent=2))
    return path


def ichpipe_command(*args: str) -> list[str]:
    """The ``ichpipe`` command line in this interpreter (no installed script needed)."""
    return [sys.executable, "-c", "from ichpipe.pipeline.cli import main; main()", *args]


def subprocess_env() -> dict[str, str]:
    """Environment for ``ichpipe`` subprocesses: the repository importable, one thread each."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def start_batch(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """Start ``ichpipe batch ARGS`` with stderr piped (progress lines)."""
    return subprocess.Popen(ichpipe_command("batch", *args), cwd=cwd, env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def series_folders(out: Path) -> list[Path]:
    """Every ``OUT/<study>/<series>`` folder (private and summary folders left out)."""
    return sorted(p for p in out.glob("*/*") if p.is_dir() and p.parts[-2][0].isdigit())


def assert_clean_outputs(out: Path) -> list[dict[str, Any]]:
    """Every series folder complete (report.json parses, files it names exist), no temporary files anywhere.

    Returns the reports.
    """
    reports = []
    for folder in series_folders(out):
        names = {p.name for p in folder.iterdir()}
        assert "report.json" in names, folder
        report = json.loads((folder / "report.json").read_text())
        for path in report["outputs"].values():
            assert Path(path).is_file() and Path(path).parent == folder, path
        assert report["series_instance_uid"] == folder.name and report["study_instance_uid"] == folder.parent.name
        reports.append(report)
    leftovers = [p for p in out.rglob("*") if p.name.endswith((".tmp", ".part")) or
                 (p.name.startswith(".") and p.name != ".ichpipe")]
    assert leftovers == [], leftovers
    staging = out / ".ichpipe" / "staging"
    assert not staging.exists() or list(staging.iterdir()) == [], list(staging.iterdir())
    return reports


def descendants(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (children, grandchildren ...), from ``/proc``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat[stat.rfind(")") + 2:].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    """The pids of ``pids`` that still run (zombies count as gone)."""
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(pid)
    return out
