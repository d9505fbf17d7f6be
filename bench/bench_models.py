"""CPU inference time per 512x512 slice of the SA-CBAM U-Net, full size and slim.

Run with ``make bench`` or
``python -m pytest bench/bench_models.py --benchmark-only``.
Each case runs one slice (batch 1) in eval mode under ``torch.inference_mode``
with torch's default thread count, in four modes: fp32, fp32 channels-last,
bf16 autocast, bf16 autocast + channels-last. bf16 is fast only on CPUs with
native bf16 (AVX512-BF16 / AMX); ``extra_info`` records whether this one has it.

``python bench/bench_models.py`` prints the parameter and FLOP table of every
registered segmenter at 512x512 (counted on the meta device: no compute);
``python bench/bench_models.py --profile sa_cbam_unet`` adds the top operators
of one fp32 and one bf16 channels-last forward pass.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from ichpipe.models import SEGMENTER_NAMES, build_model, count_flops, count_parameters
from ichpipe.pipeline.segment.torch_backend import cpu_has_native_bf16

SLICE = (1, 1, 512, 512)
MODES = ("fp32", "fp32_channels_last", "bf16_autocast", "bf16_channels_last")
ROUNDS = {"sa_cbam_unet": 5, "sa_cbam_unet_slim": 10}


def make_runner(model: nn.Module, mode: str) -> Callable[[], torch.Tensor]:
    """A zero-argument callable running one 512x512 slice through ``model`` in ``mode``."""
    if mode not in MODES:
        raise ValueError(f"Argument 'mode' must be one of {', '.join(MODES)}; got {mode!r}.")
    channels_last = mode.endswith("channels_last")
    bf16 = mode.startswith("bf16")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.eval().to(memory_format=memory_format)  # type: ignore[call-overload]
    x = torch.rand(*SLICE, generator=torch.Generator().manual_seed(0))
    x = x.contiguous(memory_format=memory_format)

    def run() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model(x).float()

    return run


@pytest.fixture(scope="module", params=sorted(ROUNDS))
def named_model(request: pytest.FixtureRequest) -> tuple[str, nn.Module]:
    torch.manual_seed(0)
    return request.param, build_model(request.param).eval()


@pytest.mark.parametrize("mode", MODES)
def test_cpu_slice_512(benchmark: Any, named_model: tuple[str, nn.Module], mode: str) -> None:
    name, model = named_model
    run = make_runner(model, mode)
    benchmark.group = f"{name} 512x512 slice, CPU"
    benchmark.extra_info.update(
        {
            "model": name,
            "mode": mode,
            "threads": torch.get_num_threads(),
            "native_bf16": cpu_has_native_bf16(),
            "parameters": count_parameters(model),
        }
    )
    y = benchmark.pedantic(run, rounds=ROUNDS[name], warmup_rounds=1, iterations=1)
    model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    assert y.shape == SLICE
    assert bool(torch.isfinite(y).all())


def complexity_table(names: tuple[str, ...] = SEGMENTER_NAMES) -> str:
    """Markdown table of parameters and GFLOPs per 512x512 slice for ``names``."""
    rows = ["| model | parameters | GFLOPs / 512x512 slice |", "|---|---:|---:|"]
    for name in names:
        with torch.device("meta"):
            model = build_model(name)
        flops = count_flops(model, SLICE)
        rows.append(f"| `{name}` | {count_parameters(model) / 1e6:.2f} M | {flops / 1e9:.1f} |")
    return "\n".join(rows)


def profile(name: str, *, rows: int = 12) -> str:
    """Top CPU operators of one fp32 and one bf16 channels-last forward of ``name``."""
    torch.manual_seed(0)
    model = build_model(name).eval()
    out = []
    for mode in ("fp32", "fp32_channels_last", "bf16_channels_last"):
        run = make_runner(model, mode)
        run()  # warm-up: oneDNN primitive creation
        start = time.perf_counter()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            run()
        wall = time.perf_counter() - start
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)
        out.append(f"## {name} {mode}: {wall:.3f} s (profiled)\n{table}")
        model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--profile", metavar="NAME", choices=SEGMENTER_NAMES, default=None)
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"native bf16: {cpu_has_native_bf16()}")
    print(complexity_table())
    if args.profile:
        print(profile(args.profile))


if __name__ == "__main__":
    main()
