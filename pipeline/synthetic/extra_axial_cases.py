"""Training studies with extra-axial and intraventricular blood (``ichpipe train data --n-extra-axial N``).

Each study is a head -- a phantom head of :mod:`ichpipe.pipeline.synthetic.phantom` (share
``1 - extra_axial_real_fraction``) or the real GE head of ``../shared/data/ct-real`` -- with
one lesion of a kind drawn from ``lesion_mix`` and, in one study of five, a second lesion of
another kind (:func:`ichpipe.pipeline.synthetic.extra_axial.random_extra_axial`):

* **subdural** crescents along the inner table (stages by ``subdural_stages``: acute 50-80 HU,
  subacute 30-50, chronic 0-25, mixed with a dependent acute layer), 3-20 mm thick, with mass
  effect (the brain, ventricles included, pushed away; midline shift 0.1-0.2 mm per mL);
* **epidural** biconvex lenses, 60-90 HU, with mass effect;
* **intraventricular** blood: a cast of the ventricles, or a dependent layer with a flat level.

One phantom study in four also holds a HemSeg-shaped intraparenchymal hematoma
(:mod:`ichpipe.pipeline.synthetic.training_data`), moved by the mass effect like the brain.
Phantom heads keep their unlabelled calcifications (hard negatives).

The truth carries the type: beside the union mask (``mask.nii.gz`` or ``truth_seg.dcm``, what
training reads) every kind present has its own ``mask_<kind>.nii.gz`` (``intraparenchymal``,
``subdural``, ``epidural``, ``intraventricular``), and ``dataset.json`` lists each lesion with
its kind, stage, HU, volume and the mass effect. The manifest's ``source`` is
``extra-axial:<kinds>`` (phantom) or ``extra-axial-ge:<kinds>`` (sampling group ``extra-axial``).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ichpipe.dicom_io.geometry import VolumeGeometry
from ichpipe.pipeline.datasets.manifest import ManifestEntry
from ichpipe.pipeline.measure.nifti_masks import write_nifti_mask
from ichpipe.pipeline.measure.volume import measure_hematoma
from ichpipe.pipeline.segment.intracranial import intracranial_mask
from ichpipe.pipeline.synthetic.case_writing import (
    WrittenCase,
    finish_case,
    write_dicom_with_seg,
    write_nifti_image,
)
from ichpipe.pipeline.synthetic.dicom_writer import SyntheticIdentity, copy_series_with_pixels
from ichpipe.pipeline.synthetic.extra_axial import random_extra_axial
from ichpipe.pipeline.synthetic.lesion_common import F32, BoolArray, InsertedLesion, MassEffect, Spacing
from ichpipe.pipeline.synthetic.lesion_shapes import ShapeBank
from ichpipe.pipeline.synthetic.real_backgrounds import GENERATOR_ANATOMY, RealBackground
from ichpipe.pipeline.synthetic.recipes import EXTRA_AXIAL_KINDS, GeneratorOptions, draw_recipe, parse_shares

__all__ = ["LESION_TYPES", "extra_axial_case", "paint_extra_axial"]

log = logging.getLogger(__name__)

#: Kinds a truth mask can carry (``mask_<kind>.nii.gz``).
LESION_TYPES: tuple[str, ...] = ("intraparenchymal", "subdural", "epidural", "intraventricular")

#: Offset of the phantom indices of extra-axial studies, so their heads differ from the phantom studies'.
_INDEX_OFFSET = 100_000


def _spacing(geometry: VolumeGeometry) -> Spacing:
    return (float(geometry.slice_spacing_mm), float(geometry.pixel_spacing_mm[0]), float(geometry.pixel_spacing_mm[1]))


def paint_extra_axial(
    hu: F32,
    geometry: VolumeGeometry,
    rng: np.random.Generator,
    *,
    kinds: list[str],
    subdural_stages: tuple[float, float, float, float],
    masks: dict[str, BoolArray] | None = None,
) -> tuple[F32, dict[str, BoolArray], list[dict[str, Any]]]:
    """Paint lesions of ``kinds`` in order into ``hu``; return the volume, a mask per kind and their records.

    Earlier masks (``masks``, e.g. an intraparenchymal hematoma) move with each mass effect. A
    kind that cannot be placed (no ventricle found for intraventricular blood) is skipped with a
    log line.

    Raises
    ------
    ValueError
        If the volume has no intracranial space or a kind is unknown.
    """
    unknown = [k for k in kinds if k not in EXTRA_AXIAL_KINDS]
    if unknown:
        raise ValueError(f"Argument 'kinds' holds {', '.join(unknown)}; known: {', '.join(EXTRA_AXIAL_KINDS)}.")
    spacing = _spacing(geometry)
    inside = intracranial_mask(hu, geometry, GENERATOR_ANATOMY)
    if not inside.any():
        raise ValueError("Argument 'hu' has no intracranial space (no closed skull found).")
    out = np.asarray(hu, dtype=np.float32)
    by_kind: dict[str, BoolArray] = {k: v.copy() for k, v in (masks or {}).items()}
    records: list[dict[str, Any]] = []
    for kind in kinds:
        names = list(by_kind)
        try:
            out, lesion, effect, moved = random_extra_axial(
                out, inside, spacing, rng, kind=kind, masks=tuple(by_kind[n] for n in names),  # type: ignore[arg-type]
                subdural_stages=subdural_stages,
            )
        except ValueError as exc:
            log.info("%s blood not painted: %s", kind, exc)
            continue
        by_kind = dict(zip(names, moved, strict=True))
        if not lesion.mask.any():
            continue
        by_kind[kind] = by_kind.get(kind, np.zeros(out.shape, dtype=bool)) | lesion.mask
        records.append(_record(lesion, effect))
    return out, by_kind, records


def _record(lesion: InsertedLesion, effect: MassEffect | None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "kind": lesion.kind, "stage": lesion.stage, "hu": round(lesion.hu, 2),
        "model_volume_ml": round(lesion.volume_ml, 3), "max_thickness_mm": round(lesion.max_thickness_mm, 2),
        "n_slices": lesion.n_slices,
    }
    if effect is not None:
        record["midline_shift_mm"] = round(effect.midline_shift_mm, 2)
    return record


def _draw_kinds(options: GeneratorOptions, rng: np.random.Generator) -> list[str]:
    mix = parse_shares(options.lesion_mix, EXTRA_AXIAL_KINDS, name="lesion_mix")
    names = list(mix)
    first = str(rng.choice(names, p=[mix[k] for k in names]))
    kinds = [first]
    others = [k for k in names if k != first and mix[k] > 0]
    if others and rng.uniform() < 0.2:
        kinds.append(str(rng.choice(others)))
    return kinds


def _stages(options: GeneratorOptions) -> tuple[float, float, float, float]:
    shares = parse_shares(options.subdural_stages, ("acute", "subacute", "chronic", "mixed"), name="subdural_stages")
    return (shares["acute"], shares["subacute"], shares["chronic"], shares["mixed"])


def extra_axial_case(
    options: GeneratorOptions,
    index: int,
    bank: ShapeBank,
    cases: Path,
    background: RealBackground | None,
) -> WrittenCase:
    """Make and write extra-axial study ``index`` (on ``background`` when given, else a phantom head)."""
    from ichpipe.pipeline.synthetic.training_data import render_phantom_study  # the phantom renderer

    rng = np.random.default_rng([options.seed, index, 0xE8A])
    kinds = _draw_kinds(options, rng)
    identity_time = datetime(2026, 3, 1, 8) + timedelta(minutes=index)
    if background is None:
        recipe = draw_recipe(options, _INDEX_OFFSET + index)
        with_iph = bool(rng.uniform() < 0.25)
        case_id = f"xa-{options.seed}-{index:04d}"
        recipe = replace(
            recipe, case_id=case_id, patient_id=case_id, n_hematomas=0, touch_skull=False, ventricular_blood=False,
            n_shaped=int(with_iph), shaped_touch_skull=(False,) if with_iph else (), gantry_tilt_deg=0.0,
        )
        hu, iph, geometry, phantom_lesions = render_phantom_study(recipe, bank)
        start = {"intraparenchymal": iph} if iph.any() else {}
        lesions = [{**les, "kind": "intraparenchymal"} for les in phantom_lesions if les.get("kind") == "shaped"]
        source_kind, patient_id = "extra-axial", case_id
    else:
        case_id = f"xa-{background.name}-{options.seed}-{index:03d}"
        hu, geometry, start, lesions = background.volume.hu.copy(), background.volume.geometry, {}, []
        source_kind, patient_id = f"extra-axial-{background.name}", background.patient_id
    hu, by_kind, painted = paint_extra_axial(hu, geometry, rng, kinds=kinds, subdural_stages=_stages(options),
                                             masks=start)
    lesions += painted
    union = np.zeros(hu.shape, dtype=bool)
    for mask in by_kind.values():
        union |= mask
    final = cases / case_id
    tmp = Path(tempfile.mkdtemp(prefix=f".{case_id}.", dir=cases))
    try:
        if background is None:
            write_nifti_image(tmp / "image.nii.gz", hu, geometry)
            write_nifti_mask(tmp / "mask.nii.gz", union, geometry, description="synthetic blood, all kinds (ichpipe)")
            fmt, image, label = "nifti", "image.nii.gz", "mask.nii.gz"
        else:
            identity = SyntheticIdentity(key=f"{options.seed}/{case_id}", patient_id=patient_id, acquired=identity_time)
            copy_series_with_pixels(background.volume, hu, tmp / "DICOM", identity=identity,
                                    description=f"Real head CT + synthetic extra-axial blood ({background.name})")
            geometry = write_dicom_with_seg(tmp, union).geometry
            fmt, image, label = "dicom", "DICOM", "truth_seg.dcm"
        for kind, mask in by_kind.items():
            write_nifti_mask(tmp / f"mask_{kind}.nii.gz", mask, geometry, description=f"synthetic {kind} blood")
        finish_case(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    truth = measure_hematoma(union, geometry)
    kinds_present = sorted(by_kind) or ["normal"]
    entry = ManifestEntry(
        case_id=case_id, patient_id=patient_id, split="train", format=fmt,  # type: ignore[arg-type]
        image=final / image, mask=final / label, source=f"{source_kind}:" + "+".join(kinds_present),
    )
    record = {
        "case_id": case_id, "kind": source_kind, "lesions": lesions,
        "volume_ml": round(truth.volume_ml, 4), "abc2_ml": round(truth.abc2_ml, 4),
        "volume_ml_by_kind": {k: round(measure_hematoma(m, geometry).volume_ml, 4) for k, m in by_kind.items()},
        "n_slices_with_blood": int(np.count_nonzero(union.any(axis=(1, 2)))),
    }
    return WrittenCase(entry, record)
