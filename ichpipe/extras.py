"""Optional dependencies: import one, or fail with the ``pip install 'ichpipe[...]'`` that brings it.

Only some users need Dask (``ichpipe batch --executor dask``), pynetdicom (the
``pacs:`` section: C-STORE delivery, C-FIND/C-MOVE retrieval) or SimpleITK and
pytest-benchmark (``make bench``); they are the extras ``[dask]``, ``[pacs]``
and ``[bench]`` (``[dev]`` pulls them all).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ichpipe.errors import MissingExtraError

__all__ = ["EXTRAS", "import_extra"]

#: Extra of each optional top-level module.
EXTRAS: dict[str, str] = {
    "distributed": "dask",
    "dask": "dask",
    "pynetdicom": "pacs",
    "SimpleITK": "bench",
    "pytest_benchmark": "bench",
}


def import_extra(module: str, *, purpose: str) -> ModuleType:
    """Import an optional dependency, or raise :class:`~ichpipe.errors.MissingExtraError` naming its extra.

    Parameters
    ----------
    module:
        Module to import; its top-level package must be one of :data:`EXTRAS`.
    purpose:
        What needs it, for the message (e.g. ``"PACS delivery"``).

    Examples
    --------
    >>> import_extra("no_such_module", purpose="a test")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Argument 'module' must be an optional dependency (one of ...); got 'no_such_module'.
    """
    top = module.split(".")[0]
    if top not in EXTRAS:
        raise ValueError(
            f"Argument 'module' must be an optional dependency (one of {', '.join(EXTRAS)}); got {module!r}."
        )
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] != top:
            raise  # the module is there but one of its own imports is broken: not a missing extra
        raise MissingExtraError(
            f"{purpose} needs {top}, which is not installed; install it with: pip install 'ichpipe[{EXTRAS[top]}]'."
        ) from exc
