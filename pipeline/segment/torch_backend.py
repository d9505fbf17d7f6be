"""The PyTorch side of network inference: device choice, bf16, channels-last batches.

Imported only when a network runs under PyTorch (``inference.runtime: torch``,
a GPU, a checkpoint without an ONNX export, BLAST-CT, training), so a run with
the ONNX Runtime path never pays for ``import torch``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from ichpipe.errors import UsageError
from ichpipe.pipeline.config.inference_config import Device

__all__ = ["TorchSliceRunner", "channels_last_copy", "cpu_has_native_bf16", "resolve_device"]


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


class TorchSliceRunner:
    """Runs a PyTorch segmenter on NumPy batches: inference mode, bf16 autocast, channels-last.

    Parameters
    ----------
    model:
        The network, in eval mode, on ``device``.
    device:
        Where it runs.
    bf16:
        Autocast to bf16 (the caller decides whether the device computes it natively).
    channels_last:
        Feed channels-last batches to a channels-last model.

    Examples
    --------
    >>> runner = TorchSliceRunner(nn.Conv2d(1, 1, 1), torch.device("cpu"), bf16=False, channels_last=False)
    >>> runner.run(np.zeros((2, 1, 16, 16), np.float32)).shape
    (2, 1, 16, 16)
    """

    def __init__(self, model: nn.Module, device: torch.device, *, bf16: bool, channels_last: bool) -> None:
        self.device = device
        self.bf16 = bf16
        self.channels_last = channels_last
        self.model = model.to(memory_format=torch.channels_last) if channels_last else model  # type: ignore[call-overload]

    def run(self, images: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The network's output (float32, on the CPU) for a ``(B, C, H, W)`` batch."""
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(self.device)
        if self.channels_last:
            x = channels_last_copy(x)
        with torch.inference_mode(), torch.autocast(
            device_type=self.device.type, dtype=torch.bfloat16, enabled=self.bf16
        ):
            y = self.model(x)
        out: npt.NDArray[np.float32] = y.float().cpu().numpy()
        return out
