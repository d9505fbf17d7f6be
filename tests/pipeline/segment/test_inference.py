"""NetworkSegmenter: pre-processing, crop/pad/resize bookkeeping, post-processing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ichpipe.errors import CheckpointError, UsageError
from ichpipe.models.checkpoint import save_checkpoint
from ichpipe.models.registry import build_model
from ichpipe.pipeline.config.inference_config import InferenceConfig
from ichpipe.pipeline.segment.inference import NetworkSegmenter
from ichpipe.pipeline.segment.torch_backend import channels_last_copy, cpu_has_native_bf16, resolve_device


class _Echo:
    """Stands in for a network runtime: 'probability' = input grey level (so outputs are predictable)."""

    def run(self, images: np.ndarray) -> np.ndarray:
        if images.shape[-1] % 16 or images.shape[-2] % 16:
            raise ValueError("not padded to a multiple of 16")
        return images.copy()


def _checkpoint(tmp_path: Path, *, input_size: tuple[int, int] = (64, 64)) -> Path:
    model = build_model("sa_cbam_unet", base_channels=4, input_size=input_size[0], num_heads=2)
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, model, name="sa_cbam_unet", input_size=input_size,
                    window={"width": 80.0, "level": 40.0}, normalisation={"scale": 1 / 255, "offset": 0.0},
                    training_data="random weights (test)", model_kwargs={"base_channels": 4,
                                                                          "input_size": input_size[0],
                                                                          "num_heads": 2})
    return path


@pytest.mark.parametrize("input_size", [(64, 64), (32, 32)])
def test_probabilities_shape_and_placement(tmp_path, head_volume, input_size) -> None:
    seg = NetworkSegmenter(_checkpoint(tmp_path, input_size=input_size), config=InferenceConfig(device="cpu"))
    seg.runner = _Echo()
    probs = seg.probabilities(head_volume)
    assert probs.shape == head_volume.hu.shape
    # the echo returns the windowed grey level/255: brain (40 HU) ~0.5, blood (70 HU) ~0.9
    i = 5
    if input_size == (64, 64):
        assert probs[i, 30, 26] == pytest.approx(70 / 80, abs=0.01)
        assert probs[i, 32, 45] == pytest.approx(0.5, abs=0.01)


class _Widths(_Echo):
    """The echo, recording the width of every batch the network is shown."""

    def __init__(self) -> None:
        self.widths: list[int] = []

    def run(self, images: np.ndarray) -> np.ndarray:
        self.widths.append(int(images.shape[-1]))
        return super().run(images)


def test_a_large_field_is_read_on_a_larger_grid(tmp_path, head_volume) -> None:
    # a 32 x 32 network reading the 64 x 64 head: a network pixel is two of the image's
    px = float(head_volume.geometry.pixel_spacing_mm[0])
    checkpoint = _checkpoint(tmp_path, input_size=(32, 32))
    seen = {}
    for limit in (None, 2.0 * px, 1.5 * px):
        seg = NetworkSegmenter(checkpoint, config=InferenceConfig(device="cpu", max_network_pixel_mm=limit))
        seg.runner = _Widths()
        probs = seg.probabilities(head_volume)
        seen[limit] = max(seg.runner.widths)
        assert probs.shape == head_volume.hu.shape
        assert probs[5, 30, 26] == pytest.approx(70 / 80, abs=0.02)  # the blob where it is, on any grid
        assert probs[5, 32, 45] == pytest.approx(0.5, abs=0.02)
    assert seen[None] == seen[2.0 * px] == 32  # at the limit: the input size
    assert seen[1.5 * px] == 48  # wider than the limit: a 43-pixel grid (the head's crop padded to 48)
    for limit, said in ((None, None), (2.0 * px, None), (1.5 * px, [43, 43, 1.5 * px])):
        seg = NetworkSegmenter(checkpoint, config=InferenceConfig(device="cpu", max_network_pixel_mm=limit))
        seg.runner = _Echo()
        assert (seg.segment_in(head_volume).details.get("network_input") or {}).get("grid") == said
    with pytest.raises(ValueError, match="'max_network_pixel_mm' must lie in"):
        InferenceConfig(max_network_pixel_mm=0.0)


def test_segment_thresholds_and_restricts_to_brain(tmp_path, head_volume) -> None:
    seg = NetworkSegmenter(_checkpoint(tmp_path), config=InferenceConfig(device="cpu", threshold=0.7))
    seg.runner = _Echo()
    mask = seg.segment(head_volume)
    assert mask[5, 30, 26] and not mask[5, 32, 45]
    assert not mask[:, 32, 3].any()  # bone ring (windowed to 1.0) is outside the intracranial mask


def test_real_tiny_network_runs_in_fp32_with_channels_last(tmp_path, head_volume) -> None:
    seg = NetworkSegmenter(_checkpoint(tmp_path), config=InferenceConfig(device="cpu", batch_size=5, bf16=False))
    mask = seg.segment(head_volume)
    assert mask.shape == head_volume.hu.shape and mask.dtype == bool
    info = seg.describe()
    assert info["name"] == "sa_cbam_unet" and len(info["checkpoint_sha256"]) == 64
    assert info["window"] == {"width": 80.0, "level": 40.0}
    assert info["bf16"] is False


@pytest.mark.skipif(not cpu_has_native_bf16(),
                    reason="this CPU has no native bf16 (no AVX512-BF16 or AMX in /proc/cpuinfo): inference runs in"
                           " fp32 here, so there is no bf16 path to test")
def test_real_tiny_network_runs_in_bf16_where_the_cpu_has_it(tmp_path, head_volume) -> None:
    path = _checkpoint(tmp_path)
    seg = NetworkSegmenter(path, config=InferenceConfig(device="cpu", batch_size=5))
    assert seg.use_bf16 and seg.describe()["bf16"] is True
    probabilities = seg.probabilities(head_volume)
    reference = NetworkSegmenter(path, config=InferenceConfig(device="cpu", batch_size=5, bf16=False))
    expected = reference.probabilities(head_volume)
    assert probabilities.shape == expected.shape == head_volume.hu.shape
    # bf16 keeps 8 bits of mantissa: probabilities agree to about 1e-2, not to float32 precision
    assert float(np.abs(probabilities - expected).max()) < 0.05
    assert float(np.abs(probabilities - expected).max()) > 0.0


class _RightLeaning:
    """Stands in for a network that leans to one side: 'probability' rises from 0 (left) to 1 (right)."""

    def run(self, images: np.ndarray) -> np.ndarray:
        ramp = np.linspace(0.0, 1.0, images.shape[-1], dtype=np.float32)
        return np.broadcast_to(ramp, images[:, :1].shape).copy()


def test_mirror_averages_a_slice_with_its_mirror_image(tmp_path, head_volume) -> None:
    path = _checkpoint(tmp_path)
    plain = NetworkSegmenter(path, config=InferenceConfig(device="cpu", crop_to_head=False, mirror=False))
    mirrored = NetworkSegmenter(path, config=InferenceConfig(device="cpu", crop_to_head=False, mirror=True))
    plain.runner = mirrored.runner = _RightLeaning()
    leaning, averaged = plain.probabilities(head_volume)[5], mirrored.probabilities(head_volume)[5]
    assert leaning[:, -1].mean() - leaning[:, 0].mean() > 0.9
    # the ramp plus its mirror image is flat: each pixel 0.5 (the image border's resampling aside)
    assert np.allclose(averaged[:, 2:-2], 0.5, atol=1e-5)
    assert mirrored.describe()["mirror"] is True and "mirror" not in plain.describe()


def test_mirror_keeps_pixels_in_place(tmp_path, head_volume) -> None:
    # a network that reads each pixel alone gives the same map mirrored: the mirror image goes back where it came from
    path = _checkpoint(tmp_path)
    plain = NetworkSegmenter(path, config=InferenceConfig(device="cpu", mirror=False))
    mirrored = NetworkSegmenter(path, config=InferenceConfig(device="cpu", mirror=True))
    plain.runner = mirrored.runner = _Echo()
    expected = plain.probabilities(head_volume)
    assert float(expected.std()) > 0.1
    np.testing.assert_allclose(mirrored.probabilities(head_volume), expected, atol=1e-6)


class _Bright:
    """Stands in for a network that calls every bright pixel: blood (grey 0.875) and anything whiter."""

    def run(self, images: np.ndarray) -> np.ndarray:
        return np.where(images[:, :1] >= 0.85, 0.9, 0.0).astype(np.float32)


def test_a_component_denser_than_blood_is_not_counted(tmp_path, make_head) -> None:
    def paint(img, yy, xx, r, i):
        if 3 <= i <= 8:
            img[np.hypot(yy - 30, xx - 24) < 5] = 70.0  # a bleed
        if 5 <= i <= 6:
            img[np.hypot(yy - 32, xx - 40) < 3] = 300.0  # a calcification (say, the pineal gland)

    volume = make_head(paint)
    seg = NetworkSegmenter(_checkpoint(tmp_path), config=InferenceConfig(device="cpu", mirror=False))
    seg.runner = _Bright()
    result = seg.segment_in(volume)
    assert result.mask[5, 30, 24] and result.mask[3:9, 30, 24].all()  # the bleed stays
    assert not result.mask[:, 32, 40].any()  # the calcification the stand-in called does not
    removed = result.details["denser_than_blood"]
    assert removed["components_removed"] == 1 and removed["removed_ml"] > 0
    assert removed["median_hu_above"] == seg.anatomy.brain_hu[1]


def test_a_single_slice_piece_on_bones_edge_is_not_counted(tmp_path, make_head) -> None:
    """Real PHE-SICH patients: the network calls the skull base's partial volume in small single-slice pieces."""
    def paint(img, yy, xx, r, i):
        if 3 <= i <= 8:
            img[np.hypot(yy - 30, xx - 24) < 5] = 70.0  # a bleed, away from the bone
        if i == 5:
            img[(r >= 18) & (xx > 30) & (np.abs(yy - 32) < 6)] = 70.0  # a piece against the inner table

    volume = make_head(paint, extra={"PixelSpacing": [0.5, 0.5]})
    seg = NetworkSegmenter(_checkpoint(tmp_path), config=InferenceConfig(device="cpu", mirror=False))
    seg.runner = _Bright()
    result = seg.segment_in(volume)
    assert result.mask[3:9, 30, 24].all() and not result.mask[5, 32, 48:52].any()
    removed = result.details["bone_edge_pieces"]
    assert removed["components_removed"] == 1 and removed["removed_ml"] > 0.05
    assert seg.describe()["bone_edge"] == {"max_ml": 1.0, "share": 0.2}
    kept = NetworkSegmenter(_checkpoint(tmp_path), config=InferenceConfig(device="cpu", mirror=False,
                                                                          bone_edge_max_ml=None))
    kept.runner = _Bright()
    result = kept.segment_in(volume)
    assert result.mask[5, 32, 48:51].all() and "bone_edge_pieces" not in result.details
    assert "bone_edge" not in kept.describe()
    with pytest.raises(ValueError, match="'bone_edge_share'"):
        InferenceConfig(bone_edge_share=1.5)
    with pytest.raises(ValueError, match="'bone_edge_max_ml'"):
        InferenceConfig(bone_edge_max_ml=0.0)


