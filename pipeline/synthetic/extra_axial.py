"""Extra-axial and intraventricular blood, and mass effect, painted into a HU volume.

Pure NumPy/SciPy functions on a volume indexed ``(slice, row, column)`` with its voxel
``spacing`` (mm, same order) and a boolean ``intracranial`` mask (the space inside the inner
table). They work on a phantom head or on a real background alike; each returns the new
volume and an :class:`InsertedLesion` (the truth mask and the lesion's type). Rows are taken to
run anterior to posterior (DICOM axial), so with the patient supine the dependent side is
``+row``; pass ``dependent_sign=-1`` for images flipped the other way.

* :func:`insert_subdural`: a **crescent** along the inner table -- the region within
  ``t(angle, z)`` mm (in-plane) of the table, with a flat-topped thickness profile, so its inner border runs
  parallel to the skull (concave towards the brain) over a long arc and many slices. Stages:
  ``acute`` 50-80 HU, ``subacute`` 30-50 HU (isodense, mottled), ``chronic`` 0-25 HU
  (hypodense), ``mixed`` (chronic fluid with a dependent acute layer: a haematocrit level).
* :func:`insert_epidural`: a **biconvex lens**: the part of an ellipsoid centred on the inner
  table that lies inside the skull, 60-90 HU, its extent limited (sutures hold the dura).
* :func:`find_ventricles` and :func:`insert_intraventricular` (from
  :mod:`~ichpipe.pipeline.synthetic.ventricular_blood`,
  re-exported): CSF-range regions near the centre of the head are the ventricles; blood fills
  them (**cast**) or their dependent part below a flat fluid level (**layering**).
* :func:`insert_subarachnoid` (from :mod:`~ichpipe.pipeline.synthetic.subarachnoid`, re-exported):
  the CSF of the sulci and fissures of a real head replaced by blood.
* :func:`apply_mass_effect`: brain pushed away from a lesion by a smooth in-plane displacement
  field whose midline shift is proportional to the lesion volume (``mm_per_ml``), fading to
  zero at the far inner table; the skull and everything outside stay put.

Edges are partial-volume consistent: each lesion has a fractional occupancy (a one-pixel ramp
across its border) and a voxel's HU is ``hu + occ * (lesion_hu - local_tissue_mean)``, which
keeps the background's own noise (phantom or scanner) inside the lesion; the truth mask is
``occ >= 0.5``. :func:`background_noise_sd` measures that noise for checks. The shared parts
(result type, checks, painting) are in :mod:`~ichpipe.pipeline.synthetic.lesion_common`.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe.pipeline.synthetic.lesion_common import (
    F32,
    STAGE_HU,
    BoolArray,
    InsertedLesion,
    LesionKind,
    MassEffect,
    Spacing,
    SubduralStage,
    background_noise_sd,
    check_inputs,
    distance_to_table,
    finish,
    in_range,
    paint,
    polar,
    profile,
    slice_centres,
    texture,
    wide_slices,
)
from ichpipe.pipeline.synthetic.subarachnoid import insert_subarachnoid
from ichpipe.pipeline.synthetic.ventricular_blood import find_ventricles, insert_intraventricular

__all__ = [
    "STAGE_HU",
    "InsertedLesion",
    "LesionKind",
    "MassEffect",
    "SubduralStage",
    "apply_mass_effect",
    "background_noise_sd",
    "find_ventricles",
    "insert_epidural",
    "insert_intraventricular",
    "insert_subarachnoid",
    "insert_subdural",
    "paint",
    "random_extra_axial",
    "subdural_for_volume",
]


# ----------------------------------------------------------------------------- subdural


def _stage_hu(
    stage: SubduralStage, shape: tuple[int, ...], spacing: Spacing, rng: np.random.Generator, level: float | None,
    dependent: BoolArray,
) -> tuple[F32, float]:
    low, high = STAGE_HU[stage]
    if stage == "mixed":
        fluid = float(rng.uniform(5.0, 22.0)) if level is None else float(level)
        acute = float(rng.uniform(55.0, 75.0))
        return np.where(dependent, acute, fluid).astype(np.float32), fluid
    mean = float(rng.uniform(low + 3.0, high - 3.0)) if level is None else float(level)
    amplitude = {"acute": 3.0, "subacute": 5.0, "chronic": 2.0}[stage]
    value = mean + amplitude * texture(shape, spacing, rng, 4.0)
    return np.clip(value, low, high).astype(np.float32), mean


def insert_subdural(
    hu: npt.NDArray[np.floating],
    intracranial: BoolArray,
    spacing: Spacing,
    *,
    angle_deg: float,
    centre_slice: float,
    thickness_mm: float,
    arc_deg: float,
    extent_mm: float,
    stage: SubduralStage = "acute",
    level_hu: float | None = None,
    hematocrit_fraction: float = 0.35,
    dependent_sign: int = 1,
    rng: np.random.Generator | None = None,
) -> tuple[F32, InsertedLesion]:
    """Paint a subdural crescent along the inner table.

    Parameters
    ----------
    hu, intracranial, spacing:
        The volume (slice, row, column), its intracranial mask and voxel size (mm).
    angle_deg:
        In-plane direction of the crescent's centre from the head's centre (``atan2(row, col)``).
    centre_slice:
        Slice index of its cranio-caudal centre.
    thickness_mm:
        Largest thickness, 3-20 mm.
    arc_deg:
        Angular length of the crescent, 40-200 degrees.
    extent_mm:
        Cranio-caudal length, 10-160 mm.
    stage:
        ``acute``, ``subacute``, ``chronic`` or ``mixed`` (chronic fluid with an acute dependent layer).
    level_hu:
        Mean HU (drawn in the stage's band when ``None``).
    hematocrit_fraction:
        ``mixed`` only: share of the crescent's extent along the dependent axis that is acute.
    dependent_sign:
        +1 when rows run anterior to posterior (the supine patient's dependent side is +row).
    rng:
        Random generator for the HU texture.

    Raises
    ------
    ValueError
        If an argument is outside its range or the volume and mask do not match.
    """
    check_inputs(np.asarray(hu), intracranial, spacing)
    in_range("thickness_mm", thickness_mm, 3.0, 20.0)
    in_range("arc_deg", arc_deg, 40.0, 200.0)
    in_range("extent_mm", extent_mm, 10.0, 160.0)
    in_range("centre_slice", centre_slice, 0.0, hu.shape[0] - 1.0)
    in_range("hematocrit_fraction", hematocrit_fraction, 0.05, 0.95)
    if stage not in ("acute", "subacute", "chronic", "mixed"):
        raise ValueError(f"Argument 'stage' must be acute, subacute, chronic or mixed; got {stage!r}.")
    if dependent_sign not in (1, -1):
        raise ValueError(f"Argument 'dependent_sign' must be 1 or -1; got {dependent_sign!r}.")
    rng = rng or np.random.default_rng(0)
    angle, _radius = polar(intracranial, spacing)
    delta = np.angle(np.exp(1j * (angle - np.float32(math.radians(angle_deg))))).astype(np.float32)
    z_mm = ((np.arange(hu.shape[0], dtype=np.float32) - np.float32(centre_slice)) * np.float32(spacing[0]))
    along = profile(delta / np.float32(math.radians(arc_deg) / 2.0), 4.0)
    across = profile(z_mm / np.float32(extent_mm / 2.0), 4.0)[:, None, None]
    local_thickness = np.float32(thickness_mm) * along * across
    depth = distance_to_table(intracranial, spacing)
    pixel = np.float32(min(spacing[1], spacing[2]))
    occ = np.clip((local_thickness - depth) / pixel + 0.5, 0.0, 1.0) * (local_thickness > 0)
    occ = occ.astype(np.float32)
    rows = np.arange(hu.shape[1], dtype=np.float32)[None, :, None] * np.float32(dependent_sign)
    inside = occ >= 0.5
    if inside.any():
        r = np.broadcast_to(rows, hu.shape)[inside]
        cut = float(np.quantile(r, 1.0 - hematocrit_fraction))
        dependent = np.broadcast_to(rows >= cut, hu.shape)
    else:
        dependent = np.zeros(hu.shape, dtype=bool)
    lesion_hu, _mean = _stage_hu(stage, hu.shape, spacing, rng, level_hu, dependent)
    return finish("subdural", stage, hu, occ, lesion_hu, intracranial, spacing, depth)


# ----------------------------------------------------------------------------- epidural


def _table_point(intracranial: BoolArray, slice_index: int, angle: float, spacing: Spacing) -> tuple[float, float]:
    """(row, column) where a ray from the slice's centre at ``angle`` leaves the intracranial space."""
    centres = slice_centres(intracranial)
    cy, cx = centres[slice_index]
    step = 0.25
    last = (cy, cx)
    for k in range(1, 4 * max(intracranial.shape[1:])):
        r = k * step
        y = cy + r * math.sin(angle) / spacing[1]
        x = cx + r * math.cos(angle) / spacing[2]
        iy, ix = round(y), round(x)
        if not (0 <= iy < intracranial.shape[1] and 0 <= ix < intracranial.shape[2]) or not intracranial[
            slice_index, iy, ix
        ]:
            return last
        last = (y, x)
    return last


def insert_epidural(
    hu: npt.NDArray[np.floating],
    intracranial: BoolArray,
    spacing: Spacing,
    *,
    angle_deg: float,
    centre_slice: int,
    thickness_mm: float,
    length_mm: float,
    extent_mm: float,
    level_hu: float | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[F32, InsertedLesion]:
    """Paint a biconvex epidural lens against the inner table.

    The lens is the intracranial part of an ellipsoid centred on the inner table at
    ``angle_deg`` in slice ``centre_slice``: ``thickness_mm`` deep (semi-axis along the inward
    normal), ``length_mm`` long in-plane and ``extent_mm`` cranio-caudally (full lengths, at most
    100 and 80 mm: the dura is held at the sutures).

    Raises
    ------
    ValueError
        If an argument is outside its range, the volume and mask do not match, or the slice
        holds no intracranial space.
    """
    check_inputs(np.asarray(hu), intracranial, spacing)
    in_range("thickness_mm", thickness_mm, 3.0, 40.0)
    in_range("length_mm", length_mm, 15.0, 100.0)
    in_range("extent_mm", extent_mm, 5.0, 80.0)
    if not (0 <= centre_slice < hu.shape[0]) or not intracranial[centre_slice].any():
        raise ValueError(f"Argument 'centre_slice' ({centre_slice}) must be a slice with intracranial space.")
    rng = rng or np.random.default_rng(0)
    theta = math.radians(angle_deg)
    py, px = _table_point(intracranial, centre_slice, theta, spacing)
    normal = np.array([-math.sin(theta), -math.cos(theta)])  # inward, (row, column) in mm
    tangent = np.array([math.cos(theta), -math.sin(theta)])
    zz, rr, cc = np.indices(hu.shape, dtype=np.float32)
    dz = (zz - centre_slice) * np.float32(spacing[0])
    dy = (rr - np.float32(py)) * np.float32(spacing[1])
    dx = (cc - np.float32(px)) * np.float32(spacing[2])
    a = dy * np.float32(normal[0]) + dx * np.float32(normal[1])
    b = dy * np.float32(tangent[0]) + dx * np.float32(tangent[1])
    q = np.sqrt((a / thickness_mm) ** 2 + (b / (length_mm / 2.0)) ** 2 + (dz / (extent_mm / 2.0)) ** 2)
    pixel = float(min(spacing[1], spacing[2]))
    occ = np.clip((1.0 - q) * np.float32(thickness_mm / pixel) + 0.5, 0.0, 1.0).astype(np.float32)
    low, high = STAGE_HU["epidural"]
    mean = float(rng.uniform(low + 5.0, high - 5.0)) if level_hu is None else float(level_hu)
    lesion_hu = np.clip(mean + 3.0 * texture(hu.shape, spacing, rng, 4.0), low, high).astype(np.float32)
    depth = distance_to_table(intracranial, spacing)
    return finish("epidural", "acute", hu, occ, lesion_hu, intracranial, spacing, depth)


# ----------------------------------------------------------------------------- mass effect


def apply_mass_effect(
    hu: npt.NDArray[np.floating],
    intracranial: BoolArray,
    spacing: Spacing,
    lesion: BoolArray,
    *,
    mm_per_ml: float = 0.15,
    max_shift_mm: float = 15.0,
    decay_mm: float = 60.0,
    masks: tuple[BoolArray, ...] = (),
) -> tuple[F32, tuple[BoolArray, ...], MassEffect]:
    """Push the brain away from ``lesion`` (apply before painting the lesion).

    The displacement is in-plane, along the direction from the lesion's centroid to the head's
    centre (per slice), with magnitude ``A * exp(-d / decay_mm)`` (``d``: 3D distance from the
    lesion, mm), ``A`` set so that the head's centre line moves by ``min(mm_per_ml * volume,
    max_shift_mm)`` (the midline shift) but never above the lesion's own in-plane thickness (the
    brain next to it cannot move farther than the space the lesion takes: the shift actually
    applied is in the result), faded to zero within 15 mm of the far inner table.
    Voxels take the value found at ``x - u(x)`` (nearest voxel: the noise texture is copied,
    not smoothed); samples that would come from outside the intracranial space or from its
    2 mm rim (the table's partial-volume edge), and everything outside it, keep their values.
    ``masks`` (earlier lesions' truths) are moved the same way.

    Raises
    ------
    ValueError
        If the lesion is empty or an argument is out of range.
    """
    check_inputs(np.asarray(hu), intracranial, spacing)
    if lesion.shape != hu.shape or not lesion.any():
        raise ValueError("Argument 'lesion' must be a non-empty boolean mask of the volume's shape.")
    in_range("mm_per_ml", mm_per_ml, 0.0, 2.0)
    in_range("max_shift_mm", max_shift_mm, 0.0, 40.0)
    in_range("decay_mm", decay_mm, 1.0, 500.0)
    volume_ml = float(lesion.sum()) * spacing[0] * spacing[1] * spacing[2] / 1000.0
    shift = min(mm_per_ml * volume_ml, max_shift_mm)
    base = np.asarray(hu, dtype=np.float32)
    if shift <= 0:
        return base.copy(), tuple(m.copy() for m in masks), MassEffect(0.0, 0.0, (0.0, 0.0))
    centres = slice_centres(intracranial)
    lz, ly, lx = (float(v) for v in np.argwhere(lesion).mean(axis=0))
    cz = round(lz)
    head = centres[cz]
    hr, hc = round(float(head[0])), round(float(head[1]))
    vec = np.array([(head[0] - ly) * spacing[1], (head[1] - lx) * spacing[2]])
    norm = float(np.linalg.norm(vec))
    direction = vec / norm if norm > 1e-6 else np.array([0.0, 1.0])
    from_lesion = ndimage.distance_transform_edt(~lesion, sampling=spacing).astype(np.float32)
    at_centre = float(from_lesion[cz, hr, hc])
    depth = distance_to_table(intracranial, spacing)
    thickness = float(depth[lesion].max()) if (lesion & intracranial).any() else 3.0 * shift
    amplitude = min(shift * math.exp(at_centre / decay_mm), max(thickness, 1.0))
    magnitude = amplitude * np.exp(-from_lesion / np.float32(decay_mm))
    grid = np.indices(hu.shape[1:], dtype=np.float32)
    rows, cols = grid[0], grid[1]
    beyond = ((rows[None] - centres[:, 0, None, None]) * spacing[1] * direction[0]
              + (cols[None] - centres[:, 1, None, None]) * spacing[2] * direction[1]) > 0
    fade = np.where(beyond, np.clip(depth / 15.0, 0.0, 1.0), 1.0)
    magnitude = (magnitude * fade * intracranial).astype(np.float32)
    src_r = rows[None] - magnitude * np.float32(direction[0] / spacing[1])
    src_c = cols[None] - magnitude * np.float32(direction[1] / spacing[2])
    iz = np.broadcast_to(np.arange(hu.shape[0])[:, None, None], hu.shape)
    ir = np.clip(np.rint(src_r), 0, hu.shape[1] - 1).astype(np.intp)
    ic = np.clip(np.rint(src_c), 0, hu.shape[2] - 1).astype(np.intp)
    rim = max(1, round(2.0 / min(spacing[1:])))
    core = ndimage.binary_erosion(intracranial, structure=np.ones((1, 3, 3), dtype=bool), iterations=rim)
    valid = intracranial & core[iz, ir, ic]  # never pull the table's partial-volume rim into the brain
    out = np.where(valid, base[iz, ir, ic], base).astype(np.float32)
    moved = tuple(np.where(valid, m[iz, ir, ic], m & ~intracranial) for m in masks)
    midline = float(magnitude[cz, hr, hc])
    return out, moved, MassEffect(midline, float(magnitude.max()), (float(direction[0]), float(direction[1])))


def subdural_for_volume(
    hu: npt.NDArray[np.floating],
    intracranial: BoolArray,
    spacing: Spacing,
    *,
    volume_ml: float,
    tolerance: float = 0.1,
    **options: object,
) -> tuple[F32, InsertedLesion]:
    """:func:`insert_subdural` with the thickness (3-20 mm) found by bisection to give ``volume_ml``.

    ``options`` are the other keyword arguments of :func:`insert_subdural` (not ``thickness_mm``).

    Raises
    ------
    ValueError
        If ``volume_ml`` cannot be reached within ``tolerance`` with 3-20 mm on this arc and extent
        (the message says which way to change them).
    """
    if "thickness_mm" in options:
        raise ValueError("Argument 'thickness_mm' is chosen here; pass 'volume_ml' only.")
    in_range("volume_ml", volume_ml, 0.5, 300.0)
    low, high = 3.0, 20.0
    best: tuple[F32, InsertedLesion] | None = None
    for _ in range(14):
        mid = 0.5 * (low + high)
        result = insert_subdural(hu, intracranial, spacing, thickness_mm=mid, **options)  # type: ignore[arg-type]
        error = result[1].volume_ml / volume_ml - 1.0
        if best is None or abs(error) < abs(best[1].volume_ml / volume_ml - 1.0):
            best = result
        if abs(error) <= tolerance:
            return result
        low, high = (mid, high) if error < 0 else (low, mid)
    if best is None:  # pragma: no cover - the loop always runs
        raise ValueError("Argument 'volume_ml' could not be tried.")
    got = best[1].volume_ml
    hint = "longer 'arc_deg' or 'extent_mm'" if got < volume_ml else "shorter 'arc_deg' or 'extent_mm'"
    raise ValueError(
        f"Argument 'volume_ml' ({volume_ml:g} mL) is out of reach with 3-20 mm on this arc and extent (closest"
        f" {got:.1f} mL); use a {hint}."
    )


def _random_subarachnoid(
    hu: F32, intracranial: BoolArray, spacing: Spacing, rng: np.random.Generator, paint_rng: np.random.Generator,
) -> tuple[F32, InsertedLesion]:
    """Convexity (60 %: 60-150 deg of arc, 30-70 mm of slices centred on a wide slice, 15-30 mm deep) or
    diffuse (25-35 mm deep)."""
    wide = np.flatnonzero(wide_slices(intracranial, 0.6))
    if rng.uniform() < 0.6:
        return insert_subarachnoid(
            hu, intracranial, spacing, pattern="convexity", angle_deg=float(rng.uniform(-180.0, 180.0)),
            arc_deg=float(rng.uniform(60.0, 150.0)), centre_slice=float(rng.choice(wide)),
            extent_mm=float(rng.uniform(30.0, 70.0)), depth_mm=float(rng.uniform(15.0, 30.0)),
            spared_fraction=float(rng.uniform(0.1, 0.4)), rng=paint_rng,
        )
    return insert_subarachnoid(hu, intracranial, spacing, pattern="diffuse", depth_mm=float(rng.uniform(25.0, 35.0)),
                               spared_fraction=float(rng.uniform(0.1, 0.4)), rng=paint_rng)


def random_extra_axial(
    hu: npt.NDArray[np.floating],
    intracranial: BoolArray,
    spacing: Spacing,
    rng: np.random.Generator,
    *,
    kind: LesionKind | None = None,
    mass_effect: bool = True,
    masks: tuple[BoolArray, ...] = (),
    subdural_stages: tuple[float, float, float, float] = (0.5, 0.2, 0.15, 0.15),
) -> tuple[F32, InsertedLesion, MassEffect | None, tuple[BoolArray, ...]]:
    """Draw and paint one lesion (subdural 55 %, epidural 20 %, intraventricular 25 % unless ``kind``).

    Subdural: acute, subacute, chronic, mixed with probabilities ``subdural_stages`` (default
    50, 20, 15, 15 %); 3-20 mm thick, 70-180 deg of
    arc, 40-120 mm long, on any side. Epidural: 8-30 mm thick, 40-90 mm by 25-60 mm, lateral.
    Intraventricular: layering (65 %, 10-60 % of the ventricles) or cast, in the ventricles
    found by :func:`find_ventricles`. Subarachnoid (only when ``kind`` asks for it): the CSF of
    the sulci replaced by blood (:func:`insert_subarachnoid`; convexity 60 %, else diffuse).
    Subdurals and epidurals push the brain first (:func:`apply_mass_effect`, 0.1-0.2 mm per
    mL); ``masks`` (earlier truths) move with it.

    Returns the volume, the lesion, the mass effect (``None`` for ventricular or subarachnoid
    blood, or when off) and the moved ``masks``.

    Raises
    ------
    ValueError
        If no ventricle is found for ventricular blood, no sulcus for subarachnoid blood, or the
        volume and mask do not match.
    """
    check_inputs(np.asarray(hu), intracranial, spacing)
    chosen = kind or str(rng.choice(["subdural", "epidural", "intraventricular"], p=[0.55, 0.2, 0.25]))
    base = np.asarray(hu, dtype=np.float32)
    paint_rng = np.random.default_rng(int(rng.integers(2**31 - 1)))
    if chosen == "intraventricular":
        ventricles = find_ventricles(base, intracranial, spacing)
        if not ventricles.any():
            raise ValueError("No ventricle was found (no CSF-range region near the centre of the head).")
        mode: Literal["cast", "layer"] = "layer" if rng.uniform() < 0.65 else "cast"
        out, lesion = insert_intraventricular(base, intracranial, spacing, ventricles, mode=mode,
                                              fill_fraction=float(rng.uniform(0.1, 0.6)), rng=paint_rng)
        return out, lesion, None, masks
    if chosen == "subarachnoid":
        return (*_random_subarachnoid(base, intracranial, spacing, rng, paint_rng), None, masks)
    occupied = np.flatnonzero(intracranial.reshape(intracranial.shape[0], -1).any(axis=1))
    middle = occupied[len(occupied) // 4 : max(len(occupied) // 4 + 1, 3 * len(occupied) // 4)]
    centre = int(rng.choice(middle))
    seed = int(paint_rng.integers(2**31 - 1))
    if chosen == "subdural":
        stages: list[SubduralStage] = ["acute", "subacute", "chronic", "mixed"]
        p = np.asarray(subdural_stages, dtype=np.float64)
        if p.shape != (4,) or not np.all(p >= 0) or p.sum() <= 0:
            raise ValueError(
                f"Argument 'subdural_stages' must be four shares >= 0, not all 0; got {subdural_stages!r}."
            )
        stage = stages[int(rng.choice(4, p=p / p.sum()))]
        angle, thickness = float(rng.uniform(-180.0, 180.0)), float(rng.uniform(3.0, 20.0))
        arc, extent = float(rng.uniform(70.0, 180.0)), float(rng.uniform(40.0, 120.0))

        def painter(volume: F32) -> tuple[F32, InsertedLesion]:
            return insert_subdural(volume, intracranial, spacing, angle_deg=angle, centre_slice=float(centre),
                                   thickness_mm=thickness, arc_deg=arc, extent_mm=extent, stage=stage,
                                   rng=np.random.default_rng(seed))
    else:
        angle = float(rng.choice([0.0, 180.0]) + rng.uniform(-50.0, 50.0))
        thickness, length = float(rng.uniform(8.0, 30.0)), float(rng.uniform(40.0, 90.0))
        extent = float(rng.uniform(25.0, 60.0))

        def painter(volume: F32) -> tuple[F32, InsertedLesion]:
            return insert_epidural(volume, intracranial, spacing, angle_deg=angle, centre_slice=centre,
                                   thickness_mm=thickness, length_mm=length, extent_mm=extent,
                                   rng=np.random.default_rng(seed))
    effect = None
    if mass_effect:
        _, probe = painter(base)
        if probe.mask.any():
            base, masks, effect = apply_mass_effect(base, intracranial, spacing, probe.mask,
                                                    mm_per_ml=float(rng.uniform(0.1, 0.2)), masks=masks)
    out, lesion = painter(base)
    return out, lesion, effect, masks
