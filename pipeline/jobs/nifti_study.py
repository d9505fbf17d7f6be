"""``ichpipe run --study CASE.nii.gz``: the main job on a NIfTI CT (research cohorts: BLAST-CT, TotalSegmentator users).

The geometry comes from the NIfTI header alone
(:func:`ichpipe.pipeline.measure.nifti_masks.header_geometry`): one slice step,
so a gantry-tilted or unevenly spaced acquisition converted to NIfTI is
measured only as exactly as the converter placed its slices (the report's
warnings say so, as ``ichpipe measure`` does for a NIfTI mask). Voxel values
are taken as HU after the header's scaling (``scl_slope``/``scl_inter``).

There are no DICOM instances to reference, so no SEG, key image Secondary
Capture or SR is written: the mask goes to ``mask.nii.gz`` (on the input's
grid and affine), beside ``key_image.png`` and ``report.json``, in
``OUT/nifti/<file name>-<first 12 hex digits of the file's SHA-256>/``. The
report says ``input.format: nifti`` and which outputs were skipped and why;
identity fields are null and nothing is recorded in the results store (no
PatientID).
"""

from __future__ import annotations

import logging
import re
import zlib
from datetime import datetime
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

from ichpipe import __version__
from ichpipe.dicom_io.assemble import MAX_MATRIX, CTVolume
from ichpipe.dicom_io.geometry import GeometryConfig
from ichpipe.errors import DicomInputError, OutputError
from ichpipe.models.hashing import file_sha256
from ichpipe.pipeline.config import Config
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume
from ichpipe.pipeline.jobs.study_outputs import OutputRun, key_image, remove_outputs, write_json, write_png
from ichpipe.pipeline.measure.nifti_masks import LPS_FROM_RAS, header_geometry, is_nifti_path, write_nifti_mask
from ichpipe.pipeline.outputs.report import SegmenterInfo, StageTimer, build_study_report
from ichpipe.pipeline.quality.flags import QualityFlag
from ichpipe.pipeline.segment import Segmenter

__all__ = ["NIFTI_CAVEAT", "SKIPPED_FOR_NIFTI", "is_nifti_input", "load_nifti_ct", "run_nifti"]

log = logging.getLogger(__name__)

#: The warning every NIfTI-input report carries.
NIFTI_CAVEAT = (
    "input is NIfTI: the geometry comes from its header, which holds one slice step, so a gantry-tilted or"
    " unevenly spaced acquisition is measured only as exactly as the converter placed its slices; run on the"
    " DICOM study for the exact geometry"
)
#: Outputs ``run`` does not write for a NIfTI input, and why.
SKIPPED_FOR_NIFTI = {
    "seg": "a DICOM SEG must reference DICOM source instances; the input is NIfTI (mask.nii.gz written instead)",
    "secondary_capture": "a DICOM key image belongs to a DICOM study; the input is NIfTI (key_image.png written)",
    "sr": "a DICOM SR must reference DICOM evidence; the input is NIfTI (report.json holds the measurements)",
}
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def is_nifti_input(path: Path) -> bool:
    """Whether ``path`` is a NIfTI file (``.nii``, ``.nii.gz``) rather than a study."""
    return Path(path).is_file() and is_nifti_path(Path(path))


