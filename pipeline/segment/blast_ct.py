"""The peer BLAST-CT v1 as an ichpipe segmenter (``ichpipe run --segmenter blast_ct --checkpoint DIR``).

BLAST-CT v1 (Monteiro et al., Lancet Digital Health 2020; ``biomedia-mira/blast-ct``,
Apache-2.0) segments head CT into background, intraparenchymal haemorrhage (IPH),
extra-axial haemorrhage (EAH: subdural/epidural), perilesional oedema and intraventricular
haemorrhage (IVH) with an ensemble of twelve DeepMedic networks
(:class:`ichpipe.models.deepmedic.DeepMedic`). This module runs those published weights
(``model_1.pt`` ... ``model_12.pt`` in a folder; nothing downloads) with DICOM in and the
project's outputs (SEG, exact volumes on tilted or unevenly spaced series, quality flags) out:

1. **Resample to 1 mm** in the slice frame, de-shearing a tilted stack, and flip to BLAST-CT's
   orientation (:mod:`ichpipe.pipeline.segment.iso_grid`).
2. **Intensity**: HU clipped to [-15, 100] and mapped linearly to [-1, 1].
3. **Fully convolutional sliding window**: the normalised volume is padded by replicating its
   border voxels (BLAST-CT pads its patches with numpy ``mode="edge"``), output tiles are
   multiples of 15 voxels placed on a 15-voxel lattice from the first voxel, so the result
   equals one pass over the whole volume whatever the tile size (tiles only bound memory).
   Output blocks whose whole input window is air (every voxel at -1) take the network's
   output for an all-air input, computed once: exact, not an approximation.
4. **Ensemble**: the mean of the models' softmax probabilities (BLAST-CT averages them too).
5. **Back to the DICOM grid**: probabilities interpolated at every native voxel centre, arg-max.
6. **Haemorrhage** = the blood classes IPH + EAH + IVH (:data:`BLOOD_CLASSES`): a subdural or
   epidural collection and intraventricular blood are haemorrhage volume in the sense the
   report's ``hematoma.volume_ml`` is used (the expansion rule, ABC/2 beside it); perilesional
   oedema is not blood and never counted (its volume is reported apart). The mask is then
   restricted to the intracranial space and small components removed as for every network
   (``inference:``); each type's volume is measured by the project's own planimetry.

Speed (CPU): the published weights hold 10-30 % denormal numbers, which x86 CPUs multiply 10-20
times slower; they are flushed to zero at load (identical outputs). BatchNorm cannot be folded
into the convolutions (it precedes a PReLU); it runs in eval mode, the one-parameter PReLU as an
in-place leaky ReLU. With native bf16 (AMX or AVX512-BF16) or on CUDA the networks run under
bf16 autocast in channels-last-3d layout.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
import pickle
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch

from ichpipe import __version__
from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.errors import CheckpointError, GeometryError, UsageError
from ichpipe.models.deepmedic import DeepMedic
from ichpipe.models.hashing import file_sha256
from ichpipe.pipeline.config.anatomy_config import AnatomyConfig
from ichpipe.pipeline.config.blast_ct_config import BLOOD_CLASSES, BlastCtConfig
from ichpipe.pipeline.config.inference_config import Device, InferenceConfig
from ichpipe.pipeline.config.schema import Config
from ichpipe.pipeline.segment.intracranial import IntracranialResult, restrict_to_intracranial
from ichpipe.pipeline.segment.iso_grid import NativeGrid, grid_from_geometry, resample_to_isotropic, to_native_grid
from ichpipe.pipeline.segment.segmenter import SegmentationResult
from ichpipe.pipeline.segment.torch_backend import cpu_has_native_bf16, resolve_device
from ichpipe.progress import stage

__all__ = [
    "BLOOD_CLASSES",
    "CLASS_NAMES",
    "HU_WINDOW",
    "WEIGHTS_HINT",
    "BlastCtResult",
    "BlastCtSegmenter",
    "build_blast_ct",
    "hu_to_network_input",
    "load_blast_ct_models",
    "predict_probabilities",
    "segment_blast_ct",
    "weights_digest",
]

CLASS_NAMES: tuple[str, ...] = ("background", "iph", "eah", "oedema", "ivh")
"""BLAST-CT v1 classes, in output-channel order."""
HU_WINDOW: tuple[float, float] = (-15.0, 100.0)
"""HU range mapped to [-1, 1] (BLAST-CT's IntensityWindowNormalization)."""
WEIGHTS_HINT = (
    "Put the BLAST-CT v1 weights model_1.pt ... model_12.pt (biomedia-mira/blast-ct, blast_ct/data/saved_models, "
    "Apache-2.0) in one folder and pass it with --checkpoint DIR (or set blast_ct.weights_dir in the config); "
    "nothing is downloaded."
)

Precision = Literal["auto", "fp32", "bf16"]
FloatArray = npt.NDArray[np.float32]


def hu_to_network_input(hu: npt.ArrayLike) -> FloatArray:
    """HU clipped to [-15, 100] and mapped linearly to [-1, 1] (float32)."""
    lo, hi = HU_WINDOW
    x = np.clip(np.asarray(hu, dtype=np.float32), lo, hi)
    return ((2.0 * x - lo - hi) / (hi - lo)).astype(np.float32)


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_blast_ct_models(directory: str | Path, *, n_models: int = 12) -> list[DeepMedic]:
    """Load ``model_1.pt`` ... ``model_{n_models}.pt`` (weights only) from a folder.

    Parameters
    ----------
    directory
        folder holding the BLAST-CT v1 ``model_N.pt`` files.
    n_models
        how many, 1 to 12 (the first ``n_models``).

    Returns
    -------
    list of DeepMedic
        The networks in eval mode.

    Raises
    ------
    ValueError
        ``n_models`` outside 1..12.
    ichpipe.errors.CheckpointError
        the folder or a file is missing or not a BLAST-CT v1
        state dict; the message says where to put the weights.
    """
    if isinstance(n_models, bool) or not isinstance(n_models, int) or not 1 <= n_models <= 12:
        raise ValueError(f"Argument 'n_models' must be an integer from 1 to 12; got {n_models!r}.")
    folder = Path(directory)
    paths = [folder / f"model_{i}.pt" for i in range(1, n_models + 1)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise CheckpointError(f"BLAST-CT weights not found: {', '.join(missing)} missing in {folder}. {WEIGHTS_HINT}")
    models = []
    for path in paths:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
            raise CheckpointError(f"{path} could not be read as a weights-only PyTorch file: {exc}") from exc
        if not isinstance(state, dict):
            raise CheckpointError(f"{path} does not hold a state dict. {WEIGHTS_HINT}")
        try:
            models.append(DeepMedic.from_state_dict(state))
        except ValueError as exc:
            raise CheckpointError(f"{path} is not a BLAST-CT v1 model: {exc}") from exc
    return models


def _plan_tiles(region: Sequence[int], lattice: int, max_voxels: int) -> tuple[int, int, int]:
    """Tile output size per axis (multiples of ``lattice``) with the least work within ``max_voxels``.

    Work is counted as the normal pathway's (its input is the tile plus 8 voxels a side) plus a
    third for the head; a tile over the budget is chosen only when none fits.
    """
    choices = [sorted({lattice * math.ceil((r // lattice) / n) for n in range(1, r // lattice + 1)}) for r in region]

    def cost(tile: tuple[int, ...]) -> tuple[bool, float]:
        n = math.prod(math.ceil(r / t) for r, t in zip(region, tile, strict=True))
        work = math.prod(t + 16 for t in tile) + 0.33 * math.prod(tile)
        return math.prod(tile) > max_voxels, n * work

    best = min(itertools.product(*choices), key=cost)
    return (best[0], best[1], best[2])


def _network(model: DeepMedic, x: torch.Tensor, bf16: bool) -> torch.Tensor:
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(x)
    return torch.softmax(logits.float(), dim=1)


def predict_probabilities(x: FloatArray, models: Sequence[DeepMedic], *, max_tile_voxels: int = 90**3,
                          precision: Precision = "auto", threads: int = 0, channels_last: bool = True,
                          device: torch.device | None = None,
                          progress: Callable[[int, int], None] | None = None) -> tuple[FloatArray, dict[str, Any]]:
    """Mean softmax probabilities of an ensemble over a whole normalised volume.

    Parameters
    ----------
    x
        (Z, Y, X) network input (see :func:`hu_to_network_input`), BLAST-CT orientation.
    models
        networks in eval mode.
    max_tile_voxels
        largest output tile (voxels); bigger tiles waste less of the 40-voxel
        margin but need more memory (measured: about 2 kB per output voxel of the tile in
        bf16, 4 kB in fp32, over a ~0.4 GB base; 90^3 tiles peak at 1.9 GB and 3.2 GB).
    precision
        "fp32", "bf16" (autocast) or "auto" (bf16 where the CPU has native bf16).
    threads
        torch CPU threads (0: leave torch's setting).
    channels_last
        run convolutions in channels-last-3d memory format.
    device
        where the networks run (default CPU); they are moved there.
    progress
        optional callback ``progress(done_tiles, total_tiles)``.

    Returns
    -------
    tuple of (numpy.ndarray, dict)
        (probabilities float32 (C, Z, Y, X), info: tiles, tile size, fraction of the volume
        computed, precision, seconds).

    Examples
    --------
    >>> prob, info = predict_probabilities(np.zeros((20, 20, 20), np.float32), [DeepMedic().eval()],
    ...                                    precision="fp32")
    >>> prob.shape
    (5, 20, 20, 20)
    """
    if x.ndim != 3:
        raise ValueError(f"Argument 'x' must be a 3-D volume; got shape {x.shape}.")
    if not models:
        raise ValueError("Argument 'models' must hold at least one network.")
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"Argument 'precision' must be 'auto', 'fp32' or 'bf16'; got {precision!r}.")
    device = device or torch.device("cpu")
    bf16 = precision == "bf16" or (precision == "auto" and (device.type == "cuda" or cpu_has_native_bf16()))
    started = time.perf_counter()
    net0 = models[0]
    lattice = math.lcm(*(int(f[0]) for f in net0.scale_factors), *(int(f[1]) for f in net0.scale_factors),
                       *(int(f[2]) for f in net0.scale_factors))
    margin = net0.margin[0]
    out_shape = tuple(lattice * math.ceil(s / lattice) for s in x.shape)
    padded = np.pad(x.astype(np.float32), [(margin, margin + o - s) for s, o in zip(x.shape, out_shape, strict=True)],
                    mode="edge")
    air = float(padded.min())
    # blocks of `lattice` output voxels whose whole input window is the constant minimum
    solid = (padded != air).astype(np.int32)
    sat = np.pad(solid.cumsum(0, dtype=np.int32).cumsum(1, dtype=np.int32).cumsum(2, dtype=np.int32), [(1, 0)] * 3)
    nb = [o // lattice for o in out_shape]
    lo = [np.arange(n) * lattice for n in nb]
    hi = [lo_ + lattice + 2 * margin for lo_ in lo]
    z0, y0, x0 = np.ix_(lo[0], lo[1], lo[2])
    z1, y1, x1 = np.ix_(hi[0], hi[1], hi[2])
    count = (sat[z1, y1, x1] - sat[z0, y1, x1] - sat[z1, y0, x1] - sat[z1, y1, x0]
             + sat[z0, y0, x1] + sat[z0, y1, x0] + sat[z1, y0, x0] - sat[z0, y0, x0])
    active = count > 0
    with torch.inference_mode(), _torch_threads(threads), contextlib.ExitStack() as stack:
        fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
        for m in models:
            m.eval().to(device=device, memory_format=fmt)  # type: ignore[call-overload]
        tiny = torch.full((1, 1, *(lattice + 2 * margin,) * 3), air, device=device)
        constant = np.mean([_network(m, tiny, bf16)[0, :, 0, 0, 0].cpu().numpy() for m in models], axis=0)
        prob = np.empty((net0.num_classes, *out_shape), dtype=np.float32)
        prob[...] = constant.astype(np.float32)[:, None, None, None]
        n_tiles = 0
        tile = (0, 0, 0)
        if active.any():
            where = np.nonzero(active)
            start = [int(w.min()) * lattice for w in where]
            stop = [(int(w.max()) + 1) * lattice for w in where]
            region = [b - a for a, b in zip(start, stop, strict=True)]
            tile = _plan_tiles(region, lattice, max_tile_voxels)
            axes = [sorted({min(a + i * t, b - t) for i in range(math.ceil((b - a) / t))})
                    for a, b, t in zip(start, stop, tile, strict=True)]
            total = math.prod(len(a) for a in axes)
            shown = stack.enter_context(stage(f"BLAST-CT x{len(models)} tiles", total=total))
            for tz, ty, tx in itertools.product(*axes):
                window = padded[tz:tz + tile[0] + 2 * margin, ty:ty + tile[1] + 2 * margin,
                                tx:tx + tile[2] + 2 * margin]
                inp = torch.from_numpy(np.ascontiguousarray(window))[None, None].to(device)
                acc = _network(models[0], inp, bf16)[0]
                for m in models[1:]:
                    acc += _network(m, inp, bf16)[0]
                prob[:, tz:tz + tile[0], ty:ty + tile[1], tx:tx + tile[2]] = (acc / len(models)).cpu().numpy()
                n_tiles += 1
                shown.advance()
                if progress:
                    progress(n_tiles, total)
    info = {"tiles": n_tiles, "tile": tile, "computed_fraction": float(active.mean()),
            "precision": "bf16" if bf16 else "fp32", "seconds": time.perf_counter() - started}
    return prob[:, :x.shape[0], :x.shape[1], :x.shape[2]], info


@dataclass(frozen=True)
class BlastCtResult:
    """Output of :func:`segment_blast_ct` on the native grid.

    Attributes
    ----------
    labels
        uint8 (slices, rows, columns): 0 background, 1 IPH, 2 EAH, 3 oedema, 4 IVH.
    probabilities
        float32 (5, slices, rows, columns) or None when not asked for.
    info
        models, precision, tiles, isotropic shape, seconds per stage.
    """

    labels: npt.NDArray[np.uint8]
    probabilities: FloatArray | None
    info: dict[str, Any]


def segment_blast_ct(hu: npt.ArrayLike, grid: NativeGrid, models: Sequence[DeepMedic], *,
                     spacing_mm: float = 1.0, back: Literal["probability", "nearest"] = "probability",
                     return_probabilities: bool = False, max_tile_voxels: int = 90**3,
                     precision: Precision = "auto", threads: int = 0, device: torch.device | None = None,
                     progress: Callable[[int, int], None] | None = None) -> BlastCtResult:
    """Run BLAST-CT v1 on a HU volume and return classes on its native grid.

    Parameters
    ----------
    hu
        (slices, rows, columns) HU, slices sorted along the normal.
    grid
        the voxels' geometry (:func:`grid_from_geometry`, or built from z positions,
        pixel spacing and in-plane offsets).
    models
        1 to 12 networks (:func:`load_blast_ct_models`); their probabilities are averaged.
    spacing_mm
        isotropic spacing the networks see (1 mm: their training resolution).
    back
        "probability" (trilinear probabilities, arg-max) or "nearest" (nearest 1 mm label).
    return_probabilities
        also return the native-grid probabilities ("probability" mode).
    max_tile_voxels, precision, threads, device, progress
        see :func:`predict_probabilities`.

    Returns
    -------
    BlastCtResult
        The labels (and probabilities) on the native grid, and timings.

    Examples
    --------
    >>> g = NativeGrid(z_mm=np.arange(4) * 5.0, pixel_spacing_mm=(1.0, 1.0), shape=(4, 12, 12))
    >>> res = segment_blast_ct(np.zeros((4, 12, 12)), g, [DeepMedic().eval()], precision="fp32")
    >>> res.labels.shape
    (4, 12, 12)
    """
    t0 = time.perf_counter()
    iso = resample_to_isotropic(hu, grid, spacing_mm=spacing_mm)
    flip_axes = tuple(a for a, f in enumerate(grid.flip) if f)
    x = hu_to_network_input(np.flip(iso, flip_axes) if flip_axes else iso)
    t1 = time.perf_counter()
    prob, info = predict_probabilities(x, models, max_tile_voxels=max_tile_voxels, precision=precision,
                                       threads=threads, device=device, progress=progress)
    if flip_axes:
        prob = np.ascontiguousarray(np.flip(prob, tuple(a + 1 for a in flip_axes)))
    t2 = time.perf_counter()
    labels, native = to_native_grid(prob, grid, spacing_mm=spacing_mm, mode=back,
                                    keep_probabilities=return_probabilities)
    t3 = time.perf_counter()
    info.update({"models": len(models), "isotropic_shape": tuple(iso.shape), "back": back,
                 "seconds_resample": t1 - t0, "seconds_network": t2 - t1, "seconds_back": t3 - t2,
                 "seconds_total": t3 - t0})
    return BlastCtResult(labels=labels, probabilities=native if return_probabilities else None, info=info)


def weights_digest(paths: Sequence[Path]) -> tuple[str, list[str]]:
    """One SHA-256 for an ensemble (of its files' digests, in order) and each file's digest."""
    digests = [file_sha256(p) for p in paths]
    return hashlib.sha256("\n".join(digests).encode("ascii")).hexdigest(), digests


class BlastCtSegmenter:
    """BLAST-CT v1 (1 to 12 models) behind the ichpipe segmenter contract.

    Parameters
    ----------
    weights_dir:
        Folder holding ``model_1.pt`` ... ``model_12.pt``.
    config:
        ``blast_ct:`` settings (how many models, precision, tiles, way back to the grid).
    inference:
        ``inference:`` settings used here: device, threads, the intracranial restriction and
        the smallest component.
    anatomy:
        Thresholds of the intracranial finder (when the space is not passed in).
    sha256_allowlist:
        If not empty, every model file's SHA-256 must be in it.
    progress:
        Optional callback ``progress(done_tiles, total_tiles)``.

    Raises
    ------
    ichpipe.errors.CheckpointError
        A weights file is missing, unreadable, not BLAST-CT v1's, or not allowed; the
        message says where to put the weights.
    """

    name = "blast_ct"

    def __init__(
        self,
        weights_dir: str | Path,
        *,
        config: BlastCtConfig | None = None,
        inference: InferenceConfig | None = None,
        anatomy: AnatomyConfig | None = None,
        sha256_allowlist: Sequence[str] = (),
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.config = config or BlastCtConfig()
        self.inference = inference or InferenceConfig()
        self.anatomy = anatomy or AnatomyConfig()
        self.device = resolve_device(self.inference.device)
        folder = Path(weights_dir).expanduser()
        self.models = load_blast_ct_models(folder, n_models=self.config.models)
        self.paths = [folder / f"model_{i}.pt" for i in range(1, self.config.models + 1)]
        self.sha256, self.file_sha256 = weights_digest(self.paths)
        if sha256_allowlist:
            refused = [p.name for p, d in zip(self.paths, self.file_sha256, strict=True) if d not in sha256_allowlist]
            if refused:
                raise CheckpointError(f"BLAST-CT weights {', '.join(refused)} in {folder} are not in"
                                      " models.checkpoint_sha256_allowlist; add their digests if you trust them.")
        self.weights_dir = folder
        self.progress = progress

    def describe(self) -> dict[str, Any]:
        """Identity for the report: name, one SHA-256 for the ensemble, the models and how they ran."""
        return {
            "name": self.name,
            "checkpoint_sha256": self.sha256,
            "checkpoint_path": str(self.weights_dir),
            "model_sha256": list(self.file_sha256),
            "version": __version__,
            "models": len(self.models),
            "device": self.device.type,
            "precision": self.config.precision,
            "blood_classes": list(BLOOD_CLASSES),
            "kind": "peer network (BLAST-CT v1, Monteiro et al. 2020), not trained by ichpipe",
            "baseline": False,
        }

    def _hu(self, volume: CTVolume) -> npt.NDArray[np.float32]:
        hu = np.asarray(volume.hu, dtype=np.float32)
        if self.config.zero_as_air:
            hu = np.where(hu == 0.0, np.float32(-1000.0), hu)
        return hu

    def labels(self, volume: CTVolume) -> BlastCtResult:
        """BLAST-CT's classes on the volume's own grid (no restriction, no post-processing).

        Raises
        ------
        ichpipe.errors.GeometryError
            The series is not axial.
        """
        try:
            grid = grid_from_geometry(volume.geometry)
        except ValueError as exc:
            raise GeometryError(f"Series {volume.series_uid}: {exc}") from exc
        threads = self.inference.threads if self.device.type == "cpu" else 0
        return segment_blast_ct(self._hu(volume), grid, self.models, back=self.config.back_to_grid,
                                max_tile_voxels=self.config.max_tile_voxels, precision=self.config.precision,
                                threads=threads, device=self.device, progress=self.progress)

    def segment_in(self, volume: CTVolume, intracranial: IntracranialResult | None = None) -> SegmentationResult:
        """Haemorrhage mask (IPH + EAH + IVH), restricted and post-processed, with a mask per type.

        ``details`` holds ``class_masks`` (``{"iph", "eah", "ivh"}``: the final mask split by
        class, for per-type volumes; ``"oedema"``: BLAST-CT's oedema inside the same space, never
        counted) and ``blast_ct`` (models, tiles, seconds).
        """
        result = self.labels(volume)
        labels = result.labels
        mask = np.isin(labels, [CLASS_NAMES.index(c) for c in BLOOD_CLASSES])
        oedema = labels == CLASS_NAMES.index("oedema")
        restricted = restrict_to_intracranial(mask, volume, restrict=self.inference.restrict_to_intracranial,
                                              min_component_ml=self.inference.min_component_ml,
                                              anatomy=self.anatomy, intracranial=intracranial, also=(oedema,))
        mask = restricted.mask
        class_masks = {c: mask & (labels == CLASS_NAMES.index(c)) for c in BLOOD_CLASSES}
        class_masks["oedema"] = oedema
        info = {k: (list(v) if isinstance(v, tuple) else v) for k, v in result.info.items()}
        return replace(restricted, details={"class_masks": class_masks, "source": "BLAST-CT v1 classes",
                                            "blast_ct": info})

    def segment(self, volume: CTVolume) -> npt.NDArray[np.bool_]:
        """Bool haemorrhage mask (IPH + EAH + IVH), shape ``volume.hu.shape``, post-processed."""
        return self.segment_in(volume).mask

    def with_models(self, n_models: int) -> BlastCtSegmenter:
        """The same segmenter using only the first ``n_models`` of its models (no reload)."""
        if not 1 <= n_models <= len(self.models):
            raise ValueError(f"Argument 'n_models' must be from 1 to {len(self.models)}; got {n_models}.")
        other = object.__new__(BlastCtSegmenter)
        other.__dict__.update(self.__dict__)
        other.models = self.models[:n_models]
        other.paths = self.paths[:n_models]
        other.sha256, other.file_sha256 = weights_digest(other.paths)
        other.config = replace(self.config, models=n_models)
        return other


def build_blast_ct(config: Config, *, weights_dir: Path | None = None, models: int | None = None,
                   device: Device | None = None,
                   progress: Callable[[int, int], None] | None = None) -> BlastCtSegmenter:
    """The segmenter ``run --segmenter blast_ct`` uses: weights from ``weights_dir`` or ``blast_ct.weights_dir``.

    Parameters
    ----------
    config:
        The whole configuration (``blast_ct``, ``inference``, ``anatomy``, the checkpoint allowlist).
    weights_dir:
        ``--checkpoint DIR``; ``None`` uses ``blast_ct.weights_dir``.
    models:
        ``--blast-models``; ``None`` uses ``blast_ct.models``.
    device:
        ``--device``; ``None`` uses ``inference.device``.
    progress:
        Optional callback ``progress(done_tiles, total_tiles)``.

    Raises
    ------
    ichpipe.errors.CheckpointError
        No folder was given, it is not a folder, or its weights are missing or unfit (the
        message says where to put them).
    ichpipe.errors.UsageError
        ``models`` is not 1 to 12.
    """
    folder = weights_dir or (Path(config.blast_ct.weights_dir) if config.blast_ct.weights_dir else None)
    if folder is None:
        raise CheckpointError(f"--segmenter blast_ct needs the folder of its weights. {WEIGHTS_HINT}")
    if not folder.is_dir():
        raise CheckpointError(f"--segmenter blast_ct: {folder} is not a folder. {WEIGHTS_HINT}")
    settings = config.blast_ct
    if models is not None:
        try:
            settings = replace(settings, models=models)
        except ValueError as exc:
            raise UsageError(f"--blast-models: {exc}") from exc
    inference = config.inference if device is None else replace(config.inference, device=device)
    return BlastCtSegmenter(folder, config=settings, inference=inference, anatomy=config.anatomy,
                            sha256_allowlist=config.models.checkpoint_sha256_allowlist, progress=progress)

