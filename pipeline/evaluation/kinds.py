"""Detection per kind of blood (subdural, epidural, intraventricular, ...) from per-kind truth masks.

A NIfTI case may have, beside its mask ``<stem>.nii[.gz]``, one mask per kind of blood
``<stem>_<kind>.nii[.gz]`` (``ichpipe train data --n-extra-axial`` writes ``mask_subdural.nii.gz``,
``mask_epidural.nii.gz``, ``mask_intraventricular.nii.gz``, ``mask_intraparenchymal.nii.gz``;
the mask is their union). For each kind a segmenter's **recall** is the share of that kind's
voxels it marked, and the kind counts as **detected** in a case when the recall is at least
``min_recall`` (0.5 by default): the Dice of the whole mask cannot say that a 100 mL subdural
was missed while a 5 mL intraventricular cast was found.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ichpipe.pipeline.datasets.nifti_pairs import NIFTI_SUFFIXES, nifti_stem

__all__ = ["KindDetection", "detection_by_kind", "kind_mask_paths", "kind_recalls", "kinds_markdown"]

BoolArray = npt.NDArray[np.bool_]
_KIND = re.compile(r"[a-z][a-z-]*")


def kind_mask_paths(mask: Path) -> dict[str, Path]:
    """The per-kind masks beside a NIfTI ``mask`` (``<stem>_<kind>`` + the same suffix), by kind, sorted.

    >>> kind_mask_paths(Path("no/such/folder/mask.nii.gz"))
    {}
    """
    mask = Path(mask)
    stem = nifti_stem(mask)
    suffix = mask.name[len(stem):]
    if not mask.name.lower().endswith(NIFTI_SUFFIXES) or not mask.parent.is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in sorted(mask.parent.glob(f"{stem}_*{suffix}")):
        kind = path.name[len(stem) + 1: -len(suffix)]
        if _KIND.fullmatch(kind):
            found[kind] = path
    return found


def kind_recalls(predicted: BoolArray, kinds: Mapping[str, BoolArray]) -> dict[str, float]:
    """Share of each kind's voxels in ``predicted`` (kinds without voxels are left out).

    >>> truth = {"subdural": np.array([1, 1, 0, 0], bool), "epidural": np.zeros(4, bool)}
    >>> kind_recalls(np.array([1, 0, 0, 1], bool), truth)
    {'subdural': 0.5}
    """
    out: dict[str, float] = {}
    for kind, mask in kinds.items():
        if mask.shape != predicted.shape:
            raise ValueError(f"The '{kind}' mask has shape {mask.shape}; the prediction {predicted.shape}.")
        total = int(np.count_nonzero(mask))
        if total:
            out[kind] = float(np.count_nonzero(predicted & mask)) / total
    return out


@dataclass(frozen=True)
class KindDetection:
    """One segmenter's detection of one kind over the cases that have it.

    Attributes
    ----------
    model, kind:
        Row label and kind of blood.
    detected, cases:
        Cases where the kind's recall reached ``min_recall``, out of the cases that have the kind.
    mean_recall:
        Mean recall over those cases.
    """

    model: str
    kind: str
    detected: int
    cases: int
    mean_recall: float


def detection_by_kind(recalls: Sequence[tuple[str, Mapping[str, float]]], *, min_recall: float = 0.5
                      ) -> list[KindDetection]:
    """Pool ``(model, {kind: recall})`` per case into one :class:`KindDetection` per model and kind.

    >>> detection_by_kind([("net", {"subdural": 0.9}), ("net", {"subdural": 0.1, "epidural": 0.6})])[1]
    KindDetection(model='net', kind='subdural', detected=1, cases=2, mean_recall=0.5)
    """
    if not 0.0 < min_recall <= 1.0:
        raise ValueError(f"Argument 'min_recall' must be in (0, 1]; got {min_recall}.")
    pooled: dict[tuple[str, str], list[float]] = {}
    for model, per_kind in recalls:
        for kind, recall in per_kind.items():
            pooled.setdefault((model, kind), []).append(recall)
    return [KindDetection(model, kind, sum(r >= min_recall for r in values), len(values),
                          float(np.mean(values)))
            for (model, kind), values in sorted(pooled.items(), key=lambda item: (item[0][0], item[0][1]))]


def kinds_markdown(rows: Sequence[KindDetection], *, min_recall: float = 0.5) -> str:
    """A Markdown table: per segmenter, each kind detected in how many cases, and the mean recall."""
    if not rows:
        return ""
    kinds = sorted({r.kind for r in rows})
    models = list(dict.fromkeys(r.model for r in rows))
    cell = {(r.model, r.kind): f"{r.detected}/{r.cases} ({r.mean_recall:.2f})" for r in rows}
    lines = [f"## Detection by kind (detected: >= {min_recall:.0%} of the kind's voxels found; mean recall)", "",
             "| segmenter | " + " | ".join(kinds) + " |", "|---" + "|---:" * len(kinds) + "|"]
    lines += ["| " + " | ".join([m, *(cell.get((m, k), "") for k in kinds)]) + " |" for m in models]
    return "\n".join(lines) + "\n"
