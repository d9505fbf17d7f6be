"""The ``models:`` section of ``config.yaml``: the default segmenter and where shipped checkpoints are."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["CHECKPOINT_DIR", "ModelsConfig", "resolve_checkpoint"]


#: Where shipped checkpoints live (inside the installed ``models`` package).
CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "models" / "checkpoints"


@dataclass(frozen=True)
class ModelsConfig:
    """The segmenter ``run`` uses when ``--segmenter``/``--checkpoint`` are not given.

    Parameters
    ----------
    default_segmenter:
        ``threshold`` or a registered network name.
    default_checkpoint:
        Checkpoint for a network: a path, or a file name looked up in the
        shipped ``models/checkpoints/`` folder.
    checkpoint_sha256_allowlist:
        If not empty, only checkpoint files with one of these SHA-256 digests load.
    """

    default_segmenter: str = "sa_cbam_unet_slim"
    default_checkpoint: str = "ichpipe-default.pt"
    checkpoint_sha256_allowlist: tuple[str, ...] = ()


def resolve_checkpoint(value: str | Path) -> Path:
    """A checkpoint path as given, or else the shipped file of that name."""
    path = Path(value).expanduser()
    if path.exists() or path.is_absolute() or len(path.parts) > 1:
        return path
    return CHECKPOINT_DIR / path
