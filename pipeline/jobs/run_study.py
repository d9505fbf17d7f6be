"""The main job: one study folder in, segmentation, volume and outputs out.

discover -> select series -> assemble -> segment (window, network or
threshold) -> measure (volume along the normal, ABC/2) -> outputs (report,
DICOM SEG, key image PNG, Secondary Capture, NIfTI) -> results store ->
DICOM SR (it carries the change since the patient's baseline scan, known
once the store has the measurement). A ``.nii``/``.nii.gz`` path instead of
a study runs :func:`ichpipe.pipeline.jobs.nifti_study.run_nifti` (no DICOM
outputs: there are no source instances to reference).
Outputs go to ``OUT/<StudyInstanceUID>/<SeriesInstanceUID>/`` and every file
is written atomically.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ichpipe import __version__
from ichpipe.dicom_io.assemble import assemble_series
from ichpipe.dicom_io.sources import sweep_stale_extractions
from ichpipe.dicom_io.study import scan_files, scan_study
from ichpipe.errors import CheckpointError, OutputError, UsageError
from ichpipe.pipeline.batch.locks import acquire_lock, lock_name
from ichpipe.pipeline.config import Config
from ichpipe.pipeline.config.inference_config import Device
from ichpipe.pipeline.config.models_config import resolve_checkpoint
from ichpipe.pipeline.jobs.study_outputs import OutputRun, remove_outputs, write_image_outputs, write_json, write_sr
from ichpipe.pipeline.measure.volume import measure_hematoma
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
        Study folder, DICOMDIR or zip; or a NIfTI CT (``.nii``, ``.nii.gz``).
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
        ``OUT/.ichpipe/staging/`` and published whole under the series lock
        (:mod:`~ichpipe.pipeline.outputs.publish`), so a concurrent batch or
        run never sees, or removes, half of them.
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
    if not options.staged:
        return _staged_run(options, config, out_root.resolve(), progress=progress, segmenter=segmenter)
    with timer.stage("load_model"):
        if segmenter is None:
            segmenter = build_segmenter(options, config, progress=progress)
    from ichpipe.pipeline.jobs.nifti_study import is_nifti_input, run_nifti

    if options.files is None and is_nifti_input(study):
        report, out_dir = run_nifti(study, out_root, config, segmenter, timer)
        return RunResult(report=report, output_dir=out_dir)
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
    info = segmenter.describe()
    run = OutputRun(segmenter=info, when=datetime.now())
    with timer.stage("outputs"):
        outputs, seg = write_image_outputs(out_dir, volume, mask, measurement, config, run)
    identity = study_identity([s.dataset for s in volume.slices], study_uid=volume.study_uid,
                              series_uid=volume.series_uid)
    extra = {
        "input": {"format": "dicom", "path": str(study)},
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
    if config.outputs.record_in_store:
        with timer.stage("store"):
            serial = _record(report, config, source=study)
        if serial is not None:
            report["serial"] = serial
    try:
        if config.outputs.sr:
            with timer.stage("sr"):
                report["outputs"]["sr"] = str(write_sr(out_dir, volume, report, seg, config, run))
        report["timings_s"] = timer.to_dict()
        if config.outputs.deidentify:
            from ichpipe.pipeline.outputs.deidentified_report import deidentify_report

            report = deidentify_report(report)
        if config.outputs.report:
            write_json(report_path, report)
    except OutputError:
        remove_outputs(report["outputs"], keep=report_path)
        raise
    return RunResult(report=report, output_dir=out_dir)


def _staged_run(options: RunOptions, config: Config, out_root: Path, *,
                progress: Callable[[int, int], None] | None, segmenter: Segmenter | None) -> RunResult:
    """Run into a private staging folder, then publish the series folder whole under the series lock."""
    for line in sweep_stale_extractions() + (sweep_staging(out_root) if out_root.is_dir() else []):
        log.warning("%s", line)
    staging_root = out_root / PRIVATE_DIR / "staging"
    lock_dir = out_root / PRIVATE_DIR / "locks"
    created = [p for p in (out_root, staging_root.parent, staging_root, lock_dir) if not p.exists()]
    name = f"run-{uuid.uuid4().hex}"
    stage = staging_root / name
    try:
        try:
            staging_root.mkdir(parents=True, exist_ok=True)
            held = acquire_lock(lock_dir, name, wait=False)
        except OSError as exc:
            raise OutputError(f"Cannot create output folder {out_root}: {exc.strerror or exc}.") from exc
        if held is None:  # cannot happen: a fresh random name
            raise OutputError(f"Cannot take the staging lock {name} in {out_root}.")
        with held:
            result = run_study(replace(options, out=stage, staged=True), config, progress=progress,
                               segmenter=segmenter)
            return _publish_run(result, stage, out_root, config)
    finally:
        remove_tree(stage)
        for folder in reversed(created):  # a failed first run leaves no empty output folder behind
            with contextlib.suppress(OSError):
                folder.rmdir()


def _publish_run(result: RunResult, stage: Path, out_root: Path, config: Config) -> RunResult:
    """Move a staged ``run`` into ``OUT/...`` under the series lock ``ichpipe batch`` takes too."""
    final = out_root / result.output_dir.relative_to(stage)
    report = rewrite_outputs(result.report, result.output_dir, final, write_report=config.outputs.report)
    lock = lock_name(f"series:{final.name}")
    held = acquire_lock(out_root / PRIVATE_DIR / "locks", lock, wait=True, timeout_s=config.batch.lock_wait_s)
    if held is None:
        raise OutputError(f"Series {final.name} is being written by another ichpipe run (batch or run) for more"
                          f" than batch.lock_wait_s={config.batch.lock_wait_s:g} s; try again later.")
    with held:
        publish_series(result.output_dir, final, staging_root=out_root / PRIVATE_DIR / "staging", lock=lock)
    return RunResult(report=report, output_dir=final)


def _record(report: dict[str, Any], config: Config, *, source: Path) -> dict[str, Any] | None:
    """Record the measurement; return where the series stands on its patient's timeline (``serial``)."""
    from ichpipe.pipeline.serial.baseline_change import serial_block
    from ichpipe.pipeline.serial.store import measurement_from_report, open_store, record_measurement

    if not report.get("patient_id"):
        log.warning("series has no PatientID; not recorded in the results store")
        return None
    when = report.get("acquisition_datetime")
    if not when:
        log.warning("series has no acquisition date or time; it is recorded but left off the timeline")
    elif "T" not in str(when):
        log.warning("series has an acquisition date but no time of day; the timeline treats its time as "
                    "anywhere in that day")
    record = measurement_from_report(report, source_path=str(source.resolve()))
    with open_store(config.store) as store:
        used = record_measurement(store, record)
        if not used:
            log.warning("accession %s keeps the series a user chose (`ichpipe timeline prefer`); this series is "
                        "recorded beside it and not used in the timeline", report.get("accession_number") or "")
        return serial_block(store, report, config.expansion.rule())
