"""Ground truth of a phantom study: ``truth.json`` and the hematoma mask (NIfTI).

The volume is the phantom's own oracle, computed from its plan, never from
the positions a reader sees nor by a reader's thickness rule: every **planned**
slice (a dropped one included) stands for the slab of its nominal thickness
(its block's spacing; the plan's slabs meet without a hole or an overlap, see
:func:`~ichpipe.pipeline.synthetic.phantom.stack_plan.plan_gaps`), and

    volume_ml = sum_k  n_mask_pixels_k * pixel_area_mm2 * nominal_thickness_k / 1000

over the planned slices. That is the voxel-count truth of what was scanned: a
reader that lacks a dropped slice, or cannot know where one block's slabs end
and the next begin, can only approach it (the tests say by how much).
``n_voxels`` counts the mask of the written slices (the NIfTI file);
``planned_slice_voxels`` lists each planned slice's count;
``reader_tolerance_ml`` bounds what the written files cannot say (a dropped
slice, where a change of thickness puts the boundary between two slabs; see
:func:`~ichpipe.pipeline.synthetic.phantom.study_folder.reader_tolerance_ml`),
zero for a complete, evenly spaced stack.

The NIfTI mask holds the labels (0 background, k for hematoma k) of the
**written** slices, sorted along the normal, one slice per unique position.
Array axes are ``(i, j, k) = (column, row, slice)``: ``data[i, j, k]`` is
pixel (row ``j``, column ``i``) of the ``k``-th slice. The affine maps
``(i, j, k)`` to RAS mm; its third column is the mean step between written
positions, so it is exact for a uniform stack (sheared when the gantry is
tilted) and approximate for uneven or gapped stacks, whose exact positions
are in ``truth.json`` (``geometry.positions_lps_mm``).
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import nibabel as nib
import numpy as np
import numpy.typing as npt

__all__ = [
    "MASK_NIFTI_NAME",
    "TRUTH_NAME",
    "PhantomTruth",
    "SegWriter",
    "load_truth",
    "mask_affine_ras",
    "voxel_volume_ml",
    "write_json_atomic",
    "write_mask_nifti",
]

TRUTH_NAME = "truth.json"
MASK_NIFTI_NAME = "truth_mask.nii.gz"
MASK_SEG_NAME = "truth_mask_seg.dcm"

FloatArray = npt.NDArray[np.float64]
LabelArray = npt.NDArray[np.uint8]


class SegWriter(Protocol):
    """Hook for the DICOM SEG writer (``dicom_io``, to come).

    Called once per study with the main series' files (one per mask slice,
    in mask order), the label mask ``(n_slices, rows, columns)`` and the
    output path; returns the path it wrote. Hematoma ``k`` is label ``k``.
    """

    def __call__(self, source_files: Sequence[Path], labels: LabelArray, out_path: Path) -> Path:
        """Write a DICOM SEG of ``labels`` referencing ``source_files``."""
        ...


def voxel_volume_ml(
    labels: LabelArray,
    thickness_mm: FloatArray,
    pixel_spacing_mm: tuple[float, float],
    *,
    label: int | None = None,
) -> tuple[float, int]:
    """Volume (mL) and voxel count of a label mask whose slice ``k`` stands for a slab ``thickness_mm[k]`` thick.

    Parameters
    ----------
    labels:
        Mask, shape (n_slices, rows, columns).
    thickness_mm:
        Thickness of each slice's slab along the normal, shape (n_slices,).
    pixel_spacing_mm:
        (row spacing, column spacing).
    label:
        Count only this label; ``None`` counts every non-zero voxel.

    Raises
    ------
    ValueError
        If ``thickness_mm`` does not hold one thickness per slice.
    """
    hit = labels > 0 if label is None else labels == label
    thickness = np.asarray(thickness_mm, dtype=np.float64)
    if thickness.shape != (hit.shape[0],):
        raise ValueError(
            f"Argument 'thickness_mm' must hold one thickness per slice ({hit.shape[0]}); got shape {thickness.shape}."
        )
    counts = hit.reshape(hit.shape[0], -1).sum(axis=1).astype(np.float64)
    area = float(pixel_spacing_mm[0]) * float(pixel_spacing_mm[1])
    return float(np.sum(counts * area * thickness) / 1000.0), int(counts.sum())


def mask_affine_ras(
    *,
    positions: FloatArray,
    row_direction: FloatArray,
    column_direction: FloatArray,
    pixel_spacing_mm: tuple[float, float],
) -> FloatArray:
    """4x4 affine from NIfTI voxel ``(column, row, slice)`` to RAS mm (see the module docstring)."""
    lps = np.eye(4)
    lps[:3, 0] = np.asarray(row_direction) * pixel_spacing_mm[1]
    lps[:3, 1] = np.asarray(column_direction) * pixel_spacing_mm[0]
    pos = np.asarray(positions, dtype=np.float64)
    if pos.shape[0] > 1:
        lps[:3, 2] = (pos[-1] - pos[0]) / (pos.shape[0] - 1)
    else:
        lps[:3, 2] = np.cross(row_direction, column_direction)
    lps[:3, 3] = pos[0]
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def write_mask_nifti(path: Path, labels: LabelArray, affine_ras: FloatArray) -> None:
    """Write a uint8 label mask ``(n_slices, rows, columns)`` as gzipped NIfTI-1, atomically.

    The sform holds the affine (code 1, scanner); the qform too unless the
    affine is sheared (tilted gantry), where the qform code is 0.
    """
    data = np.ascontiguousarray(np.transpose(labels, (2, 1, 0)).astype(np.uint8))
    img = nib.Nifti1Image(data, affine_ras)
    img.set_sform(affine_ras, code=1)
    rzs = affine_ras[:3, :3]
    cols = rzs / np.linalg.norm(rzs, axis=0)
    if np.allclose(cols.T @ cols, np.eye(3), atol=1e-6):
        img.set_qform(affine_ras, code=1)
    else:
        img.set_qform(None, code=0)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = b"ichpipe phantom hematoma labels"
    # gzip with a zero timestamp, so the same phantom gives the same bytes.
    payload = gzip.compress(img.to_bytes(), compresslevel=6, mtime=0)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON to a temporary name in the same folder, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class PhantomTruth:
    """What :func:`~ichpipe.pipeline.synthetic.phantom.write_phantom_study` wrote and the values to expect.

    Attributes
    ----------
    out_dir:
        The study folder.
    truth_path, mask_path:
        ``truth.json`` and the NIfTI label mask.
    seg_path:
        The DICOM SEG mask, when a SEG writer was given.
    data:
        The content of ``truth.json``.
    """

    out_dir: Path
    truth_path: Path
    mask_path: Path
    seg_path: Path | None
    data: Mapping[str, Any]

    @property
    def volume_ml(self) -> float:
        """Voxel-count hematoma volume of the planned slices, each over its nominal thickness (mL)."""
        return float(self.data["hematoma"]["volume_ml"])

    @property
    def reader_tolerance_ml(self) -> float:
        """How far from :attr:`volume_ml` a correct reader of the written files may land (mL)."""
        return float(self.data["hematoma"]["reader_tolerance_ml"])

    @property
    def n_voxels(self) -> int:
        """Hematoma voxels on the written slices."""
        return int(self.data["hematoma"]["n_voxels"])

    @property
    def patient_id(self) -> str:
        """PatientID written."""
        return str(self.data["patient_id"])

    @property
    def accession_number(self) -> str:
        """AccessionNumber written."""
        return str(self.data["accession_number"])

    @property
    def acquisition_datetime(self) -> datetime:
        """Acquisition date and time of the axial series."""
        return datetime.fromisoformat(self.data["acquisition_datetime"])

    @property
    def study_instance_uid(self) -> str:
        """StudyInstanceUID written."""
        return str(self.data["study_instance_uid"])

    @property
    def series_instance_uid(self) -> str:
        """SeriesInstanceUID of the series a reader should select."""
        return str(self.data["series_instance_uid"])

    @property
    def geometry(self) -> Mapping[str, Any]:
        """Geometry truth of the selected series (see ``truth.json``)."""
        return dict(self.data["geometry"])

    def dicom_files(self, role: str = "main") -> list[Path]:
        """Absolute paths of the files of one series role (``main``, ``bone``...)."""
        for series in self.data["series"]:
            if series["role"] == role:
                return [self.out_dir / p for p in series["files"]]
        raise ValueError(f"Argument 'role' {role!r} names no series of this study.")


def load_truth(study_dir: Path) -> PhantomTruth:
    """Read ``truth.json`` of a phantom study folder.

    Raises
    ------
    FileNotFoundError
        If the folder has no ``truth.json``.
    ValueError
        If the file is not a phantom truth.
    """
    study_dir = Path(study_dir)
    path = study_dir / TRUTH_NAME
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("generator") != "ichpipe phantom":
        raise ValueError(f"Argument 'study_dir': {path} is not an ichpipe phantom truth file.")
    seg = data["files"].get("mask_seg")
    return PhantomTruth(
        out_dir=study_dir,
        truth_path=path,
        mask_path=study_dir / data["files"]["mask_nifti"],
        seg_path=study_dir / seg if seg else None,
        data=data,
    )
