"""Label noise and data mixing in training: weighted losses, ignore masks, sampling shares, --init."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from monai.losses import DiceLoss
from PIL import Image

from ichpipe.dicom_io.window import WindowPreset
from ichpipe.errors import CheckpointError, UsageError
from ichpipe.models.checkpoint import load_checkpoint
from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.config.training_config import TrainingConfig
from ichpipe.pipeline.datasets import load_case, read_manifest
from ichpipe.pipeline.datasets.manifest import ManifestEntry, write_manifest
from ichpipe.pipeline.synthetic.recipes import GeneratorOptions
from ichpipe.pipeline.synthetic.training_data import generate_dataset
from ichpipe.pipeline.training.train_seg import train_segmenter
from ichpipe.pipeline.training.transforms import RandBrainOnlyd, brain_region, prepare_case_slices
from ichpipe.pipeline.training.weighting import (
    entry_group,
    parse_source_mix,
    sampling_weights,
    weighted_loss,
)

BRAIN = WindowPreset(width=80.0, level=40.0)
TINY = {"base_channels": 4, "num_heads": 4}


def _png_case(root: Path, name: str, *, n: int = 4, size: int = 64, seed: int = 0) -> dict[str, str]:
    """A PNG case of ``n`` slices: a bright disc (the label) on grey, an ignore ring, weights 0.5 and 1."""
    rng = np.random.default_rng(seed)
    y, x = np.indices((size, size))
    head = np.hypot(y - size / 2, x - size / 2) < size * 0.45
    for sub in ("images", "labels", "ignore"):
        (root / name / sub).mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(n):
        disc = np.hypot(y - size * 0.4, x - size * (0.35 + 0.1 * k)) < size * 0.12 if k % 2 == 0 else head & False
        grey = np.where(head, 96, 0) + np.where(disc, 80, 0) + rng.integers(0, 6, size=(size, size)) * head
        Image.fromarray(grey.astype(np.uint8)).save(root / name / "images" / f"s{k}.png")
        Image.fromarray((disc * 255).astype(np.uint8)).save(root / name / "labels" / f"s{k}.png")
        ring = np.zeros_like(disc)
        if disc.any():
            grown = np.hypot(y - size * 0.4, x - size * (0.35 + 0.1 * k)) < size * 0.12 + 1.5
            ring = grown & ~(np.hypot(y - size * 0.4, x - size * (0.35 + 0.1 * k)) < size * 0.12 - 1.5)
        Image.fromarray((ring * 255).astype(np.uint8)).save(root / name / "ignore" / f"s{k}.png")
        rows.append((f"s{k}.png", 0.5 if k % 2 == 0 else 1.0))
    weights = root / name / "weights.csv"
    with weights.open("w", newline="") as fh:
        csv.writer(fh).writerows([("file", "weight"), *rows])
    return {"ignore": str(root / name / "ignore"), "slice_weights": str(weights), "sampling_group": "real-png"}


@pytest.fixture(scope="module")
def mixed_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny phantom dataset and a tiny PNG dataset (with weights and ignore masks) in two manifests."""
    root = tmp_path_factory.mktemp("mixed")
    phantom = generate_dataset(
        root / "phantom", GeneratorOptions(n=3, seed=5, size=64, shapes="builtin", val_fraction=0.34)
    )
    entries = []
    for k, split in enumerate(("train", "train", "val")):
        extra = _png_case(root / "png", f"p{k}", seed=k)
        folder = root / "png" / f"p{k}"
        entries.append(ManifestEntry(case_id=f"png-{k}", patient_id=f"png-{k}", split=split,  # type: ignore[arg-type]
                                     format="png", image=folder / "images", mask=folder / "labels",
                                     source="real-png: test", extra=extra))
    png = write_manifest(root / "png" / "manifest.csv", entries)
    return phantom, png


def _config(**changes: object) -> TrainingConfig:
    base = {
        "model": "sa_cbam_unet_slim", "epochs": 2, "input_size": 64, "crop_size": 32, "steps_per_epoch": 6,
        "device": "cpu", "threads": 1, "seed": 3, "learning_rate": 1e-3,
    }
    return TrainingConfig(**{**base, **changes})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- losses and sampling


