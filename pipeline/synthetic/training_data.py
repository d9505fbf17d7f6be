"""Synthetic labelled head-CT studies for training and evaluation (``ichpipe train data``).

No labelled patient CT exists in this project, so the training data is made:

**Phantom studies** (``--n``). The head of :mod:`ichpipe.pipeline.synthetic.phantom` (anatomy,
skull, ventricles, sulci, partial-volume-free labels) drawn with varied size,
pose, field of view, slice spacing, noise (2-10 HU) and slow shading, with a
mix of lesions per study:

* the phantom's own hematomas (ellipsoid or lobulated, deep or lobar, some
  against the inner table and cut by it, some with a hypodense edema rim);
* hematomas **shaped like the HemSeg-500 expert masks** (real 3D shapes,
  rotated, mirrored and scaled by 0.8-1.25, some against the skull), drawn
  from the masks' ``train`` subset for training data and ``val`` for
  held-out data (``--shapes``); built-in blobs when the masks are absent;
* intraventricular blood (layering in the occipital horns, or a cast);
* calcifications of the pineal gland and choroid plexus (not labelled: hard negatives);
* a few normal heads.

Blood is acute (60-85 HU) in three studies of four, subacute (42-58 HU)
otherwise, with a slow internal variation; with ``--blend-fraction`` that share of the acute
shaped haematomas gets a less dense side of 35-50 HU (the blend sign), counted as haematoma.
Lesions are painted into the noise-free plane, then the phantom's blur, shading and noise are applied.

**Extra-axial studies** (``--n-extra-axial``): subdural, epidural and intraventricular
blood with mass effect, in phantom heads and the real GE head; truth masks per kind
(:mod:`ichpipe.pipeline.synthetic.extra_axial_cases`).

**Real-background studies** (``--n-real``). Lesions inserted into the real
head CTs of ``../shared/data/ct-real/``: the GE HiSpeed head (28 slices,
gantry tilt 18.5 deg, uneven spacing) and the Philips head phantom S2010 (a
skull without brain: its air-filled inside is filled with brain-like tissue
and noise first; its test inserts stay, unlabelled). The real noise is kept
(:func:`ichpipe.pipeline.synthetic.lesion_painting.paint_real_slice`). All studies of
one background are **one patient**, so they land in one split.

Output (``OUT``)::

    manifest.csv                  cases and patient-level split (ichpipe.pipeline.datasets.manifest)
    dataset.json                  options, shape source, per-case truth and lesion list
    cases/<case_id>/image.nii.gz  + mask.nii.gz        (phantom, --format nifti)
    cases/<case_id>/DICOM/        + truth_seg.dcm      (phantom --format dicom, and real backgrounds)

Every case is built under a temporary name and renamed into place. The same
options always give the same files.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ichpipe import __version__
from ichpipe.atomic import atomic_write
from ichpipe.dicom_io.geometry import VolumeGeometry, compute_geometry
from ichpipe.errors import UsageError
from ichpipe.pipeline.datasets.manifest import ManifestEntry, Split, assign_splits, write_manifest
from ichpipe.pipeline.measure.nifti_masks import write_nifti_mask
from ichpipe.pipeline.measure.volume import measure_hematoma
from ichpipe.pipeline.synthetic.case_writing import (
    WrittenCase,
    finish_case,
    write_dicom_with_seg,
    write_nifti_image,
)
from ichpipe.pipeline.synthetic.dicom_writer import SyntheticIdentity, copy_series_with_pixels, write_ct_series
from ichpipe.pipeline.synthetic.extra_axial_cases import LESION_TYPES, extra_axial_case
from ichpipe.pipeline.synthetic.lesion_painting import (
    BLEND_STREAM,
    Calcification,
    ShapedHematoma,
    VentricularBlood,
    draw_calcifications,
    draw_ventricular_blood,
    maybe_blend_side,
    place_in_head,
    side_record,
)
from ichpipe.pipeline.synthetic.lesion_shapes import ShapeBank, shape_bank
from ichpipe.pipeline.synthetic.phantom import PhantomSpec
from ichpipe.pipeline.synthetic.phantom.render import SOFT_KERNEL, build_model, reconstruct, sample_plane, scan_field
from ichpipe.pipeline.synthetic.phantom.stack_plan import rng_for
from ichpipe.pipeline.synthetic.real_backgrounds import RealBackground, load_real_background, render_real_study
from ichpipe.pipeline.synthetic.recipes import (
    F32,
    SHAPE_TRIES,
    BoolArray,
    GeneratorOptions,
    PhantomRecipe,
    draw_recipe,
    draw_shape_scale,
)

__all__ = ["describe", "generate_dataset", "render_phantom_study", "write_nifti_image"]

log = logging.getLogger(__name__)



# ----------------------------------------------------------------------------- phantom studies


def render_phantom_study(
    recipe: PhantomRecipe, bank: ShapeBank
) -> tuple[F32, BoolArray, VolumeGeometry, list[dict[str, Any]]]:
    """Render a phantom study: HU (slices, rows, columns), blood mask, geometry and its lesions.

    The phantom's own hematomas are placed by :mod:`ichpipe.pipeline.synthetic.phantom`; when a
    drawn volume does not fit, it is halved (up to three times) and then dropped.
    """
    rng = np.random.default_rng([recipe.phantom_seed, 0x5E5])
    blend_rng = np.random.default_rng([recipe.phantom_seed, BLEND_STREAM])  # its own: rng draws as before
    model = None
    volume = recipe.volume_ml
    for _ in range(4):
        try:
            model = build_model(recipe.spec(volume_ml=volume))
            break
        except ValueError as exc:
            log.info("%s: phantom hematoma of %.1f mL does not fit (%s); trying half", recipe.case_id, volume, exc)
            volume /= 2.0
    if model is None:
        model = build_model(_without_hematomas(recipe.spec(), 0))
    head, plan = model.head, model.plan
    lesions: list[dict[str, Any]] = [
        {"kind": "phantom", **{k: v for k, v in h.to_dict(head, model.unit_samples).items() if k != "axes_lps"}}
        for h in model.hematomas
    ]
    offsets = plan.offsets_mm
    shaped: list[ShapedHematoma] = []
    for touch in recipe.shaped_touch_skull:
        stage_hu = recipe.blood_hu + float(rng.uniform(-5.0, 5.0))
        placed = None
        for _ in range(SHAPE_TRIES):
            shape = bank.draw(rng)
            placed = place_in_head(
                shape, head=head, rng=rng, hu=stage_hu, scale=draw_shape_scale(rng, shape.volume_ml),
                touch_skull=touch, normal=plan.normal, slab_mm=(float(offsets[0]), float(offsets[-1])),
            )
            if placed is not None:
                break
            log.info("%s: no place found for lesion shape %s; drawing another", recipe.case_id, shape.name)
        if placed is None:
            continue
        placed = maybe_blend_side(placed, blend_rng, acute=recipe.stage == "acute", share=recipe.blend_fraction)
        shaped.append(placed)
        lesions.append(
            {"kind": "shaped", "shape": shape.name, "touches_skull": touch, "hu": round(placed.hu, 2),
             "scale": round(placed.scale, 4), "model_volume_ml": round(placed.volume_ml, 3), **side_record(placed)}
        )
    ivh: VentricularBlood | None = None
    if recipe.ventricular_blood:
        ivh = draw_ventricular_blood(rng, head, recipe.blood_hu + float(rng.uniform(-8.0, 2.0)))
        lesions.append({"kind": "intraventricular", "ventricles": list(ivh.ventricles), "level": round(ivh.level, 3),
                        "hu": round(ivh.hu, 2)})
    calcs: tuple[Calcification, ...] = draw_calcifications(rng, head) if recipe.calcifications else ()
    field = scan_field(plan.rows, plan.columns)
    images: list[F32] = []
    masks: list[BoolArray] = []
    for k in range(plan.n_planned):
        points = plan.voxel_centres(k)
        clean, labels = sample_plane(model, points)
        blood = labels > 0
        intracranial: BoolArray | None = None
        for calc in calcs:
            spot = calc.contains(points) & ~blood
            clean[spot] = np.float32(calc.hu)
        if ivh is not None:
            inside = ivh.contains(points, head) & ~blood
            clean[inside] = np.float32(ivh.hu)
            blood |= inside
        for lesion in shaped:
            inside = lesion.contains(points)
            if inside.any():
                if intracranial is None:
                    intracranial = head.intracranial(points)
                inside &= intracranial
                clean[inside] = lesion.hu_at(points[inside])
                blood |= inside
        image = reconstruct(
            model, clean, points, pixel_spacing_mm=plan.pixel_spacing_mm, kernel=SOFT_KERNEL,
            noise_rng=rng_for(recipe.phantom_seed, "train-data-noise", k),
        )
        image[~field] = np.float32(-1024.0)
        images.append(image)
        masks.append(blood)
    geometry = compute_geometry(
        orientation=plan.orientation,
        positions=plan.positions,
        pixel_spacing=(plan.pixel_spacing_mm, plan.pixel_spacing_mm),
        rows=plan.rows,
        columns=plan.columns,
        header_tilt_deg=plan.tilt_deg,
    )
    return np.stack(images), np.stack(masks), geometry, lesions


def _without_hematomas(spec: PhantomSpec, n_hematomas: int) -> PhantomSpec:
    """``spec`` with another number of the phantom's own hematomas (0 drops the skull contact too)."""
    return replace(spec, n_hematomas=n_hematomas, touch_skull=spec.touch_skull and n_hematomas > 0,
                   volume_ml=spec.volume_ml if n_hematomas else None)




