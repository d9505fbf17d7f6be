"""The ``ichpipe measure`` job: volume and ABC/2 of an existing mask.

Two ways in:

* ``--study DIR --mask FILE``: the study is scanned, the series selected and
  assembled as ``ichpipe run`` would; the mask (NIfTI, or DICOM SEG through
  :func:`ichpipe.dicom_io.seg.read_seg_mask`) is put on that series' grid and measured
  with the DICOM geometry. A NIfTI mask that does not fit the selected series
  is tried against the study's other series of the same matrix (a reader may
  have segmented another reconstruction); the report says which series it
  matched. When none fits, the selected series' mismatch is the error.
* ``--mask FILE.nii.gz`` alone: the geometry comes from the NIfTI header
  (see :mod:`ichpipe.pipeline.measure.nifti_masks`); identity fields are null.

The result is the study report of ``DESIGN.md`` as far as a measurement can
fill it (``segmenter.name`` is ``"external-mask"``, ``outputs`` is empty).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.errors import InvalidDicomError

from ichpipe.dicom_io.assemble import CTVolume, assemble_series
from ichpipe.dicom_io.study import SeriesSummary, scan_study
from ichpipe.errors import DicomInputError, IchpipeError, UsageError
from ichpipe.pipeline.config import Config
from ichpipe.pipeline.config.measure_config import MeasureConfig
from ichpipe.pipeline.measure.nifti_masks import (
    AlignmentConfig,
    NiftiMask,
    align_nifti_mask,
    is_nifti_path,
    load_nifti_mask,
)
from ichpipe.pipeline.measure.nifti_masks import read_nifti_mask as read_nifti_with_geometry
from ichpipe.pipeline.measure.volume import measure_hematoma
from ichpipe.pipeline.outputs.report import SegmenterInfo, StageTimer, build_study_report, study_identity

__all__ = ["SEG_SOP_CLASS_UID", "MeasureReport", "mask_format", "measure_config_from", "measure_mask"]

log = logging.getLogger(__name__)

#: Segmentation Storage SOP Class UID.
SEG_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.66.4"

MaskFormat = Literal["nifti", "dicom-seg"]


def mask_format(path: Path) -> MaskFormat:
    """Tell a NIfTI mask from a DICOM SEG: by name (``.nii``, ``.nii.gz``), else by the header's SOPClassUID.

    Raises
    ------
    DicomInputError
        If the file does not exist, or is neither NIfTI nor a DICOM Segmentation.
    """
    path = Path(path)
    if not path.is_file():
        raise DicomInputError(f"Mask file {path} does not exist or is not a file.")
    if is_nifti_path(path):
        return "nifti"
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        with path.open("rb") as fh:
            head = fh.read(4)
        if head[:2] == b"\x1f\x8b" or int.from_bytes(head, "little") in (348, 540):
            return "nifti"  # gzip or NIfTI-1/2 header without the usual name
        raise DicomInputError(
            f"Mask {path.name} is neither a NIfTI file (.nii, .nii.gz) nor a DICOM file ({type(exc).__name__})."
        ) from exc
    sop_class = str(ds.get("SOPClassUID", "") or "")
    if sop_class == SEG_SOP_CLASS_UID:
        return "dicom-seg"
    raise DicomInputError(
        f"Mask {path.name} is a DICOM file of SOP class {sop_class or 'unknown'}, not a Segmentation"
        f" ({SEG_SOP_CLASS_UID}); give a DICOM SEG or a NIfTI mask."
    )


def _seg_reader() -> Callable[[Path, CTVolume], Any]:
    try:
        module = importlib.import_module("ichpipe.dicom_io.seg")
    except ModuleNotFoundError as exc:
        if exc.name != "ichpipe.dicom_io.seg":
            raise
        raise DicomInputError(
            "DICOM SEG masks need ichpipe.dicom_io.seg, which this ichpipe build does not have yet; export the mask as"
            " NIfTI instead."
        ) from exc
    reader = getattr(module, "read_seg_mask", None)
    if not callable(reader):
        raise DicomInputError("ichpipe.dicom_io.seg has no read_seg_mask(path, volume); cannot read DICOM SEG masks.")
    return reader


def _read_seg(path: Path, volume: CTVolume) -> NiftiMask:
    result = _seg_reader()(path, volume)
    mask = np.asarray(result)
    expected = volume.hu.shape
    if mask.shape != expected:
        raise DicomInputError(
            f"Mask {path.name}: the DICOM SEG gave a mask of shape {mask.shape}; the series is {expected}."
        )
    return NiftiMask(mask != 0 if mask.dtype != np.bool_ else mask, volume.geometry, path, ())


def measure_config_from(config: Config, **overrides: str | None) -> MeasureConfig:
    """The ABC/2 conventions: ``config.measure`` when the config has that section, then non-None overrides."""
    base = getattr(config, "measure", None)
    cfg = base if isinstance(base, MeasureConfig) else MeasureConfig()
    values: dict[str, Any] = {
        "abc2_c_method": cfg.abc2_c_method,
        "abc2_component": cfg.abc2_component,
    }
    for key, value in overrides.items():
        if key not in values:
            raise ValueError(f"Argument '{key}' is not a measure option; known: {', '.join(values)}.")
        if value is not None:
            values[key] = value
    return MeasureConfig(**values)


@dataclass(frozen=True)
class MeasureReport:
    """The ``measure`` result: the study report as a dict, and its text form."""

    report: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The JSON report."""
        return self.report

    def to_text(self) -> str:
        """A few readable lines (no patient identifiers)."""
        r = self.report
        h, g, abc = r["hematoma"], r["geometry"], r["hematoma"]["abc2"]
        where = (
            f"largest area on slice {h['max_area_slice_index']} of {g['n_slices']}"
            if h["max_area_slice_index"] is not None
            else "no hematoma voxel"
        )
        lines = [
            f"Hematoma volume: {h['volume_ml']:.2f} mL (planimetric, {h['n_voxels']} voxels; {where})",
            f"ABC/2: {h['abc2_ml']:.2f} mL (A {abc['a_mm']:.1f} mm x B {abc['b_mm']:.1f} mm x C {abc['c_mm']:.1f} mm"
            f" / 2; C by {abc['c_method']}, {abc['component']} component of {abc['n_components']},"
            f" {abc['component_volume_ml']:.2f} mL planimetric)",
            f"Geometry: {g['n_slices']} slices of {g['rows']} x {g['columns']}, pixels"
            f" {g['pixel_spacing_mm'][0]:g} x {g['pixel_spacing_mm'][1]:g} mm, {g['slice_spacing_mm']:g} mm along"
            f" the normal, tilt {g['gantry_tilt_deg']:g} deg, {'uniform' if g['uniform_spacing'] else 'uneven'}"
            f" spacing, {g['missing_slices']} missing",
        ]
        if r["series_instance_uid"]:
            lines.append(f"Series: {r['series_instance_uid']} (acquired {r['acquisition_datetime'] or 'unknown'})")
        else:
            lines.append("Series: none (geometry from the NIfTI header)")
        lines.extend(f"warning: {w}" for w in r["warnings"])
        return "\n".join(lines)


