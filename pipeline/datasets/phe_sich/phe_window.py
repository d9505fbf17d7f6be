"""Estimate the display window of 8-bit CT slices exported without one, and undo it.

The PHE-SICH-CT-IDS PNGs are brain-windowed 8-bit slices whose window is not
stated. Two independent kinds of evidence pin it down:

**Width, from quantisation.** CT values are integers (HU, rescale slope 1).
A window narrower than 255 HU maps them onto fewer than 256 grey levels, with
a fixed comb of gaps: ``grey = floor(255 / W * k + b)`` for the integer ``k =
HU - low``. The set of grey levels that occur identifies ``W`` (and the
rounding offset ``b``) exactly: :func:`fit_quantisation`. A window of 255 HU
or wider leaves no gaps and cannot be identified this way (``None``).

**Level, from tissue.** With the width known, ``HU = low + k``; only ``low``
is unknown. Tissues whose HU on non-contrast CT is well known anchor it:
the brain parenchyma mode (grey/white mixture), ventricular CSF and acute
clot inside the annotated boxes (:func:`measure_anchors`). Each anchor gives
``low = HU_prior - k_measured``; :func:`estimate_window` combines them with
the priors' spreads as weights (:data:`DEFAULT_PRIORS`, typical adult values,
*assumptions*, not measurements) and reports how far each patient's anchors
sit from the cohort's (a per-patient level shift: scanner calibration or
another export level, which the images cannot tell apart).

:func:`png_to_hu` inverts the map (values at 0 and 255 are *saturated*: only
a bound is known) and :func:`rewindow` re-expresses the slices in another
window, e.g. the W80/L40 the shipped network was trained on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe.dicom_io.window import WindowPreset, apply_window

__all__ = [
    "DEFAULT_PRIORS",
    "PngHu",
    "QuantisationFit",
    "TissueAnchors",
    "TissuePrior",
    "WindowEstimate",
    "estimate_window",
    "fit_quantisation",
    "grey_to_steps",
    "intracranial_mask",
    "measure_anchors",
    "occupied_levels",
    "png_to_hu",
    "rewindow",
]

U8 = npt.NDArray[np.uint8]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int16]
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class TissuePrior:
    """What a tissue's HU is believed to be on non-contrast head CT (an assumption, with its spread).

    Attributes
    ----------
    hu:
        Expected value of the measured statistic (a histogram mode), HU.
    sd:
        One standard deviation of that belief, HU.
    """

    hu: float
    sd: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.hu) and math.isfinite(self.sd) and self.sd > 0):
            raise ValueError(f"Argument 'sd' must be positive and 'hu' finite; got {self}.")


#: Typical adult non-contrast head-CT values of the statistics :func:`measure_anchors` measures.
#: Parenchyma: the mode of supratentorial brain (white matter 20-30 HU, grey 35-45 HU, white
#: dominating the area); CSF: the mode of the lateral ventricles (water 0 HU plus beam hardening and
#: partial volume, usually 2-12 HU); blood: the mode of hyperdense clot in the boxes (acute clot 50-80 HU).
DEFAULT_PRIORS: Mapping[str, TissuePrior] = {
    "parenchyma": TissuePrior(30.0, 3.0),
    "csf": TissuePrior(7.0, 4.0),
    "blood": TissuePrior(65.0, 8.0),
}


# ----------------------------------------------------------------------------- quantisation


@dataclass(frozen=True)
class QuantisationFit:
    """The integer-to-grey map that reproduces the grey levels found in a set of 8-bit slices.

    ``grey = clip(floor(slope * k + offset), 0, 255)`` with ``slope = 255 / width_hu`` and ``k``
    the integer number of HU above the window's low end (``k = 0 .. width_hu``).

    Attributes
    ----------
    width_hu:
        Window width in HU (integer steps of the input).
    offset:
        Rounding offset ``b`` (the middle of the range that fits).
    offset_range:
        All offsets in this closed range reproduce the levels.
    levels:
        Grey level of each step ``k = 0 .. n_steps``.
    """

    width_hu: float
    offset: float
    offset_range: tuple[float, float]
    levels: tuple[int, ...]

    @property
    def slope(self) -> float:
        """Grey levels per HU."""
        return 255.0 / self.width_hu

    @property
    def n_steps(self) -> int:
        """Largest step ``k`` (maps to 255)."""
        return len(self.levels) - 1

    def lookup(self) -> npt.NDArray[np.int16]:
        """Grey level -> step ``k``; -1 for grey levels the map never produces."""
        lut = np.full(256, -1, dtype=np.int16)
        lut[np.asarray(self.levels)] = np.arange(len(self.levels), dtype=np.int16)
        return lut


def occupied_levels(images: Iterable[U8]) -> BoolArray:
    """Which of the 256 grey levels occur in any of ``images``.

    Raises
    ------
    ValueError
        If an image is not uint8.
    """
    counts = np.zeros(256, dtype=np.int64)
    for image in images:
        arr = np.asarray(image)
        if arr.dtype != np.uint8:
            raise ValueError(f"Argument 'images' must hold uint8 arrays; got {arr.dtype}.")
        counts += np.bincount(arr.ravel(), minlength=256)
    return counts > 0


def _levels_for(width: float, offsets: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Grey levels of steps k = 0 .. ceil(width) for each offset: (n_offsets, n_steps + 1)."""
    k = np.arange(0, math.ceil(width) + 1, dtype=np.float64)
    return np.clip(np.floor(255.0 / width * k[None, :] + offsets[:, None]), 0, 255).astype(np.int64)


