"""Per-stage timings and peak memory of ``ichpipe run`` on a 32-slice 512x512 phantom.

Usage (from the repository root, in the project's venv)::

    python bench/run_stages.py [--repeats 3] [--out FILE.md] [--scaling 32,150,300 [--scaling-only]]
                               [--blast-weights ../shared/data/blast-ct-v1] [--full-onnx]

For each segmenter (threshold; the full-size SA-CBAM U-Net with random weights
in a temporary checkpoint, since speed does not depend on the weights, under
PyTorch and, with ``--full-onnx``, from its ONNX export; the
shipped default checkpoint when present, as shipped (ONNX Runtime when its
export is beside it) and under ``inference.runtime: torch``; BLAST-CT v1 with one model when
``--blast-weights`` names its weights) it runs the whole command
``/usr/bin/time -v ichpipe run ... --json`` several times and reports the median
of each stage in ``timings_s``, the median wall time and the peak resident
memory. It also measures the CPU's dense matmul throughput in fp32 and bf16
(the ceiling a network can reach here) and says how far from the bf16 peak
the network's segmentation stage runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ichpipe.models.checkpoint import save_checkpoint  # noqa: E402
from ichpipe.models.complexity import count_flops  # noqa: E402
from ichpipe.models.registry import build_model  # noqa: E402
from ichpipe.pipeline.config.models_config import CHECKPOINT_DIR  # noqa: E402
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study  # noqa: E402

ICHPIPE = [str(Path(sys.executable).parent / "ichpipe")]

#: Stages of the report's ``timings_s`` shown in the side-by-side table.
STAGES = ["scan", "assemble", "load_model", "intracranial", "segment", "cross_check", "quality", "measure",
          "outputs", "store"]


def matmul_peak_gflops(dtype: torch.dtype, *, n: int = 2048, repeats: int = 10) -> float:
    """Best dense matmul throughput over ``repeats`` runs, GFLOP/s."""
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def cpu_description() -> str:
    """CPU model, the vector / matrix extensions that matter to torch, cores, and the load average now."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="ascii", errors="ignore").splitlines():
            if line.startswith("model name") and model in ("", platform.machine(), platform.processor()):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = [name for flag, name in (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16"), ("avx512f", "AVX-512"),
                                   ("avx2", "AVX2")) if flag in flags]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{model} ({', '.join(isa) or 'no AVX2'}), {os.cpu_count()} cores, load average {load}"