def _ordered_candidates(summaries: list[SeriesSummary], selected: SeriesSummary) -> list[SeriesSummary]:
    others = [s for s in summaries if s is not selected and s.geometry is not None]
    return [selected, *others]


def _align_to_study(
    mask_path: Path, study: Path, config: Config, alignment: AlignmentConfig | None, timer: StageTimer
) -> tuple[NiftiMask, CTVolume, list[str]]:
    """Load the study, put the NIfTI mask on the selected series (or another of the same grid)."""
    with timer.stage("load_mask"):
        loaded = load_nifti_mask(mask_path)
    notes: list[str] = []
    with timer.stage("load_study"), scan_study(
        study, discovery=config.discovery, selection=config.selection, geometry=config.geometry
    ) as scan:
        selected = scan.require_selected()
        first_error: IchpipeError | None = None
        for summary in _ordered_candidates(scan.series, selected):
            geometry = summary.geometry
            if summary is not selected and (
                geometry is None
                or sorted(loaded.data.shape) != sorted((geometry.rows, geometry.columns, geometry.n_slices))
            ):
                continue
            try:
                volume = assemble_series(summary.series, config=config.geometry)
                aligned = align_nifti_mask(loaded, volume.geometry, tolerance=alignment)
            except DicomInputError as exc:
                if first_error is None:
                    first_error = exc
                continue
            if summary is not selected:
                notes.append(
                    f"the mask does not fit the selected series {selected.series.key} ({first_error});"
                    f" it fits series {summary.series.key}, which was measured instead"
                )
            return aligned, volume, notes
        if first_error is None:  # the selected series is always tried, so an error was recorded
            raise DicomInputError(f"Mask {mask_path.name} could not be matched to any series of {study}.")
        raise first_error


