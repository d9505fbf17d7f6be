"""The ``inference:`` section of ``config.yaml``: how networks run (device, batches, bf16, post-processing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "MAX_HEAD_ELONGATION",
    "BlendSideConfig",
    "CalcifiedConfig",
    "DenseEndsConfig",
    "Device",
    "EndExtensionConfig",
    "ExtraAxialConfig",
    "InferenceConfig",
    "Runtime",
]

#: An outline longer than this times its width is not a head's (the heads measured: 1.06-1.31): shoulders
#: or a body in the series, wider than the head, would be the slices measured, and their long axis runs
#: side to side; such a series is read as it lies (``inference.upright_min_degrees``).
MAX_HEAD_ELONGATION = 1.6

Device = Literal["auto", "cpu", "cuda"]
Runtime = Literal["auto", "torch", "onnxruntime"]


@dataclass(frozen=True)
class EndExtensionConfig:
    """``inference.end_extension``: grow each found bleed at its end slices with a second network.

    See :mod:`ichpipe.pipeline.segment.end_extension`.

    Parameters
    ----------
    checkpoint:
        The second (slice-context) network: a path or a file shipped in
        ``models/checkpoints/`` (default: the shipped ``ichpipe-ends.pt``);
        ``""`` turns the step off.
    threshold:
        Its probability above which a pixel beyond a bleed's end is added.
    radius_mm:
        How far in plane an added piece may lie from the previous slice's blood.
    depth_mm:
        How far beyond a bleed's end slice the step looks (always at least one slice).
    end_slice_hu:
        An added voxel must lie over blood of the bleed's end slice: that slice, smoothed in
        plane, is at least this HU at the same row and column (``None``: no such test).
    """

    checkpoint: str = "ichpipe-ends.pt"
    threshold: float = 0.2
    radius_mm: float = 5.0
    depth_mm: float = 5.0
    end_slice_hu: float | None = 45.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("Argument 'threshold' must lie strictly between 0 and 1.")
        if self.radius_mm < 0:
            raise ValueError("Argument 'radius_mm' must not be negative.")
        if self.depth_mm < 0:
            raise ValueError("Argument 'depth_mm' must not be negative.")
        if self.end_slice_hu is not None and not -1024.0 <= self.end_slice_hu <= 3071.0:
            raise ValueError(f"Argument 'end_slice_hu' must be an HU value or null; got {self.end_slice_hu}.")


@dataclass(frozen=True)
class BlendSideConfig:
    """``inference.blend_side``: a network trained on clots with a less dense side reads beside the blood.

    See :mod:`ichpipe.pipeline.segment.blend_side`.

    Parameters
    ----------
    checkpoint:
        The network (trained with ``ichpipe train data --blend-fraction``): a path or a file shipped
        in ``models/checkpoints/`` (default: the shipped ``ichpipe-blend-lobar.pt``, fine-tuned on clots
        against the inner table too; ``ichpipe-blend.pt``, the earlier reader, also shipped, flags fewer
        right volumes and misses most sides against the cortex); ``""`` turns the step off.
    threshold:
        Its probability above which a voxel is called.
    min_hu, max_hu:
        A called voxel counts only where the slice's 3x3 median lies within this range (a blend's
        side: denser than brain, less dense than the clot).
    min_clot_median_hu:
        ... and only when it is joined (26-connected, through such voxels) to found blood whose
        component's median is at least this (a blend has a dense part).
    add:
        ``True``: what it reads is added to the blood; ``False``: only measured
        (``details["blend_side"]``, the ``blend_side`` quality flag).
    """

    checkpoint: str = "ichpipe-blend-lobar.pt"
    threshold: float = 0.5
    min_hu: float = 33.0
    max_hu: float = 55.0
    min_clot_median_hu: float = 50.0
    add: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("Argument 'threshold' must lie strictly between 0 and 1.")
        if not -1024.0 <= self.min_hu < self.max_hu <= 3071.0:
            raise ValueError(f"Arguments 'min_hu' and 'max_hu' must be HU values with min_hu < max_hu; got"
                             f" {self.min_hu!r} and {self.max_hu!r}.")
        if not -1024.0 <= self.min_clot_median_hu <= 3071.0:
            raise ValueError(f"Argument 'min_clot_median_hu' must be an HU value; got {self.min_clot_median_hu!r}.")


@dataclass(frozen=True)
class DenseEndsConfig:
    """``inference.dense_ends``: found blood grown beyond its end slices while clot density lies under it.

    See :func:`~ichpipe.pipeline.segment.end_extension.continue_dense_ends`.

    Parameters
    ----------
    min_hu, max_hu:
        An added pixel's density once smoothed in plane (1 mm): a clot's, above grey matter's and under a
        calcification's. ``min_hu: null`` turns the step off.
    radius_mm:
        An added pixel lies within this distance (in plane) of the blood on the slice before it.
    depth_mm:
        How far beyond a bleed's end slice the walk may go (always at least the next slice).
    edge_mm:
        An added pixel lies at least this far inside the intracranial space in plane.
    min_area_mm2:
        In-plane pieces under this area are not added; a slice left with less stops the walk.
    toward:
        ``feet``: only beyond a bleed's lower end (toward the skull base, where the networks are blind;
        read from the slices' positions); ``both``: beyond either end (near the vertex the inner table
        is cut obliquely and cortex 3 mm inside it reads 66 HU on the real GE head) ...
    head_min_cover:
        ... where, toward the head, a slice is added only when its pixels are at least this share of the
        blood on the slice before (0: no such test; a clot goes on under most of its section, the cortex
        under a strip of it).
    fill_end_slice:
        Before walking beyond a bleed's lower end, fill that end slice itself: its pixels at clot density
        within ``radius_mm`` of the blood on the slice above, joined to what was read there
        (:func:`~ichpipe.pipeline.segment.end_extension.fill_end_slice`): the networks read a clot's last
        slice toward the skull base in part.
    fill_between_rounds:
        After the walks, fill every slice holding blood over its pixels at clot density within
        ``radius_mm`` of the blood on the slices beside it, joined to what it holds, in this many passes
        (:func:`~ichpipe.pipeline.segment.end_extension.fill_between_slices`; 0: not done), but not a
        bleed's upper end slice (near the vertex cortex lies at clot density under the oblique table):
        the networks read a clot short where its section changes fast (a flat face, air beside it).
    """

    min_hu: float | None = 60.0
    max_hu: float = 90.0
    radius_mm: float = 3.0
    depth_mm: float = 15.0
    edge_mm: float = 2.0
    min_area_mm2: float = 10.0
    toward: Literal["feet", "both"] = "both"
    head_min_cover: float = 0.5
    fill_end_slice: bool = True
    fill_between_rounds: int = 2

    def __post_init__(self) -> None:
        if self.toward not in ("feet", "both"):
            raise ValueError(f"Argument 'toward' must be 'feet' or 'both'; got {self.toward!r}.")
        if not 0.0 <= self.head_min_cover <= 1.0:
            raise ValueError(f"Argument 'head_min_cover' must lie between 0 and 1; got {self.head_min_cover!r}.")
        if self.min_hu is not None and not -1024.0 <= self.min_hu < self.max_hu <= 3071.0:
            raise ValueError(f"Arguments 'min_hu' and 'max_hu' must be HU values with min_hu < max_hu, or min_hu"
                             f" null; got {self.min_hu!r} and {self.max_hu!r}.")
        for name in ("radius_mm", "depth_mm", "edge_mm", "min_area_mm2", "fill_between_rounds"):
            if getattr(self, name) < 0:
                raise ValueError(f"Argument '{name}' must not be negative; got {getattr(self, name)!r}.")


@dataclass(frozen=True)
class CalcifiedConfig:
    """``inference.calcified``: components of the networks' blood that are calcification are not counted.

    See :mod:`~ichpipe.pipeline.segment.calcified`.

    Parameters
    ----------
    min_share:
        A component with at least this share of its voxels within ``margin_mm`` (in plane) of a focus
        denser than acute blood is calcification (a cluster in the basal ganglia, the dentate nuclei, the
        falx). ``null`` turns the step off.
    min_hu, min_contrast_hu:
        A focus: a voxel whose in-plane median over ``smooth_mm`` is at least ``min_hu`` and at least
        ``min_contrast_hu`` above its component's median.
    margin_mm:
        The partial-volume shoulder round a focus.
    edge_mm:
        Foci closer than this to the intracranial edge (in plane) do not count.
    smooth_mm:
        Width of the in-plane median against noise.
    """

    min_share: float | None = 0.5
    min_hu: float = 110.0
    min_contrast_hu: float = 30.0
    margin_mm: float = 2.0
    edge_mm: float = 3.0
    smooth_mm: float = 1.5

    def __post_init__(self) -> None:
        if self.min_share is not None and not 0.0 < self.min_share <= 1.0:
            raise ValueError(f"Argument 'min_share' must lie in (0, 1], or be null; got {self.min_share!r}.")
        if not -1024.0 <= self.min_hu <= 3071.0:
            raise ValueError(f"Argument 'min_hu' must be an HU value between -1024 and 3071; got {self.min_hu!r}.")
        for name in ("min_contrast_hu", "margin_mm", "edge_mm", "smooth_mm"):
            if getattr(self, name) < 0:
                raise ValueError(f"Argument '{name}' must not be negative; got {getattr(self, name)!r}.")


@dataclass(frozen=True)
class ExtraAxialConfig:
    """``inference.extra_axial``: add collections against the inner table with a second network.

    See :mod:`ichpipe.pipeline.segment.extra_axial_addition`.

    Parameters
    ----------
    checkpoint:
        The extra-axial network (its own window in its metadata): a path or a file shipped in
        ``models/checkpoints/`` (default: the shipped ``ichpipe-extra-axial.pt``); ``""`` turns
        the step off.
    threshold:
        Its probability above which a voxel is called.
    table_mm:
        A called component is added only when some of it lies within this distance (in plane)
        of the intracranial space's edge.
    min_ml:
        Smallest component added.
    min_area_fraction:
        Slices whose intracranial area is under this share of the largest (the vertex and the skull
        base, where the slab cuts the bone obliquely) are narrow: see ``narrow_slices``.
    narrow_slices:
        ``"skip"``: nothing is added on narrow slices; ``"anchored"``: a component is added there only
        when it also holds at least ``min_ml`` on the other slices (a collection running on towards the
        vertex or the skull base), never a piece on narrow slices alone.
    min_thickness_mm:
        Diameter of the in-plane opening applied to the call (the table's partial-volume rim is thinner).
    min_median_hu:
        The median HU of what a component adds (blood the first network found in it is not read) must
        be at least this: acute or mixed blood (``None``: any) ...
    joined_min_median_hu:
        ... at least this when the component is joined to blood the first network found none of which
        lies within ``table_mm`` of the table (``None``: ``min_median_hu`` alone; needs it): the call ran
        from a parenchymal clot over the tissue between it and the table, and the clot's partial-volume
        edge lifts the median of what it adds; one that passes adds only its voxels whose 3 x 3 in-plane
        median is at least this, joined to the found blood (the clot's unread rest) ...
    min_contrast_hu:
        ... and must be this many HU denser than the brain 1-4 mm around it in plane (``None``: no
        such test); one that is not is taken as isodense, like cortex against the table ...
    low_density_min_ml:
        ... unless the component adds at least this many mL: a large subacute or chronic
        collection (``None``: never) ...
    low_density_max_found_depth_mm:
        ... and is not joined to blood the first network found at a median in-plane depth of at
        least this inside the intracranial space (``None``: no such test): that is a haematoma in the
        parenchyma, and the call ran from it through the brain beside it to the table.
    low_density_grow_threshold:
        Such a low-density collection, once added, grows into the voxels connected to it that the
        network calls above this lower probability (``None``: no growth). The network finds only
        part of a subacute or chronic collection at ``threshold``; nothing grows where nothing
        was added.
    """

    checkpoint: str = "ichpipe-extra-axial.pt"
    threshold: float = 0.5
    table_mm: float = 3.0
    min_ml: float = 0.3
    min_area_fraction: float = 0.7
    narrow_slices: str = "anchored"
    min_thickness_mm: float = 3.0
    min_median_hu: float | None = 50.0
    joined_min_median_hu: float | None = 56.0
    min_contrast_hu: float | None = None
    low_density_min_ml: float | None = 5.0
    low_density_max_found_depth_mm: float | None = 12.0
    low_density_grow_threshold: float | None = 0.3

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("Argument 'threshold' must lie strictly between 0 and 1.")
        if self.table_mm <= 0:
            raise ValueError(f"Argument 'table_mm' must be positive; got {self.table_mm}.")
        if self.min_ml < 0:
            raise ValueError(f"Argument 'min_ml' must not be negative; got {self.min_ml}.")
        if not 0.0 <= self.min_area_fraction <= 1.0:
            raise ValueError(f"Argument 'min_area_fraction' must lie between 0 and 1; got {self.min_area_fraction}.")
        if self.narrow_slices not in ("skip", "anchored"):
            raise ValueError(f"Argument 'narrow_slices' must be 'skip' or 'anchored'; got {self.narrow_slices!r}.")
        if self.min_thickness_mm < 0:
            raise ValueError(f"Argument 'min_thickness_mm' must not be negative; got {self.min_thickness_mm}.")
        if self.joined_min_median_hu is not None and self.min_median_hu is None:
            raise ValueError("Argument 'joined_min_median_hu' needs 'min_median_hu'; set both or neither to null.")
        if self.low_density_min_ml is not None and self.low_density_min_ml < 0:
            raise ValueError(f"Argument 'low_density_min_ml' must not be negative; got {self.low_density_min_ml}.")
        deep = self.low_density_max_found_depth_mm
        if deep is not None and deep <= 0:
            raise ValueError(f"Argument 'low_density_max_found_depth_mm' must be positive; got {deep}.")
        grow = self.low_density_grow_threshold
        if grow is not None and not 0.0 < grow <= self.threshold:
            raise ValueError(f"Argument 'low_density_grow_threshold' must lie in (0, threshold = {self.threshold}];"
                             f" got {grow}.")


@dataclass(frozen=True)
class InferenceConfig:
    """How networks run.

    Parameters
    ----------
    device:
        ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``.
    batch_size:
        Slices per forward pass.
    threads:
        CPU threads for torch (0 keeps torch's default: one per core).
    bf16:
        Use bf16 autocast on CUDA, and on CPUs with native bf16.
    channels_last:
        Use the channels-last memory format (faster convolutions on CPU).
    threshold:
        Probability above which a pixel is hematoma.
    loose_threshold:
        The main network's call is also read at this lower probability; what of it touches the
        final blood (26-connected, intracranial, not blood already) is measured (``details["loose_call"]``,
        the ``uncertain_edge`` quality flag); only faint components grow into it (``faint_max_median_hu``).
        ``None``: not measured.
    faint_max_median_hu:
        Components of the main network's mask whose median is under this (faint blood, near brain
        density) grow into its call at ``loose_threshold`` (26-connected, intracranial, at least
        ``faint_min_hu``) before the end-slice and extra-axial steps (``details["faint_growth"]``).
        ``None``: no growth. Needs ``loose_threshold``.
    faint_min_hu:
        The growth takes no voxel under this HU (oedema, CSF), nor any over the top of
        ``anatomy.brain_hu`` (calcification, bone).
    faint_beside_acute_ml:
        Where the mask holds an acute component (median at least ``faint_max_median_hu``) of at least
        this many mL, faint components smaller than that do not grow: beside a dense bleed the network
        calls pieces of brain, which the growth enlarged. ``None``: every faint component grows.
    rim_mm:
        After every other step, the blood the main and end-slice networks found (not the extra-axial
        step's collections) grows in plane by up to this many mm into voxels of ``rim_min_hu`` to the
        top of ``anatomy.brain_hu``, inside the intracranial space and 1 mm from bone
        (``details["edge_rim"]``): the blurred outer edge of a real clot, which references count and the
        networks, taught on sharp phantom edges, leave out (:mod:`~ichpipe.pipeline.segment.edge_rim`).
        ``None``: no rim.
    rim_min_hu:
        The HU floor of the rim.
    enclosed_close_mm:
        Before the rim, what the blood the main and end-slice networks found (not the extra-axial
        step's collections) encloses in plane once closed by a disk of this radius is added when its
        median HU is at least ``enclosed_min_hu`` and its area at most half the blood's on that slice
        (``details["enclosed_fill"]``): the
        hypodense swirls and islands of a heterogeneous clot, which clinical volumes count and the
        networks, taught on clots of one density, draw round
        (:mod:`~ichpipe.pipeline.segment.enclosed_fill`). ``None``: not added.
    enclosed_min_hu:
        The HU floor of an enclosed piece (its median) and of its voxels: CSF a cast of blood
        surrounds stays out.
    min_component_ml:
        3D components smaller than this are removed (0 keeps all).
    bone_edge_max_ml, bone_edge_share:
        A component of the main network's mask on one slice, under ``bone_edge_max_ml``, with at
        least ``bone_edge_share`` of its voxels within 1.5 mm (in plane) of bone, is not counted
        (``details["bone_edge_pieces"]``): the skull base's partial volume, which the network calls
        on real scans (PHE-SICH: 38 such pieces on 14 of 18 patients, up to 1.0 mL a patient; no
        haematoma component there reaches bone). ``None``: kept.
    restrict_to_intracranial:
        Keep only hematoma inside the intracranial mask.
    skip_slices_without_head:
        Do not run the network on slices with no head in them.
    crop_to_head:
        Run on the head's bounding box (padded to a multiple of 16) only.
    mirror:
        Test-time mirroring: average each slice's probabilities with those of
        its left-right mirror image (twice the network time; every network of
        the run).
    thin_slab_mm:
        Thin slices (reconstructed thinner than half this: header SliceThickness, else the spacing)
        are shown to every network as slabs: each as the mean of the slices whose centres lie less than
        half this from its own, weighted down linearly with the distance (3 slices of 1.25 mm for 5 mm,
        7 of 0.625 mm). The networks learnt 4-6 mm slices; a thin slice holds more noise, and on
        phantoms they read noisy thin slices far too low. Masks, volumes and every HU rule stay on the
        thin slices; thicker slices (overlapping reconstructions included) are shown alone. ``None``:
        every slice alone.
    max_network_pixel_mm:
        Every network reads a slice resized to its checkpoint's input size (256 x 256: a network pixel
        of 0.78-0.98 mm on the 200-250 mm fields it learnt), unless a network pixel would then be wider
        than this: then the slice is resized so that it is this wide (a large field of view, where the
        head would be smaller than any the networks learnt; phantom bleeds read 0.48-0.85 of their volume
        at 1.8 mm network pixels, 0.20-0.25 at 1.9 mm, nothing from 2 mm). ``None``: always the input size.
    upright_min_degrees:
        A head turned in the image plane by at least this many degrees (measured from its outline's
        long axis: :func:`~ichpipe.pipeline.segment.upright.head_turn`) is read by every network turned
        upright, its probabilities turned back before they are thresholded; every HU rule reads the
        slices as they lie. The networks learnt heads within about 15 degrees of upright; turned 15-30
        degrees a phantom's deep grey matter was read as blood, turned 90 degrees three of six phantom
        bleeds were read wrong. ``None``: every head read as it lies.
    upright_min_elongation:
        ... and only when the head's long axis is at least this much longer than its short one (a round
        outline has no long axis to measure the turn by), at most 1.6 times (longer is shoulders or a
        body, not a head: :data:`MAX_HEAD_ELONGATION`), and the head
        does not touch the image's edge.
    vertex_zoom_share:
        A slice above the widest intracranial section (toward the vertex) whose section is under this
        share of the widest one's area (not a sliver under
        :data:`~ichpipe.pipeline.segment.section_zoom.MIN_SECTION_SHARE` of it) is shown to every network
        enlarged to the widest one's size (about
        its centroid, put on the widest section's), its probabilities mapped back before they are
        thresholded (:func:`~ichpipe.pipeline.segment.section_zoom.section_zoom`); HU rules read the
        slices as they are. The networks learnt no bleed where the head narrows: a bleed painted on the
        real GE head's top slices read 0.00 mL. ``None``: every slice as it is.
    vertex_max_zoom:
        ... enlarged by at most this factor (of a length), 1-4.
    vertex_zoom_min_hu:
        The main network's call on enlarged slices (split into its own pieces there) is kept only where a
        piece's median reaches this many HU (:func:`~ichpipe.pipeline.segment.section_zoom.faint_on_enlarged`).
        ``None``: every piece kept.
    restore_stripped_skull_mm:
        On a skull-stripped or brain-only export (the skull set to one fill
        value), paint bone on the fill-value voxels within this many mm
        outside the intracranial space, in the network's input only (0: never).
    runtime:
        ``auto``: ONNX Runtime (fp32, CPU, no torch import) when the checkpoint
        has its export beside it (``<checkpoint>.onnx``, made from that very
        file), ``onnxruntime`` is installed and the run is on the CPU; else
        PyTorch. ``torch`` or ``onnxruntime`` force one (the latter fails
        clearly when it cannot run).
    end_extension:
        The second network that grows found bleeds at their end slices
        (:class:`EndExtensionConfig`).
    extra_axial:
        The second network that adds collections against the inner table
        (:class:`ExtraAxialConfig`).
    blend_side:
        The network that reads a clot's less dense side beside found blood
        (:class:`BlendSideConfig`).
    dense_ends:
        Found bleeds and added collections grown beyond their end slices while clot density lies under
        them, after the extra-axial network (:class:`DenseEndsConfig`).
    calcified:
        Components of the main network's mask that are mostly calcification are not counted, before
        any step grows them (:class:`CalcifiedConfig`).
    """

    device: Device = "auto"
    batch_size: int = 4
    threads: int = 0
    bf16: bool = True
    channels_last: bool = True
    threshold: float = 0.5
    loose_threshold: float | None = 0.3
    faint_max_median_hu: float | None = 55.0
    faint_min_hu: float = 35.0
    faint_beside_acute_ml: float | None = 1.0
    rim_mm: float | None = 1.0
    rim_min_hu: float = 42.0
    enclosed_close_mm: float | None = 2.0
    enclosed_min_hu: float = 20.0
    min_component_ml: float = 0.05
    bone_edge_max_ml: float | None = 1.0
    bone_edge_share: float = 0.2
    restrict_to_intracranial: bool = True
    skip_slices_without_head: bool = True
    crop_to_head: bool = True
    mirror: bool = True
    thin_slab_mm: float | None = 5.0
    max_network_pixel_mm: float | None = 1.1
    upright_min_degrees: float | None = 10.0
    upright_min_elongation: float = 1.05
    vertex_zoom_share: float | None = 0.6
    vertex_max_zoom: float = 2.0
    vertex_zoom_min_hu: float | None = 55.0
    restore_stripped_skull_mm: float = 10.0
    runtime: Runtime = "auto"
    end_extension: EndExtensionConfig = field(default_factory=EndExtensionConfig)
    extra_axial: ExtraAxialConfig = field(default_factory=ExtraAxialConfig)
    blend_side: BlendSideConfig = field(default_factory=BlendSideConfig)
    dense_ends: DenseEndsConfig = field(default_factory=DenseEndsConfig)
    calcified: CalcifiedConfig = field(default_factory=CalcifiedConfig)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("Argument 'batch_size' must be at least 1.")
        if self.threads < 0:
            raise ValueError("Argument 'threads' must not be negative.")
        if self.thin_slab_mm is not None and not 0.0 < self.thin_slab_mm <= 20.0:
            raise ValueError(f"Argument 'thin_slab_mm' must lie in (0, 20] mm, or be null; got {self.thin_slab_mm!r}.")
        if self.max_network_pixel_mm is not None and not 0.0 < self.max_network_pixel_mm <= 10.0:
            raise ValueError("Argument 'max_network_pixel_mm' must lie in (0, 10] mm, or be null; got"
                             f" {self.max_network_pixel_mm!r}.")
        if self.upright_min_degrees is not None and not 0.0 < self.upright_min_degrees <= 90.0:
            raise ValueError("Argument 'upright_min_degrees' must lie in (0, 90] degrees, or be null; got"
                             f" {self.upright_min_degrees!r}.")
        if not 1.0 <= self.upright_min_elongation < MAX_HEAD_ELONGATION:
            raise ValueError(f"Argument 'upright_min_elongation' must lie in [1, {MAX_HEAD_ELONGATION:g}); got"
                             f" {self.upright_min_elongation!r}.")
        if self.vertex_zoom_share is not None and not 0.0 < self.vertex_zoom_share <= 1.0:
            raise ValueError("Argument 'vertex_zoom_share' must lie in (0, 1], or be null; got"
                             f" {self.vertex_zoom_share!r}.")
        if not 1.0 <= self.vertex_max_zoom <= 4.0:
            raise ValueError(f"Argument 'vertex_max_zoom' must lie in [1, 4]; got {self.vertex_max_zoom!r}.")
        if self.bone_edge_max_ml is not None and not self.bone_edge_max_ml > 0:
            raise ValueError(f"Argument 'bone_edge_max_ml' must be positive, or null; got {self.bone_edge_max_ml!r}.")
        if not 0.0 <= self.bone_edge_share <= 1.0:
            raise ValueError(f"Argument 'bone_edge_share' must lie within 0-1; got {self.bone_edge_share!r}.")
        if self.restore_stripped_skull_mm < 0:
            raise ValueError("Argument 'restore_stripped_skull_mm' must not be negative.")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("Argument 'threshold' must lie strictly between 0 and 1.")
        if self.loose_threshold is not None and not 0.0 < self.loose_threshold < self.threshold:
            raise ValueError(f"Argument 'loose_threshold' must lie strictly between 0 and threshold ="
                             f" {self.threshold}, or be null; got {self.loose_threshold!r}.")
        if self.faint_max_median_hu is not None and self.loose_threshold is None:
            raise ValueError("Argument 'faint_max_median_hu' needs 'loose_threshold' (the call it grows into);"
                             " set faint_max_median_hu to null too, or give loose_threshold.")
        if self.faint_beside_acute_ml is not None and not self.faint_beside_acute_ml > 0.0:
            raise ValueError(f"Argument 'faint_beside_acute_ml' must be positive, or null; got"
                             f" {self.faint_beside_acute_ml!r}.")
        if self.rim_mm is not None and not 0.0 < self.rim_mm <= 5.0:
            raise ValueError(f"Argument 'rim_mm' must lie in (0, 5] mm, or be null; got {self.rim_mm!r}.")
        if self.enclosed_close_mm is not None and not 0.0 < self.enclosed_close_mm <= 10.0:
            raise ValueError(f"Argument 'enclosed_close_mm' must lie in (0, 10] mm, or be null;"
                             f" got {self.enclosed_close_mm!r}.")
        for name in ("faint_max_median_hu", "faint_min_hu", "rim_min_hu", "enclosed_min_hu"):
            value = getattr(self, name)
            if value is not None and not -1024.0 <= value <= 3071.0:
                raise ValueError(f"Argument '{name}' must be an HU value between -1024 and 3071; got {value!r}.")
