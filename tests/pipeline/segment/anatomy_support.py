"""Phantom cases with known truth for the intracranial finder, the threshold baseline and the quality checks.

A study is written by the phantom generator (closed skull, a bone flap
removed, skull-stripped, brain-only or clipped exports are generator options)
and read back by ``scan_study`` + ``assemble_series``. Truth comes from the
phantom itself, never from the finder's own rule: the hematoma labels from
``truth_mask.nii.gz``, the intracranial space from the head model (inside the
inner table) at the written voxel centres. ``herniate`` and ``enhance`` change
the HU afterwards (a herniation through the flap, contrast-like vessels).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from ichpipe.dicom_io import assemble_series, scan_study
from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study
from ichpipe.pipeline.synthetic.phantom.render import build_model


@dataclass
class PhantomCase:
    """A written and re-read phantom study and its truth."""

    volume: CTVolume
    labels: np.ndarray  # uint8 hematoma labels (truth)
    intracranial: np.ndarray  # bool, inside the inner table (truth)
    signed_distance: np.ndarray  # float32 mm to the inner table (negative inside)
    hematoma_direction: np.ndarray | None  # head-frame unit vector centre -> first hematoma
    head_frame: np.ndarray  # float32 (z, y, x, 3) head-frame coordinates of the voxel centres
    skull_mm: float
    scalp_mm: float
    truth_volume_ml: float
    spec: PhantomSpec

    @property
    def hu(self) -> np.ndarray:
        return self.volume.hu

    @property
    def spacing(self) -> tuple[float, float]:
        return self.volume.geometry.pixel_spacing_mm

    @property
    def thickness(self) -> np.ndarray:
        return self.volume.geometry.slice_thickness_mm

    @property
    def voxel_ml(self) -> np.ndarray:
        return self.volume.geometry.voxel_volumes_ml


def make_case(study_dir: Path, **spec_kwargs: Any) -> PhantomCase:
    """Write the phantom ``PhantomSpec(**spec_kwargs)`` to ``study_dir``, read it back, attach its truth."""
    spec = PhantomSpec(**spec_kwargs)
    write_phantom_study(study_dir, spec)
    with scan_study(study_dir) as scan:
        volume = assemble_series(scan.require_selected().series)
    truth = json.loads((study_dir / "truth.json").read_text())
    labels = np.transpose(np.asarray(nib.load(str(study_dir / "truth_mask.nii.gz")).dataobj),
                          (2, 1, 0)).astype(np.uint8)
    model = build_model(spec)
    plan = model.plan
    points = np.stack([plan.voxel_centres(k) for k in plan.written])
    points = points[np.argsort(points[:, 0, 0] @ plan.normal)]  # the assembled order: along the normal
    q = model.head.to_head_frame(points.reshape(-1, 3)).reshape(points.shape)
    sd = model.head.signed_distance(q).astype(np.float32)
    direction = None
    if model.hematomas:
        c = model.head.to_head_frame(np.asarray(model.hematomas[0].centre)[None])[0].astype(np.float64)
        direction = c / np.linalg.norm(c)
    return PhantomCase(
        volume=volume, labels=labels, intracranial=sd < 0, signed_distance=sd, hematoma_direction=direction,
        head_frame=q, skull_mm=float(model.head.skull_mm), scalp_mm=float(model.head.scalp_mm),
        truth_volume_ml=float(truth["hematoma"]["volume_ml"]), spec=spec,
    )


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / s if s else 1.0


def volume_ml(mask: np.ndarray, voxel_ml: np.ndarray) -> float:
    return float((mask.reshape(mask.shape[0], -1).sum(1) * voxel_ml).sum())


def herniate(case: PhantomCase, *, bulge_mm: float = 10.0, bulge_deg: float = 25.0, blob_mm: float = 12.0,
             seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Brain bulging out through the (70 deg) flap of ``case``: ``bulge_mm`` at the centre, 0 at ``bulge_deg``.

    Within the bulge the former bone space and the bulge are brain (32 HU), the
    scalp lies on top; the part within ``blob_mm`` of the hematoma's exit point
    is hematoma (70 HU). Returns (hu, herniated hematoma, scalp over the flap).
    """
    if case.hematoma_direction is None:
        raise ValueError("the case has no hematoma to herniate")
    rng = np.random.default_rng(seed)
    hu = case.hu.copy()
    q = case.head_frame
    d = case.hematoma_direction.astype(np.float32)
    cosang = (q @ d) / np.maximum(np.linalg.norm(q, axis=-1), 1e-6)
    alpha = np.degrees(np.arccos(np.clip(cosang, -1, 1)))
    h = (bulge_mm * np.clip(1.0 - (alpha / bulge_deg) ** 2, 0.0, 1.0)).astype(np.float32)
    sd = case.signed_distance
    flap = alpha <= 35.0
    inner = flap & (h > 0) & (sd >= 0) & (sd < case.skull_mm + h)
    scalp = flap & (sd >= case.skull_mm + h) & (sd < case.skull_mm + h + case.scalp_mm)
    newly_air = flap & (h > 0) & (sd >= case.skull_mm + h + case.scalp_mm) & (hu > -500)
    near = np.abs(sd) < 1.0
    k = int(np.argmax(np.where(near, cosang, -2)))
    exit_point = q.reshape(-1, 3)[k]
    blob = inner & (np.linalg.norm(q - exit_point, axis=-1) < blob_mm)
    hu[inner] = (32.0 + rng.normal(0, 5.0, int(inner.sum()))).astype(np.float32)
    hu[blob] = (70.0 + rng.normal(0, 5.0, int(blob.sum()))).astype(np.float32)
    hu[scalp] = (35.0 + rng.normal(0, 5.0, int(scalp.sum()))).astype(np.float32)
    hu[newly_air & ~scalp & ~inner] = -1000.0
    return hu, blob, scalp & (h > 0)