def measure_mask(
    mask: Path,
    *,
    study: Path | None = None,
    config: Config | None = None,
    measure: MeasureConfig | None = None,
    alignment: AlignmentConfig | None = None,
) -> MeasureReport:
    """Measure an existing hematoma mask and build the study report.

    Parameters
    ----------
    mask:
        NIfTI (``.nii``/``.nii.gz``) or DICOM SEG file.
    study:
        Study folder, DICOMDIR or zip; ``None`` measures a NIfTI on its own header geometry.
    config:
        Discovery, selection and geometry settings; defaults to :class:`~ichpipe.pipeline.config.Config`.
    measure:
        ABC/2 conventions; defaults to :func:`measure_config_from` of ``config``.
    alignment:
        Tolerances for putting a NIfTI mask on the series' grid.

    Raises
    ------
    UsageError
        A DICOM SEG given without ``study``.
    DicomInputError
        Unreadable mask or study, or a mask that does not match the series.
    """
    cfg = config or Config()
    mcfg = measure or measure_config_from(cfg)
    mask = Path(mask)
    timer = StageTimer()
    fmt = mask_format(mask)
    notes: list[str] = []
    if study is None:
        if fmt != "nifti":
            raise UsageError(f"Mask {mask.name} is a DICOM SEG: give --study with the series it segments.")
        with timer.stage("load_mask"):
            placed = read_nifti_with_geometry(mask, config=cfg.geometry)
        identity = None
        warnings = [*placed.geometry.warnings, *placed.warnings]
    elif fmt == "nifti":
        placed, volume, notes = _align_to_study(mask, study, cfg, alignment, timer)
        identity = study_identity([s.dataset for s in volume.slices], study_uid=volume.study_uid,
                                  series_uid=volume.series_uid)
        warnings = [*volume.warnings, *placed.warnings, *notes]
    else:
        with timer.stage("load_study"), scan_study(
            study, discovery=cfg.discovery, selection=cfg.selection, geometry=cfg.geometry
        ) as scan:
            volume = assemble_series(scan.require_selected().series, config=cfg.geometry)
        with timer.stage("load_mask"):
            placed = _read_seg(mask, volume)
        identity = study_identity([s.dataset for s in volume.slices], study_uid=volume.study_uid,
                                  series_uid=volume.series_uid)
        warnings = [*volume.warnings, *placed.warnings]
    with timer.stage("measure"):
        hematoma = measure_hematoma(placed.mask, placed.geometry, config=mcfg)
    quality = _quality(placed.mask, volume if study is not None else None, cfg, timer)
    log.info("measured %s: %.2f mL planimetric, %.2f mL ABC/2", mask.name, hematoma.volume_ml, hematoma.abc2_ml)
    report = build_study_report(
        identity=identity,
        geometry=placed.geometry,
        hematoma=hematoma,
        segmenter=SegmenterInfo(name="external-mask"),
        outputs={},
        timings=timer,
        warnings=warnings,
        extra={
            "report_type": "measure",
            "study_path": str(study) if study is not None else None,
            "mask": {"path": str(mask), "format": fmt, "geometry_source": "dicom" if study else "nifti-header"},
            "quality": quality,
        },
    )
    return MeasureReport(report)


def _quality(mask: npt.NDArray[np.bool_], volume: CTVolume | None, config: Config,
             timer: StageTimer) -> dict[str, Any]:
    """The report's quality block: the image checks of ``run`` on the study, the mask as the segmentation.

    Without a study (a NIfTI mask alone) there is no image to check, and the block says so.
    """
    if volume is None:
        return {"flagged": False, "flags": [], "codes": [], "intracranial": {}, "measurements": {}, "checks": [],
                "note": "No image was given (a NIfTI mask alone): nothing could be checked."}
    from ichpipe.pipeline.quality.assess import assess_quality
    from ichpipe.pipeline.segment.intracranial import find_intracranial_in
    from ichpipe.pipeline.segment.segmenter import SegmentationResult

    with timer.stage("quality"):
        space = find_intracranial_in(volume.hu, volume.geometry, config.anatomy)
        report = assess_quality(volume, space, SegmentationResult(mask=mask), bone_min_hu=config.anatomy.bone_min_hu,
                                config=config.quality)
    return report.to_dict()
