"""Synthetic labelled head-CT studies for training and evaluation (``ichpipe train data``).

No labelled patient CT exists in this project, so the training data is made:

**Phantom studies** (``--n``). The head of :mod:`ichpipe.pipeline.phantom` (anatomy,
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
otherwise, with a slow internal variation. Lesions are painted into the
noise-free plane, then the phantom's blur, shading and noise are applied.

**Real-background studies** (``--n-real``). Lesions inserted into the real
head CTs of ``../shared/data/ct-real/``: the GE HiSpeed head (28 slices,
gantry tilt 18.5 deg, uneven spacing) and the Philips head phantom S2010 (a
skull without brain: its air-filled inside is filled with brain-like tissue
and noise first; its test inserts stay, unlabelled). The real noise is kept
(:func:`ichpipe.pipeline.training.synthetic_lesions.paint_real_slice`). All studies of
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
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import nibabel as nib
import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe import __version__
from ichpipe.atomic import atomic_write
from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.dicom_io.geometry import VolumeGeometry, compute_geometry
from ichpipe.dicom_io.seg import write_seg
from ichpipe.errors import DicomInputError, OutputError, UsageError
from ichpipe.pipeline.datasets.dicom_seg import read_dicom_series
from ichpipe.pipeline.datasets.manifest import ManifestEntry, Split, assign_splits, write_manifest
from ichpipe.pipeline.measure.nifti_masks import LPS_FROM_RAS, write_nifti_mask
from ichpipe.pipeline.measure.volume import measure_hematoma
from ichpipe.pipeline.phantom import PhantomSpec
from ichpipe.pipeline.phantom.geometry import rng_for
from ichpipe.pipeline.phantom.render import SOFT_KERNEL, build_model, reconstruct, sample_plane, scan_field
from ichpipe.pipeline.segment.intracranial import intracranial_mask
from ichpipe.pipeline.training.dicom_writer import SyntheticIdentity, copy_series_with_pixels, write_ct_series
from ichpipe.pipeline.training.lesion_shapes import ShapeBank, ShapeSubset, shape_bank
from ichpipe.pipeline.training.synthetic_lesions import (
    Calcification,
    ShapedHematoma,
    VentricularBlood,
    draw_calcifications,
    draw_ventricular_blood,
    paint_real_slice,
    place_in_head,
    place_in_mask,
    slice_points,
)

__all__ = [
    "DEFAULT_CT_REAL_DIR",
    "REAL_BACKGROUNDS",
    "GeneratorOptions",
    "PhantomRecipe",
    "RealBackground",
    "describe",
    "draw_recipe",
    "generate_dataset",
    "load_real_background",
    "render_phantom_study",
    "render_real_study",
    "write_nifti_image",
]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]
CaseFormat = Literal["nifti", "dicom"]

#: Where the real head CTs are expected (``../shared/data/ct-real``).
DEFAULT_CT_REAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "ct-real"

#: Real backgrounds: name -> (folder under ct-real, patient ID, whether the skull is empty and must be filled).
REAL_BACKGROUNDS: dict[str, tuple[str, str, bool]] = {
    "ge": ("ge-hispeed-head-tilt", "ct-real-ge", False),
    "philips": ("philips-ingenuity-head-phantom", "ct-real-philips", True),
}

#: Shapes tried for one lesion before it is left out (a large shape may not fit a small head or slab).
_SHAPE_TRIES = 5

#: The demo's phantom seed (``make demo``); training studies never use it.
DEMO_SEED = 20261121


@dataclass(frozen=True)
class GeneratorOptions:
    """What ``ichpipe train data`` makes.

    Parameters
    ----------
    n:
        Number of phantom studies.
    n_real:
        Number of studies on real backgrounds (spread over ``real_backgrounds``).
    seed:
        Seed of everything; studies of another seed are other patients.
    size:
        Matrix of phantom studies (rows = columns); 512 as clinical CT.
    format:
        Phantom studies as ``nifti`` pairs (compact, fast) or ``dicom`` (a CT
        series and a DICOM SEG, read as ``run`` reads a study).
    shapes:
        HemSeg subset the lesion shapes come from: ``train`` (training data),
        ``val`` (held-out data) or ``builtin``.
    val_fraction, test_fraction:
        Patient-level split fractions.
    real_backgrounds:
        Which real backgrounds to use (``ge``, ``philips``).
    real_split:
        Split of the real-background patients; ``None`` draws it like any patient.
    hemseg_dir, ct_real_dir:
        Where the shared data is (default ``../shared/data``).
    """

    n: int = 100
    n_real: int = 0
    seed: int = 0
    size: int = 512
    format: CaseFormat = "nifti"
    shapes: ShapeSubset = "train"
    val_fraction: float = 0.1
    test_fraction: float = 0.0
    real_backgrounds: tuple[str, ...] = ("ge", "philips")
    real_split: Split | None = None
    hemseg_dir: Path | None = None
    ct_real_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.n < 0 or self.n_real < 0 or self.n + self.n_real < 1:
            raise ValueError(
                f"Arguments 'n' and 'n_real' must not be negative and must add up to at least 1; got {self.n},"
                f" {self.n_real}."
            )
        if self.seed < 0:
            raise ValueError(f"Argument 'seed' must not be negative; got {self.seed}.")
        if not 64 <= self.size <= 1024:
            raise ValueError(f"Argument 'size' must be between 64 and 1024; got {self.size}.")
        if self.format not in ("nifti", "dicom"):
            raise ValueError(f"Argument 'format' must be 'nifti' or 'dicom'; got {self.format!r}.")
        unknown = [b for b in self.real_backgrounds if b not in REAL_BACKGROUNDS]
        if unknown:
            raise ValueError(
                f"Argument 'real_backgrounds' names {', '.join(unknown)}; known: {', '.join(REAL_BACKGROUNDS)}."
            )
        if self.real_split not in (None, "train", "val", "test"):
            raise ValueError(f"Argument 'real_split' must be train, val, test or None; got {self.real_split!r}.")


# ----------------------------------------------------------------------------- phantom studies


@dataclass(frozen=True)
class PhantomRecipe:
    """Everything drawn for one phantom study (stored in ``dataset.json``)."""

    case_id: str
    patient_id: str
    phantom_seed: int
    rows: int
    field_of_view_mm: float
    n_slices: int
    slice_spacing_mm: float
    gantry_tilt_deg: float
    noise_hu: float
    shading_hu: float
    stage: str
    blood_hu: float
    n_hematomas: int
    shape: str
    touch_skull: bool
    volume_ml: float
    edema_mm: float
    n_shaped: int
    shaped_touch_skull: tuple[bool, ...]
    ventricular_blood: bool
    calcifications: bool

    def spec(self, *, volume_ml: float | None = None) -> PhantomSpec:
        """The phantom's options (its own hematomas only; the other lesions are painted after)."""
        return PhantomSpec(
            seed=self.phantom_seed,
            rows=self.rows,
            columns=self.rows,
            n_slices=self.n_slices,
            slice_spacing_mm=self.slice_spacing_mm,
            field_of_view_mm=self.field_of_view_mm,
            gantry_tilt_deg=self.gantry_tilt_deg,
            n_hematomas=self.n_hematomas,
            shape=self.shape,  # type: ignore[arg-type]  # drawn from the phantom's names
            touch_skull=self.touch_skull and self.n_hematomas > 0,
            volume_ml=(volume_ml or self.volume_ml) if self.n_hematomas else None,
            hematoma_hu=self.blood_hu,
            edema_mm=self.edema_mm,
            noise_hu=self.noise_hu,
            shading_hu=self.shading_hu,
        )


