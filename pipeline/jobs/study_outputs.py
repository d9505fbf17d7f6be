"""The files ``ichpipe run`` writes for one series, each atomically.

:func:`write_image_outputs` writes what depends on the mask only (DICOM SEG,
key image as PNG and Secondary Capture, NIfTI mask, the resampled regular
grid of a tilted or uneven series); :func:`write_sr` writes the DICOM SR once
the report (with its quality flags and serial comparison) is known. Every
DICOM output carries a SeriesNumber and SeriesDescription of the run
(:mod:`ichpipe.pipeline.outputs.series_naming`) and SeriesDate/SeriesTime.

The quality flags of the run go into the key image's caption ("QUALITY
FLAGS: ..."), the SEG's SeriesDescription ("FLAGGED") and ContentDescription,
and the Secondary Capture's SeriesDescription and DerivationDescription; the
method into the caption and the SEG's algorithm identification (family
"Artificial Intelligence" for a network, "Morphological Operations" for the
threshold baseline, whose name ends in ``-baseline``).

An output that cannot be *built* from these sources
(:class:`~ichpipe.errors.OutputBuildError`, e.g. highdicom refusing a header)
is skipped, with its reason, and the others are still written: nothing
computed is thrown away because one output failed. When a file cannot be
*written* (:class:`~ichpipe.errors.OutputError`: read-only folder, disk full),
the complete files of the set are removed again (:func:`remove_outputs`), so
no half set is left.
"""

from __future__ import annotations

import copy
import json
import logging
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset

from ichpipe import __version__
from ichpipe.atomic import atomic_write
from ichpipe.dicom_io._atomic import write_dataset_atomic
from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.dicom_io.deidentify import deidentify_dataset
from ichpipe.dicom_io.secondary_capture import write_secondary_capture
from ichpipe.dicom_io.seg import ARTIFICIAL_INTELLIGENCE, MORPHOLOGICAL_OPERATIONS, build_seg
from ichpipe.dicom_io.sr import write_measurement_sr
from ichpipe.errors import OutputBuildError, OutputError
from ichpipe.pipeline.config import Config
from ichpipe.pipeline.measure.nifti_masks import write_nifti_mask
from ichpipe.pipeline.measure.volume import HematomaMeasurement
from ichpipe.pipeline.outputs.key_image import orientation_labels, render_key_image
from ichpipe.pipeline.outputs.series_naming import KINDS, method_label, series_identity
from ichpipe.pipeline.outputs.sr_content import sr_content_from_report
from ichpipe.pipeline.quality.flags import QualityFlag, flag_codes_text
from ichpipe.progress import stage