def test_weighted_losses_reduce_to_the_seed_losses_and_ignore_zero_weight() -> None:
    torch.manual_seed(0)
    logits, target = torch.randn(2, 1, 8, 8), (torch.rand(2, 1, 8, 8) > 0.5).float()
    ones = torch.ones_like(target)
    bce = weighted_loss("bce")
    torch.testing.assert_close(bce(logits, target, ones), F.binary_cross_entropy_with_logits(logits, target))
    reference = F.binary_cross_entropy_with_logits(logits, target) + DiceLoss(sigmoid=True, batch=True)(logits, target)
    torch.testing.assert_close(weighted_loss("dice_bce")(logits, target, ones), reference)
    half = ones.clone()
    half[0] = 0.0  # the first slice is ignored: the loss is the second slice's, halved by the mean over pixels
    torch.testing.assert_close(
        bce(logits, target, half), 0.5 * F.binary_cross_entropy_with_logits(logits[1:], target[1:])
    )
    wrong = target.clone()
    wrong[0] = 1.0 - wrong[0]  # a wrong label on a zero-weight slice changes nothing
    torch.testing.assert_close(bce(logits, wrong, half), bce(logits, target, half))
    dice_bce = weighted_loss("dice_bce")
    torch.testing.assert_close(dice_bce(logits, wrong, half), dice_bce(logits, target, half))
    with pytest.raises(ValueError, match="'name'"):
        weighted_loss("focal")


def test_source_mix_gives_each_key_its_share() -> None:
    mix = parse_source_mix(["phe-sich=0.4", "extra-axial=0.3", "phantom=0.3"])
    groups = ["phe-sich-pos"] * 2 + ["phe-sich-neg"] * 6 + ["extra-axial"] * 3 + ["extra-axial-ge"] + ["phantom"] * 10
    weights = np.array(sampling_weights(groups, mix))
    g = np.array(groups)
    assert weights[np.char.startswith(g, "phe-sich")].sum() == pytest.approx(0.4)
    assert weights[np.char.startswith(g, "extra-axial")].sum() == pytest.approx(0.3)
    assert weights[g == "phantom"].sum() == pytest.approx(0.3)
    # the longest matching key wins
    split = sampling_weights(groups, parse_source_mix(["phe-sich=0.5", "phe-sich-pos=0.25", "extra-axial=0.1",
                                                       "phantom=0.15"]))
    assert np.array(split)[g == "phe-sich-pos"].sum() == pytest.approx(0.25)
    assert sampling_weights(["a", "b"], {}) == [1.0, 1.0]
    with pytest.raises(UsageError, match="no share for the training group"):
        sampling_weights(["ct-real-ge"], mix)
    with pytest.raises(UsageError, match="no training slice"):
        sampling_weights(["phantom"], parse_source_mix(["phantom=1", "phe-sich=1"]))
    for bad in (["phantom"], ["phantom=-1"], ["phantom=1", "phantom=2"], ["phantom=0"]):
        with pytest.raises(UsageError, match="source_mix"):
            parse_source_mix(bad)
    with pytest.raises(ValueError, match="source_mix"):
        TrainingConfig(source_mix=("phantom",))


def test_png_case_weights_and_ignore_reach_the_items(mixed_data: tuple[Path, Path]) -> None:
    _, png = mixed_data
    entry = read_manifest(png).entries[0]
    assert entry_group(entry) == "real-png"
    case = load_case(entry)
    assert case.slice_weight is not None and case.ignore is not None
    np.testing.assert_allclose(case.slice_weight, [0.5, 1.0, 0.5, 1.0])
    prepared = prepare_case_slices(case, [0, 1], window=BRAIN, scale=1 / 255, offset=0.0, input_size=(32, 32))
    assert prepared.weight.shape == (2, 32, 32)
    assert prepared.weight[0].max() == pytest.approx(0.5)  # slice weight 0.5 everywhere but the ignored ring
    assert prepared.weight[0].min() < 0.25  # the ring (resized: partly ignored pixels)
    assert prepared.weight[1].min() == pytest.approx(1.0)  # no label, no ring, weight 1


# --------------------------------------------------------------------------- training


