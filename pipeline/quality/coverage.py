"""Whether the series covers the head and the blood (``blood_at_scan_end``, ``head_not_covered``,
``head_outside_field_of_view``).

A volume is measured on the slices there are. When the segmented blood lies on the first or last
slice of the series, the bleed may go on beyond the scanned range and the volume is too low by
what lies there; when an end slice still holds a large intracranial section, the series stops
inside the head (a limited or partial acquisition, a posterior-fossa or vertex reconstruction
selected alone), and blood beyond it is not measured at all. Neither is visible in the number. A
whole head CT runs from below the skull base to above the vertex: its end slices hold no
intracranial space or a sliver (the real GE head and IVH example: 0 and under 3 % of the largest
section; the 222 phantom studies generated here at most 38 %).

In plane the same can happen: a reconstruction whose field of view is smaller than the head (a
tight display field, a head off the table's centre) cuts the skull and the brain at the image's
edge, or at the reconstruction circle where the scanner pads the corners. The intracranial space
then reaches the field's edge, which no whole head does (its skull and scalp lie between), and blood
beyond the edge is not measured. The finder bridges the cut ring as if bone were missing, so
``skull_open`` would name a craniectomy; :func:`check_field_of_view` names the cut instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ichpipe.pipeline.quality.flags import QualityFlag, slice_range_text

__all__ = ["FieldEdge", "ScanEnd", "check_coverage", "check_field_of_view", "field_edge", "scan_ends"]

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class ScanEnd:
    """One end slice of the series.

    Attributes
    ----------
    slice_index:
        0 or the last index.
    side:
        ``top`` (superior) or ``bottom`` (inferior) in the patient, or ``first`` / ``last`` when the
        slices are not axial enough to say.
    intracranial_share:
        The slice's intracranial area over the largest slice's (0 without an intracranial space).
    blood_mm2:
        Segmented blood on the slice, mm^2.
    """

    slice_index: int
    side: str
    intracranial_share: float
    blood_mm2: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``quality.measurements.scan_ends``)."""
        return {**asdict(self), "intracranial_share": round(self.intracranial_share, 3),
                "blood_mm2": round(self.blood_mm2, 1)}


def scan_ends(
    intracranial: BoolArray,
    blood: BoolArray,
    pixel_spacing_mm: tuple[float, float],
    normal: npt.ArrayLike,
) -> tuple[ScanEnd, ScanEnd]:
    """The first and last slice: their intracranial share and blood.

    Parameters
    ----------
    intracranial, blood:
        The intracranial mask and the hematoma mask, bool (slices, rows, columns), slices sorted along
        ``normal``.
    pixel_spacing_mm:
        (row, column) spacing in mm.
    normal:
        The slices' normal in patient coordinates (LPS: +z is superior).

    Examples
    --------
    >>> import numpy as np
    >>> ic = np.zeros((3, 4, 4), dtype=bool); ic[:, 1:3, 1:3] = True; ic[2, 1, 1] = False
    >>> first, last = scan_ends(ic, np.zeros_like(ic), (1.0, 1.0), (0.0, 0.0, 1.0))
    >>> first.side, last.side, last.intracranial_share
    ('bottom', 'top', 0.75)
    """
    if intracranial.shape != blood.shape or intracranial.ndim != 3:
        raise ValueError("Arguments 'intracranial' and 'blood' must be 3D arrays of one shape.")
    n = intracranial.shape[0]
    area = np.count_nonzero(intracranial.reshape(n, -1), axis=1).astype(np.float64)
    largest = float(area.max()) if n else 0.0
    pixel_mm2 = float(pixel_spacing_mm[0]) * float(pixel_spacing_mm[1])
    z = float(np.asarray(normal, dtype=np.float64).reshape(3)[2])
    names = ("bottom", "top") if z > 0.5 else ("top", "bottom") if z < -0.5 else ("first", "last")
    ends = []
    for index, side in zip((0, n - 1), names, strict=True):
        share = float(area[index]) / largest if largest > 0 else 0.0
        ends.append(ScanEnd(index, side, share, float(np.count_nonzero(blood[index])) * pixel_mm2))
    return ends[0], ends[1]


def check_coverage(
    ends: tuple[ScanEnd, ScanEnd],
    *,
    min_blood_mm2: float | None = 20.0,
    max_end_share: float | None = 0.5,
) -> list[QualityFlag]:
    """Flags for blood on an end slice and for a series that ends inside the head.

    Parameters
    ----------
    ends:
        :func:`scan_ends`.
    min_blood_mm2, max_end_share:
        See :class:`~ichpipe.pipeline.config.quality_config.CoverageConfig` (``None``: that flag off).
    """
    flags: list[QualityFlag] = []
    if min_blood_mm2 is not None:
        hit = [e for e in ends if e.blood_mm2 >= min_blood_mm2]
        if hit:
            worst = max(hit, key=lambda e: e.blood_mm2)
            where = " and ".join(f"the {e.side} slice ({e.blood_mm2:.0f} mm^2)" for e in hit)
            flags.append(QualityFlag(
                "blood_at_scan_end",
                f"Segmented blood lies on {where} of the series: the bleed may go on beyond the scanned range,"
                " and the volume is then too low.",
                round(worst.blood_mm2, 1), min_blood_mm2))
    if max_end_share is not None:
        open_ends = [e for e in ends if e.intracranial_share >= max_end_share]
        if open_ends:
            worst = max(open_ends, key=lambda e: e.intracranial_share)
            where = " and ".join(f"its {e.side} slice holds {100 * e.intracranial_share:.0f} %" for e in open_ends)
            flags.append(QualityFlag(
                "head_not_covered",
                f"The series ends inside the head ({where} of the largest intracranial section): blood beyond the"
                " scanned range is not measured.",
                round(worst.intracranial_share, 3), max_end_share))
    return flags


