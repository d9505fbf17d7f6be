"""Teacher pseudo-labels for PHE-SICH (phe_teacher) on synthetic slices with a fake teacher (no real weights)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from phe_support import WINDOW, to_png, write_cohort, write_patient

from ichpipe.errors import DicomInputError, UsageError
from ichpipe.pipeline.cli import cli as main
from ichpipe.pipeline.datasets import load_case
from ichpipe.pipeline.datasets.manifest import read_manifest
from ichpipe.pipeline.datasets.phe_sich.phe_build import build_phe_dataset
from ichpipe.pipeline.datasets.phe_sich.phe_labels import label_patient
from ichpipe.pipeline.datasets.phe_sich.phe_reader import list_patients, list_slices
from ichpipe.pipeline.datasets.phe_sich.phe_split import slice_role
from ichpipe.pipeline.datasets.phe_sich.phe_teacher import (
    TeacherConfig,
    load_teacher_masks,
    save_teacher_masks,
    teacher_label,
    teacher_labels,
)
from ichpipe.pipeline.datasets.phe_sich.phe_window import fit_quantisation, measure_anchors, occupied_levels

YY, XX = np.indices((256, 256))
STRAY = np.hypot(YY - 180, XX - 60) < 6  # far from the box (150..200, 70..120)
STRIP = (YY >= 93) & (YY <= 97) & (XX >= 175) & (XX <= 235)  # leaves the box (x1 200) and its 10 px margin


def _teacher(truth: dict[int, np.ndarray], n: int) -> np.ndarray:
    """A fake teacher: the true clot on slices 4 and 6 (not 5), a stray blob on 4 and 8, a strip leaving the box."""
    out = np.zeros((n, 256, 256), dtype=bool)
    out[4] = truth[4] | STRAY | STRIP
    out[6] = truth[6]  # the isodense clot the threshold cannot see
    out[8] = STRAY  # blood on a slice the annotators did not box
    return out


@pytest.fixture(scope="module")
def derived(tmp_path_factory):
    root = tmp_path_factory.mktemp("phe")
    truth = write_patient(root, "0001", seed=1)
    slices = list_slices(root)
    ss = list_patients(slices)["0001"]
    images = [s.image() for s in ss]
    ramp = to_png(np.arange(-300, 300, dtype=np.float32).reshape(20, 30))
    fit = fit_quantisation(occupied_levels([*images, ramp]))
    assert fit is not None
    boxes = [s.boxes[0].mask(images[0].shape) if s.boxes else None for s in ss]
    anchors = measure_anchors("0001", images, boxes, fit, min_area_px=5000)
    labels = label_patient(ss, images, [s.oedema() for s in ss], fit=fit, anchors=anchors, low_hu=WINDOW.low)
    return labels, truth


def test_boxed_slice_takes_the_teacher_components_touching_the_box(derived):
    labels, truth = derived
    out = teacher_labels(labels, _teacher(truth, len(labels)))
    lab = out[4]
    assert lab.method == "teacher" and lab.teacher_px == int((truth[4] | STRAY | STRIP).sum())
    assert lab.mask[truth[4]].all()  # the clot is the label
    assert not (lab.mask & STRAY).any() and (lab.weight[STRAY] == 0).all()  # blood outside the box: ignored
    assert lab.mask[95, 210] and not lab.mask[95, 211:].any()  # kept up to the grown box only
    assert (lab.weight[STRIP & (XX > 211)] == 0).all()  # ... and ignored beyond it
    assert (lab.weight[labels[4].mask & ~lab.mask] == 0).all()  # hyperdense but not the teacher's: ignored
    assert lab.weight[30, 30] == 1.0 and lab.weight[95, 175] == 1.0  # background and the clot's core count
    assert 0.5 < lab.confidence <= 1.0 and 0.5 < lab.teacher_agreement <= 1.0
    assert slice_role(lab) == "positive"


def test_isodense_clot_seen_only_by_the_teacher_becomes_a_positive_slice(derived):
    labels, truth = derived
    assert slice_role(labels[6]) == "drop"  # the threshold finds nothing
    lab = teacher_labels(labels, _teacher(truth, len(labels)))[6]
    assert (lab.mask == truth[6]).all() and lab.confidence == pytest.approx(0.5)
    assert np.isnan(lab.teacher_agreement) and slice_role(lab) == "positive"


def test_teacher_missing_the_box_keeps_the_derived_label_at_lower_confidence(derived):
    labels, truth = derived
    lab = teacher_labels(labels, _teacher(truth, len(labels)))[5]
    assert lab.method == "teacher-fallback" and lab.teacher_px == 0
    assert (lab.mask == labels[5].mask).all()
    assert lab.confidence == pytest.approx(0.5 * labels[5].confidence)
    strict = teacher_label(labels[5], np.zeros((256, 256), bool), config=TeacherConfig(fallback_weight=0.0))
    assert strict.confidence == 0.0 and slice_role(strict) == "drop"


def test_unboxed_slice_stays_negative_and_ignores_the_teacher_blood(derived):
    labels, truth = derived
    out = teacher_labels(labels, _teacher(truth, len(labels)))
    lab = out[8]
    assert slice_role(lab) == "negative" and not lab.mask.any()
    assert (lab.weight[STRAY] == 0).all() and lab.weight[30, 30] == 1.0
    assert (out[1].weight == 1).all() and out[1].method == "teacher"  # nothing there: nothing ignored
    assert slice_role(out[3]) == "ignore"  # left out before, still left out


def test_teacher_arguments_are_checked(derived, tmp_path):
    labels, _ = derived
    with pytest.raises(ValueError, match="one mask per slice"):
        teacher_labels(labels, np.zeros((3, 256, 256), bool))
    with pytest.raises(ValueError, match="'teacher' must have the label's shape"):
        teacher_label(labels[4], np.zeros((10, 10), bool))
    with pytest.raises(ValueError, match="agreement_floor"):
        TeacherConfig(agreement_floor=1.5)
    with pytest.raises(ValueError, match="box_margin_px"):
        TeacherConfig(box_margin_px=-1)
    masks = np.zeros((2, 5, 13), bool)
    masks[1, 2, 3:11] = True
    save_teacher_masks(tmp_path / "p.npz", masks)
    assert (load_teacher_masks(tmp_path / "p.npz", shape=(2, 5, 13)) == masks).all()
    with pytest.raises(DicomInputError, match="the patient's slices are"):
        load_teacher_masks(tmp_path / "p.npz", shape=(3, 5, 13))
    np.savez(tmp_path / "q.npz", other=np.zeros(3))
    with pytest.raises(DicomInputError, match="not a teacher-mask file"):
        load_teacher_masks(tmp_path / "q.npz", shape=(2, 5, 13))
    with pytest.raises(ValueError, match="'masks' must be"):
        save_teacher_masks(tmp_path / "r.npz", np.zeros((5, 13)))


def test_build_with_teacher_and_holdout(tmp_path):
    root = tmp_path / "phe"
    truth = write_cohort(root)
    plain = build_phe_dataset(tmp_path / "plain", root=root, block=4, seed=0)
    train, val = list(plain.patients["train"]), list(plain.patients["val"])
    held = train[0]
    teachers = tmp_path / "teacher"
    for pid in train[1:]:
        save_teacher_masks(teachers / f"{pid}.npz", _teacher(truth[pid], 11 if pid == "0001" else 10))
    for pid in [held, *val]:  # never read: not training patients
        (teachers / f"{pid}.npz").write_bytes(b"not a teacher file")
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(main, ["train", "data", "--phe-sich", str(root), "--out", str(out), "--seed", "0",
                                  "--phe-teacher", str(teachers), "--phe-holdout", held, "--json"])
    assert result.exit_code == 0, result.output
    patients = json.loads(result.stdout)["patients"]
    assert patients["val"] == [held] and patients["test"] == val
    assert set(patients["train"]) == set(train[1:])
    manifest = read_manifest(out / "manifest.csv")
    assert {e.patient_id for e in manifest.split("test")} == {f"phe-{p}" for p in val}
    with (out / "slices.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    methods = {r["method"] for r in rows if r["patient_id"] in train[1:]}
    assert methods == {"teacher", "teacher-fallback"}
    assert {r["method"] for r in rows if r["patient_id"] not in train[1:]} == {"derived"}
    by_id = {e.case_id: e for e in manifest.entries}
    neg = load_case(by_id[f"phe-{train[1]}-neg"])  # slice 8's stray teacher blob is ignored, not background
    assert neg.ignore is not None and neg.ignore.any() and not neg.mask.any()
    assert not by_id[f"phe-{held}-neg"].extra.get("ignore")
    (teachers / f"{train[1]}.npz").unlink()
    with pytest.raises(UsageError, match=f"No teacher masks for training patient {train[1]}"):
        build_phe_dataset(out, root=root, block=4, seed=0, teacher_dir=teachers, holdout=[held], overwrite=True)
    with pytest.raises(UsageError, match="not training patients"):
        build_phe_dataset(out, root=root, block=4, seed=0, holdout=[val[0]], overwrite=True)
    result = runner.invoke(main, ["train", "data", "--out", str(tmp_path / "x"), "--phe-teacher", str(teachers)])
    assert result.exit_code != 0 and "go with --phe-sich DIR" in result.output
