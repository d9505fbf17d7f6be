"""Bilinear resizing of image stacks as PyTorch does it, in NumPy only.

The segmentation network sees 256 x 256 slices: CT slices (usually 512 x 512) are shrunk with
``F.interpolate(x, size, mode="bilinear", align_corners=False, antialias=True)`` and the
network's probabilities are brought back with the same call without ``antialias``. The ONNX
Runtime inference path must not import torch, whose import alone costs 1.1-1.5 s of start-up, so
it uses this module instead, which gives the same numbers (to 2.4e-7 or better on 0-1 data).

Both modes are separable: one ``(out, in)`` weight matrix per axis (:func:`resize_matrix`),
applied to the rows, then to the columns (or the other way round, whichever is cheaper;
:func:`resize_bilinear`). The weights follow ATen's CPU kernel
(``aten/src/ATen/native/cpu/UpSampleKernel.cpp``) term by term, including its float32 and
float64 roundings, so they are the weights torch uses, bit for bit:

- ``antialias=True`` (PIL's separable filter; ``_compute_indices_min_size_weights_aa`` with
  ``HelperInterpLinear::aa_filter``): ``scale = in / out``; a triangle filter of half-width
  ``support = scale`` input pixels when shrinking (1 when enlarging), centred on
  ``scale * (i + 0.5)``, over the input pixels ``[int(center - support + 0.5),
  int(center + support + 0.5))`` clipped to the image, normalised to sum 1;
- ``antialias=False`` (``area_pixel_compute_source_index``): source position
  ``scale * (i + 0.5) - 0.5`` clamped at 0, its two neighbours weighted ``1 - lambda`` and
  ``lambda`` (the last pixel repeated at the far edge).

Only the non-zero band of each matrix is multiplied (in blocks of output pixels, each a BLAS
matrix product): 32 slices 512 -> 256 or 256 -> 512 take 10-15 ms on one core, as long as torch
takes, against about 60 ms with the dense matrices. A consequence, as with any matrix product: a
NaN or an infinity in the input spreads to the whole block of outputs around it, where torch
spreads it to the outputs that take it as a tap only.
"""

from __future__ import annotations

import functools
import operator
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["network_grid", "resize_bilinear", "resize_matrix"]

FloatArray = npt.NDArray[np.float32]

# Output pixels per block of the banded product: small enough that little of each block's
# input window is zero weight, large enough for an efficient BLAS call (measured: 8-32 best).
_BLOCK = 16

# The columns pass (one product over all image lines per block, on a strided slice) took about
# twice the time per multiply-add of the rows pass (one product per image) in measurements
# (OpenBLAS, one thread, 32 slices 512 -> 256 and 256 -> 512); the order of the passes is chosen
# with that weight.
_COLS_PASS_WEIGHT = 2

# (first output, end output, first input, end input, weights, weights transposed)
_Band = tuple[int, int, int, int, FloatArray, FloatArray]


def _positive_int(value: Any, name: str) -> int:
    """``value`` as an int, or a ValueError that names the argument."""
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.") from None
    if number < 1:
        raise ValueError(f"{name} must be a positive integer; got {number}.")
    return number


