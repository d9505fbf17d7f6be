"""DICOM Structured Report of the hematoma measurements (TID 1500 Measurement Report), with highdicom.

PACS and viewers read measurements from SR, not from JSON or burned-in
pixels. :func:`build_measurement_sr` writes one
:class:`highdicom.sr.Comprehensive3DSR` holding a TID 1500 Measurement Report:

* one measurement group for the hematoma: a TID 1411 Volumetric ROI group
  that references segment 1 of our DICOM SEG (``ReferencedSegment``, with the
  source CT images it was made on) when a SEG was written, else a TID 1501
  group whose measurements reference the source CT images;
* in it: the planimetric volume (SCT 118565006 "Volume", mL), the ABC/2
  estimate (DCM 121221 "Volume of ellipsoid" by DCM 126029 "LWH method for
  volume of ellipsoid") and its three diameters (SCT 103339001 "Long axis" = A,
  SCT 131189007 "Perpendicular Axis" = B, DCM 121207 "Height" = C, mm);
  the algorithm (TID 4019: name, version, the checkpoint's SHA-256 as a
  parameter); each quality flag as a qualitative evaluation (DCM 111052
  "Quality Finding" = the flag's code) and a TEXT comment with its message;
  for a follow-up scan, the change since the patient's baseline scan (mL and
  %, hours since the baseline, the expansion verdict) and the time point;
* one TID 1501 group per hemorrhage type when the segmenter gives types
  (intraparenchymal, intraventricular, extra-axial, ...).

Codes that DICOM does not define (the flag codes, the change since the
baseline, the hemorrhage types) use the private coding scheme
:data:`PRIVATE_SCHEME` ("99ICHPIPE"), declared in the SR's
CodingSchemeIdentificationSequence.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from ichpipe import __version__
from ichpipe.dicom_io._atomic import set_series_datetime, write_dataset_atomic
from ichpipe.dicom_io._privacy import no_person_name_warnings
from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.dicom_io.deidentify import deidentify_dataset
from ichpipe.dicom_io.seg import HEMORRHAGE_CATEGORY, HEMORRHAGE_TYPE, source_headers
from ichpipe.errors import OutputBuildError

__all__ = [
    "HEMORRHAGE_TYPES",
    "PRIVATE_SCHEME",
    "HematomaSRContent",
    "QualityFlag",
    "SerialChange",
    "build_measurement_sr",
    "write_measurement_sr",
]

#: Coding scheme designator of ichpipe's own codes (private: "99" prefix, PS3.16 section 8.2).
PRIVATE_SCHEME = "99ICHPIPE"

#: Hemorrhage types a segmenter may report (``hematoma.by_type`` keys without ``_ml``) and their names.
HEMORRHAGE_TYPES: dict[str, str] = {
    "iph": "Intraparenchymal hemorrhage",
    "ivh": "Intraventricular hemorrhage",
    "eah": "Extra-axial hemorrhage",
    "sah": "Subarachnoid hemorrhage",
    "sdh": "Subdural hemorrhage",
    "edh": "Epidural hemorrhage",
    "oedema": "Perihematomal oedema",
    "edema": "Perihematomal edema",
}

_ML = Code("ml", "UCUM", "milliliter")
_MM = Code("mm", "UCUM", "millimeter")
_PERCENT = Code("%", "UCUM", "Percent")
_HOUR = Code("h", "UCUM", "hour")
_VOLUME = Code("118565006", "SCT", "Volume")
_ELLIPSOID = Code("121221", "DCM", "Volume of ellipsoid")
_LWH = Code("126029", "DCM", "LWH method for volume of ellipsoid")
_LONG_AXIS = Code("103339001", "SCT", "Long axis")
_PERPENDICULAR = Code("131189007", "SCT", "Perpendicular Axis")
_HEIGHT = Code("121207", "DCM", "Height")
_QUALITY_FINDING = Code("111052", "DCM", "Quality Finding")
_COMMENT = Code("121106", "DCM", "Comment")
_BRAIN = Code("12738006", "SCT", "Brain")
_CT_HEAD = Code("303653007", "SCT", "Computed tomography of head")
_BASELINE = Code("C1442488", "UMLS", "Baseline")
_ARTIFICIAL_INTELLIGENCE = Code("123110", "DCM", "Artificial Intelligence")
_CHANGE_ML = Code("VOLCHG", PRIVATE_SCHEME, "Hematoma volume change since baseline")
_CHANGE_PCT = Code("VOLCHGPCT", PRIVATE_SCHEME, "Hematoma volume change since baseline, percent")
_BASELINE_VOLUME = Code("BASEVOL", PRIVATE_SCHEME, "Hematoma volume at baseline")
_HOURS_SINCE = Code("HSINCEBASE", PRIVATE_SCHEME, "Time since baseline scan")
_EXPANSION = Code("EXPANSION", PRIVATE_SCHEME, "Hematoma expansion")
_NO_FLAG = Code("NOFLAG", PRIVATE_SCHEME, "No quality flag raised")
_VERDICTS = {
    "expanded": Code("EXPANDED", PRIVATE_SCHEME, "Expanded"),
    "not_expanded": Code("NOTEXPANDED", PRIVATE_SCHEME, "Not expanded"),
    "undetermined": Code("UNDETERMINED", PRIVATE_SCHEME, "Undetermined"),
}
_DISCLAIMER = "Automatic measurement by ichpipe; research use only, not for diagnosis."


@dataclass(frozen=True)
class QualityFlag:
    """One reason the volume may be wrong (the report's ``quality.flags`` items)."""

    code: str
    message: str
    value: Any = None


@dataclass(frozen=True)
class SerialChange:
    """This scan against the patient's baseline (the earliest scan in the results store).

    Attributes
    ----------
    is_baseline:
        This scan is the baseline (the other fields but ``time_point_order`` are then unused).
    time_point_order:
        1 for the baseline, 2 for the next scan, ...
    baseline_series_uid, baseline_datetime:
        The baseline scan.
    baseline_volume_ml, delta_ml, delta_pct:
        Baseline volume and this scan's change from it (``delta_pct`` ``None`` when the baseline is 0 mL).
    hours_since_baseline:
        Hours between the two acquisitions.
    verdict, rule:
        The patient's expansion verdict (``expanded``, ``not_expanded``, ``undetermined``) and the rule's name.
    """

    is_baseline: bool
    time_point_order: int
    baseline_series_uid: str | None = None
    baseline_datetime: str | None = None
    baseline_volume_ml: float | None = None
    delta_ml: float | None = None
    delta_pct: float | None = None
    hours_since_baseline: float | None = None
    verdict: str | None = None
    rule: str | None = None


@dataclass(frozen=True)
class HematomaSRContent:
    """What the SR says: measurements, method and quality.

    Attributes
    ----------
    volume_ml:
        Planimetric volume (sum of slice areas x each slice's thickness along the normal).
    abc2_ml, a_mm, b_mm, c_mm:
        ABC/2 estimate and its diameters.
    algorithm_name, algorithm_version:
        The segmenter (e.g. ``ichpipe-sa_cbam_unet_slim``) and its version.
    checkpoint_sha256:
        SHA-256 of the network checkpoint; ``None`` for a classical method.
    by_type_ml:
        Volume per hemorrhage type (keys of :data:`HEMORRHAGE_TYPES` or others), when the segmenter gives types.
    quality_flags:
        Every reason the volume may be wrong.
    quality_checked:
        Whether quality checks ran (then no flag is written as "No quality flag raised").
    change:
        The change since the baseline scan, for a patient with earlier scans.
    """

    volume_ml: float
    abc2_ml: float
    a_mm: float
    b_mm: float
    c_mm: float
    algorithm_name: str
    algorithm_version: str
    checkpoint_sha256: str | None = None
    by_type_ml: Mapping[str, float] = field(default_factory=dict)
    quality_flags: Sequence[QualityFlag] = ()
    quality_checked: bool = False
    change: SerialChange | None = None


def _text(name: Code, value: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=name, value=value[:1024],
                                 relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)


def _code(value: str, meaning: str) -> Code:
    return Code(value, PRIVATE_SCHEME, meaning[:64])


def _num(name: Code, value: float, unit: Code, **kw: Any) -> hd.sr.Measurement:
    return hd.sr.Measurement(name=name, value=float(value), unit=unit, **kw)


def _measurements(content: HematomaSRContent, refs: Sequence[hd.sr.SourceImageForMeasurement] | None
                  ) -> list[hd.sr.Measurement]:
    images = list(refs) if refs else None
    out = [
        _num(_VOLUME, content.volume_ml, _ML, referenced_images=images),
        _num(_ELLIPSOID, content.abc2_ml, _ML, method=_LWH),
        _num(_LONG_AXIS, content.a_mm, _MM),
        _num(_PERPENDICULAR, content.b_mm, _MM),
        _num(_HEIGHT, content.c_mm, _MM),
    ]
    change = content.change
    if change is not None and not change.is_baseline:
        if change.baseline_volume_ml is not None:
            out.append(_num(_BASELINE_VOLUME, change.baseline_volume_ml, _ML))
        if change.delta_ml is not None:
            out.append(_num(_CHANGE_ML, change.delta_ml, _ML))
        if change.delta_pct is not None:
            out.append(_num(_CHANGE_PCT, change.delta_pct, _PERCENT))
        if change.hours_since_baseline is not None:
            out.append(_num(_HOURS_SINCE, change.hours_since_baseline, _HOUR))
    return out


def _evaluations(content: HematomaSRContent) -> list[hd.sr.QualitativeEvaluation]:
    out = [
        hd.sr.QualitativeEvaluation(name=_QUALITY_FINDING, value=_code(flag.code, flag.message or flag.code))
        for flag in content.quality_flags
    ]
    if not content.quality_flags and content.quality_checked:
        out.append(hd.sr.QualitativeEvaluation(name=_QUALITY_FINDING, value=_NO_FLAG))
    change = content.change
    if change is not None and change.verdict in _VERDICTS:
        out.append(hd.sr.QualitativeEvaluation(name=_EXPANSION, value=_VERDICTS[change.verdict]))
    return out


def _comments(content: HematomaSRContent) -> list[str]:
    lines = [_DISCLAIMER]
    for flag in content.quality_flags:
        value = "" if flag.value is None else f" (value {flag.value})"
        lines.append(f"Quality flag {flag.code}: {flag.message}{value}")
    change = content.change
    if change is not None and not change.is_baseline:
        if change.delta_ml is None:  # e.g. the baseline was measured by another method: no change to state
            delta = "not comparable (no change is stated)"
        else:
            pct = "n/a" if change.delta_pct is None else f"{change.delta_pct:+.1f} %"
            delta = f"{change.delta_ml:+.2f} mL ({pct})"
        lines.append(
            f"Change since baseline series {change.baseline_series_uid} ({change.baseline_datetime or 'undated'}):"
            f" {delta}; expansion {(change.verdict or 'n/a').replace('_', ' ')} by rule {change.rule or 'n/a'}"
        )
    elif change is not None:
        lines.append("This scan is the patient's baseline (first scan in the results store).")
    return lines


def _time_point(change: SerialChange | None) -> hd.sr.TimePointContext | None:
    if change is None:
        return None
    if change.is_baseline:
        return hd.sr.TimePointContext(time_point="baseline", time_point_type=_BASELINE,
                                      time_point_order=change.time_point_order)
    return hd.sr.TimePointContext(time_point=f"follow-up {change.time_point_order - 1}",
                                  time_point_order=change.time_point_order)


def _algorithm(content: HematomaSRContent) -> hd.sr.AlgorithmIdentification:
    parameters = [f"checkpoint_sha256={content.checkpoint_sha256}"] if content.checkpoint_sha256 else None
    return hd.sr.AlgorithmIdentification(name=content.algorithm_name[:64], version=content.algorithm_version[:64],
                                         parameters=parameters, family=_ARTIFICIAL_INTELLIGENCE)


def _type_groups(content: HematomaSRContent, algorithm: hd.sr.AlgorithmIdentification,
                 time_point: hd.sr.TimePointContext | None) -> list[hd.sr.MeasurementsAndQualitativeEvaluations]:
    groups = []
    for key, value in content.by_type_ml.items():
        short = key.removesuffix("_ml").lower()
        name = HEMORRHAGE_TYPES.get(short, f"Hemorrhage type {short}")
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"Hematoma {short.upper()}"),
            finding_type=_code(short.upper(), name),
            finding_category=HEMORRHAGE_CATEGORY,
            algorithm_id=algorithm,
            time_point_context=time_point,
            measurements=[_num(_VOLUME, value, _ML)],
        ))
    return groups


