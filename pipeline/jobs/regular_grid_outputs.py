"""``outputs.tilt_eq``: the series and mask on an untilted regular grid, for viewers that need one.

For a gantry-tilted or unevenly spaced series (nothing is written for a
regular one; the NIfTI mask already fits it), ``run`` writes

* ``ct_tilt_eq.nii.gz`` and ``mask_tilt_eq.nii.gz``: CT (int16 HU) and mask
  resampled by :func:`ichpipe.pipeline.measure.regular_grid.resample_to_regular_grid`,
  with an orthogonal affine (sform = qform, no shear), like dcm2niix's
  ``_Tilt_Eq`` file;
* with ``outputs.tilt_eq_dicom``: ``ct_tilt_eq/`` (the grid as a derived CT
  series in the same study and frame of reference) and ``seg_tilt_eq.dcm``
  (a SEG on it), which 3D Slicer / dcmqi load.

The volume of the resampled mask is logged beside the native one, which
remains the measurement.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nibabel as nib
import numpy as np

from ichpipe.dicom_io.assemble import CTVolume, assemble_series
from ichpipe.dicom_io.derived_ct import write_derived_ct
from ichpipe.dicom_io.seg import write_seg
from ichpipe.dicom_io.study import scan_files
from ichpipe.errors import IchpipeError, OutputError
from ichpipe.pipeline.config import Config
from ichpipe.pipeline.measure.nifti_masks import LPS_FROM_RAS
from ichpipe.pipeline.measure.regular_grid import RegularGrid, needs_regular_grid, resample_to_regular_grid

if TYPE_CHECKING:
    from ichpipe.pipeline.jobs.study_outputs import OutputRun

__all__ = ["write_regular_grid"]

log = logging.getLogger(__name__)


def _save_nifti(path: Path, data: np.ndarray, grid: RegularGrid, description: str) -> Path:
    affine = LPS_FROM_RAS @ grid.affine_lps()
    img = nib.Nifti1Image(np.ascontiguousarray(data.transpose(2, 1, 0)), affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = description.encode("ascii", "replace")[:80]
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp.nii.gz")
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"Cannot write {path}: {exc.strerror or exc}.") from exc
    tmp = Path(tmp_name)
    try:
        nib.save(img, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"Cannot write {path}: {exc.strerror or exc}.") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _bracketing(grid: RegularGrid, volume: CTVolume) -> list[list[int]]:
    """For each grid slice, the native slices it was interpolated from."""
    offsets = volume.geometry.offsets_mm
    out = []
    for w in grid.positions @ grid.normal:
        hi = int(np.clip(np.searchsorted(offsets, w - 1e-6), 0, len(offsets) - 1))
        lo = max(hi - 1, 0) if offsets[hi] - w > 1e-6 else hi
        out.append(sorted({lo, hi}))
    return out


def write_regular_grid(out_dir: Path, volume: CTVolume, mask: np.ndarray, config: Config,
                       run: OutputRun) -> dict[str, str]:
    """Write the regular-grid outputs of a tilted or uneven series; nothing for a regular one.

    Returns
    -------
    dict
        Output name -> path (``ct_tilt_eq``, ``mask_tilt_eq``, and with
        ``outputs.tilt_eq_dicom`` ``ct_tilt_eq_dicom`` (a folder) and ``seg_tilt_eq``).

    Raises
    ------
    OutputError
        If a file cannot be written or the derived series cannot be read back.
    """
    geometry = volume.geometry
    if not needs_regular_grid(geometry):
        log.info("series %s is untilted and evenly spaced: no regular-grid output needed", volume.series_uid)
        return {}
    grid = resample_to_regular_grid(volume.hu, mask, geometry, spacing_mm=config.outputs.tilt_eq_spacing_mm)
    log.info("regular grid: %d slices of %dx%d at %.2f mm; mask %.2f mL there (native %.2f mL is the measurement)",
             grid.hu.shape[0], grid.hu.shape[1], grid.hu.shape[2], grid.slice_spacing_mm, grid.volume_ml(),
             float((mask * geometry.voxel_volumes_ml[:, None, None]).sum()))
    hu16 = np.clip(np.rint(grid.hu), -32768, 32767).astype(np.int16)
    outputs: dict[str, str] = {
        "ct_tilt_eq": str(_save_nifti(out_dir / "ct_tilt_eq.nii.gz", hu16, grid, "ichpipe CT, untilted regular grid")),
        "mask_tilt_eq": str(_save_nifti(out_dir / "mask_tilt_eq.nii.gz", grid.mask.astype(np.uint8), grid,
                                        "ichpipe hematoma mask, untilted regular grid")),
    }
    if config.outputs.tilt_eq_dicom:
        outputs.update(_write_dicom(out_dir, volume, grid, run))
    return outputs


def _write_dicom(out_dir: Path, volume: CTVolume, grid: RegularGrid, run: OutputRun) -> dict[str, str]:
    tilt = volume.geometry.gantry_tilt_deg
    files = write_derived_ct(
        grid.hu, grid.positions, source=volume, folder=out_dir / "ct_tilt_eq",
        row_direction=grid.row_direction.tolist(), column_direction=grid.column_direction.tolist(),
        pixel_spacing_mm=grid.pixel_spacing_mm, slice_spacing_mm=grid.slice_spacing_mm,
        source_slices=_bracketing(grid, volume),
        derivation_description=(
            f"Resampled by ichpipe from series {volume.series_uid} (gantry tilt {tilt:.2f} deg,"
            f" {'uniform' if volume.geometry.uniform_spacing else 'uneven'} spacing) onto an untilted grid of"
            f" {grid.slice_spacing_mm:.3f} mm by linear interpolation along the normal; for viewing only."),
        when=run.when, **run.identity("ct_tilt_eq"))
    outputs: dict[str, Any] = {"ct_tilt_eq_dicom": str(out_dir / "ct_tilt_eq")}
    try:
        with scan_files(files, root=out_dir / "ct_tilt_eq") as scan:
            derived = assemble_series(scan.series[0].series)
    except IchpipeError as exc:
        raise OutputError(f"The derived regular-grid CT series in {out_dir / 'ct_tilt_eq'} cannot be read back"
                          f" ({exc}).") from exc
    outputs["seg_tilt_eq"] = str(write_seg(
        grid.mask, derived, out_dir / "seg_tilt_eq.dcm", algorithm_name=f"ichpipe-{run.name}",
        algorithm_version=run.version[:64], series_datetime=run.when,
        content_description="Hematoma on the regular grid; research use, not for diagnosis",
        algorithm_parameters={"checkpoint_sha256": run.checkpoint_sha256} if run.checkpoint_sha256 else None,
        content_creator_name=f"ichpipe^{run.name}"[:64], **run.identity("seg_tilt_eq")))
    return outputs
