"""Start-up cost of the command line: what ``ichpipe --help`` and ``ichpipe inspect`` import.

Each check runs the command in a fresh interpreter and reads ``sys.modules`` at
exit, so a module-level import of a heavy library anywhere on the path of the
command line (its ``__init__``, a command module, ``_common``, the config
schema, ``dicom_io``'s package ``__init__``) fails the test, whatever the
machine's speed. Times are measured in BENCHMARKS.md, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

#: Libraries that no command needs before it does its work. ``--help`` must import none of them.
HEAVY = ("torch", "monai", "highdicom", "scipy", "scipy.ndimage", "pydicom.sr", "nibabel", "sqlalchemy",
         "matplotlib", "sklearn", "SimpleITK")

#: ``ichpipe inspect`` reads headers (pydicom, numpy) but never runs a network or writes DICOM.
INSPECT_HEAVY = ("torch", "monai", "highdicom", "scipy.ndimage", "pydicom.sr", "sqlalchemy", "matplotlib",
                 "sklearn")

_PROBE = """
import atexit, json, os, sys
names = {names!r}
out = {out!r}
def _dump():
    with open(out, "w", encoding="utf-8") as f:
        json.dump({{"modules": sorted(n for n in names if n in sys.modules),
                   "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}}, f)
atexit.register(_dump)
sys.argv = ["ichpipe", *{args!r}]
from ichpipe.pipeline.cli import main
main()
"""


def _probe(tmp_path: Path, args: list[str], names: tuple[str, ...],
           env: dict[str, str] | None = None) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    out = tmp_path / "modules.json"
    code = _PROBE.format(names=list(names), out=str(out), args=args)
    environ = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | (env or {})
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False,
                          env=environ)
    assert out.exists(), f"the probe did not finish: {proc.stderr[-2000:]}"
    return json.loads(out.read_text(encoding="utf-8")), proc


def _imported(tmp_path: Path, args: list[str],
              names: tuple[str, ...]) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    found, proc = _probe(tmp_path, args, names)
    return found["modules"], proc


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["batch", "--help"], ["--version"]])
def test_help_imports_no_heavy_module(tmp_path: Path, args: list[str]) -> None:
    imported, proc = _imported(tmp_path, args, HEAVY)
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout or "version" in proc.stdout
    assert imported == [], f"`ichpipe {' '.join(args)}` imported {imported}"


def test_inspect_imports_no_network_or_writer(tmp_path: Path, make_series) -> None:
    study = make_series()
    imported, proc = _imported(tmp_path, ["inspect", "--study", str(study), "--json"], INSPECT_HEAVY)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["series"], proc.stdout
    assert imported == [], f"`ichpipe inspect` imported {imported}"


def test_probe_sees_heavy_imports(tmp_path: Path) -> None:
    """The probe itself can fail: a command that does import a heavy module is seen."""
    imported, proc = _imported(tmp_path, ["phantom", "--out", str(tmp_path / "p"), "--rows", "32", "--columns",
                                          "32", "--slices", "12"], ("numpy", "pydicom"))
    assert proc.returncode == 0, proc.stderr
    assert imported == ["numpy", "pydicom"]


def test_openmp_threads_sleep_unless_the_user_says_otherwise(tmp_path: Path) -> None:
    found, proc = _probe(tmp_path, ["--version"], ())
    assert proc.returncode == 0, proc.stderr
    assert found["omp_wait_policy"] == "PASSIVE"
    found, proc = _probe(tmp_path, ["--version"], (), env={"OMP_WAIT_POLICY": "ACTIVE"})
    assert found["omp_wait_policy"] == "ACTIVE"