def test_training_smoke_with_mix_init_and_per_group_validation(mixed_data: tuple[Path, Path], tmp_path: Path) -> None:
    phantom, png = mixed_data
    config = _config(source_mix=("phantom=0.5", "real-png=0.5"), select_by="val_loss", save_every=1)
    first = train_segmenter([phantom, png], tmp_path / "a", config=config, window=BRAIN, model_overrides=TINY)
    assert [r["epoch"] for r in first.history] == [1, 2]
    assert {"val_loss:phantom", "val_loss:real-png", "val_dice:real-png"} <= set(first.history[0])
    header = (tmp_path / "a" / "history.csv").read_text().splitlines()[0].split(",")
    assert "val_loss:real-png" in header
    assert (tmp_path / "a" / "epoch_001.pt").is_file() and (tmp_path / "a" / "epoch_002.pt").is_file()
    losses = {r["epoch"]: r["val_loss"] for r in first.history}
    assert first.best_epoch == min(losses, key=lambda e: losses[e])  # chosen by validation loss
    ckpt = load_checkpoint(tmp_path / "a" / "best.pt")
    assert "Sampling shares: phantom=0.5, real-png=0.5" in ckpt.metadata["training_data"]
    # --init: a run with a learning rate too small to move the weights ends where it started
    frozen = _config(epochs=1, steps_per_epoch=2, learning_rate=1e-30)
    second = train_segmenter([phantom, png], tmp_path / "b", config=frozen, window=BRAIN, model_overrides=TINY,
                             init_checkpoint=tmp_path / "a" / "last.pt")
    start = load_checkpoint(tmp_path / "a" / "last.pt").state_dict
    end = load_checkpoint(second.last_checkpoint)
    learned = [k for k in start if "running_" not in k and "num_batches" not in k]  # batch-norm statistics move
    assert len(learned) > 20
    for key in learned:
        torch.testing.assert_close(end.state_dict[key], start[key])
    assert "Fine-tuned from last.pt" in end.metadata["training_data"]
    with pytest.raises(CheckpointError, match="does not fit"):
        train_segmenter(phantom, tmp_path / "c", config=frozen, window=BRAIN, model_overrides={"base_channels": 8},
                        init_checkpoint=tmp_path / "a" / "last.pt")
    with pytest.raises(UsageError, match="no share for the training group"):
        train_segmenter([phantom, png], tmp_path / "d", config=_config(source_mix=("phantom=1",)), window=BRAIN,
                        model_overrides=TINY)


def test_cli_train_seg_takes_several_manifests_a_mix_and_init(mixed_data: tuple[Path, Path], tmp_path: Path) -> None:
    phantom, png = mixed_data
    runner = CliRunner()
    common = ["train", "seg", "--data", str(phantom), "--data", str(png), "--model-arg", "base_channels=4",
              "--model-arg", "num_heads=4", "--epochs", "1", "--steps-per-epoch", "2", "--input-size", "64",
              "--crop-size", "32", "--threads", "1", "--device", "cpu", "--json"]
    res = runner.invoke(cli, [*common, "--out", str(tmp_path / "a"), "--mix", "phantom=1,real-png=1",
                              "--select-by", "val_loss"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["best_epoch"] == 1
    res = runner.invoke(cli, [*common, "--out", str(tmp_path / "b"), "--init", str(tmp_path / "a" / "best.pt")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, [*common, "--out", str(tmp_path / "c"), "--mix", "phantom"])
    assert res.exit_code == 2 and "GROUP=SHARE" in res.output


def test_brain_only_augmentation_blanks_outside_the_skull_only() -> None:
    y, x = np.indices((48, 48))
    r = np.hypot(y - 24, x - 24)
    grey = np.where(r < 20, 100.0, 0.0) + np.where((r >= 17) & (r < 20), 155.0, 0.0)  # skull ring at 255
    grey[22:26, 22:26] = 255.0  # a bright clot inside stays inside
    grey += np.where(r >= 20, 60.0, 0.0) * (r < 23)  # scalp outside the skull
    brain = brain_region((grey >= 250.0)[None])[0]
    assert brain[24, 24] and brain[24, 30] and not brain[24, 45] and not brain[24, 42]
    image = torch.from_numpy(grey.astype(np.float32) / 255.0)[None]
    item = {"image": image, "brain": torch.from_numpy(brain.astype(np.uint8))[None]}
    out = RandBrainOnlyd("image", prob=1.0)(item)
    assert float(out["image"][0, 24, 45]) == 0.0 and float(out["image"][0, 2, 2]) == 0.0  # scalp and air
    assert float(out["image"][0, 24, 24]) == pytest.approx(1.0)  # the clot is kept
    torch.testing.assert_close(out["image"][0][brain], image[0][torch.from_numpy(brain)])
    never = RandBrainOnlyd("image", prob=0.0)(item)
    torch.testing.assert_close(never["image"], image)
    empty = {"image": image, "brain": torch.zeros_like(item["brain"])}
    torch.testing.assert_close(RandBrainOnlyd("image", prob=1.0)(empty)["image"], image)
    with pytest.raises(ValueError, match="'prob'"):
        RandBrainOnlyd("image", prob=2.0)
