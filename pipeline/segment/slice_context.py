"""Neighbouring slices as extra input channels (2.5D): which slice lies ``context_mm`` below and above.

A 2D network sees one slice. The first and last slice of a clot hold only part of it (partial
volume across a 5 mm slab), so there the clot is faint; a reader decides from the slices next to
it. A checkpoint trained with ``slice_context_mm`` (its metadata) takes three channels: the slice
about ``context_mm`` below, the slice itself, the slice about ``context_mm`` above, along the
slice normal.

The neighbour of slice ``i`` is the slice whose offset along the normal is nearest to
``offset[i] -/+ context_mm``, among the slices on that side; at the first and last slice, the
slice itself (as edge padding). So 5 mm studies use the next slice, 0.625 mm studies the eighth,
and uneven spacing is honoured: the same rule in training and at inference.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["CONTEXT_CHANNELS", "neighbour_indices"]

#: Input channels of a network with slice context: below, the slice, above.
CONTEXT_CHANNELS = 3

IntArray = npt.NDArray[np.intp]


def neighbour_indices(offsets_mm: npt.ArrayLike, *, context_mm: float) -> IntArray:
    """For each slice, the indices of its neighbours ``context_mm`` below and above.

    Parameters
    ----------
    offsets_mm:
        Position of each slice along the normal, in stack order (ascending or descending).
    context_mm:
        Wanted distance to each neighbour.

    Returns
    -------
    numpy.ndarray
        int, shape (n, 2): the neighbour at lower offset, the neighbour at higher offset (the slice
        itself where it has none on that side).

    Raises
    ------
    ValueError
        If ``context_mm`` is not positive or ``offsets_mm`` is not 1-D.

    Examples
    --------
    >>> neighbour_indices([0.0, 5.0, 10.0], context_mm=5.0).tolist()
    [[0, 1], [0, 2], [1, 2]]
    >>> neighbour_indices([0.0, 1.25, 2.5, 3.75, 5.0, 6.25], context_mm=5.0)[0].tolist()
    [0, 4]
    >>> neighbour_indices([10.0, 5.0, 0.0], context_mm=5.0).tolist()  # descending stack
    [[1, 0], [2, 0], [2, 1]]
    """
    if not context_mm > 0:
        raise ValueError(f"Argument 'context_mm' must be positive; got {context_mm}.")
    offsets = np.asarray(offsets_mm, dtype=np.float64)
    if offsets.ndim != 1:
        raise ValueError(f"Argument 'offsets_mm' must be 1-D; got shape {offsets.shape}.")
    n = offsets.size
    out = np.empty((n, 2), dtype=np.intp)
    for i in range(n):
        for side, sign in enumerate((-1.0, 1.0)):
            others = np.flatnonzero(sign * (offsets - offsets[i]) > 0)
            if others.size == 0:
                out[i, side] = i
            else:
                target = offsets[i] + sign * context_mm
                out[i, side] = others[int(np.argmin(np.abs(offsets[others] - target)))]
    return out

