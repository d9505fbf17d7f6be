"""Hematomas: ellipsoids and irregular shapes, placed inside the brain at typical sites.

A hematoma is defined in its own unit frame ``u = R^T (p - c) / semi_axes``:

* ``ellipsoid``: ``|u| <= 1`` (volume ``4/3 pi a b c``);
* ``irregular``: ``|u| <= f(u / |u|)`` with ``f = 1 + sum a_k cos(w_k (v_k . u/|u|) + phi_k)``
  (a radially perturbed surface), united with one or two satellite lobes
  (small ellipsoids on the surface) -- the lobulated shapes that predict expansion.

Scaling ``semi_axes`` by ``s`` scales the volume by ``s**3``, so a target
volume is reached exactly for the continuous shape (Monte-Carlo estimated
for irregular shapes). A hematoma touching the skull is clipped by the inner
table, and its target is met by a few fixed-point iterations instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from ichpipe.pipeline.synthetic.phantom.head_model import HeadModel
from ichpipe.pipeline.synthetic.phantom.spec import ShapeName

__all__ = ["Hematoma", "label_points", "place_hematomas"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Monte-Carlo sample size used for volumes and placement checks.
MC_POINTS = 100_000

# Typical sites, as fractions of the inner-table semi-axes in the head frame
# (x: patient left, y: posterior, z: superior); each mirrored left/right.
_DEEP_SITES = (
    ("putamen", (0.33, -0.06, 0.05)),
    ("thalamus", (0.15, 0.10, 0.02)),
)
_LOBAR_SITES = (
    ("frontal", (0.40, -0.55, 0.28)),
    ("parietal", (0.45, 0.25, 0.45)),
    ("temporal", (0.62, -0.10, -0.12)),
    ("occipital", (0.28, 0.62, 0.18)),
)


@dataclass(frozen=True)
class Hematoma:
    """One hematoma in patient coordinates.

    Attributes
    ----------
    label:
        Its value in the label mask (1, 2, ...).
    shape:
        ``ellipsoid`` or ``irregular``.
    site:
        Anatomical site name (``left putamen``...).
    centre:
        Centre in LPS (mm).
    axes:
        3x3 matrix whose columns are the principal axes (LPS unit vectors).
    semi_axes_mm:
        Semi-axes along ``axes`` (mm).
    hu:
        Mean attenuation.
    harmonics:
        Radial perturbation terms ``(amplitude, frequency, direction (3,), phase)``.
    lobes:
        Satellite lobes ``(centre (3,), radius)`` in the unit frame.
    clip_to_skull:
        Whether the shape is cut by the inner table (it touches the skull).
    """

    label: int
    shape: ShapeName
    site: str
    centre: FloatArray
    axes: FloatArray
    semi_axes_mm: FloatArray
    hu: float
    harmonics: tuple[tuple[float, float, tuple[float, float, float], float], ...] = ()
    lobes: tuple[tuple[tuple[float, float, float], float], ...] = ()
    clip_to_skull: bool = False

    @property
    def bound(self) -> float:
        """Radius, in the unit frame, of a ball that holds the whole shape."""
        radial = 1.0 + sum(abs(h[0]) for h in self.harmonics)
        lobes = [float(np.linalg.norm(m)) + r for m, r in self.lobes]
        return max([radial, *lobes])

    @property
    def bounding_radius_mm(self) -> float:
        """Radius (mm) of a ball around ``centre`` that holds the whole shape."""
        return self.bound * float(np.max(self.semi_axes_mm))

    def scaled(self, factor: float) -> Hematoma:
        """The same shape with every length multiplied by ``factor`` (about its centre)."""
        return replace(self, semi_axes_mm=self.semi_axes_mm * factor)

    def moved(self, centre: FloatArray) -> Hematoma:
        """The same shape at another centre."""
        return replace(self, centre=np.asarray(centre, dtype=np.float64))

    def contains_unit(self, u: FloatArray) -> BoolArray:
        """Membership of points given in the unit frame (before any skull clipping)."""
        r2 = np.einsum("...i,...i->...", u, u)
        if self.shape == "ellipsoid":
            return r2 <= 1.0
        r = np.sqrt(r2)
        direction = u / np.maximum(r, 1e-9)[..., None]
        f = np.ones(r.shape, dtype=u.dtype)
        for amp, freq, vec, phase in self.harmonics:
            f += amp * np.cos(freq * (direction @ np.asarray(vec, dtype=u.dtype)) + phase)
        inside = r <= f
        for centre, radius in self.lobes:
            d = u - np.asarray(centre, dtype=u.dtype)
            inside |= np.einsum("...i,...i->...", d, d) <= radius * radius
        return inside

    def to_unit(self, points: FloatArray) -> FloatArray:
        """Unit-frame coordinates of LPS points."""
        return ((np.asarray(points, dtype=np.float64) - self.centre) @ self.axes) / self.semi_axes_mm

    def from_unit(self, u: FloatArray) -> FloatArray:
        """LPS coordinates of unit-frame points."""
        return (np.asarray(u, dtype=np.float64) * self.semi_axes_mm) @ self.axes.T + self.centre

    def contains(self, points: FloatArray, head: HeadModel | None = None) -> BoolArray:
        """Membership of LPS points; clipped by the inner table when ``clip_to_skull`` and ``head``."""
        inside = self.contains_unit(self.to_unit(points))
        if self.clip_to_skull and head is not None:
            inside &= head.intracranial(points)
        return inside

    @property
    def analytic_volume_ml(self) -> float | None:
        """``4/3 pi a b c`` for an unclipped ellipsoid, else ``None``."""
        if self.shape != "ellipsoid" or self.clip_to_skull:
            return None
        a, b, c = self.semi_axes_mm
        return float(4.0 / 3.0 * math.pi * a * b * c / 1000.0)

    def model_volume_ml(self, head: HeadModel, unit_samples: FloatArray) -> float:
        """Volume (mL) of the continuous shape: analytic, else Monte-Carlo on ``unit_samples``.

        ``unit_samples`` are uniform points in the cube ``[-1, 1]^3``; they are
        stretched to the shape's bounding cube.
        """
        analytic = self.analytic_volume_ml
        if analytic is not None:
            return analytic
        return _mc_volume_ml(self, head, unit_samples)

    def clipped_fraction(self, head: HeadModel, unit_samples: FloatArray) -> float:
        """Fraction of the unclipped shape's volume that lies outside the inner table."""
        pts = self.from_unit(_unit_inside(self, unit_samples))
        if pts.shape[0] == 0:
            return 0.0
        return 1.0 - float(np.mean(head.intracranial(pts)))

    def to_dict(self, head: HeadModel, unit_samples: FloatArray) -> dict[str, Any]:
        """JSON-ready description (the voxel volumes are added by the truth writer)."""
        return {
            "label": self.label,
            "shape": self.shape,
            "site": self.site,
            "center_lps_mm": [round(float(v), 4) for v in self.centre],
            "axes_lps": [[round(float(v), 6) for v in self.axes[:, i]] for i in range(3)],
            "semi_axes_mm": [round(float(v), 4) for v in self.semi_axes_mm],
            "hu": round(float(self.hu), 2),
            "touches_skull": self.clip_to_skull,
            "analytic_volume_ml": None if self.analytic_volume_ml is None else round(self.analytic_volume_ml, 4),
            "model_volume_ml": round(self.model_volume_ml(head, unit_samples), 4),
        }