def _content_tree(content: HematomaSRContent, volume: CTVolume, seg: Dataset | None,
                  evidence: Sequence[Dataset]) -> hd.sr.MeasurementReport:
    algorithm = _algorithm(content)
    time_point = _time_point(content.change)
    tracking = hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="Hematoma")
    common: dict[str, Any] = {
        "tracking_identifier": tracking,
        "finding_type": HEMORRHAGE_TYPE,
        "finding_category": HEMORRHAGE_CATEGORY,
        "algorithm_id": algorithm,
        "finding_sites": [hd.sr.FindingSite(anatomic_location=_BRAIN)],
        "time_point_context": time_point,
        "qualitative_evaluations": _evaluations(content) or None,
    }
    group: hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations | hd.sr.MeasurementsAndQualitativeEvaluations
    if seg is not None:
        segment = hd.sr.ReferencedSegment(
            sop_class_uid=str(seg.SOPClassUID), sop_instance_uid=str(seg.SOPInstanceUID), segment_number=1,
            source_images=[hd.sr.SourceImageForSegmentation.from_source_image(ds) for ds in evidence],
        )
        group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            referenced_segment=segment, measurements=_measurements(content, None), **common)
    else:
        refs = [hd.sr.SourceImageForMeasurement.from_source_image(ds) for ds in evidence]
        group = hd.sr.MeasurementsAndQualitativeEvaluations(measurements=_measurements(content, refs), **common)
    for line in _comments(content):
        group[0].ContentSequence.append(_text(_COMMENT, line))
    observer = hd.sr.ObserverContext(
        observer_type=hd.sr.CodedConcept("121007", "DCM", "Device"),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=["ichpipe", content.algorithm_name]),
            name="ichpipe", manufacturer_name="ichpipe", model_name=content.algorithm_name[:64],
        ),
    )
    groups: list[Any] = [group, *_type_groups(content, algorithm, time_point)]
    return hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=_CT_HEAD,
        imaging_measurements=groups,
    )