def _antialias_weights(in_size: int, out_size: int) -> FloatArray:
    """Torch's antialiased bilinear weights for float32 input, as a dense matrix."""
    f32, f64 = np.float32, np.float64
    scale = f32(in_size) / f32(out_size)
    # support = (interp_size * 0.5) * scale (double product stored as float), or 1.
    support = scale if scale >= 1.0 else f32(1.0)
    invscale = f32(1.0 / f64(scale)) if scale >= 1.0 else f32(1.0)
    max_taps = int(np.ceil(support)) * 2 + 1
    out_index = np.arange(out_size, dtype=f64)
    center = (f64(scale) * (out_index + 0.5)).astype(f32)
    # static_cast<int64_t>(float + 0.5): the sum in double, truncated toward zero.
    xmin = np.maximum(((center - support).astype(f64) + 0.5).astype(np.int64), 0)
    xend = np.minimum(((center + support).astype(f64) + 0.5).astype(np.int64), in_size)
    xsize = np.clip(xend - xmin, 0, max_taps)
    taps = np.arange(max_taps, dtype=np.int64)
    index = xmin[:, None] + taps[None, :]
    # filter((j + xmin - center + 0.5) * invscale): int - float in float, the rest in double,
    # the argument stored as float, 1 - |x| in double, stored as float.
    x = np.abs((((index.astype(f32) - center[:, None]).astype(f64) + 0.5) * f64(invscale)).astype(f32))
    weights = np.where(x < 1.0, (1.0 - x.astype(f64)).astype(f32), f32(0.0))
    weights[taps[None, :] >= xsize[:, None]] = 0.0
    # total_w: a float sum in tap order (cumsum is sequential, unlike sum).
    total = np.cumsum(weights, axis=1, dtype=f32)[:, -1]
    safe = np.where(total != 0.0, total, f32(1.0))
    weights = (weights / safe[:, None]).astype(f32)
    matrix = np.zeros((out_size, in_size), dtype=f32)
    rows, cols = np.nonzero(taps[None, :] < xsize[:, None])
    matrix[rows, index[rows, cols]] = weights[rows, cols]
    return matrix


def _linear_weights(in_size: int, out_size: int) -> FloatArray:
    """Torch's bilinear weights (no antialiasing, half-pixel centres) for float32 input."""
    f32, f64 = np.float32, np.float64
    scale = f32(in_size) / f32(out_size)
    out_index = np.arange(out_size, dtype=f64)
    # scale * (i + 0.5) - 0.5 in double, stored as float, clamped at 0.
    source = (f64(scale) * (out_index + 0.5) - 0.5).astype(f32)
    source = np.maximum(source, f32(0.0))
    index0 = np.minimum(np.floor(source).astype(np.int64), in_size - 1)
    lambda1 = np.clip(source - index0.astype(f32), f32(0.0), f32(1.0)).astype(f32)
    lambda0 = (f32(1.0) - lambda1).astype(f32)
    index1 = np.where(index0 < in_size - 1, index0 + 1, index0)
    matrix = np.zeros((out_size, in_size), dtype=f32)
    rows = np.arange(out_size)
    np.add.at(matrix, (rows, index0), lambda0)
    np.add.at(matrix, (rows, index1), lambda1)
    return matrix


@functools.lru_cache(maxsize=64, typed=True)  # typed: 4.0 must not hit the entry of 4
def resize_matrix(in_size: int, out_size: int, *, antialias: bool) -> FloatArray:
    """The weights that resize one axis of ``in_size`` pixels to ``out_size``, as torch does.

    Row ``i`` holds the weight of every input pixel in output pixel ``i`` of
    ``F.interpolate(..., mode="bilinear", align_corners=False, antialias=antialias)`` along
    that axis (float32 input); each row sums to 1.

    Parameters
    ----------
    in_size, out_size
        number of pixels along the axis before and after resizing (positive).
    antialias
        ``True``: PIL's triangle filter, widened by the shrink factor when shrinking (torch's
        ``antialias=True``); ``False``: plain bilinear interpolation between the two nearest
        input pixels.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(out_size, in_size)``, read-only (the result is cached).

    Raises
    ------
    ValueError
        when a size is not a positive integer.

    Examples
    --------
    Halving: output pixel 1 covers input pixels 1-4 with antialiasing, 2-3 without.

    >>> resize_matrix(8, 4, antialias=True)[1]
    array([0.   , 0.125, 0.375, 0.375, 0.125, 0.   , 0.   , 0.   ],
          dtype=float32)
    >>> resize_matrix(8, 4, antialias=False)[1]
    array([0. , 0. , 0.5, 0.5, 0. , 0. , 0. , 0. ], dtype=float32)
    """
    in_size = _positive_int(in_size, "in_size")
    out_size = _positive_int(out_size, "out_size")
    matrix = _antialias_weights(in_size, out_size) if antialias else _linear_weights(in_size, out_size)
    matrix.flags.writeable = False
    return matrix


