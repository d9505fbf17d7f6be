"""Checks on the blood found: its density and its edges, where a volume may be too low or too high.

Each check returns a list of :class:`~ichpipe.pipeline.quality.flags.QualityFlag` (empty when quiet);
thresholds are keyword arguments named as in :mod:`ichpipe.pipeline.config.quality_config`. They read
the final mask and HU volume, or what the segmenter measured beside them (``details["loose_call"]``,
``details["extra_axial"]``); the checks on the image and the intracranial space are in
:mod:`ichpipe.pipeline.quality.checks`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ichpipe.pipeline.quality.flags import QualityFlag, slice_range_text
from ichpipe.pipeline.segment.components import components_at_least_3d, grow_into, mask_volume_ml

__all__ = [
    "UntouchedPieces",
    "check_blend_side",
    "check_blood_density",
    "check_hypodense_part",
    "check_low_density_collection",
    "check_skull_base_missed",
    "check_uncertain_edge",
    "check_untouched_blood",
    "skull_base_missed_ml",
    "untouched_pieces",
]

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.floating]


def check_blood_density(
    blood: BoolArray,
    hu: FloatArray,
    voxel_volumes_ml: npt.ArrayLike,
    *,
    max_median_hu: float | None = 47.0,
    min_ml: float = 0.5,
    high_median_hu: float | None = 90.0,
) -> list[QualityFlag]:
    """Segmented blood whose median HU is near brain density (a subacute bleed, or blood in CSF), or above
    acute blood's (contrast staining, calcification).

    Parameters
    ----------
    blood:
        The final hematoma mask, bool (slices, rows, columns).
    hu:
        The volume in HU, the mask's shape.
    voxel_volumes_ml:
        Volume of one voxel of each slice (mL).
    max_median_hu, min_ml, high_median_hu:
        See :class:`~ichpipe.pipeline.config.quality_config.BloodDensityConfig`.

    >>> hu = np.full((2, 4, 4), 42.0); blood = np.ones((2, 4, 4), dtype=bool)
    >>> [f.code for f in check_blood_density(blood, hu, [0.1, 0.1])]
    ['low_density_blood']
    >>> check_blood_density(blood, hu + 25.0, [0.1, 0.1])
    []
    >>> [f.code for f in check_blood_density(blood, hu + 60.0, [0.1, 0.1])]  # 102 HU: not acute blood
    ['high_density_blood']
    """
    if (max_median_hu is None and high_median_hu is None) or not blood.any():
        return []
    ml = mask_volume_ml(blood, voxel_volumes_ml)
    if ml < min_ml:
        return []
    median = float(np.median(np.asarray(hu)[blood]))
    if max_median_hu is not None and median < max_median_hu:
        return [QualityFlag(
            "low_density_blood",
            f"The {ml:.1f} mL of blood found has a median of {median:.0f} HU, under {max_median_hu:g} HU: near brain"
            " density (a subacute bleed, or blood mixed with CSF), which the networks find only in part on phantoms;"
            " the volume may be too low.",
            round(median, 1), max_median_hu)]
    if high_median_hu is not None and median >= high_median_hu:
        return [QualityFlag(
            "high_density_blood",
            f"The {ml:.1f} mL of blood found has a median of {median:.0f} HU, at or above {high_median_hu:g} HU:"
            " denser than acute blood (50-90 HU). Contrast medium staining the brain after an angiogram or a"
            " thrombectomy, or a calcification, may have been read as blood; the volume may be too high.",
            round(median, 1), high_median_hu)]
    return []


def check_low_density_collection(extra_axial: Mapping[str, Any]) -> list[QualityFlag]:
    """A subacute or chronic collection the extra-axial step added (``details["extra_axial"]``).

    Such a collection is added for its size, with a median under ``min_median_hu``; on phantoms the
    network finds only part of it, and what it grows may run past it along the table
    (``MODEL_CARD.md``), so the volume is uncertain: usually too low, at times too high, or right only by
    compensation.

    >>> [f.code for f in check_low_density_collection({"components_low_density": 1, "low_density_ml": 60.0})]
    ['extra_axial_low_density']
    >>> check_low_density_collection({"components_added": 1})
    []
    """
    low_ml = float(extra_axial.get("low_density_ml") or 0.0)
    if low_ml <= 0:
        return []
    n = int(extra_axial.get("components_low_density") or 0)
    return [QualityFlag(
        "extra_axial_low_density",
        f"{low_ml:.1f} mL in {n} hypodense or isodense collection(s) against the inner table (subacute or chronic"
        " subdural?) was added; such collections are found only in part and their edges are uncertain, so the volume"
        " is uncertain: usually too low, at times too high (what was grown runs past the collection along the table),"
        " or right only by compensation.",
        round(low_ml, 2), None)]


def check_uncertain_edge(loose_call: Mapping[str, Any], volume_ml: float, *, min_fraction: float = 0.3,
                         min_ml: float = 1.0) -> list[QualityFlag]:
    """The main network calls much more at its looser threshold, joined to the blood: a faint edge.

    ``loose_call`` is ``details["loose_call"]`` (``threshold``, ``beside_ml``), ``volume_ml`` the volume
    found; ``min_fraction``, ``min_ml``: see :class:`~ichpipe.pipeline.config.quality_config.UncertainEdgeConfig`.

    >>> [f.code for f in check_uncertain_edge({"threshold": 0.3, "beside_ml": 2.1}, 5.4)]
    ['uncertain_edge']
    >>> check_uncertain_edge({"threshold": 0.3, "beside_ml": 2.5}, 38.2)
    []
    """
    beside = float(loose_call.get("beside_ml") or 0.0)
    share = _large_share(beside, volume_ml, min_ml=min_ml, min_fraction=min_fraction)
    if share is None:
        return []
    return [QualityFlag(
        "uncertain_edge",
        f"At probability {loose_call.get('threshold')} the network calls {beside:.1f} mL more joined to the"
        f" {volume_ml:.1f} mL of blood found ({100 * share:.0f} % of it): the blood's edge is faint (blood near brain"
        " density, or an image unlike the training data), so the volume depends on where the line is drawn and"
        " may be too low or too high.",
        round(share, 3), min_fraction)]


def check_blend_side(blend_side: Mapping[str, Any], volume_ml: float, *, min_fraction: float = 0.15,
                     min_ml: float = 0.5) -> list[QualityFlag]:
    """A network trained on blend signs reads a less dense side beside the dense blood, not counted.

    ``blend_side`` is ``details["blend_side"]`` (``uncounted_ml``: what of the side the final mask does not
    hold), ``volume_ml`` the volume found; ``min_fraction``, ``min_ml``: see
    :class:`~ichpipe.pipeline.config.quality_config.BlendSideCheckConfig`.

    >>> [f.code for f in check_blend_side({"side_ml": 2.1, "uncounted_ml": 2.1}, 6.0)]
    ['blend_side']
    >>> check_blend_side({"side_ml": 2.1, "uncounted_ml": 0.0}, 8.1)
    []
    """
    side = float(blend_side.get("uncounted_ml") or 0.0)
    share = _large_share(side, volume_ml, min_ml=min_ml, min_fraction=min_fraction)
    if share is None:
        return []
    return [QualityFlag(
        "blend_side",
        f"A network trained on clots with a less dense side reads {side:.1f} mL of such a side joined to the"
        f" dense blood ({100 * share:.0f} % of the {volume_ml:.1f} mL found) that is not counted: part of the"
        " clot may be left out (blend sign), so the volume may be too low.",
        round(share, 3), min_fraction)]


def _large_share(ml: float, volume_ml: float, *, min_ml: float, min_fraction: float) -> float | None:
    """``ml`` as a share of ``volume_ml`` when it is positive, at least ``min_ml`` and ``min_fraction`` of it;
    else ``None``."""
    if ml <= 0 or ml < min_ml or ml < min_fraction * volume_ml:
        return None
    return ml / volume_ml if volume_ml > 0 else float("inf")


def check_hypodense_part(extra_axial: Mapping[str, Any], *, min_ml: float = 5.0) -> list[QualityFlag]:
    """Hypodense tissue beside an acute collection the extra-axial step added, not counted.

    ``extra_axial`` is ``details["extra_axial"]``; ``min_ml``: see
    :class:`~ichpipe.pipeline.config.quality_config.HypodensePartConfig`.

    >>> [f.code for f in check_hypodense_part({"hypodense_beside_ml": 13.7})]
    ['extra_axial_hypodense_part']
    >>> check_hypodense_part({"hypodense_beside_ml": 2.9})
    []
    """
    beside = float(extra_axial.get("hypodense_beside_ml") or 0.0)
    if beside < min_ml or beside <= 0:
        return []
    return [QualityFlag(
        "extra_axial_hypodense_part",
        f"{beside:.1f} mL of hypodense tissue (-5..28 HU) against the inner table, joined to an acute collection that"
        " was added, looks like part of it to the extra-axial network and was not counted: the chronic part of an"
        " acute-on-chronic subdural (or CSF)? The volume may be too low.",
        round(beside, 2), min_ml)]


def skull_base_missed_ml(
    found: BoolArray,
    baseline: BoolArray,
    slices: Sequence[int],
    voxel_volumes_ml: npt.ArrayLike,
) -> float:
    """What the threshold baseline segments and the network does not, in the baseline's pieces on ``slices`` (mL).

    A piece (26-connected) of the baseline's mask with a voxel on one of ``slices`` counts whole, so a
    bleed centred on the last skull-base slice and running on above it is measured whole.

    Parameters
    ----------
    found, baseline:
        The network's final mask and the baseline's (the cross-check), bool, one shape.
    slices:
        The slices the intracranial finder reached across a failed slice (the skull base).
    voxel_volumes_ml:
        One voxel's volume per slice (or one value).
    """
    if found.shape != baseline.shape:
        raise ValueError("Arguments 'found' and 'baseline' must have one shape.")
    pieces = _pieces_on(baseline, slices)
    return mask_volume_ml(pieces & ~found, voxel_volumes_ml) if pieces.any() else 0.0


def _pieces_on(mask: BoolArray, slices: Sequence[int]) -> BoolArray:
    """The 26-connected pieces of ``mask`` with a voxel on one of ``slices`` (bool only: no 3D label volume)."""
    index = sorted({int(z) for z in slices})
    if not index or not mask[index].any():
        return np.zeros_like(mask)
    seeds = np.zeros_like(mask)
    seeds[index] = mask[index]
    return grow_into(seeds, mask)


def check_skull_base_missed(missed_ml: float | None, *, min_ml: float | None = 1.0) -> list[QualityFlag]:
    """Blood the baseline finds at the skull base and the network does not (``skull_base_blood_missed``).

    Parameters
    ----------
    missed_ml:
        :func:`skull_base_missed_ml`; ``None`` when not measured (no baseline beside a network, or no slice
        reached across a failed one).
    min_ml:
        See :class:`~ichpipe.pipeline.config.quality_config.SkullBaseConfig` (``None``: off).
    """
    if missed_ml is None or min_ml is None or missed_ml < min_ml:
        return []
    return [QualityFlag(
        "skull_base_blood_missed",
        f"The threshold baseline finds {missed_ml:.1f} mL of blood that the network did not segment on the skull"
        " base's slices (posterior fossa, temporal base; reached across a slice where no bone ring was found), where"
        " the network has never seen a bleed: a cerebellar, brainstem or temporal bleed may be missed, the volume may"
        " be too low (or the baseline reads beam hardening).",
        round(missed_ml, 3), min_ml)]


@dataclass(frozen=True)
class UntouchedPieces:
    """The baseline's pieces of blood that the network's mask does not touch at all.

    Attributes
    ----------
    ml:
        Their volume, mL (pieces of at least the minimum only).
    slices:
        The slices they lie on, sorted.
    """

    ml: float
    slices: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``quality.measurements.untouched_by_network``)."""
        return {"baseline_only_ml": round(self.ml, 3), "slices": list(self.slices)}


