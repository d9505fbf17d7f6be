"""The series of a phantom study: the axial stack (soft-tissue and bone kernels), and the thin-slice,
localizer and exam-summary distractors, each sampled from the model and written as DICOM files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom.uid import CTImageStorage, SecondaryCaptureImageStorage

from ichpipe.pipeline.synthetic.phantom.identity import StudyIdentity
from ichpipe.pipeline.synthetic.phantom.render import (
    SOFT_KERNEL,
    Kernel,
    PhantomModel,
    montage,
    reconstruct,
    render_localizer,
    sample_plane,
    scan_field,
)
from ichpipe.pipeline.synthetic.phantom.spec import PhantomSpec
from ichpipe.pipeline.synthetic.phantom.stack_plan import StackPlan, plan_stack, rng_for
from ichpipe.pipeline.synthetic.phantom.writer import ImageRecord, SeriesInfo, encode_hu, write_image

__all__ = [
    "THIN_SPACING_MM", "WrittenSeries", "axial_series_info", "scan_key", "write_axial_series",
    "write_localizer_series", "write_summary_series", "write_thin_series",
]

THIN_SPACING_MM = 1.25

LabelArray = npt.NDArray[np.uint8]


@dataclass
class WrittenSeries:
    """One series written to a phantom study, and whether (and why) a reader should select it."""

    info: SeriesInfo
    records: list[ImageRecord]
    should_select: bool
    why: str


def scan_key(spec: PhantomSpec, identity: StudyIdentity) -> str:
    """What makes one acquisition's noise differ from another's: a given accession and the time.

    Encoding options (transfer syntax, rescale, padding) do not change it, so
    one seed written in two encodings holds the same HU.
    """
    return f"{spec.accession_number or ''}|{identity.acquisition_datetime.isoformat()}"


def axial_series_info(
    identity: StudyIdentity, *, role: str, number: int, description: str, kernel: Kernel, window: tuple[float, float]
) -> SeriesInfo:
    """The series-level tags of an ORIGINAL\\PRIMARY\\AXIAL CT series of this study (``role``: main, bone, thin)."""
    acquired = identity.acquisition_datetime
    return SeriesInfo(
        role=role,
        series_instance_uid=identity.series_uid(role),
        series_number=number,
        description=description,
        image_type=("ORIGINAL", "PRIMARY", "AXIAL"),
        sop_class_uid=CTImageStorage,
        kernel=kernel.name,
        window=window,
        series_datetime=acquired + timedelta(seconds=30 + number),
        acquisition_datetime=acquired,
    )


def write_axial_series(
    model: PhantomModel,
    identity: StudyIdentity,
    dicom_dir: Path,
    root: Path,
    *,
    plan: StackPlan,
    series: list[tuple[SeriesInfo, Kernel, float, bool]],
    want_labels: bool,
) -> tuple[list[list[ImageRecord]], dict[int, LabelArray], dict[int, npt.NDArray[np.float32]]]:
    """Sample each planned slice once and write it in every series of ``series``.

    ``series`` items are ``(info, kernel, noise_scale, is_main)``; only the
    main series honours the dropped and duplicated slices.

    Returns the records per series, the labels of every planned slice (when
    ``want_labels``) and the main series' HU of the written slices.
    """
    spec = model.spec
    field = scan_field(plan.rows, plan.columns)
    padding = ~field if spec.padding else None
    records: list[list[ImageRecord]] = [[] for _ in series]
    labels_by_index: dict[int, LabelArray] = {}
    main_hu: dict[int, npt.NDArray[np.float32]] = {}
    spacing = (plan.pixel_spacing_mm, plan.pixel_spacing_mm)
    uniform = bool(np.allclose(np.diff(plan.offsets_mm), np.diff(plan.offsets_mm)[0], atol=1e-6))
    offsets = plan.offsets_mm
    for k in range(plan.n_planned):
        points = plan.voxel_centres(k)
        clean, labels = sample_plane(model, points)
        if want_labels:
            labels_by_index[k] = labels
        for s, (info, kernel, noise_scale, is_main) in enumerate(series):
            if is_main and k in plan.dropped:
                continue
            noise_rng = rng_for(spec.seed, "noise", scan_key(spec, identity), info.role, k)
            hu = reconstruct(
                model, clean, points, pixel_spacing_mm=plan.pixel_spacing_mm, kernel=kernel,
                noise_rng=noise_rng, noise_scale=noise_scale,
            )
            if is_main:
                main_hu[k] = hu
            pixels = encode_hu(hu, rescale=spec.rescale, slice_index=k, padding=padding)
            copies = 2 if (is_main and k in plan.duplicated) else 1
            for copy in range(copies):
                instance = k + 1 if copy == 0 else plan.n_planned + copy
                records[s].append(
                    write_image(
                        directory=dicom_dir,
                        root=root,
                        identity=identity,
                        series=info,
                        pixels=pixels,
                        instance_number=instance,
                        sop_uid=identity.sop_uid(info.role, k, copy),
                        transfer_syntax=spec.transfer_syntax,
                        planned_index=k,
                        position=plan.positions[k],
                        orientation=plan.orientation,
                        pixel_spacing=spacing,
                        slice_thickness=float(plan.nominal_thickness_mm[k]),
                        slice_location=float(offsets[k]),
                        tilt_deg=plan.tilt_deg,
                        spacing_between_slices=float(np.diff(offsets)[0]) if uniform else None,
                        photometric=spec.photometric,
                        frame_of_reference=spec.frame_of_reference,
                    )
                )
    return records, labels_by_index, main_hu


def write_thin_series(
    model: PhantomModel, identity: StudyIdentity, dicom_dir: Path, root: Path, info: SeriesInfo
) -> list[ImageRecord]:
    """Write the thin-slice distractor: the same slab every :data:`THIN_SPACING_MM`, noisier as thinner slices are."""
    plan = model.plan
    extent = float(plan.offsets_mm[-1] - plan.offsets_mm[0])
    n = math.floor(extent / THIN_SPACING_MM) + 1
    thin = plan_stack(
        rows=plan.rows,
        columns=plan.columns,
        pixel_spacing_mm=plan.pixel_spacing_mm,
        gaps_mm=np.full(n - 1, THIN_SPACING_MM),
        tilt_deg=plan.tilt_deg,
        centre=model.scan_centre,
    )
    noise = math.sqrt(model.spec.nominal_thickness_mm / THIN_SPACING_MM)
    records, _, _ = write_axial_series(
        model, identity, dicom_dir, root, plan=thin, series=[(info, SOFT_KERNEL, noise, False)], want_labels=False
    )
    return records[0]


def write_localizer_series(model: PhantomModel, identity: StudyIdentity, dicom_dir: Path, root: Path) -> WrittenSeries:
    """Write the localizer distractor (one coronal scout image, ImageType LOCALIZER)."""
    acquired = identity.acquisition_datetime - timedelta(seconds=60)
    info = SeriesInfo(
        role="localizer",
        series_instance_uid=identity.series_uid("localizer"),
        series_number=1,
        description="Surview",
        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
        sop_class_uid=CTImageStorage,
        kernel=None,
        window=(-124.0, 2000.0),
        series_datetime=acquired,
        acquisition_datetime=acquired,
    )
    spec = model.spec
    scout = render_localizer(model, noise_rng=rng_for(spec.seed, "noise", scan_key(spec, identity), "localizer"))
    pixels = encode_hu(scout.hu, rescale="unsigned")
    record = write_image(
        directory=dicom_dir,
        root=root,
        identity=identity,
        series=info,
        pixels=pixels,
        instance_number=1,
        sop_uid=identity.sop_uid("localizer", 0),
        transfer_syntax=model.spec.transfer_syntax,
        planned_index=None,
        position=scout.position,
        orientation=scout.orientation,
        pixel_spacing=(scout.pixel_spacing_mm, scout.pixel_spacing_mm),
        slice_thickness=0.625,
        slice_location=scout.position[1],
    )
    return WrittenSeries(info, [record], False, "a localizer (ImageType LOCALIZER, coronal, one image)")


def write_summary_series(
    model: PhantomModel,
    identity: StudyIdentity,
    dicom_dir: Path,
    root: Path,
    main_hu: dict[int, npt.NDArray[np.float32]],
) -> WrittenSeries:
    """Write the exam-summary distractor: a montage of four main slices as a DERIVED Secondary Capture."""
    written = sorted(main_hu)
    picks = [written[round(q * (len(written) - 1))] for q in (0.3, 0.45, 0.6, 0.75)]
    page = montage([main_hu[k] for k in picks])
    when = identity.acquisition_datetime + timedelta(minutes=3)
    info = SeriesInfo(
        role="summary",
        series_instance_uid=identity.series_uid("summary"),
        series_number=99,
        description="Exam Summary",
        image_type=("DERIVED", "SECONDARY"),
        sop_class_uid=SecondaryCaptureImageStorage,
        kernel=None,
        window=(40.0, 80.0),
        series_datetime=when,
        acquisition_datetime=identity.acquisition_datetime,
    )
    record = write_image(
        directory=dicom_dir,
        root=root,
        identity=identity,
        series=info,
        pixels=encode_hu(page, rescale="unsigned"),
        instance_number=1,
        sop_uid=identity.sop_uid("summary", 0),
        transfer_syntax=model.spec.transfer_syntax,
    )
    why = "an exam-summary secondary capture (DERIVED\\SECONDARY, not CT Image Storage)"
    return WrittenSeries(info, [record], False, why)
