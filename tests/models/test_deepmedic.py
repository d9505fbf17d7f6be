"""The BLAST-CT v1 DeepMedic network: sizes, published key names and shapes, loading, pathway alignment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from deepmedic_support import random_deepmedic_state, tiny_deepmedic, tiny_deepmedic_net

from ichpipe.models.deepmedic import (
    DeepMedic,
    PreActBlock,
    coarse_sample_index,
    crop_center,
    input_size_for_output,
    output_size_for_input,
    pathway_input_size,
)

# --- shapes and size arithmetic -------------------------------------------------------------


def test_output_shape_and_batch() -> None:
    net = tiny_deepmedic()
    with torch.inference_mode():
        y = net(torch.randn(2, 1, 85, 90, 95))
    assert y.shape == (2, 5, 5, 10, 15)


def test_training_geometry_from_the_paper() -> None:
    # BLAST-CT trains on 110^3 patches with 30^3 outputs; pathway inputs 110, 78, 46
    assert input_size_for_output((30, 30, 30)) == (110, 110, 110)
    assert output_size_for_input((110, 110, 110)) == (30, 30, 30)
    assert [pathway_input_size((30, 30, 30), (s, s, s)) for s in (5, 3, 1)] == [(110,) * 3, (78,) * 3, (46,) * 3]
    for out in range(5, 200, 5):
        size = input_size_for_output((out, 5, 10))
        assert size == (out + 80, 85, 90)
        assert output_size_for_input(size) == (out, 5, 10)


def test_bad_sizes_raise() -> None:
    with pytest.raises(ValueError, match="multiple of 5"):
        input_size_for_output((31, 30, 30))
    with pytest.raises(ValueError, match=r"not a valid DeepMedic input: use \(85, 85, 85\) or \(90, 85, 85\)"):
        output_size_for_input((86, 85, 85))
    with pytest.raises(ValueError, match="not a valid DeepMedic input"):
        output_size_for_input((80, 85, 85))
    with pytest.raises(ValueError, match="5-D tensor"):
        tiny_deepmedic()(torch.zeros(1, 85, 85, 85))
    with pytest.raises(ValueError, match="not a valid DeepMedic input"):
        tiny_deepmedic()(torch.zeros(1, 1, 84, 85, 85))
    with pytest.raises(ValueError, match="3 positive integers"):
        crop_center(torch.zeros(1, 1, 4, 4, 4), (2, 2))
    with pytest.raises(ValueError, match="does not fit"):
        crop_center(torch.zeros(1, 1, 4, 4, 4), (5, 2, 2))
    with pytest.raises(ValueError, match="non-increasing"):
        DeepMedic(scale_factors=((1, 1, 1), (3, 3, 3)))


# --- the published state dict ---------------------------------------------------------------


def test_state_dict_names_and_sizes_match_blast_ct_v1() -> None:
    state = DeepMedic().state_dict()
    # FACTS.md: 189 tensors, 1,032,986 numbers (1,030,033 parameters + BN statistics and counters)
    assert len(state) == 189
    assert sum(v.numel() for v in state.values()) == 1_032_986
    assert tuple(state["path(5, 5, 5)0.path.1.conv.weight"].shape) == (30, 1, 3, 3, 3)
    assert tuple(state["path(1, 1, 1)2.path.8.conv.weight"].shape) == (50, 50, 3, 3, 3)
    assert tuple(state["fully_connected.0.conv.weight"].shape) == (250, 150, 1, 1, 1)
    assert tuple(state["fully_connected.2.conv.weight"].shape) == (5, 250, 1, 1, 1)
    assert tuple(state["path(3, 3, 3)1.path.4.prelu.weight"].shape) == (1,)


def test_state_dict_equals_published_key_list(shared_data: Path) -> None:
    listed = {}
    for line in (shared_data / "blast-ct-v1" / "state_dict_keys.txt").read_text().splitlines():
        if line.strip():
            key, shape = line.rsplit(" (", 1)
            listed[key] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    ours = {k: tuple(v.shape) for k, v in DeepMedic().state_dict().items()}
    assert ours == listed


def test_denormal_parameters_are_flushed_only_when_asked() -> None:
    state = random_deepmedic_state(3)
    state["path(1, 1, 1)2.path.2.conv.weight"][0, 0, 0, 0, 0] = 1e-41
    flushed = DeepMedic.from_state_dict(state).state_dict()["path(1, 1, 1)2.path.2.conv.weight"]
    kept = DeepMedic.from_state_dict(state, flush_denormals=False).state_dict()["path(1, 1, 1)2.path.2.conv.weight"]
    assert flushed[0, 0, 0, 0, 0] == 0.0 and kept[0, 0, 0, 0, 0] != 0.0
    assert torch.equal(flushed[0, 0, 0, 0, 1:], kept[0, 0, 0, 0, 1:])


# --- alignment of the pathways, through the real forward pass --------------------------------


def _probe() -> DeepMedic:
    """Linear network whose class k returns (a multiple of) the input voxel pathway k reads.

    BN is the identity, PReLU slope 1, every convolution copies channel 0 from its centre tap,
    the head routes pathway k's channel 0 to class k (k = 0: factor 5, 1: factor 3, 2: factor 1).
    """
    net = tiny_deepmedic_net()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                assert m.running_mean is not None and m.running_var is not None
                m.eps = 0.0
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
                m.weight.fill_(1.0)
                m.bias.zero_()
            elif isinstance(m, torch.nn.PReLU):
                m.weight.fill_(1.0)
            elif isinstance(m, torch.nn.Conv3d):
                m.weight.zero_()
                if m.kernel_size == (3, 3, 3):
                    m.weight[0, 0, 1, 1, 1] = 1.0
        head = [b for b in net.fully_connected if isinstance(b, PreActBlock)]
        for k in range(3):
            head[0].conv.weight[k, 2 * k] = 1.0
            head[1].conv.weight[k, k] = 1.0
            head[2].conv.weight[k, k] = 1.0
    return net.eval()


@pytest.mark.parametrize("out", [5, 10, 15, 25, 30, 35, 40, 45])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_coarse_pathways_are_centred_on_the_normal_pathway(out: int, axis: int) -> None:
    net = _probe()
    shape = [85, 85, 85]
    shape[axis] = out + 80
    with torch.inference_mode():
        gain = net(torch.ones(1, 1, *shape))[0, :3, 0, 0, 0]
        ramp = torch.arange(1, out + 81, dtype=torch.float32).reshape([-1 if a == axis else 1 for a in range(3)])
        y = net(ramp.expand(*shape).reshape(1, 1, *shape).contiguous())
    line = y[0, :3].movedim(axis + 1, 1)[:, :, 2, 2] / gain[:, None]  # (3 pathways, out)
    read = np.rint(line.numpy()).astype(int) - 1  # 0-based input index each output voxel reads
    j = np.arange(out)
    assert read[2].tolist() == (40 + j).tolist()  # normal pathway: output j sits on input 40 + j
    for k, factor in ((0, 5), (1, 3)):
        assert np.all(np.abs(read[k] - (40 + j)) <= factor // 2), (factor, read[k])
        assert read[k].tolist() == coarse_sample_index(out, factor)
        # up-sampling by repetition: the coarse voxel read steps by exactly `factor`, never skips one
        assert set(np.diff(read[k]).tolist()) <= {0, factor}


def test_coarse_sample_index_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="multiple of 5"):
        coarse_sample_index(12, 3)
    with pytest.raises(ValueError, match="'factor' must be between 1 and 5"):
        coarse_sample_index(10, 7)


