"""NIfTI hematoma masks: read with a geometry, align to a study, write for viewing.

Axes and coordinates
--------------------
A NIfTI affine maps voxel indices (i, j, k) to **RAS** millimetres; DICOM
patient coordinates are **LPS**, so ``LPS = diag(-1, -1, 1) @ RAS``. As DICOM
-> NIfTI converters store it (ITK/SimpleITK, dcm2niix, ichpipe itself), NIfTI
``i`` runs along a DICOM row (the column index; its direction is the first
triplet of ImageOrientationPatient), ``j`` along a DICOM column (the row
index; second triplet) and ``k`` across slices. So a NIfTI array
``data[i, j, k]`` is ichpipe's ``mask[k, j, i]`` (slices, rows, columns).

* :func:`read_nifti_mask` derives a :class:`~ichpipe.dicom_io.geometry.VolumeGeometry`
  from the header alone (sform, else qform): direction cosines from the
  affine's i and j columns, pixel spacing from their lengths, slice positions
  ``origin + k x (k column)``. The spacing along the normal and any gantry tilt
  (a sheared k column) then follow the DICOM rules. When k runs against the
  normal ``i x j`` the slices are reversed so that they increase along the
  normal (a warning says so). A header cannot tell a true oblique acquisition
  from a tilted CT whose converter placed the slices along the normal at the
  table step (SimpleITK does, over-reading the spacing by 1/cos(tilt)); an
  oblique, unsheared mask gets a warning saying by how much that would inflate
  the volume. A header holds one slice step, so this geometry is always
  uniform: a mask of an uneven stack is measured exactly only with a study.
* :func:`align_nifti_mask` puts a mask on an assembled series' grid. The mask's
  axes may be permuted or flipped (they are matched to the series' row,
  column and normal directions); then the matrix and slice count must be equal,
  the in-plane directions and spacing must agree, the first voxel must lie at
  the first slice's ImagePositionPatient, and the slice step must match the
  series' spacing along the normal or the distance between its positions
  (median, mean or first gap, so masks written with a single spacing for an
  uneven stack, or by converters that use the table step, are accepted).
  Slices are then matched by index; the volume comes from the DICOM geometry.
* :func:`write_nifti_mask` writes a mask of a series for viewing. A NIfTI
  affine holds one slice step: the sform's k column points along the line
  through the slice positions (sheared under gantry tilt, as dcm2niix does)
  with the **median** spacing along the normal; the qform is the orthogonal
  version (k along the normal). For a non-uniform stack the file cannot place
  every slice exactly: it is for viewing, and volumes always come from the
  DICOM geometry. The write is atomic (temporary name, then rename).

Mask values: every non-zero voxel is hematoma (several labels are merged, with
a warning); non-integer values (probability maps) are refused.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt
from nibabel.filebasedimages import ImageFileError

from ichpipe.dicom_io.assemble import MAX_MATRIX
from ichpipe.dicom_io.geometry import GeometryConfig, VolumeGeometry, compute_geometry
from ichpipe.errors import DicomInputError, GeometryError, OutputError

__all__ = [
    "LPS_FROM_RAS",
    "AlignmentConfig",
    "LoadedNifti",
    "NiftiMask",
    "align_nifti_mask",
    "header_geometry",
    "is_nifti_path",
    "load_nifti_mask",
    "read_nifti_mask",
    "write_nifti_mask",
]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: RAS <-> LPS (its own inverse).
LPS_FROM_RAS: FloatArray = np.diag([-1.0, -1.0, 1.0, 1.0])

_MAX_SLICES = 4096
_NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass(frozen=True)
class AlignmentConfig:
    """Tolerances for putting a NIfTI mask on a series' grid.

    Parameters
    ----------
    position_tolerance_mm:
        Largest distance between the mask's first voxel and the first slice's
        ImagePositionPatient.
    direction_tolerance:
        Largest difference between corresponding unit direction vectors
        (0.01 is about 0.6 degrees).
    spacing_tolerance:
        Largest relative difference between spacings.
    """

    position_tolerance_mm: float = 0.5
    direction_tolerance: float = 0.01
    spacing_tolerance: float = 0.01

    def __post_init__(self) -> None:
        for name in ("position_tolerance_mm", "direction_tolerance", "spacing_tolerance"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"Argument '{name}' must be a positive number; got {value!r}.")


@dataclass(frozen=True)
class NiftiMask:
    """A mask in ichpipe's layout with the geometry it is measured on.

    Attributes
    ----------
    mask:
        Boolean array (slices, rows, columns), slices sorted along the normal.
    geometry:
        From the NIfTI header (:func:`read_nifti_mask`) or the series
        (:func:`align_nifti_mask`).
    path:
        The file read.
    warnings:
        Reorientation, merged labels, oblique planes, etc.
    """

    mask: BoolArray
    geometry: VolumeGeometry
    path: Path
    warnings: tuple[str, ...]


def is_nifti_path(path: Path) -> bool:
    """Whether ``path`` is named like a NIfTI file (``.nii`` or ``.nii.gz``)."""
    return path.name.lower().endswith(_NIFTI_SUFFIXES)


def _to_bool(data: npt.NDArray[Any], name: str) -> tuple[BoolArray, list[str]]:
    """Non-zero -> hematoma; refuse non-integer values; warn about several labels."""
    notes: list[str] = []
    if data.dtype.kind == "f":
        if not np.all(np.isfinite(data)):
            raise DicomInputError(f"Mask {name} holds NaN or infinite values; a mask must hold 0 and labels.")
        frac = data[data != np.round(data)]
        if frac.size:
            raise DicomInputError(
                f"Mask {name} holds non-integer values (e.g. {float(frac.flat[0]):g}); it looks like a"
                " probability map: threshold it into a 0/1 mask first."
            )
    elif data.dtype.kind not in "biu":
        raise DicomInputError(f"Mask {name} has voxel type {data.dtype}; an integer or float mask is needed.")
    mask = data != 0
    labels = np.unique(data[mask]) if mask.any() else np.zeros(0)
    if labels.size > 1:
        shown = ", ".join(f"{v:g}" for v in labels[:10].astype(float))
        notes.append(f"mask holds {labels.size} labels ({shown}); every non-zero voxel is measured as hematoma")
    return mask, notes


@dataclass(frozen=True)
class LoadedNifti:
    """A NIfTI mask file as read, before any geometry is attached.

    Attributes
    ----------
    path:
        The file.
    data:
        Boolean array in the file's voxel order (i, j, k).
    affine_lps:
        4x4 voxel -> LPS mm matrix (sform, else qform, else pixdim only).
    oriented:
        Whether the header holds an orientation (sform_code or qform_code > 0).
    zooms:
        The header's pixdim for i, j, k.
    notes:
        Warnings found while reading (merged labels...).
    """

    path: Path
    data: BoolArray
    affine_lps: FloatArray
    oriented: bool
    zooms: tuple[float, float, float]
    notes: tuple[str, ...]


def load_nifti_mask(path: Path) -> LoadedNifti:
    """Read a NIfTI mask file: voxels as booleans (non-zero is hematoma) and the affine in LPS.

    Raises
    ------
    DicomInputError
        If the file is missing, unreadable, not a 3D NIfTI, of implausible size,
        or holds non-integer (probability) values.
    """
    path = Path(path)
    if not path.is_file():
        raise DicomInputError(f"Mask file {path} does not exist or is not a file.")
    try:
        img = nib.load(path)
    except (ImageFileError, OSError, EOFError, ValueError, zlib.error) as exc:
        raise DicomInputError(f"Mask {path.name} could not be read as NIfTI ({type(exc).__name__}: {exc}).") from exc
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise DicomInputError(f"Mask {path.name} is a {type(img).__name__}, not a NIfTI-1 or NIfTI-2 image.")
    shape = tuple(int(v) for v in img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != 3:
        raise DicomInputError(f"Mask {path.name} has shape {img.shape}; a 3D mask (i, j, k) is needed.")
    if not (0 < shape[0] <= MAX_MATRIX and 0 < shape[1] <= MAX_MATRIX and 0 < shape[2] <= _MAX_SLICES):
        raise DicomInputError(f"Mask {path.name} has an implausible shape {img.shape}; refusing to read it.")
    try:
        raw = np.asanyarray(img.dataobj).reshape(shape)
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise DicomInputError(f"Mask {path.name}: voxel data unreadable ({type(exc).__name__}: {exc}).") from exc
    data, notes = _to_bool(raw, path.name)
    header = img.header
    oriented = int(header["sform_code"]) > 0 or int(header["qform_code"]) > 0
    zooms = tuple(float(z) for z in header.get_zooms()[:3])
    affine = LPS_FROM_RAS @ np.asarray(img.affine, dtype=np.float64) if oriented else np.diag([*zooms, 1.0])
    if not np.all(np.isfinite(affine)):
        raise DicomInputError(f"Mask {path.name}: the NIfTI affine holds non-finite values.")
    return LoadedNifti(path, data, affine, oriented, (zooms[0], zooms[1], zooms[2]), tuple(notes))


def _oblique_note(normal: FloatArray) -> str | None:
    axis = int(np.argmax(np.abs(normal)))
    angle = math.degrees(math.acos(min(1.0, abs(float(normal[axis])))))
    if angle < 1.0:
        return None
    over = 100.0 * (1.0 / math.cos(math.radians(angle)) - 1.0)
    return (
        f"the slice plane is oblique ({angle:.1f} deg from the patient {'xyz'[axis]} axis) and the header places"
        " slices along its normal: if this mask was converted from a gantry-tilted CT by a tool that spaces"
        f" slices by the distance between positions (e.g. SimpleITK), its spacing and volume read {over:.1f} %"
        " high; measure it with --study for the DICOM geometry"
    )


def header_geometry(
    affine_lps: FloatArray,
    shape: tuple[int, int, int],
    *,
    oriented: bool,
    zooms: tuple[float, float, float],
    name: str,
    config: GeometryConfig | None = None,
) -> tuple[VolumeGeometry, bool, list[str]]:
    """The geometry a NIfTI header describes (see :func:`read_nifti_mask`).

    Parameters
    ----------
    affine_lps:
        Voxel (i, j, k) -> LPS matrix (:attr:`LoadedNifti.affine_lps`).
    shape:
        The image's (i, j, k) size.
    oriented, zooms:
        As in :class:`LoadedNifti`.
    name:
        The file's name, for messages.
    config:
        Geometry tolerances.

    Returns
    -------
    tuple
        The geometry (slices sorted along the normal), whether the k axis must
        be reversed to get there, and notes for the user.

    Raises
    ------
    DicomInputError
        If the affine does not describe a stack of parallel slices.
    """
    notes: list[str] = []
    ni, nj, nk = shape
    lps = affine_lps
    if not oriented:
        notes.append(
            "the NIfTI header has no orientation (qform_code and sform_code are 0): assumed axial slices with"
            f" the pixdim spacing {zooms[0]:g} x {zooms[1]:g} x {zooms[2]:g} mm"
        )
    col_vec, row_vec, k_vec, origin = lps[:3, 0], lps[:3, 1], lps[:3, 2].copy(), lps[:3, 3].copy()
    col_spacing, row_spacing = float(np.linalg.norm(col_vec)), float(np.linalg.norm(row_vec))
    if not (col_spacing > 0 and row_spacing > 0):
        raise DicomInputError(f"{name}: the NIfTI affine has a zero or non-finite voxel axis.")
    row_dir, col_dir = col_vec / col_spacing, row_vec / row_spacing
    normal = np.cross(row_dir, col_dir)
    step = float(k_vec @ normal) / float(np.linalg.norm(normal))
    if abs(step) < 1e-6:
        raise DicomInputError(f"{name}: the NIfTI k axis lies in the slice plane; cannot stack slices.")
    flip = step < 0
    if flip:
        origin = origin + (nk - 1) * k_vec
        k_vec = -k_vec
        notes.append(
            f"the NIfTI k axis runs against the slice normal: slices are reported in reverse order"
            f" (slice index s is NIfTI k = {nk - 1} - s)"
        )
    positions = origin[None, :] + np.arange(nk, dtype=np.float64)[:, None] * k_vec[None, :]
    try:
        geometry = compute_geometry(
            orientation=(*row_dir, *col_dir),
            positions=positions,
            pixel_spacing=(row_spacing, col_spacing),
            rows=nj,
            columns=ni,
            slice_thickness_mm=float(np.linalg.norm(k_vec)) if nk == 1 else None,
            config=config,
        )
    except GeometryError as exc:
        raise DicomInputError(f"{name}: the NIfTI affine does not describe a slice stack ({exc})") from exc
    if abs(geometry.gantry_tilt_deg) < 0.01:
        note = _oblique_note(geometry.normal)
        if note:
            notes.append(note)
    return geometry, flip, notes


def read_nifti_mask(path: Path, *, config: GeometryConfig | None = None) -> NiftiMask:
    """Read a NIfTI mask and derive its geometry from the header alone.

    Parameters
    ----------
    path:
        ``.nii`` or ``.nii.gz`` file.
    config:
        Geometry tolerances (gap factor, orthogonality...).

    Raises
    ------
    DicomInputError
        If the file is unreadable, not 3D, holds non-integer values, or its
        affine does not describe a stack of parallel slices.
    """
    loaded = load_nifti_mask(Path(path))
    path, mask = loaded.path, loaded.data
    geometry, flip, found = header_geometry(loaded.affine_lps, mask.shape, oriented=loaded.oriented,
                                            zooms=loaded.zooms, name=f"Mask {path.name}", config=config)
    notes = [*loaded.notes, *found]
    if flip:
        mask = mask[:, :, ::-1]
    out = np.ascontiguousarray(mask.transpose(2, 1, 0))
    for note in notes:
        log.info("mask %s: %s", path.name, note)
    return NiftiMask(out, geometry, path, tuple(notes))


def _mismatch(path: Path, what: str) -> DicomInputError:
    return DicomInputError(f"Mask {path.name} does not match the series: {what}.")


def _fmt(v: FloatArray) -> str:
    return "(" + ", ".join(f"{x:.3f}" for x in v) + ")"


def _close(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b)) + 1e-3


def align_nifti_mask(
    source: Path | LoadedNifti, geometry: VolumeGeometry, *, tolerance: AlignmentConfig | None = None
) -> NiftiMask:
    """Put a NIfTI mask on an assembled series' grid.

    Parameters
    ----------
    source:
        ``.nii`` or ``.nii.gz`` file, or one already read by :func:`load_nifti_mask`
        (to try it against several series without reading it again).
    geometry:
        The series geometry (:attr:`ichpipe.dicom_io.assemble.CTVolume.geometry`).
    tolerance:
        Alignment tolerances; defaults to :class:`AlignmentConfig`.

    Returns
    -------
    NiftiMask
        The mask as (slices, rows, columns) in the series' order, with ``geometry``.

    Raises
    ------
    DicomInputError
        If the file is unreadable or has no orientation, or when its shape,
        directions, spacing, first-voxel position or slice step do not match
        the series; the message says which and by how much.
    """
    tol = tolerance or AlignmentConfig()
    loaded = source if isinstance(source, LoadedNifti) else load_nifti_mask(Path(source))
    path, lps = loaded.path, loaded.affine_lps
    if not loaded.oriented:
        raise DicomInputError(
            f"Mask {path.name} has no orientation in its header (qform_code and sform_code are 0), so it"
            " cannot be checked against the series; write it with the image's affine."
        )
    mask, notes = loaded.data, list(loaded.notes)
    axes = np.column_stack([geometry.row_direction, geometry.column_direction, geometry.normal])
    norms = np.linalg.norm(lps[:3, :3], axis=0)
    if not np.all(norms > 0):
        raise _mismatch(path, "its affine has a zero-length voxel axis")
    dots = (lps[:3, :3] / norms).T @ axes  # dots[a, b]: NIfTI axis a against series axis b
    order = [int(np.argmax(np.abs(dots[:, b]))) for b in range(3)]
    if sorted(order) != [0, 1, 2]:
        raise _mismatch(path, "its voxel axes do not line up with the series' rows, columns and slices")
    signs = [1.0 if dots[order[b], b] > 0 else -1.0 for b in range(3)]
    if order != [0, 1, 2] or min(signs) < 0:
        names = ["i", "j", "k"]
        desc = ", ".join(f"{'-' if signs[b] < 0 else '+'}{names[order[b]]}" for b in range(3))
        notes.append(f"mask axes reoriented to the series' (column, row, slice) order: {desc}")
    mask = mask.transpose(order)
    new = np.eye(4)
    origin = lps[:3, 3].copy()
    for b in range(3):
        col = lps[:3, order[b]]
        if signs[b] < 0:
            origin = origin + (mask.shape[b] - 1) * col
            mask = np.flip(mask, axis=b)
        new[:3, b] = signs[b] * col
    new[:3, 3] = origin
    ni, nj, nk = mask.shape
    expected = (geometry.columns, geometry.rows, geometry.n_slices)
    if (ni, nj, nk) != expected:
        raise _mismatch(
            path,
            f"it has {nk} slices of {nj} x {ni} (rows x columns), the series {geometry.n_slices} slices of"
            f" {geometry.rows} x {geometry.columns}",
        )
    for b, (label, ref, spacing) in enumerate(
        (
            ("row direction", geometry.row_direction, geometry.pixel_spacing_mm[1]),
            ("column direction", geometry.column_direction, geometry.pixel_spacing_mm[0]),
        )
    ):
        length = float(np.linalg.norm(new[:3, b]))
        unit = new[:3, b] / length
        if float(np.max(np.abs(unit - ref))) > tol.direction_tolerance:
            raise _mismatch(path, f"its {label} {_fmt(unit)} differs from the series' {_fmt(ref)} (LPS)")
        if not _close(length, spacing, tol.spacing_tolerance):
            kind = "column" if b == 0 else "row"
            raise _mismatch(path, f"its {kind} spacing {length:.4f} mm differs from the series' {spacing:.4f} mm")
    first = geometry.positions[0]
    dist = float(np.linalg.norm(new[:3, 3] - first))
    if dist > tol.position_tolerance_mm:
        raise _mismatch(
            path,
            f"its first voxel lies at {_fmt(new[:3, 3])} mm, {dist:.2f} mm from the first slice's"
            f" ImagePositionPatient {_fmt(first)} (LPS)",
        )
    if nk > 1:
        k_vec = new[:3, 2]
        along = float(k_vec @ geometry.normal)
        length = float(np.linalg.norm(k_vec))
        offsets = geometry.offsets_mm
        gaps = np.diff(offsets)
        steps = np.linalg.norm(np.diff(geometry.positions, axis=0), axis=1)
        candidates = [float(np.median(gaps)), float(np.mean(gaps)), float(gaps[0]),
                      float(np.median(steps)), float(np.mean(steps)), float(steps[0])]
        if not any(_close(v, c, tol.spacing_tolerance) for v in (along, length) for c in candidates):
            raise _mismatch(
                path,
                f"its slice step is {along:.3f} mm along the normal ({length:.3f} mm long); the series'"
                f" spacing along the normal is {geometry.slice_spacing_mm:.3f} mm (median) and the distance"
                f" between its positions {float(np.median(steps)):.3f} mm",
            )
        if not _close(along, geometry.slice_spacing_mm, tol.spacing_tolerance):
            notes.append(
                f"the mask's slice step ({length:.3f} mm long, {along:.3f} mm along the normal) is not the series'"
                f" median spacing along the normal ({geometry.slice_spacing_mm:.3f} mm): a NIfTI holds one step"
                " (a table step or a mean spacing), so slices are matched by index and the volume uses the DICOM"
                " geometry"
            )
    out = np.ascontiguousarray(mask.transpose(2, 1, 0))
    for note in notes:
        log.info("mask %s: %s", path.name, note)
    return NiftiMask(out, geometry, path, tuple(notes))


def _nifti_affines(geometry: VolumeGeometry) -> tuple[FloatArray, FloatArray]:
    """(sform, qform) in RAS: the sform's k follows the positions, the qform's the normal."""
    lps = geometry.affine_lps()
    ortho = lps.copy()
    if geometry.n_slices > 1:
        line = geometry.positions[-1] - geometry.positions[0]
        lps[:3, 2] = line / float(line @ geometry.normal) * geometry.slice_spacing_mm
    else:
        ortho[:3, 2] = geometry.normal * float(geometry.slice_thickness_mm[0])
        lps[:3, 2] = ortho[:3, 2]
    return LPS_FROM_RAS @ lps, LPS_FROM_RAS @ ortho


def write_nifti_mask(
    path: Path, mask: BoolArray, geometry: VolumeGeometry, *, description: str = "ichpipe hematoma mask"
) -> Path:
    """Write ``mask`` (slices, rows, columns) of a series as a uint8 NIfTI, atomically.

    The file is for viewing: its affine holds the median spacing along the
    normal (see the module docstring); volumes come from the DICOM geometry.

    Parameters
    ----------
    path:
        Destination ending in ``.nii`` or ``.nii.gz``; its folder must exist.
    mask:
        Boolean array aligned to ``geometry``.
    geometry:
        The series geometry.
    description:
        Text for the header's ``descrip`` field (at most 80 characters kept).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        If ``path`` is not a NIfTI name or ``mask`` does not match ``geometry``.
    OutputError
        If the file cannot be written.
    """
    path = Path(path)
    if not is_nifti_path(path):
        raise ValueError(f"Argument 'path' must end in .nii or .nii.gz; got {path.name!r}.")
    expected = (geometry.n_slices, geometry.rows, geometry.columns)
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != expected:
        got = f"{mask.dtype} {mask.shape}" if isinstance(mask, np.ndarray) else type(mask).__name__
        raise ValueError(f"Argument 'mask' must be a boolean array of shape {expected}; got {got}.")
    sform, qform = _nifti_affines(geometry)
    img = nib.Nifti1Image(np.ascontiguousarray(mask.transpose(2, 1, 0)).astype(np.uint8), sform)
    img.set_sform(sform, code=1)
    img.set_qform(qform, code=1)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = description.encode("ascii", "replace")[:80]
    suffix = ".nii.gz" if path.name.lower().endswith(".nii.gz") else ".nii"
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{suffix}")
    except OSError as exc:
        raise OutputError(f"Cannot write {path}: {exc.strerror or exc}.") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        nib.save(img, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"Cannot write {path}: {exc.strerror or exc}.") from exc
    finally:
        tmp.unlink(missing_ok=True)  # gone after a successful rename; a half file otherwise
    return path