def load_nifti_ct(path: Path, *, config: GeometryConfig | None = None) -> CTVolume:
    """Read a NIfTI CT as a :class:`CTVolume` (no slice headers; UIDs empty), geometry from its header.

    Raises
    ------
    DicomInputError
        If the file is unreadable, not 3D, of implausible size, holds non-finite
        values, or its affine does not describe a slice stack.
    """
    path = Path(path)
    try:
        img = nib.load(path)
        if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
            raise DicomInputError(f"{path.name} is a {type(img).__name__}, not a NIfTI-1 or NIfTI-2 image.")
        shape = tuple(int(v) for v in img.shape)
        while len(shape) > 3 and shape[-1] == 1:
            shape = shape[:-1]
        if len(shape) != 3:
            raise DicomInputError(f"{path.name} has shape {img.shape}; a 3D CT (i, j, k) is needed.")
        if not (0 < shape[0] <= MAX_MATRIX and 0 < shape[1] <= MAX_MATRIX and 0 < shape[2] <= 4096):
            raise DicomInputError(f"{path.name} has an implausible shape {img.shape}; refusing to read it.")
        data = np.asarray(img.get_fdata(dtype=np.float32)).reshape(shape)
    except (ImageFileError, OSError, EOFError, ValueError, zlib.error) as exc:
        raise DicomInputError(f"{path.name} could not be read as NIfTI ({type(exc).__name__}: {exc}).") from exc
    if not np.all(np.isfinite(data)):
        raise DicomInputError(f"{path.name} holds NaN or infinite values; a CT in HU is needed.")
    header = img.header
    oriented = int(header["sform_code"]) > 0 or int(header["qform_code"]) > 0
    zooms = tuple(float(z) for z in header.get_zooms()[:3])
    affine = LPS_FROM_RAS @ np.asarray(img.affine, dtype=np.float64) if oriented else np.diag([*zooms, 1.0])
    geometry, flip, notes = header_geometry(affine, (shape[0], shape[1], shape[2]), oriented=oriented,
                                            zooms=(zooms[0], zooms[1], zooms[2]), name=path.name, config=config)
    if flip:
        data = data[:, :, ::-1]
    low, high = float(data.min()), float(data.max())
    if low >= -100.0 and high <= 255.0:
        notes.append(f"voxel values {low:g}..{high:g} do not look like HU (no air near -1000); if the image is"
                     " windowed or normalised, volumes and the segmentation are unreliable")
    hu = np.ascontiguousarray(data.transpose(2, 1, 0), dtype=np.float32)
    return CTVolume(hu=hu, geometry=geometry, slices=(), study_uid="", series_uid="",
                    warnings=(NIFTI_CAVEAT, *geometry.warnings, *notes))


def _output_dir(out_root: Path, path: Path, digest: str) -> Path:
    stem = path.name[: -len(".nii.gz")] if path.name.lower().endswith(".nii.gz") else path.stem
    safe = _SAFE.sub("_", stem).strip("._") or "case"
    return out_root / "nifti" / f"{safe[:48]}-{digest[:12]}"


def run_nifti(path: Path, out_root: Path, config: Config, segmenter: Segmenter, timer: StageTimer) -> tuple[
        dict[str, Any], Path, tuple[QualityFlag, ...]]:
    """Segment and measure a NIfTI CT; write mask, key image and report.

    The image is analysed as a DICOM series is (intracranial space, segmenter,
    threshold cross-check, quality flags: :func:`~ichpipe.pipeline.jobs.analyse_volume.analyse_volume`).
    Returns the report, its folder and the quality flags.

    Raises
    ------
    ichpipe.errors.IchpipeError
        Unreadable input, a failed segmentation, or an output that cannot be written.
    """
    with timer.stage("assemble"):
        volume = load_nifti_ct(path, config=config.geometry)
    out_dir = _output_dir(out_root, path, file_sha256(path))
    analysis = analyse_volume(volume, segmenter, config, timer=timer)
    mask, measurement, quality = analysis.mask, analysis.measurement, analysis.quality
    info = segmenter.describe()
    run = OutputRun(segmenter=info, when=datetime.now(), flags=tuple(quality.flags))
    outputs: dict[str, str] = {}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot create output folder {out_dir}: {exc.strerror or exc}.") from exc
    try:
        with timer.stage("outputs"):
            outputs["nifti_mask"] = str(write_nifti_mask(out_dir / "mask.nii.gz", mask, volume.geometry))
            if config.outputs.key_image_png:
                rgb, _ = key_image(volume, mask, measurement, config, run)
                outputs["key_image_png"] = str(write_png(out_dir / "key_image.png", rgb))
        if config.outputs.report:
            outputs["report"] = str(out_dir / "report.json")
        skipped = {k: v for k, v in SKIPPED_FOR_NIFTI.items()
                   if getattr(config.outputs, "secondary_capture" if k == "secondary_capture" else k)}
        report = build_study_report(
            identity=None, geometry=volume.geometry, hematoma=measurement,
            segmenter=SegmenterInfo(name=str(info["name"]), checkpoint_sha256=info.get("checkpoint_sha256"),
                                    version=str(info.get("version") or __version__)),
            outputs=outputs, timings=timer, warnings=volume.warnings,
            extra={"input": {"format": "nifti", "path": str(path), "geometry_source": "nifti-header"},
                   "quality": quality.to_dict(), "outputs_skipped": skipped},
        )
        report["segmenter"].update({k: info[k] for k in ("kind", "baseline", "limits") if k in info})
        if config.outputs.report:
            write_json(out_dir / "report.json", report)
    except OutputError:
        remove_outputs(outputs)
        raise
    return report, out_dir, tuple(quality.flags)
