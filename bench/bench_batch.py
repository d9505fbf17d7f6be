"""Batch throughput: studies per minute with 1 and 2 local workers (threshold segmenter, and the network if shipped).

Run with ``make bench`` (pytest-benchmark, one round each: a batch is long),
or as a script for a table::

    python bench/bench_batch.py [--studies 8] [--size 512] [--slices 32]

Every measurement processes fresh copies of the same synthetic studies into
an empty output folder and results store (so nothing is skipped), and counts
the whole run: inbox scan, ledger, processing, outputs, summary. With 2
workers the pool start-up (spawned interpreters importing the pipeline) is
included, as a cron run pays it. The default network (``sa_cbam_unet_slim``
with ``models/checkpoints/ichpipe-default.pt``) is measured only when that
checkpoint exists.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from ichpipe.pipeline.batch.options import BatchOptions
from ichpipe.pipeline.batch.runner import run_batch
from ichpipe.pipeline.config import Config
from ichpipe.pipeline.config.models_config import resolve_checkpoint
from ichpipe.pipeline.config.store_config import StoreConfig
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study

N_STUDIES = int(os.environ.get("ICHPIPE_BENCH_STUDIES", "8"))
SIZE = int(os.environ.get("ICHPIPE_BENCH_SIZE", "512"))
SLICES = int(os.environ.get("ICHPIPE_BENCH_SLICES", "32"))


def write_inbox(root: Path, *, n: int = N_STUDIES, size: int = SIZE, slices: int = SLICES) -> Path:
    """``n`` synthetic head-CT studies (one hematoma each) in ``root``."""
    for i in range(n):
        write_phantom_study(root / f"study-{i:03d}",
                            PhantomSpec(seed=9000 + i, rows=size, columns=size, n_slices=slices, volume_ml=20.0))
    return root


def network_checkpoint() -> Path | None:
    """The shipped default checkpoint, if it exists yet."""
    path = resolve_checkpoint(Config().models.default_checkpoint)
    return path if path.is_file() else None


def measure(template: Path, *, workers: int, segmenter: str) -> dict[str, Any]:
    """One batch over a fresh copy of ``template``; studies per minute and seconds."""
    with tempfile.TemporaryDirectory(prefix="ichpipe-bench-") as tmp:
        work = Path(tmp)
        shutil.copytree(template, work / "inbox")
        config = dataclasses.replace(
            Config(), store=StoreConfig(path=str(work / "store.sqlite")),
            batch=dataclasses.replace(Config().batch, settle_s=0.0),
        )
        options = BatchOptions(inbox=work / "inbox", out=work / "out", segmenter=segmenter, workers=workers,
                               write_summary=False)
        started = time.perf_counter()
        report = run_batch(options, config)
        seconds = time.perf_counter() - started
    processed = report.counts["processed"]
    if processed != len(list(template.iterdir())) or report.exit_code != 0:
        raise RuntimeError(f"benchmark batch did not process every study: {report.counts}")
    return {"segmenter": segmenter, "workers": workers, "studies": processed, "seconds": round(seconds, 2),
            "studies_per_min": round(60.0 * processed / seconds, 1)}


@pytest.fixture(scope="module")
def inbox_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_inbox(tmp_path_factory.mktemp("bench-inbox"))


def _segmenters() -> list[Any]:
    params: list[Any] = ["threshold"]
    params.append(pytest.param("sa_cbam_unet_slim", marks=pytest.mark.skipif(
        network_checkpoint() is None, reason="models/checkpoints/ichpipe-default.pt not there yet")))
    return params


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("segmenter", _segmenters())
def test_batch_throughput(benchmark: Any, inbox_template: Path, segmenter: str, workers: int) -> None:
    result = benchmark.pedantic(measure, args=(inbox_template,), kwargs={"workers": workers, "segmenter": segmenter},
                                rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    assert result["studies"] == N_STUDIES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=N_STUDIES)
    parser.add_argument("--size", type=int, default=SIZE)
    parser.add_argument("--slices", type=int, default=SLICES)
    args = parser.parse_args()
    segmenters = ["threshold"] + (["sa_cbam_unet_slim"] if network_checkpoint() else [])
    with tempfile.TemporaryDirectory(prefix="ichpipe-bench-inbox-") as tmp:
        started = time.perf_counter()
        template = write_inbox(Path(tmp), n=args.studies, size=args.size, slices=args.slices)
        print(f"{args.studies} studies of {args.size}x{args.size}x{args.slices} written in "
              f"{time.perf_counter() - started:.1f} s; {os.cpu_count()} CPU(s)")
        if not network_checkpoint():
            print("network not measured: models/checkpoints/ichpipe-default.pt does not exist yet")
        print("| segmenter | workers | studies | seconds | studies/min |")
        print("|---|---|---|---|---|")
        for segmenter in segmenters:
            for workers in (1, 2):
                r = measure(template, workers=workers, segmenter=segmenter)
                print(f"| {r['segmenter']} | {r['workers']} | {r['studies']} | {r['seconds']} | "
                      f"{r['studies_per_min']} |", flush=True)


if __name__ == "__main__":
    main()
