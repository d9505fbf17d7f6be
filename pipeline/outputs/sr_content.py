"""What the DICOM SR says, taken from the study report.

:func:`sr_content_from_report` maps the report's ``hematoma`` (volume, ABC/2
and its diameters, ``by_type`` volumes when the segmenter gives hemorrhage
types), ``segmenter`` (name, version, checkpoint SHA-256), ``quality``
(``flags: [{code, message, value}]``; read defensively: reports of versions
without quality checks have none) and ``serial`` (the change since the
patient's baseline) into :class:`ichpipe.dicom_io.sr.HematomaSRContent`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ichpipe.dicom_io.sr import HematomaSRContent, QualityFlag, SerialChange

__all__ = ["quality_flags", "serial_change_from_report", "sr_content_from_report"]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def quality_flags(report: Mapping[str, Any]) -> tuple[list[QualityFlag], bool]:
    """The report's quality flags and whether the report has a ``quality`` block at all.

    Examples
    --------
    >>> quality_flags({"quality": {"flags": [{"code": "hu_implausible", "message": "HU out of range"}]}})
    ([QualityFlag(code='hu_implausible', message='HU out of range', value=None)], True)
    >>> quality_flags({})
    ([], False)
    """
    quality = report.get("quality")
    if not isinstance(quality, Mapping):
        return [], False
    flags = []
    for item in quality.get("flags") or []:
        if isinstance(item, Mapping) and item.get("code"):
            flags.append(QualityFlag(code=str(item["code"]), message=str(item.get("message") or ""),
                                     value=item.get("value")))
    return flags, True


def serial_change_from_report(report: Mapping[str, Any]) -> SerialChange | None:
    """The report's ``serial`` block as a :class:`SerialChange`, or ``None`` when it has none."""
    serial = report.get("serial")
    if not isinstance(serial, Mapping) or "is_baseline" not in serial:
        return None
    # a change between two methods is not the hematoma's: the SR carries no change then, only the verdict
    comparable = serial.get("same_method_as_baseline") is not False
    return SerialChange(
        is_baseline=bool(serial["is_baseline"]),
        time_point_order=int(serial.get("time_point_order") or 1),
        baseline_series_uid=serial.get("baseline_series_instance_uid"),
        baseline_datetime=serial.get("baseline_acquisition_datetime"),
        baseline_volume_ml=_number(serial.get("baseline_volume_ml")),
        delta_ml=_number(serial.get("delta_ml")) if comparable else None,
        delta_pct=_number(serial.get("delta_pct")) if comparable else None,
        hours_since_baseline=_number(serial.get("hours_since_baseline")),
        verdict=serial.get("expansion"),
        rule=serial.get("rule"),
    )


def sr_content_from_report(report: Mapping[str, Any]) -> HematomaSRContent:
    """The SR content of a study report (``ichpipe run``'s).

    Raises
    ------
    ValueError
        If the report lacks the hematoma volume, ABC/2 or its diameters.
    """
    hematoma = report.get("hematoma") or {}
    abc = hematoma.get("abc2") or {}
    values = {
        "volume_ml": _number(hematoma.get("volume_ml")),
        "abc2_ml": _number(hematoma.get("abc2_ml")),
        "a_mm": _number(abc.get("a_mm")),
        "b_mm": _number(abc.get("b_mm")),
        "c_mm": _number(abc.get("c_mm")),
    }
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise ValueError(f"Argument 'report' lacks the hematoma's {', '.join(missing)}; cannot write an SR.")
    by_type = {str(k): v for k, raw in (hematoma.get("by_type") or {}).items()
               if (v := _number(raw)) is not None and str(k).endswith("_ml")}
    segmenter = report.get("segmenter") or {}
    flags, checked = quality_flags(report)
    return HematomaSRContent(
        volume_ml=values["volume_ml"] or 0.0,
        abc2_ml=values["abc2_ml"] or 0.0,
        a_mm=values["a_mm"] or 0.0,
        b_mm=values["b_mm"] or 0.0,
        c_mm=values["c_mm"] or 0.0,
        algorithm_name=f"ichpipe-{segmenter.get('name') or 'unknown'}",
        algorithm_version=str(segmenter.get("version") or report.get("ichpipe_version") or "unknown"),
        checkpoint_sha256=segmenter.get("checkpoint_sha256"),
        by_type_ml=by_type,
        quality_flags=tuple(flags),
        quality_checked=checked,
        change=serial_change_from_report(report),
    )