def fit_quantisation(
    occupied: BoolArray, *, widths: Sequence[float] | None = None, offset_step: float = 0.0025
) -> QuantisationFit | None:
    """The window width (and rounding) whose integer-to-grey map produces exactly the ``occupied`` levels.

    Parameters
    ----------
    occupied:
        Boolean array of 256 (:func:`occupied_levels`); levels 0 and 255 must occur (saturation).
    widths:
        Candidate widths in HU (default 16-254.5 in steps of 0.5); narrowest match wins.
    offset_step:
        Resolution of the rounding-offset search in [0, 1).

    Returns
    -------
    QuantisationFit or None
        ``None`` when no candidate reproduces the levels: a width of 255 HU or more (no gaps), a
        non-integer input, or images that were resampled or smoothed after windowing.

    Raises
    ------
    ValueError
        If ``occupied`` is not a boolean array of 256 values.
    """
    occ = np.asarray(occupied)
    if occ.shape != (256,) or occ.dtype != np.bool_:
        raise ValueError(f"Argument 'occupied' must be a boolean array of 256 values; got {occ.dtype} {occ.shape}.")
    if not (occ[0] and occ[255]) or occ.all():
        return None
    target = np.flatnonzero(occ)
    candidates = np.arange(16.0, 255.0, 0.5) if widths is None else np.asarray(widths, dtype=np.float64)
    offsets = np.arange(0.0, 1.0, offset_step)
    for width in candidates:
        if not 1.0 <= width < 255.0:
            continue
        if abs((math.ceil(width) + 1) - target.size) > 1:
            continue
        levels = _levels_for(float(width), offsets)
        good = [
            i for i in range(len(offsets))
            if np.array_equal(np.unique(levels[i]), target) and np.unique(levels[i]).size == levels.shape[1]
        ]
        if good:
            lo, hi = float(offsets[good[0]]), float(offsets[good[-1]])
            mid = offsets[good[len(good) // 2]]
            chosen = _levels_for(float(width), np.array([mid]))[0]
            return QuantisationFit(float(width), float(mid), (lo, hi), tuple(int(v) for v in chosen))
    return None


def grey_to_steps(grey: U8, fit: QuantisationFit) -> npt.NDArray[np.int16]:
    """Step ``k`` (HU above the window's low end) of every pixel; -1 where a grey level cannot occur."""
    return fit.lookup()[np.asarray(grey, dtype=np.uint8)]


# ----------------------------------------------------------------------------- anchors


def intracranial_mask(
    steps: npt.NDArray[np.int16],
    *,
    top_step: int,
    erode_px: int = 5,
    closings: Sequence[int] = (3, 6, 10),
    min_fraction: float = 0.2,
) -> BoolArray:
    """The space inside a closed ring of saturated (bone) pixels, eroded by ``erode_px``.

    The bone is every pixel at the top step (``>= high``). Its ring is closed by a closing of
    ``closings[0]`` iterations, the holes filled and the largest inner region kept; when that
    region is smaller than ``min_fraction`` of the head (thin or interrupted skull, skull base),
    the next, larger closing is tried. Empty when none works (vertex, skull base, no head).

    Raises
    ------
    ValueError
        If ``closings`` is empty or holds a count below 1.
    """
    if not closings or min(closings) < 1:
        raise ValueError(f"Argument 'closings' must hold iteration counts of at least 1; got {tuple(closings)!r}.")
    head = ndimage.binary_fill_holes(steps > 0)
    head_area = int(head.sum())
    if head_area == 0:
        return np.zeros(steps.shape, dtype=bool)
    raw_bone = steps >= top_step
    for iterations in closings:
        bone = ndimage.binary_closing(raw_bone, iterations=int(iterations))
        inside = ndimage.binary_fill_holes(bone) & ~bone
        labels, n = ndimage.label(inside)
        if n == 0:
            continue
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        if sizes.max() < min_fraction * head_area:
            continue
        region = labels == int(np.argmax(sizes))
        return ndimage.binary_erosion(region, iterations=erode_px) if erode_px else region
    return np.zeros(steps.shape, dtype=bool)


def _mode(values: npt.NDArray[np.int16], n_bins: int, sigma: float = 1.5) -> float | None:
    if values.size < 200:
        return None
    hist = np.bincount(values.astype(np.int64), minlength=n_bins)[:n_bins].astype(np.float64)
    return float(np.argmax(ndimage.gaussian_filter1d(hist, sigma)))


@dataclass(frozen=True)
class TissueAnchors:
    """Histogram modes of one patient's tissues, in steps ``k`` (HU above the window's low end).

    Attributes
    ----------
    patient_id:
        The patient.
    parenchyma, csf, blood:
        Modes (``None`` when too few pixels were found: no ventricles, no box).
    n_parenchyma, n_csf, n_blood:
        Pixels behind each mode.
    """

    patient_id: str
    parenchyma: float | None
    csf: float | None
    blood: float | None
    n_parenchyma: int = 0
    n_csf: int = 0
    n_blood: int = 0

    def get(self, tissue: str) -> float | None:
        """The mode of ``tissue`` (``parenchyma``, ``csf`` or ``blood``)."""
        if tissue not in ("parenchyma", "csf", "blood"):
            raise ValueError(f"Argument 'tissue' must be parenchyma, csf or blood; got {tissue!r}.")
        value: float | None = getattr(self, tissue)
        return value


def measure_anchors(
    patient_id: str,
    slices: Sequence[U8],
    boxes: Sequence[BoolArray | None],
    fit: QuantisationFit,
    *,
    min_area_px: int = 15000,
    csf_gap_steps: int = 10,
    blood_gap_steps: int = 15,
) -> TissueAnchors:
    """Measure the parenchyma, ventricular-CSF and clot modes of one patient.

    Parameters
    ----------
    patient_id:
        Stored in the result.
    slices:
        The patient's 8-bit slices.
    boxes:
        Per slice, a boolean image of the annotated haemorrhage box(es), or ``None``.
    fit:
        The quantisation fit (:func:`fit_quantisation`).
    min_area_px:
        Slices whose eroded intracranial area is smaller are skipped (skull base, vertex).
    csf_gap_steps:
        Ventricle pixels are at least this many steps below the parenchyma mode.
    blood_gap_steps:
        Clot pixels (inside boxes) are at least this many steps above the parenchyma mode.

    Notes
    -----
    Parenchyma: intracranial pixels outside the boxes on the third of slices with the largest
    intracranial area (supratentorial). CSF: connected regions of at least 120 pixels below
    ``parenchyma - csf_gap_steps`` in a central disc of 0.4 times the intracranial radius (the
    lateral and third ventricles), eroded by one pixel against partial volume. Blood: box pixels
    above ``parenchyma + blood_gap_steps``. Saturated pixels (steps 0 and ``n_steps``) are left out.

    Raises
    ------
    ValueError
        If ``slices`` and ``boxes`` differ in length.
    """
    if len(slices) != len(boxes):
        raise ValueError(f"Arguments 'slices' and 'boxes' must have one entry per slice; got {len(slices)}"
                         f" and {len(boxes)}.")
    top = fit.n_steps
    steps_all = [grey_to_steps(s, fit) for s in slices]
    masks = [intracranial_mask(k, top_step=top) for k in steps_all]
    areas = np.array([int(m.sum()) for m in masks])
    usable = [i for i in range(len(slices)) if areas[i] >= min_area_px]
    if not usable:
        return TissueAnchors(patient_id, None, None, None)
    largest = sorted(usable, key=lambda i: -areas[i])[: max(4, len(slices) // 3)]
    par_values = []
    for i in largest:
        keep = masks[i] & (steps_all[i] > 0) & (steps_all[i] < top)
        if boxes[i] is not None:
            keep &= ~np.asarray(boxes[i])
        par_values.append(steps_all[i][keep])
    par = np.concatenate(par_values)
    parenchyma = _mode(par, top + 1)
    if parenchyma is None:
        return TissueAnchors(patient_id, None, None, None)
    csf_values, blood_values = [], []
    yy, xx = np.mgrid[: slices[0].shape[0], : slices[0].shape[1]]
    for i in usable:
        k, m = steps_all[i], masks[i]
        box = np.zeros_like(m) if boxes[i] is None else np.asarray(boxes[i], dtype=bool)
        rows, cols = np.nonzero(m)
        radius = math.sqrt(m.sum() / math.pi)
        central = (yy - rows.mean()) ** 2 + (xx - cols.mean()) ** 2 < (0.4 * radius) ** 2
        low = ndimage.binary_opening((k > 0) & (k < parenchyma - csf_gap_steps) & m & central & ~box)
        labels, n = ndimage.label(low)
        if n:
            sizes = np.bincount(labels.ravel())
            sizes[0] = 0
            big = ndimage.binary_erosion(np.isin(labels, np.flatnonzero(sizes >= 120)))
            csf_values.append(k[big])
        if box.any():
            inside = k[box & m]
            blood_values.append(inside[(inside > parenchyma + blood_gap_steps) & (inside < top)])
    csf = np.concatenate(csf_values) if csf_values else np.zeros(0, np.int16)
    blood = np.concatenate(blood_values) if blood_values else np.zeros(0, np.int16)
    return TissueAnchors(
        patient_id, parenchyma, _mode(csf, top + 1), _mode(blood, top + 1), int(par.size), int(csf.size),
        int(blood.size),
    )


# ----------------------------------------------------------------------------- the estimate


@dataclass(frozen=True)
class WindowEstimate:
    """The window of a cohort of slices and each patient's deviation from it.

    Attributes
    ----------
    width_hu:
        From quantisation (exact for integer HU).
    level_hu, level_sd_hu:
        Window centre and its one-SD uncertainty (from the priors' spreads and the anchors'
        scatter between patients).
    low_by_tissue:
        ``low`` (= level - width / 2) implied by each tissue alone (cohort median), HU.
    patient_shift_hu:
        Per patient: how many HU its parenchyma and CSF modes sit above the cohort medians
        (mean of the two; positive = brighter). Its level estimate is ``level_hu - shift``.
    shift_sd_hu:
        Standard deviation of those shifts between patients.
    parenchyma_csf_correlation:
        Correlation between patients of the parenchyma and CSF deviations (near 1: a common
        per-patient shift; near 0: anatomy and noise).
    """

    width_hu: float
    level_hu: float
    level_sd_hu: float
    low_by_tissue: Mapping[str, float]
    patient_shift_hu: Mapping[str, float]
    shift_sd_hu: float
    parenchyma_csf_correlation: float
    priors: Mapping[str, TissuePrior] = field(default_factory=lambda: dict(DEFAULT_PRIORS))

    @property
    def window(self) -> WindowPreset:
        """The cohort window."""
        return WindowPreset(width=self.width_hu, level=self.level_hu)

    def patient_window(self, patient_id: str) -> WindowPreset:
        """The window with this patient's shift taken out (the cohort window for unknown patients)."""
        return WindowPreset(width=self.width_hu, level=self.level_hu - self.patient_shift_hu.get(patient_id, 0.0))

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready copy."""
        out = asdict(self)
        out["priors"] = {k: asdict(v) for k, v in self.priors.items()}
        return out


def estimate_window(
    anchors: Sequence[TissueAnchors],
    fit: QuantisationFit,
    *,
    priors: Mapping[str, TissuePrior] = DEFAULT_PRIORS,
    round_to: float | None = None,
) -> WindowEstimate:
    """Combine per-patient tissue modes and HU priors into a window.

    For each tissue, ``low_t = prior_t - median_p(k_pt)``; the cohort ``low`` is their
    inverse-variance mean with variance ``sd_t**2 + (1.4826 MAD_t)**2 / n_t``.

    Parameters
    ----------
    anchors:
        One :class:`TissueAnchors` per patient.
    fit:
        The quantisation fit (gives the width).
    priors:
        Tissue priors (keys among ``parenchyma``, ``csf``, ``blood``).
    round_to:
        Round the level to a multiple of this (e.g. 5 HU, as display presets are) when the
        rounded value is within one SD; ``None`` keeps the estimate.

    Raises
    ------
    ValueError
        If no tissue of ``priors`` has a measurement in ``anchors``.
    """
    lows: dict[str, float] = {}
    weights: dict[str, float] = {}
    medians: dict[str, float] = {}
    for tissue, prior in priors.items():
        values = np.array([v for a in anchors if (v := a.get(tissue)) is not None], dtype=np.float64)
        if values.size == 0:
            continue
        med = float(np.median(values))
        mad = 1.4826 * float(np.median(np.abs(values - med)))
        medians[tissue] = med
        lows[tissue] = prior.hu - med
        weights[tissue] = 1.0 / (prior.sd**2 + mad**2 / values.size)
    if not lows:
        raise ValueError("Argument 'anchors' holds no measurement of any tissue in 'priors'.")
    total = sum(weights.values())
    low = sum(lows[t] * weights[t] for t in lows) / total
    level = low + fit.width_hu / 2.0
    level_sd = math.sqrt(1.0 / total)
    if round_to:
        rounded = round(level / round_to) * round_to
        if abs(rounded - level) <= level_sd:
            level = float(rounded)
    shifts: dict[str, float] = {}
    dev_par, dev_csf = [], []
    for a in anchors:
        parts = []
        if a.parenchyma is not None and "parenchyma" in medians:
            parts.append(a.parenchyma - medians["parenchyma"])
        if a.csf is not None and "csf" in medians:
            parts.append(a.csf - medians["csf"])
        if a.parenchyma is not None and a.csf is not None and "parenchyma" in medians and "csf" in medians:
            dev_par.append(a.parenchyma - medians["parenchyma"])
            dev_csf.append(a.csf - medians["csf"])
        if parts:
            shifts[a.patient_id] = float(np.mean(parts))
    corr = float(np.corrcoef(dev_par, dev_csf)[0, 1]) if len(dev_par) > 2 and np.std(dev_csf) > 0 else math.nan
    spread = float(np.std(list(shifts.values()), ddof=1)) if len(shifts) > 1 else math.nan
    return WindowEstimate(
        width_hu=fit.width_hu,
        level_hu=float(level),
        level_sd_hu=level_sd,
        low_by_tissue=lows,
        patient_shift_hu=shifts,
        shift_sd_hu=spread,
        parenchyma_csf_correlation=corr,
        priors=dict(priors),
    )


# ----------------------------------------------------------------------------- inverse map


@dataclass(frozen=True)
class PngHu:
    """HU recovered from a windowed slice.

    Attributes
    ----------
    hu:
        float32 HU; saturated pixels hold the window's ends (a bound, not a value).
    below:
        Pixels at grey 0: their HU is at most the window's low end (air, fat, bone-free dark).
    above:
        Pixels at grey 255: their HU is at least the high end (bone, calcification, dense contrast).
    """

    hu: F32
    below: BoolArray
    above: BoolArray


def png_to_hu(grey: U8, fit: QuantisationFit, window: WindowPreset) -> PngHu:
    """Invert the window: ``HU = low + k`` for each pixel's step ``k``.

    Grey levels the map never produces (they do not occur in untouched exports) are
    interpolated linearly (``low + grey / slope``).

    Raises
    ------
    ValueError
        If ``window.width`` differs from the fit's width by more than 0.5 HU.
    """
    if abs(window.width - fit.width_hu) > 0.5:
        raise ValueError(
            f"Argument 'window' has width {window.width:g} HU but the quantisation fit says {fit.width_hu:g} HU."
        )
    arr = np.asarray(grey, dtype=np.uint8)
    steps = grey_to_steps(arr, fit).astype(np.float32)
    missing = steps < 0
    if missing.any():
        steps[missing] = arr[missing].astype(np.float32) / np.float32(fit.slope)
    hu = (np.float32(window.low) + steps).astype(np.float32)
    return PngHu(hu=hu, below=arr == 0, above=arr == 255)


def rewindow(grey: U8, fit: QuantisationFit, source: WindowPreset, target: WindowPreset) -> U8:
    """Re-express windowed slices in ``target`` (e.g. W80/L40) through HU.

    Exact where ``target`` lies inside ``source`` (saturated pixels stay saturated in the
    target); where it does not, the part outside ``source`` is lost and comes back flat.
    """
    back = png_to_hu(grey, fit, source)
    return apply_window(back.hu, target)
