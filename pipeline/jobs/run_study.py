"""The main job: one study folder in, segmentation, volume and outputs out.

discover -> select series -> assemble -> segment (window, network or
threshold) -> measure (volume along the normal, ABC/2) -> outputs (report,
DICOM SEG, key image PNG, Secondary Capture, NIfTI) -> results store ->
DICOM SR (it carries the change since the patient's baseline scan, known
once the store has the measurement). A ``.nii``/``.nii.gz`` path instead of
a study is read as a volume and its outputs are written by
:func:`ichpipe.pipeline.jobs.nifti_study.write_nifti_outputs` (no DICOM
outputs: there are no source instances to reference).
Outputs go to ``OUT/<StudyInstanceUID>/<SeriesInstanceUID>/`` and every file
is written atomically.

What is computed and what is written stay apart, each its own function:

1. :func:`analyse_study` -- select, assemble, segment, measure, imaging
   features; writes nothing (a NIfTI CT is read as a volume too);
2. :func:`write_study_outputs` -- SEG, key image, Secondary Capture, NIfTI,
   regular grid (:mod:`ichpipe.pipeline.jobs.study_outputs`);
3. :func:`study_report` -- the study report, and its row in the results store
   (with the serial comparison) when asked; :func:`deidentified` at the end.

:func:`run_study` (``ichpipe run``, ``ichpipe batch``) does all of it and the
SR and ``report.json``; :func:`ichpipe.run_study` (the Python API) writes
files and store rows only when asked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ichpipe import __version__
from ichpipe.dicom_io.assemble import CTVolume, assemble_series
from ichpipe.dicom_io.study import scan_files, scan_study
from ichpipe.errors import CheckpointError, OutputError, UsageError
from ichpipe.pipeline.config import Config
from ichpipe.pipeline.config.inference_config import Device
from ichpipe.pipeline.config.models_config import resolve_checkpoint
from ichpipe.pipeline.jobs.study_outputs import OutputRun, remove_outputs, write_image_outputs, write_json, write_sr
from ichpipe.pipeline.measure.volume import HematomaMeasurement, measure_hematoma
from ichpipe.pipeline.outputs.paths import series_output_dir
from ichpipe.pipeline.outputs.report import SegmenterInfo, StageTimer, build_study_report, study_identity
from ichpipe.pipeline.segment import Segmenter, segmenter_choices
from ichpipe.pipeline.segment.threshold import ThresholdSegmenter

__all__ = [
    "RunOptions", "RunResult", "StudyAnalysis", "analyse_study", "build_segmenter", "deidentified", "run_study",
    "study_report", "write_study_outputs",
]

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
        The selected series as a HU volume, sorted along the normal, with its
        geometry and headers (no headers for a NIfTI input).
    mask:
        Boolean hematoma mask, same shape as ``volume.hu``.
    measurement:
        Volume along the normal, ABC/2 and per-slice areas of ``mask``.
    segmenter:
        What produced the mask (:meth:`~ichpipe.pipeline.segment.Segmenter.describe`).
    features:
        Imaging features when ``predictor.features.enabled`` (DICOM input), else ``None``.
    source:
        The report's ``input``: format (``dicom`` or ``nifti``) and path.
    selection_reasons:
        Why this series was selected (each rule's verdict); empty for a NIfTI input.
    timer:
        Seconds per stage so far (later steps add theirs).
    """

    volume: CTVolume
    mask: np.ndarray
    measurement: HematomaMeasurement
    segmenter: dict[str, Any]
    features: dict[str, Any] | None
    source: dict[str, str]
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


