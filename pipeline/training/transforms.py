"""From labelled cases to network inputs: the inference pre-processing, then MONAI augmentation.

Deterministic part (:func:`prepare_case_slices`), identical to
:class:`ichpipe.pipeline.segment.inference.NetworkSegmenter`: HU through the checkpoint's
window to 0-255 (PNG cases are already there), times ``scale`` plus
``offset``, each slice resized to ``input_size`` with antialiased bilinear
interpolation. The mask is resized the same way, so a label pixel holds the
fraction of hematoma it covers (a soft label: sub-pixel edges survive the
down-sampling, which keeps volumes unbiased after the probabilities are
resized back at inference). A per-pixel loss ``weight`` goes with them: the
case's slice weight (label confidence) times one minus the resized ignore mask
(1 everywhere for cases without either).

Random part (:func:`training_transforms`), as the seed (shift and flip)
plus intensity jitter:

* :class:`RandLesionCropd`: a ``crop_size`` window centred, with probability
  ``positive_fraction``, on a hematoma pixel and otherwise on a head pixel,
  at a random place: this is the shift augmentation (the full head is seen
  at inference, where the network is fully convolutional);
* :class:`RandBrainOnlyd` (``brain_only_prob``): everything outside the skull's inner table
  set to the window's bottom, as in skull-stripped exports (skull, scalp and air at 0 HU);
* MONAI ``RandFlipd`` along each axis (left-right and antero-posterior flips);
* MONAI ``RandAffined``: small rotations and zooms (other head sizes and pixel spacings);
* MONAI ``RandScaleIntensityd``, ``RandShiftIntensityd``,
  ``RandGaussianNoised``, ``RandGaussianSmoothd`` on the image only
  (contrast, brightness, noise and sharpness of other scanners and kernels).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.transforms import (
    Compose,
    DeleteItemsd,
    EnsureTyped,
    MapTransform,
    RandAffined,
    RandFlipd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    Randomizable,
    RandScaleIntensityd,
    RandShiftIntensityd,
)

from ichpipe.dicom_io.window import WindowPreset, apply_window
from ichpipe.pipeline.datasets.case import CaseVolume
from ichpipe.pipeline.segment.intracranial import head_mask
from ichpipe.pipeline.segment.slice_context import CONTEXT_CHANNELS, neighbour_indices

__all__ = [
    "PreparedSlices",
    "RandBrainOnlyd",
    "RandLesionCropd",
    "RandSwapNeighboursd",
    "brain_region",
    "prepare_case_slices",
    "resize_slices",
    "select_slices",
    "training_transforms",
    "validation_transforms",
]

F32 = npt.NDArray[np.float32]


def resize_slices(stack: F32, size: tuple[int, int]) -> F32:
    """Resize (n, H, W) to (n, *size) exactly as inference does (bilinear, antialiased)."""
    if stack.shape[1:] == size:
        return np.ascontiguousarray(stack, dtype=np.float32)
    x = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))[:, None]
    y = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return y[:, 0].numpy().astype(np.float32)


class PreparedSlices:
    """Network-ready slices of one case.

    Attributes
    ----------
    case_id:
        The case.
    image:
        float32 (n, H, W): windowed, normalised, resized; (n, 3, H, W) with slice context
        (below, the slice, above).
    label:
        float32 (n, H, W) in [0, 1]: resized mask (fraction of each pixel).
    weight:
        float32 (n, H, W) in [0, 1]: per-pixel loss weight.
    head:
        uint8 (n, H, W): 1 on the head (where negative crops are centred).
    brain:
        uint8 (n, H, W): 1 inside the skull's inner table (:func:`brain_region`; all 0 where no
        closed skull was found).
    indices:
        Slice index of each row in the case.
    """

    def __init__(
        self, case_id: str, image: F32, label: F32, head: npt.NDArray[np.uint8], indices: list[int],
        weight: F32 | None = None,
        brain: npt.NDArray[np.uint8] | None = None,
    ):
        self.case_id = case_id
        self.image = image
        self.label = label
        self.weight = np.ones_like(label) if weight is None else weight
        self.head = head
        self.brain = np.zeros_like(head) if brain is None else brain
        self.indices = indices

    def items(self) -> list[dict[str, Any]]:
        """One MONAI data dict per slice: channel-first ``image``, ``label``, ``weight``, ``head`` and ids."""
        return [
            {
                "image": self.image[i] if self.image.ndim == 4 else self.image[i][None],
                "label": self.label[i][None],
                "weight": self.weight[i][None],
                "head": self.head[i][None],
                "brain": self.brain[i][None],
                "case_id": self.case_id,
                "slice": int(k),
            }
            for i, k in enumerate(self.indices)
        ]


def select_slices(
    case: CaseVolume, *, negatives_per_positive: float, min_negatives: int, rng: np.random.Generator
) -> list[int]:
    """Slices to train on: every slice with hematoma and a random share of head slices without.

    Parameters
    ----------
    case:
        The case.
    negatives_per_positive:
        Negative (head, no hematoma) slices kept per positive slice; ``math.inf`` keeps them all.
    min_negatives:
        Negatives kept at least (cases without hematoma contribute these).
    rng:
        Draws the negatives.
    """
    if negatives_per_positive < 0 or min_negatives < 0:
        raise ValueError("Arguments 'negatives_per_positive' and 'min_negatives' must not be negative.")
    positive = [int(k) for k in np.flatnonzero(case.mask.reshape(case.mask.shape[0], -1).any(axis=1))]
    if case.intensity == "hu":
        has_head = head_mask(case.image).reshape(case.image.shape[0], -1).any(axis=1)
    else:
        has_head = case.image.reshape(case.image.shape[0], -1).max(axis=1) > 0
    negative = [int(k) for k in np.flatnonzero(has_head) if int(k) not in set(positive)]
    if math.isinf(negatives_per_positive):
        n_neg = len(negative)
    else:
        n_neg = min(len(negative), max(min_negatives, round(negatives_per_positive * len(positive))))
    chosen = rng.choice(negative, size=n_neg, replace=False).tolist() if n_neg else []
    return sorted(positive + [int(k) for k in chosen])


def brain_region(bone: npt.NDArray[np.bool_], *, closing_px: int = 3) -> npt.NDArray[np.bool_]:
    """Inside the skull of each slice: the hole-filled largest bone component, minus that component.

    ``bone`` is (n, H, W) (>= 300 HU, or saturated grey in a brain window). Bright blobs inside
    the skull (clot, calcification) are other components and stay inside. A slice without a
    closed skull gives an empty region.

    Examples
    --------
    >>> y, x = np.indices((32, 32)); ring = (np.hypot(y - 16, x - 16) > 10) & (np.hypot(y - 16, x - 16) < 13)
    >>> bone = (ring | (np.hypot(y - 16, x - 16) < 2))[None]
    >>> inside = brain_region(bone)
    >>> bool(inside[0, 16, 16]), bool(inside[0, 16, 25]), bool(inside[0, 16, 28]), bool(inside[0, 0, 0])
    (True, True, False, False)
    """
    from scipy import ndimage

    out = np.zeros(bone.shape, dtype=bool)
    for k in range(bone.shape[0]):
        if not bone[k].any():
            continue
        closed = ndimage.binary_closing(bone[k], iterations=closing_px) | bone[k]
        labels, n = ndimage.label(closed)
        if n == 0:
            continue
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        skull = labels == int(np.argmax(sizes))
        out[k] = ndimage.binary_fill_holes(skull) & ~skull
    return out


def prepare_case_slices(
    case: CaseVolume,
    indices: list[int],
    *,
    window: WindowPreset,
    scale: float,
    offset: float,
    input_size: tuple[int, int],
    slice_context_mm: float | None = None,
) -> PreparedSlices:
    """Window, normalise and resize the chosen slices of ``case`` (see the module docstring).

    With ``slice_context_mm``, ``image`` is (n, 3, H, W): the slices about that far below and above
    each chosen slice (:func:`~ichpipe.pipeline.segment.slice_context.neighbour_indices` on the
    case's geometry, or the next slices when it has none), and the slice. A case that carries its
    neighbours (``case.neighbours``, e.g. PHE-SICH slices written without their whole stack) uses those.
    """
    if not indices:
        empty = np.zeros((0, *input_size), dtype=np.float32)
        image_shape = (0, CONTEXT_CHANNELS, *input_size) if slice_context_mm else empty.shape
        return PreparedSlices(case.case_id, np.zeros(image_shape, np.float32), empty.copy(), empty.astype(np.uint8), [])
    raw = case.image[indices]

    def network_grey(stack: npt.NDArray[np.float32]) -> F32:
        grey = apply_window(stack, window).astype(np.float32) if case.intensity == "hu" else stack.astype(np.float32)
        return resize_slices(grey * np.float32(scale) + np.float32(offset), input_size)

    image = network_grey(raw)
    if slice_context_mm:
        if case.neighbours is not None:
            below, above = case.neighbours[indices, 0], case.neighbours[indices, 1]
        else:
            offsets = (case.geometry.offsets_mm if case.geometry is not None
                       else np.arange(case.image.shape[0], dtype=np.float64) * slice_context_mm)
            table = neighbour_indices(offsets, context_mm=slice_context_mm)
            below, above = case.image[table[indices, 0]], case.image[table[indices, 1]]
        image = np.ascontiguousarray(np.stack([network_grey(below), image, network_grey(above)], axis=1))
    label = np.clip(resize_slices(case.mask[indices].astype(np.float32), input_size), 0.0, 1.0)
    head_full = head_mask(raw) if case.intensity == "hu" else raw > 0
    head = (resize_slices(head_full.astype(np.float32), input_size) > 0.5).astype(np.uint8)
    bone = raw >= 300.0 if case.intensity == "hu" else raw >= 250.0
    brain = (resize_slices(brain_region(bone).astype(np.float32), input_size) > 0.5).astype(np.uint8)
    weight = np.ones_like(label, dtype=np.float32)
    if case.ignore is not None:
        ignored = np.clip(resize_slices(case.ignore[indices].astype(np.float32), input_size), 0.0, 1.0)
        weight = (1.0 - ignored).astype(np.float32)
    if case.slice_weight is not None:
        weight = (weight * case.slice_weight[indices][:, None, None]).astype(np.float32)
    return PreparedSlices(case.case_id, image, label.astype(np.float32), head, list(indices), weight, brain)


class RandLesionCropd(Randomizable, MapTransform):
    """Crop ``keys`` to ``crop_size`` around a random hematoma pixel (or, otherwise, head pixel).

    With probability ``positive_fraction`` and a slice that has hematoma, the
    centre is a random pixel whose label is at least 0.5; otherwise a random
    head pixel (``head_key``), or the image centre when there is no head. The
    window is moved inside the image when it would cross an edge, so any
    position of the hematoma inside the crop can occur (shift augmentation).

    Parameters
    ----------
    keys:
        Keys to crop (channel-first 2D arrays of one size).
    crop_size:
        (height, width) of the crop; not larger than the image.
    label_key, head_key:
        Keys of the label and head arrays.
    positive_fraction:
        Probability of centring on hematoma when there is some.
    """

    def __init__(
        self,
        keys: KeysCollection,
        *,
        crop_size: tuple[int, int],
        label_key: str = "label",
        head_key: str = "head",
        positive_fraction: float = 0.67,
    ) -> None:
        MapTransform.__init__(self, keys)
        if not 0.0 <= positive_fraction <= 1.0:
            raise ValueError(f"Argument 'positive_fraction' must be in [0, 1]; got {positive_fraction}.")
        if len(crop_size) != 2 or min(crop_size) < 1:
            raise ValueError(f"Argument 'crop_size' must be (height, width), positive; got {crop_size!r}.")
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.label_key = label_key
        self.head_key = head_key
        self.positive_fraction = positive_fraction
        self._centre: tuple[int, int] = (0, 0)

    def randomize(self, data: Any = None) -> None:
        """Draw the crop centre from ``data`` (a dict holding the label and head)."""
        label = np.asarray(data[self.label_key])[0]
        head = np.asarray(data[self.head_key])[0]
        positive = np.argwhere(label >= 0.5)
        if positive.size and self.R.uniform() < self.positive_fraction:
            pick = positive[self.R.randint(len(positive))]
        else:
            inside = np.argwhere(head > 0)
            pick = inside[self.R.randint(len(inside))] if inside.size else np.array(label.shape) // 2
        jitter = self.R.randint(-self.crop_size[0] // 4, self.crop_size[0] // 4 + 1, size=2)
        self._centre = (int(pick[0] + jitter[0]), int(pick[1] + jitter[1]))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(d)
        h, w = np.asarray(d[self.label_key]).shape[-2:]
        ch, cw = self.crop_size
        if ch > h or cw > w:
            raise ValueError(f"Argument 'crop_size' {self.crop_size} is larger than the image ({h}, {w}).")
        y0 = min(max(self._centre[0] - ch // 2, 0), h - ch)
        x0 = min(max(self._centre[1] - cw // 2, 0), w - cw)
        for key in self.key_iterator(d):
            d[key] = d[key][..., y0 : y0 + ch, x0 : x0 + cw]
        return d


class _RandDraw(Randomizable, MapTransform):
    """A map transform applied to an item with probability ``prob`` (drawn by :meth:`randomize`)."""

    def __init__(self, keys: KeysCollection, *, prob: float) -> None:
        MapTransform.__init__(self, keys)
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"Argument 'prob' must be in [0, 1]; got {prob}.")
        self.prob = prob
        self._do = False

    def randomize(self, data: Any = None) -> None:
        """Draw whether to apply the transform to this item."""
        self._do = self.R.uniform() < self.prob


class RandBrainOnlyd(_RandDraw):
    """With probability ``prob``, set ``image`` to ``background`` outside ``brain`` (a skull-stripped look).

    Slices whose ``brain`` is empty (no closed skull found) are left alone.
    """

    def __init__(self, keys: KeysCollection = "image", *, brain_key: str = "brain", prob: float = 0.1,
                 background: float = 0.0) -> None:
        super().__init__(keys, prob=prob)
        self.brain_key = brain_key
        self.background = background

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(d)
        brain = d[self.brain_key]
        if not self._do or not bool((brain > 0).any()):
            return d
        for key in self.key_iterator(d):
            d[key] = torch.where(torch.as_tensor(brain) > 0, torch.as_tensor(d[key]),
                                 torch.as_tensor(self.background, dtype=torch.as_tensor(d[key]).dtype))
        return d


class RandSwapNeighboursd(_RandDraw):
    """With probability ``prob``, swap the first and last channel of ``keys`` (slice context upside down).

    A network with slice context then learns no preference for the slice below or above (stacks
    run either way along the normal). One-channel images are left alone.
    """

    def __init__(self, keys: KeysCollection = "image", *, prob: float = 0.5) -> None:
        super().__init__(keys, prob=prob)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(d)
        if not self._do:
            return d
        for key in self.key_iterator(d):
            if d[key].shape[0] == CONTEXT_CHANNELS:
                d[key] = torch.as_tensor(d[key])[[2, 1, 0]]
        return d


def training_transforms(
    *, crop_size: tuple[int, int], positive_fraction: float, augment: bool = True, brain_only_prob: float = 0.0,
    slice_context: bool = False,
) -> Compose:
    """The training pipeline (see the module docstring); ``augment=False`` keeps only the crop.

    ``slice_context``: the images hold three slices; augmentation also swaps the slice below and above.

    The first step (to tensors) is deterministic, so a MONAI ``CacheDataset``
    caches its output; every later step is random and runs per sample.
    """
    keys = ("image", "label", "weight")
    steps: list[Any] = [
        EnsureTyped(("image", "label", "weight", "head", "brain"), data_type="tensor", track_meta=False),
        RandLesionCropd(
            ("image", "label", "weight", "head", "brain"), crop_size=crop_size, positive_fraction=positive_fraction
        ),
    ]
    if augment and brain_only_prob > 0:
        steps.append(RandBrainOnlyd("image", prob=brain_only_prob))
    steps.append(DeleteItemsd(("head", "brain")))
    if augment and slice_context:
        steps.append(RandSwapNeighboursd("image", prob=0.5))
    if augment:
        steps += [
            RandFlipd(keys, prob=0.5, spatial_axis=0),
            RandFlipd(keys, prob=0.5, spatial_axis=1),
            RandAffined(
                keys, prob=0.3, rotate_range=0.26, scale_range=0.12, mode=("bilinear", "bilinear", "bilinear"),
                padding_mode="border",
            ),
            RandScaleIntensityd("image", factors=0.1, prob=0.5),
            RandShiftIntensityd("image", offsets=0.05, prob=0.5),
            RandGaussianNoised("image", prob=0.3, mean=0.0, std=0.03),
            RandGaussianSmoothd("image", prob=0.2, sigma_x=(0.25, 0.8), sigma_y=(0.25, 0.8)),
        ]
    steps.append(EnsureTyped(keys, data_type="tensor", dtype=torch.float32, track_meta=False))
    return Compose(steps)


def validation_transforms() -> Compose:
    """Validation: the whole resized slice, as float tensors (deterministic, cached)."""
    return Compose(
        [
            DeleteItemsd(("head", "brain")),
            EnsureTyped(("image", "label", "weight"), data_type="tensor", dtype=torch.float32, track_meta=False),
        ]
    )
