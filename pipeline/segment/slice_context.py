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

Thin slices are averaged into thick slabs for the networks (:func:`thin_slabs`, :func:`slab_means`):
the networks learnt 4-6 mm slices, and a 0.625-1.25 mm slice holds two to three times their noise
(``inference.thin_slab_mm``; ``MODEL_CARD.md``, "Thin slices").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ichpipe.dicom_io.assemble import CTVolume

__all__ = ["CONTEXT_CHANNELS", "ThinSlabs", "neighbour_indices", "nominal_thickness_mm", "slab_means", "thin_slabs",
           "volume_slabs"]

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


@dataclass(frozen=True)
class ThinSlabs:
    """Each slice as a weighted mean of the slices around it (:func:`thin_slabs`).

    Attributes
    ----------
    start, stop:
        int, shape (n,): first index and one past the last of each slice's run (stack order).
    weights:
        float32, shape (n, k): the weights of the run's slices (summing to 1), zero-padded to the
        longest run.
    """

    start: IntArray
    stop: IntArray
    weights: npt.NDArray[np.float32]

    @property
    def max_slices(self) -> int:
        """Slices in the longest run."""
        return int(np.max(self.stop - self.start))


def thin_slabs(offsets_mm: npt.ArrayLike, *, slab_mm: float, alone: npt.ArrayLike | None = None) -> ThinSlabs:
    """Each slice as a slab of about ``slab_mm``: the slices whose centres lie under ``slab_mm / 2`` from it.

    The weights fall linearly with the distance, from 1 at the slice to 0 at ``slab_mm / 2`` (a
    triangular slice profile, like a thick helical reconstruction's). A 5 mm slab is 7 slices of
    0.625 mm, 5 of 1 mm, 3 of 1.25 or 2 mm, the slice alone from 2.5 mm up.

    Parameters
    ----------
    offsets_mm:
        Position of each slice along the normal, in stack order (ascending or descending).
    slab_mm:
        Thickness of the slab.
    alone:
        bool per slice: these are read alone (slices that are not thin; :func:`volume_slabs`).

    Raises
    ------
    ValueError
        If ``slab_mm`` is not positive, ``offsets_mm`` is not 1-D or not strictly monotonic.

    Examples
    --------
    >>> slabs = thin_slabs([0.0, 1.25, 2.5, 3.75, 5.0], slab_mm=5.0)
    >>> slabs.start.tolist(), slabs.weights[2].tolist(), slabs.weights[0].tolist()
    ([0, 0, 1, 2, 3], [0.25, 0.5, 0.25], [0.6666666865348816, 0.3333333432674408, 0.0])
    >>> thin_slabs([0.0, 5.0, 10.0], slab_mm=5.0).max_slices
    1
    """
    if not slab_mm > 0:
        raise ValueError(f"Argument 'slab_mm' must be positive; got {slab_mm}.")
    offsets = np.asarray(offsets_mm, dtype=np.float64)
    if offsets.ndim != 1:
        raise ValueError(f"Argument 'offsets_mm' must be 1-D; got shape {offsets.shape}.")
    steps = np.diff(offsets)
    if offsets.size > 1 and not (np.all(steps > 0) or np.all(steps < 0)):
        raise ValueError("Argument 'offsets_mm' must be strictly ascending or descending (slices sorted along"
                         " the normal).")
    ascending = offsets if offsets.size < 2 or steps[0] > 0 else -offsets
    half = 0.5 * slab_mm
    inner = half - 1e-3  # a slice slab_mm / 2 away (to rounding of the positions) is out: its weight would be 0
    lo = np.searchsorted(ascending, ascending - inner, side="left")
    hi = np.searchsorted(ascending, ascending + inner, side="right")
    if alone is not None:
        single = np.asarray(alone, dtype=bool)
        index = np.arange(offsets.size)
        lo, hi = np.where(single, index, lo), np.where(single, index + 1, hi)
    weights = np.zeros((offsets.size, int(np.max(hi - lo, initial=1))), dtype=np.float64)
    for i in range(offsets.size):
        w = 1.0 - np.abs(ascending[lo[i]:hi[i]] - ascending[i]) / half
        weights[i, :w.size] = w / w.sum()
    return ThinSlabs(start=lo.astype(np.intp), stop=hi.astype(np.intp), weights=weights.astype(np.float32))


def slab_means(hu: npt.NDArray[np.floating], slabs: ThinSlabs, picked: list[int]) -> npt.NDArray[np.float32]:
    """The slices ``picked`` of ``hu`` (slices, rows, columns), each the weighted mean of its run.

    >>> hu = np.arange(3, dtype=np.float32)[:, None, None] * np.ones((3, 2, 2), np.float32)
    >>> slab_means(hu, thin_slabs([0.0, 1.0, 2.0], slab_mm=4.0), [0, 1])[:, 0, 0].tolist()
    [0.3333333432674408, 1.0]
    """
    out = np.empty((len(picked), *hu.shape[1:]), dtype=np.float32)
    for k, i in enumerate(picked):
        start, stop = int(slabs.start[i]), int(slabs.stop[i])
        out[k] = hu[start] if stop - start == 1 else np.tensordot(
            slabs.weights[i, :stop - start], hu[start:stop].astype(np.float32), axes=1)
    return out


def nominal_thickness_mm(volume: CTVolume) -> npt.NDArray[np.float64]:
    """Each slice's reconstructed thickness: its header's SliceThickness, else the geometry's thickness.

    The header's value is what sets the noise: an overlapping reconstruction (5 mm slices every 2.5 mm),
    or two slices 1 mm apart where a protocol changes from 4 to 7 mm blocks, are not thin slices.
    """
    out = np.asarray(volume.geometry.slice_thickness_mm, dtype=np.float64).copy()
    for i, header in enumerate(volume.slices[:out.size]):
        value = header.dataset.get("SliceThickness")
        try:
            nominal = float(value) if value not in (None, "") else None
        except (TypeError, ValueError):
            nominal = None
        if nominal is not None and nominal > 0:
            out[i] = nominal
    return out


def volume_slabs(volume: CTVolume, *, slab_mm: float | None) -> ThinSlabs | None:
    """The slabs the thin slices of ``volume`` are read as, or ``None`` when every slice is read alone.

    A slice is thin when its :func:`nominal_thickness_mm` is under ``slab_mm / 2``; it is read as
    :func:`thin_slabs` says, every other slice alone. ``slab_mm`` ``None``: every slice alone.
    """
    if slab_mm is None or volume.hu.shape[0] < 2:
        return None
    slabs = thin_slabs(volume.geometry.offsets_mm, slab_mm=slab_mm,
                       alone=nominal_thickness_mm(volume) >= 0.5 * slab_mm)
    return slabs if slabs.max_slices > 1 else None
