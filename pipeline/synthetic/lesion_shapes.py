"""Hematoma shapes for synthetic training studies: real expert masks, or built-in blobs.

Real shapes come from the 419 HemSeg-500 expert masks in
``../shared/data/hemseg500-masks/`` (Song et al. 2024, arXiv:2405.14559; train
334, val 85; images not included). Each mask's largest 3D component is cut
out and resampled to a 1 mm isotropic occupancy grid in patient axes (LPS),
so a shape can be rotated, scaled and placed in any head at any slice
spacing. Training studies draw from the ``train`` masks and held-out
evaluation studies from the ``val`` masks, so test shapes are never seen.

Without the shared data (a fresh clone elsewhere) :func:`shape_bank` falls
back to built-in shapes -- lobulated unions of random ellipsoids -- and says so.
"""

from __future__ import annotations

import csv
import logging
import math
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
import numpy.typing as npt
from nibabel.filebasedimages import ImageFileError
from scipy import ndimage

__all__ = [
    "DEFAULT_HEMSEG_DIR",
    "LesionShape",
    "ShapeBank",
    "ShapeSubset",
    "builtin_shape",
    "shape_bank",
    "shape_from_mask",
]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
ShapeSubset = Literal["train", "val", "builtin"]

#: Where the HemSeg-500 masks are expected (``../shared/data`` next to the repository).
DEFAULT_HEMSEG_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "hemseg500-masks"

_MIN_ML = 0.5
_MAX_ML = 90.0


@dataclass(frozen=True)
class LesionShape:
    """A hematoma shape on a 1 mm isotropic grid.

    Attributes
    ----------
    name:
        Where it comes from (``hemseg:train/01c1a0169f`` or ``builtin:7``).
    occupancy:
        float32 array indexed (x, y, z) along patient L, P, S at 1 mm; values
        in [0, 1], the shape is where it is at least 0.5.
    volume_ml:
        Volume of the shape (voxels at or above 0.5, 1 mm^3 each).
    """

    name: str
    occupancy: F32
    volume_ml: float

    @cached_property
    def points(self) -> npt.NDArray[np.float64]:
        """Index (= mm) coordinates of the voxels of the shape, (n, 3)."""
        return np.argwhere(self.occupancy >= 0.5).astype(np.float64)

    @cached_property
    def centre_index(self) -> npt.NDArray[np.float64]:
        """Centroid of the shape in index (= mm) coordinates."""
        return np.asarray(self.points.mean(axis=0), dtype=np.float64)

    @cached_property
    def radius_mm(self) -> float:
        """Distance from the centroid to the farthest voxel of the shape (mm)."""
        return float(np.max(np.linalg.norm(self.points - self.centre_index, axis=1))) + 1.0


def shape_from_mask(mask: npt.NDArray[np.bool_], spacing_mm: tuple[float, float, float], name: str) -> LesionShape:
    """The largest 3D component of ``mask`` (x, y, z axes along L, P, S), resampled to 1 mm.

    Raises
    ------
    ValueError
        If ``mask`` is empty or not 3D, or a spacing is not positive.
    """
    if mask.ndim != 3 or not mask.any():
        raise ValueError(f"Argument 'mask' must be a non-empty 3D array; got shape {mask.shape} for {name}.")
    if min(spacing_mm) <= 0:
        raise ValueError(f"Argument 'spacing_mm' must be positive; got {spacing_mm}.")
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    component = labels == int(np.argmax(sizes))
    box = ndimage.find_objects(component.astype(np.int8))[0]
    crop = np.pad(component[box].astype(np.float32), 1)
    # 1 mm output voxel j has its centre at (j + 0.5) mm from the crop's edge, i.e. at input index
    # (j + 0.5) / spacing - 0.5; linear interpolation puts the surface half-way between voxel centres.
    size = [max(1, round(n * s)) for n, s in zip(crop.shape, spacing_mm, strict=True)]
    axes = [(np.arange(n, dtype=np.float64) + 0.5) / s - 0.5 for n, s in zip(size, spacing_mm, strict=True)]
    coords = np.meshgrid(*axes, indexing="ij")
    occupancy = ndimage.map_coordinates(crop, coords, order=1, mode="constant", cval=0.0)
    occupancy = np.clip(occupancy, 0.0, 1.0).astype(np.float32)
    return LesionShape(name, occupancy, float(np.count_nonzero(occupancy >= 0.5)) / 1000.0)


def builtin_shape(seed: int) -> LesionShape:
    """A lobulated blob: a union of 1-4 random ellipsoids, 3-60 mL, on a 1 mm grid."""
    rng = np.random.default_rng([seed, 0xB10B])
    volume = math.exp(rng.uniform(math.log(3.0), math.log(60.0)))
    radius = (3.0 * volume * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)
    half = math.ceil(radius * 2.2) + 2
    grid = np.stack(np.meshgrid(*(np.arange(-half, half + 1, dtype=np.float32),) * 3, indexing="ij"), axis=-1)
    inside = np.zeros(grid.shape[:3], dtype=bool)
    for k in range(int(rng.integers(1, 5))):
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        semi = radius * np.array([1.0, rng.uniform(0.5, 0.95), rng.uniform(0.4, 0.9)]) * (1.0 if k == 0 else 0.6)
        centre = np.zeros(3) if k == 0 else rng.normal(size=3) * radius * 0.5
        d = (grid - centre.astype(np.float32)) @ q.astype(np.float32)
        inside |= np.einsum("...i,...i->...", d / semi.astype(np.float32), d / semi.astype(np.float32)) <= 1.0
    occupancy = ndimage.gaussian_filter(inside.astype(np.float32), 0.7)
    return LesionShape(f"builtin:{seed}", occupancy, float(np.count_nonzero(occupancy >= 0.5)) / 1000.0)


