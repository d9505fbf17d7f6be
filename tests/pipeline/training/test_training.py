"""Training data generator, pre-processing, a training smoke test, resume, and the CLI."""

from __future__ import annotations

import json
import logging
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from ichpipe.dicom_io.window import WindowPreset, apply_window
from ichpipe.errors import UsageError
from ichpipe.models.checkpoint import load_checkpoint
from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.config.training_config import TrainingConfig
from ichpipe.pipeline.datasets import load_case, read_manifest
from ichpipe.pipeline.datasets.case import CaseVolume
from ichpipe.pipeline.datasets.manifest import check_patient_split
from ichpipe.pipeline.synthetic.lesion_shapes import builtin_shape, shape_bank, shape_from_mask
from ichpipe.pipeline.synthetic.recipes import DEMO_SEED, GeneratorOptions, draw_recipe
from ichpipe.pipeline.synthetic.training_data import generate_dataset
from ichpipe.pipeline.training.train_seg import STATE_NAME, train_segmenter
from ichpipe.pipeline.training.transforms import RandLesionCropd, prepare_case_slices

BRAIN = WindowPreset(width=80.0, level=40.0)
TINY = {"base_channels": 4, "num_heads": 4}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 64x64 phantom studies with built-in shapes; patient-level split train 2 / val 1 / test 1."""
    out = tmp_path_factory.mktemp("tiny-data")
    return generate_dataset(
        out / "data",
        GeneratorOptions(n=4, seed=5, size=64, shapes="builtin", val_fraction=0.25, test_fraction=0.25),
    )


def _tiny_config(**changes: object) -> TrainingConfig:
    base = {
        "model": "sa_cbam_unet_slim", "epochs": 3, "input_size": 64, "crop_size": 32, "steps_per_epoch": 12,
        "device": "cpu", "threads": 1, "seed": 3, "learning_rate": 1e-3,
    }
    return TrainingConfig(**{**base, **changes})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- generator


def test_generator_writes_readable_cases_and_a_patient_level_split(tiny_data: Path) -> None:
    manifest = read_manifest(tiny_data)
    assert [e.split for e in manifest.entries].count("train") == 2
    check_patient_split(manifest.entries)
    summary = json.loads((tiny_data.parent / "dataset.json").read_text(encoding="utf-8"))
    assert "built-in" in summary["shape_source"]
    for entry, record in zip(manifest.entries, summary["cases"], strict=True):
        case = load_case(entry)
        assert case.image.shape[1:] == (64, 64) and case.geometry is not None
        assert abs(float(case.mask.sum()) > 0) == (record["volume_ml"] > 0)
        inside = case.image[case.mask]
        if inside.size:  # blood is brighter than brain on average
            assert float(np.mean(inside)) > float(np.median(case.image[case.image > 0]))


def test_generator_is_deterministic_and_avoids_the_demo_seed(tmp_path: Path) -> None:
    options = GeneratorOptions(n=1, seed=9, size=64, shapes="builtin", val_fraction=0.0)
    first = load_case(read_manifest(generate_dataset(tmp_path / "a", options)).entries[0])
    second = load_case(read_manifest(generate_dataset(tmp_path / "b", options)).entries[0])
    np.testing.assert_array_equal(first.image, second.image)
    np.testing.assert_array_equal(first.mask, second.mask)
    seeds = {draw_recipe(GeneratorOptions(n=1, seed=s), i).phantom_seed for s in range(3) for i in range(50)}
    assert DEMO_SEED not in seeds and len(seeds) == 150
    with pytest.raises(UsageError, match="already holds a dataset"):
        generate_dataset(tmp_path / "a", options)


def test_shapes_and_backgrounds_fall_back_and_say_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        bank = shape_bank("train", hemseg_dir=tmp_path / "absent")
        manifest = generate_dataset(
            tmp_path / "d",
            GeneratorOptions(n=1, n_real=1, seed=2, size=64, val_fraction=0.0, hemseg_dir=tmp_path / "absent",
                             ct_real_dir=tmp_path / "absent"),
        )
    assert not bank.uses_real_masks and "built-in" in bank.description
    assert "fall back to built-in" in caplog.text and "real background ge not found" in caplog.text
    assert len(read_manifest(manifest).entries) == 1


def test_shape_from_mask_resamples_to_one_millimetre() -> None:
    mask = np.zeros((20, 20, 6), dtype=bool)
    mask[5:15, 5:15, 2:4] = True  # 10 x 10 x 2 voxels of 0.45 x 0.45 x 5 mm = 202.5 mm^3
    mask[0, 0, 0] = True  # a stray voxel: not the largest component
    shape = shape_from_mask(mask, (0.45, 0.45, 5.0), "box")
    assert shape.volume_ml == pytest.approx(0.2025, rel=0.1)
    assert shape.occupancy.shape[2] == 20 and shape.radius_mm > 5.0
    assert builtin_shape(1).volume_ml > 0 and builtin_shape(1).occupancy.shape == builtin_shape(1).occupancy.shape


@pytest.mark.shared_data
def test_hemseg_shapes_and_real_background(shared_data: Path, tmp_path: Path) -> None:
    bank = shape_bank("val", hemseg_dir=shared_data / "hemseg500-masks")
    assert bank.uses_real_masks and len(bank) == 85
    shape = bank.draw(np.random.default_rng(0))
    assert shape.name.startswith("hemseg:val/") and 0.5 <= shape.volume_ml <= 90
    manifest = generate_dataset(
        tmp_path / "real",
        GeneratorOptions(n=0, n_real=1, seed=4, real_backgrounds=("ge",), shapes="val", val_fraction=0.0,
                         ct_real_dir=shared_data / "ct-real", hemseg_dir=shared_data / "hemseg500-masks"),
    )
    entry = read_manifest(manifest).entries[0]
    assert entry.format == "dicom" and entry.patient_id == "ct-real-ge"
    case = load_case(entry)  # DICOM series + DICOM SEG
    assert case.geometry is not None and abs(case.geometry.gantry_tilt_deg) > 18.0
    lesion_hu = json.loads((manifest.parent / "dataset.json").read_text())["cases"][0]["lesions"][0]["hu"]
    assert case.mask.any() and float(np.median(case.image[case.mask])) == pytest.approx(lesion_hu, abs=8.0)


@pytest.mark.shared_data
def test_the_skull_base_background_paints_below_the_crossed_slice_only(shared_data: Path, tmp_path: Path) -> None:
    """``--real ge-skull-base``: lesions on the GE head's posterior fossa and temporal base, never above."""
    from ichpipe.pipeline.synthetic.real_backgrounds import load_real_background

    background = load_real_background("ge-skull-base", ct_real_dir=shared_data / "ct-real")
    assert background is not None and "skull base only" in background.description
    allowed = np.flatnonzero(background.intracranial.any(axis=(1, 2)))
    ordinary = load_real_background("ge", ct_real_dir=shared_data / "ct-real")
    assert ordinary is not None
    # the ordinary background (the former finder) has none of those slices: they were never painted
    assert not ordinary.intracranial[allowed].any()
    manifest = generate_dataset(
        tmp_path / "base",
        GeneratorOptions(n=0, n_real=2, seed=5, real_backgrounds=("ge-skull-base",), shapes="val",
                         val_fraction=0.0, ct_real_dir=shared_data / "ct-real",
                         hemseg_dir=shared_data / "hemseg500-masks"),
    )
    for entry in read_manifest(manifest).entries:
        assert entry.patient_id == "ct-real-ge" and entry.source.startswith("ct-real-ge-skull-base")
        painted = np.flatnonzero(load_case(entry).mask.any(axis=(1, 2)))
        assert painted.size and set(painted) <= set(allowed)