@functools.lru_cache(maxsize=64)
def _bands(in_size: int, out_size: int, antialias: bool) -> tuple[_Band, ...]:
    """The non-zero band of :func:`resize_matrix` in blocks of ``_BLOCK`` output pixels."""
    matrix = resize_matrix(in_size, out_size, antialias=antialias)
    bands = []
    for start in range(0, out_size, _BLOCK):
        stop = min(start + _BLOCK, out_size)
        used = np.flatnonzero(matrix[start:stop].any(axis=0))
        first, end = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 1)
        block = np.ascontiguousarray(matrix[start:stop, first:end])
        block_t = np.ascontiguousarray(block.T)
        block.flags.writeable = False
        block_t.flags.writeable = False
        bands.append((start, stop, first, end, block, block_t))
    return tuple(bands)


def _band_cost(bands: tuple[_Band, ...]) -> int:
    """Multiply-adds per line of the banded product."""
    return sum((stop - start) * (end - first) for start, stop, first, end, _, _ in bands)


def _resize_rows(images: FloatArray, bands: tuple[_Band, ...], out_rows: int) -> FloatArray:
    """``matrix @ image`` for every image of the stack, band by band."""
    n, _, cols = images.shape
    result = np.empty((n, out_rows, cols), dtype=np.float32)
    for start, stop, first, end, block, _ in bands:
        np.matmul(block, images[:, first:end, :], out=result[:, start:stop, :])
    return result


def _resize_cols(images: FloatArray, bands: tuple[_Band, ...], out_cols: int) -> FloatArray:
    """``image @ matrix.T`` for every image of the stack, band by band, as one product per band."""
    n, rows, cols = images.shape
    flat = images.reshape(n * rows, cols)
    result = np.empty((n * rows, out_cols), dtype=np.float32)
    for start, stop, first, end, _, block_t in bands:
        np.matmul(flat[:, first:end], block_t, out=result[:, start:stop])
    return result.reshape(n, rows, out_cols)


