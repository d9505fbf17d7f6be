"""The painted-head benches' JSON-line rows: one study per line, printed as it is measured and kept.

Used by the scripts that paint lesions into the real heads (``calcifications.py``, ``infarcts.py``,
``meningiomas.py``, ``pneumocephalus.py`` and the others with ``--out``): :func:`keep_row` prints a
study's row, writes it to the open ``--out`` file and appends it to the rows the table is made from;
:func:`read_rows` reads stored files back for ``--table``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

__all__ = ["keep_row", "read_rows"]


def keep_row(row: dict[str, Any], sink: IO[str], rows: list[dict[str, Any]]) -> None:
    """Print ``row`` (flushed: a long run shows its progress), write it as one line to ``sink``, append it to
    ``rows``."""
    line = json.dumps(row)
    print(line, flush=True)
    sink.write(line + "\n")
    rows.append(row)


def read_rows(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every row of these JSON-line files, in order; blank lines are skipped."""
    return [json.loads(line) for path in paths for line in Path(path).read_text().splitlines() if line.strip()]
