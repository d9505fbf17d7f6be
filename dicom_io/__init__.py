"""DICOM in and out: find, group, select, assemble, window (and, later, write).

Knows nothing of ``models`` or ``pipeline``.
"""

from dicom_io.assemble import CTVolume, assemble_series, header_geometry
from dicom_io.discover import DiscoveryConfig, discover
from dicom_io.geometry import GeometryConfig, VolumeGeometry, compute_geometry
from dicom_io.secondary_capture import build_secondary_capture, write_secondary_capture
from dicom_io.seg import build_seg, read_seg_mask, write_seg
from dicom_io.selection import Rule, SelectionConfig, select_series
from dicom_io.series import Series, group_series
from dicom_io.sources import open_study
from dicom_io.study import SeriesSummary, StudyScan, scan_study
from dicom_io.window import WindowPreset, apply_window

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