_UNIT_CACHE: dict[tuple[object, ...], tuple[FloatArray, FloatArray]] = {}


def _unit_inside(hem: Hematoma, unit_samples: FloatArray) -> FloatArray:
    """Monte-Carlo points (unit frame, stretched to the bounding cube) inside the unclipped shape.

    The unit-frame shape does not change when a hematoma is scaled or moved,
    so the membership test is done once per shape and cached (the cache holds
    a reference to ``unit_samples``, so its identity cannot be reused).
    """
    key = (hem.shape, hem.harmonics, hem.lobes, id(unit_samples))
    cached = _UNIT_CACHE.get(key)
    if cached is not None and cached[0] is unit_samples:
        return cached[1]
    if len(_UNIT_CACHE) > 64:
        _UNIT_CACHE.clear()
    u = unit_samples * hem.bound
    inside = u[hem.contains_unit(u)]
    _UNIT_CACHE[key] = (unit_samples, inside)
    return inside


def _mc_volume_ml(hem: Hematoma, head: HeadModel, unit_samples: FloatArray) -> float:
    inside = _unit_inside(hem, unit_samples)
    if hem.clip_to_skull:
        inside_count = int(np.count_nonzero(head.intracranial(hem.from_unit(inside))))
    else:
        inside_count = int(inside.shape[0])
    box_ml = float(np.prod(2.0 * hem.bound * hem.semi_axes_mm)) / 1000.0
    return box_ml * inside_count / unit_samples.shape[0]