def enhance(case: PhantomCase, *, hu_value: float = 220.0, radius_mm: float = 3.0, seed: int = 2) -> np.ndarray:
    """A contrast-enhanced look: a sinus-like tube under the vertex and two 'arteries' at ``hu_value``."""
    rng = np.random.default_rng(seed)
    q = case.head_frame
    a, b, c = (float(v) for v in np.max(np.abs(q[case.intracranial]), axis=0))
    segments = [
        ((0.0, -0.8 * b, 0.55 * c), (0.0, 0.8 * b, 0.55 * c)),
        ((-0.45 * a, -0.1 * b, -0.2 * c), (0.45 * a, -0.1 * b, -0.2 * c)),
        ((0.0, -0.5 * b, -0.15 * c), (0.0, 0.3 * b, -0.15 * c)),
    ]
    tube = np.zeros(case.hu.shape, dtype=bool)
    for p0, p1 in segments:
        p0a, p1a = np.asarray(p0, np.float32), np.asarray(p1, np.float32)
        seg = p1a - p0a
        t = np.clip(((q - p0a) @ seg) / float(seg @ seg), 0.0, 1.0)
        tube |= np.linalg.norm(q - (p0a + t[..., None] * seg), axis=-1) <= radius_mm
    tube &= case.intracranial
    hu = case.hu.copy()
    hu[tube] = (hu_value + rng.normal(0, 8.0, int(tube.sum()))).astype(np.float32)
    return hu


def with_hu(case: PhantomCase, hu: np.ndarray) -> CTVolume:
    """``case.volume`` with other HU (same geometry and headers)."""
    from dataclasses import replace

    return replace(case.volume, hu=np.ascontiguousarray(hu, dtype=np.float32))


def open_ring_on(case: PhantomCase, z: int) -> np.ndarray:
    """The case's HU with 220 deg of skull on slice ``z`` turned into scalp: the finder fails there."""
    hu = case.hu.copy()
    cy, cx = (float(c.mean()) for c in np.nonzero(case.intracranial[z]))
    rows, cols = np.indices(hu.shape[1:])
    bone = (case.signed_distance[z] > -0.5) & (case.signed_distance[z] < case.skull_mm + 0.5)
    hu[z][bone & (np.abs(np.arctan2(rows - cy, cols - cx)) <= np.deg2rad(110.0))] = 40.0
    return hu
