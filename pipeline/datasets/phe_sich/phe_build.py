"""Build the real-domain training set from the PHE-SICH PNG slices (``ichpipe train data --phe-sich DIR``).

Everything is recomputed from ``../shared/data/phe-sich-ct-ids-dev`` at run time; nothing
derived from the data is stored in the repository. Steps:

1. **Window** (:mod:`~ichpipe.pipeline.datasets.phe_sich.phe_window`): the width from the grey levels'
   quantisation (W120 exactly on the shipped data), the level from tissue anchors (L40 +- 2.3 HU).
2. **Labels** (:mod:`~ichpipe.pipeline.datasets.phe_sich.phe_labels`): inside each VOC box, the
   hyperdense pixels above the patient's parenchyma/clot midpoint (derivation A), compared with
   the interior of the perihematomal-oedema ring (B) for a per-slice confidence and per-pixel
   ignore mask. These are *derived* labels, not reference segmentations.
   With a teacher (``--phe-teacher DIR``), the training patients' labels become the teacher's
   masks constrained by the boxes (:mod:`~ichpipe.pipeline.datasets.phe_sich.phe_teacher`).
3. **Split** (:mod:`~ichpipe.pipeline.datasets.phe_sich.phe_split`): size-stratified, patient level
   (13 of 51 patients to validation with the defaults), and a role per slice. ``holdout`` training
   patients become the validation split for model selection, the drawn validation patients ``test``.
4. **Writing** (:func:`write_phe_dataset`): slices re-windowed to the network's window and turned
   anterior-up, labels, ignore masks, per-slice weights, ``manifest.csv`` with two cases per
   patient (``phe-PPPP-pos``: its positive slices, sampling group ``phe-sich-pos``;
   ``phe-PPPP-neg``: its negative slices, all kept in training, group ``phe-sich-neg``), and
   ``slices.csv`` / ``build_report.json`` / ``dataset.json`` describing every decision.

Output layout (``OUT``)::

    manifest.csv  dataset.json  build_report.json  slices.csv
    images/PPPP/{pos,neg}/PPPP_SS.png   labels/PPPP/{pos,neg}/PPPP_SS.png
    ignore/PPPP/pos/PPPP_SS.png         weights/PPPP-{pos,neg}.csv
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from ichpipe.atomic import atomic_write
from ichpipe.dicom_io.window import WindowPreset
from ichpipe.errors import DicomInputError, UsageError
from ichpipe.pipeline.datasets.manifest import ManifestEntry, Split, write_manifest
from ichpipe.pipeline.datasets.phe_sich.phe_labels import LabelConfig, SliceLabel, label_patient, summarise
from ichpipe.pipeline.datasets.phe_sich.phe_reader import DEFAULT_PHE_DIR, PheSlice, list_patients, list_slices
from ichpipe.pipeline.datasets.phe_sich.phe_split import patient_sizes, slice_role, stratified_patient_split
from ichpipe.pipeline.datasets.phe_sich.phe_teacher import TeacherConfig, load_teacher_masks, teacher_labels
from ichpipe.pipeline.datasets.phe_sich.phe_window import (
    QuantisationFit,
    estimate_window,
    fit_quantisation,
    measure_anchors,
    occupied_levels,
    rewindow,
)

__all__ = ["ROTATE_K", "TARGET_WINDOW", "PheDataset", "build_phe_dataset", "write_phe_dataset"]

#: Quarter turns applied to every written image: the PHE PNGs have anterior to the left.
ROTATE_K = -1

#: The window the slices are re-expressed in by default: the shipped network's brain window.
TARGET_WINDOW = WindowPreset(width=80.0, level=40.0)


@dataclass(frozen=True)
class PheDataset:
    """What :func:`build_phe_dataset` wrote.

    Attributes
    ----------
    manifest:
        The manifest CSV.
    window:
        The estimated window of the PNGs (W, L) and its level's standard deviation.
    roles:
        Slices per split and role.
    patients:
        Patient IDs per split.
    """

    manifest: Path
    window: tuple[float, float, float]
    roles: Mapping[str, Mapping[str, int]]
    patients: Mapping[str, tuple[str, ...]]


def _save_png(path: Path, array: npt.NDArray[np.uint8]) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: fh.write(data), what="PNG slice")


def _save_text(path: Path, text: str, what: str) -> None:
    data = text.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: fh.write(data), what=what)


def write_phe_dataset(
    out_dir: Path,
    slices: Sequence[PheSlice],
    labels: Sequence[SliceLabel],
    split: Mapping[str, Split],
    *,
    fit: QuantisationFit,
    source_window: WindowPreset,
    target_window: WindowPreset,
    min_confidence: float = 0.25,
) -> tuple[Path, dict[str, dict[str, int]]]:
    """Write the re-windowed slices, labels, ignore masks, weights, ``manifest.csv`` and ``slices.csv``.

    Each written slice also gets its neighbours in the patient's stack
    (``neighbours/PPPP/pos|neg/below|above/``, the slice itself at the stack's ends; manifest
    column ``neighbours``), for 2.5D training.

    Positive slices weigh their label confidence; negative slices 1 (``negative``) or the
    labels' ``adjacent_confidence`` (``unboxed-adjacent``); ``drop`` and ``ignore`` slices are
    not written. Returns the manifest path and the slice counts per split and role.

    Raises
    ------
    ValueError
        If ``slices`` and ``labels`` differ, or a patient has no split.
    """
    if len(slices) != len(labels) or any(s.name != lab.name for s, lab in zip(slices, labels, strict=False)):
        raise ValueError("Arguments 'slices' and 'labels' must describe the same slices in the same order.")
    missing = sorted({s.patient_id for s in slices} - set(split))
    if missing:
        raise ValueError(f"Argument 'split' has no split for patient(s) {', '.join(missing)}.")
    rows: list[dict[str, object]] = []
    weights: dict[tuple[str, str], list[tuple[str, float]]] = {}
    roles: dict[str, dict[str, int]] = {}
    with_ignore: set[tuple[str, str]] = set()
    by_position = {(s.patient_id, s.index): s for s in slices}

    @lru_cache(maxsize=4)  # slices come in stack order: each is read and re-windowed once, not three times
    def network_grey(position: tuple[str, int]) -> npt.NDArray[np.uint8]:
        return rewindow(by_position[position].image(), fit, source_window, target_window)

    for s, lab in zip(slices, labels, strict=True):
        role = slice_role(lab, min_confidence=min_confidence)
        bucket = roles.setdefault(split[s.patient_id], {})
        bucket[role] = bucket.get(role, 0) + 1
        rows.append({"split": split[s.patient_id], "role": role, **lab.row()})
        if role not in ("positive", "negative"):
            continue
        part = "pos" if role == "positive" else "neg"
        name = f"{s.name}.png"
        here = (s.patient_id, s.index)
        _save_png(out_dir / "images" / s.patient_id / part / name, np.rot90(network_grey(here), ROTATE_K))
        for side, step in (("below", -1), ("above", 1)):  # for 2.5D training: the stack's next slices
            near = (s.patient_id, s.index + step)
            near_grey = network_grey(near if near in by_position else here)
            _save_png(out_dir / "neighbours" / s.patient_id / part / side / name, np.rot90(near_grey, ROTATE_K))
        label = np.rot90((lab.mask * 255).astype(np.uint8), ROTATE_K)
        _save_png(out_dir / "labels" / s.patient_id / part / name, label)
        ignored = lab.weight < 0.5
        if role == "positive" or ignored.any():  # negatives: only where a teacher's blood is ignored
            ignore = ignored.astype(np.uint8) * 255
            _save_png(out_dir / "ignore" / s.patient_id / part / name, np.rot90(ignore, ROTATE_K))
            with_ignore.add((s.patient_id, part))
        weights.setdefault((s.patient_id, part), []).append((name, lab.confidence))
    entries: list[ManifestEntry] = []
    methods = sorted({lab.method for lab in labels if lab.method != "derived"})
    source = (
        f"phe-sich: PHE-SICH-CT-IDS dev PNG, window W{source_window.width:g}/L{source_window.level:g} (estimated)"
        f" re-windowed to W{target_window.width:g}/L{target_window.level:g}, derived labels"
        + (" (teacher pseudo-labels on the training patients)" if methods else "")
    )
    for (pid, part), table in sorted(weights.items()):
        csv_path = out_dir / "weights" / f"{pid}-{part}.csv"
        _save_text(csv_path, "file,weight\n" + "".join(f"{n},{w:.4f}\n" for n, w in table), "slice weights")
        extra = {
            "sampling_group": f"phe-sich-{part}",
            "slice_weights": str(csv_path.resolve()),
            "negatives_per_positive": "all",
            "neighbours": str((out_dir / "neighbours" / pid / part).resolve()),
        }
        if (pid, part) in with_ignore:
            extra["ignore"] = str((out_dir / "ignore" / pid / part).resolve())
        entries.append(
            ManifestEntry(
                case_id=f"phe-{pid}-{part}", patient_id=f"phe-{pid}", split=split[pid], format="png",
                image=(out_dir / "images" / pid / part).resolve(), mask=(out_dir / "labels" / pid / part).resolve(),
                source=source, extra=extra,
            )
        )
    manifest = write_manifest(out_dir / "manifest.csv", entries)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _save_text(out_dir / "slices.csv", buffer.getvalue(), "slice table")
    return manifest, roles


def _hold_out(split: Mapping[str, Split], holdout: Sequence[str]) -> dict[str, Split]:
    """Move ``holdout`` training patients to ``val`` and the drawn validation patients to ``test``."""
    wrong = sorted(p for p in holdout if split.get(p) != "train")
    if wrong:
        raise UsageError(f"Holdout patient(s) {', '.join(wrong)} are not training patients of this split.")
    out: dict[str, Split] = {}
    for pid, part in split.items():
        out[pid] = "val" if pid in holdout else ("test" if part == "val" else part)
    return out


def _apply_teacher(labels: Sequence[SliceLabel], groups: Mapping[str, Sequence[PheSlice]],
                   images: Mapping[str, Sequence[npt.NDArray[np.uint8]]], split: Mapping[str, Split],
                   teacher_dir: Path, config: TeacherConfig) -> list[SliceLabel]:
    """Teacher pseudo-labels for the training patients; the others keep their derived labels."""
    out: list[SliceLabel] = []
    for pid in groups:
        mine = [lab for lab in labels if lab.patient_id == pid]
        if split.get(pid) != "train":
            out += mine
            continue
        path = teacher_dir / f"{pid}.npz"
        if not path.is_file():
            raise UsageError(f"No teacher masks for training patient {pid}: {path} is missing (make them with"
                             " ichpipe evaluate --boxes ... --save-masks).")
        first = images[pid][0]
        teacher = load_teacher_masks(path, shape=(len(mine), int(first.shape[0]), int(first.shape[1])))
        out += teacher_labels(mine, teacher, config=config)
    return out


def build_phe_dataset(
    out_dir: Path,
    *,
    root: Path = DEFAULT_PHE_DIR,
    target_window: WindowPreset = TARGET_WINDOW,
    seed: int = 0,
    block: int = 4,
    min_confidence: float = 0.25,
    label_config: LabelConfig | None = None,
    teacher_dir: Path | None = None,
    teacher_config: TeacherConfig | None = None,
    holdout: Sequence[str] = (),
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> PheDataset:
    """Estimate the window, derive the labels, split by patient and write the dataset (module docstring).

    Parameters
    ----------
    out_dir:
        Output folder; keep it out of the repository (the data may not be copied there).
    root:
        The PHE-SICH folder (``images/``, ``boxes/``, ``oedema_masks/``).
    target_window:
        Window the slices are re-expressed in (the network's: W80/L40).
    seed, block:
        The split's draw (one validation patient per ``block`` patients of similar size).
    min_confidence:
        Boxed slices whose label confidence is lower are dropped.
    label_config:
        Parameters of the label derivations.
    teacher_dir:
        Folder of teacher masks ``PPPP.npz`` (:mod:`phe_teacher`): the labels of the training
        patients become teacher pseudo-labels; every training patient needs a file, and the files
        of other patients are never read.
    teacher_config:
        How teacher masks become labels.
    holdout:
        Training patients kept out of training for model selection: they become the ``val`` split
        (their labels stay derived), and the stratified validation patients become ``test``, so
        neither training nor selection sees them.
    overwrite:
        Replace a dataset written in ``out_dir`` before.
    progress:
        Called with a line per step.

    Raises
    ------
    UsageError
        If ``out_dir`` holds files that are not a dataset, or a dataset without ``overwrite``; if a
        ``holdout`` patient is not a training patient, or a training patient has no teacher file.
    DicomInputError
        If ``root`` is not the PHE-SICH folder, or its grey levels fit no window narrower than 255 HU,
        or a teacher file does not fit its patient's slices.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (out_dir / "manifest.csv").is_file():
            raise UsageError(f"Output folder {out_dir} holds files that are not an ichpipe dataset; choose another.")
        if not overwrite:
            raise UsageError(f"Output folder {out_dir} already holds a dataset; pass --overwrite to replace it.")
        for sub in ("images", "labels", "ignore", "weights"):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
    say = progress or (lambda _line: None)
    slices = list_slices(Path(root))
    groups = list_patients(slices)
    images = {pid: [s.image() for s in ss] for pid, ss in groups.items()}
    fit = fit_quantisation(occupied_levels(im for ims in images.values() for im in ims))
    if fit is None:
        raise DicomInputError(
            f"The grey levels of {root} fit no window narrower than 255 HU; its window cannot be estimated."
        )
    anchors = {}
    for pid, ss in groups.items():
        boxes = []
        for s, grey in zip(ss, images[pid], strict=True):
            mask = None
            for b in s.boxes:
                mask = b.mask(grey.shape) if mask is None else mask | b.mask(grey.shape)
            boxes.append(mask)
        anchors[pid] = measure_anchors(pid, images[pid], boxes, fit)
    estimate = estimate_window(list(anchors.values()), fit, round_to=5.0)
    source = estimate.window
    say(f"window W{estimate.width_hu:g} L{estimate.level_hu:g} (level SD {estimate.level_sd_hu:.1f} HU)")
    labels: list[SliceLabel] = []
    for pid, ss in groups.items():
        labels += label_patient(ss, images[pid], [s.oedema() for s in ss], fit=fit, anchors=anchors[pid],
                                low_hu=source.low, config=label_config or LabelConfig())
    say(f"labels derived for {len(labels)} slices of {len(groups)} patients")
    boxed_sizes = patient_sizes(lab for lab in labels if lab.source in ("box-threshold", "derived-box"))
    unannotated = sorted({lab.patient_id for lab in labels if lab.source == "derived-box"})
    split = stratified_patient_split(boxed_sizes, block=block, seed=seed, force_train=unannotated)
    if holdout:
        split = _hold_out(split, holdout)
    methods: dict[str, int] = {}
    if teacher_dir is not None:
        labels = _apply_teacher(labels, groups, images, split, Path(teacher_dir), teacher_config or TeacherConfig())
        for lab in labels:
            methods[lab.method] = methods.get(lab.method, 0) + 1
        say(f"teacher pseudo-labels from {teacher_dir}: {methods}")
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest, roles = write_phe_dataset(out_dir, slices, labels, split, fit=fit, source_window=source,
                                        target_window=target_window, min_confidence=min_confidence)
    patients: dict[str, tuple[str, ...]] = {
        str(name): tuple(sorted(p for p, v in split.items() if v == name)) for name in sorted(set(split.values()))
    }
    report = {
        "root": str(root),
        "window": {**estimate.to_dict(), "fit_offset": fit.offset, "fit_offset_range": fit.offset_range},
        "anchors_steps": {pid: a.__dict__ for pid, a in anchors.items()},
        "labels": summarise(labels),
        "roles": roles,
        "split": {k: list(v) for k, v in patients.items()},
        "patient_label_px": boxed_sizes,
        "options": {"seed": seed, "block": block, "min_confidence": min_confidence,
                    "target_window": [target_window.width, target_window.level], "holdout": list(holdout)},
        "teacher": None if teacher_dir is None else {
            "dir": str(teacher_dir), "config": asdict(teacher_config or TeacherConfig()), "methods": methods},
    }
    _save_text(out_dir / "build_report.json", json.dumps(report, indent=1, default=float), "build report")
    n_pos = sum(r.get("positive", 0) for r in roles.values())
    n_neg = sum(r.get("negative", 0) for r in roles.values())
    description = (
        f"PHE-SICH-CT-IDS dev subset (real basal-ganglia ICH, {len(groups)} patients, 8-bit PNG; window estimated"
        f" W{estimate.width_hu:g}/L{estimate.level_hu:g}, re-windowed to W{target_window.width:g}/"
        f"L{target_window.level:g}): {n_pos} positive slices with labels derived inside the VOC boxes"
        + (" (training patients: teacher pseudo-labels constrained by the boxes)" if teacher_dir is not None else "")
        + f" (not reference masks; confidence-weighted), {n_neg} negative slices; patient-level split"
        f" {len(patients.get('train', ()))} train / {len(patients.get('val', ()))} validation"
        + (f" / {len(patients['test'])} test" if "test" in patients else "") + "."
    )
    _save_text(out_dir / "dataset.json", json.dumps({"generator": "ichpipe train data --phe-sich",
                                                     "description": description}, indent=1), "dataset card")
    say(f"wrote {manifest}")
    return PheDataset(manifest, (estimate.width_hu, estimate.level_hu, estimate.level_sd_hu), roles, patients)
