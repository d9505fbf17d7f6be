"""The layout rules of the code base, checked on the tree itself.

- the README's layout block lists exactly the packages and modules there are, and its Python
  examples run;
- no two modules share a name, and none is named like a standard-library module;
- no module is over 600 lines unless its docstring says why it is long;
- data flows one way: ``dicom_io`` and ``models`` import neither each other nor
  ``pipeline``, and the clinical path (segmentation, measurement, outputs, the
  ``run``/``inspect``/``measure`` jobs, prediction) never imports training code.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("dicom_io", "models", "pipeline")
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    """Dotted name (``ichpipe.pipeline.segment.threshold``) -> file, for every module of the three folders."""
    out: dict[str, Path] = {}
    for top in PACKAGES:
        for path in sorted((REPO / top).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(("ichpipe", *parts))] = path
    for path in sorted((REPO / "ichpipe").glob("*.py")):
        out["ichpipe" if path.stem == "__init__" else f"ichpipe.{path.stem}"] = path
    return out


def _readme_layout() -> dict[str, set[str]]:
    """Folder -> names listed in the README's layout block (``__init__`` and ``.py`` left out)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Layout\n.*?^```text\n(.*?)^```", text, flags=re.M | re.S)
    assert match, "README.md has no '## Layout' section with a ```text block"
    listed: dict[str, set[str]] = {}
    folder = None
    for raw in match[1].splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not raw.startswith(" "):
            folder, *names = line.split()
            assert folder.endswith("/"), f"README layout: a line must start with a folder: {raw!r}"
            folder = folder.rstrip("/")
            listed[folder] = set(names)
        else:
            assert folder is not None
            listed[folder] |= set(line.split())
    return listed


def test_readme_layout_lists_exactly_the_packages_and_modules() -> None:
    listed = _readme_layout()
    actual: dict[str, set[str]] = {}
    inits = [REPO / "ichpipe" / "__init__.py"]  # its subfolders are links to the three below
    inits += [i for top in PACKAGES for i in (REPO / top).rglob("__init__.py") if "__pycache__" not in i.parts]
    for init in inits:
        folder = init.parent.relative_to(REPO).as_posix()
        subpackages = {p.name + "/" for p in init.parent.iterdir() if (p / "__init__.py").is_file()
                       and not p.is_symlink()}
        actual[folder] = {p.stem for p in init.parent.glob("*.py") if p.stem != "__init__"} | subpackages
    for folder, names in actual.items():
        assert folder in listed, f"README layout does not list {folder}/"
        assert listed[folder] == names, f"README layout of {folder}/: missing {names - listed[folder]}," \
                                        f" not there {listed[folder] - names}"
    for folder in set(listed) - set(actual):
        assert (REPO / folder).is_dir(), f"README layout lists {folder}/, which does not exist"
        for name in listed[folder]:
            assert list((REPO / folder).glob(name)), f"README layout lists {folder}/{name}, which does not exist"


def test_readme_python_examples_run() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)
    assert blocks, "README.md has no python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_no_two_modules_share_a_name_and_none_shadows_the_standard_library() -> None:
    by_name: dict[str, list[str]] = {}
    for dotted in _modules():
        leaf = dotted.rsplit(".", 1)[-1]
        if dotted in ("ichpipe", *(f"ichpipe.{p}" for p in PACKAGES)):
            continue
        by_name.setdefault(leaf, []).append(dotted)
    twice = {n: d for n, d in by_name.items() if len(d) > 1}
    assert twice == {}
    assert sorted(n for n in by_name if n in sys.stdlib_module_names) == []


def test_no_module_is_long_without_saying_why() -> None:
    files = list((REPO / "ichpipe").glob("*.py"))  # its subfolders are links to the three below
    files += [p for top in (*PACKAGES, "tests", "bench") for p in (REPO / top).rglob("*.py")
              if "__pycache__" not in p.parts]
    long = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        if text.count("\n") <= MAX_LINES:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if "long because" not in doc.lower():
            long.append(f"{path.relative_to(REPO)} ({text.count(chr(10))} lines)")
    assert long == [], "split these, or say in the module docstring why each is long ('... is long because ...')"


def _imports(path: Path) -> set[str]:
    """Every ichpipe module a file imports, at the top or inside functions."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("ichpipe")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ichpipe"):
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path):
            # the module itself, or the package a name was imported from
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported:
                targets.add(imported)
        graph[name] = targets - {name}
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        node = todo.pop()
        for nxt in graph.get(node, set()):
            # importing a.b.c runs a/__init__ and a/b/__init__ too
            chain = [nxt] + [nxt.rsplit(".", k)[0] for k in range(1, nxt.count("."))]
            for item in chain:
                if item not in seen:
                    seen.add(item)
                    todo.append(item)
    return seen


@pytest.mark.parametrize(("package", "forbidden"), [
    ("ichpipe.dicom_io", ("ichpipe.models", "ichpipe.pipeline")),
    ("ichpipe.models", ("ichpipe.dicom_io", "ichpipe.pipeline")),
])
def test_dicom_io_and_models_import_neither_each_other_nor_pipeline(package: str, forbidden: tuple[str, ...]) -> None:
    graph = _graph()
    bad = sorted(f"{m} -> {t}" for m in graph if m == package or m.startswith(package + ".")
                 for t in graph[m] if t.startswith(forbidden))
    assert bad == []


@pytest.mark.parametrize("start", [
    "ichpipe.api",
    "ichpipe.pipeline.segment.inference",
    "ichpipe.pipeline.jobs.run_study",
    "ichpipe.pipeline.jobs.inspect_study",
    "ichpipe.pipeline.jobs.measure_mask",
    "ichpipe.pipeline.risk.infer",
    "ichpipe.pipeline.evaluation.evaluate",
    "ichpipe.pipeline.batch.runner",
])
def test_the_clinical_path_never_imports_training_code(start: str) -> None:
    reached = _reachable(_graph(), start)
    training = sorted(m for m in reached if m.startswith((
        "ichpipe.pipeline.training", "ichpipe.pipeline.synthetic", "ichpipe.pipeline.jobs.train_predictor",
        "ichpipe.pipeline.risk.train", "ichpipe.pipeline.risk.cross_validation", "ichpipe.pipeline.risk.cv",
        "ichpipe.pipeline.risk.tabular_baselines", "ichpipe.pipeline.risk.card")))
    assert training == []


def test_the_import_graph_sees_lazy_imports() -> None:
    # the check above is only worth something if it follows imports inside functions, as the CLI's are
    graph = _graph()
    assert "ichpipe.pipeline.risk.train" in _reachable(graph, "ichpipe.pipeline.jobs.train_predictor")
    assert "ichpipe.pipeline.jobs.run_study" in graph["ichpipe.pipeline.cli.run_cmd"]
    assert "ichpipe.pipeline.segment.inference" in _reachable(graph, "ichpipe.pipeline.jobs.run_study")
