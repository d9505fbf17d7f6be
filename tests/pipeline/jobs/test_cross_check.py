"""The cross-check beside the main segmenter (``quality.cross_check``): which segmenter runs, and what it catches."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from ichpipe.dicom_io.assemble import CTVolume, assemble_series
from ichpipe.dicom_io.study import scan_study
from ichpipe.errors import CheckpointError
from ichpipe.pipeline.config import Config
from ichpipe.pipeline.config.models_config import ModelsConfig
from ichpipe.pipeline.jobs.analyse_volume import analyse_volume, cross_check_segmenter
from ichpipe.pipeline.segment.inference import NetworkSegmenter
from ichpipe.pipeline.segment.threshold import ThresholdSegmenter
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, load_truth, write_phantom_study


def _with(mode: str, config: Config | None = None) -> Config:
    cfg = config or Config()
    return dataclasses.replace(cfg, quality=dataclasses.replace(cfg.quality, cross_check=mode))


def test_auto_runs_the_other_kind_beside_each_segmenter() -> None:
    cfg = _with("auto")
    baseline = ThresholdSegmenter(cfg.threshold, anatomy=cfg.anatomy)
    network = cross_check_segmenter(baseline, cfg)
    assert isinstance(network, NetworkSegmenter)  # the default network beside the baseline ...
    assert cross_check_segmenter(baseline, cfg) is network  # ... loaded once for a batch
    assert isinstance(cross_check_segmenter(network, cfg), ThresholdSegmenter)  # the baseline beside a network
    assert cross_check_segmenter(baseline, _with("threshold")) is None  # the behaviour before auto
    assert isinstance(cross_check_segmenter(network, _with("threshold")), ThresholdSegmenter)
    assert cross_check_segmenter(network, _with("none")) is None
    assert cross_check_segmenter(baseline, _with("none")) is None


class _PeerSegmenter:
    """Stands in for a segmenter that is neither the baseline nor one of ichpipe's networks (BLAST-CT)."""

    name = "peer"

    def segment(self, volume: CTVolume) -> npt.NDArray[np.bool_]:  # never called here
        raise AssertionError("not segmented in this test")

    def describe(self) -> dict[str, Any]:
        return {"name": "peer", "kind": "peer network"}


def test_auto_runs_ichpipes_network_beside_a_peer_and_threshold_mode_the_baseline() -> None:
    # a peer shares the baseline's blind spots (measured: BLAST-CT x1 read 109 and 105 mL subdurals as 0.06 and
    # 0.00 mL with the baseline beside it and no flag), so auto puts ichpipe's default network beside it
    peer = _PeerSegmenter()
    assert isinstance(cross_check_segmenter(peer, _with("auto")), NetworkSegmenter)
    assert isinstance(cross_check_segmenter(peer, _with("threshold")), ThresholdSegmenter)
    assert cross_check_segmenter(peer, _with("none")) is None


def test_auto_beside_the_baseline_without_a_checkpoint_says_what_to_set(tmp_path: Path) -> None:
    cfg = _with("auto", dataclasses.replace(Config(), models=ModelsConfig(default_checkpoint=str(tmp_path / "x.pt"))))
    baseline = ThresholdSegmenter(cfg.threshold, anatomy=cfg.anatomy)
    with pytest.raises(CheckpointError, match=r"quality\.cross_check to 'threshold'"):
        cross_check_segmenter(baseline, cfg)


def test_the_network_beside_the_baseline_flags_its_wrong_volume_on_a_noisy_image(tmp_path: Path) -> None:
    # 12 HU of noise: measured, the baseline reads 35.2 mL of 11.8, the network beside it 12.2
    write_phantom_study(tmp_path / "s", PhantomSpec(seed=61, rows=128, columns=128, n_slices=14, volume_ml=12.0,
                                                    noise_hu=12.0))
    with scan_study(tmp_path / "s") as scan:
        volume = assemble_series(scan.require_selected().series)
    truth_ml = load_truth(tmp_path / "s").volume_ml
    cfg = Config()
    baseline = ThresholdSegmenter(cfg.threshold, anatomy=cfg.anatomy)
    before = analyse_volume(volume, baseline, _with("threshold"))
    assert before.measurement.volume_ml > 1.5 * truth_ml  # wrong ...
    assert "segmenter_disagreement" not in before.quality.codes and before.cross_check is None  # ... and silent
    after = analyse_volume(volume, baseline, cfg)
    assert after.measurement.volume_ml == before.measurement.volume_ml  # the volume is the baseline's still
    assert "segmenter_disagreement" in after.quality.codes
    assert after.cross_check is not None and after.cross_check["kind"] == "trained network"
    assert after.cross_check["volume_ml"] == pytest.approx(truth_ml, rel=0.15)
