"""The main job: one study folder in, segmentation, volume and outputs out.

discover -> select series -> assemble -> segment (window, network or
threshold) -> measure (volume along the normal, ABC/2) -> outputs (report,
DICOM SEG, key image PNG, Secondary Capture, NIfTI) -> results store.
Outputs go to ``OUT/<StudyInstanceUID>/<SeriesInstanceUID>/`` and every file
is written atomically.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
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
from ichpipe.dicom_io.sources import sweep_stale_extractions
from ichpipe.dicom_io.study import scan_files, scan_study
from ichpipe.errors import CheckpointError, OutputError, UsageError
from ichpipe.pipeline.batch.locks import acquire_lock, lock_name
from ichpipe.pipeline.config import Config
from ichpipe.pipeline.config.inference_config import Device
from ichpipe.pipeline.config.models_config import resolve_checkpoint
from ichpipe.pipeline.measure.nifti_masks import write_nifti_mask
from ichpipe.pipeline.measure.volume import HematomaMeasurement, measure_hematoma
from ichpipe.pipeline.outputs.key_image import render_key_image
from ichpipe.pipeline.outputs.paths import series_output_dir
from ichpipe.pipeline.outputs.publish import PRIVATE_DIR, publish_series, remove_tree, rewrite_outputs, sweep_staging
from ichpipe.pipeline.outputs.report import SegmenterInfo, StageTimer, build_study_report, study_identity
from ichpipe.pipeline.segment import Segmenter, segmenter_choices
from ichpipe.pipeline.segment.threshold import ThresholdSegmenter

__all__ = ["RunOptions", "RunResult", "build_segmenter", "run_study"]

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
    staged:
        ``out`` is already a private staging folder whose caller holds the
        series lock and publishes the result (``ichpipe batch``): write there
        directly. Otherwise (``ichpipe run``) the outputs are staged under
        ``OUT/.ichpipe/staging/`` and published under the series lock
        (:mod:`~ichpipe.pipeline.outputs.publish`).
    """

    study: Path
    out: Path | None = None
    segmenter: str | None = None
    checkpoint: Path | None = None
    device: Device | None = None
    files: tuple[Path, ...] | None = None
    staged: bool = False


@dataclass(frozen=True)
class RunResult:
    """The study report and where the outputs went."""

    report: dict[str, Any]
    output_dir: Path
    record: dict[str, Any] | None = None

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


