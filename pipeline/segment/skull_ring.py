"""Rays from a slice's centre: the skull ring, its gaps, and a virtual inner table across them.

Helpers of :mod:`ichpipe.pipeline.segment.intracranial` (steps 5 and 6 of its docstring); plain numpy/scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = ["Rays", "cast_rays", "gap_runs", "star_hull", "virtual_table"]

BoolArray = npt.NDArray[np.bool_]


@dataclass
class Rays:
    """Per-ray measurements (mm from the centre; nan where a ray has no skull)."""

    step_mm: float
    angles: npt.NDArray[np.float64]
    r_head: npt.NDArray[np.float64]  # mm, outermost head pixel
    r_out: npt.NDArray[np.float64]  # mm, outer edge of the skull (nan on gap rays)
    r_in: npt.NDArray[np.float64]  # mm, inner edge of the skull (nan on gap rays)
    has_bone: BoolArray  # skull rays: barrier within scalp_search_mm of the outline
    is_gap: BoolArray  # no barrier at all beyond gap_from_fraction of the outline radius


def cast_rays(head: BoolArray, barrier: BoolArray, centre: tuple[float, float], spacing: tuple[float, float], *,
              n_rays: int, scalp_search_mm: float, gap_from_fraction: float) -> Rays:
    """Sample ``head`` and ``barrier`` along ``n_rays`` rays from ``centre`` (row, column pixels).

    On each ray: the outline (outermost head pixel), the outermost barrier run
    within ``scalp_search_mm`` of it (the skull: outer and inner edge, a 1.5 mm
    break tolerated), and whether the ray is a gap (no barrier at all beyond
    ``gap_from_fraction`` of the outline radius).
    """
    dy, dx = spacing
    step = min(dy, dx)
    ys, xs = np.nonzero(head)
    cy, cx = centre
    rmax = float(np.sqrt(np.max(((ys - cy) * dy) ** 2 + ((xs - cx) * dx) ** 2))) + 2 * step
    radii = np.arange(0.0, rmax, step)
    angles = np.asarray(np.arange(n_rays) * (2 * np.pi / n_rays), dtype=np.float64)
    yy = np.rint(cy + np.sin(angles)[:, None] * radii[None, :] / dy).astype(np.intp)
    xx = np.rint(cx + np.cos(angles)[:, None] * radii[None, :] / dx).astype(np.intp)
    valid = (yy >= 0) & (yy < head.shape[0]) & (xx >= 0) & (xx < head.shape[1])
    yy, xx = np.clip(yy, 0, head.shape[0] - 1), np.clip(xx, 0, head.shape[1] - 1)
    h = head[yy, xx] & valid
    b = barrier[yy, xx] & valid
    length = radii.size
    idx = np.arange(length)[None, :]
    last_head = np.where(h.any(1), length - 1 - np.argmax(h[:, ::-1], axis=1), 0)
    depth = round(scalp_search_mm / step)
    band = b & (idx >= (last_head - depth)[:, None]) & (idx <= last_head[:, None])
    has_bone = band.any(1)
    # a ray with barrier only deeper than the band (skull base, calcification) is blocked, not a gap
    deep = b & (idx >= (gap_from_fraction * last_head)[:, None]) & (idx <= last_head[:, None])
    is_gap = ~deep.any(1)
    last_bone = np.where(has_bone, length - 1 - np.argmax(band[:, ::-1], axis=1), -1)
    # inner edge of that run: tolerate 1.5 mm breaks along the ray (diploe, partial volume)
    tol = max(1, round(1.5 / step))
    bridged = ndimage.binary_closing(b, structure=np.ones((1, 2 * tol + 1), dtype=bool))
    outside_run = ~bridged & (idx < last_bone[:, None])
    first = np.where(outside_run.any(1), length - np.argmax(outside_run[:, ::-1], axis=1), 0)
    r_out = np.where(has_bone, last_bone * step, np.nan)
    r_in = np.where(has_bone, first * step, np.nan)
    return Rays(step, angles, np.asarray(last_head * step, dtype=np.float64), np.asarray(r_out, dtype=np.float64),
                 np.asarray(r_in, dtype=np.float64), has_bone, is_gap)


def gap_runs(is_gap: BoolArray) -> list[tuple[int, int]]:
    """Circular runs of gap rays as (first, length)."""
    n = is_gap.size
    if is_gap.all() or not is_gap.any():
        return []
    start = int(np.argmin(is_gap))  # not a gap ray: unroll from here
    rolled = np.roll(is_gap, -start)
    runs: list[tuple[int, int]] = []
    i = 0
    while i < n:
        if rolled[i]:
            j = i
            while j < n and rolled[j]:
                j += 1
            runs.append(((i + start) % n, j - i))
            i = j
        else:
            i += 1
    return runs


def _end_value(values: npt.NDArray[np.float64], has_bone: BoolArray, ray: int, direction: int, k: int = 3) -> float:
    """Median of ``values`` on the skull rays among the ``k`` rays beyond ``ray`` (nan when none: a blocked end)."""
    n = values.size
    found = [float(values[(ray + direction * off) % n]) for off in range(1, k + 1)
             if has_bone[(ray + direction * off) % n]]
    return float(np.median(found)) if found else float("nan")


def virtual_table(rays: Rays, centre: tuple[float, float], spacing: tuple[float, float], shape: tuple[int, int], *,
                  arc_mm: float, max_bridge_deg: float) -> tuple[BoolArray, float]:
    """Draw the inner table across every gap (see :mod:`ichpipe.pipeline.segment.intracranial`, step 6).

    Returns the drawing and the widest gap bridged (deg). A gap wider than
    ``max_bridge_deg``, or with no skull ray within three rays of an end
    (a blocked end), is left open.
    """
    n = rays.angles.size
    drawing = np.zeros(shape, dtype=bool)
    widest = 0.0
    dy, dx = spacing
    thickness = np.arange(0.0, max(arc_mm, rays.step_mm), 0.5 * rays.step_mm)
    for first, length in gap_runs(rays.is_gap):
        last = first + length - 1
        ends = {}
        for name, values in (("in", rays.r_in), ("t", rays.r_head - rays.r_in), ("s", rays.r_head - rays.r_out)):
            ends[name] = (_end_value(values, rays.has_bone, first, -1), _end_value(values, rays.has_bone, last, +1))
        if any(math.isnan(v) for pair in ends.values() for v in pair) or length * 360.0 / n > max_bridge_deg:
            continue
        widest = max(widest, length * 360.0 / n)
        frac = (np.arange(length) + 1.0) / (length + 1.0)
        idx = (first + np.arange(length)) % n
        arc = ends["in"][0] + frac * (ends["in"][1] - ends["in"][0])
        t = ends["t"][0] + frac * (ends["t"][1] - ends["t"][0])
        s = ends["s"][0] + frac * (ends["s"][1] - ends["s"][0])
        head = rays.r_head[idx]
        # the outline's bulge over its expected course decides how much of the
        # former bone space is intracranial: none without a bulge (the flap lies
        # where the bone was), all of it under the scalp once the bulge reaches one
        # skull thickness (a herniation); a sunken flap keeps the scalp out
        under_scalp = head - s
        weight = np.clip(((head - t) - arc) / np.maximum(t - s, 1.0), 0.0, 1.0)
        limit = np.maximum(np.minimum(arc + weight * (under_scalp - arc), under_scalp), 0.0)
        # two bone rays on each side anchor the drawing to the real inner table
        before = [(first - k) % n for k in (2, 1)]
        after = [(last + k) % n for k in (1, 2)]
        anchor_r = [rays.r_in[i] if rays.has_bone[i] else limit[0] for i in before]
        anchor_r += [rays.r_in[i] if rays.has_bone[i] else limit[-1] for i in after]
        r_nodes = np.concatenate([anchor_r[:2], limit, anchor_r[2:]])
        a_nodes = (first - 2 + np.arange(length + 4)) * (2 * np.pi / n)
        n_fine = max(8, math.ceil((a_nodes[-1] - a_nodes[0]) * float(np.nanmax(r_nodes)) / (0.5 * rays.step_mm)))
        a_fine = np.linspace(a_nodes[0], a_nodes[-1], n_fine)
        r_fine = np.interp(a_fine, a_nodes, r_nodes)
        rr = r_fine[:, None] + thickness[None, :]
        yy = np.rint(centre[0] + np.sin(a_fine)[:, None] * rr / dy).astype(np.intp)
        xx = np.rint(centre[1] + np.cos(a_fine)[:, None] * rr / dx).astype(np.intp)
        ok = (yy >= 0) & (yy < shape[0]) & (xx >= 0) & (xx < shape[1])
        drawing[yy[ok], xx[ok]] = True
    return drawing, widest


def star_hull(head: BoolArray, spacing: tuple[float, float], n_rays: int) -> BoolArray:
    """Pixels no farther from the head's centroid than the outermost head pixel in their direction."""
    ys, xs = np.nonzero(head)
    if ys.size == 0:
        return head
    cy, cx = float(ys.mean()), float(xs.mean())
    dy, dx = spacing
    n = 2 * n_rays
    ray = np.rint((np.arctan2((ys - cy) * dy, (xs - cx) * dx) % (2 * np.pi)) * n / (2 * np.pi)).astype(np.intp) % n
    reach = np.zeros(n)
    np.maximum.at(reach, ray, np.hypot((ys - cy) * dy, (xs - cx) * dx))
    # a direction without a pixel of its own takes its neighbours' reach
    for _ in range(3):
        reach = np.maximum(reach, np.minimum(np.roll(reach, 1), np.roll(reach, -1)))
    yy, xx = np.mgrid[0 : head.shape[0], 0 : head.shape[1]]
    angle = np.rint((np.arctan2((yy - cy) * dy, (xx - cx) * dx) % (2 * np.pi)) * n / (2 * np.pi)).astype(np.intp) % n
    return np.asarray(np.hypot((yy - cy) * dy, (xx - cx) * dx) <= reach[angle] + 0.5 * min(spacing)) | head