def _draw_shape(
    rng: np.random.Generator, *, label: int, shape: ShapeName, hu: float, site: str
) -> Hematoma:
    """Draw orientation, axis ratios and irregularity (size and position come later)."""
    ratios = np.array([1.0, rng.uniform(0.65, 0.95), rng.uniform(0.55, 0.9)])
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    harmonics: list[tuple[float, float, tuple[float, float, float], float]] = []
    lobes: list[tuple[tuple[float, float, float], float]] = []
    if shape == "irregular":
        for _ in range(4):
            vec = rng.normal(size=3)
            vec /= np.linalg.norm(vec)
            harmonics.append(
                (
                    float(rng.uniform(0.05, 0.11)),
                    float(rng.uniform(2.0, 5.0)),
                    (float(vec[0]), float(vec[1]), float(vec[2])),
                    float(rng.uniform(0, 2 * math.pi)),
                )
            )
        for _ in range(int(rng.integers(1, 3))):
            vec = rng.normal(size=3)
            vec /= np.linalg.norm(vec)
            m = vec * rng.uniform(0.75, 0.95)
            lobes.append(((float(m[0]), float(m[1]), float(m[2])), float(rng.uniform(0.3, 0.45))))
    return Hematoma(
        label=label,
        shape=shape,
        site=site,
        centre=np.zeros(3),
        axes=q,
        semi_axes_mm=ratios,
        hu=hu,
        harmonics=tuple(harmonics),
        lobes=tuple(lobes),
    )


def _fit_volume(hem: Hematoma, target_ml: float, head: HeadModel, unit_samples: FloatArray) -> Hematoma:
    """Scale ``hem`` so that its continuous volume is ``target_ml``."""
    for _ in range(6):
        current = hem.model_volume_ml(head, unit_samples)
        if current <= 0:
            raise ValueError("Argument 'volume_ml' cannot be reached: the hematoma lies outside the brain.")
        factor = (target_ml / current) ** (1.0 / 3.0)
        hem = hem.scaled(factor)
        if not hem.clip_to_skull or abs(factor - 1.0) < 1e-4:
            break
    return hem


def _surface_points(hem: Hematoma, unit_samples: FloatArray) -> FloatArray:
    """LPS points sampling the shape (a subset of Monte-Carlo points inside it)."""
    return hem.from_unit(_unit_inside(hem, unit_samples)[:6000])


