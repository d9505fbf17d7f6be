"""DICOM in and out: find, group, select, assemble, window (and, later, write).

Knows nothing of ``models`` or ``pipeline``.
"""

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
