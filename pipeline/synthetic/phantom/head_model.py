"""A continuous head model in patient coordinates (LPS, mm) with realistic HU.

The head is built around an ellipsoidal inner table (the intracranial
boundary). Layers are placed by an approximate signed distance ``d`` to that
surface (negative inside):

========================  =========================================  ==============
region                    where                                      HU
========================  =========================================  ==============
air                       outside the scalp                          -1000
scalp                     ``t_skull <= d < t_skull + t_scalp``       ~35
skull                     ``0 <= d < t_skull``                       700-1800
                                                                     (tables / diploe)
subarachnoid CSF          ``-csf <= d < 0``, sulci, fissure          ~8
cortex / deep grey        cortical band, basal ganglia, thalami      ~38-40
white matter              the rest of the brain                      ~27
ventricles                lateral and third ventricles               ~5
========================  =========================================  ==============

Everything is evaluated point-wise on arrays of points, so any slice plane
(tilted, unevenly spaced) samples the same 3D object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "AIR_HU",
    "HeadModel",
    "random_rotation",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

AIR_HU = -1000.0
CSF_HU = 8.0
VENTRICLE_HU = 5.0
GREY_HU = 40.0
DEEP_GREY_HU = 37.0
WHITE_HU = 27.0
SCALP_HU = 35.0


def random_rotation(rng: np.random.Generator, max_deg: float) -> FloatArray:
    """A rotation matrix of three small random angles (each within +/- ``max_deg``)."""
    ax, ay, az = np.radians(rng.uniform(-max_deg, max_deg, size=3))
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _rotation_about(axis: FloatArray, angle: float) -> FloatArray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


@dataclass(frozen=True)
class _Ellipsoid:
    """An ellipsoid in head-frame coordinates (mm), optionally rotated."""

    centre: tuple[float, float, float]
    semi_axes: tuple[float, float, float]
    rotation: FloatArray | None = None

    def contains(self, q: FloatArray) -> BoolArray:
        d = q - np.asarray(self.centre, dtype=q.dtype)
        if self.rotation is not None:
            d = d @ self.rotation.astype(q.dtype)
        s = np.asarray(self.semi_axes, dtype=q.dtype)
        return np.einsum("...i,...i->...", d / s, d / s) <= 1.0


@dataclass(frozen=True)
class HeadModel:
    """A synthetic adult head.

    Attributes
    ----------
    centre:
        Centre of the inner-table ellipsoid in LPS (mm).
    rotation:
        3x3 matrix whose columns are the head's left, posterior and superior
        axes in LPS (a few degrees off the scanner axes).
    inner_semi_axes_mm:
        Inner-table semi-axes (left-right, antero-posterior, cranio-caudal).
    skull_mm, scalp_mm, csf_mm, cortex_mm:
        Layer thicknesses.
    table_hu, diploe_hu:
        Attenuation of the skull's cortical tables and of the diploe.
    """

    centre: FloatArray
    rotation: FloatArray
    inner_semi_axes_mm: FloatArray
    skull_mm: float
    scalp_mm: float
    csf_mm: float
    cortex_mm: float
    table_hu: float
    diploe_hu: float
    sulcus_waves: FloatArray
    sulcus_phases: FloatArray
    shading_waves: FloatArray
    shading_phases: FloatArray
    ventricles: tuple[_Ellipsoid, ...]
    deep_grey: tuple[_Ellipsoid, ...]

    @classmethod
    def from_rng(cls, rng: np.random.Generator, *, centre: FloatArray) -> HeadModel:
        """Draw a head: size, shape, pose, skull and ventricles vary with the generator.

        Parameters
        ----------
        rng:
            Random generator (the anatomy stream of the seed).
        centre:
            Nominal head centre in LPS; the drawn centre lies within a few mm.
        """
        a = rng.uniform(60.0, 68.0)  # left-right inner semi-axis
        b = a * rng.uniform(1.18, 1.32)  # antero-posterior
        c = a * rng.uniform(1.0, 1.12)  # cranio-caudal
        size = a / 64.0
        shift = rng.uniform(-4.0, 4.0, size=3) * np.array([1.0, 1.0, 0.5])
        ventricle_scale = rng.uniform(0.8, 1.3) * size  # older heads: larger ventricles
        spread = rng.uniform(-6.0, 6.0)  # outward yaw of the lateral ventricles, degrees
        ventricles: list[_Ellipsoid] = []
        for side in (-1.0, 1.0):
            yaw = _rotation_about(np.array([0.0, 0.0, 1.0]), math.radians(side * (8.0 + spread)))
            v = ventricle_scale
            ventricles.append(_Ellipsoid((side * 8.5 * v, -4.0 * v, 16.0 * v), (4.5 * v, 24.0 * v, 7.0 * v), yaw))
            ventricles.append(_Ellipsoid((side * 14.0 * v, 20.0 * v, 10.0 * v), (5.0 * v, 11.0 * v, 6.5 * v), yaw))
        ventricles.append(_Ellipsoid((0.0, 2.0 * size, -2.0 * size), (1.6 * size, 11.0 * size, 8.0 * size)))
        deep_grey: list[_Ellipsoid] = []
        for side in (-1.0, 1.0):
            s = size
            deep_grey.append(_Ellipsoid((side * 21.0 * s, -6.0 * s, 4.0 * s), (7.5 * s, 15.0 * s, 10.0 * s)))
            deep_grey.append(_Ellipsoid((side * 9.5 * s, 10.0 * s, 2.0 * s), (8.0 * s, 11.0 * s, 8.0 * s)))
        waves = rng.normal(size=(3, 3))
        waves *= (2.0 * math.pi / rng.uniform(14.0, 22.0, size=(3, 1))) / np.linalg.norm(waves, axis=1, keepdims=True)
        shading = rng.normal(size=(2, 3))
        shading *= (2.0 * math.pi / rng.uniform(120.0, 200.0, size=(2, 1))) / np.linalg.norm(
            shading, axis=1, keepdims=True
        )
        return cls(
            centre=np.asarray(centre, dtype=np.float64) + shift,
            rotation=random_rotation(rng, 4.0),
            inner_semi_axes_mm=np.array([a, b, c]),
            skull_mm=float(rng.uniform(5.0, 8.0)),
            scalp_mm=float(rng.uniform(4.0, 6.5)),
            csf_mm=float(rng.uniform(1.0, 2.2)),
            cortex_mm=float(rng.uniform(2.5, 3.5)),
            table_hu=float(rng.uniform(1500.0, 1800.0)),
            diploe_hu=float(rng.uniform(700.0, 950.0)),
            sulcus_waves=waves,
            sulcus_phases=rng.uniform(0, 2 * math.pi, size=3),
            shading_waves=shading,
            shading_phases=rng.uniform(0, 2 * math.pi, size=2),
            ventricles=tuple(ventricles),
            deep_grey=tuple(deep_grey),
        )

    # --------------------------------------------------------------- geometry

    def _core_half_extent(self) -> FloatArray:
        """Half-extent (head frame, mm) of a box around the ventricles and deep grey nuclei."""
        extent = np.zeros(3)
        for ell in (*self.ventricles, *self.deep_grey):
            extent = np.maximum(extent, np.abs(np.asarray(ell.centre)) + max(ell.semi_axes))
        return extent + 1.0

    def to_head_frame(self, points: FloatArray) -> FloatArray:
        """Head-frame coordinates (mm) of LPS points, float32, same leading shape."""
        q = (np.asarray(points, dtype=np.float64) - self.centre) @ self.rotation
        return q.astype(np.float32)

    def from_head_frame(self, q: FloatArray) -> FloatArray:
        """LPS coordinates of head-frame points."""
        return np.asarray(q, dtype=np.float64) @ self.rotation.T + self.centre

    def inner_radius(self, q: FloatArray) -> FloatArray:
        """Normalised inner-table radius: < 1 inside the skull, 1 on the inner table."""
        s = self.inner_semi_axes_mm.astype(q.dtype)
        return np.sqrt(np.einsum("...i,...i->...", q / s, q / s))

    def intracranial(self, points: FloatArray) -> BoolArray:
        """Whether LPS points lie inside the inner table."""
        return self.inner_radius(self.to_head_frame(points)) < 1.0

    def signed_distance(self, q: FloatArray) -> FloatArray:
        """Approximate signed distance (mm) of head-frame points to the inner table.

        First-order (``(rho - 1) / |grad rho|``): exact on the surface, good
        within the few centimetres where layers are placed.
        """
        s = self.inner_semi_axes_mm.astype(q.dtype)
        u = q / s
        rho = np.sqrt(np.einsum("...i,...i->...", u, u))
        g = np.sqrt(np.einsum("...i,...i->...", u / s, u / s))
        return (rho - 1.0) * rho / np.maximum(g, np.float32(1e-6))

    def distance_to_inner_table(self, direction_head: FloatArray) -> float:
        """Distance (mm) from the centre to the inner table along a head-frame direction."""
        d = np.asarray(direction_head, dtype=np.float64)
        d = d / np.linalg.norm(d)
        return float(1.0 / np.linalg.norm(d / self.inner_semi_axes_mm))

    @property
    def outer_semi_axes_mm(self) -> FloatArray:
        """Approximate semi-axes of the scalp surface."""
        return self.inner_semi_axes_mm + self.skull_mm + self.scalp_mm

    # -------------------------------------------------------------------- HU

    def sample_hu(self, points: FloatArray) -> npt.NDArray[np.float32]:
        """Noise-free HU of the normal head at LPS points (any leading shape, last axis 3)."""
        q = self.to_head_frame(points)
        d = self.signed_distance(q)
        hu = np.full(d.shape, AIR_HU, dtype=np.float32)
        t = np.float32(self.skull_mm)
        scalp = (d >= t) & (d < t + np.float32(self.scalp_mm))
        hu[scalp] = SCALP_HU
        bone = (d >= 0) & (d < t)
        frac = d[bone] / t
        hu[bone] = self.diploe_hu + (self.table_hu - self.diploe_hu) * (2.0 * frac - 1.0) ** 2
        inside = d < 0
        if not np.any(inside):
            return hu
        qi = q[inside]
        di = d[inside]
        brain = np.full(di.shape, WHITE_HU, dtype=np.float32)
        # Deep structures are tested only inside their bounding box (most points are not).
        core = np.all(np.abs(qi) <= self._core_half_extent().astype(np.float32), axis=-1)
        qc = qi[core]
        core_hu = brain[core]
        for ell in self.deep_grey:
            core_hu[ell.contains(qc)] = DEEP_GREY_HU
        csf = np.float32(self.csf_mm)
        band = di > -(csf + np.float32(12.0))
        if np.any(band):
            qb = qi[band]
            h = np.sin(qb @ self.sulcus_waves.T.astype(np.float32) + self.sulcus_phases.astype(np.float32)).sum(
                axis=-1
            )
            db = di[band]
            sub = brain[band]
            sub[(np.abs(h) < 0.9) | (db > -(csf + np.float32(self.cortex_mm)))] = GREY_HU
            sub[(np.abs(h) < 0.22) & (db > -(csf + np.float32(9.0)))] = CSF_HU
            sub[db > -csf] = CSF_HU
            brain[band] = sub
        fissure = (np.abs(qi[:, 0]) < 1.0) & (qi[:, 2] > 0.15 * self.inner_semi_axes_mm[2])
        brain[fissure] = CSF_HU
        for ell in self.ventricles:
            core_hu[ell.contains(qc)] = VENTRICLE_HU
        # Ventricles and deep grey nuclei win; elsewhere in the box keep the
        # cortex, sulci and fissure painted above.
        brain[core] = np.where(core_hu == WHITE_HU, brain[core], core_hu)
        hu[inside] = brain
        return hu

    def shading(self, points: FloatArray, amplitude_hu: float) -> npt.NDArray[np.float32]:
        """A smooth, slow intensity variation (zero mean, about +/- ``amplitude_hu``)."""
        q = self.to_head_frame(points)
        phase = q @ self.shading_waves.T.astype(np.float32) + self.shading_phases.astype(np.float32)
        return (np.float32(amplitude_hu) * np.cos(phase).mean(axis=-1)).astype(np.float32)
