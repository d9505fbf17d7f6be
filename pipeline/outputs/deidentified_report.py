"""The de-identified study report (``outputs.deidentify`` / ``ichpipe run --deidentify``).

The report's identity fields that name the patient or the visit are set to
null (``patient_id``, ``accession_number``) and the acquisition date and time
is removed (``acquisition_datetime``, and the baseline scan's in ``serial``),
as the PS3.15 Basic Profile removes dates; the UIDs stay (Retain UIDs Option), so the report still matches the
SEG and key image, which are de-identified by :mod:`ichpipe.dicom_io.deidentify`.
Contract fields are kept, with null values, never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ichpipe.dicom_io.confidentiality_profile import EDITION
from ichpipe.dicom_io.deidentify import BASIC_PROFILE, DEIDENTIFICATION_METHOD

__all__ = ["REPORT_FIELDS_REMOVED", "deidentify_report"]

#: Report fields set to null in a de-identified report.
REPORT_FIELDS_REMOVED = ("patient_id", "accession_number", "acquisition_datetime")


def deidentify_report(report: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``report`` without direct identifiers, saying how it was de-identified."""
    out = dict(report)
    for name in REPORT_FIELDS_REMOVED:
        out[name] = None
    if isinstance(out.get("serial"), Mapping) and "baseline_acquisition_datetime" in out["serial"]:
        out["serial"] = {**out["serial"], "baseline_acquisition_datetime": None}
    out["deidentification"] = {
        "method": DEIDENTIFICATION_METHOD,
        "report_fields_removed": list(REPORT_FIELDS_REMOVED),
        "dicom_profile": {"table": EDITION, "rows": len(BASIC_PROFILE),
                          "options": ["Retain UIDs Option", "Clean Descriptors Option"]},
    }
    return out