__all__ = [
    "OutputRun",
    "key_image",
    "key_image_caption",
    "remove_outputs",
    "seg_content_description",
    "write_image_outputs",
    "write_json",
    "write_png",
    "write_sr",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutputRun:
    """Who made the outputs of one run, and when (for names, descriptions and algorithm fields).

    Attributes
    ----------
    segmenter:
        The segmenter's ``describe()``: ``name``, ``version``, ``checkpoint_sha256``
        (``baseline`` true for the classical threshold method).
    when:
        The run's local time (SeriesDate/SeriesTime, series numbers and descriptions).
    flags:
        The run's quality flags (carried into captions and descriptions).
    """

    segmenter: Mapping[str, Any]
    when: datetime
    flags: Sequence[QualityFlag] = ()

    @property
    def baseline(self) -> bool:
        """Whether the segmenter is the classical threshold baseline."""
        return bool(self.segmenter.get("baseline"))

    @property
    def name(self) -> str:
        """Segmenter name."""
        return str(self.segmenter.get("name") or "unknown")

    @property
    def checkpoint_sha256(self) -> str | None:
        """The checkpoint's SHA-256, or ``None`` (a classical method)."""
        value = self.segmenter.get("checkpoint_sha256")
        return str(value) if value else None

    @property
    def version(self) -> str:
        """The segmenter's version (or ichpipe's)."""
        return str(self.segmenter.get("version") or __version__)

    def identity(self, kind: str) -> dict[str, Any]:
        """``series_number`` and ``series_description`` keyword arguments for output ``kind``.

        The method reads ``<name> baseline`` for the threshold baseline, and
        ``FLAGGED`` is added when the run raised quality flags.
        """
        method = method_label(self.name, self.checkpoint_sha256) + (" baseline" if self.baseline else "")
        if self.flags:  # shorten the method, never the word FLAGGED (descriptions hold 64 characters)
            room = 64 - len(f"ichpipe {KINDS[kind][1]}  {self.when:%Y-%m-%d %H:%M}") - len(" FLAGGED")
            method = method[:room] + " FLAGGED"
        ident = series_identity(kind, method=method, when=self.when)
        return {"series_number": ident.number, "series_description": ident.description}


def write_json(path: Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    data = (json.dumps(obj, indent=2) + "\n").encode("utf-8")

    def write(fh: BinaryIO) -> None:
        fh.write(data)

    return atomic_write(path, write)


def write_png(path: Path, rgb: np.ndarray) -> Path:
    """Write an RGB array as PNG, atomically."""
    return atomic_write(path, lambda fh: Image.fromarray(rgb, mode="RGB").save(fh, format="PNG"))


def key_image_caption(measurement: HematomaMeasurement, run: OutputRun, *, width: int = 46) -> list[str]:
    """The lines printed on the key image: volume, method, quality flags, the research-use line."""
    method = "threshold baseline" if run.baseline else run.name
    lines = [
        f"Hematoma volume {measurement.volume_ml:.1f} mL (ABC/2 {measurement.abc2_ml:.1f} mL)",
        f"ichpipe {__version__} / {method}",
    ]
    if run.baseline:
        lines.append("Baseline: misses blood < 50 HU")
    if run.flags:
        lines += textwrap.wrap("QUALITY FLAGS: " + flag_codes_text(f.code for f in run.flags), width=width,
                               break_on_hyphens=False)
        lines.append("Volume may be wrong - see report.json")
    else:
        lines.append("Quality flags: none")
    lines.append("Research use only - not for diagnosis")
    return lines


def seg_content_description(flags: Sequence[QualityFlag]) -> str:
    """The SEG's ContentDescription (at most 64 characters): the flag codes, or that there are none."""
    suffix = "; not for diagnosis"
    if flags:
        prefix = "FLAGGED: "
        return prefix + flag_codes_text((f.code for f in flags), limit=64 - len(prefix) - len(suffix)) + suffix
    return "No quality flags" + suffix


def _footer(volume: CTVolume, index: int) -> str:
    geo = volume.geometry
    z = float(geo.positions[index][2])
    return f"slice {index + 1}/{geo.n_slices}, z {z:.1f} mm, {float(geo.offsets_mm[index]):.1f} mm along the normal"


def key_image(volume: CTVolume, mask: np.ndarray, measurement: HematomaMeasurement, config: Config,
              run: OutputRun) -> tuple[np.ndarray, int]:
    """The key image (RGB) and the slice it shows: the largest hematoma slice, else the middle one."""
    largest = measurement.max_area_slice_index
    index = int(largest) if measurement.n_voxels and largest is not None else volume.hu.shape[0] // 2
    geo = volume.geometry
    rgb = render_key_image(
        volume.hu[index],
        mask[index],
        window=config.windows.get(config.windows.default),
        lines=key_image_caption(measurement, run),
        scale=1 if min(volume.hu.shape[1:]) >= 256 else 2,
        edge_labels=orientation_labels(geo.row_direction, geo.column_direction),
        footer=_footer(volume, index),
    )
    return rgb, index


def _seg_dataset(mask: np.ndarray, volume: CTVolume, config: Config, run: OutputRun) -> Dataset:
    parameters = {str(k): str(v) for k, v in (run.segmenter.get("parameters") or {}).items()}
    if run.checkpoint_sha256:
        parameters["checkpoint_sha256"] = run.checkpoint_sha256
    version = run.version if not run.checkpoint_sha256 else f"{run.version} sha256:{run.checkpoint_sha256[:16]}"
    name = f"ichpipe-{run.name}" + ("-baseline" if run.baseline else "")
    family = MORPHOLOGICAL_OPERATIONS if run.baseline else ARTIFICIAL_INTELLIGENCE
    return build_seg(mask, volume, algorithm_name=name, algorithm_version=version[:64], algorithm_family=family,
                     omit_empty_frames=not config.outputs.seg_keep_empty_frames,
                     algorithm_parameters=parameters or None, content_creator_name=f"ichpipe^{run.name}"[:64],
                     content_description=seg_content_description(run.flags),
                     series_datetime=run.when, **run.identity("seg"))


def write_image_outputs(
    out_dir: Path,
    volume: CTVolume,
    mask: np.ndarray,
    measurement: HematomaMeasurement,
    config: Config,
    run: OutputRun,
) -> tuple[dict[str, str], Dataset | None, dict[str, str]]:
    """Write SEG, key image (PNG, SC), NIfTI mask and the regular grid as the config asks.

    Returns
    -------
    tuple
        Output name -> path, the SEG dataset (for the SR to reference) or
        ``None``, and output name -> reason for the outputs that could not be
        built from these sources (skipped; the others are written).

    Raises
    ------
    OutputError
        When a file cannot be written; the ones already written are removed.
    """
    outputs: dict[str, str] = {}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot create output folder {out_dir}: {exc.strerror or exc}.") from exc
    cfg = config.outputs
    seg: Dataset | None = None
    skipped: dict[str, str] = {}
    planned = [cfg.seg, cfg.key_image_png, cfg.secondary_capture, cfg.nifti_mask, cfg.tilt_eq]
    try:
        with stage("writing outputs", total=sum(planned)) as progress:
            if cfg.seg:
                progress.working_on("seg.dcm")
                try:
                    seg = _seg_dataset(mask, volume, config, run)
                except OutputBuildError as exc:
                    skipped["seg"] = str(exc)
                if seg is not None:
                    written = seg
                    if cfg.deidentify:
                        written = copy.deepcopy(seg)
                        deidentify_dataset(written)
                    outputs["seg"] = str(write_dataset_atomic(written, out_dir / "seg.dcm", what="DICOM SEG"))
                progress.advance()
            if cfg.key_image_png or cfg.secondary_capture:
                progress.working_on("key image")
                rgb, index = key_image(volume, mask, measurement, config, run)
                if cfg.key_image_png:
                    outputs["key_image_png"] = str(write_png(out_dir / "key_image.png", rgb))
                    progress.advance()
                if cfg.secondary_capture:
                    shown = volume.slices[index].dataset
                    flags = " ".join(f.message for f in run.flags) if run.flags else "none"
                    try:
                        outputs["secondary_capture"] = str(write_secondary_capture(
                            rgb, volume, out_dir / "key_image_sc.dcm", deidentify=cfg.deidentify,
                            derived_from=[shown],
                            derivation_description=(f"Key image of slice {index + 1} by {run.name}"
                                                    f"{' (classical threshold baseline)' if run.baseline else ''}"
                                                    f" (checkpoint SHA-256 {run.checkpoint_sha256 or 'none'});"
                                                    f" quality flags: {flags}")[:900],
                            series_datetime=run.when, **run.identity("sc")))
                    except OutputBuildError as exc:
                        skipped["secondary_capture"] = str(exc)
                    progress.advance()
            if cfg.nifti_mask:
                progress.working_on("mask.nii.gz")
                outputs["nifti_mask"] = str(write_nifti_mask(out_dir / "mask.nii.gz", mask, volume.geometry))
                progress.advance()
            if cfg.tilt_eq:
                from ichpipe.pipeline.jobs.regular_grid_outputs import write_regular_grid

                progress.working_on("regular grid")
                outputs.update(write_regular_grid(out_dir, volume, mask, config, run))
                progress.advance()
    except OutputError:
        # every file is written atomically; this removes the complete ones of an incomplete set
        remove_outputs(outputs)
        raise
    return outputs, seg, skipped


def write_sr(out_dir: Path, volume: CTVolume, report: Mapping[str, Any], seg: Dataset | None, config: Config,
             run: OutputRun) -> Path:
    """Write ``sr.dcm``: the TID 1500 Measurement Report of ``report``, referencing ``seg`` when given.

    Raises
    ------
    OutputBuildError
        If the SR cannot be built from the report and the sources (an :class:`OutputError`).
    OutputError
        If it cannot be written.
    """
    try:
        content = sr_content_from_report(report)
    except ValueError as exc:
        raise OutputBuildError(f"Cannot build the DICOM SR: {exc}") from exc
    return write_measurement_sr(content, volume, out_dir / "sr.dcm", seg=seg, deidentify=config.outputs.deidentify,
                                series_datetime=run.when, **run.identity("sr"))


def remove_outputs(outputs: Mapping[str, str], *, keep: Path | None = None) -> None:
    """Remove the files this run wrote (after a later output failed), so no incomplete set is left."""
    for value in outputs.values():
        path = Path(value)
        if path == keep:
            continue
        try:
            if path.is_dir():
                for child in sorted(path.iterdir()):
                    child.unlink(missing_ok=True)
                path.rmdir()
            else:
                path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not remove %s after a failed output: %s", path, exc.strerror or exc)