def test_progress_reports_every_slice_with_head(tmp_path, head_volume) -> None:
    calls: list[tuple[int, int]] = []
    seg = NetworkSegmenter(_checkpoint(tmp_path), config=InferenceConfig(device="cpu", batch_size=5),
                           progress=lambda d, t: calls.append((d, t)))
    seg.runner = _Echo()
    seg.probabilities(head_volume)
    assert calls[-1] == (12, 12)


def test_checkpoint_without_window_refused(tmp_path) -> None:
    model = build_model("sa_cbam_unet", base_channels=4, input_size=64, num_heads=2)
    path = tmp_path / "nowin.pt"
    save_checkpoint(path, model, name="sa_cbam_unet", input_size=(64, 64), window=None,
                    normalisation={"scale": 1 / 255, "offset": 0.0}, training_data="x",
                    model_kwargs={"base_channels": 4, "input_size": 64, "num_heads": 2})
    with pytest.raises(CheckpointError, match="window"):
        NetworkSegmenter(path, config=InferenceConfig(device="cpu"))


def test_cuda_without_gpu_is_a_usage_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(UsageError, match="no CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def test_one_channel_batches_get_channels_last_strides_and_the_same_network_output() -> None:
    x = torch.rand(3, 1, 32, 48, generator=torch.Generator().manual_seed(0))
    assert x.contiguous(memory_format=torch.channels_last).stride() == x.stride()  # the ambiguity fixed here
    y = channels_last_copy(x)
    assert y.stride() == (32 * 48, 1, 48, 1) and torch.equal(x, y)
    # the first residual block's 1x1 shortcut now runs (and returns) channels-last, with the same values
    # (to fp32 rounding: oneDNN may pick another kernel for the other layout)
    block = build_model("sa_cbam_unet", base_channels=8, input_size=32, num_heads=2).encoder[0]
    block = block.eval().to(memory_format=torch.channels_last)
    shortcut = block.residual
    with torch.inference_mode():
        assert not shortcut(x).is_contiguous(memory_format=torch.channels_last)
        assert shortcut(y).is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(block(x), block(y), rtol=1e-5, atol=1e-6)