def analyse_study(
    options: RunOptions, config: Config, *, segmenter: Segmenter, timer: StageTimer | None = None
) -> StudyAnalysis:
    """Select, assemble, segment and measure one study (or a NIfTI CT); writes nothing.

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
    from ichpipe.pipeline.jobs.nifti_study import is_nifti_input, load_nifti_ct

    timer = timer or StageTimer()
    study = Path(options.study)
    reasons: list[str] = []
    if options.files is None and is_nifti_input(study):
        with timer.stage("assemble"):
            volume = load_nifti_ct(study, config=config.geometry)
        source = {"format": "nifti", "path": str(study), "geometry_source": "nifti-header"}
    else:
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
        source = {"format": "dicom", "path": str(study)}
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
    if config.predictor.features.enabled and volume.slices:
        from ichpipe.pipeline.measure.features.extract import compute_features

        with timer.stage("features"):
            features = compute_features(volume, mask, config=config.predictor.features)
    return StudyAnalysis(volume=volume, mask=mask, measurement=measurement, segmenter=dict(segmenter.describe()),
                         features=features, source=source, selection_reasons=reasons, timer=timer)


def write_study_outputs(
    analysis: StudyAnalysis, out_root: Path, config: Config, run: OutputRun
) -> tuple[Path, dict[str, str], Any]:
    """Write what depends on the mask only (SEG, key image, SC, NIfTI, regular grid) under ``out_root``.

    Returns
    -------
    tuple
        The series' output folder, output name -> path, and the SEG dataset
        (for the SR; ``None`` when no SEG was written).

    Raises
    ------
    OutputError
        When a file cannot be written; the files of the incomplete set are removed.
    """
    volume = analysis.volume
    out_dir = series_output_dir(out_root, volume.study_uid, volume.series_uid)
    with analysis.timer.stage("outputs"):
        outputs, seg = write_image_outputs(out_dir, volume, analysis.mask, analysis.measurement, config, run)
    return out_dir, outputs, seg


def study_report(
    analysis: StudyAnalysis, config: Config, *, outputs: dict[str, str] | None = None, record: bool = False
) -> dict[str, Any]:
    """The study report of ``analysis`` (identified); with ``record``, also its row in the results store.

    Parameters
    ----------
    analysis:
        What :func:`analyse_study` computed.
    config:
        The configuration (``store`` says where to record, ``expansion`` how to compare).
    outputs:
        Output name -> path of the files written; ``None`` for none.
    record:
        Record the measurement in the results store and add where the series
        stands on its patient's timeline (``serial``). A series without
        PatientID (a NIfTI input) is not recorded.

    Returns
    -------
    dict
        The report, patient identifiers included: pass it through
        :func:`deidentified` before it leaves the process.
    """
    volume, info, timer = analysis.volume, analysis.segmenter, analysis.timer
    identity = (study_identity([s.dataset for s in volume.slices], study_uid=volume.study_uid,
                               series_uid=volume.series_uid) if volume.slices else None)
    extra: dict[str, Any] = {"input": analysis.source}
    if volume.slices:
        extra["series_selection"] = analysis.selection_reasons
    extra["segmenter_details"] = {k: v for k, v in info.items() if k not in ("name", "checkpoint_sha256", "version")}
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
            serial = _record(report, config, source=Path(analysis.source["path"]))
        if serial is not None:
            report["serial"] = serial
        report["timings_s"] = timer.to_dict()
    return report


def deidentified(report: dict[str, Any], config: Config) -> dict[str, Any]:
    """``report`` without direct patient identifiers when ``outputs.deidentify``; else ``report`` itself."""
    if not config.outputs.deidentify:
        return report
    from ichpipe.pipeline.outputs.deidentified_report import deidentify_report

    return deidentify_report(report)


def run_study(
    options: RunOptions,
    config: Config,
    *,
    progress: Callable[[int, int], None] | None = None,
    segmenter: Segmenter | None = None,
) -> RunResult:
    """Run the main job on one study: analyse, write the outputs, record, SR and ``report.json``.

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
    if analysis.source["format"] == "nifti":
        from ichpipe.pipeline.jobs.nifti_study import write_nifti_outputs

        report, out_dir = write_nifti_outputs(analysis, out_root, config)
        return RunResult(report=report, output_dir=out_dir, analysis=analysis)
    run = OutputRun(segmenter=analysis.segmenter, when=datetime.now())
    out_dir, outputs, seg = write_study_outputs(analysis, out_root, config, run)
    report_path = out_dir / "report.json"
    if config.outputs.report:
        outputs["report"] = str(report_path)
    report = study_report(analysis, config, outputs=outputs, record=config.outputs.record_in_store)
    try:
        if config.outputs.sr:
            with timer.stage("sr"):
                report["outputs"]["sr"] = str(write_sr(out_dir, analysis.volume, report, seg, config, run))
        report["timings_s"] = timer.to_dict()
        report = deidentified(report, config)
        if config.outputs.report:
            write_json(report_path, report)
    except OutputError:
        remove_outputs(report["outputs"], keep=report_path)
        raise
    return RunResult(report=report, output_dir=out_dir, analysis=analysis)


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
