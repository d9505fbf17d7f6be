"""The column mappings of ``ichpipe timeline import``: which columns of which table hold what.

A **mapping** (YAML or JSON) names the columns. Each table lists ``scans``,
groups of columns that describe one scan; a group with ``repeat: [1, 8]``
stands for eight groups, ``{n}`` in its column names replaced by 1..8::

    name: my_site
    datetime_format: iso          # iso | dicom (YYYYMMDDHHMMSS) | a strptime format
    volumes:
      patient: PatientID
      volume_unit: mL             # mL | cm3 | mm3 | uL
      scans:
        - {accession: Accession, volume: Volume, datetime: ScanTime}
        # optional per scan: post_surgical: <column>  (1/yes/true marks a scan taken after surgery)
    clinical:
      patient: PatientID
      onset_datetime: OnsetTime   # or onset_to_first_scan_h: <column>
      surgery_datetime: SurgeryTime   # optional: every scan from then on is post-surgical

Each section may name the ``file`` it expects (``file: table2_volumes_locations.csv``):
a table that does not fit is then reported with the file the mapping wanted.
Date-times without a time of day (``2024-03-01``, DICOM ``20240301``) are
imported as date-only: the timeline treats such a scan as lying anywhere in
that day, never at midnight.

Shipped mappings live in ``pipeline/serial/mappings/timeline/`` and are named by file
stem (``contest_2023e``). Rows are checked before anything is written; the
import is one transaction, and importing again replaces the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import yaml

from ichpipe.errors import ConfigError
from ichpipe.pipeline.config.loader import build_dataclass

__all__ = [
    "MAPPINGS_DIR",
    "VOLUME_UNITS",
    "ClinicalTable",
    "ScanColumns",
    "TimelineMapping",
    "TimesTable",
    "VolumesTable",
    "list_mappings",
    "load_mapping",
    "long_mapping",
]

#: Folder of the mappings shipped with ichpipe.
MAPPINGS_DIR = Path(__file__).resolve().parent / "mappings" / "timeline"

#: mL per unit.
VOLUME_UNITS: Mapping[str, float] = MappingProxyType({"mL": 1.0, "cm3": 1.0, "mm3": 1e-3, "uL": 1e-3})

VolumeUnit = Literal["mL", "cm3", "mm3", "uL"]


# ---------------------------------------------------------------------------
# The mapping
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanColumns:
    """Columns that describe one scan in a row.

    ``repeat: [first, last]`` makes this group stand for ``last - first + 1``
    groups, ``{n}`` in every column name replaced by each number.
    """

    accession: str
    volume: str | None = None
    datetime: str | None = None
    features: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    repeat: tuple[int, ...] | None = None
    post_surgical: str | None = None

    def __post_init__(self) -> None:
        if not self.accession.strip():
            raise ValueError("scans[].accession must name a column.")
        if self.repeat is not None:
            if len(self.repeat) != 2:
                raise ValueError(f"scans[].repeat must be [first, last]; got {list(self.repeat)}.")
            first, last = self.repeat
            if first > last or first < 0:
                raise ValueError(
                    f"scans[].repeat must be [first, last] with 0 <= first <= last; got {list(self.repeat)}."
                )
            if "{n}" not in self.accession:
                raise ValueError(
                    f"scans[].accession '{self.accession}' must contain {{n}} when the group has repeat."
                )

    def expand(self) -> list[ScanColumns]:
        """The concrete groups this one stands for."""
        if self.repeat is None:
            return [self]
        first, last = self.repeat[0], self.repeat[-1]

        def sub(text: str | None, n: int) -> str | None:
            return None if text is None else text.replace("{n}", str(n))

        return [
            ScanColumns(
                accession=sub(self.accession, n) or "",
                volume=sub(self.volume, n),
                datetime=sub(self.datetime, n),
                features=MappingProxyType({k: sub(v, n) or "" for k, v in self.features.items()}),
                post_surgical=sub(self.post_surgical, n),
            )
            for n in range(first, last + 1)
        ]


@dataclass(frozen=True)
class VolumesTable:
    """Mapping of the volumes table."""

    patient: str
    scans: tuple[ScanColumns, ...]
    volume_unit: VolumeUnit = "mL"
    issuer: str | None = None
    file: str | None = None

    def __post_init__(self) -> None:
        if not self.scans:
            raise ValueError("volumes.scans must list at least one group of columns.")
        for i, group in enumerate(self.scans):
            if group.volume is None:
                raise ValueError(f"volumes.scans[{i}] must name its volume column.")


@dataclass(frozen=True)
class TimesTable:
    """Mapping of the table giving scan date-times per accession."""

    patient: str
    scans: tuple[ScanColumns, ...]
    issuer: str | None = None
    file: str | None = None

    def __post_init__(self) -> None:
        if not self.scans:
            raise ValueError("times.scans must list at least one group of columns.")
        for i, group in enumerate(self.scans):
            if group.datetime is None:
                raise ValueError(f"times.scans[{i}] must name its datetime column.")


@dataclass(frozen=True)
class ClinicalTable:
    """Mapping of the clinical table (one row per patient)."""

    patient: str
    onset_to_first_scan_h: str | None = None
    onset_datetime: str | None = None
    first_scan_accession: str | None = None
    issuer: str | None = None
    extra: tuple[str, ...] = ()
    surgery_datetime: str | None = None
    file: str | None = None


@dataclass(frozen=True)
class TimelineMapping:
    """A column mapping for :func:`import_tables`.

    Attributes
    ----------
    encoding:
        Text encoding of every CSV (``utf-8-sig`` also reads plain UTF-8).
    datetime_format:
        ``iso`` (``2016-12-12 23:32:54``), ``dicom`` (``20161212233254``) or
        a :func:`datetime.strptime` format.
    """

    name: str = "custom"
    description: str = ""
    encoding: str = "utf-8-sig"
    datetime_format: str = "iso"
    volumes: VolumesTable | None = None
    times: TimesTable | None = None
    clinical: ClinicalTable | None = None

    def __post_init__(self) -> None:
        if self.volumes is None and self.clinical is None:
            raise ValueError("A timeline mapping needs a volumes section, a clinical section, or both.")


def list_mappings() -> list[str]:
    """Names of the mappings shipped with ichpipe."""
    return sorted(p.stem for p in MAPPINGS_DIR.glob("*.yaml"))


def load_mapping(name_or_path: str | Path) -> TimelineMapping:
    """Load a mapping: a shipped name (``contest_2023e``) or a YAML/JSON file.

    Raises
    ------
    ichpipe.errors.ConfigError
        If the file is missing or unreadable, or a key is unknown or of the wrong type.
    """
    text_name = str(name_or_path)
    path = Path(name_or_path)
    if not path.exists() and (MAPPINGS_DIR / f"{text_name}.yaml").is_file() and "/" not in text_name:
        path = MAPPINGS_DIR / f"{text_name}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"Timeline mapping '{text_name}' is neither a file nor a shipped mapping "
            f"({', '.join(list_mappings()) or 'none'})."
        )
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"Cannot read the timeline mapping {path}: {exc}.") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(f"The timeline mapping {path} must hold a mapping of keys at the top level.")
    try:
        return build_dataclass(TimelineMapping, data)
    except ConfigError as exc:
        raise ConfigError(f"Timeline mapping {path}: {exc}") from exc


def long_mapping(
    *,
    patient: str,
    accession: str | None = None,
    volume: str | None = None,
    datetime_column: str | None = None,
    volume_unit: VolumeUnit = "mL",
    onset_to_first_scan_h: str | None = None,
    onset_datetime: str | None = None,
    datetime_format: str = "iso",
    issuer: str | None = None,
    post_surgical: str | None = None,
    surgery_datetime: str | None = None,
) -> TimelineMapping:
    """A mapping for long tables (one row per scan) from column names (the CLI options).

    The same ``patient`` (and ``issuer``) column names are used in the volumes
    and clinical tables.

    Raises
    ------
    ValueError
        If the volumes columns are given only in part.
    """
    volumes = None
    if accession is not None or volume is not None:
        if accession is None or volume is None:
            raise ValueError("A long volumes table needs both its accession and its volume column.")
        volumes = VolumesTable(
            patient=patient,
            issuer=issuer,
            volume_unit=volume_unit,
            scans=(ScanColumns(accession=accession, volume=volume, datetime=datetime_column,
                               post_surgical=post_surgical),),
        )
    elif post_surgical is not None:
        raise ValueError("A post-surgical column belongs to a volumes table: give its accession and volume columns.")
    clinical = None
    if onset_to_first_scan_h is not None or onset_datetime is not None or surgery_datetime is not None:
        clinical = ClinicalTable(
            patient=patient, issuer=issuer, onset_to_first_scan_h=onset_to_first_scan_h,
            onset_datetime=onset_datetime, surgery_datetime=surgery_datetime,
        )
    return TimelineMapping(name="command-line", datetime_format=datetime_format, volumes=volumes,
                           clinical=clinical)
