"""The files ``run`` writes for one series, each carrying the quality flags and the method.

DICOM SEG, key image (PNG and Secondary Capture) and NIfTI mask, written
atomically into the series' output folder. The quality flags go into the key
image's caption, the SEG's SeriesDescription and ContentDescription and the
Secondary Capture's SeriesDescription and DerivationDescription; the method
(network or threshold baseline) into the caption, the SEG's algorithm
identification (family "Artificial Intelligence" for a network, "Morphological
Operations" for the baseline) and its descriptions.

An output that cannot be *built* from these sources
(:class:`~ichpipe.errors.OutputBuildError`, e.g. highdicom refusing a header)
is skipped, with its reason, and the others are still written: nothing
computed is thrown away because one output failed. A file-system failure
(:class:`~ichpipe.errors.OutputError`: read-only folder, disk full) stops the run.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ichpipe import __version__
from ichpipe.atomic import atomic_write
from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.dicom_io.secondary_capture import write_secondary_capture
from ichpipe.dicom_io.seg import ARTIFICIAL_INTELLIGENCE, MORPHOLOGICAL_OPERATIONS, write_seg
from ichpipe.errors import OutputBuildError
from ichpipe.pipeline.config import Config
from ichpipe.pipeline.measure.nifti_masks import write_nifti_mask
from ichpipe.pipeline.measure.volume import HematomaMeasurement
from ichpipe.pipeline.outputs.key_image import render_key_image
from ichpipe.pipeline.quality.flags import QualityFlag, flag_codes_text

__all__ = [
    "SeriesOutputs",
    "key_image_caption",
    "method_label",
    "seg_descriptions",
    "write_series_outputs",
]

#: Characters of a DICOM LO value (SeriesDescription, ContentDescription).
LO_MAX = 64


def method_label(info: dict[str, Any]) -> str:
    """``threshold baseline`` for the classical method, ``network <name>`` for a network."""
    if info.get("baseline"):
        return "threshold baseline"
    return f"network {info.get('name')}"


def key_image_caption(measurement: HematomaMeasurement, info: dict[str, Any],
                      flags: Sequence[QualityFlag], *, width: int = 46) -> list[str]:
    """The lines printed on the key image: volume, method, flags, the research-use line."""
    lines = [
        f"Hematoma volume {measurement.volume_ml:.1f} mL (ABC/2 {measurement.abc2_ml:.1f} mL)",
        f"ichpipe {__version__} / {method_label(info)}",
    ]
    if info.get("baseline"):
        lines.append("Baseline: misses blood < 50 HU")
    if flags:
        text = "QUALITY FLAGS: " + flag_codes_text(f.code for f in flags)
        lines += textwrap.wrap(text, width=width, break_on_hyphens=False)
        lines.append("Volume may be wrong - see report.json")
    else:
        lines.append("Quality flags: none")
    lines.append("Research use only - not for diagnosis")
    return lines


def seg_descriptions(info: dict[str, Any], flags: Sequence[QualityFlag]) -> tuple[str, str]:
    """(SeriesDescription, ContentDescription) of the SEG, each at most 64 characters."""
    series = f"ICH hematoma SEG ({method_label(info)})"[: LO_MAX - 8] + (" FLAGGED" if flags else "")
    suffix = "; not for diagnosis"
    if flags:
        prefix = "FLAGGED: "
        content = prefix + flag_codes_text((f.code for f in flags), limit=LO_MAX - len(prefix) - len(suffix))
    else:
        content = "No quality flags"
    return series[:LO_MAX], (content + suffix)[:LO_MAX]


@dataclass
class SeriesOutputs:
    """What was written (name -> path) and what was skipped (name -> reason)."""

    written: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def _write_png(path: Path, rgb: np.ndarray) -> Path:
    return atomic_write(path, lambda fh: Image.fromarray(rgb, mode="RGB").save(fh, format="PNG"))


def write_series_outputs(
    out_dir: Path,
    volume: CTVolume,
    mask: np.ndarray,
    measurement: HematomaMeasurement,
    info: dict[str, Any],
    flags: Sequence[QualityFlag],
    config: Config,
    *,
    outputs: SeriesOutputs | None = None,
) -> SeriesOutputs:
    """Write the SEG, key image (PNG, Secondary Capture) and NIfTI mask that ``config.outputs`` asks for.

    Parameters
    ----------
    out_dir:
        The series' output folder (it must exist).
    volume, mask, measurement:
        The CT, the hematoma mask and its measurement.
    info:
        The segmenter's ``describe()``.
    flags:
        The quality flags (carried into the descriptions and the caption).
    config:
        The configuration (``outputs``, ``windows``).
    outputs:
        Where to record what was written (filled in as files appear, so a
        caller can remove them after a later failure).

    Raises
    ------
    ichpipe.errors.OutputError
        When a file cannot be written (not when an output cannot be built:
        that one is recorded in ``skipped``).
    """
    cfg = config.outputs
    done = outputs if outputs is not None else SeriesOutputs()
    if cfg.seg:
        series_description, content_description = seg_descriptions(info, flags)
        family = MORPHOLOGICAL_OPERATIONS if info.get("baseline") else ARTIFICIAL_INTELLIGENCE
        parameters = {str(k): str(v) for k, v in (info.get("parameters") or {}).items()} or None
        try:
            done.written["seg"] = str(write_seg(
                mask, volume, out_dir / "seg.dcm",
                algorithm_name=f"ichpipe-{info['name']}" + ("-baseline" if info.get("baseline") else ""),
                algorithm_version=str(info.get("version") or __version__),
                algorithm_family=family,
                algorithm_parameters=parameters,
                omit_empty_frames=not cfg.seg_keep_empty_frames,
                deidentify=cfg.deidentify,
                series_description=series_description,
                content_description=content_description,
            ))
        except OutputBuildError as exc:
            done.skipped["seg"] = str(exc)
    if cfg.key_image_png or cfg.secondary_capture:
        index = measurement.max_area_slice_index if measurement.n_voxels else volume.hu.shape[0] // 2
        rgb = render_key_image(
            volume.hu[index],
            mask[index],
            window=config.windows.get(config.windows.default),
            lines=key_image_caption(measurement, info, flags),
            scale=1 if min(volume.hu.shape[1:]) >= 256 else 2,
        )
        if cfg.key_image_png:
            done.written["key_image_png"] = str(_write_png(out_dir / "key_image.png", rgb))
        if cfg.secondary_capture:
            derivation = f"Hematoma segmentation by {method_label(info)}; quality flags: " + (
                " ".join(f.message for f in flags) if flags else "none")
            try:
                done.written["secondary_capture"] = str(write_secondary_capture(
                    rgb, volume, out_dir / "key_image_sc.dcm", deidentify=cfg.deidentify,
                    series_description="ICH key images (ichpipe, not for diagnosis)" + (" FLAGGED" if flags else ""),
                    derivation_description=derivation[:900],
                ))
            except OutputBuildError as exc:
                done.skipped["secondary_capture"] = str(exc)
    if cfg.nifti_mask:
        done.written["nifti_mask"] = str(write_nifti_mask(out_dir / "mask.nii.gz", mask, volume.geometry))
    return done