def _blood_hu(rng: np.random.Generator) -> tuple[str, float]:
    if rng.uniform() < 0.75:
        return "acute", float(rng.uniform(60.0, 85.0))
    return "subacute", float(rng.uniform(42.0, 58.0))


def draw_recipe(options: GeneratorOptions, index: int) -> PhantomRecipe:
    """Draw phantom study ``index`` of a dataset (see the module docstring for the mix)."""
    rng = np.random.default_rng([options.seed, index, 0x7A1])
    phantom_seed = int(rng.integers(1, 2**62))
    if phantom_seed == DEMO_SEED:
        phantom_seed += 1
    spacing = float(rng.choice([4.0, 5.0, 5.0, 5.0, 6.0]))
    n_slices = int(np.clip(round(rng.uniform(130.0, 170.0) / spacing), 20, 48))
    tilt = float(rng.choice([-1.0, 1.0]) * rng.uniform(5.0, 20.0)) if (
        options.format == "dicom" and rng.uniform() < 0.3
    ) else 0.0
    stage, hu = _blood_hu(rng)
    normal_head = rng.uniform() < 0.08
    n_hem = 0 if normal_head else int(rng.choice([0, 1, 1, 2], p=[0.4, 0.25, 0.25, 0.1]))
    n_shaped = 0 if normal_head else int(rng.choice([0, 1, 2], p=[0.3, 0.55, 0.15]))
    ivh = (not normal_head) and rng.uniform() < 0.2
    if not normal_head and n_hem == 0 and n_shaped == 0 and not ivh:
        n_hem = 1
    return PhantomRecipe(
        case_id=f"synth-{options.seed}-{index:04d}",
        patient_id=f"synth-{options.seed}-{index:04d}",
        phantom_seed=phantom_seed,
        rows=options.size,
        field_of_view_mm=float(rng.uniform(200.0, 250.0)),
        n_slices=n_slices,
        slice_spacing_mm=spacing,
        gantry_tilt_deg=tilt,
        noise_hu=float(rng.uniform(2.0, 10.0)),
        shading_hu=float(rng.uniform(0.0, 12.0)),
        stage=stage,
        blood_hu=hu,
        n_hematomas=n_hem,
        shape=str(rng.choice(["ellipsoid", "irregular"])),
        touch_skull=bool(rng.uniform() < 0.3),
        volume_ml=float(math.exp(rng.uniform(math.log(2.0), math.log(60.0)))),
        edema_mm=float(rng.uniform(1.0, 4.0)) if rng.uniform() < (0.6 if stage == "subacute" else 0.2) else 0.0,
        n_shaped=n_shaped,
        shaped_touch_skull=tuple(bool(rng.uniform() < 0.3) for _ in range(n_shaped)),
        ventricular_blood=bool(ivh),
        calcifications=bool(rng.uniform() < 0.4),
    )


