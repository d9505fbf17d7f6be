"""3D shape features of a hematoma mask (IBSI / pyradiomics definitions and names).

Every feature is named as pyradiomics names it (``original_shape_<Name>``,
the column names of the contest's table3) and, unless noted, defined as there:

``VoxelVolume``
    Sum of the volumes of the mask's voxels (pixel area x each slice's own
    thickness along the normal, so uneven and gapped stacks are measured as
    ``ichpipe measure`` does), mm^3.
``MeshVolume``
    Volume enclosed by the surface mesh (divergence theorem over its
    triangles), mm^3.
``SurfaceArea``
    Area of the surface mesh, mm^2.
``SurfaceVolumeRatio``
    ``SurfaceArea / MeshVolume``, 1/mm.
``Sphericity``
    ``(36 pi MeshVolume^2)^(1/3) / SurfaceArea`` (1 for a sphere).
``Maximum3DDiameter``
    Largest distance between two mesh vertices, mm (exact up to 1,500
    vertices; beyond, the longest of the extreme-vertex pairs along 500
    directions, within 0.2 %).
``Maximum2DDiameterSlice`` / ``Column`` / ``Row``
    Largest distance between two mesh vertices lying in one slice plane /
    one plane of constant row index (pyradiomics' "row-slice" plane, usually
    coronal) / one plane of constant column index ("column-slice", usually
    sagittal), mm.
``MajorAxisLength`` / ``MinorAxisLength`` / ``LeastAxisLength``
    ``4 sqrt(lambda)`` for the largest / second / smallest eigenvalue of the
    covariance of the voxel centres' patient coordinates (each voxel weighted
    by its volume; all equal for a uniform stack, as in pyradiomics). For a
    solid ellipsoid with semi-axis ``a`` the variance is ``a^2 / 5``, so this
    "axis length" is ``4 a / sqrt(5) = 1.789 a``, not ``2 a``.
``Elongation`` / ``Flatness``
    ``sqrt(lambda_minor / lambda_major)`` / ``sqrt(lambda_least / lambda_major)``.

The mesh (:class:`~ichpipe.pipeline.config.features_config.FeatureConfig` ``mesh``):

``smooth`` (default)
    Each slice's mask becomes a signed distance in mm (positive outside,
    zero half-way between a mask pixel and its background neighbour),
    smoothed in-plane by a Gaussian of ``mesh_smoothing_px`` pixels (removes
    the pixel staircase); slices without mask get half their distance to the
    nearest slice; marching cubes at level 0 interpolates linearly between
    slices (shape-based interpolation). On digital ellipsoids, volume and
    area are within about 1-2 % of the analytic values at 1 mm isotropic and
    with 5-mm slices. Objects only a few pixels wide, or spanning one to three
    thick slices with flat ends, come out smaller than their voxels (a
    6 x 6 x 15 mm box on 5-mm slices: MeshVolume -26 %, binary mesh -6 %);
    ``VoxelVolume`` and ``volume_ml`` do not depend on the mesh.
``binary``
    Marching cubes at 0.5 on the binary mask, as pyradiomics. Same volume,
    but the surface follows the voxel staircase: area about +9 % at 1 mm
    isotropic and +25 % with 5-mm slices on an ellipsoid.

Both meshes are computed on the slice and pixel grid and then mapped to
patient coordinates with :class:`~ichpipe.pipeline.measure.features.grid.Grid`, so tilt and
uneven spacing need no resampling.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from skimage.measure import marching_cubes

from ichpipe.pipeline.config.features_config import MeshMethod
from ichpipe.pipeline.measure.features.grid import Grid, mask_indices

__all__ = ["SHAPE_FEATURES", "SHAPE_PREFIX", "shape_features", "surface_mesh"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Prefix of every shape feature name.
SHAPE_PREFIX = "original_shape_"

#: The shape features, in the order the contest's table3 lists them (VoxelVolume last).
SHAPE_FEATURES: tuple[str, ...] = (
    "Elongation",
    "Flatness",
    "LeastAxisLength",
    "MajorAxisLength",
    "Maximum2DDiameterColumn",
    "Maximum2DDiameterRow",
    "Maximum2DDiameterSlice",
    "Maximum3DDiameter",
    "MeshVolume",
    "MinorAxisLength",
    "Sphericity",
    "SurfaceArea",
    "SurfaceVolumeRatio",
    "VoxelVolume",
)

#: Up to this many vertices, diameters come from an exact all-pairs search.
_EXACT_UP_TO = 1500
#: Directions whose extreme vertices are searched beyond that (hemisphere; angular gap < 0.064 rad).
_N_DIRECTIONS = 500
#: Rows per block in the all-pairs distance search (bounds memory to ~ _CHUNK x n doubles).
_CHUNK = 512


def _check(mask: npt.NDArray[np.generic], grid: Grid) -> BoolArray:
    if mask.dtype != np.bool_:
        raise ValueError(f"Argument 'mask' must be a boolean array; got dtype {mask.dtype}.")
    if mask.ndim != 3 or mask.shape[0] != grid.n_slices:
        raise ValueError(
            f"Argument 'mask' must have shape (slices, rows, columns) with {grid.n_slices} slices "
            f"(the grid's); got {mask.shape}."
        )
    return np.asarray(mask)


def _crop(mask: BoolArray, margin: int) -> tuple[BoolArray, tuple[int, int, int]]:
    """The mask's bounding box with one empty slice each side and ``margin`` empty pixels around.

    Returns the cropped (and, beyond the array, zero-padded) mask and the index
    of its ``[0, 0, 0]`` in the original array (may be negative).
    """
    ks = np.flatnonzero(mask.any(axis=(1, 2)))
    rs = np.flatnonzero(mask.any(axis=(0, 2)))
    cs = np.flatnonzero(mask.any(axis=(0, 1)))
    lo = (int(ks[0]) - 1, int(rs[0]) - margin, int(cs[0]) - margin)
    hi = (int(ks[-1]) + 2, int(rs[-1]) + 1 + margin, int(cs[-1]) + 1 + margin)
    inner = mask[
        max(lo[0], 0) : min(hi[0], mask.shape[0]),
        max(lo[1], 0) : min(hi[1], mask.shape[1]),
        max(lo[2], 0) : min(hi[2], mask.shape[2]),
    ]
    pad = [(max(0, -lo[a]), max(0, hi[a] - mask.shape[a])) for a in range(3)]
    return np.pad(inner, pad), lo


def _smooth_field(sub: BoolArray, k0: int, grid: Grid, sigma_px: float) -> FloatArray:
    """Per-slice signed distance (mm, positive outside), in-plane smoothed; empty slices get a cap."""
    sampling = grid.pixel_spacing_mm
    gaps = grid.slice_gaps_mm()
    n = grid.n_slices
    field = np.empty(sub.shape, dtype=np.float64)
    for i in range(sub.shape[0]):
        s = sub[i]
        if not s.any():
            k = min(max(k0 + i, 0), n - 1)  # virtual slices beyond the ends: the end spacing
            field[i] = 0.5 * float(gaps[k])
            continue
        d = ndimage.distance_transform_edt(~s, sampling=sampling) - ndimage.distance_transform_edt(s, sampling=sampling)
        smoothed = ndimage.gaussian_filter(d, sigma_px) if sigma_px > 0 else d
        # A region a few pixels wide can vanish under the smoothing; keep it unsmoothed then.
        field[i] = smoothed if smoothed.min() < 0 else d
    return field


def surface_mesh(
    mask: BoolArray, grid: Grid, *, method: MeshMethod = "smooth", smoothing_px: float = 1.0
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
    """The closed surface mesh of a non-empty mask.

    Parameters
    ----------
    mask:
        Boolean array (slices, rows, columns) on ``grid``.
    grid:
        Where the voxels lie.
    method:
        ``smooth`` or ``binary`` (see the module docstring).
    smoothing_px:
        In-plane Gaussian sigma of the ``smooth`` method, pixels.

    Returns
    -------
    tuple of (index_vertices, patient_vertices, faces)
        Vertices as fractional (slice, row, column) indices of ``mask``, the
        same vertices in patient coordinates (mm), and triangles (m, 3).

    Raises
    ------
    ValueError
        If the mask is empty or does not fit the grid.
    """
    mask = _check(mask, grid)
    if not mask.any():
        raise ValueError("Argument 'mask' is empty; a surface needs at least one voxel.")
    if method not in ("smooth", "binary"):
        raise ValueError(f"Argument 'method' must be 'smooth' or 'binary'; got {method!r}.")
    margin = 2 + math.ceil(3.0 * smoothing_px) if method == "smooth" else 1
    sub, origin = _crop(mask, margin)
    if method == "smooth":
        verts, faces, _, _ = marching_cubes(_smooth_field(sub, origin[0], grid, smoothing_px), level=0.0)
    else:
        verts, faces, _, _ = marching_cubes(sub.astype(np.float32), level=0.5)
    index = np.asarray(verts, dtype=np.float64) + np.asarray(origin, dtype=np.float64)
    patient = grid.points(index[:, 0], index[:, 1], index[:, 2])
    return index, patient, np.asarray(faces, dtype=np.int64)


def _mesh_area_volume(verts: FloatArray, faces: npt.NDArray[np.int64]) -> tuple[float, float]:
    tri = verts[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = 0.5 * float(np.linalg.norm(cross, axis=1).sum())
    volume = abs(float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum()) / 6.0)
    return area, volume


def _pairwise_max(points: FloatArray) -> float:
    """Exact largest pairwise distance, by blocks of a Gram-matrix product."""
    sq = np.einsum("ij,ij->i", points, points)
    best = 0.0
    for start in range(0, points.shape[0], _CHUNK):
        block = points[start : start + _CHUNK]
        d2 = sq[start : start + _CHUNK, None] + sq[None, :] - 2.0 * (block @ points.T)
        best = max(best, float(d2.max()))
    return math.sqrt(max(best, 0.0))


def _directions(n: int) -> FloatArray:
    """``n`` unit vectors spread evenly over a hemisphere (Fibonacci lattice)."""
    i = np.arange(n) + 0.5
    z = i / n
    phi = math.pi * (1.0 + math.sqrt(5.0)) * i
    rho = np.sqrt(1.0 - z * z)
    return np.stack([rho * np.cos(phi), rho * np.sin(phi), z], axis=1)


_DIRECTIONS = _directions(_N_DIRECTIONS)


def _diameter(points: FloatArray) -> float:
    """Largest distance between two of ``points``.

    Exact (all pairs) up to :data:`_EXACT_UP_TO` points after discarding
    points too close to the centroid to end a longer pair. Beyond, the largest
    distance between the two extreme points along each of
    :data:`_N_DIRECTIONS` directions: a true vertex-to-vertex distance of at
    least the largest width along those directions, hence within 0.2 % of
    the diameter (the angular gap between directions is below 0.064 rad).
    """
    if points.shape[0] < 2:
        return 0.0
    centred = points - points.mean(axis=0)
    if centred.shape[0] > _EXACT_UP_TO:
        # A pair longer than a known distance L needs both ends at >= L - r_max from the centroid
        # (triangle inequality); L from a two-sweep search. Exact, and small for elongated shapes.
        r = np.sqrt(np.einsum("ij,ij->i", centred, centred))
        far = centred[int(np.argmax(r))]
        to_far = centred - far
        known = float(np.sqrt(np.einsum("ij,ij->i", to_far, to_far).max()))
        centred = centred[r >= known - float(r.max()) - 1e-9]
    if centred.shape[0] <= _EXACT_UP_TO:
        return _pairwise_max(centred)
    best = 0.0
    step = _CHUNK // 4
    for start in range(0, _N_DIRECTIONS, step):
        proj = np.einsum("dk,nk->dn", _DIRECTIONS[start : start + step], centred)
        gap = centred[proj.argmax(axis=1)] - centred[proj.argmin(axis=1)]
        best = max(best, float(np.sqrt(np.einsum("ij,ij->i", gap, gap).max())))
    return best


def _plane_diameter(index: FloatArray, patient: FloatArray, axis: int) -> float:
    """Largest vertex distance within one grid plane of constant index along ``axis``."""
    coord = index[:, axis]
    on_plane = np.abs(coord - np.round(coord)) < 1e-9
    if not on_plane.any():
        return 0.0
    keys = np.round(coord[on_plane]).astype(np.int64)
    pts = patient[on_plane]
    order = np.argsort(keys, kind="stable")
    keys, pts = keys[order], pts[order]
    bounds = np.flatnonzero(np.diff(keys)) + 1
    return max(_diameter(group) for group in np.split(pts, bounds))


def _axes(mask: BoolArray, grid: Grid) -> tuple[float, float, float]:
    """Eigenvalues (descending) of the volume-weighted covariance of the voxel centres."""
    k, r, c = mask_indices(mask)
    if k.size < 2:
        return 0.0, 0.0, 0.0
    pts = grid.points(k, r, c)
    w = grid.voxel_volumes_mm3[k]
    mean = (w[:, None] * pts).sum(axis=0) / w.sum()
    centred = pts - mean
    cov = (w[:, None] * centred).T @ centred / w.sum()
    eig = np.sort(np.clip(np.linalg.eigvalsh(cov), 0.0, None))[::-1]
    return float(eig[0]), float(eig[1]), float(eig[2])


def shape_features(
    mask: npt.NDArray[np.bool_],
    grid: Grid,
    *,
    mesh: MeshMethod = "smooth",
    smoothing_px: float = 1.0,
) -> dict[str, float | None]:
    """The shape features of ``mask`` (names ``original_shape_<Name>``).

    Parameters
    ----------
    mask:
        Boolean (slices, rows, columns) array on ``grid``.
    grid:
        Voxel-to-patient mapping (:meth:`Grid.from_geometry` for a series).
    mesh:
        ``smooth`` (default) or ``binary`` (pyradiomics' mesh).
    smoothing_px:
        In-plane Gaussian sigma of the smooth mesh, pixels.

    Returns
    -------
    dict
        Feature name to value. An empty mask gives ``VoxelVolume`` and
        ``MeshVolume`` 0 and ``None`` for the rest; ratios of a degenerate
        shape (one voxel: no axes) are ``None``.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((3, 8, 8), dtype=bool); m[1, 2:6, 2:6] = True
    >>> f = shape_features(m, Grid.axial(3, spacing_mm=(1.0, 1.0, 1.0)))
    >>> f["original_shape_VoxelVolume"]
    16.0
    """
    mask = _check(mask, grid)
    out: dict[str, float | None] = {SHAPE_PREFIX + name: None for name in SHAPE_FEATURES}
    counts = np.count_nonzero(mask.reshape(mask.shape[0], -1), axis=1)
    voxel_volume = float(np.sum(counts * grid.voxel_volumes_mm3))
    out[SHAPE_PREFIX + "VoxelVolume"] = voxel_volume
    if voxel_volume == 0.0:
        out[SHAPE_PREFIX + "MeshVolume"] = 0.0
        return out

    index, patient, faces = surface_mesh(mask, grid, method=mesh, smoothing_px=smoothing_px)
    area, volume = _mesh_area_volume(patient, faces)
    out[SHAPE_PREFIX + "MeshVolume"] = volume
    out[SHAPE_PREFIX + "SurfaceArea"] = area
    if volume > 0 and area > 0:
        out[SHAPE_PREFIX + "SurfaceVolumeRatio"] = area / volume
        out[SHAPE_PREFIX + "Sphericity"] = (36.0 * math.pi * volume**2) ** (1.0 / 3.0) / area
    out[SHAPE_PREFIX + "Maximum3DDiameter"] = _diameter(patient)
    out[SHAPE_PREFIX + "Maximum2DDiameterSlice"] = _plane_diameter(index, patient, 0)
    # pyradiomics' naming: "Column" is the row-slice plane (constant row index, usually
    # coronal), "Row" the column-slice plane (constant column index, usually sagittal).
    out[SHAPE_PREFIX + "Maximum2DDiameterColumn"] = _plane_diameter(index, patient, 1)
    out[SHAPE_PREFIX + "Maximum2DDiameterRow"] = _plane_diameter(index, patient, 2)

    major, minor, least = _axes(mask, grid)
    out[SHAPE_PREFIX + "MajorAxisLength"] = 4.0 * math.sqrt(major)
    out[SHAPE_PREFIX + "MinorAxisLength"] = 4.0 * math.sqrt(minor)
    out[SHAPE_PREFIX + "LeastAxisLength"] = 4.0 * math.sqrt(least)
    if major > 0:
        out[SHAPE_PREFIX + "Elongation"] = math.sqrt(minor / major)
        out[SHAPE_PREFIX + "Flatness"] = math.sqrt(least / major)
    return out