def place_hematomas(
    *,
    head: HeadModel,
    rng: np.random.Generator,
    n_hematomas: int,
    shape: ShapeName,
    total_volume_ml: float,
    hu: float,
    touch_skull: bool,
    normal: FloatArray,
    slab_mm: tuple[float, float],
    margin_mm: float = 3.0,
) -> tuple[Hematoma, ...]:
    """Place ``n_hematomas`` non-overlapping hematomas inside the brain and the imaged slab.

    Parameters
    ----------
    head:
        The head they go into.
    rng:
        The lesion stream of the seed. Every random number is drawn before
        the sizes are known, so the same seed places the same shapes at the
        same sites whatever the volume (serial studies of one patient).
    n_hematomas, shape, hu, touch_skull:
        As in :class:`~ichpipe.pipeline.synthetic.phantom.spec.PhantomSpec`.
    total_volume_ml:
        Target total volume, split among the hematomas (the first is the largest).
    normal:
        The slice normal; each hematoma must lie between ``slab_mm`` along it.
    slab_mm:
        (lowest, highest) slice offset along the normal.
    margin_mm:
        Clearance kept from the slab ends and, unless touching, from the inner table.

    Raises
    ------
    ValueError
        If the hematomas cannot be placed (too large for the slab or the brain).
    """
    if n_hematomas == 0:
        return ()
    unit_samples = rng.uniform(-1.0, 1.0, size=(MC_POINTS, 3))
    weights = np.sort(rng.dirichlet(np.full(n_hematomas, 2.0)))[::-1]
    sides = rng.permutation([-1.0, 1.0])
    sites: list[tuple[str, tuple[float, float, float]]] = []
    deep = list(_DEEP_SITES)
    lobar = [_LOBAR_SITES[i] for i in rng.permutation(len(_LOBAR_SITES))]
    for k in range(n_hematomas):
        side = float(sides[k % 2])
        if (k == 0 and touch_skull) or (k > 0 and lobar and (not deep or rng.uniform() < 0.6)):
            name, frac = lobar.pop(0)
        else:
            name, frac = deep.pop(0) if deep else lobar.pop(0)
        sites.append((f"{'left' if side > 0 else 'right'} {name}", (side * frac[0], frac[1], frac[2])))
    jitters = rng.uniform(-0.05, 0.05, size=(n_hematomas, 3))
    hus = hu + rng.uniform(-4.0, 4.0, size=n_hematomas)
    shapes = [
        _draw_shape(rng, label=k + 1, shape=shape, hu=float(hus[k]), site=sites[k][0]) for k in range(n_hematomas)
    ]
    placed: list[Hematoma] = []
    for k in range(n_hematomas):
        target = float(total_volume_ml * weights[k])
        frac = np.asarray(sites[k][1]) + jitters[k]
        hem = shapes[k]
        touching = touch_skull and k == 0
        if touching:
            hem = replace(hem, clip_to_skull=True)
        hem = _fit_volume(hem.moved(head.from_head_frame(frac * head.inner_semi_axes_mm)), target, head, unit_samples)
        if touching:
            hem = _against_skull(
                hem, head=head, direction=frac, target_ml=target, normal=normal, slab_mm=slab_mm,
                margin_mm=margin_mm, unit_samples=unit_samples,
            )
        else:
            hem = _fit_into_slab(hem, normal=normal, slab_mm=slab_mm, margin_mm=margin_mm, unit_samples=unit_samples)
            hem = _pull_inside(hem, head=head, margin_mm=margin_mm, unit_samples=unit_samples)
            hem = _fit_into_slab(hem, normal=normal, slab_mm=slab_mm, margin_mm=margin_mm, unit_samples=unit_samples)
            _check_inside(hem, head=head, margin_mm=margin_mm, unit_samples=unit_samples)
        for other in placed:
            if np.any(other.contains(_surface_points(hem, unit_samples), head)):
                hem = _separate(hem, other, head=head, unit_samples=unit_samples)
        placed.append(hem)
    return tuple(placed)


def _against_skull(
    hem: Hematoma,
    *,
    head: HeadModel,
    direction: FloatArray,
    target_ml: float,
    normal: FloatArray,
    slab_mm: tuple[float, float],
    margin_mm: float,
    unit_samples: FloatArray,
) -> Hematoma:
    """Push the hematoma outward along ``direction`` until about a quarter of it is cut by the skull.

    When the slab forces it along the normal, the direction is re-aimed at
    the new centre and the hematoma pushed out again, so it still touches.
    """
    for _ in range(4):
        unit_dir = np.asarray(direction, dtype=np.float64)
        unit_dir = unit_dir / np.linalg.norm(unit_dir)
        inner = head.distance_to_inner_table(unit_dir)
        pts = _surface_points(replace(hem, clip_to_skull=False), unit_samples)
        centre_head = head.to_head_frame(hem.centre[None, :])[0].astype(np.float64)
        extent = float(np.max((head.to_head_frame(pts).astype(np.float64) - centre_head) @ unit_dir))
        hem = hem.moved(head.from_head_frame((unit_dir * (inner - 0.55 * extent))[None, :])[0])
        hem = _fit_volume(hem, target_ml, head, unit_samples)
        in_slab = _fit_into_slab(
            hem, normal=normal, slab_mm=slab_mm, margin_mm=margin_mm, unit_samples=unit_samples
        )
        if in_slab is hem:
            return hem
        hem = in_slab
        direction = head.to_head_frame(hem.centre[None, :])[0].astype(np.float64)
    return hem