def _shape_scale(rng: np.random.Generator, volume_ml: float, max_ml: float = 80.0) -> float:
    scale = float(rng.uniform(0.8, 1.25))
    return min(scale, (max_ml / max(volume_ml, 1e-6)) ** (1.0 / 3.0))


def render_phantom_study(
    recipe: PhantomRecipe, bank: ShapeBank
) -> tuple[F32, BoolArray, VolumeGeometry, list[dict[str, Any]]]:
    """Render a phantom study: HU (slices, rows, columns), blood mask, geometry and its lesions.

    The phantom's own hematomas are placed by :mod:`ichpipe.pipeline.phantom`; when a
    drawn volume does not fit, it is halved (up to three times) and then dropped.
    """
    rng = np.random.default_rng([recipe.phantom_seed, 0x5E5])
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
        for _ in range(_SHAPE_TRIES):
            shape = bank.draw(rng)
            placed = place_in_head(
                shape, head=head, rng=rng, hu=stage_hu, scale=_shape_scale(rng, shape.volume_ml),
                touch_skull=touch, normal=plan.normal, slab_mm=(float(offsets[0]), float(offsets[-1])),
            )
            if placed is not None:
                break
            log.info("%s: no place found for lesion shape %s; drawing another", recipe.case_id, shape.name)
        if placed is None:
            continue
        shaped.append(placed)
        lesions.append(
            {"kind": "shaped", "shape": shape.name, "touches_skull": touch, "hu": round(placed.hu, 2),
             "scale": round(placed.scale, 4), "model_volume_ml": round(placed.volume_ml, 3)}
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


# ----------------------------------------------------------------------------- real backgrounds


@dataclass
class RealBackground:
    """A real head CT to insert lesions into.

    Attributes
    ----------
    name, patient_id:
        ``ge`` / ``philips`` and the patient all its studies share.
    volume:
        The assembled source series.
    intracranial:
        Where lesions may go.
    fill:
        Voxels replaced by brain-like tissue before insertion (an empty skull), or ``None``.
    """

    name: str
    patient_id: str
    volume: CTVolume
    intracranial: BoolArray
    fill: BoolArray | None = None
    description: str = ""


def _empty_skull(hu: F32, geometry: VolumeGeometry, *, bone_hu: float = 100.0) -> BoolArray:
    """Air inside a skull: per slice, the hole-filled closed bone minus bone, below -300 HU.

    The Philips phantom's skull is a bone-equivalent plastic partly below the
    usual 300 HU bone threshold, hence ``bone_hu`` = 100.
    """
    bone = hu >= bone_hu
    radius = max(1, round(3.0 / min(geometry.pixel_spacing_mm)))
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    disk = (x * x + y * y) <= radius * radius
    out = np.zeros(hu.shape, dtype=bool)
    for k in range(hu.shape[0]):
        closed = ndimage.binary_closing(bone[k], structure=disk)
        filled = ndimage.binary_fill_holes(closed)
        out[k] = filled & ~closed & (hu[k] < -300.0)
    return out


def _brain_fill(rng: np.random.Generator, shape: tuple[int, ...]) -> F32:
    base = float(rng.uniform(24.0, 34.0))
    slow = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), (0, 25, 25)) * np.float32(150.0)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), (0, 0.6, 0.6))
    return (base + slow + np.float32(rng.uniform(6.0, 10.0)) * noise).astype(np.float32)


