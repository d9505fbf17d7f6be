"""Slice-wise network inference on a CT volume.

Pre-processing: the checkpoint's own window to 0-255 (as the seed's PNGs), its
normalisation, resizing to the pixel grid the checkpoint was trained on
(PyTorch's antialiased bilinear resize, in NumPy: :mod:`~ichpipe.pipeline.segment.resize`),
cropping to the head's bounding box padded at the bottom and right to a
multiple of 16 with the normalised value of black (what MONAI's
``DivisiblePad(k=16, method="end")`` does; MONAI is not imported at
inference). Slices with no head are not run. Post-processing: probabilities
resized back, thresholded, restricted to the intracranial space, components
under a minimum volume removed.

Two runtimes run the batches (``inference.runtime``):

- ONNX Runtime, fp32, CPU (:mod:`ichpipe.models.onnx_model`), chosen by
  ``auto`` when the checkpoint's export lies beside it and the run is on the
  CPU: torch is never imported, which saves 1.1-1.5 s per run on two cores;
- PyTorch (:mod:`~ichpipe.pipeline.segment.torch_backend`): GPU or CPU,
  ``torch.inference_mode``, bf16 autocast on CUDA and on CPUs with native bf16
  (AVX512-BF16 / AMX), channels-last.

Both see the same pre- and post-processing; only the network's forward pass
differs (fp32 vs bf16 rounding; BENCHMARKS.md gives the measured difference).

A checkpoint whose metadata has ``slice_context_mm`` (2.5D) gets three channels per slice: the
slices about that far below and above it along the normal, and the slice
(:mod:`~ichpipe.pipeline.segment.slice_context`); the same windowing, resizing and crop apply to each.

With ``inference.end_extension.checkpoint`` set, a second (slice-context) network grows each
bleed the first one found beyond its end slices (:mod:`~ichpipe.pipeline.segment.end_extension`);
it runs only on the few slices next to those ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ichpipe import __version__
from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.dicom_io.window import WindowPreset, apply_window
from ichpipe.errors import CheckpointError, UsageError
from ichpipe.models.hashing import require_allowlisted, verified_file_sha256
from ichpipe.models.onnx_model import load_onnx_segmenter, nvidia_gpu_visible, onnxruntime_available, paired_onnx
from ichpipe.pipeline.config.anatomy_config import AnatomyConfig
from ichpipe.pipeline.config.inference_config import (
    BlendSideConfig,
    EndExtensionConfig,
    ExtraAxialConfig,
    InferenceConfig,
)
from ichpipe.pipeline.config.models_config import resolve_checkpoint
from ichpipe.pipeline.segment.blend_side import BlendSideRead, read_blend_side, with_blend_side, with_uncounted_side
from ichpipe.pipeline.segment.enclosed_fill import with_enclosed_fill
from ichpipe.pipeline.segment.end_extension import extend_bleed_ends
from ichpipe.pipeline.segment.extra_axial_addition import add_extra_axial
from ichpipe.pipeline.segment.image_noise import network_image_noise
from ichpipe.pipeline.segment.intracranial import (
    IntracranialResult,
    find_intracranial_in,
    head_bounding_box,
    largest_component,
    restrict_to_intracranial,
)
from ichpipe.pipeline.segment.mask_steps import (
    kept_inside,
    space_kept,
    with_dense_ends,
    with_edge_rim,
    with_faint_growth,
    with_loose_call,
    without_calcified,
    without_not_blood,
)
from ichpipe.pipeline.segment.network_view import HeadExtent, NetworkView
from ichpipe.pipeline.segment.resize import network_grid, resize_bilinear
from ichpipe.pipeline.segment.section_zoom import SectionZoom, section_zoom, without_faint_enlarged, zoom_slices
from ichpipe.pipeline.segment.segmenter import SegmentationResult
from ichpipe.pipeline.segment.skull_restore import BONE_HU, stripped_skull_ring
from ichpipe.pipeline.segment.slice_context import (
    CONTEXT_CHANNELS,
    ThinSlabs,
    neighbour_indices,
    slab_means,
    volume_slabs,
)
from ichpipe.pipeline.segment.steps_described import described_steps
from ichpipe.pipeline.segment.upright import HeadTurn, head_turn, turn_slices, upright_crop
from ichpipe.progress import stage

__all__ = ["NetworkSegmenter", "SliceRunner", "nvidia_gpu_visible"]

log = logging.getLogger(__name__)


class SliceRunner(Protocol):
    """A network's forward pass on NumPy batches ``(B, C, H, W)`` float32."""

    def run(self, images: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...


class NetworkSegmenter:
    """Segment hematoma slice by slice with a network loaded from a checkpoint.

    Parameters
    ----------
    checkpoint_path:
        An ichpipe checkpoint (see :mod:`ichpipe.models.checkpoint`); its ONNX
        export, when used, is ``checkpoint_path`` with the suffix ``.onnx``.
    name:
        Registry name the caller expects (``None`` accepts the checkpoint's).
    config:
        Inference settings (``runtime`` chooses ONNX Runtime or PyTorch).
    anatomy:
        Thresholds of the head and intracranial masks.
    expected_sha256:
        Optional pinned SHA-256 of the checkpoint file.
    allowed_sha256:
        When not empty, the ONNX export is used only if its own SHA-256 is in
        it too (``models.checkpoint_sha256_allowlist``).
    progress:
        Optional callback ``progress(done_slices, total_slices)``.
    """

    def __init__(
        self,
        checkpoint_path: Path,
        *,
        name: str | None = None,
        config: InferenceConfig | None = None,
        anatomy: AnatomyConfig | None = None,
        expected_sha256: str | None = None,
        allowed_sha256: Collection[str] = (),
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.config = config or InferenceConfig()
        self.anatomy = anatomy or AnatomyConfig()
        self.progress = progress
        self.runner: SliceRunner
        self.onnx_sha256: str | None = None
        self.in_channels = 1
        onnx = self._onnx_export(Path(checkpoint_path))
        if onnx is not None:
            self._load_onnx(onnx, Path(checkpoint_path), name=name, expected_sha256=expected_sha256,
                            allowed_sha256=allowed_sha256)
        if self.onnx_sha256 is None:
            self._load_torch(Path(checkpoint_path), name=name, expected_sha256=expected_sha256)
        self.window = self._window(self.metadata, self.checkpoint_path)
        norm = dict(self.metadata.get("normalisation") or {})
        self.scale = float(norm.get("scale", 1.0 / 255.0))
        self.offset = float(norm.get("offset", 0.0))
        size = tuple(self.metadata["input_size"])
        if len(size) != 2:
            raise CheckpointError(f"Checkpoint '{checkpoint_path}' is not a 2D segmenter (input_size {size}).")
        self.input_size = (int(size[0]), int(size[1]))
        context = self.metadata.get("slice_context_mm")
        self.slice_context_mm = float(context) if context else None
        wanted = CONTEXT_CHANNELS if self.slice_context_mm is not None else 1
        if self.in_channels != wanted:
            raise CheckpointError(
                f"Checkpoint '{checkpoint_path}' takes {self.in_channels} input channel(s) but its metadata asks"
                f" for {wanted} (slice_context_mm {context!r}); it cannot be run."
            )
        self.extender = self._second_network("end_extension", self.config.end_extension.checkpoint, allowed_sha256)
        self.extra_axial = self._second_network("extra_axial", self.config.extra_axial.checkpoint, allowed_sha256)
        self.blend_reader = self._second_network("blend_side", self.config.blend_side.checkpoint, allowed_sha256)

    def _second_network(self, key: str, checkpoint: str, allowed_sha256: Collection[str]) -> NetworkSegmenter | None:
        """The second network of ``inference.<key>`` (``None`` when its checkpoint is ``""``)."""
        if not checkpoint:
            return None
        path = resolve_checkpoint(checkpoint)
        if not path.is_file():
            raise CheckpointError(
                f"inference.{key}.checkpoint {path} does not exist; set it to a checkpoint file"
                " (a path or a file in models/checkpoints/) or to \"\" to turn the step off."
            )
        if allowed_sha256:
            require_allowlisted(path, allowed_sha256, what=f"{key.replace('_', '-').capitalize()} checkpoint")
        plain = replace(self.config, end_extension=EndExtensionConfig(checkpoint=""),
                        extra_axial=ExtraAxialConfig(checkpoint=""), blend_side=BlendSideConfig(checkpoint=""))
        return NetworkSegmenter(path, config=plain, anatomy=self.anatomy, allowed_sha256=allowed_sha256)

    def _onnx_export(self, checkpoint_path: Path) -> Path | None:
        """The ONNX export to run, or ``None`` for PyTorch (``inference.runtime``)."""
        runtime = self.config.runtime
        if runtime == "torch" or not checkpoint_path.is_file():
            return None  # a missing checkpoint: PyTorch's loader says so
        onnx = paired_onnx(checkpoint_path)
        on_cpu = self.config.device == "cpu" or (self.config.device == "auto" and not nvidia_gpu_visible())
        if runtime == "auto":
            return onnx if onnx is not None and on_cpu and onnxruntime_available() else None
        if self.config.device == "cuda":
            raise UsageError("inference.runtime onnxruntime runs on the CPU; use --device cpu or runtime torch.")
        if onnx is None:
            raise CheckpointError(
                f"inference.runtime is onnxruntime but checkpoint '{checkpoint_path}' has no ONNX export beside it"
                f" ({checkpoint_path.with_suffix('.onnx').name}); make it with"
                f" `python -m ichpipe.models.onnx_export {checkpoint_path}` or set runtime: auto."
            )
        return onnx

    def _load_onnx(self, onnx: Path, checkpoint_path: Path, *, name: str | None, expected_sha256: str | None,
                   allowed_sha256: Collection[str]) -> None:
        """Run ``onnx`` if it was exported from ``checkpoint_path`` (and is allowed); else leave it to PyTorch."""
        digest = verified_file_sha256(checkpoint_path, expected_sha256)
        forced = self.config.runtime == "onnxruntime"
        exported = load_onnx_segmenter(onnx, threads=self.config.threads,
                                       expected_checkpoint_sha256=digest if forced else None)
        if exported.source_checkpoint_sha256 != digest:
            log.warning("ONNX file %s was exported from another checkpoint (SHA-256 %s), not from %s;"
                        " running the checkpoint under PyTorch. Export it again with"
                        " `python -m ichpipe.models.onnx_export %s`.",
                        onnx, exported.source_checkpoint_sha256, checkpoint_path, checkpoint_path)
            return
        if allowed_sha256 and exported.file_sha256 not in allowed_sha256:
            if forced:
                raise CheckpointError(
                    f"ONNX file {onnx} (SHA-256 {exported.file_sha256}) is not in"
                    " models.checkpoint_sha256_allowlist; add its digest if you trust it."
                )
            log.info("ONNX export %s is not in the allowlist; running the checkpoint under PyTorch", onnx)
            return
        if name is not None and exported.name != name:
            raise CheckpointError(
                f"Checkpoint '{checkpoint_path}' holds model '{exported.name}', but '{name}' was requested;"
                f" pass --segmenter {exported.name}, or a checkpoint trained for '{name}'."
            )
        self.runtime, self.device, self.use_bf16 = "onnxruntime", "cpu", False
        self.runner, self.name, self.checkpoint_sha256 = exported, exported.name, digest
        self.checkpoint_path, self.metadata = checkpoint_path, exported.metadata
        self.onnx_sha256 = exported.file_sha256
        self.in_channels = int(dict(exported.identity.get("model", {}).get("kwargs", {})).get("in_channels", 1))

    def _load_torch(self, checkpoint_path: Path, *, name: str | None, expected_sha256: str | None) -> None:
        from ichpipe.models.checkpoint import load_model
        from ichpipe.pipeline.segment.torch_backend import TorchSliceRunner, cpu_has_native_bf16, resolve_device

        device = resolve_device(self.config.device)
        if self.config.threads and device.type == "cpu":
            import torch

            torch.set_num_threads(self.config.threads)
        model, checkpoint = load_model(
            checkpoint_path, name=name, task="segmentation", expected_sha256=expected_sha256, map_location=device,
        )
        self.runtime, self.device = "torch", device.type
        self.use_bf16 = self.config.bf16 and (device.type == "cuda" or cpu_has_native_bf16())
        self.runner = TorchSliceRunner(model, device, bf16=self.use_bf16, channels_last=self.config.channels_last)
        self.name, self.checkpoint_sha256 = checkpoint.name, checkpoint.file_sha256
        self.checkpoint_path, self.metadata = checkpoint.path, checkpoint.metadata
        self.in_channels = int(checkpoint.model_kwargs.get("in_channels", 1))

    @staticmethod
    def _window(metadata: Any, path: Path) -> WindowPreset:
        window = metadata.get("window")
        if not window:
            raise CheckpointError(
                f"Checkpoint '{path}' does not say which HU window it was trained with;"
                " retrain or re-save it with a window."
            )
        return WindowPreset(width=float(window["width"]), level=float(window["level"]))

    def _identity(self) -> dict[str, Any]:
        """Which network this is: registry name, checkpoint SHA-256 and path, runtime."""
        return {"name": self.name, "checkpoint_sha256": self.checkpoint_sha256,
                "checkpoint_path": str(self.checkpoint_path), "runtime": self.runtime}

    def describe(self) -> dict[str, Any]:
        """Identity for the report: registry name, checkpoint SHA-256, versions, window, runtime."""
        described = {
            **self._identity(),
            "version": __version__,
            "window": {"width": self.window.width, "level": self.window.level},
            "device": self.device,
            "bf16": self.use_bf16,
            "kind": "trained network",
            "baseline": False,
        }
        if self.onnx_sha256 is not None:
            described["onnx_sha256"] = self.onnx_sha256
        if self.slice_context_mm is not None:
            described["slice_context_mm"] = self.slice_context_mm
        if self.config.mirror:
            described["mirror"] = True
        if self.config.thin_slab_mm is not None:
            described["thin_slab_mm"] = self.config.thin_slab_mm
        if self.config.max_network_pixel_mm is not None:
            described["max_network_pixel_mm"] = self.config.max_network_pixel_mm
        extender = self.extender._identity() if self.extender is not None else None
        extra_axial = None
        if self.extra_axial is not None:
            window = self.extra_axial.window
            extra_axial = {**self.extra_axial._identity(), "window": {"width": window.width, "level": window.level}}
        blend = self.blend_reader._identity() if self.blend_reader is not None else None
        described.update(described_steps(self.config, extender=extender, extra_axial=extra_axial, blend_side=blend))
        return described

    def network_grid_of(self, volume: CTVolume) -> tuple[int, int]:
        """The size ``volume``'s slices are resized to for the network (:func:`network_grid`)."""
        return network_grid(volume.hu.shape[1:], volume.geometry.pixel_spacing_mm, self.input_size,
                            max_pixel_mm=self.config.max_network_pixel_mm)

    def head_extent(self, hu: npt.NDArray[np.float32]) -> HeadExtent:
        """Which slices of ``hu`` hold head, and the head's bounding box in image pixels.

        The largest component above ``anatomy.head_min_hu`` is enough (head_mask's hole filling
        adds only pixels inside the outline, so neither changes; it cost most of this step).
        """
        return self._head_and_turn(hu)[0]

    def _head_and_turn(self, hu: npt.NDArray[np.float32], pixel_spacing_mm: tuple[float, float] | None = None
                       ) -> tuple[HeadExtent, HeadTurn | None]:
        """:meth:`head_extent` and, given the pixel spacing, the head's in-plane turn (:func:`head_turn`)."""
        head = largest_component(np.asarray(hu > self.anatomy.head_min_hu))
        extent = np.asarray(head.any(axis=(1, 2)), dtype=bool), head_bounding_box(head)
        return extent, None if pixel_spacing_mm is None else head_turn(head, pixel_spacing_mm=pixel_spacing_mm)

    def _vertex_zoom(self, volume: CTVolume, intracranial: IntracranialResult | None
                     ) -> tuple[SectionZoom | None, IntracranialResult | None]:
        """The slices near the vertex the networks read enlarged (``inference.vertex_zoom_share``), and the space."""
        if self.config.vertex_zoom_share is None:
            return None, intracranial
        if intracranial is None:
            intracranial = find_intracranial_in(volume.hu, volume.geometry, self.anatomy)
        zoom = section_zoom(intracranial.mask, volume.geometry.positions[:, 2], min_share=self.config.vertex_zoom_share,
                            max_factor=self.config.vertex_max_zoom)
        return zoom, intracranial

    def upright_degrees(self, turn: HeadTurn | None) -> float | None:
        """The degrees the networks turn the slices by to read the head upright (``None``: as it lies)."""
        least, longer = self.config.upright_min_degrees, self.config.upright_min_elongation
        applies = turn is not None and least is not None and turn.applies(min_degrees=least, min_elongation=longer)
        return turn.degrees if applies and turn is not None else None

    def probabilities(self, volume: CTVolume, *, bone: npt.NDArray[np.bool_] | None = None,
                      slices: Sequence[int] | None = None, head: HeadExtent | None = None,
                      above: float | Sequence[float] | None = None, upright: float | None = None,
                      zoom: SectionZoom | None = None) -> npt.NDArray[Any]:
        """Hematoma probability per voxel, shape ``volume.hu.shape``.

        ``bone``: voxels shown to the network as bone (:data:`~ichpipe.pipeline.segment.skull_restore.BONE_HU`),
        e.g. the ring of a stripped skull; the volume itself is not changed. ``slices``: only these
        slices, in this order (shape ``(len(slices), rows, columns)``); ``None``: all. ``head``:
        :meth:`head_extent` of the volume when already known (found here otherwise). ``above``:
        return the bool mask ``probability > above`` instead, thresholded batch by batch (a
        600-slice study never holds its float probabilities at once); several thresholds give one
        such mask each, stacked on a new first axis. ``upright``: the networks read each slice turned by
        this many degrees (:meth:`upright_degrees`), the probabilities turned back. ``zoom``: the slices
        it names are read enlarged (:func:`~ichpipe.pipeline.segment.section_zoom.section_zoom`), mapped back.
        """
        hu = volume.hu
        n, rows, cols = hu.shape
        wanted = list(range(n)) if slices is None else [int(s) for s in slices]
        if any(not 0 <= s < n for s in wanted):
            raise ValueError(f"Argument 'slices' must hold slice indices 0..{n - 1}; got {wanted}.")
        row_of = {s: k for k, s in enumerate(wanted)}
        stacked = above is not None and np.ndim(above) > 0
        levels = [float(a) for a in np.atleast_1d(np.asarray(above, dtype=np.float64))] if above is not None else []
        out = np.zeros((len(levels),) * stacked + (len(wanted), rows, cols), dtype=bool if levels else np.float32)
        masks = out if stacked else out[None]  # one bool mask per threshold (a view of out)
        has_head, head_box = head if head is not None else self.head_extent(hu)
        todo = sorted({i for i in wanted if has_head[i]} if self.config.skip_slices_without_head else set(wanted))
        if not todo:
            return out
        # the head's bounding box in the network's pixel grid
        grid = self.network_grid_of(volume)
        sy, sx = grid[0] / rows, grid[1] / cols
        box = head_box if self.config.crop_to_head else None
        y0, y1, x0, x1 = 0, grid[0], 0, grid[1]
        if box is not None:
            y0, y1 = int(np.floor(box[1].start * sy)), int(np.ceil(box[1].stop * sy))
            x0, x1 = int(np.floor(box[2].start * sx)), int(np.ceil(box[2].stop * sx))
        if upright is not None:
            y0, y1, x0, x1 = upright_crop(hu, has_head if box is not None else None, (y0, y1, x0, x1), grid, upright,
                                          min_hu=self.anatomy.head_min_hu)
        neighbours = None
        if self.slice_context_mm is not None:
            neighbours = neighbour_indices(volume.geometry.offsets_mm, context_mm=self.slice_context_mm)
        slabs = self.network_slabs(volume)
        zoom = None if zoom is None else zoom.scaled(sy, sx)
        done = 0
        with stage("segmenting slices", total=len(todo)) as shown:
            for batch in (todo[i : i + self.config.batch_size] for i in range(0, len(todo), self.config.batch_size)):
                full = self._infer(hu, batch, (y0, y1, x0, x1), bone=bone, neighbours=neighbours, slabs=slabs,
                                   grid=grid, upright=upright, zoom=zoom)
                rows_of_batch = [row_of[i] for i in batch]
                if not levels:
                    out[rows_of_batch] = full
                for k, level in enumerate(levels):
                    masks[k, rows_of_batch] = full > level
                done += len(batch)
                shown.advance(len(batch))
                if self.progress:
                    self.progress(done, len(todo))
        return out

    def network_slabs(self, volume: CTVolume) -> ThinSlabs | None:
        """The slabs thin slices are shown to the networks as (``inference.thin_slab_mm``), or ``None``.

        See :func:`~ichpipe.pipeline.segment.slice_context.volume_slabs`.
        """
        return volume_slabs(volume, slab_mm=self.config.thin_slab_mm)

    def segment_in(self, volume: CTVolume, intracranial: IntracranialResult | None = None) -> SegmentationResult:
        """Hematoma mask, post-processed, and how much the intracranial restriction removed.

        Parameters
        ----------
        volume:
            The assembled CT.
        intracranial:
            Its intracranial space, when already found (found here when
            needed and ``None``).
        """
        ring = None
        if self.config.restore_stripped_skull_mm > 0:
            if intracranial is None:
                intracranial = find_intracranial_in(volume.hu, volume.geometry, self.anatomy)
            ring = stripped_skull_ring(volume.hu, intracranial, volume.geometry.pixel_spacing_mm,
                                       width_mm=self.config.restore_stripped_skull_mm)
        head, turn = self._head_and_turn(volume.hu, volume.geometry.pixel_spacing_mm)
        upright = self.upright_degrees(turn)
        zoom, intracranial = self._vertex_zoom(volume, intracranial)
        view = NetworkView(head=head, upright=upright, zoom=zoom, bone=ring)  # every network reads the study so
        loose = None
        if self.config.loose_threshold is None:
            mask = view.read(self, volume, above=self.config.threshold)
        else:
            mask, loose = view.read(self, volume, above=(self.config.threshold, self.config.loose_threshold))
        # the end-slice and dense-end steps, the faint growth and the loose-call measurement keep to it; the
        # extra-axial step always reads it
        needs_space = ((self.config.restrict_to_intracranial and mask.any()
                        and (self.extender is not None or loose is not None
                             or self.config.dense_ends.min_hu is not None))
                       or self.extra_axial is not None
                       or (self.config.calcified.min_share is not None and mask.any()))
        if needs_space and intracranial is None:
            intracranial = find_intracranial_in(volume.hu, volume.geometry, self.anatomy)  # for every step
        result = restrict_to_intracranial(mask, volume, restrict=self.config.restrict_to_intracranial,
                                          min_component_ml=self.config.min_component_ml, anatomy=self.anatomy,
                                          intracranial=intracranial)
        result = without_not_blood(result, volume, self.config, self.anatomy)
        if self.config.calcified.min_share is not None and intracranial is not None:
            result, loose = without_calcified(result, loose, volume, intracranial, self.config)
        if zoom is not None:
            result = without_faint_enlarged(result, volume, zoom, min_hu=self.config.vertex_zoom_min_hu)
        if loose is not None and self.config.faint_max_median_hu is not None:
            result = with_faint_growth(result, loose, volume, intracranial, self.config, self.anatomy)
        if ring is not None:
            result.details["network_input"] = {"stripped_skull_restored_mm": self.config.restore_stripped_skull_mm,
                                               "bone_voxels_painted": int(ring.sum())}
        slabs = self.network_slabs(volume)
        result.details["image_noise"] = network_image_noise(volume.hu, head[0], slabs)
        if slabs is not None:
            result.details.setdefault("network_input", {})["thin_slab"] = {
                "slab_mm": self.config.thin_slab_mm, "max_slices_averaged": slabs.max_slices}
        grid = self.network_grid_of(volume)
        if grid != self.input_size:  # a large field of view, read at max_network_pixel_mm
            result.details.setdefault("network_input", {})["grid"] = [*grid, self.config.max_network_pixel_mm]
        if turn is not None:
            result.details["head_turn"] = {"degrees": round(turn.degrees, 1), "elongation": round(turn.elongation, 3),
                                           "cut": turn.cut, "read_upright": upright is not None}
        if self.extender is not None:
            result = self._extend_ends(self.extender, result, volume, intracranial, view)
        side = None
        if self.blend_reader is not None:
            side = self._read_blend_side(self.blend_reader, result, volume, intracranial, view)
            result = with_blend_side(result, side, volume, add=self.config.blend_side.add)
        found = result.mask  # the networks' blood before the extra-axial step's collections
        if self.extra_axial is not None and intracranial is not None:
            result = self._add_extra_axial(self.extra_axial, result, volume, intracranial, view)
        if self.config.dense_ends.min_hu is not None:  # the collections' ends too; what it adds counts as found
            before = result.mask
            result = with_dense_ends(result, volume, intracranial, self.config, self.anatomy)
            found = found | (result.mask & ~before)
        if loose is not None:
            result = with_loose_call(result, loose, volume, intracranial, self.config)
        if self.config.enclosed_close_mm is not None:  # add the hypodense parts `found` (no collection) encloses
            result = with_enclosed_fill(result, found, volume, close_mm=self.config.enclosed_close_mm,
                                        min_hu=self.config.enclosed_min_hu, max_hu=self.anatomy.brain_hu[1],
                                        allowed=kept_inside(~result.mask, intracranial, self.config))
        if self.config.rim_mm is not None:
            result = with_edge_rim(result, found, volume, intracranial, self.config, self.anatomy)
        return result if side is None else with_uncounted_side(result, side, volume)

    def _add_extra_axial(self, network: NetworkSegmenter, result: SegmentationResult, volume: CTVolume,
                         intracranial: IntracranialResult, view: NetworkView) -> SegmentationResult:
        """``result`` plus ``network``'s collections against the inner table (``inference.extra_axial``),
        ``volume`` read as ``view`` shows it to every network of the study."""
        settings = self.config.extra_axial
        grow = settings.low_density_grow_threshold if settings.low_density_min_ml is not None else None
        loose = None
        if grow is None:
            called = view.read(network, volume, above=settings.threshold)
        else:
            called, loose = view.read(network, volume, above=(settings.threshold, grow))
        addition = add_extra_axial(
            result.mask, called, intracranial=intracranial.mask, pixel_spacing_mm=volume.geometry.pixel_spacing_mm,
            voxel_volumes_ml=volume.geometry.voxel_volumes_ml, hu=volume.hu, hu_range=self.anatomy.brain_hu,
            table_mm=settings.table_mm, min_ml=settings.min_ml, min_area_fraction=settings.min_area_fraction,
            min_thickness_mm=settings.min_thickness_mm, min_median_hu=settings.min_median_hu,
            joined_min_median_hu=settings.joined_min_median_hu, low_density_min_ml=settings.low_density_min_ml,
            low_density_max_found_depth_mm=settings.low_density_max_found_depth_mm, grow_candidate=loose,
            min_contrast_hu=settings.min_contrast_hu, narrow_slices=settings.narrow_slices,
        )
        return result.with_addition(volume, "extra_axial", addition.mask, addition.added,
                                    components_added=addition.components_added,
                                    components_refused=addition.components_refused,
                                    components_low_density=addition.components_low_density,
                                    low_density_ml=round(addition.low_density_ml, 4),
                                    low_density_grown_ml=round(addition.low_density_grown_ml, 4),
                                    hypodense_beside_ml=round(addition.hypodense_beside_ml, 4),
                                    joined_deep_refused_ml=round(addition.joined_deep_refused_ml, 4))

    def _read_blend_side(self, network: NetworkSegmenter, result: SegmentationResult, volume: CTVolume,
                         intracranial: IntracranialResult | None, view: NetworkView) -> BlendSideRead:
        """What ``network`` reads as the less dense side of ``result``'s dense clots (``inference.blend_side``);
        ``view`` as for :meth:`_add_extra_axial`."""
        settings = self.config.blend_side
        return read_blend_side(
            result.mask, lambda s: view.read(network, volume, slices=s, above=settings.threshold), volume.hu,
            voxel_volumes_ml=volume.geometry.voxel_volumes_ml, min_hu=settings.min_hu, max_hu=settings.max_hu,
            min_clot_median_hu=settings.min_clot_median_hu, allowed=space_kept(intracranial, self.config),
        )

    def _extend_ends(self, extender: NetworkSegmenter, result: SegmentationResult, volume: CTVolume,
                     intracranial: IntracranialResult | None, view: NetworkView) -> SegmentationResult:
        """``result`` grown at its bleeds' end slices by ``extender`` (``inference.end_extension``; ``view``
        as for :meth:`_add_extra_axial`)."""
        ends = self.config.end_extension
        allowed = space_kept(intracranial, self.config)
        grown = extend_bleed_ends(
            result.mask, lambda s: view.read(extender, volume, slices=s),
            offsets_mm=volume.geometry.offsets_mm, pixel_spacing_mm=volume.geometry.pixel_spacing_mm,
            threshold=ends.threshold, radius_mm=ends.radius_mm, depth_mm=ends.depth_mm, allowed=allowed,
            hu=volume.hu, hu_range=self.anatomy.brain_hu, end_slice_hu=ends.end_slice_hu,
        )
        return result.with_addition(volume, "end_extension", grown.mask, grown.added,
                                    slices_run=len(grown.slices_run), slices_extended=len(grown.slices_extended))

    def _infer(self, hu: npt.NDArray[np.float32], batch: list[int], box: tuple[int, int, int, int], *,
               bone: npt.NDArray[np.bool_] | None, neighbours: npt.NDArray[np.intp] | None,
               slabs: ThinSlabs | None, grid: tuple[int, int], upright: float | None, zoom: SectionZoom | None
               ) -> npt.NDArray[np.float32]:
        """Probabilities of the slices ``batch`` of ``hu``, shape ``(len(batch), rows, columns)``.

        ``box``: the head crop in network pixels; ``neighbours`` (n, 2): each slice's neighbours
        below and above, for a checkpoint with slice context; ``slabs``: thin slices are shown to the
        network as these weighted means (:meth:`network_slabs`); ``grid``: the size slices are resized
        to (:meth:`network_grid_of`); ``upright``: the degrees they are then turned by (``None``: none;
        ``box`` is in the turned slice); ``zoom``: their enlargement (in grid pixels), undone before they
        are resized back.
        """
        rows, cols = hu.shape[1:]
        y0, y1, x0, x1 = box
        # channel-major list of slice indices: one channel, or below / slice / above
        channels = [batch]
        if neighbours is not None:
            channels = [neighbours[batch, 0].tolist(), batch, neighbours[batch, 1].tolist()]
        picked = [i for chan in channels for i in chan]
        slab = hu[picked] if slabs is None else slab_means(hu, slabs, picked)
        if bone is not None:
            slab = np.where(bone[picked], np.float32(BONE_HU), slab)
        grey = apply_window(slab, self.window).astype(np.float32) * self.scale + self.offset
        if (rows, cols) != grid:
            grey = resize_bilinear(grey, grid, antialias=True)
        if zoom is not None:
            grey = zoom_slices(grey, batch * len(channels), zoom, fill=self.offset)
        if upright is not None:
            grey = turn_slices(grey, upright, fill=self.offset)
        crop_h, crop_w = y1 - y0, x1 - x0
        # pad bottom/right to a multiple of 16 with the normalised value of black
        x = np.full((len(batch), len(channels), crop_h + -crop_h % 16, crop_w + -crop_w % 16), self.offset,
                    dtype=np.float32)
        x[:, :, :crop_h, :crop_w] = grey.reshape(len(channels), len(batch), *grey.shape[1:]).transpose(
            1, 0, 2, 3)[:, :, y0:y1, x0:x1]
        y = self.runner.run(x)
        if self.config.mirror:  # the network is fully convolutional: mirror in, mirror back, average
            y = 0.5 * (y + self.runner.run(np.ascontiguousarray(x[..., ::-1]))[..., ::-1])
        full = np.zeros((len(batch), *grid), dtype=np.float32)
        full[:, y0:y1, x0:x1] = y[:, 0, :crop_h, :crop_w]
        if upright is not None:
            full = np.clip(turn_slices(full, -upright, fill=0.0), 0.0, 1.0)
        if zoom is not None:
            full = zoom_slices(full, batch, zoom, fill=0.0, back=True)
        if (rows, cols) != grid:
            full = resize_bilinear(full, (rows, cols), antialias=False)
        return full

    def segment(self, volume: CTVolume) -> npt.NDArray[np.bool_]:
        """Bool hematoma mask, shape ``volume.hu.shape``, post-processed."""
        return self.segment_in(volume).mask
