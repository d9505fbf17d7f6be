"""Evaluation metrics on hand-computed masks, per-case and summary results, the Markdown tables."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt
import pytest

from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.dicom_io.window import WindowPreset
from ichpipe.pipeline.datasets.manifest import ManifestEntry
from ichpipe.pipeline.evaluation import (
    ABC2_REFERENCE,
    EvaluatedSegmenter,
    cases_csv,
    dice_iou,
    evaluate_cases,
    markdown_tables,
    relative_volume_difference,
    summarise,
    summary_csv,
    volume_errors,
)


def test_dice_iou_by_hand() -> None:
    truth = np.zeros((2, 4, 4), dtype=bool)
    truth[0, :2, :2] = True  # 4 voxels
    pred = np.zeros_like(truth)
    pred[0, :2, 1:3] = True  # 4 voxels, 2 shared
    assert dice_iou(pred, truth) == pytest.approx((2 * 2 / 8, 2 / 6))
    assert dice_iou(truth, truth) == (1.0, 1.0)
    empty = np.zeros_like(truth)
    assert dice_iou(empty, empty) == (1.0, 1.0)
    assert dice_iou(empty, truth) == (0.0, 0.0)
    with pytest.raises(ValueError, match="prediction"):
        dice_iou(pred.astype(np.uint8), truth)
    with pytest.raises(ValueError, match="one shape"):
        dice_iou(pred[0], truth)


def test_rvd_and_volume_errors_by_hand() -> None:
    assert relative_volume_difference(12.0, 10.0) == pytest.approx(0.2)
    assert relative_volume_difference(8.0, 10.0) == pytest.approx(0.2)
    assert math.isnan(relative_volume_difference(1.0, 0.0))
    with pytest.raises(ValueError, match="predicted_ml"):
        relative_volume_difference(-1.0, 2.0)
    rmse, mae = volume_errors([12.0, 7.0, 10.0], [10.0, 10.0, 10.0])
    assert rmse == pytest.approx(math.sqrt((4 + 9 + 0) / 3)) and mae == pytest.approx(5 / 3)
    assert all(math.isnan(v) for v in volume_errors([], []))


class _FixedSegmenter:
    """Returns a given mask per case (found by the volume's shape)."""

    name = "fixed"

    def __init__(self, masks: dict[tuple[int, ...], npt.NDArray[np.bool_]]) -> None:
        self.masks = masks

    def segment(self, volume: CTVolume) -> npt.NDArray[np.bool_]:
        return self.masks[volume.hu.shape]

    def describe(self) -> dict[str, Any]:
        return {"name": "fixed", "checkpoint_sha256": None, "version": "test"}


def _nifti_case(folder: Path, name: str, mask: np.ndarray) -> ManifestEntry:
    # 1 x 1 mm pixels, 2 mm slices: a voxel is 0.002 mL
    affine = np.diag([-1.0, -1.0, 2.0, 1.0])
    for suffix, data in (("", np.where(mask, 70, 30).astype(np.int16)), ("_mask", mask.astype(np.uint8))):
        img = nib.Nifti1Image(np.ascontiguousarray(data.transpose(2, 1, 0)), affine)
        img.set_sform(affine, code=1)
        nib.save(img, folder / f"{name}{suffix}.nii.gz")
    return ManifestEntry(
        case_id=name, patient_id=name, split="test", format="nifti", image=folder / f"{name}.nii.gz",
        mask=folder / f"{name}_mask.nii.gz", source="phantom:test",
    )


def test_evaluate_cases_scores_known_masks(tmp_path: Path) -> None:
    truth_a = np.zeros((4, 8, 8), dtype=bool)
    truth_a[1:3, 2:4, 2:4] = True  # 8 voxels = 0.016 mL
    pred_a = truth_a.copy()
    pred_a[3, 2:4, 2:4] = True  # + 4 voxels
    truth_b = np.zeros((3, 8, 8), dtype=bool)
    truth_b[1, 4:6, 4:6] = True  # 4 voxels = 0.008 mL
    pred_b = np.zeros_like(truth_b)  # missed
    entries = [_nifti_case(tmp_path, "a", truth_a), _nifti_case(tmp_path, "b", truth_b)]
    row = EvaluatedSegmenter("fixed", _FixedSegmenter({(4, 8, 8): pred_a, (3, 8, 8): pred_b}), None, {})
    results = evaluate_cases(entries, [row], window=WindowPreset(80, 40))
    a, b = results
    assert (a.dice, a.iou, a.rvd) == pytest.approx((16 / 20, 8 / 12, 0.5))
    assert (a.true_ml, a.predicted_ml) == pytest.approx((0.016, 0.024))
    assert (b.dice, b.iou, b.rvd, b.predicted_ml) == pytest.approx((0.0, 0.0, 1.0, 0.0))
    assert b.abc2_ml == 0.0 and b.true_abc2_ml > 0.0

    summary = summarise(results, by_source=True)
    overall = next(r for r in summary if r.model == "fixed" and r.group == "all")
    assert overall.n_cases == 2
    assert (overall.dice, overall.iou, overall.rvd) == pytest.approx((0.4, (8 / 12) / 2, 0.75))
    assert (overall.rmse_ml, overall.mae_ml, overall.bias_ml) == pytest.approx((0.008, 0.008, 0.0))
    reference = next(r for r in summary if r.model == ABC2_REFERENCE and r.group == "all")
    assert reference.n_cases == 2 and math.isnan(reference.dice)
    assert {r.group for r in summary} == {"all", "phantom"}

    table = markdown_tables(summary, title="Test")
    assert "| fixed | 0.750 | 0.400 | 0.333 |" in table  # Table 1: RVD, Dice, IoU
    assert ABC2_REFERENCE in table
    per_case = cases_csv(results).splitlines()
    assert len(per_case) == 3 and per_case[0].startswith("case_id,") and per_case[1].startswith("a,a,")
    assert "fixed,all,2," in summary_csv(summary)


def test_evaluate_needs_a_row(tmp_path: Path) -> None:
    from ichpipe.errors import UsageError

    with pytest.raises(UsageError, match="at least one"):
        evaluate_cases([], [], window=WindowPreset(80, 40))


def test_png_cases_run_through_a_network_without_anatomy_steps(tmp_path: Path) -> None:
    from PIL import Image

    from ichpipe.models.checkpoint import save_checkpoint
    from ichpipe.models.registry import build_model
    from ichpipe.pipeline.config.inference_config import InferenceConfig
    from ichpipe.pipeline.evaluation import network_row, threshold_row

    images, labels = tmp_path / "img", tmp_path / "lab"
    images.mkdir()
    labels.mkdir()
    for k in range(3):
        grey = np.full((32, 32), 90, dtype=np.uint8)
        grey[10:14, 10:14] = 240
        Image.fromarray(grey).save(images / f"{k}.png")
        Image.fromarray((grey > 200).astype(np.uint8) * 255).save(labels / f"{k}.png")
    entry = ManifestEntry(
        case_id="png", patient_id="p", split="test", format="png", image=images, mask=labels,
        pixel_spacing_mm=0.5, slice_thickness_mm=5.0, source="seed-png",
    )
    kwargs = {"base_channels": 4, "num_heads": 4, "input_size": 32}
    torch_net = build_model("sa_cbam_unet_slim", **kwargs)
    ckpt = save_checkpoint(
        tmp_path / "tiny.pt", torch_net, name="sa_cbam_unet_slim", model_kwargs=kwargs, input_size=(32, 32),
        window={"width": 80, "level": 40}, normalisation={"scale": 1 / 255, "offset": 0.0}, training_data="none",
    )
    rows = [network_row(ckpt, label="tiny", inference=InferenceConfig(device="cpu", threads=1)), threshold_row()]
    results = evaluate_cases([entry], rows, window=WindowPreset(80, 40))
    assert [r.model for r in results] == ["tiny"]  # the threshold method needs HU: not run on PNG slices
    assert results[0].true_ml == pytest.approx(3 * 16 * 0.25 * 5.0 / 1000.0)
    assert 0.0 <= results[0].dice <= 1.0


def test_evaluate_cases_with_quality_keeps_the_mask_and_adds_run_flags(tmp_path: Path) -> None:
    from ichpipe.pipeline.config import Config
    from ichpipe.pipeline.evaluation import threshold_row

    truth = np.zeros((6, 40, 40), dtype=bool)
    truth[2:4, 15:22, 15:22] = True
    entry = _nifti_case(tmp_path, "q", truth)
    row = threshold_row()
    plain = evaluate_cases([entry], [row], window=WindowPreset(80, 40))
    checked = evaluate_cases([entry], [row], window=WindowPreset(80, 40), quality=Config())
    assert plain[0].flags is None and checked[0].flags is not None
    assert (checked[0].predicted_ml, checked[0].dice) == (plain[0].predicted_ml, plain[0].dice)
    # a block of 70 HU in 30 HU with no skull and no air: run's checks say the image is not a head CT
    assert "skull_absent" in checked[0].flags or "hu_no_air" in checked[0].flags
