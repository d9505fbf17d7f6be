"""The ``blast_ct:`` section of ``config.yaml``: how the peer BLAST-CT v1 runs (``--segmenter blast_ct``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["BLOOD_CLASSES", "BlastCtConfig"]

#: BLAST-CT v1 classes counted as haemorrhage (oedema, class 3, is not blood and is never counted).
BLOOD_CLASSES: tuple[str, ...] = ("iph", "eah", "ivh")


@dataclass(frozen=True)
class BlastCtConfig:
    """How the BLAST-CT v1 ensemble runs.

    The device, CPU threads, the restriction to the intracranial space and the smallest
    component come from ``inference:``, as for every network.

    Parameters
    ----------
    weights_dir:
        Folder holding the published ``model_1.pt`` ... ``model_12.pt`` when ``--checkpoint`` is not
        given (empty: ``--checkpoint DIR`` is needed). Nothing is downloaded.
    models:
        How many of the twelve published models to average (``model_1.pt`` ... ``model_N.pt``),
        1 to 12; ``--blast-models`` overrides. Twelve is the published ensemble (about 20 CPU
        minutes a scan on a laptop-class core), one is about 12 times faster.
    precision:
        ``auto`` (bf16 autocast where the CPU has native bf16 or on CUDA), ``bf16`` or ``fp32``.
    max_tile_voxels:
        Largest output tile of the sliding window (memory: about 2 kB per voxel in bf16,
        4 kB in fp32); the result does not depend on it.
    back_to_grid:
        ``probability`` (trilinear probabilities at each DICOM voxel, then arg-max) or
        ``nearest`` (nearest 1 mm label, BLAST-CT's own way back).
    zero_as_air:
        Treat voxels of exactly 0 HU as air (-1000 HU) before resampling: for skull-stripped
        exports whose removed skull and background were set to 0 HU, which BLAST-CT otherwise
        reads as soft tissue.
    """

    weights_dir: str = ""
    models: int = 12
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    max_tile_voxels: int = 729000
    back_to_grid: Literal["probability", "nearest"] = "probability"
    zero_as_air: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.models, bool) or not 1 <= self.models <= 12:
            raise ValueError(f"Argument 'models' must be an integer from 1 to 12; got {self.models!r}.")
        if self.max_tile_voxels < 15**3:
            raise ValueError(f"Argument 'max_tile_voxels' must be at least {15**3}; got {self.max_tile_voxels}.")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"Argument 'precision' must be 'auto', 'bf16' or 'fp32'; got {self.precision!r}.")
        if self.back_to_grid not in ("probability", "nearest"):
            raise ValueError(f"Argument 'back_to_grid' must be 'probability' or 'nearest'; got {self.back_to_grid!r}.")
