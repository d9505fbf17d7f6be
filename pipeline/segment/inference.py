"""Slice-wise network inference on a CT volume.

Pre-processing: the checkpoint's own window to 0-255 (as the seed's PNGs), its
normalisation, resizing to the pixel grid the checkpoint was trained on,
cropping to the head's bounding box padded at the bottom and right to a
multiple of 16 with the normalised value of black (what MONAI's
``DivisiblePad(k=16, method="end")`` does; MONAI is not imported at inference). Slices with no head are not run. Batches
go through the network under ``torch.inference_mode`` with bf16 autocast on
CUDA, and on CPU where the CPU has native bf16 (AVX512-BF16 / AMX), in
channels-last memory format. Post-processing: probabilities resized back,
thresholded, restricted to the intracranial space, components under a
minimum volume removed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from ichpipe import __version__
from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.dicom_io.window import WindowPreset, apply_window
from ichpipe.errors import CheckpointError, UsageError
from ichpipe.models.checkpoint import Checkpoint, load_model
from ichpipe.pipeline.config.anatomy_config import AnatomyConfig
from ichpipe.pipeline.config.inference_config import Device, InferenceConfig
from ichpipe.pipeline.segment.intracranial import (
    IntracranialResult,
    head_bounding_box,
    largest_component,
    restrict_to_intracranial,
)
from ichpipe.pipeline.segment.segmenter import SegmentationResult
from ichpipe.progress import stage

__all__ = ["NetworkSegmenter", "channels_last_copy", "cpu_has_native_bf16", "resolve_device"]

log = logging.getLogger(__name__)

def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), per /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="ignore")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(device: Device) -> torch.device:
    """``auto`` -> CUDA if available else CPU; ``cuda`` without a GPU is a usage error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto.")
    return torch.device(device)


def channels_last_copy(x: torch.Tensor) -> torch.Tensor:
    """``x`` (B, C, H, W) copied into channels-last strides ``(C*H*W, 1, W*C, C)``, even when C is 1.

    For one channel, ``x.contiguous(memory_format=torch.channels_last)`` keeps
    the NCHW strides (both layouts hold the same bytes), and oneDNN then runs
    the first block's 1x1 shortcut convolution, whose weight is as ambiguous,
    in NCHW and copies its wide output back: about 0.2 s per batch of four
    head-cropped 512 x 512 slices of the full network. The values are the same;
    the network's output is too under bf16 autocast here (AMX), and within fp32
    rounding in fp32 (3.6e-7 at most on the 32-slice bench phantom, no voxel
    changing side of the threshold), where oneDNN may pick another kernel.

    Examples
    --------
    >>> channels_last_copy(torch.zeros(2, 1, 4, 3)).stride()
    (12, 1, 3, 1)
    """
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    out.copy_(x)
    return out


def _batches(indices: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(indices), size):
        yield indices[start : start + size]