# --------------------------------------------------------------------------- pre-processing


def test_preprocessing_matches_inference_resize() -> None:
    rng = np.random.default_rng(0)
    hu = rng.uniform(-50, 120, size=(2, 96, 96)).astype(np.float32)
    mask = np.zeros(hu.shape, dtype=bool)
    mask[0, 40:60, 40:60] = True
    case = CaseVolume(case_id="c", patient_id="p", image=hu, mask=mask, geometry=None, intensity="hu")
    prepared = prepare_case_slices(case, [0, 1], window=BRAIN, scale=1 / 255, offset=0.0, input_size=(64, 64))
    grey = torch.from_numpy(apply_window(hu, BRAIN).astype(np.float32) / 255)[:, None]
    expected = F.interpolate(grey, size=(64, 64), mode="bilinear", align_corners=False, antialias=True)[:, 0]
    np.testing.assert_allclose(prepared.image, expected.numpy(), atol=1e-6)
    assert 0.0 < prepared.label[0].max() <= 1.0 and prepared.label[1].max() == 0.0
    assert prepared.label[0].sum() * (96 / 64) ** 2 == pytest.approx(400, rel=0.02)  # area kept


def test_lesion_crop_centres_on_hematoma() -> None:
    label = np.zeros((1, 64, 64), dtype=np.float32)
    label[0, 50:54, 50:54] = 1.0
    head = np.ones((1, 64, 64), dtype=np.uint8)
    item: dict[Hashable, Any] = {"image": np.zeros_like(label), "label": label, "head": head}
    crop = RandLesionCropd(("image", "label", "head"), crop_size=(32, 32), positive_fraction=1.0)
    crop.set_random_state(seed=0)
    for _ in range(10):
        out = crop(item)
        assert out["label"].shape == (1, 32, 32) and out["label"].sum() > 0