def build_measurement_sr(
    content: HematomaSRContent,
    volume: CTVolume,
    *,
    seg: Dataset | None = None,
    series_number: int = 903,
    series_description: str = "ICH measurements (ichpipe)",
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
    instance_number: int = 1,
    manufacturer: str = "ichpipe",
    series_datetime: datetime | None = None,
) -> hd.sr.Comprehensive3DSR:
    """Build the TID 1500 Measurement Report of one hematoma as a Comprehensive 3D SR.

    Parameters
    ----------
    content:
        The measurements, method and quality to report.
    volume:
        The assembled source CT; its headers are the SR's evidence (patient and
        study are copied from the first).
    seg:
        Our DICOM SEG of this volume (segment 1 is the hematoma); ``None``
        when no SEG was written (the measurements then reference the source images).
    series_number, series_description, series_instance_uid, sop_instance_uid, instance_number:
        Identity of the new SR series and instance (UIDs generated when ``None``).
    manufacturer:
        This software.
    series_datetime:
        SeriesDate and SeriesTime; default now.

    Returns
    -------
    highdicom.sr.Comprehensive3DSR
        The SR document (final, unverified: no person has checked it).

    Raises
    ------
    ValueError
        If a volume or diameter is not a finite number.
    OutputBuildError
        If highdicom refuses the content or the source headers, with its reason
        (an :class:`~ichpipe.errors.OutputError`).
    """
    for name in ("volume_ml", "abc2_ml", "a_mm", "b_mm", "c_mm"):
        value = getattr(content, name)
        if not isinstance(value, int | float) or value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"Argument 'content' must hold a finite {name}; got {value!r}.")
    evidence = source_headers(volume)
    try:
        with no_person_name_warnings():
            tree = _content_tree(content, volume, seg, evidence)
            sr = hd.sr.Comprehensive3DSR(
                evidence=[*evidence, *([seg] if seg is not None else [])],
                content=tree,
                series_instance_uid=series_instance_uid or generate_uid(),
                series_number=series_number,
                sop_instance_uid=sop_instance_uid or generate_uid(),
                instance_number=instance_number,
                manufacturer=manufacturer,
                is_complete=True,
                is_final=True,
                is_verified=False,
                series_description=series_description[:64],
            )
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise OutputBuildError(
            f"Series {volume.series_uid}: highdicom could not build the DICOM SR ({type(exc).__name__}: {exc})."
        ) from exc
    set_series_datetime(sr, series_datetime)
    sr.SoftwareVersions = __version__
    scheme = Dataset()
    scheme.CodingSchemeDesignator = PRIVATE_SCHEME
    scheme.CodingSchemeName = "ichpipe local codes"
    scheme.CodingSchemeResponsibleOrganization = "ichpipe"
    sr.CodingSchemeIdentificationSequence = [scheme]
    return sr


def write_measurement_sr(
    content: HematomaSRContent,
    volume: CTVolume,
    path: str | os.PathLike[str],
    *,
    deidentify: bool = False,
    **options: Any,
) -> Path:
    """Build the SR with :func:`build_measurement_sr` and write it atomically to ``path``.

    Parameters
    ----------
    content, volume:
        As for :func:`build_measurement_sr`.
    path:
        Output file; its folder must exist.
    deidentify:
        Remove or blank the patient's direct identifiers first (UIDs are kept).
    **options:
        Keyword-only options of :func:`build_measurement_sr` (``seg``, ``series_number``, ...).

    Raises
    ------
    ValueError, OutputError
        As for :func:`build_measurement_sr`; or the file cannot be written (no partial file is left).
    """
    sr = build_measurement_sr(content, volume, **options)
    if deidentify:
        deidentify_dataset(sr)
    return write_dataset_atomic(sr, path, what="DICOM SR")