@dataclass(frozen=True)
class FieldEdge:
    """Where the intracranial space reaches the edge of the reconstructed field of view.

    Attributes
    ----------
    field:
        ``square`` (the image's border) or ``circle`` (the reconstruction circle: every pixel outside
        the inscribed circle holds one padding value).
    edge_mm:
        Per slice, the length of the field's edge the intracranial space reaches within ``band_mm``, mm
        (its area in the band over the band's width).
    band_mm:
        The band along the edge that was read.
    """

    field: str
    edge_mm: tuple[float, ...]
    band_mm: float

    @property
    def longest_mm(self) -> float:
        """The longest contact on one slice (0 when the space stays inside the field)."""
        return max(self.edge_mm, default=0.0)

    @property
    def touched_slices(self) -> tuple[int, ...]:
        """The slices where the space reaches the edge at all."""
        return tuple(z for z, mm in enumerate(self.edge_mm) if mm > 0)

    def slices_from(self, min_edge_mm: float) -> tuple[int, ...]:
        """The slices whose contact is at least ``min_edge_mm``."""
        return tuple(z for z, mm in enumerate(self.edge_mm) if mm >= min_edge_mm)

    def to_dict(self, min_edge_mm: float | None) -> dict[str, Any]:
        """JSON-ready form (``quality.measurements.field_edge``): the slices from ``min_edge_mm``, or every
        slice touched when the check is off (``None``)."""
        slices = self.touched_slices if min_edge_mm is None else self.slices_from(min_edge_mm)
        return {"field": self.field, "longest_mm": round(self.longest_mm, 1), "slices": list(slices),
                "band_mm": self.band_mm}


def _padded_circle(hu: npt.NDArray[np.floating], outside: BoolArray) -> bool:
    """Whether every pixel outside the inscribed circle holds one value on every slice."""
    if not outside.any() or hu.shape[0] == 0:
        return False
    first = float(hu[0][outside][0])
    for plane in hu:
        values = plane[outside]
        if float(values.min()) != first or float(values.max()) != first:
            return False
    return True


def field_edge(
    intracranial: BoolArray,
    hu: npt.NDArray[np.floating],
    pixel_spacing_mm: tuple[float, float],
    *,
    band_mm: float = 3.0,
) -> FieldEdge:
    """How far along the field of view's edge the intracranial space runs, per slice.

    Parameters
    ----------
    intracranial:
        The intracranial mask, bool (slices, rows, columns).
    hu:
        The HU volume (read outside the inscribed circle to tell a padded reconstruction circle).
    pixel_spacing_mm:
        (row, column) spacing in mm.
    band_mm:
        Intracranial voxels this close to the edge reach it (a whole head keeps its skull and scalp,
        10 mm and more, between).

    Examples
    --------
    >>> import numpy as np
    >>> ic = np.zeros((2, 20, 20), dtype=bool); ic[:, 5:15, 5:20] = True   # runs off the right border
    >>> edge = field_edge(ic, np.zeros((2, 20, 20)) - 1000.0 + np.arange(20), (1.0, 1.0), band_mm=2.0)
    >>> edge.field, edge.edge_mm
    ('square', (10.0, 10.0))
    """
    if intracranial.shape != hu.shape or intracranial.ndim != 3:
        raise ValueError("Arguments 'intracranial' and 'hu' must be 3D arrays of one shape.")
    if band_mm <= 0:
        raise ValueError(f"Argument 'band_mm' must be positive; got {band_mm}.")
    n, rows, cols = intracranial.shape
    spacing = (float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1]))
    # distance (mm) of each pixel centre from the square's edge and from the inscribed circle
    yy, xx = np.mgrid[:rows, :cols].astype(np.float64)
    to_square = np.minimum.reduce([(yy + 0.5) * spacing[0], (rows - 0.5 - yy) * spacing[0],
                                   (xx + 0.5) * spacing[1], (cols - 0.5 - xx) * spacing[1]])
    radius = 0.5 * min(rows * spacing[0], cols * spacing[1])
    from_centre = np.hypot((yy - (rows - 1) / 2) * spacing[0], (xx - (cols - 1) / 2) * spacing[1])
    circle = _padded_circle(hu, from_centre > radius + max(spacing))
    depth = radius - from_centre if circle else to_square
    band = depth <= band_mm
    counts = np.count_nonzero(intracranial[:, band], axis=1) if n else np.zeros(0)
    edge_mm = tuple(float(c) * spacing[0] * spacing[1] / band_mm for c in counts)
    return FieldEdge("circle" if circle else "square", edge_mm, float(band_mm))


def check_field_of_view(edge: FieldEdge, *, min_edge_mm: float | None = 10.0) -> list[QualityFlag]:
    """Flag ``head_outside_field_of_view``: the intracranial space runs along the field's edge.

    Parameters
    ----------
    edge:
        :func:`field_edge`.
    min_edge_mm:
        See :class:`~ichpipe.pipeline.config.quality_config.CoverageConfig` (``None``: off).
    """
    if min_edge_mm is None:
        return []
    slices = edge.slices_from(min_edge_mm)
    if not slices:
        return []
    where = "the reconstruction circle" if edge.field == "circle" else "the image's border"
    return [QualityFlag(
        "head_outside_field_of_view",
        f"The intracranial space runs along {where} for up to {edge.longest_mm:.0f} mm on {len(slices)} slice(s)"
        f" ({slice_range_text(slices)}): the field of view cuts the head; blood beyond it is not measured and the"
        " intracranial space found may be incomplete (an open bone ring there is the cut, not missing bone).",
        round(edge.longest_mm, 1), min_edge_mm)]