# --------------------------------------------------------------------------- training


def test_training_smoke_loss_decreases(tiny_data: Path, tmp_path: Path) -> None:
    result = train_segmenter(tiny_data, tmp_path / "run", config=_tiny_config(), window=BRAIN, model_overrides=TINY)
    losses = [r["train_loss"] for r in result.history]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert result.n_val_slices > 0 and result.best_val_dice is not None
    for name in ("best.pt", "last.pt", STATE_NAME, "history.csv", "curves.png"):
        assert (tmp_path / "run" / name).is_file()
    ckpt = load_checkpoint(tmp_path / "run" / "best.pt", expected_task="segmentation")
    assert tuple(ckpt.input_size) == (64, 64) and ckpt.window == {"width": 80.0, "level": 40.0}
    assert ckpt.model_kwargs["sigmoid"] is True and ckpt.model_kwargs["base_channels"] == 4
    assert "ichpipe train data" in ckpt.metadata["training_data"]


def test_slice_context_run_starts_from_a_one_slice_checkpoint(tiny_data: Path, tmp_path: Path) -> None:
    one = train_segmenter(tiny_data, tmp_path / "one", config=_tiny_config(epochs=1, steps_per_epoch=2),
                          window=BRAIN, model_overrides=TINY)
    config = _tiny_config(epochs=1, steps_per_epoch=4, slice_context_mm=5.0)
    result = train_segmenter(tiny_data, tmp_path / "ctx", config=config, window=BRAIN, model_overrides=TINY,
                             init_checkpoint=one.best_checkpoint)
    ckpt = load_checkpoint(result.best_checkpoint, expected_task="segmentation")
    assert ckpt.metadata["slice_context_mm"] == 5.0 and ckpt.model_kwargs["in_channels"] == 3
    assert ckpt.state_dict["encoder.0.conv.unit0.conv.weight"].shape[1] == 3
    assert ckpt.state_dict["encoder.0.residual.weight"].shape[1] == 3
    # the items the trainer saw: three channels, the middle one the slice itself
    case = load_case(read_manifest(tiny_data).split("train")[0])
    k = int(np.flatnonzero(case.mask.any(axis=(1, 2)))[0])
    plain = prepare_case_slices(case, [k], window=BRAIN, scale=1 / 255, offset=0.0, input_size=(64, 64))
    context = prepare_case_slices(case, [k], window=BRAIN, scale=1 / 255, offset=0.0, input_size=(64, 64),
                                  slice_context_mm=5.0)
    assert context.image.shape == (1, 3, 64, 64) and context.items()[0]["image"].shape == (3, 64, 64)
    np.testing.assert_array_equal(context.image[:, 1], plain.image)
    below = prepare_case_slices(case, [k - 1], window=BRAIN, scale=1 / 255, offset=0.0, input_size=(64, 64))
    spacing = abs(float(np.diff(case.geometry.offsets_mm)[0])) if case.geometry is not None else 5.0
    if abs(spacing - 5.0) < 2.5:  # 4-6 mm phantoms: the slice below is the next one
        np.testing.assert_array_equal(context.image[:, 0], below.image)
    with pytest.raises(UsageError, match="does not fit slice_context_mm"):
        train_segmenter(tiny_data, tmp_path / "bad", config=config, window=BRAIN,
                        model_overrides={**TINY, "in_channels": 1})


