"""DICOM in and out: find, group, select, assemble, window (and, later, write).

Knows nothing of ``models`` or ``pipeline``.

The names below are imported on first use (PEP 562 ``__getattr__``), so that
importing one light module of this package (``ichpipe inspect``, the command
line's identifier masking) does not pull in highdicom and pydicom's SR
dictionaries, which only the writers (:mod:`~ichpipe.dicom_io.seg`,
:mod:`~ichpipe.dicom_io.secondary_capture`) need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ichpipe.dicom_io.assemble import CTVolume, assemble_series, header_geometry
    from ichpipe.dicom_io.discover import DiscoveryConfig, discover
    from ichpipe.dicom_io.geometry import GeometryConfig, VolumeGeometry, compute_geometry
    from ichpipe.dicom_io.secondary_capture import build_secondary_capture, write_secondary_capture
    from ichpipe.dicom_io.seg import build_seg, read_seg_mask, write_seg
    from ichpipe.dicom_io.selection import Rule, SelectionConfig, select_series
    from ichpipe.dicom_io.series import Series, group_series
    from ichpipe.dicom_io.sources import open_study
    from ichpipe.dicom_io.study import SeriesSummary, StudyScan, scan_study
    from ichpipe.dicom_io.window import WindowPreset, apply_window

#: Public name -> the module of this package that defines it.
_HOME = {
    "CTVolume": "assemble",
    "assemble_series": "assemble",
    "header_geometry": "assemble",
    "DiscoveryConfig": "discover",
    "discover": "discover",
    "GeometryConfig": "geometry",
    "VolumeGeometry": "geometry",
    "compute_geometry": "geometry",
    "build_secondary_capture": "secondary_capture",
    "write_secondary_capture": "secondary_capture",
    "build_seg": "seg",
    "read_seg_mask": "seg",
    "write_seg": "seg",
    "Rule": "selection",
    "SelectionConfig": "selection",
    "select_series": "selection",
    "Series": "series",
    "group_series": "series",
    "open_study": "sources",
    "SeriesSummary": "study",
    "StudyScan": "study",
    "scan_study": "study",
    "WindowPreset": "window",
    "apply_window": "window",
}

__all__ = [
    "CTVolume",
    "DiscoveryConfig",
    "GeometryConfig",
    "Rule",
    "SelectionConfig",
    "Series",
    "SeriesSummary",
    "StudyScan",
    "VolumeGeometry",
    "WindowPreset",
    "apply_window",
    "assemble_series",
    "build_secondary_capture",
    "build_seg",
    "compute_geometry",
    "discover",
    "group_series",
    "header_geometry",
    "open_study",
    "read_seg_mask",
    "scan_study",
    "select_series",
    "write_secondary_capture",
    "write_seg",
]


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first use and return ``name``."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