def load_real_background(name: str, *, ct_real_dir: Path | None = None) -> RealBackground | None:
    """Read a real background, or ``None`` (with a warning) when its folder is absent.

    Raises
    ------
    ValueError
        If ``name`` is not a known background.
    DicomInputError
        If the folder exists but cannot be read as a study.
    """
    if name not in REAL_BACKGROUNDS:
        raise ValueError(f"Argument 'name' must be one of {', '.join(REAL_BACKGROUNDS)}; got {name!r}.")
    folder_name, patient, empty = REAL_BACKGROUNDS[name]
    folder = (Path(ct_real_dir) if ct_real_dir is not None else DEFAULT_CT_REAL_DIR) / folder_name
    if not folder.is_dir():
        log.warning("real background %s not found at %s: no real-background studies of it", name, folder)
        return None
    volume = read_dicom_series(folder)
    fill = _empty_skull(volume.hu, volume.geometry) if empty else None
    if fill is not None:
        # the filled inside, off its edge (partial-volume voxels against the plastic skull)
        intracranial = ndimage.binary_erosion(fill, structure=np.ones((1, 3, 3), dtype=bool))
    else:
        intracranial = intracranial_mask(volume.hu, volume.geometry)
    description = f"{folder_name} ({volume.hu.shape[0]} slices" + (
        ", skull filled with brain-like tissue)" if empty else ")"
    )
    return RealBackground(name, patient, volume, intracranial, fill, description)


