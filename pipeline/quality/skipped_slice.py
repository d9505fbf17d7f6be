"""Blood that skips a slice (flag ``blood_skips_slice``).

A bleed is one body of blood: where the slices on both sides of a slice hold blood at the same place,
so does the slice between them. When the segmenter's mask has blood on slices ``z - 1`` and ``z + 1``
that overlap in plane and none there on ``z``, that slice was read empty where the bleed runs through
it: its image was spoilt (a head that moved while the gantry turned, metal or noise streaks) or the
segmenter failed on it, and the volume is short by about that slice's share of the bleed.

It was built for a head that moves during the scan (``MODEL_CARD.md``, "A head that moves during the
scan"): on a phantom with a faint subacute bleed, strong motion on the bleed's slices wiped one slice's
blood out (0 of its 2,142 pixels found, 1,107 and 939 on the slices either side), the volume fell from
7.02 to 3.06 of 12.67 mL, and every other flag fell silent. No measure of the image itself tells a
moved slice from a still one across heads (that section lists what was tried); the mask's own shape
does not depend on the scanner.

The overlap is the pixels of the same (row, column) on both neighbours, so a gantry tilt's shift
between slices (1.6 mm a 5 mm slice at 18.5 degrees) narrows it. It falls into pieces, and a piece is
part of the hole only when no blood on the slice between comes within ``slack_mm`` of it: a slice that
holds a narrower part of the same bleed (an hourglass, a notch, a ragged edge) touches it. The flag is
raised from a hole of ``min_area_mm2``. A first version that counted every part of the overlap left
uncovered (>= 50 mm^2 and half the overlap) fired on 7 of 225 phantom studies with right volumes and on
one truth mask: narrower middle slices, two lesions in line, a false-positive piece above a bleed. With
whole pieces the largest hole on the 252-study phantom census is 33.9 mm^2 (the truth masks 35.2: real
hematoma shapes at 4-6 mm slices), on the threshold baseline's masks 65.3, on the real heads and the 51
PHE-SICH patients 4.2; the moved slice above: 141. Runs of two empty slices (``max_run`` 2) reach
further than anatomy keeps still: an intraventricular cast's narrow stalk under the ventricles' bodies
three slices up left an 80 mm^2 hole on a phantom read right. The flag says the volume may be too low;
it adds nothing, and a bleed's end slice read empty, or a slice read narrower than it is, leaves no hole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe.pipeline.quality.flags import QualityFlag, slice_range_text
from ichpipe.pipeline.segment.components import bounding_box, disk_2d

__all__ = ["SkippedSlice", "check_skipped_slice", "skipped_slice"]

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class SkippedSlice:
    """The largest hole in the blood: where the slices on both sides overlap and the slices between hold none.

    Attributes
    ----------
    slices:
        Indices (in volume order) of the empty slices (one, or a run of them); empty when there is no hole.
    hole_mm2:
        Area (mm^2, in plane) of the hole: the pieces of the overlap that no blood on the slices between
        comes within ``slack_mm`` of.
    overlap_mm2:
        Area (mm^2) where the blood of the slices on both sides overlaps.
    """

    slices: tuple[int, ...]
    hole_mm2: float
    overlap_mm2: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"slices": list(self.slices), "hole_mm2": round(self.hole_mm2, 1),
                "overlap_mm2": round(self.overlap_mm2, 1)}


def skipped_slice(
    blood: BoolArray,
    pixel_spacing_mm: tuple[float, float],
    *,
    slack_mm: float = 1.0,
    max_run: int = 1,
) -> SkippedSlice:
    """Find the largest hole where blood skips one slice or a run of up to ``max_run`` slices.

    The overlap of the blood on two slices with up to ``max_run`` slices between them falls into pieces
    (8-connected in plane); a piece is part of the hole when the slices between hold no blood within
    ``slack_mm`` of any of it. A slice that holds a narrower part of the same bleed (an hourglass, a
    notch, a ragged edge) touches the piece and leaves no hole.

    Parameters
    ----------
    blood:
        The hematoma mask, bool (slices, rows, columns), slices in volume order.
    pixel_spacing_mm:
        (row spacing, column spacing).
    slack_mm, max_run:
        See :class:`~ichpipe.pipeline.config.quality_artifact_config.SkippedSliceConfig`.

    Returns
    -------
    SkippedSlice
        The largest hole, its slices and the overlap round it.

    Examples
    --------
    >>> blood = np.zeros((3, 20, 20), dtype=bool)
    >>> blood[:, 5:15, 5:15] = True
    >>> blood[1] = False  # the middle slice read empty
    >>> found = skipped_slice(blood, (1.0, 1.0))
    >>> found.slices, found.hole_mm2, found.overlap_mm2
    ((1,), 100.0, 100.0)
    >>> blood[1, 8:11, 8:11] = True  # a narrower part of the bleed: it touches the overlap
    >>> skipped_slice(blood, (1.0, 1.0)).hole_mm2
    0.0
    """
    if blood.ndim != 3:
        raise ValueError(f"Argument 'blood' must be 3D (slices, rows, columns); got {blood.ndim} dimensions.")
    if max_run < 1:
        raise ValueError(f"Argument 'max_run' must be at least 1; got {max_run}.")
    if slack_mm < 0:
        raise ValueError(f"Argument 'slack_mm' must not be negative; got {slack_mm}.")
    spacing = (float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1]))
    pixel_mm2 = spacing[0] * spacing[1]
    footprint = disk_2d(slack_mm, spacing)
    best = SkippedSlice((), 0.0, 0.0)
    box = bounding_box(np.asarray(blood.any(axis=0), dtype=bool))  # every overlap and all blood near one lie in it
    if box is None:
        return best
    blood = blood[(slice(None), *box)]
    has = np.asarray(blood.any(axis=(1, 2)), dtype=bool)
    reach = [ndimage.binary_dilation(p, footprint) if p.any() else p for p in blood]
    for below in (int(z) for z in np.flatnonzero(has[:-2])):
        for above in range(below + 2, min(below + 2 + max_run, blood.shape[0])):
            if not has[above]:
                continue
            overlap = blood[below] & blood[above]
            if not overlap.any():
                continue
            pieces, _ = ndimage.label(overlap, structure=np.ones((3, 3), dtype=bool))
            between = np.logical_or.reduce(reach[below + 1: above])
            touched = np.unique(pieces[between & overlap])
            hole = overlap & ~np.isin(pieces, touched)
            found = SkippedSlice(tuple(range(below + 1, above)), float(hole.sum()) * pixel_mm2,
                                 float(overlap.sum()) * pixel_mm2)
            if found.hole_mm2 > best.hole_mm2:
                best = found
    return best


def check_skipped_slice(found: SkippedSlice, *, min_area_mm2: float | None = 80.0) -> list[QualityFlag]:
    """Flag ``blood_skips_slice`` when the hole is at least ``min_area_mm2``.

    Examples
    --------
    >>> check_skipped_slice(SkippedSlice((11,), 141.0, 141.0))[0].code
    'blood_skips_slice'
    >>> check_skipped_slice(SkippedSlice((11,), 40.0, 110.0))
    []
    """
    if min_area_mm2 is None or not found.slices or found.hole_mm2 < min_area_mm2:
        return []
    where = slice_range_text(found.slices)
    return [QualityFlag(
        "blood_skips_slice",
        f"Blood on the slices either side of {where} overlaps over {found.overlap_mm2:.0f} mm^2, and"
        f" {found.hole_mm2:.0f} mm^2 of it has none on {where}: a slice the bleed runs through was read empty"
        " (a head that moved, metal or noise streaks on that slice?); the volume may be too low.",
        round(found.hole_mm2, 1), min_area_mm2)]
