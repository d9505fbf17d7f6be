"""Publish a series' outputs atomically: staged in a private folder, moved into place whole, under the series lock.

``ichpipe run`` and ``ichpipe batch`` write the same folders
(``OUT/<StudyInstanceUID>/<SeriesInstanceUID>/``) and take the same lock
(``OUT/.ichpipe/locks/series-<UID>.lock``, :mod:`~ichpipe.pipeline.batch.locks`)
to replace one, so neither can remove or half-replace what the other
published. Each writes every output into its own staging folder
``OUT/.ichpipe/staging/<name>/`` (held by a lock of the same name while it
works), then :func:`publish_series`:

1. renames the current folder, if any, to ``OUT/.ichpipe/staging/.replaced-<lock>``;
2. renames the staged folder into place;
3. runs ``commit`` (the results-store write): if it fails, the new folder is
   taken back out and the old one restored, so a failed store write leaves
   the previous complete set (or none), never outputs without their record;
4. removes the old folder.

:func:`sweep_staging` removes what killed runs left in the staging folder
(folders whose lock nobody holds), which ``run`` and ``batch`` call when
they start.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from ichpipe.atomic import atomic_write
from ichpipe.errors import OutputError

__all__ = ["PRIVATE_DIR", "publish_series", "remove_tree", "rewrite_outputs", "sweep_staging"]

log = logging.getLogger(__name__)

#: Where ichpipe keeps its private files inside an output root.
PRIVATE_DIR = ".ichpipe"
_REPLACED = ".replaced-"


def remove_tree(path: Path) -> None:
    """Remove a private folder; a failure is logged (the next run tries again)."""
    if not os.path.lexists(path):
        return
    try:
        if path.is_symlink() or not path.is_dir():
            path.unlink()
        else:
            shutil.rmtree(path)
    except OSError as exc:
        log.warning("could not remove %s: %s", path, exc)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        log.debug("fsync of %s failed: %s", path, exc)
    finally:
        os.close(fd)


def rewrite_outputs(report: dict[str, Any], staged: Path, final: Path, *, write_report: bool) -> dict[str, Any]:
    """The report with output paths moved from ``staged`` to ``final``; ``report.json`` rewritten in ``staged``."""
    outputs = {}
    for name, value in (report.get("outputs") or {}).items():
        path = Path(value)
        outputs[name] = str(final / path.relative_to(staged)) if path.is_relative_to(staged) else value
    report = {**report, "outputs": outputs}
    if write_report:
        data = (json.dumps(report, indent=2) + "\n").encode("utf-8")

        def write(fh: BinaryIO) -> None:
            fh.write(data)

        atomic_write(staged / "report.json", write)
    return report


def publish_series(staged: Path, final: Path, *, staging_root: Path, lock: str,
                   commit: Callable[[], object] | None = None) -> None:
    """Replace ``final`` by the finished folder ``staged`` in one rename; the caller holds the series lock.

    Parameters
    ----------
    staged:
        The complete new folder.
    final:
        Where it goes (``OUT/<study>/<series>``).
    staging_root:
        ``OUT/.ichpipe/staging`` (same file system as ``final``).
    lock:
        The series lock's name (names the folder the old outputs wait in).
    commit:
        Called once the new folder is in place (the results-store write); if it
        raises, the old folder is put back and the error propagates.

    Raises
    ------
    ichpipe.errors.OutputError
        If a rename fails (the previous folder is left or put back in place).
    """
    old = staging_root / f"{_REPLACED}{lock}"
    remove_tree(old)
    replaced = False
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            os.rename(final, old)
            replaced = True
        try:
            os.rename(staged, final)
        except OSError:
            if replaced:
                os.rename(old, final)
            raise
        _fsync_dir(final.parent)
    except OSError as exc:
        raise OutputError(f"Cannot move the outputs into {final}: {exc.strerror or exc}.") from exc
    if commit is not None:
        try:
            commit()
        except BaseException:
            try:
                os.rename(final, staged)
                if replaced:
                    os.rename(old, final)
            except OSError as exc:
                log.error("could not put the previous outputs of %s back after a failed commit: %s", final, exc)
            raise
    if replaced:
        remove_tree(old)


def sweep_staging(out_root: Path) -> list[str]:
    """Remove the staging folders of killed runs (those whose lock nobody holds); one sentence per folder."""
    from ichpipe.pipeline.batch.locks import acquire_lock

    staging = out_root / PRIVATE_DIR / "staging"
    locks = out_root / PRIVATE_DIR / "locks"
    removed: list[str] = []
    if not staging.is_dir():
        return removed
    for folder in sorted(staging.iterdir()):
        name = folder.name[len(_REPLACED):] if folder.name.startswith(_REPLACED) else folder.name
        if not name or name.startswith("."):
            remove_tree(folder)  # an older version's shared ".replaced"
            continue
        held = acquire_lock(locks, name, wait=False)
        if held is None:
            continue  # a live run is writing there
        with held:
            remove_tree(folder)
        removed.append(f"removed the staging folder {folder.name} left by an interrupted run")
    return removed