def run_study(
    options: RunOptions,
    config: Config,
    *,
    progress: Callable[[int, int], None] | None = None,
    segmenter: Segmenter | None = None,
) -> RunResult:
    """Run the main job on one study.

    ``segmenter``, when given, is used instead of building one from ``options``
    (a batch builds it once and reuses it for every study).

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
    if options.staged:
        return _run(options, config, out_root, study, timer, progress=progress, segmenter=segmenter)
    for line in sweep_stale_extractions() + (sweep_staging(out_root.resolve()) if out_root.is_dir() else []):
        log.warning("%s", line)
    staging_root = out_root.resolve() / PRIVATE_DIR / "staging"
    lock_dir = out_root.resolve() / PRIVATE_DIR / "locks"
    created = [p for p in (out_root.resolve(), staging_root.parent, staging_root, lock_dir) if not p.exists()]
    name = f"run-{uuid.uuid4().hex}"
    try:
        staging_root.mkdir(parents=True, exist_ok=True)
        held = acquire_lock(lock_dir, name, wait=False)
    except OSError as exc:
        raise OutputError(f"Cannot create output folder {out_root}: {exc.strerror or exc}.") from exc
    if held is None:  # cannot happen: a fresh random name
        raise OutputError(f"Cannot take the staging lock {name} in {out_root}.")
    stage = staging_root / name
    try:
        with held:
            result = _run(replace(options, out=stage), config, stage, study, timer, progress=progress,
                          segmenter=segmenter, record=False)
            return _publish_run(result, stage, out_root.resolve(), config)
    finally:
        remove_tree(stage)
        for folder in reversed(created):  # a failed first run leaves no empty output folder behind
            with contextlib.suppress(OSError):
                folder.rmdir()


def _publish_run(result: RunResult, stage: Path, out_root: Path, config: Config) -> RunResult:
    """Move a staged ``run`` into ``OUT/<study>/<series>`` under the series lock, recording it in the store."""
    final = out_root / result.output_dir.relative_to(stage)
    report = rewrite_outputs(result.report, result.output_dir, final, write_report=config.outputs.report)
    lock = lock_name(f"series:{final.name}")
    held = acquire_lock(out_root / PRIVATE_DIR / "locks", lock, wait=True, timeout_s=config.batch.lock_wait_s)
    if held is None:
        raise OutputError(f"Series {final.name} is being written by another ichpipe run (batch or run) for more"
                          f" than batch.lock_wait_s={config.batch.lock_wait_s:g} s; try again later.")
    record = result.record
    with held:
        publish_series(result.output_dir, final, staging_root=out_root / PRIVATE_DIR / "staging", lock=lock,
                       commit=(lambda: _record(record, config)) if record is not None else None)
    return RunResult(report=report, output_dir=final)


def _run(options: RunOptions, config: Config, out_root: Path, study: Path, timer: StageTimer, *,
         progress: Callable[[int, int], None] | None, segmenter: Segmenter | None,
         record: bool = True) -> RunResult:
    """The job proper: read, segment, measure, write the outputs into ``out_root``; store when ``record``."""
    with timer.stage("load_model"):
        if segmenter is None:
            segmenter = build_segmenter(options, config, progress=progress)
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
    first = volume.first
    # identifiers are masked by the command line's log formatter unless --log-phi
    log.info("series %s: patient %s (%s), born %s, accession %s; %d slices", volume.series_uid,
             first.get("PatientID", ""), first.get("PatientName", ""), first.get("PatientBirthDate", ""),
             first.get("AccessionNumber", ""), volume.hu.shape[0])
    out_dir = series_output_dir(out_root, volume.study_uid, volume.series_uid)
    with timer.stage("segment"):
        mask = segmenter.segment(volume)
    with timer.stage("measure"):
        measurement = measure_hematoma(mask, volume.geometry, config=config.measure)
    features: dict[str, Any] | None = None
    if config.predictor.features.enabled:
        from ichpipe.pipeline.measure.features.extract import compute_features

        with timer.stage("features"):
            features = compute_features(volume, mask, config=config.predictor.features)
    with timer.stage("outputs"):
        outputs = _write_outputs(out_dir, volume, mask, measurement, segmenter, config)
    info = segmenter.describe()
    identity = study_identity([s.dataset for s in volume.slices], study_uid=volume.study_uid,
                              series_uid=volume.series_uid)
    extra = {
        "series_selection": scan.selection.reasons(chosen.series.key),
        "segmenter_details": {k: v for k, v in info.items() if k not in ("name", "checkpoint_sha256", "version")},
    }
    report_path = out_dir / "report.json"
    if config.outputs.report:
        outputs["report"] = str(report_path)
    report = build_study_report(
        identity=identity,
        geometry=volume.geometry,
        hematoma=measurement,
        segmenter=SegmenterInfo(name=str(info["name"]), checkpoint_sha256=info.get("checkpoint_sha256"),
                                version=str(info.get("version") or __version__)),
        outputs=outputs,
        timings=timer,
        warnings=volume.warnings,
        extra=extra,
    )
    if features is not None:
        report["features"] = features
    stored = report  # the store records the identified measurement (its own database), even when de-identified
    if config.outputs.record_in_store and record:
        with timer.stage("store"):
            _record(stored, config)
        report["timings_s"] = timer.to_dict()
    if config.outputs.deidentify:
        from ichpipe.pipeline.outputs.deidentified_report import deidentify_report

        report = deidentify_report(report)
    if config.outputs.report:
        try:
            _write_json(report_path, report)
        except OutputError:
            _remove_outputs(outputs, keep=report_path)
            raise
    pending = stored if config.outputs.record_in_store and not record else None
    return RunResult(report=report, output_dir=out_dir, record=pending)


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


def _record(report: dict[str, Any] | None, config: Config) -> None:
    from ichpipe.pipeline.serial.store import measurement_from_report, open_store, record_measurement

    if report is None:
        return
    if not report.get("patient_id"):
        log.warning("series has no PatientID; not recorded in the results store")
        return
    with open_store(config.store) as store:
        record_measurement(store, measurement_from_report(report))
