"""Scan a study: discover, group, describe and select series (headers only).

:func:`scan_study` is what ``ichpipe inspect`` shows and what ``ichpipe run``
starts from: every series found, its geometry from the headers, and the
verdict of every selection rule.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.errors import InvalidDicomError

from ichpipe.dicom_io.assemble import header_geometry
from ichpipe.dicom_io.discover import DiscoveryConfig, DiscoveryResult, SkippedFile, read_header
from ichpipe.dicom_io.geometry import GeometryConfig, VolumeGeometry
from ichpipe.dicom_io.selection import Candidate, SelectionConfig, SelectionResult, select_series
from ichpipe.dicom_io.series import Series, group_series, series_attributes
from ichpipe.dicom_io.sources import open_study
from ichpipe.errors import DicomInputError, IchpipeError, NoSeriesSelectedError
from ichpipe.progress import stage

__all__ = ["SeriesSummary", "StudyScan", "scan_files", "scan_study"]


@dataclass
class SeriesSummary:
    """One series as seen from its headers."""

    series: Series
    attributes: dict[str, Any]
    geometry: VolumeGeometry | None
    notes: tuple[str, ...]
    geometry_error: str | None = None


@dataclass
class StudyScan:
    """Everything found under a study path, and the selection outcome."""

    root: Path
    series: list[SeriesSummary]
    selection: SelectionResult
    skipped: list[SkippedFile] = field(default_factory=list)
    n_examined: int = 0

    @property
    def selected(self) -> SeriesSummary | None:
        """The selected series, or ``None``."""
        for s in self.series:
            if s.series.key == self.selection.selected:
                return s
        return None

    def require_selected(self) -> SeriesSummary:
        """The selected series, or a :class:`NoSeriesSelectedError` saying why none was."""
        chosen = self.selected
        if chosen is not None:
            return chosen
        parts = []
        for s in self.series:
            failed = [v.rule for v in self.selection.verdicts[s.series.key] if not v.passed]
            parts.append(f"{s.attributes.get('Modality', '?')} series #{s.attributes.get('SeriesNumber', '?')}"
                         f" failed {', '.join(failed)}")
        raise NoSeriesSelectedError(
            f"No series in {self.root} is a usable axial head CT ({'; '.join(parts)}). "
            "Run `ichpipe inspect` for each rule's verdict, or adjust selection rules in the config."
        )


def _summarise(series: Series, geometry_config: GeometryConfig) -> SeriesSummary:
    attrs = series_attributes(series)
    try:
        geometry, notes = header_geometry(series, config=geometry_config)
        error = None
    except IchpipeError as exc:
        geometry, notes, error = None, (), str(exc)
    attrs["geometry_valid"] = "yes" if geometry is not None else "no"
    if geometry is not None:
        # slices at distinct positions: files repeating a position do not count towards enough_slices
        attrs["n_slices"] = geometry.n_slices
    if series.split_reason:
        notes = (series.split_reason, *notes)
    return SeriesSummary(series, attrs, geometry, tuple(notes), error)


def summarise_series(
    series_list: list[Series], *, selection: SelectionConfig, geometry: GeometryConfig
) -> tuple[list[SeriesSummary], SelectionResult]:
    """Describe each series and apply the selection rules."""
    summaries = [_summarise(s, geometry) for s in series_list]
    candidates = [Candidate(s.series.series_uid, s.attributes, key=s.series.key) for s in summaries]
    return summaries, select_series(candidates, selection)


@contextmanager
def scan_study(
    path: Path,
    *,
    discovery: DiscoveryConfig | None = None,
    selection: SelectionConfig | None = None,
    geometry: GeometryConfig | None = None,
) -> Iterator[StudyScan]:
    """Scan ``path`` and select a series; files stay readable inside the ``with`` block.

    Raises
    ------
    DicomInputError
        If the path does not exist or holds no readable DICOM file.
    """
    with open_study(path, config=discovery) as found:
        yield _scan_found(found, Path(path), selection=selection, geometry=geometry)


@contextmanager
def scan_files(
    files: Sequence[Path],
    *,
    root: Path,
    selection: SelectionConfig | None = None,
    geometry: GeometryConfig | None = None,
) -> Iterator[StudyScan]:
    """Scan exactly ``files`` (one study picked out of a larger folder) and select a series.

    ``ichpipe batch`` finds every study under an inbox and hands each one's
    files here, so studies sharing a folder are still processed one by one.

    Parameters
    ----------
    files:
        The study's files.
    root:
        The folder they came from, for messages.

    Raises
    ------
    DicomInputError
        If none of the files is a readable DICOM image.
    """
    found = DiscoveryResult()
    with stage("reading headers", total=len(files)) as progress:
        for file in files:
            found.n_examined += 1
            try:
                found.headers.append((Path(file), read_header(Path(file))))
            except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError, IndexError,
                    OverflowError) as exc:
                found.skipped.append(SkippedFile(Path(file),
                                                 f"unreadable DICOM header ({type(exc).__name__}: {exc})"))
            progress.advance()
    yield _scan_found(found, Path(root), selection=selection, geometry=geometry)


def _scan_found(
    found: DiscoveryResult,
    path: Path,
    *,
    selection: SelectionConfig | None,
    geometry: GeometryConfig | None,
) -> StudyScan:
    geometry_cfg = geometry or GeometryConfig()
    if not found.headers:
        detail = f"examined {found.n_examined} file(s)"
        if found.skipped:
            detail += f"; e.g. {found.skipped[0].path.name}: {found.skipped[0].reason}"
        raise DicomInputError(
            f"No readable DICOM image found in {path} ({detail}). Point --study at a folder, DICOMDIR or"
            " .zip holding the CT images."
        )
    series_list = group_series(found.headers, orientation_tolerance=geometry_cfg.orientation_tolerance)
    summaries, result = summarise_series(
        series_list, selection=selection or SelectionConfig(), geometry=geometry_cfg
    )
    return StudyScan(path, summaries, result, list(found.skipped), found.n_examined)
