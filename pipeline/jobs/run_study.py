"""The main job: one study folder in, segmentation, volume and outputs out.

Three steps, each its own function, so that what is computed and what is
written stay apart:

1. :func:`analyse_study` -- discover -> select series -> assemble -> segment
   (window, network or threshold) -> measure (volume along the normal, ABC/2)
   -> imaging features; writes nothing;
2. :func:`write_study_outputs` -- DICOM SEG, key image PNG, Secondary Capture,
   NIfTI into ``OUT/<StudyInstanceUID>/<SeriesInstanceUID>/``, every file
   atomically;
3. :func:`study_report` -- the study report (and its row in the results
   store when asked), de-identified when the config says so.

:func:`run_study` (``ichpipe run``, ``ichpipe batch``) does all three and
writes ``report.json``; :func:`ichpipe.run_study` (the Python API) writes
files and store rows only when asked.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from ichpipe import __version__
from ichpipe.atomic import atomic_write
from ichpipe.dicom_io.assemble import CTVolume, assemble_series
from ichpipe.dicom_io.secondary_capture import write_secondary_capture
from ichpipe.dicom_io.seg import write_seg
from ichpipe.dicom_io.study import scan_files, scan_study
from ichpipe.errors import CheckpointError, OutputError, UsageError
from ichpipe.pipeline.config import Config
from ichpipe.pipeline.config.inference_config import Device
from ichpipe.pipeline.config.models_config import resolve_checkpoint
from ichpipe.pipeline.measure.nifti_masks import write_nifti_mask
from ichpipe.pipeline.measure.volume import HematomaMeasurement, measure_hematoma
from ichpipe.pipeline.outputs.key_image import render_key_image
from ichpipe.pipeline.outputs.paths import series_output_dir
from ichpipe.pipeline.outputs.report import SegmenterInfo, StageTimer, build_study_report, study_identity
from ichpipe.pipeline.segment import Segmenter, segmenter_choices
from ichpipe.pipeline.segment.threshold import ThresholdSegmenter

__all__ = [
    "RunOptions",
    "RunResult",
    "StudyAnalysis",
    "analyse_study",
    "build_segmenter",
    "run_study",
    "study_report",
    "write_study_outputs",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """What the command line asks of one ``run`` (the config holds the rest).

    Parameters
    ----------
    study:
        Study folder, DICOMDIR or zip.
    out:
        Output root; ``None`` uses ``outputs.directory`` from the config.
    segmenter:
        ``threshold`` or a registered network; ``None`` uses the config's default.
    checkpoint:
        Checkpoint for a network; ``None`` uses the config's default.
    device:
        ``auto``, ``cpu`` or ``cuda``; ``None`` uses the config's.
    files:
        Only these files of ``study`` (``ichpipe batch`` passes one study's
        files found in an inbox); ``None`` scans the whole of ``study``.
    """

    study: Path
    out: Path | None = None
    segmenter: str | None = None
    checkpoint: Path | None = None
    device: Device | None = None
    files: tuple[Path, ...] | None = None


@dataclass(frozen=True)
class StudyAnalysis:
    """What one run computed, before anything is written.

    Attributes
    ----------
    volume:
        The selected series as a HU volume, sorted along the normal, with its geometry and headers.
    mask:
        Boolean hematoma mask, same shape as ``volume.hu``.
    measurement:
        Volume along the normal, ABC/2 and per-slice areas of ``mask``.
    segmenter:
        What produced the mask (:meth:`~ichpipe.pipeline.segment.Segmenter.describe`).
    features:
        Imaging features when ``predictor.features.enabled``, else ``None``.
    selection_reasons:
        Why this series was selected (each rule's verdict).
    timer:
        Seconds per stage so far (later steps add theirs).
    """

    volume: CTVolume
    mask: np.ndarray
    measurement: HematomaMeasurement
    segmenter: dict[str, Any]
    features: dict[str, Any] | None
    selection_reasons: list[str]
    timer: StageTimer


@dataclass(frozen=True)
class RunResult:
    """The study report, where the outputs went, and what was computed."""

    report: dict[str, Any]
    output_dir: Path
    analysis: StudyAnalysis

    @property
    def exit_code(self) -> int:
        """0: the job succeeded (failures raise project errors instead)."""
        return 0


def build_segmenter(
    options: RunOptions, config: Config, *, progress: Callable[[int, int], None] | None = None
) -> Segmenter:
    """The segmenter ``options`` and ``config`` ask for.

    Raises
    ------
    UsageError
        For an unknown segmenter name.
    CheckpointError
        When a network has no usable checkpoint (the message says how to choose
        ``--segmenter threshold``), or the checkpoint does not fit.
    """
    name = options.segmenter or (None if options.checkpoint else config.models.default_segmenter)
    if name == "threshold":
        return ThresholdSegmenter(config.threshold, anatomy=config.anatomy)
    if name is not None and name not in segmenter_choices():
        raise UsageError(f"Unknown segmenter '{name}'; choose one of: {', '.join(segmenter_choices())}.")
    checkpoint = options.checkpoint or resolve_checkpoint(config.models.default_checkpoint)
    if not checkpoint.is_file():
        raise CheckpointError(
            f"Segmenter '{name or 'network'}' needs a trained checkpoint and {checkpoint} does not exist."
            " Pass --checkpoint FILE, set models.default_checkpoint in the config,"
            " or use --segmenter threshold (the classical method, no checkpoint needed)."
        )
    from ichpipe.models.hashing import file_sha256
    from ichpipe.pipeline.segment.inference import NetworkSegmenter

    allow = config.models.checkpoint_sha256_allowlist
    if allow:
        digest = file_sha256(checkpoint)
        if digest not in allow:
            raise CheckpointError(
                f"Checkpoint {checkpoint} (SHA-256 {digest}) is not in models.checkpoint_sha256_allowlist;"
                " add its digest to the config if you trust it."
            )
    inference = config.inference
    if options.device is not None:
        inference = replace(inference, device=options.device)
    return NetworkSegmenter(checkpoint, name=name, config=inference, anatomy=config.anatomy, progress=progress)


def _caption(measurement: HematomaMeasurement, segmenter: str) -> list[str]:
    return [
        f"Hematoma volume {measurement.volume_ml:.1f} mL (ABC/2 {measurement.abc2_ml:.1f} mL)",
        f"ichpipe {__version__} / {segmenter}",
        "Research use only - not for diagnosis",
    ]


def _write_json(path: Path, obj: Any) -> Path:
    data = (json.dumps(obj, indent=2) + "\n").encode("utf-8")

    def write(fh: BinaryIO) -> None:
        fh.write(data)

    return atomic_write(path, write)


def _write_png(path: Path, rgb: np.ndarray) -> Path:
    return atomic_write(path, lambda fh: Image.fromarray(rgb, mode="RGB").save(fh, format="PNG"))


def write_study_outputs(
    analysis: StudyAnalysis, out_root: Path, config: Config, *, segmenter: Segmenter
) -> tuple[Path, dict[str, str]]:
    """Write the outputs ``config.outputs`` asks for into ``out_root/<StudyUID>/<SeriesUID>/``.

    Returns
    -------
    tuple of (Path, dict)
        The series' output folder and output name -> path (``report.json`` is
        written by :func:`run_study`, after the report lists it).

    Raises
    ------
    OutputError
        When a file cannot be written; the files of the incomplete set are removed.
    """
    volume = analysis.volume
    out_dir = series_output_dir(out_root, volume.study_uid, volume.series_uid)
    with analysis.timer.stage("outputs"):
        outputs = _write_outputs(out_dir, volume, analysis.mask, analysis.measurement, segmenter, config)
    return out_dir, outputs


def _write_outputs(
    out_dir: Path,
    volume: CTVolume,
    mask: np.ndarray,
    measurement: HematomaMeasurement,
    segmenter: Segmenter,
    config: Config,
) -> dict[str, str]:
    outputs: dict[str, str] = {}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot create output folder {out_dir}: {exc.strerror or exc}.") from exc
    try:
        _write_each_output(outputs, out_dir, volume, mask, measurement, segmenter, config)
    except OutputError:
        # every file is written atomically; this removes the complete ones of an incomplete set
        _remove_outputs(outputs)
        raise
    return outputs


def _write_each_output(
    outputs: dict[str, str],
    out_dir: Path,
    volume: CTVolume,
    mask: np.ndarray,
    measurement: HematomaMeasurement,
    segmenter: Segmenter,
    config: Config,
) -> None:
    cfg = config.outputs
    info = segmenter.describe()
    if cfg.seg:
        outputs["seg"] = str(
            write_seg(
                mask,
                volume,
                out_dir / "seg.dcm",
                algorithm_name=f"ichpipe-{info['name']}",
                algorithm_version=str(info.get("version") or __version__),
                omit_empty_frames=not cfg.seg_keep_empty_frames,
                deidentify=cfg.deidentify,
            )
        )
    if cfg.key_image_png or cfg.secondary_capture:
        index = measurement.max_area_slice_index if measurement.n_voxels else volume.hu.shape[0] // 2
        rgb = render_key_image(
            volume.hu[index],
            mask[index],
            window=config.windows.get(config.windows.default),
            lines=_caption(measurement, str(info["name"])),
            scale=1 if min(volume.hu.shape[1:]) >= 256 else 2,
        )
        if cfg.key_image_png:
            outputs["key_image_png"] = str(_write_png(out_dir / "key_image.png", rgb))
        if cfg.secondary_capture:
            outputs["secondary_capture"] = str(
                write_secondary_capture(rgb, volume, out_dir / "key_image_sc.dcm", deidentify=cfg.deidentify)
            )
    if cfg.nifti_mask:
        outputs["nifti_mask"] = str(write_nifti_mask(out_dir / "mask.nii.gz", mask, volume.geometry))


def analyse_study(
    options: RunOptions, config: Config, *, segmenter: Segmenter, timer: StageTimer | None = None
) -> StudyAnalysis:
    """Select, assemble, segment and measure one study; writes nothing.

    Parameters
    ----------
    options:
        The study (and ``files``, when only some of its files count).
    config:
        The configuration.
    segmenter:
        The segmenter to use (:func:`build_segmenter`).
    timer:
        Stage timer to add to (a new one when ``None``).

    Raises
    ------
    ichpipe.errors.IchpipeError
        Any failure, with a message naming the file or series and what to do.
    """
    timer = timer or StageTimer()
    study = Path(options.study)
    started = time.perf_counter()
    if options.files is not None:
        scanning = scan_files(options.files, root=study, selection=config.selection, geometry=config.geometry)
    else:
        scanning = scan_study(study, discovery=config.discovery, selection=config.selection,
                              geometry=config.geometry)
    with scanning as scan:
        timer.seconds["scan"] = time.perf_counter() - started
        chosen = scan.require_selected()
        with timer.stage("assemble"):
            volume = assemble_series(chosen.series, config=config.geometry)
        reasons = scan.selection.reasons(chosen.series.key)
    first = volume.first
    # identifiers are masked by the command line's log formatter unless --log-phi
    log.info("series %s: patient %s (%s), born %s, accession %s; %d slices", volume.series_uid,
             first.get("PatientID", ""), first.get("PatientName", ""), first.get("PatientBirthDate", ""),
             first.get("AccessionNumber", ""), volume.hu.shape[0])
    with timer.stage("segment"):
        mask = segmenter.segment(volume)
    with timer.stage("measure"):
        measurement = measure_hematoma(mask, volume.geometry, config=config.measure)
    features: dict[str, Any] | None = None
    if config.predictor.features.enabled:
        from ichpipe.pipeline.measure.features.extract import compute_features

        with timer.stage("features"):
            features = compute_features(volume, mask, config=config.predictor.features)
    return StudyAnalysis(volume=volume, mask=mask, measurement=measurement, segmenter=dict(segmenter.describe()),
                         features=features, selection_reasons=reasons, timer=timer)


def study_report(
    analysis: StudyAnalysis, config: Config, *, outputs: dict[str, str] | None = None, record: bool = False
) -> dict[str, Any]:
    """The study report of ``analysis``; with ``record``, also its row in the results store.

    Parameters
    ----------
    analysis:
        What :func:`analyse_study` computed.
    config:
        The configuration (``outputs.deidentify`` de-identifies the report; ``store`` says where to record).
    outputs:
        Output name -> path of the files written; ``None`` for none.
    record:
        Record the measurement in the results store (a series without PatientID is not recorded).
    """
    volume, info, timer = analysis.volume, analysis.segmenter, analysis.timer
    identity = study_identity([s.dataset for s in volume.slices], study_uid=volume.study_uid,
                              series_uid=volume.series_uid)
    extra = {
        "series_selection": analysis.selection_reasons,
        "segmenter_details": {k: v for k, v in info.items() if k not in ("name", "checkpoint_sha256", "version")},
    }
    report = build_study_report(
        identity=identity,
        geometry=volume.geometry,
        hematoma=analysis.measurement,
        segmenter=SegmenterInfo(name=str(info["name"]), checkpoint_sha256=info.get("checkpoint_sha256"),
                                version=str(info.get("version") or __version__)),
        outputs=outputs or {},
        timings=timer,
        warnings=volume.warnings,
        extra=extra,
    )
    if analysis.features is not None:
        report["features"] = analysis.features
    if record:
        with timer.stage("store"):
            _record(report, config)
        report["timings_s"] = timer.to_dict()
    if config.outputs.deidentify:
        from ichpipe.pipeline.outputs.deidentified_report import deidentify_report

        report = deidentify_report(report)
    return report


def run_study(
    options: RunOptions,
    config: Config,
    *,
    progress: Callable[[int, int], None] | None = None,
    segmenter: Segmenter | None = None,
) -> RunResult:
    """Run the main job on one study: analyse, write the outputs and ``report.json``, record in the store.

    ``segmenter``, when given, is used instead of building one from ``options``
    (a batch builds it once and reuses it for every study). What is written
    and recorded is what ``config.outputs`` says.

    Raises
    ------
    ichpipe.errors.IchpipeError
        Any failure, with a message naming the file or series and what to do.
    """
    timer = StageTimer()
    out_root = Path(options.out or config.outputs.directory)
    study = Path(options.study)
    if out_root.resolve().is_relative_to(study.resolve()) and study.is_dir():
        raise UsageError(f"--out {out_root} lies inside the study folder {study}; choose a folder outside it.")
    with timer.stage("load_model"):
        if segmenter is None:
            segmenter = build_segmenter(options, config, progress=progress)
    analysis = analyse_study(options, config, segmenter=segmenter, timer=timer)
    out_dir, outputs = write_study_outputs(analysis, out_root, config, segmenter=segmenter)
    report_path = out_dir / "report.json"
    if config.outputs.report:
        outputs["report"] = str(report_path)
    report = study_report(analysis, config, outputs=outputs, record=config.outputs.record_in_store)
    if config.outputs.report:
        try:
            _write_json(report_path, report)
        except OutputError:
            _remove_outputs(outputs, keep=report_path)
            raise
    return RunResult(report=report, output_dir=out_dir, analysis=analysis)


def _remove_outputs(outputs: dict[str, str], *, keep: Path | None = None) -> None:
    """Remove the files this run wrote (after a later output failed), so no incomplete set is left."""
    for value in outputs.values():
        path = Path(value)
        if path == keep:
            continue
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not remove %s after a failed output: %s", path, exc.strerror or exc)


def _record(report: dict[str, Any], config: Config) -> None:
    from ichpipe.pipeline.serial.store import measurement_from_report, open_store, record_measurement

    if not report.get("patient_id"):
        log.warning("series has no PatientID; not recorded in the results store")
        return
    with open_store(config.store) as store:
        record_measurement(store, measurement_from_report(report))
