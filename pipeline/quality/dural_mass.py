"""A dense dome on the inner table, the shape of a meningioma (flag ``dural_based_mass``).

A convexity meningioma, the commonest incidental mass on an older patient's head CT, is a dense
dural-based mass: on a non-contrast scan often 50-70 HU, where acute blood lies, and the networks
read it as blood (painted into the real GE head, ``bench/meningiomas.py``: 17 of 20 were read,
0.99-12.68 mL, 13 of them with no flag; ``MODEL_CARD.md``, "A meningioma read as blood"). Density
does not tell it from a haematoma; its shape does, as a radiologist reads it: an extra-axial mass
sits on the dura with a broad base and meets it at obtuse angles, a dome whose widest part is its
base, while a bleed in the brain that reaches the surface touches the table over less than its
width (acute angles) and a subdural or extradural collection is thin over a long base.

For each 26-connected component of the blood of at least ``min_ml``, the distance of its voxels
from the intracranial space's edge is measured in 3D (a Euclidean distance transform on the slice
grid, the median slice spacing between slices) and cut into layers ``band_mm`` thick from
``start_mm`` (the first millimetres hold the inner table's partial volume, where neither the
networks nor a reference mark every voxel). The first layer is the **base**; each layer's volume
over ``band_mm`` is its area. Two numbers describe the shape:

- ``overhang``: the largest deeper layer's area over the base's; a dome on the table (a hemisphere:
  its layers shrink inward) is at most about 1; a piece that widens inward from a small contact (a
  bleed meeting the table at acute angles) is over it;
- ``dome``: the component's greatest depth over the base's radius (the radius of a disc of the
  base's area); a hemisphere is about 1, a lens or a crescent (extradural, subdural) well under it,
  a ball centred in the brain that reaches the table (more than a hemisphere) over it.

A component with at least ``min_base_mm2`` of base, ``overhang`` at most ``max_overhang`` and
``dome`` within ``dome_range`` raises the flag. Nothing is removed from the volume: a single
non-contrast scan cannot say which it is, and an extradural haematoma or a bleed against the
cortex can have this shape too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe.pipeline.quality.flags import QualityFlag, slice_range_text
from ichpipe.pipeline.segment.components import bounding_box, mask_volume_ml

__all__ = ["TableDome", "check_dural_based_mass", "domes_on_table"]

BoolArray = npt.NDArray[np.bool_]

#: Margin (mm) around a component inside which its depth is measured; deeper voxels read as deep.
_MARGIN_MM = 25.0


@dataclass(frozen=True)
class TableDome:
    """The shape of one found component against the inner table.

    Attributes
    ----------
    volume_ml:
        The component's volume.
    base_mm2:
        Area of its first layer on the table (``start_mm`` to ``start_mm + band_mm`` deep).
    depth_mm:
        Its greatest distance from the intracranial space's edge.
    overhang:
        The largest deeper layer's area over the base's (``None`` with no deeper layer).
    dome:
        ``depth_mm`` over the radius of a disc of ``base_mm2``.
    slices:
        The slices it lies on (0-based, volume order).
    """

    volume_ml: float
    base_mm2: float
    depth_mm: float
    overhang: float | None
    dome: float
    slices: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, rounded."""
        out = asdict(self)
        for key in ("volume_ml", "base_mm2", "depth_mm"):
            out[key] = round(float(out[key]), 2)
        for key in ("overhang", "dome"):
            out[key] = None if out[key] is None else round(float(out[key]), 3)
        out["slices"] = list(self.slices)
        return out


