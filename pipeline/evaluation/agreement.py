"""Agreement of two segmenters on one real volume when no reference mask exists (e.g. ichpipe vs BLAST-CT).

Neither mask is the truth: the numbers say how far two methods agree, not which is right.
:func:`mask_agreement` gives Dice and both volumes measured by the project's planimetry on
the volume's own grid; :func:`compare_reports` reads two ``ichpipe run`` outputs of the same
input (their ``report.json``, with ``seg.dcm`` or ``mask.nii.gz`` beside it) and adds each
report's per-type volumes (``hematoma_types``: IPH, extra-axial, IVH) where a segmenter
labels types, and the type the user says the case is (``case_type``) for per-type tables.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.dicom_io.geometry import VolumeGeometry
from ichpipe.errors import UsageError
from ichpipe.pipeline.config.measure_config import MeasureConfig
from ichpipe.pipeline.evaluation.metrics import dice_iou
from ichpipe.pipeline.measure.volume import measure_hematoma

__all__ = ["CASE_TYPES", "compare_reports", "load_run_mask", "mask_agreement"]

#: Types a case may be declared as for per-type tables (``none``: no haemorrhage, e.g. a normal head).
CASE_TYPES: tuple[str, ...] = ("iph", "ivh", "eah", "mixed", "none")


def mask_agreement(a: npt.NDArray[np.bool_], b: npt.NDArray[np.bool_], geometry: VolumeGeometry, *,
                   measure: MeasureConfig | None = None) -> dict[str, float]:
    """Dice of two masks on one grid and their planimetric volumes.

    Returns
    -------
    dict
        ``dice`` (1.0 when both are empty), ``a_ml``, ``b_ml``, ``difference_ml`` (a - b) and
        ``relative_difference`` ((a - b) / b; NaN when b is empty).

    Raises
    ------
    ValueError
        The masks differ in shape or do not fit ``geometry``.

    Examples
    --------
    >>> from ichpipe.pipeline.datasets.case import uniform_geometry
    >>> g = uniform_geometry(n_slices=2, rows=4, columns=4, pixel_spacing_mm=1.0, slice_thickness_mm=5.0)
    >>> a = np.zeros((2, 4, 4), bool); a[0, :2, :2] = True; b = a.copy(); b[1, :2, :2] = True
    >>> {k: round(v, 3) for k, v in mask_agreement(a, b, g).items()}
    {'dice': 0.667, 'a_ml': 0.02, 'b_ml': 0.04, 'difference_ml': -0.02, 'relative_difference': -0.5}
    """
    if a.shape != b.shape:
        raise ValueError(f"Arguments 'a' and 'b' must have one shape; got {a.shape} and {b.shape}.")
    cfg = measure or MeasureConfig()
    a_ml = measure_hematoma(a, geometry, config=cfg).volume_ml
    b_ml = measure_hematoma(b, geometry, config=cfg).volume_ml
    dice, _ = dice_iou(a, b)
    return {"dice": dice, "a_ml": a_ml, "b_ml": b_ml, "difference_ml": a_ml - b_ml,
            "relative_difference": (a_ml - b_ml) / b_ml if b_ml > 0 else math.nan}


def _read_report(path: Path) -> dict[str, Any]:
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--compare {path}: not a readable ichpipe report.json ({exc}).") from exc
    if not isinstance(report, dict) or "hematoma" not in report or "input" not in report:
        raise UsageError(f"--compare {path}: not an ichpipe run report (no 'hematoma' or 'input').")
    return report


def _load_volume(report: dict[str, Any]) -> CTVolume:
    """The CT a report was made from (its ``input.path``)."""
    source = Path(str(report["input"].get("path") or ""))
    if report["input"].get("format") == "nifti":
        from ichpipe.pipeline.jobs.nifti_study import load_nifti_ct

        return load_nifti_ct(source)
    from ichpipe.dicom_io.assemble import assemble_series
    from ichpipe.dicom_io.study import scan_study

    uid = report.get("series_instance_uid")
    with scan_study(source) as scan:
        chosen = next((s for s in scan.series if s.series.series_uid == uid), None) if uid else None
        series = chosen.series if chosen is not None else scan.require_selected().series
        return assemble_series(series)


def load_run_mask(report_path: Path, volume: CTVolume) -> npt.NDArray[np.bool_]:
    """The mask of an ``ichpipe run`` output (``seg.dcm`` or ``mask.nii.gz`` beside ``report.json``) on ``volume``.

    Raises
    ------
    UsageError
        Neither file is there.
    """
    folder = report_path.parent
    if (folder / "seg.dcm").is_file():
        from ichpipe.dicom_io.seg_read import read_seg_mask

        return read_seg_mask(folder / "seg.dcm", volume)
    if (folder / "mask.nii.gz").is_file():
        from ichpipe.pipeline.measure.nifti_masks import align_nifti_mask

        return align_nifti_mask(folder / "mask.nii.gz", volume.geometry).mask
    raise UsageError(f"--compare {report_path}: no seg.dcm or mask.nii.gz beside it; run with the SEG or NIfTI"
                     " output on.")


def compare_reports(a: Path, b: Path, *, case_type: str | None = None,
                    measure: MeasureConfig | None = None) -> dict[str, Any]:
    """Agreement of two runs on the same input: Dice, volumes, difference, per-type volumes.

    Parameters
    ----------
    a, b:
        The two ``report.json`` files (e.g. ichpipe's and BLAST-CT's run).
    case_type:
        What the case is known to be (one of :data:`CASE_TYPES`), for per-type tables.
    measure:
        ABC/2 conventions (volumes are planimetric either way).

    Raises
    ------
    UsageError
        The reports are not of the same input, or a mask is missing.
    """
    if case_type is not None and case_type not in CASE_TYPES:
        raise UsageError(f"--type must be one of {', '.join(CASE_TYPES)}; got {case_type!r}.")
    ra, rb = _read_report(a), _read_report(b)
    key = ("series_instance_uid", "input")
    if ra.get("series_instance_uid") != rb.get("series_instance_uid") or (
            ra["input"].get("path") != rb["input"].get("path") and not ra.get("series_instance_uid")):
        raise UsageError(f"--compare {a} and {b} are not runs on the same input ({key[0]} or input path differ).")
    volume = _load_volume(ra)
    agreement = mask_agreement(load_run_mask(a, volume), load_run_mask(b, volume), volume.geometry,
                               measure=measure)
    return {
        "a": {"report": str(a), "segmenter": ra["segmenter"], "volume_ml": ra["hematoma"]["volume_ml"],
              "types": ra.get("hematoma_types"), "flags": [f["code"] for f in ra.get("quality", {}).get("flags", [])]},
        "b": {"report": str(b), "segmenter": rb["segmenter"], "volume_ml": rb["hematoma"]["volume_ml"],
              "types": rb.get("hematoma_types"), "flags": [f["code"] for f in rb.get("quality", {}).get("flags", [])]},
        "case_type": case_type,
        "input": ra["input"].get("path"),
        **agreement,
    }