def _read_hemseg(path: Path) -> tuple[npt.NDArray[np.bool_], tuple[float, float, float]]:
    """A HemSeg mask as bool (x, y, z) along L, P, S and its spacing."""
    img = nib.load(path)
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise ValueError(f"Argument 'path' {path.name} is not a NIfTI image.")
    canonical = nib.as_closest_canonical(img)  # axes along R, A, S
    data = np.asanyarray(canonical.dataobj) > 0
    while data.ndim > 3:
        data = data[..., 0]
    zooms = canonical.header.get_zooms()[:3]
    return data[::-1, ::-1, :], (float(zooms[0]), float(zooms[1]), float(zooms[2]))


class ShapeBank:
    """A set of lesion shapes to draw from, loaded lazily (HemSeg masks take a moment each).

    Parameters
    ----------
    files:
        HemSeg mask files; empty for built-in shapes only.
    description:
        Where the shapes come from, for the dataset card.
    cache_size:
        Shapes kept in memory.
    """

    def __init__(self, files: list[Path], description: str, *, cache_size: int = 64) -> None:
        self.files = list(files)
        self.description = description
        self._cache: OrderedDict[int, LesionShape] = OrderedDict()
        self._cache_size = cache_size

    @property
    def uses_real_masks(self) -> bool:
        """Whether the shapes are HemSeg expert masks (not the built-in fallback)."""
        return bool(self.files)

    def __len__(self) -> int:
        return len(self.files) if self.files else 1000

    def get(self, index: int) -> LesionShape:
        """Shape number ``index`` (modulo the bank size)."""
        index = int(index) % len(self)
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            return cached
        if not self.files:
            shape = builtin_shape(index)
        else:
            path = self.files[index]
            mask, spacing = _read_hemseg(path)
            shape = shape_from_mask(mask, spacing, f"hemseg:{path.parent.parent.name}/{path.name.split('.')[0]}")
        self._cache[index] = shape
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return shape

    def draw(self, rng: np.random.Generator, *, attempts: int = 20) -> LesionShape:
        """A random usable shape (0.5-90 mL); unreadable or too small masks are skipped with a log line."""
        for _ in range(attempts):
            index = int(rng.integers(len(self)))
            try:
                shape = self.get(index)
            except (OSError, EOFError, ValueError, ImageFileError, zlib.error) as exc:
                log.warning("lesion shape %s skipped: %s", self.files[index % len(self.files)].name, exc)
                continue
            if _MIN_ML <= shape.volume_ml <= _MAX_ML:
                return shape
        return builtin_shape(int(rng.integers(1 << 30)))


def _listed(folder: Path, subset: str) -> list[Path]:
    """Mask files of a HemSeg subset, in the order of its CSV (else sorted)."""
    labels = folder / subset / "label"
    if not labels.is_dir():
        return []
    table = folder / f"{subset}_set.csv"
    if table.is_file():
        with table.open(newline="", encoding="utf-8") as fh:
            names = [row["filename"] for row in csv.DictReader(fh) if row.get("filename")]
        files = [labels / f"{n}.nii.gz" for n in names if (labels / f"{n}.nii.gz").is_file()]
        if files:
            return files
    return sorted(labels.glob("*.nii.gz"))


def shape_bank(subset: ShapeSubset, *, hemseg_dir: Path | None = None) -> ShapeBank:
    """The shapes of a subset: HemSeg ``train`` or ``val`` masks, or the built-in shapes.

    When the HemSeg folder is absent, both subsets fall back to the built-in
    shapes and a warning says so.

    Raises
    ------
    ValueError
        If ``subset`` is not ``train``, ``val`` or ``builtin``.
    """
    if subset not in ("train", "val", "builtin"):
        raise ValueError(f"Argument 'subset' must be 'train', 'val' or 'builtin'; got {subset!r}.")
    if subset == "builtin":
        return ShapeBank([], "built-in lobulated ellipsoid unions (no real masks)")
    folder = Path(hemseg_dir) if hemseg_dir is not None else DEFAULT_HEMSEG_DIR
    files = _listed(folder, subset)
    if not files:
        log.warning(
            "HemSeg-500 masks not found under %s: lesion shapes fall back to built-in blobs (the dataset is less"
            " realistic; put the masks there for real shapes)", folder,
        )
        return ShapeBank([], f"built-in lobulated ellipsoid unions (HemSeg-500 masks not found at {folder})")
    return ShapeBank(
        files,
        f"{len(files)} HemSeg-500 {subset} expert masks (largest 3D component, resampled to 1 mm;"
        " Song et al. 2024, arXiv:2405.14559)",
    )