def render_real_study(
    background: RealBackground, rng: np.random.Generator, bank: ShapeBank, case_id: str
) -> tuple[F32, BoolArray, list[dict[str, Any]]]:
    """Insert one or two shaped hematomas into a real background; HU, mask and lesion list."""
    volume = background.volume
    geometry = volume.geometry
    hu = volume.hu.copy()
    if background.fill is not None:
        filler = _brain_fill(rng, hu.shape)
        hu[background.fill] = filler[background.fill]
    mask = np.zeros(hu.shape, dtype=bool)
    lesions: list[dict[str, Any]] = []
    n = 1 if rng.uniform() < 0.7 else 2
    for _ in range(n):
        stage, blood = _blood_hu(rng)
        touch = bool(rng.uniform() < 0.3)
        placed = None
        for _ in range(_SHAPE_TRIES):
            shape = bank.draw(rng)
            placed = place_in_mask(
                shape, intracranial=background.intracranial, geometry=geometry, rng=rng, hu=blood,
                scale=_shape_scale(rng, shape.volume_ml, max_ml=60.0), touch_skull=touch,
            )
            if placed is not None:
                break
            log.info("%s: no place found for lesion shape %s; drawing another", case_id, shape.name)
        if placed is None:
            continue
        reach = placed.radius_mm / min(geometry.pixel_spacing_mm) + 8
        for k in range(geometry.n_slices):
            centre_rc = np.linalg.lstsq(
                np.stack([geometry.column_direction * geometry.pixel_spacing_mm[0],
                          geometry.row_direction * geometry.pixel_spacing_mm[1]], axis=1),
                placed.centre - geometry.positions[k], rcond=None,
            )[0]
            distance = abs(float((placed.centre - geometry.positions[k]) @ geometry.normal))
            if distance > placed.radius_mm:
                continue
            r0, r1 = max(0, int(centre_rc[0] - reach)), min(geometry.rows, int(centre_rc[0] + reach) + 1)
            c0, c1 = max(0, int(centre_rc[1] - reach)), min(geometry.columns, int(centre_rc[1] + reach) + 1)
            if r0 >= r1 or c0 >= c1:
                continue
            points = slice_points(geometry, k, slice(r0, r1), slice(c0, c1))
            inside = placed.contains(points) & background.intracranial[k, r0:r1, c0:c1] & ~mask[k, r0:r1, c0:c1]
            if not inside.any():
                continue
            hu[k, r0:r1, c0:c1] = paint_real_slice(hu[k, r0:r1, c0:c1], inside, placed.hu_at(points))
            mask[k, r0:r1, c0:c1] |= inside
        lesions.append(
            {"kind": "shaped", "shape": shape.name, "stage": stage, "touches_skull": touch, "hu": round(blood, 2),
             "scale": round(placed.scale, 4), "model_volume_ml": round(placed.volume_ml, 3)}
        )
    return hu, mask, lesions


# ----------------------------------------------------------------------------- writing


def write_nifti_image(path: Path, hu: F32, geometry: VolumeGeometry) -> Path:
    """Write ``hu`` (slices, rows, columns) as an int16 NIfTI on ``geometry``, atomically.

    The affine is the one :func:`ichpipe.pipeline.measure.nifti_masks.write_nifti_mask` writes
    for an evenly spaced, untilted series, so image and mask share it.

    Raises
    ------
    ValueError
        If the shape does not match or the series is tilted or unevenly spaced.
    OutputError
        If the file cannot be written.
    """
    if hu.shape != (geometry.n_slices, geometry.rows, geometry.columns):
        raise ValueError(f"Argument 'hu' has shape {hu.shape}; the geometry is {geometry.n_slices} slices.")
    if abs(geometry.gantry_tilt_deg) > 0.01 or not geometry.uniform_spacing:
        raise ValueError("Argument 'geometry' is tilted or unevenly spaced; write such a study as DICOM.")
    affine = LPS_FROM_RAS @ geometry.affine_lps()
    data = np.clip(np.rint(hu), -32768, 32767).astype(np.int16).transpose(2, 1, 0)
    img = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    img.header.set_xyzt_units("mm")
    tmp_dir = Path(tempfile.mkdtemp(prefix=".nifti-", dir=path.parent))
    try:
        tmp = tmp_dir / path.name
        nib.save(img, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"Cannot write {path}: {exc.strerror or exc}.") from exc
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return path


