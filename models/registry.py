"""The model registry: one name per network, its builder and default arguments.

The command line's ``--segmenter`` choices come from :data:`SEGMENTER_NAMES`
and checkpoints record a registry name plus the full constructor arguments,
so names and defaults live in exactly one place.

========================  ============  ==============================================
name                      task          what it builds
========================  ============  ==============================================
``sa_cbam_unet``          segmentation  seed 000 network, base 64 (SA + CA + SPA)
``sa_cbam_unet_slim``     segmentation  the same, base 16 (for CPU)
``unet``                  segmentation  same class, all three switches off
``unet_sa``               segmentation  same class, self-attention only
``unet_sa_ca``            segmentation  same class, self-attention + channel attention
``monai_unet``            segmentation  MONAI UNet (residual units), 2D
``basic_unet``            segmentation  MONAI BasicUNet, 2D
``segresnet``             segmentation  MONAI SegResNet, 2D
``expansion_sacnn``       expansion     seed 004 tabular self-attention CNN
========================  ============  ==============================================
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from ichpipe.errors import UsageError

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "MODEL_REGISTRY",
    "PREDICTOR_NAMES",
    "SEGMENTER_NAMES",
    "ModelSpec",
    "Task",
    "build_model",
    "get_model_spec",
    "model_names",
]

Task = Literal["segmentation", "expansion"]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: how to build it and with which defaults.

    Parameters
    ----------
    name:
        Registry name (what ``--segmenter`` and checkpoints use).
    target:
        ``"module:attribute"`` of the builder, a callable taking keyword
        arguments only and returning the module; imported on first use
        (:attr:`builder`), so reading the registry does not import torch.
    defaults:
        Default keyword arguments (plain values, storable in a checkpoint).
    fixed:
        Names of arguments that define this entry (e.g. the ablation
        switches) and cannot be overridden.
    task:
        ``"segmentation"`` or ``"expansion"``.
    description:
        One line for help texts.

    Examples
    --------
    >>> spec = get_model_spec("sa_cbam_unet_slim")
    >>> spec.defaults["base_channels"]
    16
    """

    name: str
    target: str
    defaults: Mapping[str, Any]
    task: Task
    description: str
    fixed: frozenset[str] = field(default_factory=frozenset)

    @property
    def builder(self) -> Callable[..., nn.Module]:
        """The builder named by :attr:`target` (imports its module, and so torch)."""
        module, _, attribute = self.target.partition(":")
        built: Callable[..., nn.Module] = getattr(importlib.import_module(module), attribute)
        return built

    def resolve_kwargs(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults merged with ``overrides``, checked against the builder.

        Raises
        ------
        ValueError
            If an override names an argument the builder does not take, or
            changes one of the entry's fixed arguments.
        """
        overrides = dict(overrides or {})
        accepted = set(inspect.signature(self.builder).parameters)
        unknown = sorted(set(overrides) - accepted)
        if unknown:
            raise ValueError(
                f"Argument 'overrides' names {', '.join(unknown)}, which model "
                f"'{self.name}' does not take; it takes {', '.join(sorted(accepted))}."
            )
        changed = sorted(k for k in self.fixed if k in overrides and overrides[k] != self.defaults[k])
        if changed:
            raise ValueError(
                f"Argument 'overrides' changes {', '.join(changed)}, which define model "
                f"'{self.name}'; pick the registry name with the switches you want instead."
            )
        return {**self.defaults, **overrides}

    def build(self, **overrides: Any) -> nn.Module:
        """Build the module with the defaults, updated by ``overrides``."""
        return self.builder(**self.resolve_kwargs(overrides))


def _sa_cbam(base: int, sa: bool, ca: bool, spa: bool) -> dict[str, Any]:
    return {
        "in_channels": 1,
        "out_channels": 1,
        "base_channels": base,
        "input_size": 512,
        "sa": sa,
        "ca": ca,
        "spa": spa,
        "num_heads": 8,
        "pos_encoding": "sinusoidal",
        "reduction": 16,
        "spatial_kernel_size": 7,
        "norm": "batch",
        "dropout": 0.0,
        "sigmoid": True,
    }


_SWITCHES = frozenset({"sa", "ca", "spa"})
_SA_CBAM = "ichpipe.models.sa_cbam_unet:SACBAMUNet"

_SPECS = (
    ModelSpec(
        "sa_cbam_unet", _SA_CBAM, _sa_cbam(64, True, True, True), "segmentation",
        "Seed 000 SA-CBAM U-Net, base width 64 (self-attention + channel + spatial attention).",
        _SWITCHES,
    ),
    ModelSpec(
        "sa_cbam_unet_slim", _SA_CBAM, _sa_cbam(16, True, True, True), "segmentation",
        "SA-CBAM U-Net with base width 16, for CPU inference.",
        _SWITCHES,
    ),
    ModelSpec(
        "unet", _SA_CBAM, _sa_cbam(64, False, False, False), "segmentation",
        "Plain residual U-Net: the SA-CBAM U-Net with every attention switched off.",
        _SWITCHES,
    ),
    ModelSpec(
        "unet_sa", _SA_CBAM, _sa_cbam(64, True, False, False), "segmentation",
        "U-Net + self-attention bottleneck (seed ablation).",
        _SWITCHES,
    ),
    ModelSpec(
        "unet_sa_ca", _SA_CBAM, _sa_cbam(64, True, True, False), "segmentation",
        "U-Net + self-attention + channel attention on the skips (seed ablation).",
        _SWITCHES,
    ),
    ModelSpec(
        "monai_unet", "ichpipe.models.baselines:build_monai_unet",
        {
            "in_channels": 1, "out_channels": 1, "channels": [16, 32, 64, 128, 256],
            "num_res_units": 2, "norm": "batch", "dropout": 0.0, "sigmoid": True,
        },
        "segmentation", "MONAI UNet (strided convolutions, residual units) in 2D.",
    ),
    ModelSpec(
        "basic_unet", "ichpipe.models.baselines:build_basic_unet",
        {
            "in_channels": 1, "out_channels": 1, "features": [32, 32, 64, 128, 256, 32],
            "upsample": "deconv", "dropout": 0.0, "sigmoid": True,
        },
        "segmentation", "MONAI BasicUNet in 2D.",
    ),
    ModelSpec(
        "segresnet", "ichpipe.models.baselines:build_segresnet",
        {
            "in_channels": 1, "out_channels": 1, "init_filters": 16,
            "blocks_down": [1, 2, 2, 4], "blocks_up": [1, 1, 1], "dropout": 0.0,
            "sigmoid": True,
        },
        "segmentation", "MONAI SegResNet in 2D.",
    ),
    ModelSpec(
        "expansion_sacnn", "ichpipe.models.predictor:ExpansionSACNN",
        {
            "n_features": 72, "conv_channels": [16, 32], "kernel_size": 3, "pool_size": 2,
            "embed_dim": 16, "num_heads": 4, "hidden_size": 64, "dropout": 0.1,
        },
        "expansion", "Seed 004 tabular self-attention CNN for hematoma expansion (one logit).",
    ),
)

#: Read-only mapping from registry name to :class:`ModelSpec`.
MODEL_REGISTRY: Mapping[str, ModelSpec] = MappingProxyType({s.name: s for s in _SPECS})

#: Names valid for ``--segmenter`` (registry order).
SEGMENTER_NAMES: tuple[str, ...] = tuple(s.name for s in _SPECS if s.task == "segmentation")

#: Names of expansion predictors.
PREDICTOR_NAMES: tuple[str, ...] = tuple(s.name for s in _SPECS if s.task == "expansion")


def model_names(task: Task | None = None) -> tuple[str, ...]:
    """Registered names, optionally only those of one task.

    Examples
    --------
    >>> "segresnet" in model_names("segmentation")
    True
    """
    if task is not None and task not in ("segmentation", "expansion"):
        raise ValueError(
            f"Argument 'task' must be 'segmentation', 'expansion' or None; got {task!r}."
        )
    return tuple(s.name for s in _SPECS if task is None or s.task == task)


def get_model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` registered as ``name``.

    Raises
    ------
    ichpipe.errors.UsageError
        (a ``ValueError``) if no model has that name.
    """
    try:
        return MODEL_REGISTRY[name]
    except KeyError:
        raise UsageError(
            f"Argument 'name' is {name!r}, which is not a registered model; "
            f"known names: {', '.join(MODEL_REGISTRY)}."
        ) from None


def build_model(name: str, **overrides: Any) -> nn.Module:
    """Build the registered model ``name`` with its defaults updated by ``overrides``.

    Examples
    --------
    >>> net = build_model("unet", base_channels=4, input_size=32)
    >>> type(net).__name__
    'SACBAMUNet'
    """
    return get_model_spec(name).build(**overrides)
