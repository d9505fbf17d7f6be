"""Write a whole phantom study folder: DICOM series, ``truth.json`` and the mask.

Layout of ``out_dir``::

    truth.json           what to expect (see :mod:`ichpipe.pipeline.synthetic.phantom.truth`)
    truth_mask.nii.gz    hematoma labels of the written axial slices
    DICOM/               every series of the study, flat, hashed file names

The folder is built under a temporary sibling name and renamed into place
at the end, so a failure never leaves a half-written study.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom

from ichpipe import __version__
from ichpipe.errors import OutputError, UsageError
from ichpipe.pipeline.synthetic.phantom.identity import StudyIdentity, resolve_identity
from ichpipe.pipeline.synthetic.phantom.lesions import label_points
from ichpipe.pipeline.synthetic.phantom.render import (
    BONE_KERNEL,
    SOFT_KERNEL,
    Kernel,
    PhantomModel,
    build_model,
    reconstruct,
    sample_plane,
)
from ichpipe.pipeline.synthetic.phantom.series_writers import (
    THIN_SPACING_MM,
    LabelArray,
    WrittenSeries,
    axial_series_info,
    scan_key,
    write_axial_series,
    write_localizer_series,
    write_summary_series,
    write_thin_series,
)
from ichpipe.pipeline.synthetic.phantom.spec import PhantomSpec
from ichpipe.pipeline.synthetic.phantom.stack_plan import rng_for
from ichpipe.pipeline.synthetic.phantom.truth import (
    MASK_NIFTI_NAME,
    MASK_SEG_NAME,
    TRUTH_NAME,
    PhantomTruth,
    SegWriter,
    mask_affine_ras,
    voxel_volume_ml,
    write_json_atomic,
    write_mask_nifti,
)
from ichpipe.pipeline.synthetic.phantom.writer import RESCALE_VARIANTS, TRANSFER_SYNTAX_UIDS, SeriesInfo

__all__ = ["DICOM_DIR_NAME", "PhantomArrays", "reader_tolerance_ml", "render_phantom", "write_phantom_study"]

log = logging.getLogger(__name__)

DICOM_DIR_NAME = "DICOM"
FORMAT_VERSION = 1


def _check_target(out_dir: Path, overwrite: bool) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise UsageError(f"Output {out_dir} exists and is not a folder; choose a folder path for the study.")
    if not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise UsageError(
            f"Output folder {out_dir} is not empty; choose a new folder, or pass --overwrite"
            " (overwrite=True) to replace a phantom study written there before."
        )
    truth = out_dir / TRUTH_NAME
    try:
        is_phantom = truth.is_file() and '"generator": "ichpipe phantom"' in truth.read_text(encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"Cannot read {truth} to check what the folder holds: {exc}.") from exc
    if not is_phantom:
        raise UsageError(
            f"Output folder {out_dir} holds files that are not an ichpipe phantom study; --overwrite only"
            " replaces a folder written by `ichpipe phantom`. Choose another folder."
        )


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    if out_dir.exists():
        if any(out_dir.iterdir()):
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old)
            return
        out_dir.rmdir()
    os.replace(tmp, out_dir)


def _geometry_truth(model: PhantomModel, written: tuple[int, ...]) -> dict[str, Any]:
    plan = model.plan
    normal = plan.normal
    positions = plan.positions[list(written)]
    offsets = positions @ normal
    if np.any(np.diff(offsets) <= 0):
        raise RuntimeError("Phantom bug: written slices are not increasing along the normal.")
    gaps = np.diff(offsets)
    line = positions[-1] - positions[0]
    tilt_geom = math.degrees(math.acos(min(1.0, abs(float(line @ normal)) / float(np.linalg.norm(line)))))
    table_step = np.linalg.norm(np.diff(positions, axis=0), axis=1)
    spec = model.spec
    return {
        "n_slices": len(written),
        "n_planned_slices": plan.n_planned,
        "n_files": len(written) + len(plan.duplicated),
        "rows": plan.rows,
        "columns": plan.columns,
        "pixel_spacing_mm": [plan.pixel_spacing_mm, plan.pixel_spacing_mm],
        "slice_spacing_mm": round(float(np.median(gaps)), 6),
        "gantry_tilt_deg": float(spec.gantry_tilt_deg),
        "gantry_tilt_from_positions_deg": round(math.copysign(tilt_geom, spec.gantry_tilt_deg or 1.0), 6),
        "uniform_spacing": spec.uneven_spacing_mm is None and not plan.dropped,
        "missing_slices": len(plan.dropped),
        "dropped_slice_planned_index": plan.dropped[0] if plan.dropped else None,
        "duplicated_slice_planned_index": plan.duplicated[0] if plan.duplicated else None,
        "duplicate_positions": len(plan.duplicated),
        "uneven_spacing_mm": None if spec.uneven_spacing_mm is None else list(spec.uneven_spacing_mm),
        "orientation": list(plan.orientation),
        "normal": [round(float(v), 9) for v in normal],
        "positions_lps_mm": [[float(v) for v in p] for p in positions],
        "offsets_mm": [round(float(v), 6) for v in offsets],
        "gaps_mm": [round(float(v), 6) for v in gaps],
        "table_step_mm": [round(float(v), 6) for v in table_step],
        "nominal_slice_thickness_mm": [float(plan.nominal_thickness_mm[k]) for k in written],
        "planned_indices": list(written),
        "planned_offsets_mm": [round(float(v), 6) for v in plan.offsets_mm],
        "planned_slice_thickness_mm": [float(v) for v in plan.nominal_thickness_mm],
    }


def reader_tolerance_ml(counts: npt.NDArray[np.int64], thickness_mm: npt.NDArray[np.float64], dropped: tuple[int, ...],
                        pixel_area_mm2: float) -> float:
    """How far from the truth a correct reader of the written files may land (mL): what the files cannot say.

    - A dropped planned slice ``k``: its slab can only be filled from its
      neighbours; whatever a reader puts there lies between their areas, so
      it errs by at most ``thickness_k x max |A_k - A_k+-1|``.
    - A change of nominal thickness between planned slices ``a`` and ``b``:
      the positions give the two centres, not where ``a``'s slab ends. A
      reader that places that boundary at least half the thinner spacing from
      each centre is within ``|T_b - T_a| / 2`` of it, so it errs by at most
      that length times ``|A_a - A_b|``.

    Zero for a complete, evenly spaced plan (tilted or not): every slice then
    stands for its own spacing and a reader has nothing to guess.

    Parameters
    ----------
    counts:
        Hematoma pixels of each planned slice.
    thickness_mm:
        Nominal thickness of each planned slice.
    dropped:
        Planned indices with no file.
    pixel_area_mm2:
        Area of one pixel.
    """
    c = np.asarray(counts, dtype=np.float64)
    t = np.asarray(thickness_mm, dtype=np.float64)
    bound = 0.0
    for k in dropped:
        bound += float(t[k]) * max(abs(c[k] - c[k - 1]), abs(c[k] - c[k + 1]))
    for a in range(len(t) - 1):
        bound += abs(float(t[a + 1] - t[a])) / 2.0 * abs(float(c[a + 1] - c[a]))
    return bound * pixel_area_mm2 / 1000.0


def _hematoma_truth(
    model: PhantomModel,
    written: tuple[int, ...],
    labels: dict[int, LabelArray],
) -> dict[str, Any]:
    plan = model.plan
    spacing = (plan.pixel_spacing_mm, plan.pixel_spacing_mm)
    stack = np.stack([labels[k] for k in written])
    n_voxels = int(np.count_nonzero(stack))
    planned = np.stack([labels[k] for k in range(plan.n_planned)])
    volume, _ = voxel_volume_ml(planned, plan.nominal_thickness_mm, spacing)
    areas = (stack > 0).reshape(stack.shape[0], -1).sum(axis=1)
    planned_counts = (planned > 0).reshape(planned.shape[0], -1).sum(axis=1)
    lesions = []
    for hem in model.hematomas:
        entry = hem.to_dict(model.head, model.unit_samples)
        entry["volume_ml"], _ = voxel_volume_ml(planned, plan.nominal_thickness_mm, spacing, label=hem.label)
        entry["n_voxels"] = int(np.count_nonzero(stack == hem.label))
        if hem.clip_to_skull:
            entry["clipped_fraction"] = round(hem.clipped_fraction(model.head, model.unit_samples), 4)
        lesions.append(entry)
    analytic = [h["analytic_volume_ml"] for h in lesions]
    return {
        "volume_ml": volume,
        "n_voxels": n_voxels,
        "planned_slice_voxels": [int(v) for v in planned_counts],
        "reader_tolerance_ml": reader_tolerance_ml(planned_counts, plan.nominal_thickness_mm, plan.dropped,
                                                   spacing[0] * spacing[1]),
        "target_volume_ml": round(model.target_volume_ml, 4),
        "model_volume_ml": round(sum(float(h["model_volume_ml"]) for h in lesions), 4),
        "analytic_volume_ml": (
            round(sum(float(a) for a in analytic), 4) if lesions and all(a is not None for a in analytic) else None
        ),
        "max_area_slice_index": int(np.argmax(areas)) if n_voxels else None,
        "n_hematomas": len(model.hematomas),
        "hu": round(model.hematoma_hu, 2),
        "hematomas": lesions,
    }


def _series_entry(series: WrittenSeries) -> dict[str, Any]:
    info = series.info
    return {
        "role": info.role,
        "series_instance_uid": str(info.series_instance_uid),
        "series_number": info.series_number,
        "description": info.description,
        "sop_class_uid": str(info.sop_class_uid),
        "image_type": list(info.image_type),
        "convolution_kernel": info.kernel,
        "n_files": len(series.records),
        "should_select": series.should_select,
        "why": series.why,
        "files": [r.path for r in series.records],
    }


@dataclass(frozen=True)
class PhantomArrays:
    """The main series of a phantom as arrays, without writing files (e.g. for training).

    Attributes
    ----------
    hu:
        float32 HU, shape (slices, rows, columns): the written slices sorted
        along the normal (a duplicated slice once, a dropped one absent),
        before quantisation and without pixel padding.
    labels:
        uint8 hematoma labels, same shape (0 background, k for hematoma k).
    positions_lps_mm:
        ImagePositionPatient of each slice, shape (slices, 3).
    orientation:
        ImageOrientationPatient.
    pixel_spacing_mm:
        (row spacing, column spacing).
    slice_thickness_mm:
        SliceThickness of each slice as written (its block's spacing). For a
        stack with a dropped slice these do not cover the whole slab; a
        reader's thickness comes from the positions
        (:func:`ichpipe.dicom_io.geometry.slice_thickness_from_offsets`).
    volume_ml:
        Hematoma volume of the planned slices (the ``truth.json`` value, a
        dropped slice included).
    """

    hu: npt.NDArray[np.float32]
    labels: LabelArray
    positions_lps_mm: npt.NDArray[np.float64]
    orientation: tuple[float, ...]
    pixel_spacing_mm: tuple[float, float]
    slice_thickness_mm: npt.NDArray[np.float64]
    volume_ml: float


def render_phantom(spec: PhantomSpec) -> PhantomArrays:
    """Render the main series of ``spec`` in memory: the same HU and labels the files would hold.

    The noise is the same as :func:`write_phantom_study` writes for this
    spec, so ``hu`` equals the decoded files' HU to within the rescale
    quantum (inside the scan field).
    """
    model = build_model(spec)
    identity = resolve_identity(spec)
    plan = model.plan
    written = plan.written
    hu = np.empty((len(written), plan.rows, plan.columns), dtype=np.float32)
    planned = np.empty((plan.n_planned, plan.rows, plan.columns), dtype=np.uint8)
    for k in range(plan.n_planned):
        points = plan.voxel_centres(k)
        if k not in written:
            planned[k] = label_points(points, model.hematomas, model.head)
            continue
        clean, planned[k] = sample_plane(model, points)
        hu[written.index(k)] = reconstruct(
            model, clean, points, pixel_spacing_mm=plan.pixel_spacing_mm, kernel=SOFT_KERNEL,
            noise_rng=rng_for(spec.seed, "noise", scan_key(spec, identity), "main", k),
        )
    spacing = (plan.pixel_spacing_mm, plan.pixel_spacing_mm)
    volume, _ = voxel_volume_ml(planned, plan.nominal_thickness_mm, spacing)
    return PhantomArrays(
        hu=hu,
        labels=planned[list(written)],
        positions_lps_mm=plan.positions[list(written)],
        orientation=plan.orientation,
        pixel_spacing_mm=spacing,
        slice_thickness_mm=plan.nominal_thickness_mm[list(written)],
        volume_ml=volume,
    )


def write_phantom_study(
    out_dir: Path,
    spec: PhantomSpec,
    *,
    overwrite: bool = False,
    seg_writer: SegWriter | None = None,
) -> PhantomTruth:
    """Write a synthetic head-CT study and its ground truth into ``out_dir``.

    Parameters
    ----------
    out_dir:
        Study folder to create. It must not exist or be empty, unless
        ``overwrite`` and it holds an earlier phantom study (then replaced).
    spec:
        What to generate.
    overwrite:
        Replace an earlier phantom study in ``out_dir``.
    seg_writer:
        Optional DICOM SEG writer (see :class:`~ichpipe.pipeline.synthetic.phantom.truth.SegWriter`);
        its file goes next to ``truth.json`` and is listed as ``files.mask_seg``.

    Returns
    -------
    PhantomTruth
        Paths written and the content of ``truth.json``.

    Raises
    ------
    ichpipe.errors.UsageError
        If ``out_dir`` cannot be used.
    ValueError
        If the hematomas cannot be placed with these options.
    ichpipe.errors.OutputError
        If writing fails (the folder is then left as it was).
    """
    out_dir = Path(out_dir)
    _check_target(out_dir, overwrite)
    started = time.perf_counter()
    model = build_model(spec)
    identity = resolve_identity(spec)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}-{identity.digest[:8]}")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    except OSError as exc:
        raise OutputError(f"Cannot create the study folder next to {out_dir}: {exc}.") from exc
    try:
        data, seg_rel = _write_all(tmp, model, identity, seg_writer)
        write_json_atomic(tmp / TRUTH_NAME, data)
        _swap_into_place(tmp, out_dir)
    except OSError as exc:
        raise OutputError(f"Cannot write the phantom study to {out_dir}: {exc}.") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    log.info(
        "phantom: wrote %d files, hematoma %.3f mL, in %.2f s",
        sum(len(s["files"]) for s in data["series"]),
        data["hematoma"]["volume_ml"],
        time.perf_counter() - started,
    )
    return PhantomTruth(
        out_dir=out_dir,
        truth_path=out_dir / TRUTH_NAME,
        mask_path=out_dir / MASK_NIFTI_NAME,
        seg_path=out_dir / seg_rel if seg_rel else None,
        data=data,
    )


def _write_all(
    root: Path, model: PhantomModel, identity: StudyIdentity, seg_writer: SegWriter | None
) -> tuple[dict[str, Any], str | None]:
    spec = model.spec
    plan = model.plan
    dicom_dir = root / DICOM_DIR_NAME
    dicom_dir.mkdir()
    thickness_text = f"{spec.nominal_thickness_mm:g}MM"
    main_info = axial_series_info(
        identity, role="main", number=2, description=f"HEAD STD {thickness_text}", kernel=SOFT_KERNEL,
        window=(40.0, 80.0),
    )
    axial: list[tuple[SeriesInfo, Kernel, float, bool]] = [(main_info, SOFT_KERNEL, 1.0, True)]
    if "bone" in spec.distractors:
        bone_info = axial_series_info(
            identity, role="bone", number=3, description=f"HEAD BONE {thickness_text}", kernel=BONE_KERNEL,
            window=(500.0, 2000.0),
        )
        axial.append((bone_info, BONE_KERNEL, 1.0, False))
    records, labels, main_hu = write_axial_series(
        model, identity, dicom_dir, root, plan=plan, series=axial, want_labels=True
    )
    series = [
        WrittenSeries(main_info, records[0], True,
                      "the soft-tissue axial series (ORIGINAL\\PRIMARY\\AXIAL, STANDARD kernel)")
    ]
    if "bone" in spec.distractors:
        series.append(
            WrittenSeries(axial[1][0], records[1], False,
                          "a bone-kernel reconstruction of the same slices (kernel BONE)")
        )
    if "thin" in spec.distractors:
        thin_info = axial_series_info(
            identity, role="thin", number=4, description=f"HEAD STD {THIN_SPACING_MM:g}MM", kernel=SOFT_KERNEL,
            window=(40.0, 80.0),
        )
        series.append(
            WrittenSeries(
                thin_info,
                write_thin_series(model, identity, dicom_dir, root, thin_info),
                False,
                f"a thin-slice ({THIN_SPACING_MM:g} mm) soft-tissue reconstruction; the"
                f" {spec.nominal_thickness_mm:g} mm series is closer to the preferred 5 mm",
            )
        )
    if "localizer" in spec.distractors:
        series.append(write_localizer_series(model, identity, dicom_dir, root))
    if "summary" in spec.distractors:
        series.append(write_summary_series(model, identity, dicom_dir, root, main_hu))
    written = plan.written
    stack = np.stack([labels[k] for k in written])
    affine = mask_affine_ras(
        positions=plan.positions[list(written)],
        row_direction=plan.row_direction,
        column_direction=plan.column_direction,
        pixel_spacing_mm=(plan.pixel_spacing_mm, plan.pixel_spacing_mm),
    )
    write_mask_nifti(root / MASK_NIFTI_NAME, stack, affine)
    main_records = series[0].records
    first_copy = {r.planned_index: r for r in reversed(main_records)}
    instances = []
    for r in main_records:
        instances.append(
            {
                "file": r.path,
                "sop_instance_uid": r.sop_instance_uid,
                "instance_number": r.instance_number,
                "planned_index": r.planned_index,
                "mask_slice_index": written.index(r.planned_index) if r.planned_index is not None else None,
                "duplicate": first_copy[r.planned_index] is not r,
                "position_lps_mm": list(r.position) if r.position else None,
            }
        )
    seg_rel: str | None = None
    series_entries = [_series_entry(s) for s in series]
    if seg_writer is not None:
        sources = [root / first_copy[k].path for k in written]
        seg_path = Path(seg_writer(sources, stack, root / MASK_SEG_NAME))
        seg_rel = seg_path.relative_to(root).as_posix()
        seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
        series_entries.append(
            {
                "role": "seg",
                "series_instance_uid": str(seg.SeriesInstanceUID),
                "series_number": int(seg.SeriesNumber),
                "description": str(seg.get("SeriesDescription", "")),
                "sop_class_uid": str(seg.SOPClassUID),
                "image_type": list(seg.get("ImageType", [])),
                "convolution_kernel": None,
                "n_files": 1,
                "should_select": False,
                "why": "the ground-truth DICOM SEG (Modality SEG, not an image series)",
                "files": [seg_rel],
            }
        )
    variant = RESCALE_VARIANTS[spec.rescale]
    data: dict[str, Any] = {
        "generator": "ichpipe phantom",
        "generator_version": __version__,
        "format_version": FORMAT_VERSION,
        "spec": spec.to_dict(),
        "patient_id": identity.patient_id,
        "patient_name": identity.patient_name,
        "patient_birth_date": identity.patient_birth_date.isoformat(),
        "patient_sex": identity.patient_sex,
        "study_instance_uid": str(identity.study_instance_uid),
        "series_instance_uid": str(main_info.series_instance_uid),
        "frame_of_reference_uid": str(identity.frame_of_reference_uid) if spec.frame_of_reference else None,
        "accession_number": identity.accession_number,
        "study_id": identity.study_id,
        "acquisition_datetime": identity.acquisition_datetime.isoformat(),
        "study_datetime": identity.study_datetime.isoformat(),
        "transfer_syntax": {"name": spec.transfer_syntax, "uid": str(TRANSFER_SYNTAX_UIDS[spec.transfer_syntax])},
        "rescale": {
            "name": spec.rescale,
            "slope": variant.slope,
            "intercepts": list(variant.intercepts),
            "bits_stored": variant.bits_stored,
            "signed": variant.signed,
            "padding_value": variant.padding if spec.padding else None,
            "quantum_hu": variant.quantum_hu,
        },
        "geometry": _geometry_truth(model, written),
        "hematoma": _hematoma_truth(model, written, labels),
        "series": series_entries,
        "selected_series_instance_uid": str(main_info.series_instance_uid),
        "instances": instances,
        "files": {
            "truth": TRUTH_NAME,
            "mask_nifti": MASK_NIFTI_NAME,
            "mask_seg": seg_rel,
            "dicom_dir": DICOM_DIR_NAME,
        },
        "mask_axes": "NIfTI data[i, j, k] = label of column i, row j of the k-th written slice along the normal;"
        " affine in RAS mm",
    }
    return data, seg_rel