def _write_dicom_with_seg(case_dir: Path, mask: BoolArray) -> CTVolume:
    volume = read_dicom_series(case_dir / "DICOM")
    if volume.hu.shape != mask.shape:
        raise DicomInputError(f"{case_dir.name}: the written series reads back as {volume.hu.shape}, not {mask.shape}.")
    write_seg(
        mask, volume, case_dir / "truth_seg.dcm",
        algorithm_name="ichpipe train data (synthetic ground truth)", algorithm_version=__version__,
        series_description="Synthetic ground truth (ichpipe train data)",
        content_description="Synthetic ground-truth hematoma mask; research use only",
    )
    return volume


@dataclass
class _Written:
    entry: ManifestEntry
    record: dict[str, Any] = field(default_factory=dict)


def _finish_case(tmp: Path, final: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp made it private
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def _phantom_case(options: GeneratorOptions, index: int, bank: ShapeBank, cases: Path) -> _Written:
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
            geometry = _write_dicom_with_seg(tmp, mask).geometry
            fmt, image, label = "dicom", "DICOM", "truth_seg.dcm"
        _finish_case(tmp, final)
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
    return _Written(entry, record)


def _real_case(
    options: GeneratorOptions, index: int, background: RealBackground, bank: ShapeBank, cases: Path
) -> _Written:
    rng = np.random.default_rng([options.seed, index, 0x4EA1])
    case_id = f"real-{background.name}-{options.seed}-{index:03d}"
    hu, mask, lesions = render_real_study(background, rng, bank, case_id)
    final = cases / case_id
    tmp = Path(tempfile.mkdtemp(prefix=f".{case_id}.", dir=cases))
    try:
        identity = SyntheticIdentity(key=f"{options.seed}/{case_id}", patient_id=background.patient_id,
                                     acquired=datetime(2026, 2, 1, 8) + timedelta(minutes=index))
        copy_series_with_pixels(
            background.volume, hu, tmp / "DICOM", identity=identity,
            description=f"Real head CT + synthetic hematoma ({background.name})",
        )
        volume = _write_dicom_with_seg(tmp, mask)
        _finish_case(tmp, final)
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
    return _Written(entry, record)


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
    total = options.n + (options.n_real if backgrounds else 0)
    written: list[_Written] = []
    for index in range(options.n):
        written.append(_phantom_case(options, index, bank, cases))
        if progress:
            progress(len(written), total, written[-1].entry.case_id)
    if backgrounds:
        for index in range(options.n_real):
            written.append(_real_case(options, index, backgrounds[index % len(backgrounds)], bank, cases))
            if progress:
                progress(len(written), total, written[-1].entry.case_id)
    patients = [w.entry.patient_id for w in written]
    splits = assign_splits(
        patients, val_fraction=options.val_fraction, test_fraction=options.test_fraction, seed=options.seed
    )
    if options.real_split is not None:
        for bg in backgrounds:
            splits[bg.patient_id] = options.real_split
    entries = [_with_split(w.entry, splits[w.entry.patient_id]) for w in written]
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
        "cases": [{**w.record, "split": splits[w.entry.patient_id]} for w in written],
    }
    text = json.dumps(summary, indent=1, default=str).encode("utf-8")
    atomic_write(out / "dataset.json", lambda fh: fh.write(text), what="dataset summary")
    return manifest


def _with_split(entry: ManifestEntry, split: Split) -> ManifestEntry:
    return replace(entry, split=split)


def describe(
    options: GeneratorOptions, bank: ShapeBank, backgrounds: list[RealBackground], entries: list[ManifestEntry]
) -> str:
    """One paragraph saying what the dataset is (for checkpoints' ``training_data`` and model cards)."""
    n_phantom = sum(1 for e in entries if e.source.startswith("phantom"))
    n_real = len(entries) - n_phantom
    text = (
        f"Synthetic head CT from ichpipe train data (seed {options.seed}): {n_phantom} phantom studies"
        f" ({options.size}x{options.size}, {options.format}) with phantom hematomas, lesions shaped like"
        f" {bank.description}, intraventricular blood and calcifications"
    )
    if n_real:
        sources = "; ".join(b.description for b in backgrounds)
        text += f"; {n_real} studies with shaped lesions inserted into real CT ({sources})"
    return text + ". Not patient data."