def resize_bilinear(images: npt.ArrayLike, size: tuple[int, int], *, antialias: bool) -> FloatArray:
    """Resize a stack of images as ``F.interpolate(mode="bilinear", align_corners=False)`` does.

    Equal to ``F.interpolate(torch.from_numpy(images)[:, None], size=size, mode="bilinear",
    align_corners=False, antialias=antialias)[:, 0]`` to within float32 rounding (a few 1e-7 on
    0-1 data), without torch.

    Parameters
    ----------
    images
        ``(n, rows, columns)`` stack of 2-D images; converted to float32.
    size
        ``(rows, columns)`` of the result, positive.
    antialias
        ``True`` to filter as torch's ``antialias=True`` (use it to shrink: every input pixel
        counts); ``False`` for plain bilinear interpolation (torch's default).

    Returns
    -------
    numpy.ndarray
        float32, shape ``(n, size[0], size[1])``; a new array, also when the size is unchanged.

    Raises
    ------
    ValueError
        when ``images`` is not a 3-D stack with at least one row and one column, or ``size`` is
        not two positive integers.

    Examples
    --------
    >>> import numpy as np
    >>> images = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    >>> resize_bilinear(images, (2, 2), antialias=False)
    array([[[ 2.5,  4.5],
            [10.5, 12.5]]], dtype=float32)
    >>> resize_bilinear(images, (2, 2), antialias=True).round(3)
    array([[[ 3.571,  5.143],
            [ 9.857, 11.429]]], dtype=float32)
    >>> resize_bilinear(images, (3, 6), antialias=False).shape
    (1, 3, 6)
    """
    array = np.asarray(images)
    if array.ndim != 3:
        raise ValueError(f"images must be a 3-D array (n, rows, columns); got shape {array.shape}.")
    if array.shape[1] < 1 or array.shape[2] < 1:
        raise ValueError(f"images must have at least one row and one column; got shape {array.shape}.")
    if isinstance(size, str | bytes) or not hasattr(size, "__len__") or len(size) != 2:
        raise ValueError(f"size must be two positive integers (rows, columns); got {size!r}.")
    out_rows = _positive_int(size[0], "size[0] (rows)")
    out_cols = _positive_int(size[1], "size[1] (columns)")
    n, rows, cols = array.shape
    if n == 0:
        return np.empty((0, out_rows, out_cols), dtype=np.float32)
    if (out_rows, out_cols) == (rows, cols):
        return np.array(array, dtype=np.float32, order="C", copy=True)
    result = np.ascontiguousarray(array, dtype=np.float32)
    row_bands = _bands(rows, out_rows, antialias) if out_rows != rows else ()
    col_bands = _bands(cols, out_cols, antialias) if out_cols != cols else ()
    # Cost of each order: the first pass runs over every input line, the second over the
    # first's output lines; the cheaper order is taken (for a square image: the rows pass on
    # the larger of the input and the output).
    row_cost, col_cost = _band_cost(row_bands), _COLS_PASS_WEIGHT * _band_cost(col_bands)
    rows_first = cols * row_cost + out_rows * col_cost
    cols_first = rows * col_cost + out_cols * row_cost
    if rows_first <= cols_first:
        if row_bands:
            result = _resize_rows(result, row_bands, out_rows)
        if col_bands:
            result = _resize_cols(result, col_bands, out_cols)
    else:
        if col_bands:
            result = _resize_cols(result, col_bands, out_cols)
        if row_bands:
            result = _resize_rows(result, row_bands, out_rows)
    return result


def network_grid(
    shape: tuple[int, int],
    pixel_spacing_mm: tuple[float, float] | npt.ArrayLike,
    input_size: tuple[int, int],
    *,
    max_pixel_mm: float | None = None,
) -> tuple[int, int]:
    """The size a slice of ``shape`` is resized to before a network trained on ``input_size`` slices reads it.

    A slice is resized to ``input_size``, unless one of the network's pixels would then be wider than
    ``max_pixel_mm``: along that axis it is resized to the size at which a pixel is ``max_pixel_mm``
    instead (a large field of view, where the head would be smaller than any the networks learnt). The
    networks are fully convolutional and read any grid; a larger one costs time (``bench/large_field.py``).

    Parameters
    ----------
    shape:
        The slice's rows and columns.
    pixel_spacing_mm:
        Its pixel size along the rows and the columns (mm).
    input_size:
        The network's input size (rows, columns) from its checkpoint.
    max_pixel_mm:
        The widest network pixel allowed (mm); ``None``: always ``input_size``.

    Examples
    --------
    >>> network_grid((512, 512), (0.45, 0.45), (256, 256), max_pixel_mm=1.1)  # a 230 mm field
    (256, 256)
    >>> network_grid((512, 512), (0.95, 0.95), (256, 256), max_pixel_mm=1.1)  # a 486 mm field
    (443, 443)
    >>> network_grid((512, 512), (0.95, 0.95), (256, 256))
    (256, 256)
    """
    spacing = [float(v) for v in np.asarray(pixel_spacing_mm, dtype=np.float64).reshape(-1)[:2]]
    if max_pixel_mm is not None and not max_pixel_mm > 0:
        raise ValueError(f"Argument 'max_pixel_mm' must be positive, or None; got {max_pixel_mm!r}.")
    grid = []
    for n, size, px in zip(shape, input_size, spacing, strict=True):
        if max_pixel_mm is not None and px * n / size > max_pixel_mm:
            size = int(np.ceil(px * n / max_pixel_mm - 1e-9))
        grid.append(int(size))
    return grid[0], grid[1]