class NetworkSegmenter:
    """Segment hematoma slice by slice with a network loaded from a checkpoint.

    Parameters
    ----------
    checkpoint_path:
        An ichpipe checkpoint (see :mod:`ichpipe.models.checkpoint`).
    name:
        Registry name the caller expects (``None`` accepts the checkpoint's).
    config:
        Inference settings.
    anatomy:
        Thresholds of the head and intracranial masks.
    expected_sha256:
        Optional pinned SHA-256 of the checkpoint file.
    progress:
        Optional callback ``progress(done_slices, total_slices)``.
    """

    def __init__(
        self,
        checkpoint_path: Path,
        *,
        name: str | None = None,
        config: InferenceConfig | None = None,
        anatomy: AnatomyConfig | None = None,
        expected_sha256: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.config = config or InferenceConfig()
        self.anatomy = anatomy or AnatomyConfig()
        self.device = resolve_device(self.config.device)
        if self.config.threads and self.device.type == "cpu":
            torch.set_num_threads(self.config.threads)
        self.model, self.checkpoint = load_model(
            checkpoint_path, name=name, task="segmentation", expected_sha256=expected_sha256,
            map_location=self.device,
        )
        self.window = self._window(self.checkpoint)
        norm = dict(self.checkpoint.metadata.get("normalisation") or {})
        self.scale = float(norm.get("scale", 1.0 / 255.0))
        self.offset = float(norm.get("offset", 0.0))
        size = self.checkpoint.input_size
        if len(size) != 2:
            raise CheckpointError(f"Checkpoint '{checkpoint_path}' is not a 2D segmenter (input_size {size}).")
        self.input_size = (int(size[0]), int(size[1]))
        self.use_bf16 = self.config.bf16 and (self.device.type == "cuda" or cpu_has_native_bf16())
        if self.config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.progress = progress
        self.name = self.checkpoint.name

    @staticmethod
    def _window(checkpoint: Checkpoint) -> WindowPreset:
        window = checkpoint.window
        if not window:
            raise CheckpointError(
                f"Checkpoint '{checkpoint.path}' does not say which HU window it was trained with;"
                " retrain or re-save it with a window."
            )
        return WindowPreset(width=float(window["width"]), level=float(window["level"]))

    def describe(self) -> dict[str, Any]:
        """Identity for the report: registry name, checkpoint SHA-256, versions, window."""
        return {
            "name": self.checkpoint.name,
            "checkpoint_sha256": self.checkpoint.file_sha256,
            "checkpoint_path": str(self.checkpoint.path),
            "version": __version__,
            "window": {"width": self.window.width, "level": self.window.level},
            "device": self.device.type,
            "bf16": self.use_bf16,
            "kind": "trained network",
            "baseline": False,
        }

    def probabilities(self, volume: CTVolume) -> npt.NDArray[np.float32]:
        """Hematoma probability per voxel, shape ``volume.hu.shape``."""
        hu = volume.hu
        n, rows, cols = hu.shape
        out = np.zeros(hu.shape, dtype=np.float32)
        # which slices hold head, and its box: the largest component above head_min_hu is enough (head_mask's
        # hole filling adds only pixels inside the outline, so neither changes; it cost most of this step)
        head = largest_component(np.asarray(hu > self.anatomy.head_min_hu))
        todo = [i for i in range(n) if head[i].any()] if self.config.skip_slices_without_head else list(range(n))
        if not todo:
            return out
        # the head's bounding box in the network's pixel grid
        sy, sx = self.input_size[0] / rows, self.input_size[1] / cols
        box = head_bounding_box(head) if self.config.crop_to_head else None
        y0, y1, x0, x1 = 0, self.input_size[0], 0, self.input_size[1]
        if box is not None:
            y0, y1 = int(np.floor(box[1].start * sy)), int(np.ceil(box[1].stop * sy))
            x0, x1 = int(np.floor(box[2].start * sx)), int(np.ceil(box[2].stop * sx))
        done = 0
        with stage("segmenting slices", total=len(todo)) as shown:
            for batch in _batches(todo, self.config.batch_size):
                self._infer(hu, batch, out, (y0, y1, x0, x1))
                done += len(batch)
                shown.advance(len(batch))
                if self.progress:
                    self.progress(done, len(todo))
        return out

    def segment_in(self, volume: CTVolume, intracranial: IntracranialResult | None = None) -> SegmentationResult:
        """Hematoma mask, post-processed, and how much the intracranial restriction removed.

        Parameters
        ----------
        volume:
            The assembled CT.
        intracranial:
            Its intracranial space, when already found (found here when
            needed and ``None``).
        """
        mask = self.probabilities(volume) > self.config.threshold
        return restrict_to_intracranial(mask, volume, restrict=self.config.restrict_to_intracranial,
                                        min_component_ml=self.config.min_component_ml, anatomy=self.anatomy,
                                        intracranial=intracranial)

    def _infer(self, hu: npt.NDArray[np.float32], batch: list[int], out: npt.NDArray[np.float32],
               box: tuple[int, int, int, int]) -> None:
        """Probabilities of the slices ``batch`` of ``hu`` into ``out`` (``box``: the head crop in network pixels)."""
        rows, cols = hu.shape[1:]
        y0, y1, x0, x1 = box
        grey = apply_window(hu[batch], self.window).astype(np.float32) * self.scale + self.offset
        x = torch.from_numpy(grey)[:, None].to(self.device)
        if (rows, cols) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False, antialias=True)
        x = x[:, :, y0:y1, x0:x1]
        crop_h, crop_w = x.shape[-2:]
        # pad bottom/right to a multiple of 16 with the normalised value of black
        x = F.pad(x, (0, -crop_w % 16, 0, -crop_h % 16), mode="constant", value=self.offset)
        if self.config.channels_last:
            x = channels_last_copy(x)
        with torch.inference_mode(), torch.autocast(
            device_type=self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16
        ):
            y = self.model(x)
        y = y.float()[:, :1, :crop_h, :crop_w]
        full = torch.zeros((len(batch), 1, *self.input_size), device=y.device)
        full[:, :, y0:y1, x0:x1] = y
        if (rows, cols) != self.input_size:
            full = F.interpolate(full, size=(rows, cols), mode="bilinear", align_corners=False)
        out[batch] = full[:, 0].cpu().numpy()

    def segment(self, volume: CTVolume) -> npt.NDArray[np.bool_]:
        """Bool hematoma mask, shape ``volume.hu.shape``, post-processed."""
        return self.segment_in(volume).mask