def _phantom_case(options: GeneratorOptions, index: int, bank: ShapeBank, cases: Path) -> WrittenCase:
    recipe = draw_recipe(options, index)
    hu, mask, geometry, lesions = render_phantom_study(recipe, bank)
    final = cases / recipe.case_id
    tmp = Path(tempfile.mkdtemp(prefix=f".{recipe.case_id}.", dir=cases))
    try:
        if options.format == "nifti" and abs(geometry.gantry_tilt_deg) < 0.01:
            write_nifti_image(tmp / "image.nii.gz", hu, geometry)
            write_nifti_mask(tmp / "mask.nii.gz", mask, geometry, description="synthetic hematoma (ichpipe)")
            fmt, image, label = "nifti", "image.nii.gz", "mask.nii.gz"
        else:
            identity = SyntheticIdentity(key=f"{options.seed}/{recipe.case_id}", patient_id=recipe.patient_id,
                                         acquired=datetime(2026, 1, 1, 8) + timedelta(minutes=index))
            write_ct_series(
                tmp / "DICOM", hu, positions=geometry.positions,
                orientation=(*geometry.row_direction, *geometry.column_direction),
                pixel_spacing_mm=geometry.pixel_spacing_mm, thickness_mm=list(geometry.slice_thickness_mm),
                identity=identity, gantry_tilt_deg=recipe.gantry_tilt_deg,
            )
            geometry = write_dicom_with_seg(tmp, mask).geometry
            fmt, image, label = "dicom", "DICOM", "truth_seg.dcm"
        finish_case(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    truth = measure_hematoma(mask, geometry)
    kinds = sorted({str(lesion["kind"]) for lesion in lesions}) or ["normal"]
    entry = ManifestEntry(
        case_id=recipe.case_id, patient_id=recipe.patient_id, split="train", format=fmt,  # type: ignore[arg-type]
        image=final / image, mask=final / label, source="phantom:" + "+".join(kinds),
    )
    record = {
        "case_id": recipe.case_id, "kind": "phantom", "recipe": asdict(recipe), "lesions": lesions,
        "volume_ml": round(truth.volume_ml, 4), "abc2_ml": round(truth.abc2_ml, 4),
        "n_slices_with_blood": int(np.count_nonzero(mask.any(axis=(1, 2)))),
    }
    return WrittenCase(entry, record)


def _real_case(
    options: GeneratorOptions, index: int, background: RealBackground, bank: ShapeBank, cases: Path
) -> WrittenCase:
    rng = np.random.default_rng([options.seed, index, 0x4EA1])
    case_id = f"real-{background.name}-{options.seed}-{index:03d}"
    hu, mask, lesions = render_real_study(background, rng, bank, case_id,
                                          subacute_fraction=options.subacute_fraction,
                                          blend_fraction=options.blend_fraction,
                                          blend_rng=np.random.default_rng([options.seed, index, BLEND_STREAM]),
                                          touch_skull_fraction=options.touch_skull_fraction)
    final = cases / case_id
    tmp = Path(tempfile.mkdtemp(prefix=f".{case_id}.", dir=cases))
    try:
        identity = SyntheticIdentity(key=f"{options.seed}/{case_id}", patient_id=background.patient_id,
                                     acquired=datetime(2026, 2, 1, 8) + timedelta(minutes=index))
        copy_series_with_pixels(
            background.volume, hu, tmp / "DICOM", identity=identity,
            description=f"Real head CT + synthetic hematoma ({background.name})",
        )
        volume = write_dicom_with_seg(tmp, mask)
        finish_case(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    truth = measure_hematoma(mask, volume.geometry)
    entry = ManifestEntry(
        case_id=case_id, patient_id=background.patient_id, split="train", format="dicom",
        image=final / "DICOM", mask=final / "truth_seg.dcm", source=f"ct-real-{background.name}:shaped",
    )
    record = {
        "case_id": case_id, "kind": f"ct-real-{background.name}", "background": background.description,
        "lesions": lesions, "volume_ml": round(truth.volume_ml, 4), "abc2_ml": round(truth.abc2_ml, 4),
        "n_slices_with_blood": int(np.count_nonzero(mask.any(axis=(1, 2)))),
    }
    return WrittenCase(entry, record)


def generate_dataset(
    out: Path,
    options: GeneratorOptions,
    *,
    overwrite: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> Path:
    """Write the studies and ``manifest.csv`` of a synthetic dataset; return the manifest's path.

    Parameters
    ----------
    out:
        Output folder (created). Keep it out of git (``generated/`` is ignored).
    options:
        What to make.
    overwrite:
        Replace a dataset written there before (a folder holding ``manifest.csv``).
    progress:
        Optional callback ``progress(done, total, case_id)``.

    Raises
    ------
    UsageError
        If ``out`` holds a manifest and ``overwrite`` is false, or holds other files.
    OutputError
        If a file cannot be written.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not (out / "manifest.csv").is_file():
            raise UsageError(f"Output folder {out} holds files that are not an ichpipe dataset; choose another.")
        if not overwrite:
            raise UsageError(f"Output folder {out} already holds a dataset; pass --overwrite to replace it.")
    cases = out / "cases"
    cases.mkdir(parents=True, exist_ok=True)
    bank = shape_bank(options.shapes, hemseg_dir=options.hemseg_dir)
    backgrounds = [
        bg for bg in (
            load_real_background(name, ct_real_dir=options.ct_real_dir) for name in options.real_backgrounds
        ) if bg is not None
    ] if options.n_real else []
    if options.n_real and not backgrounds:
        log.warning("no real background found: the %d real-background studies are not made", options.n_real)
    xa_background = None
    if options.n_extra_axial and options.extra_axial_real_fraction > 0:
        xa_background = next((bg for bg in backgrounds if bg.name == "ge"), None) or load_real_background(
            "ge", ct_real_dir=options.ct_real_dir
        )
        if xa_background is None:
            log.warning("the real GE head is absent: every extra-axial study is painted into a phantom head")
    total = options.n + (options.n_real if backgrounds else 0) + options.n_extra_axial
    written: list[WrittenCase] = []
    for index in range(options.n):
        written.append(_phantom_case(options, index, bank, cases))
        if progress:
            progress(len(written), total, written[-1].entry.case_id)
    if backgrounds:
        for index in range(options.n_real):
            written.append(_real_case(options, index, backgrounds[index % len(backgrounds)], bank, cases))
            if progress:
                progress(len(written), total, written[-1].entry.case_id)
    for index in range(options.n_extra_axial):
        on_real = xa_background is not None and bool(
            np.random.default_rng([options.seed, index, 0xB6]).uniform() < options.extra_axial_real_fraction
        )
        written.append(extra_axial_case(options, index, bank, cases, xa_background if on_real else None))
        if progress:
            progress(len(written), total, written[-1].entry.case_id)
    patients = [w.entry.patient_id for w in written]
    splits = assign_splits(
        patients, val_fraction=options.val_fraction, test_fraction=options.test_fraction, seed=options.seed
    )
    if options.real_split is not None:
        for bg in [*backgrounds, *([xa_background] if xa_background is not None else [])]:
            if bg.patient_id in splits:
                splits[bg.patient_id] = options.real_split
    entries = [_with_split(_in_blend_group(w, options.blend_group), splits[w.entry.patient_id]) for w in written]
    manifest = write_manifest(out / "manifest.csv", entries)
    summary = {
        "generator": "ichpipe train data",
        "ichpipe_version": __version__,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
        "shape_source": bank.description,
        "real_backgrounds": [bg.description for bg in backgrounds],
        "counts": {
            split: sum(1 for e in entries if e.split == split) for split in ("train", "val", "test")
        },
        "description": describe(options, bank, backgrounds, entries),
        "lesion_types": list(LESION_TYPES),
        "cases": [{**w.record, "split": splits[w.entry.patient_id]} for w in written],
    }
    text = json.dumps(summary, indent=1, default=str).encode("utf-8")
    atomic_write(out / "dataset.json", lambda fh: fh.write(text), what="dataset summary")
    return manifest


def _in_blend_group(case: WrittenCase, group: str | None) -> ManifestEntry:
    """``case``'s entry, in sampling group ``group`` when one of its lesions has a blend side."""
    sided = any("blend_side_hu" in lesion for lesion in case.record.get("lesions") or ())
    if group is None or not sided:
        return case.entry
    return replace(case.entry, extra={**case.entry.extra, "sampling_group": group})


def _with_split(entry: ManifestEntry, split: Split) -> ManifestEntry:
    return replace(entry, split=split)


def describe(
    options: GeneratorOptions, bank: ShapeBank, backgrounds: list[RealBackground], entries: list[ManifestEntry]
) -> str:
    """One paragraph saying what the dataset is (for checkpoints' ``training_data`` and model cards)."""
    n_phantom = sum(1 for e in entries if e.source.startswith("phantom"))
    n_extra = sum(1 for e in entries if e.source.startswith("extra-axial"))
    n_real = len(entries) - n_phantom - n_extra
    text = (
        f"Synthetic head CT from ichpipe train data (seed {options.seed}): {n_phantom} phantom studies"
        f" ({options.size}x{options.size}, {options.format}) with phantom hematomas, lesions shaped like"
        f" {bank.description}, intraventricular blood and calcifications"
    )
    if n_extra:
        n_ge = sum(1 for e in entries if e.source.startswith("extra-axial-"))
        text += (
            f"; {n_extra} studies with extra-axial (subdural {', '.join(options.subdural_stages)}; epidural) or"
            f" intraventricular blood and mass effect ({n_ge} in the real GE head; lesion mix"
            f" {', '.join(options.lesion_mix)})"
        )
    if n_real:
        sources = "; ".join(b.description for b in backgrounds)
        text += f"; {n_real} studies with shaped lesions inserted into real CT ({sources})"
    return text + ". Not patient data."