def untouched_pieces(
    found: BoolArray,
    baseline: BoolArray,
    voxel_volumes_ml: npt.ArrayLike,
    *,
    min_piece_ml: float = 0.1,
    skip_slices: Sequence[int] = (),
) -> UntouchedPieces:
    """The threshold baseline's pieces (26-connected) with no voxel in the network's mask.

    Where the two find one bleed they overlap, whatever their edges; a piece the network does not touch
    is a bleed it missed whole (or what the baseline misreads: the streaks of a head that moved or of beam
    hardening, a dense sinus).

    Parameters
    ----------
    found, baseline:
        The network's final mask and the baseline's (the cross-check), bool, one shape.
    voxel_volumes_ml:
        One voxel's volume per slice (or one value).
    min_piece_ml:
        Pieces under this volume are not counted (partial volume, noise).
    skip_slices:
        Pieces with a voxel on these slices are not counted (the skull base's slices, which
        :func:`skull_base_missed_ml` measures).

    Examples
    --------
    >>> base = np.zeros((3, 6, 6), dtype=bool); base[:, :2, :2] = True; base[:, 4:, 4:] = True
    >>> net = np.zeros_like(base); net[1, 0, 0] = True
    >>> untouched_pieces(net, base, 1.0, min_piece_ml=1.0)
    UntouchedPieces(ml=12.0, slices=(0, 1, 2))
    """
    if found.shape != baseline.shape:
        raise ValueError("Arguments 'found' and 'baseline' must have one shape.")
    missed = baseline & ~grow_into(baseline & found, baseline)
    missed &= ~_pieces_on(missed, skip_slices)
    missed = components_at_least_3d(missed, voxel_volumes_ml, min_piece_ml)
    slices = tuple(int(z) for z in np.flatnonzero(missed.any(axis=(1, 2))))
    return UntouchedPieces(mask_volume_ml(missed, voxel_volumes_ml) if slices else 0.0, slices)


def check_untouched_blood(pieces: UntouchedPieces | None, *, min_ml: float | None = 1.0) -> list[QualityFlag]:
    """Blood the baseline finds where the network found nothing (``blood_missed_by_network``).

    Parameters
    ----------
    pieces:
        :func:`untouched_pieces`; ``None`` when not measured (no baseline beside a network).
    min_ml:
        See :class:`~ichpipe.pipeline.config.cross_check_config.MissedBloodConfig` (``None``: off).
    """
    if pieces is None or min_ml is None or pieces.ml < min_ml:
        return []
    return [QualityFlag(
        "blood_missed_by_network",
        f"The threshold baseline finds {pieces.ml:.1f} mL of blood on {slice_range_text(pieces.slices)} in pieces the"
        " network did not touch: a bleed may be missed whole and the volume too low (or the baseline reads streaks"
        " there, of a head that moved during the scan or of beam hardening, or a dense sinus).",
        round(pieces.ml, 3), min_ml)]
