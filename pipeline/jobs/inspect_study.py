"""The ``ichpipe inspect`` report: every series, the selected one and why, geometry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ichpipe.dicom_io.study import SeriesSummary, StudyScan, scan_study
from ichpipe.pipeline.config import Config

__all__ = ["InspectReport", "inspect_study", "series_item"]


def series_item(summary: SeriesSummary, scan: StudyScan) -> dict[str, Any]:
    """One series as the JSON contract describes it."""
    key = summary.series.key
    attrs = summary.attributes
    geo = summary.geometry
    item: dict[str, Any] = {
        "series_instance_uid": summary.series.series_uid,
        "series_key": key,
        "study_instance_uid": summary.series.study_uid,
        "selected": key == scan.selection.selected,
        "reasons": scan.selection.reasons(key),
        "modality": attrs.get("Modality"),
        "series_number": attrs.get("SeriesNumber"),
        "series_description": attrs.get("SeriesDescription"),
        "sop_class": attrs.get("sop_class_name"),
        "image_type": attrs.get("ImageType"),
        "convolution_kernel": attrs.get("ConvolutionKernel"),
        "slice_thickness_header_mm": attrs.get("SliceThickness"),
        "n_slices": geo.n_slices if geo else attrs.get("n_slices"),
        "rows": summary.series.slices[0].rows,
        "columns": summary.series.slices[0].columns,
        "pixel_spacing_mm": list(geo.pixel_spacing_mm) if geo else None,
        "slice_spacing_mm": round(geo.slice_spacing_mm, 4) if geo else None,
        "gantry_tilt_deg": round(geo.gantry_tilt_deg, 3) if geo else None,
        "uniform_spacing": geo.uniform_spacing if geo else None,
        "missing_slices": geo.missing_slices if geo else None,
        "warnings": list(summary.notes) + ([summary.geometry_error] if summary.geometry_error else []),
    }
    if geo is not None:
        item["slice_thickness_mm"] = [round(float(t), 4) for t in geo.slice_thickness_mm]
    return item


@dataclass(frozen=True)
class InspectReport:
    """What ``inspect`` found; decides the exit status (1 when nothing was selected)."""

    study_path: str
    series: list[dict[str, Any]]
    selected_series_instance_uid: str | None
    n_files_examined: int
    skipped_files: list[dict[str, str]]

    @property
    def exit_code(self) -> int:
        """0 when a series was selected, 1 otherwise."""
        return 0 if self.selected_series_instance_uid else 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``{"series": [...]}`` plus context)."""
        return {
            "study_path": self.study_path,
            "selected_series_instance_uid": self.selected_series_instance_uid,
            "n_files_examined": self.n_files_examined,
            "skipped_files": self.skipped_files,
            "series": self.series,
        }

    def to_text(self, *, explain: bool = False) -> str:
        """Human-readable summary: one line per series (number, description, short UID, geometry).

        With ``explain`` every rule's verdict follows each series; otherwise
        only the outcome (selected, or the rules it failed).
        """
        lines = [f"Study {self.study_path}: {len(self.series)} series, {self.n_files_examined} file(s) examined"]
        for s in self.series:
            mark = "*" if s["selected"] else " "
            missing = f", {s['missing_slices']} missing" if s["missing_slices"] else ""
            uneven = "" if s["uniform_spacing"] else ", uneven"
            geo = (
                f"{s['n_slices']} x {s['rows']}x{s['columns']}, {s['slice_spacing_mm']} mm along the normal,"
                f" tilt {s['gantry_tilt_deg']} deg{uneven}{missing}"
                if s["slice_spacing_mm"] is not None
                else f"{s['n_slices']} x {s['rows']}x{s['columns']}, no usable geometry"
            )
            number = _number(s["series_number"])
            description = f' "{s["series_description"]}"' if s.get("series_description") else ""
            lines.append(f"{mark} #{number} {s['modality'] or '?'}{description} ({_short(s['series_key'])}): {geo}")
            details = ("PASS ", "FAIL ", "prefer ")
            reasons = s["reasons"] if explain else [r for r in s["reasons"] if not r.startswith(details)]
            lines.extend(f"      {r}" for r in reasons)
            lines.extend(f"      warning: {w}" for w in s["warnings"])
        if self.skipped_files:
            lines.append(f"Skipped {len(self.skipped_files)} file(s):")
            lines.extend(f"  {f['path']}: {f['reason']}" for f in self.skipped_files[:20])
        chosen = self.selected_series_instance_uid
        lines.append(f"Selected: {chosen}" if chosen else "Selected: none (no series passed every rule)")
        if not explain:
            lines.append("(--explain shows every rule's verdict; --json the full record)")
        return "\n".join(lines)


def _number(value: Any) -> str:
    try:
        return str(int(float(value)))
    except (TypeError, ValueError):
        return "?"


def _short(key: str) -> str:
    from ichpipe.pipeline.outputs.qc_html import short_uids

    return short_uids(key)


def inspect_study(study: Path, config: Config) -> InspectReport:
    """Scan ``study`` and describe every series and the selection."""
    with scan_study(
        study, discovery=config.discovery, selection=config.selection, geometry=config.geometry
    ) as scan:
        items = [series_item(s, scan) for s in scan.series]
        chosen = scan.selected
        return InspectReport(
            study_path=str(study),
            series=items,
            selected_series_instance_uid=chosen.series.series_uid if chosen else None,
            n_files_examined=scan.n_examined,
            skipped_files=[{"path": str(f.path), "reason": f.reason} for f in scan.skipped],
        )
