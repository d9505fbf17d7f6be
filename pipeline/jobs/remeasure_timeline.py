"""``ichpipe timeline remeasure``: measure every scan of a patient one way, so that scans compare like with like.

A patient whose scans were measured in different ways (another segmenter, or
another checkpoint of the same network) gets an "undetermined: methods differ"
verdict, because a change of method alone can cross the 6 mL criterion. This
job runs the series the timeline uses for each scan again, from the study it
was read from (``source_path`` in the results store), with one segmenter and
checkpoint: the one given, else the configuration's default (what ``ichpipe
run`` uses). Each run replaces that series' row in the store (same
SeriesInstanceUID), so a user's choice of preferred series stands.

Scans that cannot be run again are listed with the reason: imported from a
table (no images), recorded before the store kept source paths, or the study
is no longer where it was read from. Their patient stays undetermined until
they are measured the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from ichpipe.dicom_io.study import scan_study
from ichpipe.errors import IchpipeError, UsageError
from ichpipe.pipeline.config import Config
from ichpipe.pipeline.config.inference_config import Device
from ichpipe.pipeline.jobs.run_study import RunOptions, build_segmenter, run_study
from ichpipe.pipeline.segment import Segmenter
from ichpipe.pipeline.serial.expansion import ExpansionResult, evaluate_expansion
from ichpipe.pipeline.serial.store import Store, StoredMeasurement, list_measurements, open_store
from ichpipe.pipeline.serial.store.records import method_name
from ichpipe.pipeline.serial.timeline import Timeline, load_timeline, load_timelines, method_label

__all__ = ["RemeasureOptions", "RemeasureReport", "RemeasuredScan", "remeasure_timelines"]

log = logging.getLogger(__name__)

Outcome = Literal["remeasured", "already", "would_remeasure", "no_source", "source_missing", "failed"]


@dataclass(frozen=True, kw_only=True)
class RemeasureOptions:
    """What ``ichpipe timeline remeasure`` does.

    Parameters
    ----------
    patients:
        Patient IDs to measure one way; empty with ``all_mixed`` = every
        patient whose timeline mixes methods.
    all_mixed:
        Also take every patient of the store whose scans were measured in
        more than one way (a batch).
    issuer_of_patient_id:
        IssuerOfPatientID, when one ID is used by several issuers.
    segmenter, checkpoint, device:
        The method to measure with (as for ``ichpipe run``); ``None`` = the
        configuration's default.
    out:
        Output root for the new reports, SEGs and key images (``None`` =
        ``outputs.directory``).
    dry_run:
        Only list what would be run.
    """

    patients: tuple[str, ...] = ()
    all_mixed: bool = False
    issuer_of_patient_id: str | None = None
    segmenter: str | None = None
    checkpoint: Path | None = None
    device: Device | None = None
    out: Path | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class RemeasuredScan:
    """What happened to one scan."""

    patient_id: str
    accession_number: str | None
    series_instance_uid: str
    outcome: Outcome
    detail: str
    method_before: str
    volume_before_ml: float
    volume_after_ml: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {
            "patient_id": self.patient_id,
            "accession_number": self.accession_number,
            "series_instance_uid": self.series_instance_uid,
            "outcome": self.outcome,
            "detail": self.detail,
            "method_before": self.method_before,
            "volume_before_ml": self.volume_before_ml,
            "volume_after_ml": self.volume_after_ml,
        }


@dataclass(frozen=True)
class RemeasureReport:
    """Every scan's outcome and each patient's verdict afterwards."""

    method: str
    scans: tuple[RemeasuredScan, ...]
    verdicts: tuple[ExpansionResult, ...]
    dry_run: bool

    @property
    def exit_code(self) -> int:
        """0 when every patient is now measured one way (or a dry run), 1 when a scan failed or could not be run."""
        if self.dry_run:
            return 0
        bad = {"failed", "no_source", "source_missing"}
        return 1 if any(s.outcome in bad for s in self.scans) else 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {
            "method": self.method,
            "dry_run": self.dry_run,
            "scans": [s.to_dict() for s in self.scans],
            "verdicts": [v.to_dict() for v in self.verdicts],
        }

    def to_text(self) -> str:
        """One line per scan and per patient, for a terminal."""
        lines = [f"Method: {self.method}{' (dry run: nothing was run)' if self.dry_run else ''}."]
        for s in self.scans:
            after = "" if s.volume_after_ml is None else f" -> {s.volume_after_ml:.2f} mL"
            lines.append(f"  {s.patient_id} {s.accession_number or '-'}: {s.outcome.replace('_', ' ')} "
                         f"({s.method_before}, {s.volume_before_ml:.2f} mL{after}) {s.detail}".rstrip())
        for v in self.verdicts:
            lines.append(f"{v.patient_id}: {v.status.replace('_', ' ')} - {v.reason} "
                         f"[window from {v.origin_text}]")
        return "\n".join(lines)


def _series_files(source: Path, series_uid: str, config: Config) -> tuple[Path, ...] | None:
    """The files of one series under ``source`` (``None`` when the series is not there)."""
    with scan_study(source, discovery=config.discovery, selection=config.selection,
                    geometry=config.geometry) as scan:
        for summary in scan.series:
            if summary.series.series_uid == series_uid:
                return tuple(sorted({s.path for s in summary.series.slices}))
    return None


def _patients(store: Store, options: RemeasureOptions) -> list[Timeline]:
    timelines = [load_timeline(store, p, issuer_of_patient_id=options.issuer_of_patient_id)
                 for p in dict.fromkeys(options.patients)]
    if options.all_mixed:
        named = {(t.patient_id, t.issuer_of_patient_id) for t in timelines}
        timelines += [t for t in load_timelines(store)
                      if t.mixed_methods and (t.patient_id, t.issuer_of_patient_id) not in named]
    return timelines


def _rows_used(timeline: Timeline, rows: dict[str, StoredMeasurement]) -> list[StoredMeasurement]:
    """The series each scan of the timeline uses (dated and undated)."""
    used = [rows[s.series_instance_uid] for s in timeline.scans]
    return used + list(timeline.undated)


def _remeasure_one(m: StoredMeasurement, target: tuple[str | None, str | None], options: RemeasureOptions,
                   config: Config, segmenter: Segmenter) -> RemeasuredScan:
    def done(outcome: Outcome, detail: str, after: float | None = None) -> RemeasuredScan:
        return RemeasuredScan(m.patient_id, m.accession_number, m.series_instance_uid, outcome, detail,
                              method_label(m.segmenter, m.checkpoint_sha256), m.volume_ml, after)

    if (m.segmenter, m.checkpoint_sha256) == target:
        return done("already", "")
    if m.source_path is None:
        why = {"import": "imported from a table (no images)",
               "nifti": "measured from a NIfTI case; run `ichpipe batch --list` again with this method"}.get(
            m.source, "the store has no source path for it")
        return done("no_source", f"- cannot be run again: {why}; measure it with `ichpipe run` and this method.")
    source = Path(m.source_path)
    if not source.exists():
        return done("source_missing", f"- cannot be run again: {source} no longer exists.")
    if options.dry_run:
        return done("would_remeasure", f"from {source}")
    try:
        files = _series_files(source, m.series_instance_uid, config)
        if files is None:
            return done("source_missing", f"- the series is no longer in {source}.")
        result = run_study(RunOptions(study=source, out=options.out, files=files, device=options.device),
                           config, segmenter=segmenter)
    except IchpipeError as exc:
        log.error("series %s could not be measured again: %s", m.series_instance_uid, exc)
        return done("failed", f"- {exc}")
    volume = float(result.report["hematoma"]["volume_ml"])
    return done("remeasured", f"from {source}", volume)


def remeasure_timelines(options: RemeasureOptions, config: Config) -> RemeasureReport:
    """Measure the scans of the chosen patients again, one method for all; return what happened.

    Raises
    ------
    ichpipe.errors.UsageError
        If no patient is named and ``all_mixed`` is off.
    ichpipe.errors.StoreError, ichpipe.errors.TimelineError
        If the store is missing or a named patient is not in it.
    ichpipe.errors.CheckpointError
        If the method's checkpoint cannot be used.
    """
    if not options.patients and not options.all_mixed:
        raise UsageError("Name a patient (--patient ID) or ask for every patient with mixed methods (--all).")
    segmenter = build_segmenter(RunOptions(study=Path("."), segmenter=options.segmenter,
                                           checkpoint=options.checkpoint, device=options.device), config)
    info = segmenter.describe()
    target = (method_name(str(info["name"]), info), info.get("checkpoint_sha256"))
    run_config = replace(config, outputs=replace(config.outputs, record_in_store=True))
    with open_store(config.store, create=False) as store:
        timelines = _patients(store, options)
        rows = {m.series_instance_uid: m for t in timelines
                for m in list_measurements(store, patient_id=t.patient_id,
                                           issuer_of_patient_id=t.issuer_of_patient_id)}
    scans: list[RemeasuredScan] = []
    for timeline in timelines:
        for m in _rows_used(timeline, rows):
            scans.append(_remeasure_one(m, target, options, run_config, segmenter))
    verdicts = _verdicts(config, timelines)
    return RemeasureReport(method=method_label(*target), scans=tuple(scans), verdicts=verdicts,
                           dry_run=options.dry_run)


def _verdicts(config: Config, timelines: Sequence[Timeline]) -> tuple[ExpansionResult, ...]:
    rule = config.expansion.rule()
    with open_store(config.store, create=False) as store:
        return tuple(
            evaluate_expansion(load_timeline(store, t.patient_id, issuer_of_patient_id=t.issuer_of_patient_id), rule)
            for t in timelines
        )
