"""The main job: one study folder in, segmentation, volume and outputs out.

discover -> select series -> assemble -> analyse (intracranial space,
segment with a network or the threshold baseline, the baseline as a
cross-check, volume along the normal and ABC/2, quality flags:
:mod:`~ichpipe.pipeline.jobs.analyse_volume`) -> outputs (DICOM SEG, key image
PNG, Secondary Capture, NIfTI, each carrying the flags) -> results store ->
DICOM SR (it carries the flags and the change since the patient's baseline
scan, known once the store has the measurement) -> report. A
``.nii``/``.nii.gz`` path instead of a study runs
:func:`ichpipe.pipeline.jobs.nifti_study.run_nifti` (no DICOM outputs: there
are no source instances to reference). Outputs go to
``OUT/<StudyInstanceUID>/<SeriesInstanceUID>/`` and every file is written
atomically.

A flagged volume is written and reported like any other, beside its flags;
``strict`` (``run --strict``, ``quality.strict``) only changes the exit status,
after everything was written. An output that cannot be built (a SEG refused by
highdicom) is skipped with a flag, and the rest is still written. A run that
fails leaves no file of its own and no empty folder behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ichpipe import __version__
from ichpipe.dicom_io.assemble import assemble_series
from ichpipe.dicom_io.frame_of_reference import frame_of_reference
from ichpipe.dicom_io.study import scan_files, scan_study
from ichpipe.errors import CheckpointError, OutputBuildError, OutputError, UsageError
from ichpipe.pipeline.config import Config
from ichpipe.pipeline.config.inference_config import Device
from ichpipe.pipeline.config.models_config import resolve_checkpoint
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume
from ichpipe.pipeline.jobs.study_outputs import OutputRun, remove_outputs, write_image_outputs, write_json, write_sr
from ichpipe.pipeline.outputs.paths import series_output_dir
from ichpipe.pipeline.outputs.report import SegmenterInfo, StageTimer, build_study_report, study_identity
from ichpipe.pipeline.quality.flags import QualityFlag
from ichpipe.pipeline.segment import Segmenter, segmenter_choices
from ichpipe.pipeline.segment.threshold import BASELINE_LIMITS, ThresholdSegmenter

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
    strict:
        Any quality flag makes the exit status 1 (after every output was
        written); ``None`` uses ``quality.strict`` from the config.
    """

    study: Path
    out: Path | None = None
    segmenter: str | None = None
    checkpoint: Path | None = None
    device: Device | None = None
    files: tuple[Path, ...] | None = None
    strict: bool | None = None


@dataclass(frozen=True)
class RunResult:
    """The study report, where the outputs went, the quality flags and whether they fail the run."""

    report: dict[str, Any]
    output_dir: Path
    flags: tuple[QualityFlag, ...] = ()
    strict: bool = False

    @property
    def exit_code(self) -> int:
        """0: the job succeeded; 1: it did, but a quality flag was raised under ``strict``.

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
    checkpoint = options.checkpoint or resolve_checkpoint(config.models.default_checkpoint)
    if not checkpoint.is_file():
        raise CheckpointError(
            f"Segmenter '{name or 'network'}' needs a trained checkpoint and {checkpoint} does not exist."
            " Pass --checkpoint FILE or set models.default_checkpoint in the config. --segmenter threshold"
            " needs no checkpoint, but it is a classical HU-threshold baseline, not a trained model:"
            f" {BASELINE_LIMITS} (see MODEL_CARD.md)."
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
    with timer.stage("load_model"):
        if segmenter is None:
            segmenter = build_segmenter(options, config, progress=progress)
    from ichpipe.pipeline.jobs.nifti_study import is_nifti_input, run_nifti

    strict = config.quality.strict if options.strict is None else options.strict
    if options.files is None and is_nifti_input(study):
        report, out_dir, flags = run_nifti(study, out_root, config, segmenter, timer)
        return RunResult(report=report, output_dir=out_dir, flags=flags, strict=strict)
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
    analysis = analyse_volume(volume, segmenter, config, timer=timer)
    mask, measurement, quality = analysis.mask, analysis.measurement, analysis.quality
    for flag in quality.flags:
        log.info("quality flag %s", flag.line())
    features: dict[str, Any] | None = None
    if config.predictor.features.enabled:
        from ichpipe.pipeline.measure.features.extract import compute_features

        with timer.stage("features"):
            features = compute_features(volume, mask, config=config.predictor.features)
    info = segmenter.describe()
    run = OutputRun(segmenter=info, when=datetime.now(), flags=tuple(quality.flags))
    created = _make_dirs(out_dir)
    outputs: dict[str, str] = {}
    try:
        with timer.stage("outputs"):
            outputs, seg, skipped = write_image_outputs(out_dir, volume, mask, measurement, config, run)
        for name, reason in skipped.items():
            quality.add([QualityFlag("output_skipped", f"The {_OUTPUT_NAMES.get(name, name)} was not written:"
                                     f" {reason} The volume and the other outputs are unaffected.")], "outputs")
        identity = study_identity([s.dataset for s in volume.slices], study_uid=volume.study_uid,
                                  series_uid=volume.series_uid)
        for_uid, for_derived = frame_of_reference(volume)
        extra = {
            "input": {"format": "dicom", "path": str(study)},
            "series_selection": scan.selection.reasons(chosen.series.key),
            "segmenter_details": {k: v for k, v in info.items()
                                  if k not in ("name", "checkpoint_sha256", "version")},
            "quality": quality.to_dict(),
            "frame_of_reference": {"uid": for_uid, "derived": for_derived},
            "outputs_skipped": dict(skipped),
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
        report["segmenter"].update({k: info[k] for k in ("kind", "baseline", "limits") if k in info})
        if features is not None:
            report["features"] = features
        if config.outputs.record_in_store:
            with timer.stage("store"):
                serial = _record(report, config, source=study)
            if serial is not None:
                report["serial"] = serial
        if config.outputs.sr:
            with timer.stage("sr"):
                try:
                    report["outputs"]["sr"] = str(write_sr(out_dir, volume, report, seg, config, run))
                except OutputBuildError as exc:
                    skipped["sr"] = str(exc)
                    quality.add([QualityFlag("output_skipped", f"The DICOM SR was not written: {exc} The volume"
                                             " and the other outputs are unaffected.")], "outputs")
                    report["quality"], report["outputs_skipped"] = quality.to_dict(), dict(skipped)
        report["timings_s"] = timer.to_dict()
        if config.outputs.deidentify:
            from ichpipe.pipeline.outputs.deidentified_report import deidentify_report

            report = deidentify_report(report)
        if config.outputs.report:
            write_json(report_path, report)
    except BaseException:
        # every file is written atomically; this removes the complete ones of an incomplete set,
        # and the folders this run created when they are left empty
        remove_outputs(outputs)
        _remove_empty_dirs(created)
        raise
    return RunResult(report=report, output_dir=out_dir, flags=tuple(quality.flags), strict=strict)


#: Names of the outputs in sentences.
_OUTPUT_NAMES = {"seg": "DICOM SEG", "secondary_capture": "key image Secondary Capture"}


def _make_dirs(out_dir: Path) -> list[Path]:
    """Create ``out_dir`` and its missing parents; return the folders created (deepest first)."""
    created: list[Path] = []
    folder = out_dir
    while not folder.exists():
        created.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot create output folder {out_dir}: {exc.strerror or exc}.") from exc
    return created


def _remove_empty_dirs(folders: list[Path]) -> None:
    """Remove the folders a failed run created, deepest first, where they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            break  # not empty (another run's files) or gone: leave it and its parents


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
