"""Lesions painted into synthetic or real heads: shaped hematomas, intraventricular blood, calcifications.

Every lesion is a function of patient coordinates (LPS, mm), so it can be
sampled on any image plane (a phantom's tilted plane, a real series' voxel
centres). The hematoma mask is where a lesion's occupancy is at least 0.5 at
a voxel centre, inside the intracranial space; the image gets the lesion's
HU there before the phantom's blur and noise are applied (phantom heads) or
as a contrast change that keeps the real noise (real heads, see
:func:`paint_real_slice`).

* :class:`ShapedHematoma`: a :class:`~ichpipe.pipeline.synthetic.lesion_shapes.LesionShape`
  (a real expert mask or a built-in blob) rotated, scaled and placed; HU with
  a slow internal variation (clot heterogeneity), acute (60-85 HU) or
  subacute (40-60 HU); an acute one may have a less dense side (:class:`BlendSide`,
  :func:`with_blend_side`: the blend sign), counted as haematoma.
* :class:`VentricularBlood`: blood filling the dependent (posterior, the
  patient lies supine) part of chosen ventricles of a phantom head, up to a
  full cast.
* :class:`Calcification`: small hyperdense spots (pineal gland, choroid
  plexus) that are **not** hematoma: hard negatives for the network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe.dicom_io.geometry import VolumeGeometry
from ichpipe.pipeline.synthetic.lesion_shapes import LesionShape
from ichpipe.pipeline.synthetic.phantom.head_model import HeadModel

__all__ = [
    "BLEND_SIDE_HU",
    "BLEND_STREAM",
    "BlendSide",
    "Calcification",
    "ShapedHematoma",
    "VentricularBlood",
    "draw_calcifications",
    "draw_ventricular_blood",
    "lesion_rotation",
    "maybe_blend_side",
    "paint_real_slice",
    "place_in_head",
    "place_in_mask",
    "side_record",
    "slice_points",
    "with_blend_side",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
F32 = npt.NDArray[np.float32]

#: HU a blend side is drawn from: at least 10 HU under an acute clot's 60-85, down to about the brain's
#: own density (the blend sign asks for >= 18 HU between the two parts; sides under 45 HU were read as
#: brain by the shipped network on clots painted into real heads, MODEL_CARD "The blend sign measured again").
BLEND_SIDE_HU: tuple[float, float] = (35.0, 50.0)

#: The random stream blend sides are drawn from (with a study's seed), apart from every other draw.
BLEND_STREAM = 0xB1E


def lesion_rotation(rng: np.random.Generator, *, max_tilt_deg: float = 15.0) -> FloatArray:
    """A random orientation for a shape: any yaw about the head's long axis, a small tilt, maybe mirrored.

    Real hematomas keep their rough orientation to the axial plane (they
    follow the brain's structure), hence the limited tilt.
    """
    yaw = rng.uniform(0.0, 2.0 * math.pi)
    ax, ay = np.radians(rng.uniform(-max_tilt_deg, max_tilt_deg, size=2))
    rz = np.array([[math.cos(yaw), -math.sin(yaw), 0.0], [math.sin(yaw), math.cos(yaw), 0.0], [0.0, 0.0, 1.0]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(ax), -math.sin(ax)], [0.0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0.0, math.sin(ay)], [0.0, 1.0, 0.0], [-math.sin(ay), 0.0, math.cos(ay)]])
    mirror = np.diag([-1.0 if rng.uniform() < 0.5 else 1.0, 1.0, 1.0])
    return np.asarray(rz @ ry @ rx @ mirror, dtype=np.float64)


@dataclass(frozen=True)
class BlendSide:
    """The less dense side of a clot: the part beyond a plane through it (the blend sign).

    Attributes
    ----------
    normal:
        Unit vector (LPS) the side lies along.
    offset_mm:
        The plane's distance from the clot's centre along ``normal``.
    hu:
        The side's mean attenuation (the clot's slow variation is kept on it).
    """

    normal: FloatArray
    offset_mm: float
    hu: float

    def __post_init__(self) -> None:
        if not math.isclose(float(np.linalg.norm(self.normal)), 1.0, rel_tol=1e-6):
            raise ValueError(f"Argument 'normal' must be a unit vector; got {np.asarray(self.normal).tolist()!r}.")


@dataclass(frozen=True)
class ShapedHematoma:
    """A lesion shape placed in patient space.

    Attributes
    ----------
    shape:
        The 1 mm occupancy grid.
    centre:
        Where the shape's centroid lies (LPS, mm).
    rotation:
        3x3 matrix taking shape-grid offsets to LPS offsets.
    scale:
        Length factor applied to the shape (volume scales by ``scale**3``).
    hu:
        Mean attenuation.
    texture_hu:
        Amplitude of the slow internal variation.
    texture_waves, texture_phases:
        Wave vectors (rad/mm) and phases of that variation.
    side:
        A less dense side (the blend sign), part of the haematoma; ``None``: of one density.
    """

    shape: LesionShape
    centre: FloatArray
    rotation: FloatArray
    scale: float
    hu: float
    texture_hu: float = 0.0
    texture_waves: FloatArray = field(default_factory=lambda: np.zeros((0, 3)))
    texture_phases: FloatArray = field(default_factory=lambda: np.zeros(0))
    side: BlendSide | None = None

    @property
    def radius_mm(self) -> float:
        """Radius of a ball around ``centre`` that holds the shape."""
        return self.shape.radius_mm * self.scale

    @property
    def volume_ml(self) -> float:
        """Volume of the placed (unclipped) shape."""
        return self.shape.volume_ml * self.scale**3

    def _grid_coords(self, points: FloatArray) -> FloatArray:
        offsets = (np.asarray(points, dtype=np.float64) - self.centre) @ self.rotation / self.scale
        return offsets + self.shape.centre_index

    def occupancy(self, points: FloatArray) -> F32:
        """Occupancy in [0, 1] at LPS points (any leading shape, last axis 3)."""
        pts = np.asarray(points, dtype=np.float64)
        flat = pts.reshape(-1, 3)
        out = np.zeros(flat.shape[0], dtype=np.float32)
        near = np.einsum("ij,ij->i", flat - self.centre, flat - self.centre) <= self.radius_mm**2
        if np.any(near):
            coords = self._grid_coords(flat[near]).T
            out[near] = ndimage.map_coordinates(self.shape.occupancy, coords, order=1, mode="constant", cval=0.0)
        return out.reshape(pts.shape[:-1])

    def contains(self, points: FloatArray) -> BoolArray:
        """Whether LPS points lie in the shape (occupancy >= 0.5)."""
        return self.occupancy(points) >= 0.5

    def hu_at(self, points: FloatArray) -> F32:
        """Attenuation at LPS points: mean plus the slow internal variation."""
        pts = np.asarray(points, dtype=np.float64)
        value = np.full(pts.shape[:-1], self.hu, dtype=np.float32)
        if self.texture_hu > 0 and len(self.texture_phases):
            phase = pts @ self.texture_waves.T + self.texture_phases
            value += np.float32(self.texture_hu) * np.cos(phase).mean(axis=-1).astype(np.float32)
        if self.side is not None:
            beyond = (pts - self.centre) @ self.side.normal > self.side.offset_mm
            value[beyond] += np.float32(self.side.hu - self.hu)
        return value

    def side_share(self) -> float:
        """The share of the shape's sampled points on its less dense side (0 without one)."""
        if self.side is None:
            return 0.0
        pts = self.sample_points()
        return float(np.mean((pts - self.centre) @ self.side.normal > self.side.offset_mm))

    def sample_points(self, limit: int = 3000) -> FloatArray:
        """LPS points inside the placed shape (at most ``limit``, evenly thinned)."""
        idx = self.shape.points
        step = max(1, len(idx) // limit)
        offsets = (idx[::step] - self.shape.centre_index) * self.scale
        return offsets @ self.rotation.T + self.centre


def with_blend_side(hematoma: ShapedHematoma, rng: np.random.Generator, *,
                    hu_range: tuple[float, float] = BLEND_SIDE_HU, max_offset: float = 0.15) -> ShapedHematoma:
    """``hematoma`` with a less dense side: beyond a plane through its centre (the blend sign).

    The plane's normal is drawn with at most a third of it along the patient's long (z) axis (the
    side lies beside the dense part on most slices, as in the painted clots of
    ``bench/heterogeneous_clot.py``), its offset within ``max_offset`` of the shape's radius of the
    centre, the side's HU from ``hu_range`` but at least 10 HU under the clot's.

    Examples
    --------
    >>> from ichpipe.pipeline.synthetic.lesion_shapes import builtin_shape
    >>> clot = ShapedHematoma(builtin_shape(0), np.zeros(3), np.eye(3), 1.0, 70.0)
    >>> blend = with_blend_side(clot, np.random.default_rng(0))
    >>> 35.0 <= blend.side.hu <= 50.0 and 0.2 < blend.side_share() < 0.8
    True
    """
    if not hu_range[0] < hu_range[1]:
        raise ValueError(f"Argument 'hu_range' must be (least, most) with least < most; got {hu_range!r}.")
    if not 0.0 <= max_offset < 1.0:
        raise ValueError(f"Argument 'max_offset' must be in [0, 1); got {max_offset!r}.")
    along = float(rng.uniform(-1.0, 1.0)) / 3.0
    angle = float(rng.uniform(0.0, 2.0 * math.pi))
    across = math.sqrt(1.0 - along * along)
    normal = np.array([across * math.cos(angle), across * math.sin(angle), along])
    offset = float(rng.uniform(-max_offset, max_offset)) * hematoma.radius_mm
    hu = min(float(rng.uniform(*hu_range)), hematoma.hu - 10.0)
    return replace(hematoma, side=BlendSide(normal=normal, offset_mm=offset, hu=hu))


def maybe_blend_side(hematoma: ShapedHematoma, rng: np.random.Generator, *, acute: bool,
                     share: float) -> ShapedHematoma:
    """``hematoma`` given a less dense side (:func:`with_blend_side`) with probability ``share`` when its blood
    is ``acute`` (a blend sign needs a dense part); ``rng`` draws only for an acute one."""
    if acute and rng.uniform() < share:
        return with_blend_side(hematoma, rng)
    return hematoma


def side_record(hematoma: ShapedHematoma) -> dict[str, float]:
    """What a dataset's lesion list says of ``hematoma``'s less dense side (nothing without one)."""
    if hematoma.side is None:
        return {}
    return {"blend_side_hu": round(hematoma.side.hu, 2), "blend_side_share": round(hematoma.side_share(), 3)}


def _texture(rng: np.random.Generator) -> tuple[float, FloatArray, FloatArray]:
    waves = rng.normal(size=(3, 3))
    waves *= (2.0 * math.pi / rng.uniform(6.0, 20.0, size=(3, 1))) / np.linalg.norm(waves, axis=1, keepdims=True)
    return float(rng.uniform(0.0, 6.0)), waves, rng.uniform(0.0, 2.0 * math.pi, size=3)


def _make(
    shape: LesionShape, centre: FloatArray, rotation: FloatArray, scale: float, hu: float, rng: np.random.Generator
) -> ShapedHematoma:
    amp, waves, phases = _texture(rng)
    return ShapedHematoma(shape, np.asarray(centre, dtype=np.float64), rotation, scale, hu, amp, waves, phases)


def place_in_head(
    shape: LesionShape,
    *,
    head: HeadModel,
    rng: np.random.Generator,
    hu: float,
    scale: float,
    touch_skull: bool,
    normal: FloatArray,
    slab_mm: tuple[float, float],
    margin_mm: float = 3.0,
    attempts: int = 300,
) -> ShapedHematoma | None:
    """Place ``shape`` in a phantom head, inside the imaged slab.

    Away from the skull, every sampled point of the shape must be at least
    ``margin_mm`` inside the inner table; against the skull, 60-95 % of it
    must be inside (the rest is cut off when painted). The shape shrinks by
    15 % after each failed round of attempts.

    Returns
    -------
    ShapedHematoma or None
        ``None`` when no place was found (the caller skips the lesion).
    """
    lo, hi = slab_mm[0] + margin_mm, slab_mm[1] - margin_mm
    for _round in range(4):
        rotation = lesion_rotation(rng)
        for _ in range(attempts // 4):
            u = rng.normal(size=3)
            u /= np.linalg.norm(u)
            reach = rng.uniform(0.55, 1.0) if touch_skull else rng.uniform(0.0, 0.8)
            centre = head.from_head_frame((u * reach * head.inner_semi_axes_mm)[None, :])[0]
            candidate = _make(shape, centre, rotation, scale, hu, rng)
            pts = candidate.sample_points()
            along = pts @ normal
            if along.min() < lo or along.max() > hi:
                continue
            distance = head.signed_distance(head.to_head_frame(pts))
            if touch_skull:
                inside = float(np.mean(distance < 0))
                if 0.6 <= inside <= 0.95:
                    return candidate
            elif float(np.max(distance)) < -margin_mm:
                return candidate
        scale *= 0.85
    return None


def slice_points(geometry: VolumeGeometry, k: int, rows: slice, cols: slice) -> FloatArray:
    """LPS voxel centres of a window of slice ``k`` of a series, shape (rows, columns, 3)."""
    r = np.arange(rows.start, rows.stop, dtype=np.float64)[:, None, None] * geometry.pixel_spacing_mm[0]
    c = np.arange(cols.start, cols.stop, dtype=np.float64)[None, :, None] * geometry.pixel_spacing_mm[1]
    return geometry.positions[k][None, None, :] + c * geometry.row_direction + r * geometry.column_direction


def _voxel_index(geometry: VolumeGeometry, points: FloatArray) -> npt.NDArray[np.int64]:
    """Nearest (slice, row, column) of LPS points (slice by the offset along the normal)."""
    offsets = points @ geometry.normal
    k = np.clip(np.searchsorted(geometry.offsets_mm, offsets), 1, geometry.n_slices - 1)
    left = geometry.offsets_mm[k - 1]
    right = geometry.offsets_mm[k]
    k = np.where(np.abs(offsets - left) <= np.abs(offsets - right), k - 1, k)
    rel = points - geometry.positions[k]
    col = np.rint(rel @ geometry.row_direction / geometry.pixel_spacing_mm[1]).astype(np.int64)
    row = np.rint(rel @ geometry.column_direction / geometry.pixel_spacing_mm[0]).astype(np.int64)
    return np.stack([k, row, col], axis=1)


def place_in_mask(
    shape: LesionShape,
    *,
    intracranial: BoolArray,
    geometry: VolumeGeometry,
    rng: np.random.Generator,
    hu: float,
    scale: float,
    touch_skull: bool,
    attempts: int = 300,
) -> ShapedHematoma | None:
    """Place ``shape`` in a real series, inside its intracranial mask (see :func:`place_in_head`).

    Away from the skull every sampled point must fall on an intracranial
    voxel that is not on the mask's edge; against the skull 60-95 % must.
    Points beyond the first or last slice count as outside.
    """
    eroded = ndimage.binary_erosion(intracranial, structure=np.ones((1, 5, 5), dtype=bool))
    candidates = np.argwhere(eroded if eroded.any() else intracranial)
    if candidates.size == 0:
        return None
    half_gap = 0.5 * float(np.median(np.diff(geometry.offsets_mm))) if geometry.n_slices > 1 else 1.0
    for _round in range(4):
        rotation = lesion_rotation(rng)
        for _ in range(attempts // 4):
            k, r, c = candidates[rng.integers(len(candidates))]
            centre = slice_points(geometry, int(k), slice(int(r), int(r) + 1), slice(int(c), int(c) + 1))[0, 0]
            candidate = _make(shape, centre, rotation, scale, hu, rng)
            pts = candidate.sample_points()
            along = pts @ geometry.normal
            within = (along >= geometry.offsets_mm[0] - half_gap) & (along <= geometry.offsets_mm[-1] + half_gap)
            idx = _voxel_index(geometry, pts)
            shape_ok = (
                within
                & (idx[:, 1] >= 0) & (idx[:, 1] < geometry.rows) & (idx[:, 2] >= 0) & (idx[:, 2] < geometry.columns)
            )
            inside = np.zeros(len(pts), dtype=bool)
            ok = np.flatnonzero(shape_ok)
            mask = intracranial if touch_skull else eroded
            inside[ok] = mask[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
            fraction = float(np.mean(inside))
            if (touch_skull and 0.6 <= fraction <= 0.95) or (not touch_skull and fraction == 1.0):
                return candidate
        scale *= 0.85
    return None


def paint_real_slice(
    hu: F32,
    lesion_mask: BoolArray,
    lesion_hu: F32,
    *,
    edge_sigma_px: float = 0.6,
    background_sigma_px: float = 2.0,
) -> F32:
    """Insert a lesion into a real slice, keeping its noise.

    The local mean of the background (a Gaussian of ``background_sigma_px``)
    is replaced by the lesion's HU with a softened edge (a Gaussian of
    ``edge_sigma_px`` on the mask: the scanner's blur), and the real noise
    (slice minus its local mean) is kept: ``hu + w * (lesion_hu - mean)``.
    """
    weight = ndimage.gaussian_filter(lesion_mask.astype(np.float32), edge_sigma_px)
    tissue = np.clip(hu, -20.0, 90.0)
    mean = ndimage.gaussian_filter(tissue, background_sigma_px)
    return (hu + weight * (lesion_hu - mean)).astype(np.float32)


@dataclass(frozen=True)
class VentricularBlood:
    """Blood in the dependent part of chosen ventricles of a phantom head.

    Attributes
    ----------
    ventricles:
        Indices into ``HeadModel.ventricles``.
    level:
        Fill level in [-1, 1] along the posterior axis of each ventricle:
        blood lies where ``(y - y_centre) / semi_y >= level`` (-1: full cast).
    hu:
        Attenuation of the blood.
    """

    ventricles: tuple[int, ...]
    level: float
    hu: float

    def contains(self, points: FloatArray, head: HeadModel) -> BoolArray:
        """Whether LPS points lie in the blood."""
        q = head.to_head_frame(points)
        inside = np.zeros(q.shape[:-1], dtype=bool)
        for index in self.ventricles:
            ell = head.ventricles[index]
            depth = (q[..., 1] - np.float32(ell.centre[1])) / np.float32(ell.semi_axes[1])
            inside |= ell.contains(q) & (depth >= self.level)
        return inside


def draw_ventricular_blood(rng: np.random.Generator, head: HeadModel, hu: float) -> VentricularBlood:
    """Blood layering in one or both occipital horns, or a cast of several ventricles."""
    n = len(head.ventricles)
    if rng.uniform() < 0.6:
        # the posterior ellipsoid of each lateral ventricle (indices 1 and 3), the dependent part
        chosen = tuple(i for i in (1, 3) if i < n and rng.uniform() < 0.75) or (1,)
        return VentricularBlood(chosen, float(rng.uniform(-0.2, 0.6)), hu)
    count = int(rng.integers(1, n + 1))
    chosen = tuple(sorted(int(i) for i in rng.choice(n, size=count, replace=False)))
    return VentricularBlood(chosen, float(rng.uniform(-1.0, -0.3)), hu)


@dataclass(frozen=True)
class Calcification:
    """A small hyperdense sphere that is not hematoma."""

    centre: FloatArray
    radius_mm: float
    hu: float

    def contains(self, points: FloatArray) -> BoolArray:
        """Whether LPS points lie in the sphere."""
        d = np.asarray(points, dtype=np.float64) - self.centre
        return np.einsum("...i,...i->...", d, d) <= self.radius_mm**2


def draw_calcifications(rng: np.random.Generator, head: HeadModel) -> tuple[Calcification, ...]:
    """Pineal and/or choroid-plexus calcifications at their usual places in a phantom head."""
    size = float(head.inner_semi_axes_mm[0]) / 64.0
    sites = [np.array([0.0, 14.0 * size, 1.0 * size])]
    for index in (1, 3):
        if index < len(head.ventricles):
            sites.append(np.asarray(head.ventricles[index].centre, dtype=np.float64) + np.array([0.0, 2.0, 0.0]))
    out = []
    for site in sites:
        if rng.uniform() < 0.6:
            centre = head.from_head_frame(site[None, :])[0]
            out.append(Calcification(centre, float(rng.uniform(1.2, 3.0)), float(rng.uniform(120.0, 400.0))))
    return tuple(out)
