"""ONNX export of segmenter checkpoints and the torch-free ONNX Runtime path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ichpipe.errors import CheckpointError
from ichpipe.models.checkpoint import load_model, save_checkpoint
from ichpipe.models.hashing import file_sha256
from ichpipe.models.onnx_export import export_checkpoint_onnx
from ichpipe.models.onnx_model import METADATA_KEY, load_onnx_segmenter, paired_onnx
from ichpipe.models.registry import build_model
from ichpipe.pipeline.config.inference_config import (
    BlendSideConfig,
    EndExtensionConfig,
    ExtraAxialConfig,
    InferenceConfig,
)
from ichpipe.pipeline.segment.inference import NetworkSegmenter

CHECKPOINTS = Path(__file__).resolve().parents[2] / "models" / "checkpoints"
KWARGS = {"base_channels": 4, "num_heads": 2, "input_size": 64}
OFF = EndExtensionConfig(checkpoint="")  # no end-slice network
NO_XA = ExtraAxialConfig(checkpoint="")  # no extra-axial network


def _tiny_checkpoint(path: Path, *, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    net = build_model("sa_cbam_unet_slim", **KWARGS)
    return save_checkpoint(path, net, name="sa_cbam_unet_slim", model_kwargs=KWARGS, input_size=(64, 64),
                           window={"width": 80.0, "level": 40.0}, normalisation={"scale": 1 / 255, "offset": 0.0},
                           training_data="random weights (test)")


@pytest.fixture
def tiny_pair(tmp_path: Path) -> tuple[Path, Path]:
    checkpoint = _tiny_checkpoint(tmp_path / "tiny.pt")
    return checkpoint, export_checkpoint_onnx(checkpoint)


def test_export_lies_beside_the_checkpoint_and_carries_its_identity(tiny_pair: tuple[Path, Path]) -> None:
    checkpoint, onnx = tiny_pair
    assert onnx == checkpoint.with_suffix(".onnx") and paired_onnx(checkpoint) == onnx
    exported = load_onnx_segmenter(onnx, threads=1, expected_checkpoint_sha256=file_sha256(checkpoint))
    assert exported.name == "sa_cbam_unet_slim" and exported.input_size == (64, 64)
    assert exported.window == {"width": 80.0, "level": 40.0}
    assert exported.identity["model"]["kwargs"]["base_channels"] == 4


@pytest.mark.parametrize("shape", [(1, 1, 64, 64), (2, 1, 48, 80), (5, 1, 16, 112)])
def test_export_reproduces_the_model_at_sizes_it_was_not_traced_at(tiny_pair, shape) -> None:
    checkpoint, onnx = tiny_pair
    model, _ = load_model(checkpoint)
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = model(x).numpy()
    got = load_onnx_segmenter(onnx, threads=1).run(x.numpy())
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_threads_follow_the_config_then_omp_num_threads(tiny_pair, monkeypatch) -> None:
    _, onnx = tiny_pair
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what the batch's pool workers get
    assert load_onnx_segmenter(onnx).session.get_session_options().intra_op_num_threads == 1
    assert load_onnx_segmenter(onnx, threads=2).session.get_session_options().intra_op_num_threads == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    assert load_onnx_segmenter(onnx).session.get_session_options().intra_op_num_threads == 0


@pytest.mark.parametrize(("stem", "channels"),
                         [("ichpipe-default", 1), ("ichpipe-ends", 3), ("ichpipe-extra-axial", 1),
                          ("ichpipe-blend", 1), ("ichpipe-blend-lobar", 1)])
def test_shipped_export_belongs_to_the_shipped_checkpoint_and_matches_it(stem: str, channels: int) -> None:
    checkpoint = CHECKPOINTS / f"{stem}.pt"
    exported = load_onnx_segmenter(CHECKPOINTS / f"{stem}.onnx", threads=1,
                                   expected_checkpoint_sha256=file_sha256(checkpoint))
    model, ck = load_model(checkpoint)
    assert exported.metadata == dict(ck.metadata) and exported.name == ck.name
    assert ck.model_kwargs.get("in_channels", 1) == channels
    # a head-cropped batch of the size the pipeline feeds, with CT-like grey levels (0-1, mostly brain)
    rng = np.random.default_rng(0)
    x = np.clip(0.5 + 0.2 * rng.standard_normal((2, channels, 208, 176)), 0, 1).astype(np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(exported.run(x), expected, atol=1e-4, rtol=0)


def test_auto_runs_the_export_and_torch_gives_the_same_probabilities(tiny_pair, make_series) -> None:
    checkpoint, _ = tiny_pair
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 32, xx - 30)

    def hu(i: int) -> np.ndarray:
        img = np.where(r < 26, 1000.0, -1000.0)
        img[r < 22] = 40.0
        img[np.hypot(yy - 30, xx - 26) < 3 + i] = 70.0
        return img

    from ichpipe.dicom_io import assemble_series, scan_study

    with scan_study(make_series(size=64, hu=hu)) as scan:
        volume = assemble_series(scan.require_selected().series)
    ort = NetworkSegmenter(checkpoint, config=InferenceConfig(device="cpu", threads=1))
    pt = NetworkSegmenter(checkpoint, config=InferenceConfig(device="cpu", threads=1, runtime="torch", bf16=False))
    assert ort.describe()["runtime"] == "onnxruntime" and pt.describe()["runtime"] == "torch"
    assert ort.describe()["onnx_sha256"] == file_sha256(checkpoint.with_suffix(".onnx"))
    assert ort.describe()["checkpoint_sha256"] == pt.describe()["checkpoint_sha256"] == file_sha256(checkpoint)
    np.testing.assert_allclose(ort.probabilities(volume), pt.probabilities(volume), atol=1e-5, rtol=0)


def test_a_stale_export_is_not_run(tiny_pair: tuple[Path, Path], caplog) -> None:
    checkpoint, _ = tiny_pair
    _tiny_checkpoint(checkpoint, seed=1)  # retrained: the export beside it belongs to the old file
    seg = NetworkSegmenter(checkpoint, config=InferenceConfig(device="cpu", threads=1))
    assert seg.describe()["runtime"] == "torch"
    with pytest.raises(CheckpointError, match="exported from a checkpoint with SHA-256"):
        NetworkSegmenter(checkpoint, config=InferenceConfig(device="cpu", threads=1, runtime="onnxruntime"))


def test_forced_onnxruntime_without_an_export_says_how_to_make_one(tmp_path: Path) -> None:
    checkpoint = _tiny_checkpoint(tmp_path / "alone.pt")
    assert NetworkSegmenter(checkpoint, config=InferenceConfig(device="cpu")).describe()["runtime"] == "torch"
    with pytest.raises(CheckpointError, match=r"python -m ichpipe\.models\.onnx_export"):
        NetworkSegmenter(checkpoint, config=InferenceConfig(device="cpu", runtime="onnxruntime"))


def test_forced_onnxruntime_refuses_a_gpu_and_auto_leaves_the_gpu_to_torch(tiny_pair, monkeypatch) -> None:
    from ichpipe.errors import UsageError
    from ichpipe.pipeline.segment import inference

    checkpoint, _ = tiny_pair
    with pytest.raises(UsageError, match="runs on the CPU"):
        NetworkSegmenter(checkpoint, config=InferenceConfig(device="cuda", runtime="onnxruntime"))
    monkeypatch.setattr(inference, "nvidia_gpu_visible", lambda: True)  # a GPU host: auto must not pick ONNX
    seg = NetworkSegmenter.__new__(NetworkSegmenter)
    seg.config = InferenceConfig(device="auto")
    assert seg._onnx_export(checkpoint) is None
    seg.config = InferenceConfig(device="cpu")
    assert seg._onnx_export(checkpoint) == checkpoint.with_suffix(".onnx")


def test_a_pinned_checkpoint_digest_is_checked_before_the_export_runs(tiny_pair) -> None:
    checkpoint, _ = tiny_pair
    digest = file_sha256(checkpoint)
    seg = NetworkSegmenter(checkpoint, config=InferenceConfig(device="cpu"), expected_sha256=digest.upper())
    assert seg.describe()["runtime"] == "onnxruntime"
    with pytest.raises(CheckpointError, match=r"has SHA-256 [0-9a-f]{64}, not the expected 00"):
        NetworkSegmenter(checkpoint, config=InferenceConfig(device="cpu"), expected_sha256="00" * 32)


def test_an_onnx_file_without_identity_is_refused(tiny_pair: tuple[Path, Path], tmp_path: Path) -> None:
    import onnx

    _, path = tiny_pair
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(CheckpointError, match="no ichpipe identity"):
        load_onnx_segmenter(bare)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="could not be opened"):
        load_onnx_segmenter(tmp_path / "junk.onnx")
    assert json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}[METADATA_KEY])["format"]


def test_allowlist_and_model_name_apply_to_the_export(tiny_pair: tuple[Path, Path]) -> None:
    checkpoint, onnx = tiny_pair  # the end-slice, extra-axial and blend-side networks (on by default): own tests
    plain = InferenceConfig(device="cpu", end_extension=OFF, extra_axial=NO_XA,
                            blend_side=BlendSideConfig(checkpoint=""))
    only_pt = (file_sha256(checkpoint),)
    seg = NetworkSegmenter(checkpoint, config=plain, allowed_sha256=only_pt)
    assert seg.describe()["runtime"] == "torch"
    with pytest.raises(CheckpointError, match="allowlist"):
        NetworkSegmenter(checkpoint, config=replace(plain, runtime="onnxruntime"), allowed_sha256=only_pt)
    both = (*only_pt, file_sha256(onnx))
    seg = NetworkSegmenter(checkpoint, config=plain, allowed_sha256=both)
    assert seg.describe()["runtime"] == "onnxruntime"
    with pytest.raises(CheckpointError, match="'sa_cbam_unet' was requested"):
        NetworkSegmenter(checkpoint, name="sa_cbam_unet", config=plain)


def test_an_onnx_run_never_imports_torch(tmp_path: Path) -> None:
    study = tmp_path / "study"
    config = tmp_path / "cfg.yaml"
    config.write_text(f"store:\n  path: {tmp_path / 'store.sqlite'}\n")
    code = f"""
import sys
from pathlib import Path
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study
write_phantom_study(Path({str(study)!r}), PhantomSpec(seed=7, rows=128, columns=128, n_slices=16))
assert "torch" not in sys.modules, "the phantom generator imported torch"
from ichpipe.pipeline.cli import main
sys.argv = ["ichpipe", "run", "--study", {str(study)!r}, "--out", {str(tmp_path / "out")!r},
            "--config", {str(config)!r}]
try:
    main()
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
print("torch" in sys.modules, "onnxruntime" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["False", "True"]
    report = json.loads(next((tmp_path / "out").rglob("report.json")).read_text())
    assert report["segmenter_details"]["runtime"] == "onnxruntime"


def test_export_refuses_a_predictor_checkpoint(tmp_path: Path) -> None:
    shutil.copy(CHECKPOINTS / "expansion_sacnn_contest2023e.pt", tmp_path / "p.pt")
    with pytest.raises(CheckpointError, match="segmentation"):
        export_checkpoint_onnx(tmp_path / "p.pt")
