"""ichpipe: intracerebral hemorrhage pipeline for non-contrast head CT.

One namespace. The top-level folders of the repository install as
subpackages of this one (setuptools ``package_dir``), so that no generic name
lands in site-packages:

- ``ichpipe.dicom_io`` (folder ``dicom_io/``): DICOM in and out;
- ``ichpipe.models`` (folder ``models/``): networks and their checkpoints;
- ``ichpipe.pipeline`` (folder ``pipeline/``): the flow by stage and the command line.

This package itself holds what every layer shares: the version, the error
hierarchy (:mod:`ichpipe.errors`), the atomic writer (:mod:`ichpipe.atomic`),
the import of optional dependencies (:mod:`ichpipe.extras`), the progress of
long stages (:mod:`ichpipe.progress`), and the Python API (:mod:`ichpipe.api`):
``ichpipe.run_study``, ``ichpipe.inspect_study``, ``ichpipe.measure_mask``,
``ichpipe.load_config``, ``ichpipe.load_segmenter`` and ``ichpipe.StudyResult``.
Those names load on first use, so ``import ichpipe`` stays instant and imports
neither numpy nor torch. In a
checkout, ``ichpipe/dicom_io``, ``ichpipe/models`` and ``ichpipe/pipeline`` are
relative symlinks to the folders, so that tools reading the tree (mypy,
pytest's doctests, ``python -c "import ichpipe.pipeline"`` at the root) see
the installed layout; the wheel holds real files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ichpipe.api import StudyResult, inspect_study, load_config, load_segmenter, measure_mask, run_study

__all__ = [
    "StudyResult",
    "__version__",
    "inspect_study",
    "load_config",
    "load_segmenter",
    "measure_mask",
    "run_study",
]

__version__ = "0.1.0"

_API = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    """Load the Python API (:mod:`ichpipe.api`) on first use of one of its names."""
    if name in _API:
        from ichpipe import api

        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ichpipe' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names, the API's included."""
    return sorted(set(globals()) | _API)