def test_resume_continues_from_the_saved_epoch(tiny_data: Path, tmp_path: Path) -> None:
    config = _tiny_config(epochs=2, steps_per_epoch=4)
    straight = train_segmenter(tiny_data, tmp_path / "straight", config=config, window=BRAIN, model_overrides=TINY)
    first = train_segmenter(tiny_data, tmp_path / "resumed", config=_tiny_config(epochs=1, steps_per_epoch=4),
                            window=BRAIN, model_overrides=TINY)
    assert [r["epoch"] for r in first.history] == [1]
    resumed = train_segmenter(tiny_data, tmp_path / "resumed", config=config, window=BRAIN, model_overrides=TINY,
                              resume=True)
    assert resumed.epochs_run == 1 and [r["epoch"] for r in resumed.history] == [1, 2]
    assert resumed.history[0]["train_loss"] == first.history[0]["train_loss"]
    # the resumed run draws what the uninterrupted run drew
    assert resumed.history[1]["train_loss"] == pytest.approx(straight.history[1]["train_loss"], rel=1e-5)
    a = load_checkpoint(tmp_path / "straight" / "last.pt").state_dict
    b = load_checkpoint(tmp_path / "resumed" / "last.pt").state_dict
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)
    with pytest.raises(UsageError, match="other settings"):
        train_segmenter(tiny_data, tmp_path / "resumed", config=_tiny_config(epochs=3, crop_size=48),
                        window=BRAIN, model_overrides=TINY, resume=True)
    with pytest.raises(UsageError, match="already holds a training run"):
        train_segmenter(tiny_data, tmp_path / "resumed", config=config, window=BRAIN, model_overrides=TINY)


# --------------------------------------------------------------------------- command line


def test_cli_train_data_seg_and_evaluate(tmp_path: Path) -> None:
    runner = CliRunner()
    data = tmp_path / "data"
    res = runner.invoke(cli, ["train", "data", "--out", str(data), "--n", "3", "--size", "64", "--seed", "11",
                              "--shapes", "builtin", "--val-fraction", "0.34", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["counts"]["val"] == 1
    run = tmp_path / "run"
    res = runner.invoke(cli, [
        "train", "seg", "--data", str(data / "manifest.csv"), "--model", "sa_cbam_unet_slim",
        "--model-arg", "base_channels=4", "--model-arg", "num_heads=4", "--epochs", "1", "--steps-per-epoch", "3",
        "--input-size", "64", "--crop-size", "32", "--threads", "1", "--device", "cpu", "--out", str(run), "--json",
    ])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["best_epoch"] == 1 and (run / "best.pt").is_file()
    out = tmp_path / "eval"
    res = runner.invoke(cli, ["evaluate", "--data", str(data / "manifest.csv"), "--split", "all", "--checkpoint",
                              str(run / "best.pt"), "--label", "tiny", "--segmenter", "threshold", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "| tiny |" in res.stdout and "| threshold |" in res.stdout and "ABC/2 on the true mask" in res.stdout
    assert len((out / "cases.csv").read_text().splitlines()) == 1 + 2 * 3
    assert (out / "summary.csv").is_file() and (out / "table.md").is_file()


def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    (tmp_path / "m.csv").write_text("case_id,patient_id,split,format,image\na,p,train,nifti,x\n", encoding="utf-8")
    res = runner.invoke(cli, ["evaluate", "--data", str(tmp_path / "m.csv"), "--checkpoint", "a.pt",
                              "--label", "x", "--label", "y"])
    assert res.exit_code == 2 and "one --label per --checkpoint" in res.output
    res = runner.invoke(cli, ["train", "seg", "--data", str(tmp_path / "m.csv"), "--out", str(tmp_path / "r"),
                              "--resume"])
    assert res.exit_code == 2 and "Nothing to resume" in res.output
    res = runner.invoke(cli, ["train", "seg", "--data", str(tmp_path / "m.csv"), "--model-arg", "oops"])
    assert res.exit_code == 2 and "KEY=VALUE" in res.output
