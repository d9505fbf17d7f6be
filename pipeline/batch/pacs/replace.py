"""Replace what ichpipe sent to the PACS earlier for a series, instead of adding copies beside it.

Each output root remembers which series (SEG, key image, SR) it delivered
for each source series, in ``OUT/.ichpipe/delivered/<series lock>.json``.
After the new outputs are stored, the earlier ones are deleted where the
PACS allows it: DICOM itself has no delete, so ``pacs.replace_previous:
orthanc`` uses Orthanc's REST API (``POST /tools/lookup`` with the
SeriesInstanceUID, then ``DELETE /series/<id>``) at ``pacs.rest_url``. A
deletion that fails is kept in the record and tried again after the next
delivery; the new outputs are delivered either way. With ``off`` (any other
PACS) the earlier series stay, told apart by their SeriesNumber, date and
method (:mod:`~ichpipe.pipeline.outputs.series_naming`).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ichpipe.atomic import atomic_write
from ichpipe.errors import PacsError
from ichpipe.pipeline.config.pacs_config import PacsConfig
from ichpipe.pipeline.outputs.publish import PRIVATE_DIR

__all__ = ["delete_series_orthanc", "record_path", "replace_previous"]

log = logging.getLogger(__name__)


def record_path(out_root: Path, lock: str) -> Path:
    """Where the series delivered for one source series are recorded."""
    return out_root / PRIVATE_DIR / "delivered" / f"{lock}.json"


def _read(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [str(u) for u in data.get("series", [])] if isinstance(data, dict) else []


def _write(path: Path, series: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps({"series": list(series)}, indent=2) + "\n").encode()
    atomic_write(path, lambda fh: fh.write(data))


def _request(method: str, url: str, *, data: bytes | None, timeout_s: float) -> Any:
    req = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        body = resp.read()
    return json.loads(body) if body else None


def delete_series_orthanc(rest_url: str, series_uid: str, *, timeout_s: float) -> bool:
    """Delete one series from Orthanc by SeriesInstanceUID; False when Orthanc does not hold it.

    Raises
    ------
    ichpipe.errors.PacsError
        If the REST API cannot be reached or refuses.
    """
    base = rest_url.rstrip("/")
    try:
        hits = _request("POST", f"{base}/tools/lookup", data=series_uid.encode(), timeout_s=timeout_s) or []
        ids = [h["ID"] for h in hits if isinstance(h, dict) and h.get("Type") == "Series"]
        for orthanc_id in ids:
            _request("DELETE", f"{base}/series/{orthanc_id}", data=None, timeout_s=timeout_s)
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as exc:
        raise PacsError(f"Cannot delete series {series_uid} through {base}: {exc}.") from exc
    return bool(ids)


def replace_previous(out_root: Path, lock: str, delivered: Sequence[str], config: PacsConfig) -> list[str]:
    """Record ``delivered`` for this source series; delete what was delivered before (where configured).

    Returns
    -------
    list of str
        Warnings (earlier series that could not be deleted; tried again next time).
    """
    path = record_path(out_root, lock)
    earlier = [uid for uid in _read(path) if uid not in delivered]
    kept: list[str] = []
    warnings: list[str] = []
    if config.replace_previous == "orthanc" and config.rest_url:
        for uid in earlier:
            try:
                if delete_series_orthanc(config.rest_url, uid, timeout_s=config.timeout_s):
                    log.info("deleted the earlier ichpipe series %s from the PACS", uid)
            except PacsError as exc:
                kept.append(uid)
                warnings.append(str(exc))
                log.warning("%s", exc)
    _write(path, [*delivered, *kept])
    return warnings
