"""The main job: one study folder in, segmentation, volume and outputs out.

discover -> select series -> assemble -> analyse (intracranial space,
segment with a network or the threshold baseline, the baseline as a
cross-check, volume along the normal and ABC/2, quality flags:
:mod:`~ichpipe.pipeline.jobs.analyse_volume`) -> outputs (DICOM SEG, key image
PNG, Secondary Capture, NIfTI, each carrying the flags) -> results store ->
DICOM SR (it carries the flags and the change since the patient's baseline
scan, known once the store has the measurement) -> report. A
``.nii``/``.nii.gz`` path instead of a study is read as a volume, analysed the
same way, and its outputs are written by
:func:`ichpipe.pipeline.jobs.nifti_study.write_nifti_outputs` (no DICOM
outputs: there are no source instances to reference). Outputs go to
``OUT/<StudyInstanceUID>/<SeriesInstanceUID>/`` and every file is written
atomically.

A flagged volume is written and reported like any other, beside its flags;
``strict`` (``run --strict``, ``quality.strict``) only changes the exit status,
after everything was written. An output that cannot be built (a SEG refused by
highdicom) is skipped with a flag, and the rest is still written. A run that
fails leaves no file of its own and no empty folder behind.

What is computed and what is written stay apart, each its own function:

1. :func:`analyse_study` -- select, assemble, analyse (segment, measure,
   quality flags), imaging features; writes nothing (a NIfTI CT is read as a volume too);
2. :func:`write_study_outputs` -- SEG, key image, Secondary Capture, NIfTI,
   regular grid (:mod:`ichpipe.pipeline.jobs.study_outputs`);
3. :func:`study_report` -- the study report, and its row in the results store
   (with the serial comparison) when asked; :func:`deidentified` at the end.

:func:`run_study` (``ichpipe run``, ``ichpipe batch``) does all of it and the
SR and ``report.json``; :func:`ichpipe.run_study` (the Python API) writes
files and store rows only when asked.
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
from typing import TYPE_CHECKING, Any

import numpy as np

from ichpipe import __version__
from ichpipe.dicom_io.assemble import CTVolume, assemble_series
from ichpipe.dicom_io.frame_of_reference import frame_of_reference
from ichpipe.dicom_io.sources import sweep_stale_extractions
from ichpipe.dicom_io.study import scan_files, scan_study
from ichpipe.errors import CheckpointError, OutputBuildError, OutputError, UsageError
from ichpipe.pipeline.batch.locks import acquire_lock, lock_name
from ichpipe.pipeline.config import Config
from ichpipe.pipeline.config.inference_config import Device
from ichpipe.pipeline.config.models_config import resolve_checkpoint
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume
from ichpipe.pipeline.jobs.study_outputs import OutputRun, remove_outputs, write_image_outputs, write_json, write_sr
from ichpipe.pipeline.measure.volume import HematomaMeasurement
from ichpipe.pipeline.outputs.paths import make_output_dirs, remove_empty_dirs, series_output_dir
from ichpipe.pipeline.outputs.publish import PRIVATE_DIR, publish_series, remove_tree, rewrite_outputs, sweep_staging
from ichpipe.pipeline.outputs.report import (
    SegmenterInfo,
    StageTimer,
    StudyIdentity,
    build_study_report,
    study_identity,
)
from ichpipe.pipeline.quality.flags import QualityFlag, QualityReport
from ichpipe.pipeline.segment import Segmenter, segmenter_choices
from ichpipe.pipeline.segment.threshold import BASELINE_LIMITS, ThresholdSegmenter

if TYPE_CHECKING:
    from ichpipe.pipeline.jobs.nifti_study import CaseIdentity

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
    strict:
        Any quality flag makes the exit status 1 (after every output was
        written); ``None`` uses ``quality.strict`` from the config.
    case:
        For a NIfTI ``study`` only: its case ID, patient, accession and time
        (``ichpipe batch --list``); a case with a patient ID is recorded in the
        results store. A DICOM study takes them from its headers.
    staged:
        ``out`` is already a private staging folder whose caller holds the
        series lock and publishes the result (``ichpipe batch``): write there
        directly. Otherwise (``ichpipe run``) the outputs are staged under
        ``OUT/.ichpipe/staging/`` and published whole under the series lock
        (:mod:`~ichpipe.pipeline.outputs.publish`), so a concurrent batch or
        run never sees, or removes, half of them.
    blast_models:
        For ``--segmenter blast_ct``: how many of its twelve models to average;
        ``None`` uses ``blast_ct.models`` from the config.
    """

    study: Path
    out: Path | None = None
    segmenter: str | None = None
    checkpoint: Path | None = None
    device: Device | None = None
    files: tuple[Path, ...] | None = None
    strict: bool | None = None
    case: CaseIdentity | None = None
    staged: bool = False
    blast_models: int | None = None


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
    quality:
        The quality flags and their measurements
        (:func:`~ichpipe.pipeline.jobs.analyse_volume.analyse_volume`); the
        output steps add theirs (an output that could not be built).
    frame_of_reference:
        The report's ``frame_of_reference``: the series' UID, or one derived
        from its content when the headers have none (``derived``); ``None``
        for a NIfTI input.
    case:
        Who and when a NIfTI case is (``batch --list``); ``None`` otherwise.
    types:
        Per-type volumes when the segmenter labels blood types (BLAST-CT; the
        report's ``hematoma_types``), else ``None``.
    """

    volume: CTVolume
    mask: np.ndarray
    measurement: HematomaMeasurement
    segmenter: dict[str, Any]
    features: dict[str, Any] | None
    source: dict[str, str]
    selection_reasons: list[str]
    timer: StageTimer
    quality: QualityReport
    frame_of_reference: dict[str, Any] | None = None
    case: CaseIdentity | None = None
    types: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunResult:
    """The study report, where the outputs went, what was computed, and whether its flags fail the run."""

    report: dict[str, Any]
    output_dir: Path
    analysis: StudyAnalysis
    strict: bool = False

    @property
    def flags(self) -> tuple[QualityFlag, ...]:
        """The quality flags raised on this study (the report's ``quality.flags``)."""
        return tuple(self.analysis.quality.flags)

    @property
    def exit_code(self) -> int:
        """1 when ``strict`` and a quality flag was raised, else 0.

        Failures raise project errors instead.
        """
        return 1 if self.strict and self.flags else 0


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
    if name == "blast_ct":
        from ichpipe.pipeline.segment.blast_ct import build_blast_ct

        return build_blast_ct(config, weights_dir=options.checkpoint, models=options.blast_models,
                              device=options.device, progress=progress)
    checkpoint = options.checkpoint or resolve_checkpoint(config.models.default_checkpoint)
    if not checkpoint.is_file():
        what = "is a folder (folders of weights are for --segmenter blast_ct)" if checkpoint.is_dir() else \
            "does not exist"
        raise CheckpointError(
            f"Segmenter '{name or 'network'}' needs a trained checkpoint and {checkpoint} {what}."
            " Pass --checkpoint FILE or set models.default_checkpoint in the config. --segmenter threshold"
            " needs no checkpoint, but it is a classical HU-threshold baseline, not a trained model:"
            f" {BASELINE_LIMITS} (see MODEL_CARD.md)."
        )
    from ichpipe.models.hashing import require_allowlisted
    from ichpipe.pipeline.segment.inference import NetworkSegmenter

    allow = config.models.checkpoint_sha256_allowlist
    if allow:
        require_allowlisted(checkpoint, allow)
    inference = config.inference
    if options.device is not None:
        inference = replace(inference, device=options.device)
    return NetworkSegmenter(checkpoint, name=name, config=inference, anatomy=config.anatomy,
                            allowed_sha256=tuple(allow), progress=progress)


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
        if options.case is not None and options.case.case_id is not None:
            source["case_id"] = options.case.case_id
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
    analysed = analyse_volume(volume, segmenter, config, timer=timer)
    mask, measurement, quality = analysed.mask, analysed.measurement, analysed.quality
    for flag in quality.flags:
        log.info("quality flag %s", flag.line())
    for_ref: dict[str, Any] | None = None
    if volume.slices:
        for_uid, for_derived = frame_of_reference(volume)
        for_ref = {"uid": for_uid, "derived": for_derived}
    features: dict[str, Any] | None = None
    if config.predictor.features.enabled and volume.slices:
        from ichpipe.pipeline.measure.features.extract import compute_features

        with timer.stage("features"):
            features = compute_features(volume, mask, config=config.predictor.features)
    return StudyAnalysis(volume=volume, mask=mask, measurement=measurement, segmenter=dict(segmenter.describe()),
                         features=features, source=source, selection_reasons=reasons, timer=timer,
                         quality=quality, frame_of_reference=for_ref,
                         case=options.case if not volume.slices else None, types=analysed.types)


def write_study_outputs(
    analysis: StudyAnalysis, out_root: Path, config: Config, run: OutputRun
) -> tuple[Path, dict[str, str], Any, dict[str, str]]:
    """Write what depends on the mask only (SEG, key image, SC, NIfTI, regular grid) under ``out_root``.

    An output that cannot be built (a SEG highdicom refuses) is skipped, and a
    quality flag (``output_skipped``) is added to ``analysis.quality``; the
    others are still written.

    Returns
    -------
    tuple
        The series' output folder, output name -> path, the SEG dataset (for
        the SR; ``None`` when no SEG was written), and output name -> why it
        was skipped.

    Raises
    ------
    OutputError
        When a file cannot be written; the files of the incomplete set are removed.
    """
    volume = analysis.volume
    out_dir = series_output_dir(out_root, volume.study_uid, volume.series_uid)
    with analysis.timer.stage("outputs"):
        outputs, seg, skipped = write_image_outputs(out_dir, volume, analysis.mask, analysis.measurement, config,
                                                    run)
    for name, reason in skipped.items():
        _flag_skipped(analysis.quality, _OUTPUT_NAMES.get(name, name), reason)
    return out_dir, outputs, seg, skipped


def study_report(
    analysis: StudyAnalysis,
    config: Config,
    *,
    outputs: dict[str, str] | None = None,
    skipped: dict[str, str] | None = None,
    record: bool = False,
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
    skipped:
        Output name -> why it was not written (``outputs_skipped``); ``None`` for none.
    record:
        Record the measurement in the results store and add where the series
        stands on its patient's timeline (``serial``). A series without
        PatientID (a NIfTI input without a ``batch --list`` patient) is not recorded.

    Returns
    -------
    dict
        The report, patient identifiers included: pass it through
        :func:`deidentified` before it leaves the process.
    """
    volume, info, timer = analysis.volume, analysis.segmenter, analysis.timer
    identity: StudyIdentity | None
    if volume.slices:
        identity = study_identity([s.dataset for s in volume.slices], study_uid=volume.study_uid,
                                  series_uid=volume.series_uid)
    else:
        identity = analysis.case.report_identity(Path(analysis.source["path"])) if analysis.case else None
    extra: dict[str, Any] = {"input": analysis.source}
    if volume.slices:
        extra["series_selection"] = analysis.selection_reasons
    extra["segmenter_details"] = {k: v for k, v in info.items() if k not in ("name", "checkpoint_sha256", "version")}
    extra["quality"] = analysis.quality.to_dict()
    if analysis.frame_of_reference is not None:
        extra["frame_of_reference"] = analysis.frame_of_reference
    extra["outputs_skipped"] = dict(skipped or {})
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
    report["segmenter"].update({k: info[k] for k in ("kind", "baseline", "limits") if k in info})
    if analysis.types is not None:
        report["hematoma_types"] = analysis.types
    if analysis.features is not None:
        report["features"] = analysis.features
    fmt = analysis.source["format"]
    if record and (fmt == "dicom" or report.get("patient_id")):
        with timer.stage("store"):
            serial = _record(report, config, source=Path(analysis.source["path"]), kind=fmt)
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
    and recorded is what ``config.outputs`` says. A run that fails removes the
    files it wrote and the folders it created.

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
    strict = config.quality.strict if options.strict is None else options.strict
    analysis = analyse_study(options, config, segmenter=segmenter, timer=timer)
    if analysis.source["format"] == "nifti":
        from ichpipe.pipeline.jobs.nifti_study import write_nifti_outputs

        report, out_dir = write_nifti_outputs(analysis, out_root, config)
        return RunResult(report=report, output_dir=out_dir, analysis=analysis, strict=strict)
    volume = analysis.volume
    run = OutputRun(segmenter=analysis.segmenter, when=datetime.now(), flags=tuple(analysis.quality.flags))
    out_dir = series_output_dir(out_root, volume.study_uid, volume.series_uid)
    created = make_output_dirs(out_dir)
    outputs: dict[str, str] = {}
    try:
        _, outputs, seg, skipped = write_study_outputs(analysis, out_root, config, run)
        report_path = out_dir / "report.json"
        if config.outputs.report:
            outputs["report"] = str(report_path)
        report = study_report(analysis, config, outputs=outputs, skipped=skipped,
                              record=config.outputs.record_in_store)
        if config.outputs.sr:
            with timer.stage("sr"):
                try:
                    report["outputs"]["sr"] = str(write_sr(out_dir, volume, report, seg, config, run))
                except OutputBuildError as exc:
                    skipped["sr"] = str(exc)
                    _flag_skipped(analysis.quality, "DICOM SR", str(exc))
                    report["quality"], report["outputs_skipped"] = analysis.quality.to_dict(), dict(skipped)
        report["timings_s"] = timer.to_dict()
        report = deidentified(report, config)
        if config.outputs.report:
            write_json(report_path, report)
    except BaseException:
        # every file is written atomically; this removes the complete ones of an incomplete set,
        # and the folders this run created when they are left empty
        remove_outputs(outputs)
        remove_empty_dirs(created)
        raise
    return RunResult(report=report, output_dir=out_dir, analysis=analysis, strict=strict)


#: Names of the outputs in sentences.
_OUTPUT_NAMES = {"seg": "DICOM SEG", "secondary_capture": "key image Secondary Capture"}


def _flag_skipped(quality: QualityReport, name: str, reason: str) -> None:
    """Add the ``output_skipped`` flag for the output ``name`` that could not be built."""
    quality.add([QualityFlag("output_skipped", f"The {name} was not written: {reason} The volume and the other"
                             " outputs are unaffected.")], "outputs")


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
    return replace(result, report=report, output_dir=final)


def _record(report: dict[str, Any], config: Config, *, source: Path, kind: str = "dicom") -> dict[str, Any] | None:
    """Record the measurement; return where the series stands on its patient's timeline (``serial``).

    ``kind`` is ``dicom`` or ``nifti`` (a case of ``batch --list``: recorded
    without a source path, since ``timeline remeasure`` reads DICOM studies).
    """
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
    record = measurement_from_report(report, source_path=str(source.resolve()) if kind == "dicom" else None)
    if kind != "dicom":
        record = replace(record, source=kind)
    with open_store(config.store) as store:
        used = record_measurement(store, record)
        if not used:
            log.warning("accession %s keeps the series a user chose (`ichpipe timeline prefer`); this series is "
                        "recorded beside it and not used in the timeline", report.get("accession_number") or "")
        return serial_block(store, report, config.expansion.rule())
