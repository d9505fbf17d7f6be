"""The ``anatomy:`` section of ``config.yaml``: the head outline and the intracranial finder.

Every value is in physical units (HU, mm, degrees), so it means the same at
0.4 mm and at 1 mm pixels. The reasons for the defaults are given per field;
they were measured on the phantoms and the real heads of ``../shared/data``
(see ``MODEL_CARD.md``, "Intracranial space").
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AnatomyConfig"]


@dataclass(frozen=True)
class AnatomyConfig:
    """Settings of the head mask and of :func:`~ichpipe.pipeline.segment.intracranial.find_intracranial`.

    Parameters
    ----------
    head_min_hu:
        Tissue is above this; -300 lies half way between fat (-100) and air
        (-1000) and is robust to noise and partial volume.
    bone_min_hu:
        Bone is at or above this (cortical bone 700-2000 HU; 300 keeps thin,
        partial-volumed temporal bone and stays above blood and most calcification halos).
    min_clip_bone_hu:
        When the image is clipped below ``bone_min_hu`` at a value at or above
        this, voxels at the clip value are bone; below it (a brain-window
        export) bone and blood cannot be told apart and no bone is used.
    brain_hu:
        [low, high] of intracranial soft tissue, CSF and blood (CSF 0-15,
        brain 20-45, blood 50-90; -15 and 120 leave room for noise). A
        network's 3D component with a median above the upper end is dropped
        as calcification or bone (``NetworkSegmenter``).
    bone_closing_mm:
        In-plane closing of the skull (sutures, foramina and emissary canals are under 6 mm).
    scalp_search_mm:
        The skull must lie within this depth of the head outline along a ray
        (scalp 3-8 mm, temporalis muscle up to ~20 mm); bone deeper than this
        (calcifications, the skull base seen from the vertex) is not the ring.
    n_rays:
        Rays cast per slice to find the ring and its gaps (360: one per degree).
    gap_from_fraction:
        A gap ray has no barrier at all beyond this fraction of the outline
        radius: a craniectomy leaves brain straight to scalp, while at the
        skull base rays meet deeper bone and are never bridged (without this
        rule the real GE head's skull base was bridged into the face).
    min_ring_fraction:
        Bridging needs at least this share of the rays to hit bone (a 70 deg
        flap leaves ~0.8, a hemicraniectomy ~0.5; less is the vertex or the neck).
    max_bridge_deg:
        Gaps wider than this are not bridged (more than half the ring missing
        is the skull base or the vertex, not a craniectomy).
    bridge_gain:
        The bridged result replaces the closed ring's on a slice only when its
        largest component is larger by this fraction (smaller gains are
        foramina or the skull base, where bridging would add face or neck).
    arc_mm:
        Thickness of the virtual inner table drawn across a gap.
    fill_min_fraction:
        A *fill value* (a skull-stripped export sets the skull, often the air
        too, to one exact value) holds at least this share of the voxels: a
        stripped skull alone is ~5 %, 81 % in the real IVH export; one HU value
        of a real CT never exceeds ~1 %.
    fill_spike_ratio:
        ... and at least this share of the voxels within +/- 5 HU of it (one
        integer HU of a noisy histogram holds ~1/11 of that window).
    min_fill_area_mm2:
        Fill-value patches inside the head smaller than this are no barrier
        (CSF voxels that happen to be exactly the fill value).
    clip_min_fraction:
        The maximum is a clip when at least this share of the voxels equal it
        (a clip at 320 HU holds the whole skull, ~5 %; an unclipped maximum is
        a handful of voxels).
    hole_fill_mm2:
        Holes in the final mask up to this area are filled per slice
        (calcifications, fill-value voxels in the ventricles).
    max_failed_run_mm:
        The longest run of slices (along the normal) where the finder failed that is crossed to reach the
        slices beyond it (:func:`~ichpipe.pipeline.segment.intracranial_gaps.bridge_failed_slices`): at
        the skull base the orbits and sinuses open the ring on a slice or two, and without crossing them
        the posterior fossa was lost (the real GE head: one 4 mm slice; the real IVH example: two 5 mm
        slices). ``None``: never crossed (the largest 3D piece alone, as before).
    min_join_share:
        Beyond a crossed run, a slice's own piece joins when at least this share of it lies over what was
        taken on the slice before (the posterior fossa under the brain does; the face's enclosed muscles
        and sinuses, beside it, do not).
    """

    head_min_hu: float = -300.0
    bone_min_hu: float = 300.0
    min_clip_bone_hu: float = 150.0
    brain_hu: tuple[float, float] = (-15.0, 120.0)
    bone_closing_mm: float = 3.0
    scalp_search_mm: float = 25.0
    n_rays: int = 360
    gap_from_fraction: float = 0.3
    min_ring_fraction: float = 0.4
    max_bridge_deg: float = 200.0
    bridge_gain: float = 0.15
    arc_mm: float = 2.0
    fill_min_fraction: float = 0.01
    fill_spike_ratio: float = 0.5
    min_fill_area_mm2: float = 20.0
    clip_min_fraction: float = 0.001
    hole_fill_mm2: float = 100.0
    max_failed_run_mm: float | None = 12.0
    min_join_share: float = 0.5

    def __post_init__(self) -> None:
        if self.brain_hu[0] >= self.brain_hu[1]:
            raise ValueError("Argument 'brain_hu' must be [low, high] with low < high.")
        if self.n_rays < 36:
            raise ValueError("Argument 'n_rays' must be at least 36.")
        for name in ("bone_closing_mm", "scalp_search_mm", "arc_mm", "min_fill_area_mm2", "hole_fill_mm2",
                     "max_bridge_deg", "bridge_gain"):
            if not getattr(self, name) >= 0:  # also refuses NaN
                raise ValueError(f"Argument '{name}' must not be negative.")
        if self.max_failed_run_mm is not None and not self.max_failed_run_mm >= 0:
            raise ValueError("Argument 'max_failed_run_mm' must not be negative (null: never crossed).")
        if not 0.0 < self.min_join_share <= 1.0:
            raise ValueError("Argument 'min_join_share' must lie in (0, 1].")
        for name in ("min_ring_fraction", "gap_from_fraction", "fill_min_fraction", "fill_spike_ratio",
                     "clip_min_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"Argument '{name}' must lie in [0, 1].")
