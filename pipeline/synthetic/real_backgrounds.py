"""Real head CTs as backgrounds of training studies: lesions inserted with the real noise kept.

The GE HiSpeed head (tilted, uneven spacing) and the Philips head phantom (an empty skull, filled
with brain-like tissue first) of ``../shared/data/ct-real/``; all studies of one background are
one patient.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.dicom_io.geometry import VolumeGeometry
from ichpipe.pipeline.config.anatomy_config import AnatomyConfig
from ichpipe.pipeline.datasets.dicom_seg import read_dicom_series
from ichpipe.pipeline.segment.intracranial import find_intracranial_in, intracranial_mask
from ichpipe.pipeline.synthetic.lesion_painting import (
    maybe_blend_side,
    paint_real_slice,
    place_in_mask,
    side_record,
    slice_points,
)
from ichpipe.pipeline.synthetic.lesion_shapes import ShapeBank
from ichpipe.pipeline.synthetic.recipes import (
    DEFAULT_SUBACUTE_FRACTION,
    DEFAULT_TOUCH_SKULL_FRACTION,
    F32,
    REAL_BACKGROUNDS,
    SHAPE_TRIES,
    SKULL_BASE_BACKGROUNDS,
    BoolArray,
    draw_blood_hu,
    draw_shape_scale,
)

__all__ = ["DEFAULT_CT_REAL_DIR", "GENERATOR_ANATOMY", "RealBackground", "load_real_background", "render_real_study"]

#: The intracranial finder as the generator uses it: without crossing failed slices
#: (``max_failed_run_mm``), as when the card's sets were made, so that its commands still make
#: the same studies. Lesions are therefore never painted in the real GE head's posterior fossa.
GENERATOR_ANATOMY = AnatomyConfig(max_failed_run_mm=None)

log = logging.getLogger(__name__)

#: Where the real head CTs are expected (``../shared/data/ct-real``).
DEFAULT_CT_REAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "ct-real"


@dataclass
class RealBackground:
    """A real head CT to insert lesions into.

    Attributes
    ----------
    name, patient_id:
        ``ge`` / ``philips`` / ``ge-skull-base`` and the patient all its studies share.
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
    description = f"{folder_name} ({volume.hu.shape[0]} slices" + (
        ", skull filled with brain-like tissue)" if empty else ")"
    )
    if fill is not None:
        # the filled inside, off its edge (partial-volume voxels against the plastic skull)
        intracranial = ndimage.binary_erosion(fill, structure=np.ones((1, 3, 3), dtype=bool))
    elif name in SKULL_BASE_BACKGROUNDS:
        space = find_intracranial_in(volume.hu, volume.geometry)  # crossing failed slices (the default)
        reached = list(space.reached_slices)
        if not reached:
            log.warning("real background %s: no slice reached across a failed one; no studies of it", name)
            return None
        intracranial = np.zeros_like(space.mask)
        intracranial[reached] = space.mask[reached]
        description += f", lesions on its skull base only (slices {reached[0]}-{reached[-1]})"
    else:
        intracranial = intracranial_mask(volume.hu, volume.geometry, GENERATOR_ANATOMY)
    return RealBackground(name, patient, volume, intracranial, fill, description)


def render_real_study(
    background: RealBackground, rng: np.random.Generator, bank: ShapeBank, case_id: str,
    *, subacute_fraction: float = DEFAULT_SUBACUTE_FRACTION, blend_fraction: float = 0.0,
    blend_rng: np.random.Generator | None = None, touch_skull_fraction: float = DEFAULT_TOUCH_SKULL_FRACTION,
) -> tuple[F32, BoolArray, list[dict[str, Any]]]:
    """Insert one or two shaped hematomas into a real background; HU, mask and lesion list.

    Each is subacute with probability ``subacute_fraction`` (:func:`draw_blood_hu`); an acute one gets a
    less dense side (the blend sign) with probability ``blend_fraction``, drawn from ``blend_rng`` (which
    that share needs; ``rng``'s draws stay as they were). Each is placed against the inner table with
    probability ``touch_skull_fraction``.
    """
    if blend_fraction > 0 and blend_rng is None:
        raise ValueError("Argument 'blend_rng' must be given with a 'blend_fraction' above 0.")
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
        stage, blood = draw_blood_hu(rng, subacute_fraction=subacute_fraction)
        touch = bool(rng.uniform() < touch_skull_fraction)
        placed = None
        for _ in range(SHAPE_TRIES):
            shape = bank.draw(rng)
            placed = place_in_mask(
                shape, intracranial=background.intracranial, geometry=geometry, rng=rng, hu=blood,
                scale=draw_shape_scale(rng, shape.volume_ml, max_ml=60.0), touch_skull=touch,
            )
            if placed is not None:
                break
            log.info("%s: no place found for lesion shape %s; drawing another", case_id, shape.name)
        if placed is None:
            continue
        if blend_rng is not None:
            placed = maybe_blend_side(placed, blend_rng, acute=stage == "acute", share=blend_fraction)
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
             "scale": round(placed.scale, 4), "model_volume_ml": round(placed.volume_ml, 3), **side_record(placed)}
        )
    return hu, mask, lesions
