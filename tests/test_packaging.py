"""The ``ichpipe`` namespace: the folders install as ``ichpipe.*`` and nothing generic shadows or is shadowed.

``dicom_io/``, ``models/`` and ``pipeline/`` are installed as
``ichpipe.dicom_io``, ``ichpipe.models`` and ``ichpipe.pipeline`` (setuptools
``package_dir``), so a user's own ``models`` package or ``pipeline.py`` cannot
break ichpipe, and ichpipe puts no generic name into site-packages.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("dicom_io", "models", "pipeline")


def _setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg", encoding="utf-8")
    return parser


def _tree_packages() -> set[str]:
    found = {"ichpipe"}
    for folder in FOLDERS:
        for init in (REPO / folder).rglob("__init__.py"):
            found.add(".".join(("ichpipe", *init.parent.relative_to(REPO).parts)))
    return found


def test_setup_cfg_lists_every_package_of_the_tree_under_ichpipe() -> None:
    listed = {line.strip() for line in _setup_cfg()["options"]["packages"].splitlines() if line.strip()}
    assert listed == _tree_packages()


def test_the_links_under_ichpipe_point_at_the_top_level_folders() -> None:
    # mypy and pytest (doctests) read ichpipe/<folder>; the wheel is built from package_dir, not from these.
    for folder in FOLDERS:
        link = REPO / "ichpipe" / folder
        assert link.is_symlink() and os.readlink(link) == f"../{folder}"
        assert link.resolve() == (REPO / folder).resolve()


def test_import_ichpipe_from_a_folder_with_its_own_models_package_and_pipeline_module(tmp_path: Path) -> None:
    # A notebook folder with generic names of its own: importing them would raise.
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("raise RuntimeError('the user folder models/ was imported')\n")
    (tmp_path / "pipeline.py").write_text("raise RuntimeError('the user file pipeline.py was imported')\n")
    (tmp_path / "dicom_io.py").write_text("raise RuntimeError('the user file dicom_io.py was imported')\n")
    code = (
        "import ichpipe, ichpipe.pipeline.cli\n"
        "from ichpipe.models.registry import SEGMENTER_NAMES\n"
        "from ichpipe.dicom_io import scan_study\n"
        "import sys\n"
        "assert 'models' not in sys.modules and 'pipeline' not in sys.modules, sorted(sys.modules)\n"
        "print(ichpipe.__version__, len(SEGMENTER_NAMES))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("0.")


@pytest.mark.slow
def test_a_non_editable_install_puts_only_ichpipe_into_site_packages(tmp_path: Path) -> None:
    """Build the wheel, check it holds real files once each, install it (not editable) and import it."""
    wheels = tmp_path / "wheels"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
    # a copy without build leftovers, so the build sees what a fresh clone holds
    src = tmp_path / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv", ".git", "*.egg-info", "build", "dist", "__pycache__", ".*_cache", "ichpipe-out", "demo-out"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v", "-w", str(wheels),
         str(src)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    log = build.stdout + build.stderr
    assert "Warning" not in log and "warning:" not in log, [line for line in log.splitlines() if "arning" in line]

    (wheel,) = wheels.glob("ichpipe-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    assert len(names) == len(set(names)), "a file is in the wheel twice"
    assert {name.split("/")[0] for name in names} == {"ichpipe", wheel.name.split("-py3")[0] + ".dist-info"}
    symlink_bits = 0o120000
    assert not [i.filename for i in infos if (i.external_attr >> 16) & 0o170000 == symlink_bits]
    expected = {f"ichpipe/{p.relative_to(REPO / 'ichpipe').as_posix()}" for p in (REPO / "ichpipe").glob("*.py")}
    for folder in FOLDERS:
        expected |= {f"ichpipe/{folder}/{p.relative_to(REPO / folder).as_posix()}"
                     for p in (REPO / folder).rglob("*.py") if "__pycache__" not in p.parts}
    assert {n for n in names if n.endswith(".py")} == expected
    assert "ichpipe/models/checkpoints/ichpipe-default.pt" in names
    assert "ichpipe/models/checkpoints/ichpipe-default.onnx" in names  # the torch-free CPU runtime runs it
    assert {f"ichpipe/models/checkpoints/ichpipe-ends.{s}" for s in ("pt", "onnx", "md")} <= set(names)
    assert {f"ichpipe/models/checkpoints/ichpipe-extra-axial.{s}" for s in ("pt", "onnx", "md")} <= set(names)
    assert {f"ichpipe/models/checkpoints/ichpipe-blend.{s}" for s in ("pt", "onnx", "md")} <= set(names)
    assert {f"ichpipe/models/checkpoints/ichpipe-blend-lobar.{s}" for s in ("pt", "onnx", "md")} <= set(names)

    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert install.returncode == 0, install.stderr
    top = {p.name for p in target.iterdir() if p.name not in ("bin", "__pycache__")}
    assert top == {"ichpipe", wheel.name.split("-py3")[0] + ".dist-info"}
    assert not {"models", "pipeline", "dicom_io"} & top

    code = "import ichpipe.pipeline.cli, ichpipe; print(ichpipe.__file__)"
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**env, "PYTHONPATH": str(target)})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(target / "ichpipe" / "__init__.py")
