"""A head's top slices read enlarged: the networks are blind to blood on a small section near the vertex.

Painted into the real GE head of ``../shared/data``, a 4 mL bleed on its top slices (intracranial
sections of 40-70 cm^2, a fifth to two fifths of the widest one's 186) was read 0.00 mL: the main
network's probability inside an obvious 60-75 HU oval was 0.02, where the same oval two slices
lower (122 cm^2) read 0.96. The phantoms the networks learnt from hold no bleed where the head
narrows to the vertex, and a small brain section inside a thick ring of bone is what they learnt to
call empty. Shown the same slice enlarged 1.7 times, the network called 91 % of the oval (MODEL_CARD.md,
"The top slices read enlarged").

:func:`section_zoom` measures each slice's intracranial section; a slice above the widest one (toward
the vertex: larger patient z) whose section is under ``min_share`` of the widest one's area is shown
to every network enlarged to the widest one's size, by ``sqrt(widest / area)`` (at most
``max_factor``), about its centroid, put on the widest section's (so the enlarged section lies where the
crop already holds a head), and the probabilities are mapped back before they are thresholded
(:func:`zoom_slices`). Slivers under :data:`MIN_SECTION_SHARE` of the widest section are left as they
are, and what the main network calls on enlarged slices is kept only in pieces dense enough to be
blood (:func:`faint_on_enlarged`, ``inference.vertex_zoom_min_hu``): enlarged, a phantom's grey matter
under the vertex (46-48 HU) was called blood. Every rule that reads HU reads the slices as they are.
The skull base's small sections (below the widest slice) are not enlarged: there the networks'
blindness is anatomy they never saw (the temporal fossae, the posterior fossa), not the section's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.pipeline.segment.components import components_by_median_3d, mask_volume_ml
from ichpipe.pipeline.segment.segmenter import SegmentationResult

__all__ = ["SectionZoom", "faint_on_enlarged", "section_zoom", "without_faint_enlarged", "zoom_slices"]

FloatArray = npt.NDArray[np.float64]

#: Sections under this share of the widest are not enlarged: a sliver under the vertex is mostly the skull's
#: partial volume (55-100 HU), which an enlarged view shows as dense tissue (a phantom's top slice, 0.09 of the
#: widest, was called blood at 2 times; the real GE head's slice at 0.21 held half of a painted bleed).
MIN_SECTION_SHARE = 0.15


@dataclass(frozen=True)
class SectionZoom:
    """How much each slice is enlarged for the networks, and about where.

    Attributes
    ----------
    factors:
        One factor per slice (1: shown as it is).
    centres:
        ``(slices, 2)``: the row and column (image pixels) of each enlarged slice's section centroid.
    target:
        Row and column (image pixels) the centroids are moved to: the widest section's centroid.
    """

    factors: FloatArray
    centres: FloatArray
    target: tuple[float, float]

    @property
    def slices(self) -> tuple[int, ...]:
        """The slices shown enlarged."""
        return tuple(int(z) for z in np.flatnonzero(self.factors > 1.0))

    def scaled(self, row_scale: float, column_scale: float) -> SectionZoom:
        """The same zoom with its points in a grid ``row_scale`` x ``column_scale`` times the image's."""
        scale = np.array([row_scale, column_scale])
        return SectionZoom(self.factors, self.centres * scale,
                           (self.target[0] * row_scale, self.target[1] * column_scale))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (``quality.measurements.section_zoom``)."""
        return {"slices": list(self.slices), "max_factor": round(float(self.factors.max()), 3)}


def section_zoom(space: npt.NDArray[np.bool_], superior_mm: npt.ArrayLike, *, min_share: float = 0.6,
                 max_factor: float = 2.0) -> SectionZoom | None:
    """Which slices of a head the networks read enlarged, and by how much (``None``: none).

    Parameters
    ----------
    space:
        The intracranial space, bool ``(slices, rows, columns)``.
    superior_mm:
        Each slice's height in the patient (its position's z, LPS: larger is toward the vertex).
    min_share:
        A section above the widest one and smaller than this share of its area (but not under
        :data:`MIN_SECTION_SHARE` of it) is enlarged to its size.
    max_factor:
        The largest enlargement (of a length).

    Examples
    --------
    >>> space = np.zeros((3, 40, 40), dtype=bool)
    >>> space[0, 5:35, 5:35] = True; space[1, 10:30, 10:30] = True; space[2, 14:26, 14:26] = True
    >>> zoom = section_zoom(space, [0.0, 5.0, 10.0], min_share=0.5, max_factor=2.0)  # shares 1, 0.44, 0.16
    >>> zoom.slices, [round(float(f), 2) for f in zoom.factors]
    ((1, 2), [1.0, 1.5, 2.0])
    >>> space[2] = False; space[2, 15:25, 15:25] = True  # 0.11 of the widest: a sliver, as it is
    >>> section_zoom(space, [0.0, 5.0, 10.0], min_share=0.5, max_factor=2.0).slices
    (1,)
    >>> section_zoom(space, [10.0, 5.0, 0.0]) is None  # the small sections lie below the widest: the skull base
    True
    """
    if not 0.0 < min_share <= 1.0:
        raise ValueError(f"Argument 'min_share' must lie in (0, 1]; got {min_share!r}.")
    if not 1.0 <= max_factor <= 4.0:
        raise ValueError(f"Argument 'max_factor' must lie in [1, 4]; got {max_factor!r}.")
    height = np.asarray(superior_mm, dtype=np.float64).reshape(-1)
    if space.ndim != 3 or height.size != space.shape[0]:
        raise ValueError("Argument 'superior_mm' must hold one height per slice of 'space'.")
    areas = space.sum(axis=(1, 2)).astype(np.float64)
    if not areas.any():
        return None
    widest = int(np.argmax(areas))
    factors = np.ones(len(areas))
    centres = np.zeros((len(areas), 2))
    small = (areas >= MIN_SECTION_SHARE * areas[widest]) & (areas < min_share * areas[widest])
    for z in np.flatnonzero(small & (height > height[widest])):
        factors[z] = min(float(np.sqrt(areas[widest] / areas[z])), max_factor)
        centres[z] = ndimage.center_of_mass(space[z])
    if not (factors > 1.0).any():
        return None
    row, column = ndimage.center_of_mass(space[widest])
    return SectionZoom(factors, centres, (float(row), float(column)))


def zoom_slices(images: npt.NDArray[np.float32], slices: Sequence[int], zoom: SectionZoom, *, fill: float,
                back: bool = False) -> npt.NDArray[np.float32]:
    """``images`` (one per entry of ``slices``) enlarged as ``zoom`` says, or mapped back (``back``).

    Enlarged: the slice's section centroid goes to ``zoom.target`` and the image grows about it by the
    slice's factor (bilinear; ``fill`` outside). Back: the inverse, so a probability map of an
    enlarged slice lands on the slice as it is (0 where the enlarged view did not reach).

    >>> img = np.zeros((1, 20, 20), dtype=np.float32); img[0, 8:12, 8:12] = 1.0
    >>> zoom = SectionZoom(np.array([2.0]), np.array([[9.5, 9.5]]), (9.5, 9.5))
    >>> big = zoom_slices(img, [0], zoom, fill=0.0)
    >>> int((big[0] > 0.5).sum()), int((zoom_slices(big, [0], zoom, fill=0.0, back=True)[0] > 0.5).sum())
    (64, 16)
    """
    out = np.array(images, dtype=np.float32, copy=True)
    for k, z in enumerate(slices):
        f = float(zoom.factors[z])
        if f <= 1.0:
            continue
        centre, target = zoom.centres[z], np.asarray(zoom.target)
        if back:  # image point x shows the enlarged view's point target + f (x - centre)
            matrix, offset = np.eye(2) * f, target - f * centre
            value = 0.0
        else:  # enlarged point y shows the image's point centre + (y - target) / f
            matrix, offset = np.eye(2) / f, centre - target / f
            value = fill
        out[k] = ndimage.affine_transform(images[k], matrix, offset=offset, order=1, mode="constant", cval=value)
    return out


def faint_on_enlarged(mask: npt.NDArray[np.bool_], hu: npt.NDArray[np.floating], zoom: SectionZoom, *,
                      below: float) -> npt.NDArray[np.bool_]:
    """The pieces of ``mask`` on enlarged slices whose median HU is under ``below``.

    The part of ``mask`` on the slices ``zoom`` enlarges is split into its own 26-connected pieces (a
    bleed running on from a slice read as it is gives one piece there); those of a median under
    ``below`` are returned. What the networks call faint on a view they never learnt (the cortex cut
    flat under the vertex) is not taken on their word.

    >>> hu = np.full((3, 8, 8), 48.0); hu[:, :4] = 70.0
    >>> mask = np.zeros(hu.shape, dtype=bool); mask[1:, 1:3, 1:3] = True; mask[2, 5:7, 5:7] = True
    >>> zoom = SectionZoom(np.array([1.0, 1.0, 1.5]), np.zeros((3, 2)), (4.0, 4.0))
    >>> faint = faint_on_enlarged(mask, hu, zoom, below=55.0)
    >>> int(faint.sum()), bool(faint[2, 5, 5]), bool(faint[2, 1, 1])
    (4, True, False)
    """
    enlarged = zoom.factors > 1.0
    faint, _ = components_by_median_3d(mask & enlarged[:, None, None], hu, below=below)
    return faint


def without_faint_enlarged(result: SegmentationResult, volume: CTVolume, zoom: SectionZoom, *,
                           min_hu: float | None) -> SegmentationResult:
    """``result`` without its faint pieces on enlarged slices (:func:`faint_on_enlarged`; ``min_hu``
    ``None``: all kept), ``details["section_zoom"]`` saying which slices were enlarged and what was not kept."""
    said: dict[str, object] = zoom.to_dict()
    if min_hu is not None:
        faint = faint_on_enlarged(result.mask, volume.hu, zoom, below=min_hu)
        said["faint_ml"] = round(mask_volume_ml(faint, volume.geometry.voxel_volumes_ml), 4)
        result = replace(result, mask=result.mask & ~faint)
    return replace(result, details={**result.details, "section_zoom": said})
