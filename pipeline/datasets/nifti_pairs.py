"""Cases stored as NIfTI pairs: a CT image in HU and a label mask on the same grid.

This is the layout of the public PhysioNet CT-ICH dataset (``ct_scans/NNN.nii``
+ ``masks/NNN.nii``) and of HemSeg-200/500 (``image/ID.nii.gz`` +
``label/ID.nii.gz``). :func:`pair_nifti_folders` builds manifest rows from such
folders by matching file names.

The geometry (and the slice order along the normal) comes from the mask's
header exactly as :func:`ichpipe.pipeline.measure.nifti_masks.read_nifti_mask` derives it; the
image must have the same shape and affine and is reordered the same way. A
NIfTI header holds one slice step: volumes of an unevenly spaced or
gantry-tilted acquisition converted to NIfTI are only as right as the header
(see :mod:`ichpipe.pipeline.measure.nifti_masks`).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt
from nibabel.filebasedimages import ImageFileError

from ichpipe.errors import DicomInputError
from ichpipe.pipeline.datasets.case import CaseVolume
from ichpipe.pipeline.datasets.manifest import ManifestEntry, Split
from ichpipe.pipeline.measure.nifti_masks import LPS_FROM_RAS, load_nifti_mask, read_nifti_mask

__all__ = ["NIFTI_SUFFIXES", "nifti_stem", "pair_nifti_folders", "read_nifti_case", "read_nifti_image"]

#: File name endings taken as NIfTI.
NIFTI_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii")


def nifti_stem(path: Path) -> str:
    """The file name without ``.nii.gz`` / ``.nii`` (any case)."""
    name = path.name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def read_nifti_image(path: Path) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """A 3D NIfTI image as float32 (header scaling applied) and its affine in LPS.

    Raises
    ------
    DicomInputError
        If the file cannot be read or is not 3D.
    """
    path = Path(path)
    if not path.is_file():
        raise DicomInputError(f"Image file {path} does not exist or is not a file.")
    try:
        img = nib.load(path)
        if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
            raise DicomInputError(f"Image {path.name} is a {type(img).__name__}, not a NIfTI-1 or NIfTI-2 image.")
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except (ImageFileError, OSError, EOFError, ValueError, zlib.error) as exc:
        raise DicomInputError(f"Image {path.name} could not be read as NIfTI ({type(exc).__name__}: {exc}).") from exc
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DicomInputError(f"Image {path.name} has shape {data.shape}; a 3D image (i, j, k) is needed.")
    header = img.header
    if int(header["sform_code"]) > 0 or int(header["qform_code"]) > 0:
        return data, LPS_FROM_RAS @ np.asarray(img.affine, dtype=np.float64)
    # as ichpipe.pipeline.measure.nifti_masks.load_nifti_mask: no orientation, pixdim spacing
    zooms = [float(z) for z in header.get_zooms()[:3]]
    return data, np.diag([*zooms, 1.0])


def _to_slices(data: npt.NDArray[np.float32], affine_lps: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """NIfTI ``(i, j, k)`` to ichpipe's ``(slices, rows, columns)``, slices increasing along the normal.

    The same rule as :func:`ichpipe.pipeline.measure.nifti_masks.read_nifti_mask`: ``k`` is
    reversed when it runs against ``i x j``.
    """
    col_vec, row_vec, k_vec = affine_lps[:3, 0], affine_lps[:3, 1], affine_lps[:3, 2]
    normal = np.cross(col_vec / np.linalg.norm(col_vec), row_vec / np.linalg.norm(row_vec))
    if float(k_vec @ normal) < 0:
        data = data[:, :, ::-1]
    return np.ascontiguousarray(data.transpose(2, 1, 0), dtype=np.float32)


def read_nifti_case(
    image: Path, mask: Path | None, *, case_id: str, patient_id: str, source: str = ""
) -> CaseVolume:
    """Read a NIfTI image (HU) and its NIfTI mask.

    Parameters
    ----------
    image:
        The CT in HU (``.nii`` or ``.nii.gz``).
    mask:
        The label on the same grid (non-zero is hematoma). Required: the
        geometry is taken from it.
    case_id, patient_id, source:
        From the manifest.

    Raises
    ------
    DicomInputError
        If a file cannot be read, or the two do not share shape and affine.
    ValueError
        If ``mask`` is ``None``.
    """
    if mask is None:
        raise ValueError(f"Argument 'mask' is None for NIfTI case {case_id}; a NIfTI case needs its mask file.")
    labels = read_nifti_mask(Path(mask))
    data, affine = read_nifti_image(Path(image))
    mask_shape = (labels.geometry.columns, labels.geometry.rows, labels.geometry.n_slices)
    if data.shape != mask_shape:
        raise DicomInputError(
            f"Case {case_id}: image {Path(image).name} has shape {data.shape}, mask {Path(mask).name} {mask_shape}."
        )
    mask_affine = load_nifti_mask(Path(mask)).affine_lps
    if not np.allclose(affine, mask_affine, atol=1e-3, rtol=1e-4):
        raise DicomInputError(
            f"Case {case_id}: image {Path(image).name} and mask {Path(mask).name} have different affines;"
            " they are not on the same grid."
        )
    return CaseVolume(
        case_id=case_id,
        patient_id=patient_id,
        image=_to_slices(data, affine),
        mask=labels.mask,
        geometry=labels.geometry,
        intensity="hu",
        source=source,
    )


def pair_nifti_folders(
    images: Path,
    masks: Path,
    *,
    split: Split = "train",
    source: str = "",
    patient_of: dict[str, str] | None = None,
) -> list[ManifestEntry]:
    """Manifest rows for every image in ``images`` that has a mask of the same name in ``masks``.

    Parameters
    ----------
    images, masks:
        Folders of ``.nii``/``.nii.gz`` files (PhysioNet ``ct_scans``/``masks``,
        HemSeg ``image``/``label``).
    split:
        Split given to every row (use :func:`~ichpipe.pipeline.datasets.manifest.assign_splits` after).
    source:
        Free text for the ``source`` column.
    patient_of:
        Case ID (file name without suffix) to patient ID; by default each case is its own patient.

    Raises
    ------
    ValueError
        If a folder does not exist or no pair is found.
    """
    if not Path(images).is_dir() or not Path(masks).is_dir():
        raise ValueError(f"Arguments 'images' and 'masks' must be folders; got {images} and {masks}.")
    mask_by_stem = {
        nifti_stem(p): p for p in sorted(Path(masks).iterdir()) if p.name.lower().endswith(NIFTI_SUFFIXES)
    }
    rows: list[ManifestEntry] = []
    for image in sorted(Path(images).iterdir()):
        if not image.name.lower().endswith(NIFTI_SUFFIXES):
            continue
        stem = nifti_stem(image)
        if stem not in mask_by_stem:
            continue
        patient = (patient_of or {}).get(stem, stem)
        rows.append(
            ManifestEntry(
                case_id=stem, patient_id=patient, split=split, format="nifti", image=image,
                mask=mask_by_stem[stem], source=source,
            )
        )
    if not rows:
        raise ValueError(f"Arguments 'images' and 'masks' hold no pair of NIfTI files with the same name: {images}.")
    return rows