def run_once(study: Path, out: Path, args: list[str], store: Path,
             config: str = "") -> tuple[dict[str, float], float, float, float]:
    cfg = out.parent / "bench-config.yaml"
    cfg.write_text(f"store:\n  path: {store}\n{config}")
    cmd = [*ICHPIPE, "run", "--study", str(study), "--out", str(out), "--json", "--config", str(cfg), *args]
    use_time = Path("/usr/bin/time").exists()
    full = ["/usr/bin/time", "-v", *cmd] if use_time else cmd
    t = time.perf_counter()
    proc = subprocess.run(full, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"ichpipe run failed: {proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)
    rss_mb = float("nan")
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    if match:
        rss_mb = int(match.group(1)) / 1024
    return report["timings_s"], wall, rss_mb, float(report["hematoma"]["volume_ml"])


def scaling_table(counts: list[int]) -> str:
    """The default checkpoint on 512x512 phantoms of ``counts`` slices: wall time, peak RSS, stages, fitted slope."""
    default = CHECKPOINT_DIR / "ichpipe-default.pt"
    lines = [f"Scaling with the slice count (default checkpoint, one run each). Machine: {cpu_description()}.", "",
             "| slices | spacing mm | wall s | peak RSS MB | intracranial | segment | quality | volume mL (truth) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    points: list[tuple[int, float, float]] = []
    for n in counts:
        with tempfile.TemporaryDirectory(prefix="ichpipe-scaling-") as tmp_name:
            tmp = Path(tmp_name)
            spacing = 5.0 if n <= 64 else 0.625
            truth = write_phantom_study(tmp / "study", PhantomSpec(seed=424242, rows=512, columns=512, n_slices=n,
                                                                   slice_spacing_mm=spacing))
            stages, wall, rss, _ = run_once(tmp / "study", tmp / "out", ["--checkpoint", str(default)],
                                         tmp / "store.sqlite")
            report = json.loads(next((tmp / "out").rglob("report.json")).read_text())
            measured = report["hematoma"]["volume_ml"]
        points.append((n, wall, rss))
        lines.append(f"| {n} | {spacing} | {wall:.1f} | {rss:.0f} | {stages.get('intracranial', 0):.1f} |"
                     f" {stages.get('segment', 0):.1f} | {stages.get('quality', 0):.1f} |"
                     f" {measured:.2f} ({truth.volume_ml:.2f}) |")
    if len(points) >= 2:
        xs = [p[0] for p in points]
        for name, ys in (("s", [p[1] for p in points]), ("MB", [p[2] for p in points])):
            slope = statistics.linear_regression(xs, ys).slope
            intercept = statistics.linear_regression(xs, ys).intercept
            lines.append(f"\nLeast-squares fit: {intercept:.1f} {name} + {slope:.3f} {name} per slice.")
    lines.append(f"\nLoad average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--scaling", default="", help="Also run the default checkpoint on phantoms of these"
                        " slice counts (comma-separated; 5 mm up to 64 slices, 0.625 mm above).")
    parser.add_argument("--scaling-only", action="store_true", help="Skip the side-by-side table.")
    parser.add_argument("--full-onnx", action="store_true",
                        help="Also run the full network from an ONNX export (exporting it takes about a minute).")
    parser.add_argument("--blast-weights", type=Path, default=None,
                        help="A folder of BLAST-CT v1 model_*.pt: add BLAST-CT with one model to the table.")
    opts = parser.parse_args()
    if opts.scaling_only:
        text = scaling_table([int(n) for n in opts.scaling.split(",") if n])
        print(text)
        if opts.out:
            opts.out.write_text(text)
        return
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ichpipe-bench-") as tmp_name:
        tmp = Path(tmp_name)
        study = tmp / "study"
        truth = write_phantom_study(study, PhantomSpec(seed=424242, rows=512, columns=512, n_slices=32))
        full_ckpt = tmp / "full.pt"
        torch.manual_seed(0)  # the same random weights every run: post-processing depends on what they mark
        model = build_model("sa_cbam_unet")
        save_checkpoint(full_ckpt, model, name="sa_cbam_unet", input_size=(512, 512),
                        window={"width": 80.0, "level": 40.0}, normalisation={"scale": 1 / 255, "offset": 0.0},
                        training_data="none: random weights for timing only")
        # (label, arguments, registry name for the FLOP count, extra config)
        cases: list[tuple[str, list[str], str | None, str]] = [("threshold", ["--segmenter", "threshold"], None, "")]
        cases.append(("sa_cbam_unet (full, base 64), PyTorch", ["--segmenter", "sa_cbam_unet", "--checkpoint",
                                                                 str(full_ckpt)], "sa_cbam_unet", ""))
        if opts.full_onnx:  # the same weights exported beside a copy: what a user with an exported full model gets
            full_onnx_ckpt = tmp / "full-onnx.pt"
            shutil.copyfile(full_ckpt, full_onnx_ckpt)
            from ichpipe.models.onnx_export import export_checkpoint_onnx

            export_checkpoint_onnx(full_onnx_ckpt)
            cases.append(("sa_cbam_unet (full, base 64), ONNX Runtime fp32",
                          ["--segmenter", "sa_cbam_unet", "--checkpoint", str(full_onnx_ckpt)], "sa_cbam_unet", ""))
        default = CHECKPOINT_DIR / "ichpipe-default.pt"
        if default.exists():
            runtime = "ONNX Runtime fp32" if default.with_suffix(".onnx").exists() else "PyTorch"
            cases.append((f"default checkpoint ({runtime}, as shipped)", ["--checkpoint", str(default)], None, ""))
            cases.append(("default checkpoint (inference.runtime: torch)", ["--checkpoint", str(default)], None,
                          "inference:\n  runtime: torch\n"))
        if opts.blast_weights is not None:
            if not opts.blast_weights.is_dir():
                raise SystemExit(f"--blast-weights {opts.blast_weights} is not a folder.")
            cases.append(("BLAST-CT v1, 1 model", ["--segmenter", "blast_ct", "--checkpoint", str(opts.blast_weights),
                                                   "--blast-models", "1"], None, ""))
        fp32 = matmul_peak_gflops(torch.float32)
        bf16 = matmul_peak_gflops(torch.bfloat16)
        lines.append(f"Machine: {cpu_description()}; "
                     f"torch {torch.__version__}, {torch.get_num_threads()} threads; date {date.today()}; "
                     f"median of {opts.repeats} runs of the whole command on a 32x512x512 phantom "
                     f"(truth {truth.volume_ml:.2f} mL).")
        lines.append(f"Dense matmul peak (2048^3): fp32 {fp32:.0f} GFLOP/s, bf16 {bf16:.0f} GFLOP/s.")
        lines.append("")
        header = "| segmenter | volume mL | wall s | peak RSS MB | " + " | ".join(STAGES) + " |"
        lines.append(header)
        lines.append("|" + "---|" * (header.count("|") - 1))
        notes: list[str] = []
        for label, args, registry_name, config in cases:
            runs = [run_once(study, tmp / f"out-{i}", args, tmp / "store.sqlite", config)
                    for i in range(opts.repeats)]
            med = {k: statistics.median(r[0].get(k, 0.0) for r in runs) for k in runs[0][0]}
            wall = statistics.median(r[1] for r in runs)
            rss = statistics.median(r[2] for r in runs)
            volume = statistics.median(r[3] for r in runs)
            cells = " | ".join(f"{med.get(s, 0):.2f}" for s in STAGES)
            lines.append(f"| {label} | {volume:.2f} | {wall:.1f} | {rss:.0f} | {cells} |")
            if registry_name:
                flops = count_flops(build_model(registry_name), (1, 1, 512, 512))
                achieved = flops * 32 / med["segment"] / 1e9
                notes.append(f"- {label}: {flops / 1e9:.0f} GFLOP per 512x512 slice; over the segment stage"
                             f" that is at most {achieved:.0f} GFLOP/s = {100 * achieved / bf16:.0f} % of the bf16"
                             " matmul peak (an upper bound: slices outside the head are skipped, and the stage"
                             " also builds the head and intracranial masks).")
        lines += ["", *notes, "", f"Load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}."]
    text = "\n".join(lines) + "\n"
    if opts.scaling:
        text += "\n" + scaling_table([int(n) for n in opts.scaling.split(",") if n])
    print(text)
    if opts.out:
        opts.out.write_text(text)


if __name__ == "__main__":
    main()
