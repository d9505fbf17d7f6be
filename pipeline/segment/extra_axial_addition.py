"""Add extra-axial blood (subdural, epidural) along the inner table with a second network.

The default network reads each slice through the brain window (W80/L40) and was trained on
intraparenchymal and intraventricular blood: it misses collections that lie on the inner
table, where acute blood (85 HU) is as white as bone in that window and where subacute
(isodense) and chronic (hypodense) subdurals do not look like the hyperdense clots it learnt
(``MODEL_CARD.md`` "Extra-axial and intraventricular studies"). A network trained on
extra-axial blood through a wider window (its checkpoint says which) finds them, and on its
own it may also call things elsewhere. This step uses it only against the skull:

1. its probability is thresholded on every slice with head;
2. what it finds is cut to the intracranial space and to ``hu_range`` (brain, CSF and blood:
   never bone, calcification or air), and split into 3D components (26-connected);
3. near the vertex and the skull base the slab cuts the bone obliquely, and its partial volume
   reads as blood against the table (on the real GE normal head, 1.2 mL on the second slice from
   the top, and sinus and orbit-roof pieces on the lowest intracranial slice): on slices whose
   intracranial area is under ``min_area_fraction`` of the largest (narrow slices) a component is
   added only when it also holds ``min_ml`` on the wider ones (``narrow_slices="anchored"``: a
   collection running on towards the vertex; ``"skip"`` adds nothing there, as before the
   fourteenth session, and lost 13-17 mL of some large phantom subdurals), and voxels not
   intracranial on both neighbouring slices are left out (as in the ``blood_at_skull_missed`` check);
4. an in-plane opening of diameter ``min_thickness_mm`` removes what is thinner (the table's
   partial-volume rim); a collection keeps its body;
5. a component is added (its voxels outside the first network's mask) only when some of its
   voxels lie within ``table_mm`` (in plane) of the intracranial space's edge, the inner table
   (and, when it is joined to blood the first network found away from the table, at least 5 % of
   the voxels it would add: else the call ran from a haematoma into the brain between it and the
   table, as on a real PHE-SICH patient),
   it holds at least ``min_ml`` (a collection against the skull, not a call in the parenchyma,
   the first network's job, nor a speck), and the median HU of what it adds is at least ``min_median_hu``
   (acute or mixed blood; at least ``joined_min_median_hu`` when it is joined to blood the first network
   found of which none lies within ``table_mm`` of the table: what such a call adds lies between a
   parenchymal clot and the table, and the clot's unread edge lifts its median, as on a clot painted
   against the real GE head's posterior midline, where the sinus and dura band beside it read 50-52 HU;
   such a component that passes adds only its dense part, its voxels whose 3 x 3 in-plane median is at
   least that bar joined to the found blood: the clot's unread rest, not the band, as when that clot lay
   3.4 mm from the table)
   **or** it adds at least ``low_density_min_ml`` (a large subacute or
   chronic collection; counted in ``components_low_density`` and ``low_density_ml``, and the study
   is flagged ``extra_axial_low_density``: the network finds only part of such a collection), but
   not when it is joined to blood the first network found that lies deep in the intracranial space
   (median in-plane depth at least ``low_density_max_found_depth_mm``): the call ran from an
   intraparenchymal haematoma through the brain between it and the table (a large lobar bleed in
   the real GE head: 7-22 mL of 37-48 HU brain added, found blood 17-25 mm deep; the dense parts of
   the phantom subdurals it joins lie 5.7-8.8 mm deep; ``joined_deep_refused_ml``). A
   network trained on synthetic chronic subdurals alone also called the CSF and cortex of real
   atrophic convexities (a real PHE-SICH patient, median 22 HU, pieces of 0.3-2.2 mL); the shipped
   one was trained with real PHE-SICH slices in its window and calls none there (``MODEL_CARD.md``).

So what it adds is always against the inner table; a study without blood stays at 0 mL only
where the second network calls nothing there, which is measured, not assumed (``MODEL_CARD.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe.pipeline.segment.components import bounding_box, grow_into, mask_volume_ml, open_octagon
from ichpipe.pipeline.segment.intracranial import plane_depth_mm

__all__ = ["JOINED_TABLE_SHARE", "ExtraAxialAddition", "add_extra_axial", "inner_table_zone"]

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.floating]

_CONNECT_3D = np.ones((3, 3, 3), dtype=bool)
_SURROUND_MM = (1.0, 4.0)  # min_contrast_hu reads the brain this far (in plane) from a component ...
_SURROUND_HU = (15.0, 100.0)  # ... in this HU range (not CSF, not bone)
_HYPODENSE_HU = (-5.0, 28.0)  # chronic blood (and CSF) beside an acute collection ...
_HYPODENSE_TABLE_MM = 10.0  # ... this close (in plane) to the inner table
#: A component joined to the first network's blood, none of which lies within ``table_mm`` of the table:
#: at least this share of the voxels it would add must (a subacute phantom collection around a piece the
#: first network found: 0.105; the brain between a real haematoma and the table that the call ran into:
#: 0.027; set between them)
JOINED_TABLE_SHARE = 0.05


@dataclass(frozen=True)
class ExtraAxialAddition:
    """What :func:`add_extra_axial` added.

    Attributes
    ----------
    mask:
        The input mask plus ``added``.
    added:
        The voxels added, bool, the mask's shape.
    components_added:
        Components of the second network's call that were added.
    components_refused:
        Components left out (away from the inner table, or under ``min_ml``).
    components_low_density:
        Of the components added, those under ``min_median_hu`` (added for their size, ``low_density_min_ml``).
    low_density_ml:
        The volume those added (mL).
    low_density_grown_ml:
        Of that, what the growth added (mL).
    hypodense_beside_ml:
        Not added: hypodense voxels (-5..28 HU) within 10 mm of the inner table that the network calls
        at the growth threshold and that are connected to an added acute component (mL): the chronic
        part of an acute-on-chronic collection, or CSF (0 without ``grow_candidate``).
    joined_deep_refused_ml:
        Not added: what low-density components joined to deep found blood would have added before any
        growth (mL; ``low_density_max_found_depth_mm``).
    """

    mask: BoolArray
    added: BoolArray
    components_added: int
    components_refused: int
    components_low_density: int = 0
    low_density_ml: float = 0.0
    low_density_grown_ml: float = 0.0
    joined_deep_refused_ml: float = 0.0
    hypodense_beside_ml: float = 0.0


def inner_table_zone(intracranial: BoolArray, pixel_spacing_mm: tuple[float, float], *,
                     table_mm: float) -> BoolArray:
    """Intracranial voxels within ``table_mm`` (in plane) of the intracranial space's edge.

    >>> space = np.zeros((1, 9, 9), dtype=bool); space[0, 1:8, 1:8] = True
    >>> int(inner_table_zone(space, (1.0, 1.0), table_mm=1.0)[0].sum())
    24
    """
    if intracranial.ndim != 3:
        raise ValueError(f"Argument 'intracranial' must be 3D (slices, rows, columns); got shape {intracranial.shape}.")
    if table_mm <= 0:
        raise ValueError(f"Argument 'table_mm' must be positive; got {table_mm}.")
    return np.stack([plane & (plane_depth_mm(plane, pixel_spacing_mm) <= table_mm) for plane in intracranial])


def add_extra_axial(
    mask: BoolArray,
    candidate: BoolArray,
    *,
    intracranial: BoolArray,
    pixel_spacing_mm: tuple[float, float],
    voxel_volumes_ml: FloatArray,
    hu: FloatArray,
    hu_range: tuple[float, float],
    table_mm: float = 3.0,
    min_ml: float = 0.3,
    min_area_fraction: float = 0.7,
    min_thickness_mm: float = 3.0,
    min_median_hu: float | None = 50.0,
    joined_min_median_hu: float | None = None,
    low_density_min_ml: float | None = None,
    low_density_max_found_depth_mm: float | None = None,
    grow_candidate: BoolArray | None = None,
    min_contrast_hu: float | None = None,
    narrow_slices: str = "anchored",
) -> ExtraAxialAddition:
    """``mask`` plus the components of ``candidate`` that lie against the inner table.

    Parameters
    ----------
    mask:
        The first network's final mask, bool (slices, rows, columns).
    candidate:
        The second network's thresholded call, bool, same shape.
    intracranial:
        The intracranial space, bool, same shape; nothing outside it is added.
    pixel_spacing_mm:
        (row, column) spacing.
    voxel_volumes_ml:
        Volume of one voxel of each slice (mL), one per slice.
    hu:
        The volume in HU; voxels outside ``hu_range`` are never added.
    hu_range:
        (low, high) HU a voxel may have to be added.
    table_mm:
        A component must have a voxel within this distance (in plane) of the intracranial edge.
    min_ml:
        Smallest component added.
    min_area_fraction:
        Nothing is added on slices whose intracranial area is under this share of the largest.
    min_thickness_mm:
        Diameter of the in-plane opening applied to the call (0: none).
    min_median_hu:
        The median HU of the voxels a component adds must be at least this (``None``: no such test) ...
    joined_min_median_hu:
        ... and at least this when it is joined to blood in ``mask`` none of which lies within ``table_mm``
        of the inner table (``None``: ``min_median_hu`` alone; needs ``min_median_hu``): a parenchymal
        clot, and the call ran from it over the tissue between it and the table; what it adds then
        holds the clot's partial-volume edge. One that passes adds only its voxels whose 3 x 3 in-plane
        median is at least this, joined to the found blood ...
    low_density_min_ml:
        ... unless it adds at least this many mL (``None``: never): a large subacute or chronic
        collection, not the small calls the network makes on real atrophic convexities ...
    low_density_max_found_depth_mm:
        ... unless it is joined to blood in ``mask`` whose voxels in it lie at a median in-plane depth
        (distance inside the intracranial space's edge) of at least this (``None``: no such test): a
        haematoma in the parenchyma, and the call ran from it through the brain to the table.
    grow_candidate:
        The second network's call at a lower threshold, bool, same shape (``None``: no growth). A
        low-density component that is added grows into the voxels of this call connected to it
        (26-connected, on the slices and HU where anything may be added); acute components never
        grow, and nothing grows where nothing was added. What of this call is hypodense and
        connected to an added acute component is measured (``hypodense_beside_ml``), never added.
    min_contrast_hu:
        An acute component (median at least ``min_median_hu``) must also be this many HU denser
        than the brain around it: the median of the voxels 1-4 mm from it in plane, intracranial,
        not called by either network, within 15-100 HU (``None``: no such test). One that is not is
        taken as isodense (added only under ``low_density_min_ml``): cortex against the table.
    narrow_slices:
        Slices whose intracranial area is under ``min_area_fraction`` of the largest: ``"skip"`` adds
        nothing there; ``"anchored"`` adds a component there only when it holds at least ``min_ml`` on
        the other slices (a collection running on towards the vertex or the skull base; a piece of
        obliquely cut bone there on its own is still left out).

    Examples
    --------
    >>> hu = np.full((5, 20, 20), 30.0, dtype=np.float32)
    >>> space = np.zeros_like(hu, dtype=bool); space[:, 2:18, 2:18] = True
    >>> call = np.zeros_like(space); call[:, 2:5, 5:15] = True; call[:, 9:11, 9:11] = True
    >>> out = add_extra_axial(np.zeros_like(space), call, intracranial=space, pixel_spacing_mm=(1.0, 1.0),
    ...                       voxel_volumes_ml=np.full(5, 0.001), hu=hu, hu_range=(-15.0, 120.0), min_ml=0.01,
    ...                       min_thickness_mm=0.0, min_median_hu=None)
    >>> int(out.added.sum()), out.components_added, out.components_refused  # slices 1-3: 3 x 3 x 10 voxels
    (90, 1, 1)
    """
    shape = mask.shape
    if mask.ndim != 3:
        raise ValueError(f"Argument 'mask' must be 3D (slices, rows, columns); got shape {shape}.")
    arrays = [("candidate", candidate), ("intracranial", intracranial), ("hu", hu)]
    for name, array in arrays + ([("grow_candidate", grow_candidate)] if grow_candidate is not None else []):
        if array.shape != shape:
            raise ValueError(f"Argument '{name}' must have the mask's shape {shape}; got {array.shape}.")
    volumes = np.asarray(voxel_volumes_ml, dtype=np.float64)
    if volumes.shape != (shape[0],):
        raise ValueError(f"Argument 'voxel_volumes_ml' must hold one volume per slice ({shape[0]}); "
                         f"got shape {volumes.shape}.")
    if min_ml < 0:
        raise ValueError(f"Argument 'min_ml' must not be negative; got {min_ml}.")
    if not hu_range[0] < hu_range[1]:
        raise ValueError(f"Argument 'hu_range' must be (low, high) with low < high; got {hu_range}.")
    if not 0.0 <= min_area_fraction <= 1.0:
        raise ValueError(f"Argument 'min_area_fraction' must lie between 0 and 1; got {min_area_fraction}.")
    if min_thickness_mm < 0:
        raise ValueError(f"Argument 'min_thickness_mm' must not be negative; got {min_thickness_mm}.")
    if narrow_slices not in ("skip", "anchored"):
        raise ValueError(f"Argument 'narrow_slices' must be 'skip' or 'anchored'; got {narrow_slices!r}.")
    if joined_min_median_hu is not None and min_median_hu is None:
        raise ValueError("Argument 'joined_min_median_hu' needs 'min_median_hu'; got joined_min_median_hu="
                         f"{joined_min_median_hu} with min_median_hu=None.")
    if low_density_min_ml is not None and low_density_min_ml < 0:
        raise ValueError(f"Argument 'low_density_min_ml' must not be negative; got {low_density_min_ml}.")
    if low_density_max_found_depth_mm is not None and low_density_max_found_depth_mm <= 0:
        raise ValueError("Argument 'low_density_max_found_depth_mm' must be positive; got"
                         f" {low_density_max_found_depth_mm}.")
    area = intracranial.sum(axis=(1, 2))
    wide = area >= min_area_fraction * area.max() if area.max() > 0 else np.zeros(shape[0], dtype=bool)
    interior = intracranial & wide[:, None, None] if narrow_slices == "skip" else intracranial.copy()
    interior[1:] &= intracranial[:-1]
    interior[:-1] &= intracranial[1:]
    interior[[0, -1]] = False
    steps = max(1, round(min_thickness_mm / 2.0 / min(pixel_spacing_mm))) if min_thickness_mm > 0 else 0
    added = np.zeros(shape, dtype=bool)
    # work on the call's bounding box (a 600-slice study never labels its whole grid)
    # (wide enough for the surround that min_contrast_hu reads)
    ring_px = math.ceil(_SURROUND_MM[1] / min(pixel_spacing_mm)) + 1 if min_contrast_hu is not None else 0
    box = bounding_box(candidate & interior, margin=steps + 1 + ring_px)
    if box is None:
        return ExtraAxialAddition(mask.copy(), added, 0, 0)
    allowed = candidate[box] & interior[box] & (hu[box] >= hu_range[0]) & (hu[box] <= hu_range[1])
    if steps:
        allowed = np.stack([open_octagon(plane, steps) for plane in allowed])
    labels, n = ndimage.label(allowed, structure=_CONNECT_3D)
    if n == 0:
        return ExtraAxialAddition(mask.copy(), added, 0, 0)
    # in-plane depth inside the intracranial edge on the call's box; the inner table's zone lies within table_mm
    depth = np.stack([plane_depth_mm(plane, pixel_spacing_mm)[box[1], box[2]] for plane in intracranial[box[0]]])
    zone = intracranial[box] & (depth <= table_mm)
    index = np.arange(1, n + 1)
    touches = ndimage.maximum(zone, labels, index) > 0
    ml = np.asarray(ndimage.sum(np.broadcast_to(volumes[box[0], None, None], labels.shape), labels, index),
                    dtype=np.float64)
    keep = touches & (ml >= min_ml)
    # a component joined to blood already found away from the table adds only its other voxels: they must
    # lie along the table, or the call ran from a haematoma into the brain beside it (PHE-SICH patient 0037)
    found = mask[box]
    joined = np.asarray(ndimage.maximum(found, labels, index), dtype=bool)
    found_on_table = np.asarray(ndimage.maximum(found & zone, labels, index), dtype=bool)
    new_px = np.asarray(ndimage.sum(~found, labels, index), dtype=np.float64)
    along = np.asarray(ndimage.sum(zone & ~found, labels, index), dtype=np.float64)
    keep &= ~joined | found_on_table | (along >= JOINED_TABLE_SHARE * new_px)
    if narrow_slices == "anchored":
        on_wide = np.broadcast_to((volumes * wide)[box[0], None, None], labels.shape)
        keep &= np.asarray(ndimage.sum(on_wide, labels, index), dtype=np.float64) >= min_ml
    parenchymal = joined & ~found_on_table  # joined to found blood none of which lies on the table
    low = np.zeros(n, dtype=bool)
    if min_median_hu is not None:
        median = _added_median_hu(labels, index, hu[box], found, new_px)
        low = median < min_median_hu
        if joined_min_median_hu is not None:  # between a parenchymal clot and the table: its edge lifts the median
            low |= parenchymal & (median < joined_min_median_hu)
        if min_contrast_hu is not None:
            low |= _faint(labels, keep & ~low, hu[box], intracranial[box] & ~candidate[box] & ~mask[box],
                          pixel_spacing_mm, min_contrast_hu, margin=ring_px)
        # its size too is what it adds: a lobar bleed's own volume does not make the cortex beside it a collection
        new_ml = np.asarray(ndimage.sum(np.broadcast_to(volumes[box[0], None, None], labels.shape) * ~found, labels,
                                        index), dtype=np.float64)
        keep &= ~low | (new_ml >= (np.inf if low_density_min_ml is None else low_density_min_ml))
    deep_ml = 0.0
    if low_density_max_found_depth_mm is not None and (keep & low & joined).any():
        # a low-density component joined to a haematoma deep in the parenchyma is the brain beside it
        picked = keep & low & joined
        deep = np.zeros(n, dtype=bool)
        # the median depth of the found blood in each
        found_depth = np.asarray(ndimage.median(depth, np.where(found, labels, 0), index[picked]), dtype=np.float64)
        deep[picked] = found_depth >= low_density_max_found_depth_mm
        deep_ml = float(new_ml[deep].sum())
        keep &= ~deep
    low_ml = grown_ml = beside_ml = 0.0
    if keep.any():
        added[box] = np.isin(labels, index[keep]) & ~mask[box]
        if joined_min_median_hu is not None and (keep & ~low & parenchymal).any():
            # acute, joined to a clot away from the table: only its dense part (the clot's unread rest), never
            # the tissue between the clot and the table that the call ran over with it
            added[box] &= ~_thin_part(labels, index[keep & ~low & parenchymal], hu[box], found, joined_min_median_hu)
        if (keep & low).any():
            seeds = np.zeros(shape, dtype=bool)
            seeds[box] = np.isin(labels, index[keep & low])
            if grow_candidate is not None:
                grown = grow_into(seeds, grow_candidate & interior & (hu >= hu_range[0]) & (hu <= hu_range[1]))
                grown &= ~mask & ~added
                grown_ml = mask_volume_ml(grown, volumes)
                added |= grown
                seeds |= grown
            low_ml = mask_volume_ml(seeds & ~mask, volumes)
        if grow_candidate is not None and (keep & ~low).any():  # after the growth: what it took is counted
            beside_ml = _hypodense_beside(np.isin(labels, index[keep & ~low]), box, mask | added, grow_candidate,
                                          intracranial, hu, pixel_spacing_mm, volumes)
    return ExtraAxialAddition(mask | added, added, int(keep.sum()), int(n - keep.sum()),
                              components_low_density=int((keep & low).sum()), low_density_ml=low_ml,
                              low_density_grown_ml=grown_ml, hypodense_beside_ml=beside_ml,
                              joined_deep_refused_ml=deep_ml)


def _added_median_hu(labels: npt.NDArray[np.integer], index: npt.NDArray[np.integer], hu: FloatArray,
                     found: BoolArray, new_px: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Each component's median HU over the voxels it would add (over all of it when it adds none).

    A component joined to a haematoma the first network found holds that haematoma's dense voxels: read
    whole, the cortex a call ran along the table from a lobar bleed (42 HU on the real GE head) passed as
    acute blood.
    """
    adds = new_px > 0
    median = np.empty(index.shape, dtype=np.float64)
    if (~adds).any():
        median[~adds] = ndimage.median(hu, labels, index[~adds])
    if adds.any():
        median[adds] = ndimage.median(hu, np.where(found, 0, labels), index[adds])
    return median


def _thin_part(labels: npt.NDArray[np.integer], picked: npt.NDArray[np.integer], hu: FloatArray, found: BoolArray,
               min_hu: float) -> BoolArray:
    """The voxels of the ``picked`` components, not ``found``, outside their dense part: voxels whose 3 x 3
    in-plane median is at least ``min_hu`` joined (26-connected) to the found blood in them."""
    part = np.isin(labels, picked)
    thin = np.zeros_like(part)
    near = bounding_box(part, margin=1)  # the 3 x 3 median of its voxels reads no further
    if near is None:
        return thin
    part_near, found_near = part[near], found[near] & part[near]
    dense = part_near & ~found_near & (ndimage.median_filter(hu[near], size=(1, 3, 3)) >= min_hu)
    joined, _ = ndimage.label(dense | found_near, structure=_CONNECT_3D)
    dense &= np.isin(joined, np.unique(joined[found_near]))
    thin[near] = part_near & ~found[near] & ~dense
    return thin


def _hypodense_beside(acute_in_box: BoolArray, box: tuple[slice, ...], taken: BoolArray,
                      candidate: BoolArray, intracranial: BoolArray, hu: FloatArray,
                      pixel_spacing_mm: tuple[float, float], volumes: npt.NDArray[np.float64]) -> float:
    """mL of ``candidate`` that is hypodense, near the table, not ``taken`` and connected to the acute components."""
    seeds = np.zeros(taken.shape, dtype=bool)
    seeds[box] = acute_in_box
    # all of the intracranial space (not only ``interior``): a crescent's outer rim on a convexity is
    # often not intracranial on the next slice up
    region = candidate & intracranial & ~taken & (hu >= _HYPODENSE_HU[0]) & (hu <= _HYPODENSE_HU[1])
    on = np.flatnonzero(region.any(axis=(1, 2)))
    if on.size == 0:
        return 0.0
    near = slice(int(on[0]), int(on[-1]) + 1)
    region[near] &= inner_table_zone(intracranial[near], pixel_spacing_mm, table_mm=_HYPODENSE_TABLE_MM)
    return mask_volume_ml(grow_into(seeds, region) & region, volumes)


def _faint(labels: npt.NDArray[np.int32], check: npt.NDArray[np.bool_], hu: FloatArray, brain: BoolArray,
           pixel_spacing_mm: tuple[float, float], min_contrast_hu: float, *, margin: int) -> npt.NDArray[np.bool_]:
    """Which labelled components (of those ``check`` marks) are under ``min_contrast_hu`` above their surround.

    Each component is read on its own bounding box widened by ``margin`` pixels in plane (the surround).
    """
    faint = np.zeros(len(check), dtype=bool)
    objects = ndimage.find_objects(labels)
    for i in np.flatnonzero(check):
        zs, ys, xs = objects[i]
        near = (zs, *(slice(max(0, axis.start - margin), axis.stop + margin) for axis in (ys, xs)))
        component = labels[near] == i + 1
        ring = np.zeros_like(component)
        for z, plane in enumerate(component):
            distance = ndimage.distance_transform_edt(~plane, sampling=pixel_spacing_mm)
            ring[z] = (distance > _SURROUND_MM[0]) & (distance <= _SURROUND_MM[1])
        ring &= brain[near] & (hu[near] > _SURROUND_HU[0]) & (hu[near] < _SURROUND_HU[1])
        if ring.any():
            faint[i] = float(np.median(hu[near][component])) - float(np.median(hu[near][ring])) < min_contrast_hu
    return faint
