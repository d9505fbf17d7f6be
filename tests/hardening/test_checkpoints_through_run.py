"""Checkpoints through ``ichpipe run``: SHA-256 in the report, the allow-list, and a pickle payload that never runs."""

from __future__ import annotations

import ast
import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from ichpipe.models.checkpoint import FORMAT_NAME, save_checkpoint
from ichpipe.models.hashing import file_sha256
from ichpipe.models.registry import build_model
from ichpipe.pipeline.cli import cli

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net = build_model("unet", base_channels=4, input_size=32)
    path = tmp_path_factory.mktemp("ckpt") / "tiny_unet.pt"
    save_checkpoint(path, net, name="unet", model_kwargs={"base_channels": 4, "input_size": 32}, input_size=(32, 32),
                    window={"width": 80, "level": 40}, normalisation={"scale": 1 / 255, "offset": 0.0},
                    training_data="untrained (test)")
    return path


def _run(study: Path, out: Path, config: Path, *extra: str) -> Any:
    result = CliRunner().invoke(cli, ["run", "--study", str(study), "--out", str(out), "--config", str(config),
                                      "--device", "cpu", "--json", *extra])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_report_records_the_checkpoint_sha256(good_study: Path, tmp_path: Path, store_config: Path,
                                             tiny_checkpoint: Path) -> None:
    result = _run(good_study, tmp_path / "out", store_config, "--segmenter", "unet", "--checkpoint",
                  str(tiny_checkpoint))
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["segmenter"]["checkpoint_sha256"] == file_sha256(tiny_checkpoint)
    on_disk = json.loads(Path(report["outputs"]["report"]).read_text())
    assert on_disk["segmenter"]["checkpoint_sha256"] == file_sha256(tiny_checkpoint)


def test_allow_list_admits_a_listed_digest_and_refuses_others(good_study: Path, tmp_path: Path,
                                                             store_config: Path, tiny_checkpoint: Path) -> None:
    digest = file_sha256(tiny_checkpoint)
    ends = REPO / "models" / "checkpoints" / "ichpipe-ends.pt"  # the end-slice network runs too, by default
    extra = REPO / "models" / "checkpoints" / "ichpipe-extra-axial.pt"  # and the extra-axial one
    only = tmp_path / "only.yaml"
    only.write_text(store_config.read_text() + f"models:\n  checkpoint_sha256_allowlist: ['{digest}']\n")
    result = _run(good_study, tmp_path / "o0", only, "--segmenter", "unet", "--checkpoint", str(tiny_checkpoint))
    assert result.exit_code == 1 and f"End-extension checkpoint {ends} (SHA-256 {file_sha256(ends)})" in result.stderr
    half = tmp_path / "half.yaml"
    half.write_text(store_config.read_text() + "models:\n  checkpoint_sha256_allowlist:"
                    f" ['{digest}', '{file_sha256(ends)}']\n")
    result = _run(good_study, tmp_path / "o0", half, "--segmenter", "unet", "--checkpoint", str(tiny_checkpoint))
    assert result.exit_code == 1 and f"Extra-axial checkpoint {extra} (SHA-256 {file_sha256(extra)})" in result.stderr
    blend = REPO / "models" / "checkpoints" / "ichpipe-blend-lobar.pt"  # and the blend-side one
    most = tmp_path / "most.yaml"
    most.write_text(store_config.read_text() + "models:\n  checkpoint_sha256_allowlist:"
                    f" ['{digest}', '{file_sha256(ends)}', '{file_sha256(extra)}']\n")
    result = _run(good_study, tmp_path / "o0", most, "--segmenter", "unet", "--checkpoint", str(tiny_checkpoint))
    assert result.exit_code == 1 and f"Blend-side checkpoint {blend} (SHA-256 {file_sha256(blend)})" in result.stderr
    listed = tmp_path / "listed.yaml"
    listed.write_text(store_config.read_text() + "models:\n  checkpoint_sha256_allowlist:"
                      f" ['{digest}', '{file_sha256(ends)}', '{file_sha256(extra)}', '{file_sha256(blend)}']\n")
    assert _run(good_study, tmp_path / "o1", listed, "--segmenter", "unet", "--checkpoint",
                str(tiny_checkpoint)).exit_code == 0
    other = tmp_path / "other.yaml"
    other.write_text(store_config.read_text() + f"models:\n  checkpoint_sha256_allowlist: ['{'0' * 64}']\n")
    result = _run(good_study, tmp_path / "o2", other, "--segmenter", "unet", "--checkpoint", str(tiny_checkpoint))
    assert result.exit_code == 1
    assert f"(SHA-256 {digest}) is not in models.checkpoint_sha256_allowlist" in result.stderr
    assert not (tmp_path / "o2").exists()


class _Payload:
    """Unpickling this object creates the file ``marker`` (harmless and observable)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, int]]:
        return (os.open, (str(self.marker), os.O_CREAT | os.O_WRONLY))


def test_the_payload_runs_when_unpickled_unsafely(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Payload(marker)))  # shows the refusal below means something
    assert marker.exists()


@pytest.mark.parametrize("container", ["torch_save", "pickle"])
@pytest.mark.parametrize("allow_listed", [False, True])
def test_pickle_payload_checkpoint_is_refused_and_never_runs(container: str, allow_listed: bool, good_study: Path,
                                                            tmp_path: Path, store_config: Path) -> None:
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    payload = {"format": FORMAT_NAME, "format_version": 1, "model": _Payload(marker)}
    if container == "torch_save":
        torch.save(payload, evil)
    else:
        evil.write_bytes(pickle.dumps(payload, protocol=2))
    config = store_config
    if allow_listed:  # even a file whose digest is allowed is read weights-only
        config = tmp_path / "allow.yaml"
        config.write_text(store_config.read_text()
                          + f"models:\n  checkpoint_sha256_allowlist: ['{file_sha256(evil)}']\n")
    result = _run(good_study, tmp_path / "out", config, "--checkpoint", str(evil))
    assert result.exit_code == 1
    assert "evil.pt" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_every_torch_load_in_the_code_is_weights_only() -> None:
    calls = []
    for path in [*REPO.glob("models/**/*.py"), *REPO.glob("pipeline/**/*.py"), *REPO.glob("dicom_io/**/*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                weights_only = [k for k in node.keywords if k.arg == "weights_only"]
                ok = bool(weights_only) and isinstance(weights_only[0].value, ast.Constant) \
                    and weights_only[0].value.value is True
                calls.append((f"{path.relative_to(REPO)}:{node.lineno}", ok))
            if isinstance(node, ast.Attribute) and node.attr in ("loads", "load") and isinstance(node.value, ast.Name) \
                    and node.value.id == "pickle":
                calls.append((f"{path.relative_to(REPO)}:{node.lineno} pickle.{node.attr}", False))
    assert calls, "no torch.load found: the check looks in the wrong place"
    assert [where for where, ok in calls if not ok] == []
