"""Box-level scoring of PNG slices with VOC boxes, and agreement of two runs (``evaluate --boxes/--compare``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from click.testing import CliRunner
from PIL import Image

from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.errors import UsageError
from ichpipe.pipeline.datasets.phe_sich.phe_teacher import load_teacher_masks
from ichpipe.pipeline.evaluation.box_slices import (
    PngAssumptions,
    components_outside_boxes,
    list_box_patients,
    pool_scores,
    read_voc_boxes,
    score_patient,
    segment_box_patient,
)

_VOC = """<annotation><filename>{name}</filename>{objects}</annotation>"""
_OBJ = "<object><name>ich</name><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox></object>"


def _dataset(root: Path, blob_slices: dict[str, list[int]], *, n: int = 8, size: int = 64,
             stray: tuple[str, int] | None = None) -> Path:
    """PNG slices (brain-window grey, air outside a round head) with a bright blob where boxed.

    The blob sits in the image's upper-right quadrant of the PNG frame, its box around it; a
    ``stray`` blob (patient, slice) lies far from any box.
    """
    (root / "images").mkdir(parents=True)
    (root / "boxes").mkdir()
    yy, xx = np.mgrid[:size, :size]
    for pid, slices in blob_slices.items():
        for k in range(n):
            img = np.zeros((size, size), np.uint8)
            img[np.hypot(yy - 32, xx - 32) < 28] = 255  # bone
            img[np.hypot(yy - 32, xx - 32) < 25] = 106  # ~30 HU with the window -20..100
            objects = ""
            if k in slices:
                img[14:22, 38:48] = 181  # ~65 HU
                objects = _OBJ.format(36, 12, 49, 23)
            if stray == (pid, k):
                img[40:48, 14:22] = 181
            Image.fromarray(img).save(root / "images" / f"{pid}_{k:02d}.png")
            if objects or k == 0:
                (root / "boxes" / f"{pid}_{k:02d}.xml").write_text(_VOC.format(name=f"{pid}_{k:02d}.jpg",
                                                                               objects=objects))
    return root


class _Above:
    """Stands in for a segmenter: blood where the (assumed) HU is 50-90."""

    name = "above50"

    def segment(self, volume: CTVolume) -> npt.NDArray[np.bool_]:
        return (volume.hu > 50) & (volume.hu < 90)

    def describe(self) -> dict[str, object]:
        return {"name": self.name}


def test_voc_boxes_are_read_and_absent_files_have_none(tmp_path: Path) -> None:
    path = tmp_path / "a.xml"
    path.write_text(_VOC.format(name="a", objects=_OBJ.format(1, 2, 30, 40) + _OBJ.format(5, 6, 7, 8)))
    assert read_voc_boxes(path) == [(1, 2, 30, 40), (5, 6, 7, 8)]
    assert read_voc_boxes(tmp_path / "missing.xml") == []
    path.write_text("<annotation><bndbox><xmin>x</xmin></bndbox></annotation>")
    with pytest.raises(UsageError, match="not a readable Pascal VOC annotation"):
        read_voc_boxes(path)


def test_components_outside_boxes_counts_only_large_components_with_no_pixel_in_a_box() -> None:
    m = np.zeros((30, 30), bool)
    m[0:8, 0:8] = True  # 64 px, outside
    m[20:22, 20:22] = True  # 4 px, outside but small
    m[10:18, 10:18] = True  # touches the box
    assert components_outside_boxes(m, [(15, 15, 25, 25)], min_component_px=10) == 1
    assert components_outside_boxes(m, [], min_component_px=1) == 3
    with pytest.raises(ValueError, match="'min_component_px' must be at least 1"):
        components_outside_boxes(m, [], min_component_px=0)


def test_patient_scores_follow_the_boxes_through_the_rotation(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "d", {"0001": [3, 4, 5], "0002": [2]}, stray=("0002", 7))
    patients = list_box_patients(root)
    assert [p.patient_id for p in patients] == ["0001", "0002"]
    assert patients[0].boxes[3] == ((36, 12, 49, 23),) and patients[0].boxes[0] == ()
    scores = [segment_box_patient(p, _Above(), PngAssumptions(rotate=-1)) for p in patients]
    first, second = scores
    assert (first.hits.events, first.hits.total) == (3, 3)
    assert (first.end_hits.events, first.end_hits.total) == (2, 2)  # slices 3 and 5 end the run; 4 does not
    assert first.fp_components_all == 0 and first.fp_slices.events == 0
    # 8 slices, boxed slice 2: negatives at distance >= 3 are 5, 6, 7; the stray blob is on 7
    assert (second.fp_slices.events, second.fp_slices.total) == (1, 3)
    assert second.fp_components_all == 1 and second.fp_components_boxed == 0
    pooled = pool_scores(scores)
    assert (pooled.hits.events, pooled.hits.total) == (4, 4) and pooled.n_slices == 16
    assert (pooled.end_hits.events, pooled.end_hits.total) == (3, 3)  # a one-slice run is its own end
    # the blob is 80 px x 0.45^2 mm^2 x 5 mm per boxed slice
    assert first.predicted_ml == pytest.approx(3 * 80 * 0.45**2 * 5 / 1000)
    # masks are turned back to the PNG frame: the segmenter saw the blob a quarter turn away
    seen: list[np.ndarray] = []
    segment_box_patient(patients[0], _Above(), PngAssumptions(rotate=-1), on_masks=lambda p, m: seen.append(m))
    assert seen[0][3, 14:22, 38:48].all() and seen[0].sum() == 240
    # a box the segmenter misses on a run's end slice counts against both rates
    missed = score_patient([m if k != 5 else np.zeros_like(m) for k, m in enumerate(seen[0])], patients[0],
                           segmenter="x")
    assert (missed.hits.events, missed.end_hits.events, missed.end_hits.total) == (2, 1, 2)
    with pytest.raises(UsageError, match="No slices of patient"):
        list_box_patients(root, patients=["0003"])


def test_cli_boxes_and_modes(tmp_path: Path) -> None:
    from ichpipe.pipeline.cli import cli as main

    root = _dataset(tmp_path / "d", {"0001": [3]})
    runner = CliRunner()
    result = runner.invoke(main, ["evaluate", "--boxes", str(root), "--segmenter", "threshold", "--json",
                                  "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["type"] == "iph" and payload["assumptions"]["window_hu"] == [-20.0, 100.0]
    assert payload["scores"][0]["hits"]["total"] == 1
    assert (tmp_path / "o" / "boxes.md").is_file()
    assert not (tmp_path / "o" / "masks").exists()
    result = runner.invoke(main, ["evaluate", "--boxes", str(root), "--segmenter", "threshold", "--json",
                                  "--out", str(tmp_path / "m"), "--save-masks"])
    assert result.exit_code == 0, result.output
    score = json.loads(result.stdout)["scores"][0]
    masks = load_teacher_masks(tmp_path / "m" / "masks" / "threshold" / "0001.npz", shape=(8, 64, 64))
    assert masks.sum() * 0.45**2 * 5 / 1000 == pytest.approx(score["predicted_ml"])  # the scored masks, PNG frame
    assert masks[3, 12:24, 36:50].sum() >= 20 * score["hits"]["events"]
    result = runner.invoke(main, ["evaluate", "--boxes", str(root), "--segmenter", "threshold", "--save-masks"])
    assert result.exit_code != 0 and "--save-masks needs --out DIR" in result.output
    result = runner.invoke(main, ["evaluate", "--boxes", str(root), "--data", str(tmp_path / "m.csv")])
    assert result.exit_code == 2 and "exactly one of --data" in result.output
    result = runner.invoke(main, ["evaluate", "--boxes", str(root), "--segmenter", "blast_ct"])
    assert result.exit_code != 0 and "--blast-weights DIR" in result.output


def test_compare_two_runs_reads_their_masks_and_measures_both(
    make_series: Callable[..., Path], tmp_path: Path
) -> None:
    from ichpipe.pipeline.cli import cli as main

    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 32, xx - 32)

    def hu(i: int) -> np.ndarray:
        img = np.full((64, 64), -1000.0)
        img[r < 29] = 1000.0
        img[r < 25] = 35.0
        if 3 <= i <= 8:
            img[np.hypot(yy - 32, xx - 36) < 8] = 70.0
            img[np.hypot(yy - 32, xx - 36) < 4] = 56.0
        return img

    study = make_series(size=64, hu=hu)
    store = f"store:\n  path: {tmp_path / 's.sqlite'}\n"
    wide = tmp_path / "wide.yaml"
    wide.write_text(store)
    cfg = tmp_path / "narrow.yaml"
    cfg.write_text(store + "threshold:\n  blood_hu: [60.0, 90.0]\n")
    runner = CliRunner()
    reports = []
    for name, config in (("wide", wide), ("narrow", cfg)):
        res = runner.invoke(main, ["run", "--study", str(study), "--out", str(tmp_path / name), "--segmenter",
                                   "threshold", "--json", "--config", str(config)])
        assert res.exit_code == 0, res.output
        report = json.loads(res.stdout[res.stdout.index("{"):])
        reports.append((Path(report["outputs"]["report"]), report["hematoma"]["volume_ml"]))
    res = runner.invoke(main, ["evaluate", "--compare", str(reports[0][0]), "--compare", str(reports[1][0]),
                               "--type", "iph", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["a_ml"] == pytest.approx(reports[0][1], abs=1e-6)
    assert out["b_ml"] == pytest.approx(reports[1][1], abs=1e-6)
    assert out["difference_ml"] == pytest.approx(reports[0][1] - reports[1][1], abs=1e-6)
    assert 0.0 <= out["dice"] <= 1.0 and out["case_type"] == "iph"
    res = runner.invoke(main, ["evaluate", "--compare", str(reports[0][0]), "--type", "iph"])
    assert res.exit_code == 2 and "exactly two report.json" in res.output
