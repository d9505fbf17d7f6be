"""Config sections of ``ichpipe run``: which model, which outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["CHECKPOINT_DIR", "Device", "InferenceConfig", "ModelsConfig", "OutputsConfig", "resolve_checkpoint"]

Device = Literal["auto", "cpu", "cuda"]

#: Where shipped checkpoints live (inside the installed ``models`` package).
CHECKPOINT_DIR = Path(__file__).resolve().parents[1] / "models" / "checkpoints"


@dataclass(frozen=True)
class ModelsConfig:
    """The segmenter ``run`` uses when ``--segmenter``/``--checkpoint`` are not given.

    Parameters
    ----------
    default_segmenter:
        ``threshold`` or a registered network name.
    default_checkpoint:
        Checkpoint for a network: a path, or a file name looked up in the
        shipped ``models/checkpoints/`` folder.
    checkpoint_sha256_allowlist:
        If not empty, only checkpoint files with one of these SHA-256 digests load.
    """

    default_segmenter: str = "sa_cbam_unet_slim"
    default_checkpoint: str = "ichpipe-default.pt"
    checkpoint_sha256_allowlist: tuple[str, ...] = ()


def resolve_checkpoint(value: str | Path) -> Path:
    """A checkpoint path as given, or else the shipped file of that name."""
    path = Path(value).expanduser()
    if path.exists() or path.is_absolute() or len(path.parts) > 1:
        return path
    return CHECKPOINT_DIR / path


@dataclass(frozen=True)
class OutputsConfig:
    """What ``run`` writes under ``OUT/<StudyInstanceUID>/<SeriesInstanceUID>/``.

    Parameters
    ----------
    directory:
        Default output folder (``--out`` overrides it); never inside the study.
    report:
        ``report.json``: the study report.
    seg:
        ``seg.dcm``: DICOM SEG of the hematoma referencing the source slices.
    seg_keep_empty_frames:
        One SEG frame per source slice, empty ones included (viewers align it).
    key_image_png:
        ``key_image.png``: largest hematoma slice, contour, volume and ABC/2.
    secondary_capture:
        ``key_image_sc.dcm``: the key image as DICOM Secondary Capture for PACS.
    nifti_mask:
        ``mask.nii.gz``: the mask for research tools (viewing only).
    record_in_store:
        Record the measurement in the results store (serial-scan linking).
    deidentify:
        Write the report, SEG and key image without the patient's direct
        identifiers (``ichpipe run --deidentify``): DICOM PS3.15 Basic Profile
        subset with retained UIDs (see ``ichpipe.dicom_io.deidentify``); the report's
        patient_id, accession_number and acquisition_datetime become null.
        The results store still records the identified measurement.
    """

    directory: str = "ichpipe-out"
    report: bool = True
    seg: bool = True
    seg_keep_empty_frames: bool = True
    key_image_png: bool = True
    secondary_capture: bool = True
    nifti_mask: bool = False
    record_in_store: bool = True
    deidentify: bool = False


@dataclass(frozen=True)
class InferenceConfig:
    """How networks run.

    Parameters
    ----------
    device:
        ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``.
    batch_size:
        Slices per forward pass.
    threads:
        CPU threads for torch (0 keeps torch's default: one per core).
    bf16:
        Use bf16 autocast on CUDA, and on CPUs with native bf16.
    channels_last:
        Use the channels-last memory format (faster convolutions on CPU).
    threshold:
        Probability above which a pixel is hematoma.
    min_component_ml:
        3D components smaller than this are removed (0 keeps all).
    restrict_to_intracranial:
        Keep only hematoma inside the intracranial mask.
    skip_slices_without_head:
        Do not run the network on slices with no head in them.
    crop_to_head:
        Run on the head's bounding box (padded to a multiple of 16) only.
    """

    device: Device = "auto"
    batch_size: int = 4
    threads: int = 0
    bf16: bool = True
    channels_last: bool = True
    threshold: float = 0.5
    min_component_ml: float = 0.05
    restrict_to_intracranial: bool = True
    skip_slices_without_head: bool = True
    crop_to_head: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("Argument 'batch_size' must be at least 1.")
        if self.threads < 0:
            raise ValueError("Argument 'threads' must not be negative.")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("Argument 'threshold' must lie strictly between 0 and 1.")