def _fit_into_slab(
    hem: Hematoma, *, normal: FloatArray, slab_mm: tuple[float, float], margin_mm: float, unit_samples: FloatArray
) -> Hematoma:
    pts = _surface_points(replace(hem, clip_to_skull=False), unit_samples)
    proj = pts @ normal
    low, high = slab_mm[0] + margin_mm, slab_mm[1] - margin_mm
    lo, hi = float(proj.min()), float(proj.max())
    if hi - lo > high - low:
        raise ValueError(
            f"Argument 'n_slices' gives a slab of {slab_mm[1] - slab_mm[0]:.0f} mm, too short for a hematoma"
            f" {hi - lo:.0f} mm high; use more slices or a smaller 'volume_ml'."
        )
    shift = 0.0
    if lo < low:
        shift = low - lo
    elif hi > high:
        shift = high - hi
    return hem.moved(hem.centre + shift * normal) if shift else hem


def _pull_inside(hem: Hematoma, *, head: HeadModel, margin_mm: float, unit_samples: FloatArray) -> Hematoma:
    """Move the hematoma toward the head centre until it clears the inner table by ``margin_mm``."""
    for _ in range(60):
        pts = _surface_points(hem, unit_samples)
        if np.all(head.signed_distance(head.to_head_frame(pts)) < -margin_mm):
            return hem
        hem = hem.moved(head.centre + 0.95 * (hem.centre - head.centre))
    return hem


def _check_inside(hem: Hematoma, *, head: HeadModel, margin_mm: float, unit_samples: FloatArray) -> None:
    pts = _surface_points(hem, unit_samples)
    if not np.all(head.signed_distance(head.to_head_frame(pts)) < -margin_mm / 2):
        raise ValueError(
            f"Argument 'volume_ml' is too large: a {hem.model_volume_ml(head, unit_samples):.0f} mL hematoma"
            " does not fit inside the brain of this slab; use a smaller volume or more slices."
        )


def _separate(hem: Hematoma, other: Hematoma, *, head: HeadModel, unit_samples: FloatArray) -> Hematoma:
    """Shrink ``hem`` until it no longer overlaps ``other`` (keeps its centre)."""
    for _ in range(40):
        hem = hem.scaled(0.95)
        if not np.any(other.contains(_surface_points(hem, unit_samples), head)):
            return hem
    raise ValueError(
        "Argument 'n_hematomas' asks for more hematomas than fit apart in this brain; use fewer or a smaller"
        " 'volume_ml'."
    )


def label_points(
    points: FloatArray, hematomas: tuple[Hematoma, ...], head: HeadModel
) -> npt.NDArray[np.uint8]:
    """Label of each LPS point: 0 outside every hematoma, else the hematoma's label.

    For an image plane (points of shape (rows, columns, 3)) only the
    rectangle of pixels that can reach a hematoma's bounding ball is tested.
    """
    labels = np.zeros(points.shape[:-1], dtype=np.uint8)
    for hem in hematomas:
        window = _plane_window(points, hem.centre, hem.bounding_radius_mm)
        if window is None:
            continue
        sub_points = points[window]
        inside = hem.contains(sub_points.reshape(-1, 3), head).reshape(sub_points.shape[:-1])
        sub = labels[window]
        sub[inside & (sub == 0)] = hem.label
        labels[window] = sub
    return labels


def _plane_window(
    points: FloatArray, centre: FloatArray, radius: float
) -> tuple[slice, ...] | None:
    """Index window of ``points`` that may lie within ``radius`` of ``centre``; ``None`` if none can.

    A (rows, columns, 3) grid is treated as an image plane and searched on a
    coarse sub-grid; any other shape gets the whole array.
    """
    if points.ndim != 3 or min(points.shape[:2]) < 16:
        d2 = np.einsum("...i,...i->...", points - centre, points - centre)
        return tuple(slice(None) for _ in points.shape[:-1]) if np.any(d2 <= radius * radius) else None
    step = 8
    coarse = points[::step, ::step]
    pitch = max(
        float(np.linalg.norm(points[0, 1] - points[0, 0])), float(np.linalg.norm(points[1, 0] - points[0, 0]))
    )
    reach = radius + step * pitch * 1.5
    d2 = np.einsum("...i,...i->...", coarse - centre, coarse - centre)
    near = np.argwhere(d2 <= reach * reach)
    if near.size == 0:
        return None
    r0, c0 = (near.min(axis=0) - 1) * step
    r1, c1 = (near.max(axis=0) + 2) * step
    return (
        slice(max(int(r0), 0), min(int(r1), points.shape[0])),
        slice(max(int(c0), 0), min(int(c1), points.shape[1])),
    )