def domes_on_table(
    blood: BoolArray,
    intracranial: BoolArray,
    pixel_spacing_mm: tuple[float, float],
    slice_spacing_mm: float,
    voxel_volumes_ml: npt.ArrayLike,
    *,
    start_mm: float = 1.5,
    band_mm: float = 3.0,
    min_ml: float = 1.0,
) -> list[TableDome]:
    """The shape of each component of ``blood`` of at least ``min_ml`` that has a base on the table.

    Parameters
    ----------
    blood, intracranial:
        The hematoma mask and the intracranial space, (slices, rows, columns).
    pixel_spacing_mm:
        (row, column) spacing.
    slice_spacing_mm:
        The distance between slices (the median of an uneven stack).
    voxel_volumes_ml:
        One voxel's volume per slice, or one value.
    start_mm, band_mm, min_ml:
        See :class:`~ichpipe.pipeline.config.quality_artifact_config.DuralMassConfig`.

    Returns
    -------
    list of TableDome
        Components with no voxel in the base layer are left out.

    Examples
    --------
    A hemisphere of radius 12 mm on the flat wall of a box-shaped space, 1 mm voxels:

    >>> z, y, x = np.ogrid[:40, :40, :40]
    >>> space = np.zeros((40, 40, 40), dtype=bool); space[1:39, 1:39, 1:39] = True
    >>> dome = space & ((z - 20) ** 2 + (y - 20) ** 2 + (x - 1) ** 2 <= 144)
    >>> found = domes_on_table(dome, space, (1.0, 1.0), 1.0, 0.001)[0]
    >>> round(found.volume_ml, 1), found.overhang < 1.0, 0.8 < found.dome < 1.2
    (3.8, True, True)
    """
    if band_mm <= 0 or start_mm < 0:
        raise ValueError("Arguments 'band_mm' (> 0) and 'start_mm' (>= 0) must be lengths in mm.")
    sampling = (float(slice_spacing_mm), float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1]))
    voxel_mm3 = float(np.prod(sampling))
    per_slice = np.asarray(voxel_volumes_ml, dtype=float)
    found: list[TableDome] = []
    outer = bounding_box(blood)  # label the blood's bounding box only
    if outer is None:
        return found
    labels, _n = ndimage.label(blood[outer], structure=np.ones((3, 3, 3), dtype=bool))
    for index, inner in enumerate(ndimage.find_objects(labels), start=1):
        if inner is None:
            continue
        box = tuple(slice(o.start + i.start, o.start + i.stop) for o, i in zip(outer, inner, strict=True))
        piece = labels[inner] == index
        volume = mask_volume_ml(piece, per_slice[box[0]] if per_slice.ndim else per_slice)
        if volume < min_ml:
            continue
        grown = tuple(slice(max(0, b.start - round(_MARGIN_MM / step)), min(size, b.stop + round(_MARGIN_MM / step)))
                      for b, step, size in zip(box, sampling, blood.shape, strict=True))
        component = np.zeros(tuple(g.stop - g.start for g in grown), dtype=bool)
        component[tuple(slice(b.start - g.start, b.stop - g.start) for b, g in zip(box, grown, strict=True))] = piece
        # the crop's own border is not an edge: only the space's edge is (distance to its nearest False)
        depth = ndimage.distance_transform_edt(intracranial[grown], sampling=sampling)[component]
        layer = np.floor((depth - start_mm) / band_mm).astype(int)
        layer = layer[layer >= 0]
        if not (layer == 0).any():  # no voxel in the base layer: it does not sit on the table
            continue
        areas = np.bincount(layer) * voxel_mm3 / band_mm
        base = float(areas[0])
        overhang = float(areas[1:].max() / base) if areas.size > 1 else None
        slices = tuple(int(z) + grown[0].start for z in np.flatnonzero(component.any(axis=(1, 2))))
        found.append(TableDome(volume_ml=volume, base_mm2=base, depth_mm=float(depth.max()), overhang=overhang,
                               dome=float(depth.max() / np.sqrt(base / np.pi)), slices=slices))
    return found


def check_dural_based_mass(
    domes: Sequence[TableDome],
    *,
    min_base_mm2: float = 150.0,
    max_overhang: float = 1.5,
    dome_range: tuple[float, float] = (0.8, 1.3),
) -> list[QualityFlag]:
    """Flag ``dural_based_mass`` for the largest component shaped as a dome on the table.

    ``min_base_mm2``, ``max_overhang`` and ``dome_range``: see
    :class:`~ichpipe.pipeline.config.quality_artifact_config.DuralMassConfig`.

    Examples
    --------
    >>> dome = TableDome(9.9, 995.6, 16.1, 0.96, 0.9, (3, 4, 5))
    >>> check_dural_based_mass([dome])[0].code
    'dural_based_mass'
    >>> ball = TableDome(9.9, 206.9, 32.7, 2.32, 4.03, (3, 4, 5))  # touches the table, wider inward
    >>> check_dural_based_mass([ball])
    []
    """
    shaped = [d for d in domes if d.base_mm2 >= min_base_mm2 and (d.overhang is None or d.overhang <= max_overhang)
              and dome_range[0] <= d.dome <= dome_range[1]]
    if not shaped:
        return []
    largest = max(shaped, key=lambda d: d.volume_ml)
    return [QualityFlag(
        "dural_based_mass",
        f"{largest.volume_ml:.1f} mL of what was found on {slice_range_text(largest.slices)} is a dome on the inner"
        f" table ({largest.base_mm2:.0f} mm^2 of base, {largest.depth_mm:.0f} mm deep, no wider inward): the shape of"
        " a meningioma or another dural-based mass, which is as dense as blood on a non-contrast scan and is"
        " measured as blood, so the volume may not be blood (an extradural haematoma or a bleed against the cortex"
        " can have this shape too).",
        round(largest.volume_ml, 2), min_base_mm2)]
