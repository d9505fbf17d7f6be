"""``ichpipe.pipeline.segment.resize`` against torch's ``F.interpolate`` (bilinear, half-pixel centres).

The NumPy resize stands in for torch on the ONNX Runtime path, so it must give torch's numbers:
2e-6 absolute on 0-1 data for random images and sharp edges, over shrinking, enlarging, odd
factors, non-square images and the identity; the per-axis weights themselves equal torch's
(read back by resizing an identity matrix along one axis); and importing it imports no torch.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ichpipe.pipeline.segment.resize import network_grid, resize_bilinear, resize_matrix

TOLERANCE = 2e-6

# (rows, columns) in -> (rows, columns) out
SHAPES = [
    ((512, 512), (256, 256)),
    ((256, 256), (512, 512)),
    ((500, 500), (256, 256)),
    ((333, 333), (256, 256)),
    ((768, 768), (256, 256)),
    ((256, 256), (256, 256)),
    ((100, 100), (37, 37)),
    ((37, 37), (100, 100)),
    ((512, 400), (256, 256)),
    ((256, 256), (480, 512)),
    ((300, 299), (299, 300)),
    ((512, 256), (256, 512)),
    ((7, 1), (3, 5)),
]
SHAPE_IDS = [f"{r}x{c}->{h}x{w}" for (r, c), (h, w) in SHAPES]

AXIS_SIZES = [
    (512, 256), (256, 512), (500, 256), (333, 256), (768, 256), (256, 256), (100, 37), (37, 100),
    (400, 256), (256, 480), (1000, 3), (3, 1000), (1, 5), (5, 1), (299, 300), (300, 299),
]


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One torch thread (the machine is shared); restore the count afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _torch_resize(images: np.ndarray, size: tuple[int, int], antialias: bool) -> np.ndarray:
    tensor = torch.from_numpy(np.ascontiguousarray(images))[:, None]
    out = F.interpolate(tensor, size=size, mode="bilinear", align_corners=False, antialias=antialias)
    return out[:, 0].numpy()


def _edge_images(rows: int, cols: int) -> np.ndarray:
    """Sharp edges at odd offsets, a one-pixel line, a checkerboard and a lone bright pixel."""
    r, c = np.mgrid[0:rows, 0:cols]
    step = ((r >= rows // 3) & (c >= (2 * cols) // 5 + 1)).astype(np.float32)
    line = (c == cols // 2).astype(np.float32) + (r == (rows - 1) // 3).astype(np.float32)
    checker = ((r + c) % 2).astype(np.float32)
    dot = np.zeros((rows, cols), np.float32)
    dot[rows - 1, cols - 1] = 1.0
    return np.stack([step, np.minimum(line, 1.0), checker, dot])


@pytest.mark.parametrize("antialias", [True, False], ids=["antialias", "plain"])
@pytest.mark.parametrize(("shape_in", "size"), SHAPES, ids=SHAPE_IDS)
def test_matches_torch_on_random_and_edge_images(
    shape_in: tuple[int, int], size: tuple[int, int], antialias: bool
) -> None:
    rng = np.random.default_rng(sum(shape_in) * 1000 + sum(size))
    images = np.concatenate([rng.random((3, *shape_in), dtype=np.float32), _edge_images(*shape_in)])

    ours = resize_bilinear(images, size, antialias=antialias)
    theirs = _torch_resize(images, size, antialias)

    assert ours.dtype == np.float32
    assert ours.shape == theirs.shape == (len(images), *size)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("antialias", [True, False], ids=["antialias", "plain"])
@pytest.mark.parametrize(("in_size", "out_size"), AXIS_SIZES, ids=[f"{a}->{b}" for a, b in AXIS_SIZES])
def test_matrix_is_torchs_weights_and_rows_sum_to_one(in_size: int, out_size: int, antialias: bool) -> None:
    matrix = resize_matrix(in_size, out_size, antialias=antialias)
    # Resizing the rows of an identity matrix (columns unchanged) gives torch's weights: each
    # output holds one weight times 1 plus zeros (measured identical to the bit with torch 2.13).
    eye = torch.eye(in_size, dtype=torch.float32)[None, None]
    weights = F.interpolate(eye, size=(out_size, in_size), mode="bilinear", align_corners=False,
                            antialias=antialias)[0, 0].numpy()

    assert matrix.shape == (out_size, in_size)
    assert matrix.dtype == np.float32
    np.testing.assert_allclose(matrix, weights, rtol=0, atol=1e-7)
    np.testing.assert_allclose(matrix.sum(axis=1, dtype=np.float64), 1.0, rtol=0, atol=1e-6)
    assert (matrix >= 0).all()


def test_matrix_is_cached_and_read_only() -> None:
    matrix = resize_matrix(512, 256, antialias=True)
    assert resize_matrix(512, 256, antialias=True) is matrix
    assert not matrix.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        matrix[0, 0] = 2.0
    assert resize_matrix(512, 256, antialias=False) is not matrix


def test_shrinking_with_antialias_averages_every_input_pixel() -> None:
    # 2:1 with antialias: taps 1/8, 3/8, 3/8, 1/8 (edges renormalised), unlike plain bilinear's 1/2, 1/2.
    np.testing.assert_array_equal(resize_matrix(8, 4, antialias=True)[1, :6], [0, 0.125, 0.375, 0.375, 0.125, 0])
    np.testing.assert_array_equal(resize_matrix(8, 4, antialias=False)[1, :6], [0, 0, 0.5, 0.5, 0, 0])


def test_same_size_returns_a_float32_copy() -> None:
    images = np.random.default_rng(0).random((2, 16, 12), dtype=np.float32)
    out = resize_bilinear(images, (16, 12), antialias=True)
    np.testing.assert_array_equal(out, images)
    assert out is not images and not np.shares_memory(out, images)


def test_other_dtypes_layouts_and_empty_batches() -> None:
    rng = np.random.default_rng(1)
    images = rng.random((2, 40, 30))  # float64, converted to float32 first
    expected = _torch_resize(images.astype(np.float32), (20, 25), True)
    np.testing.assert_allclose(resize_bilinear(images, (20, 25), antialias=True), expected, rtol=0, atol=TOLERANCE)
    strided = images.astype(np.float32).transpose(0, 2, 1)  # not C-contiguous
    expected = _torch_resize(np.ascontiguousarray(strided), (50, 17), False)
    np.testing.assert_allclose(resize_bilinear(strided, (50, 17), antialias=False), expected, rtol=0, atol=TOLERANCE)
    numpy_size: Any = (np.int64(20), np.int32(25))
    np.testing.assert_array_equal(resize_bilinear(images, numpy_size, antialias=True),
                                  resize_bilinear(images, (20, 25), antialias=True))
    empty = resize_bilinear(np.zeros((0, 8, 8), np.float32), (4, 4), antialias=True)
    assert empty.shape == (0, 4, 4) and empty.dtype == np.float32


@pytest.mark.parametrize(
    ("images", "size", "match"),
    [
        (np.zeros((8, 8), np.float32), (4, 4), r"images must be a 3-D array .* got shape \(8, 8\)"),
        (np.zeros((1, 1, 8, 8), np.float32), (4, 4), r"images must be a 3-D array"),
        (np.zeros((1, 0, 8), np.float32), (4, 4), r"images must have at least one row and one column"),
        (np.zeros((1, 8, 8), np.float32), (0, 4), r"size\[0\] \(rows\) must be a positive integer; got 0"),
        (np.zeros((1, 8, 8), np.float32), (4, -2), r"size\[1\] \(columns\) must be a positive integer; got -2"),
        (np.zeros((1, 8, 8), np.float32), (4.5, 4), r"size\[0\] \(rows\) must be a positive integer; got 4.5"),
        (np.zeros((1, 8, 8), np.float32), (4, True), r"size\[1\] \(columns\) must be a positive integer"),
        (np.zeros((1, 8, 8), np.float32), (4,), r"size must be two positive integers \(rows, columns\)"),
        (np.zeros((1, 8, 8), np.float32), 4, r"size must be two positive integers"),
    ],
)
def test_bad_input_raises_a_sentence_naming_the_argument(images: np.ndarray, size: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        resize_bilinear(images, size, antialias=True)


@pytest.mark.parametrize(
    ("in_size", "out_size", "match"),
    [(0, 4, r"in_size must be a positive integer; got 0"), (4, -1, r"out_size must be a positive integer; got -1"),
     (4.0, 2, r"in_size must be a positive integer; got 4.0")],
)
def test_bad_matrix_sizes_raise(in_size: Any, out_size: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        resize_matrix(in_size, out_size, antialias=False)


def test_importing_the_module_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import ichpipe.pipeline.segment.resize\n"
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def test_network_grid_widens_only_the_axis_whose_pixel_is_too_wide() -> None:
    assert network_grid((512, 512), (0.45, 0.45), (256, 256), max_pixel_mm=1.1) == (256, 256)
    assert network_grid((512, 512), (0.55, 0.55), (256, 256), max_pixel_mm=1.1) == (256, 256)  # exactly 1.1 mm
    assert network_grid((512, 400), (0.9, 0.45), (256, 256), max_pixel_mm=1.1) == (419, 256)
    assert network_grid((512, 512), (0.98, 0.98), (256, 256), max_pixel_mm=None) == (256, 256)
    with pytest.raises(ValueError, match="'max_pixel_mm' must be positive"):
        network_grid((512, 512), (0.45, 0.45), (256, 256), max_pixel_mm=0.0)
