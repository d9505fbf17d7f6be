"""PHE-SICH: patient-level split, slice roles, and a dataset the PNG reader and the trainer accept."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from phe_support import WINDOW, to_png, write_cohort, write_patient
from PIL import Image

from ichpipe.dicom_io.window import WindowPreset
from ichpipe.errors import UsageError
from ichpipe.pipeline.datasets import load_case
from ichpipe.pipeline.datasets.manifest import read_manifest
from ichpipe.pipeline.datasets.phe_sich.phe_build import ROTATE_K, build_phe_dataset, write_phe_dataset
from ichpipe.pipeline.datasets.phe_sich.phe_labels import label_patient
from ichpipe.pipeline.datasets.phe_sich.phe_reader import list_patients, list_slices
from ichpipe.pipeline.datasets.phe_sich.phe_split import slice_role, stratified_patient_split
from ichpipe.pipeline.datasets.phe_sich.phe_window import fit_quantisation, measure_anchors, occupied_levels, rewindow


def test_split_is_stratified_deterministic_and_keeps_forced_patients_in_training():
    sizes = {f"p{i:02d}": float(i * i) for i in range(51)}
    split = stratified_patient_split(sizes, block=4, seed=0, force_train=["p05"])
    again = stratified_patient_split(sizes, block=4, seed=0, force_train=["p05"])
    assert split == again
    val = sorted(p for p, v in split.items() if v == "val")
    assert 12 <= len(val) <= 13
    assert split["p05"] == "train"
    order = sorted(sizes, key=sizes.get)
    for start in range(0, 48, 4):  # every full block of similar size gives one validation patient
        assert sum(split[p] == "val" for p in order[start : start + 4]) == 1
    other = stratified_patient_split(sizes, block=4, seed=1)
    assert other != split
    with pytest.raises(ValueError, match="block"):
        stratified_patient_split(sizes, block=1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("phe")
    write_patient(root, "0001", seed=1)
    write_patient(root, "0002", seed=2)
    slices = list_slices(root)
    groups = list_patients(slices)
    ramp = to_png(np.arange(-300, 300, dtype=np.float32).reshape(20, 30))
    fit = fit_quantisation(occupied_levels([*(s.image() for s in slices), ramp]))
    assert fit is not None
    labels = []
    for pid, ss in groups.items():
        images = [s.image() for s in ss]
        boxes = [s.boxes[0].mask(images[0].shape) if s.boxes else None for s in ss]
        anchors = measure_anchors(pid, images, boxes, fit, min_area_px=5000)
        labels += label_patient(ss, images, [s.oedema() for s in ss], fit=fit, anchors=anchors, low_hu=WINDOW.low)
    out = tmp_path_factory.mktemp("out")
    manifest, _roles = write_phe_dataset(out, slices, labels, {"0001": "train", "0002": "val"}, fit=fit,
                                        source_window=WINDOW, target_window=WindowPreset(width=80.0, level=40.0))
    return manifest, labels, out, slices, fit


def test_roles_follow_the_label_sources(dataset):
    _, labels, _, _, _ = dataset
    roles = {lab.name: slice_role(lab) for lab in labels}
    assert roles["0001_04"] == "positive" and roles["0001_05"] == "positive"
    assert roles["0001_06"] == "drop"  # boxed, nothing hyperdense: never a negative
    assert roles["0001_03"] == "ignore"  # blood beyond the boxed run
    assert roles["0001_00"] == "ignore"  # blank
    assert roles["0001_01"] == "negative" and roles["0001_07"] == "negative"
    with pytest.raises(ValueError, match="min_confidence"):
        slice_role(labels[0], min_confidence=2.0)


def test_manifest_cases_carry_weights_and_ignore_masks(dataset):
    manifest_path, labels, out, _, _ = dataset
    manifest = read_manifest(manifest_path)
    assert manifest.patients("train") == ("phe-0001",) and manifest.patients("val") == ("phe-0002",)
    by_id = {e.case_id: e for e in manifest.entries}
    pos, neg = by_id["phe-0001-pos"], by_id["phe-0001-neg"]
    assert pos.extra["sampling_group"] == "phe-sich-pos" and neg.extra["sampling_group"] == "phe-sich-neg"
    assert neg.extra["negatives_per_positive"] == "all" and not neg.extra.get("ignore")
    assert pos.source.startswith("phe-sich:")
    names = sorted(p.name for p in pos.image.iterdir()) + sorted(p.name for p in neg.image.iterdir())
    assert "0001_06.png" not in names and "0001_03.png" not in names and "0001_00.png" not in names
    case = load_case(pos)
    assert case.ignore is not None and case.slice_weight is not None
    assert case.mask.reshape(case.mask.shape[0], -1).all(axis=1).sum() == 0
    assert case.mask.reshape(case.mask.shape[0], -1).any(axis=1).all()  # every positive slice has a label
    confidence = {lab.name: lab.confidence for lab in labels}
    files = sorted(p.name for p in pos.image.iterdir())
    np.testing.assert_allclose(case.slice_weight, [confidence[f[:-4]] for f in files], atol=1e-4)
    assert case.ignore.any() and not (case.ignore.all(axis=(1, 2))).any()  # edge bands, never whole slices
    negatives = load_case(neg)
    assert not negatives.mask.any() and negatives.ignore is None
    assert negatives.slice_weight is not None
    assert set(np.round(negatives.slice_weight.astype(float), 3).tolist()) == {1.0, 0.7}  # far and adjacent
    # re-windowed to W80/L40: brain at 30 HU is grey 96 there (it was 106 in W120/L40)
    grey = np.asarray(Image.open(neg.image / "0001_01.png"))
    turned = np.rot90(grey, 1)  # written turned clockwise (anterior up); undo it to index the source frame
    assert abs(float(np.median(turned[180:220, 100:160])) - 96.0) <= 3.0
    label = np.rot90(np.asarray(Image.open(pos.mask / "0001_04.png")), 1)
    assert label[95, 175] == 255  # the clot's centre in the source frame
    with (out / "slices.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 20 and {r["role"] for r in rows} == {"positive", "negative", "drop", "ignore"}


def test_written_slices_carry_their_stack_neighbours_for_2p5d_training(dataset):
    manifest_path, _, _, slices, fit = dataset
    pos = {e.case_id: e for e in read_manifest(manifest_path).entries}["phe-0001-pos"]
    case = load_case(pos)
    assert case.neighbours is not None and case.neighbours.shape == (case.image.shape[0], 2, *case.image.shape[1:])
    files = sorted(p.name for p in pos.image.iterdir())
    k = files.index("0001_04.png")
    # 0001_05 is written too (a positive): the slice above 0001_04 is exactly that image
    np.testing.assert_array_equal(case.neighbours[k, 1], case.image[files.index("0001_05.png")])
    # the slice below, 0001_03, is not written (ignored), yet it is there as a neighbour, re-windowed like the rest
    source = {s.name: s for s in slices}["0001_03"]
    below = np.rot90(rewindow(source.image(), fit, WINDOW, WindowPreset(width=80.0, level=40.0)), ROTATE_K)
    np.testing.assert_array_equal(case.neighbours[k, 0], below.astype(np.float32))
    assert not np.array_equal(case.neighbours[k, 0], case.image[k])
    # at the stack's ends the slice is its own neighbour
    neg_entry = {e.case_id: e for e in read_manifest(manifest_path).entries}["phe-0001-neg"]
    neg = load_case(neg_entry)
    top = sorted(p.name for p in neg_entry.image.iterdir()).index("0001_09.png")
    assert neg.neighbours is not None
    np.testing.assert_array_equal(neg.neighbours[top, 1], neg.image[top])


def test_build_writes_the_dataset_from_the_folder_and_refuses_to_overwrite(tmp_path):
    root = tmp_path / "phe"
    write_cohort(root)
    out = tmp_path / "out"
    result = build_phe_dataset(out, root=root, block=4, seed=0)
    assert result.window[0] == pytest.approx(120.0)
    assert abs(result.window[1] - 40.0) <= 5.0
    assert len(result.patients["val"]) == 2 and len(result.patients["train"]) == 6
    manifest = read_manifest(result.manifest)
    assert {e.patient_id for e in manifest.split("val")} == {f"phe-{p}" for p in result.patients["val"]}
    assert (out / "dataset.json").is_file() and (out / "build_report.json").is_file()
    with pytest.raises(UsageError, match="overwrite"):
        build_phe_dataset(out, root=root)
    again = build_phe_dataset(out, root=root, overwrite=True)
    assert again.patients == result.patients


def test_write_refuses_a_patient_without_split(dataset):
    _, labels, out, slices, fit = dataset
    with pytest.raises(ValueError, match="0002"):
        write_phe_dataset(out / "again", slices, labels, {"0001": "train"}, fit=fit, source_window=WINDOW,
                          target_window=WINDOW)
    with pytest.raises(ValueError, match="same slices"):
        write_phe_dataset(out / "again", slices[:-1], labels, {"0001": "train", "0002": "val"}, fit=fit,
                          source_window=WINDOW, target_window=WINDOW)


def test_phe_window_re_expresses_the_slices_in_another_networks_window(tmp_path):
    from click.testing import CliRunner

    from ichpipe.pipeline.cli import cli as main

    root = tmp_path / "phe"
    write_cohort(root)
    runner = CliRunner()
    greys = {}
    for preset in ("brain", "extra_axial"):
        out = tmp_path / preset
        result = runner.invoke(main, ["train", "data", "--phe-sich", str(root), "--out", str(out), "--seed", "0",
                                      "--phe-window", preset])
        assert result.exit_code == 0, result.output
        entry = next(e for e in read_manifest(out / "manifest.csv").entries if e.case_id.endswith("-pos"))
        case = load_case(entry)
        greys[preset] = float(np.median(case.image[case.mask.astype(bool)]))  # the 65 HU clots
        assert ("W120/L50" in entry.source) == (preset == "extra_axial")
    # 65 HU: (65 - 0) / 80 * 255 = 207 in W80/L40; (65 + 10) / 120 * 255 = 159 in W120/L50
    assert greys["brain"] == pytest.approx(207, abs=8)
    assert greys["extra_axial"] == pytest.approx(159, abs=8)
    bad = runner.invoke(main, ["train", "data", "--phe-sich", str(root), "--out", str(tmp_path / "bad"),
                               "--phe-window", "lung"])
    assert bad.exit_code != 0 and "--phe-window must be one of the window presets" in bad.output
    alone = runner.invoke(main, ["train", "data", "--out", str(tmp_path / "x"), "--phe-window", "extra_axial"])
    assert alone.exit_code != 0 and "go with --phe-sich DIR" in alone.output
