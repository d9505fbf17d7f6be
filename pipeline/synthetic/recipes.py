"""What ``ichpipe train data`` makes: its options, and the recipe of each phantom case drawn from them.

A recipe (head size, pose, field of view, spacing, tilt, noise, blood, lesions) is drawn from the
options' seed and the case index alone, so the same options always give the same cases.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from ichpipe.pipeline.datasets.manifest import Split
from ichpipe.pipeline.synthetic.lesion_shapes import ShapeSubset
from ichpipe.pipeline.synthetic.phantom import PhantomSpec

__all__ = [
    "DEFAULT_LESION_MIX",
    "DEFAULT_SUBACUTE_FRACTION",
    "DEFAULT_SUBDURAL_STAGES",
    "DEFAULT_TOUCH_SKULL_FRACTION",
    "DEMO_SEED",
    "EXTRA_AXIAL_KINDS",
    "REAL_BACKGROUNDS",
    "SHAPE_TRIES",
    "SKULL_BASE_BACKGROUNDS",
    "CaseFormat",
    "GeneratorOptions",
    "PhantomRecipe",
    "draw_blood_hu",
    "draw_recipe",
    "draw_shape_scale",
    "parse_shares",
]

F32 = npt.NDArray[np.float32]

BoolArray = npt.NDArray[np.bool_]

CaseFormat = Literal["nifti", "dicom"]

#: Real backgrounds: name -> (folder under ct-real, patient ID, whether the skull is empty and must be filled).
REAL_BACKGROUNDS: dict[str, tuple[str, str, bool]] = {
    "ge": ("ge-hispeed-head-tilt", "ct-real-ge", False),
    "philips": ("philips-ingenuity-head-phantom", "ct-real-philips", True),
    # the GE head's skull base only: lesions go on the slices the intracranial finder reaches across a
    # failed slice (posterior fossa, temporal base), which the other backgrounds never paint
    "ge-skull-base": ("ge-hispeed-head-tilt", "ct-real-ge", False),
}

#: Backgrounds whose lesions go on the skull base's slices only (see ``load_real_background``).
SKULL_BASE_BACKGROUNDS = frozenset({"ge-skull-base"})

#: Shapes tried for one lesion before it is left out (a large shape may not fit a small head or slab).
SHAPE_TRIES = 5

#: The demo's phantom seed (``make demo``); training studies never use it.
DEMO_SEED = 20261121

#: Lesion kinds of the extra-axial / intraventricular studies (``--n-extra-axial``).
EXTRA_AXIAL_KINDS: tuple[str, ...] = ("subdural", "epidural", "intraventricular", "subarachnoid")

#: Default share of each kind as the first lesion of an extra-axial study.
DEFAULT_LESION_MIX: tuple[str, ...] = ("subdural=0.55", "epidural=0.2", "intraventricular=0.25")

#: Default share of intraparenchymal blood drawn subacute (the rest acute).
DEFAULT_SUBACUTE_FRACTION = 0.25

#: Default share of intraparenchymal haematomas placed against the inner table (the rest inside the brain).
DEFAULT_TOUCH_SKULL_FRACTION = 0.3

#: Default shares of the subdural stages (acute 50-80 HU, subacute 30-50, chronic 0-25, mixed).
DEFAULT_SUBDURAL_STAGES: tuple[str, ...] = ("acute=0.6", "subacute=0.25", "chronic=0.05", "mixed=0.1")


def parse_shares(items: tuple[str, ...], known: tuple[str, ...], *, name: str) -> dict[str, float]:
    """``("a=0.5", "b=1")`` -> shares of the names in ``known``, normalised to sum to 1 (missing names: 0).

    Raises
    ------
    ValueError
        If an item is not ``NAME=SHARE`` with a known name and a share >= 0, or all shares are 0.

    Examples
    --------
    >>> parse_shares(("subdural=3", "epidural=1"), EXTRA_AXIAL_KINDS, name="lesion_mix")
    {'subdural': 0.75, 'epidural': 0.25, 'intraventricular': 0.0, 'subarachnoid': 0.0}
    """
    shares = dict.fromkeys(known, 0.0)
    for item in items:
        key, sep, text = str(item).partition("=")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not sep or key.strip() not in known or not (math.isfinite(value) and value >= 0):
            raise ValueError(
                f"Argument '{name}' holds {item!r}; each item must be NAME=SHARE with NAME one of"
                f" {', '.join(known)} and a share >= 0."
            )
        shares[key.strip()] = value
    total = sum(shares.values())
    if total <= 0:
        raise ValueError(f"Argument '{name}' gives every kind a share of 0.")
    return {k: v / total for k, v in shares.items()}


@dataclass(frozen=True)
class GeneratorOptions:
    """What ``ichpipe train data`` makes.

    Parameters
    ----------
    n:
        Number of phantom studies.
    n_real:
        Number of studies on real backgrounds (spread over ``real_backgrounds``).
    seed:
        Seed of everything; studies of another seed are other patients.
    size:
        Matrix of phantom studies (rows = columns); 512 as clinical CT.
    format:
        Phantom studies as ``nifti`` pairs (compact, fast) or ``dicom`` (a CT
        series and a DICOM SEG, read as ``run`` reads a study).
    shapes:
        HemSeg subset the lesion shapes come from: ``train`` (training data),
        ``val`` (held-out data) or ``builtin``.
    val_fraction, test_fraction:
        Patient-level split fractions.
    real_backgrounds:
        Which real backgrounds to use (``ge``, ``philips``).
    real_split:
        Split of the real-background patients; ``None`` draws it like any patient.
    hemseg_dir, ct_real_dir:
        Where the shared data is (default ``../shared/data``).
    n_extra_axial:
        Studies with extra-axial or intraventricular blood
        (:mod:`~ichpipe.pipeline.synthetic.extra_axial_cases`).
    lesion_mix:
        Share of each kind (``subdural``, ``epidural``, ``intraventricular``, ``subarachnoid``) as their first
        lesion (subarachnoid blood goes into the sulci of the real GE head, the CSF pockets of a phantom's
        cortical outline).
    subdural_stages:
        Shares of the subdural stages (``acute``, ``subacute``, ``chronic``, ``mixed``).
    extra_axial_real_fraction:
        Share of them painted into the real GE head (one patient, ``real_split``); the rest
        into phantom heads.
    subacute_fraction:
        Share of intraparenchymal blood drawn subacute (42-58 HU) instead of acute (60-85 HU);
        0.25 by default (the shipped network's training data).
    slice_spacing_mm:
        Slice spacing of every phantom-head study (the same head length, so more slices); ``None``
        draws 4, 5 or 6 mm. Everything else is drawn as without it (thin-slice test sets).
    noise_scale:
        The drawn noise of every phantom-head study times this (a thin slice's noise: about
        ``sqrt(5 / thickness)``); 1 draws the recipe's.
    blend_fraction:
        Share of the acute shaped haematomas (phantom and real-background studies) given a less
        dense side, the blend sign (:func:`~ichpipe.pipeline.synthetic.lesion_painting.with_blend_side`,
        35-50 HU), counted as haematoma; drawn from a stream of its own, so 0 (the default) writes
        what was written before and any share changes nothing but those sides.
    blend_group:
        The training sampling group (the manifest's ``sampling_group``) of the studies given a blend
        side, so that ``train seg --mix`` sets their share; ``None``: their source's group, as any study.
    touch_skull_fraction:
        Share of the intraparenchymal haematomas (phantom and real-background studies) placed against the
        inner table (cut by it: a lobar bleed) instead of inside the brain; 0.3 by default (the shipped
        networks' training data, which 0.3 writes again unchanged).
    """

    n: int = 100
    n_real: int = 0
    seed: int = 0
    size: int = 512
    format: CaseFormat = "nifti"
    shapes: ShapeSubset = "train"
    val_fraction: float = 0.1
    test_fraction: float = 0.0
    real_backgrounds: tuple[str, ...] = ("ge", "philips")
    real_split: Split | None = None
    hemseg_dir: Path | None = None
    ct_real_dir: Path | None = None
    n_extra_axial: int = 0
    lesion_mix: tuple[str, ...] = DEFAULT_LESION_MIX
    subdural_stages: tuple[str, ...] = DEFAULT_SUBDURAL_STAGES
    extra_axial_real_fraction: float = 0.25
    subacute_fraction: float = DEFAULT_SUBACUTE_FRACTION
    slice_spacing_mm: float | None = None
    noise_scale: float = 1.0
    blend_fraction: float = 0.0
    blend_group: str | None = None
    touch_skull_fraction: float = DEFAULT_TOUCH_SKULL_FRACTION

    def __post_init__(self) -> None:
        if not 0.0 <= self.touch_skull_fraction <= 1.0:
            raise ValueError(f"Argument 'touch_skull_fraction' must be between 0 and 1;"
                             f" got {self.touch_skull_fraction!r}.")
        if self.blend_group is not None and not re.fullmatch(r"[a-z0-9][a-z0-9-]*", self.blend_group):
            raise ValueError(f"Argument 'blend_group' must be a group name of lower-case letters, digits and '-';"
                             f" got {self.blend_group!r}.")
        if not 0.0 <= self.blend_fraction <= 1.0:
            raise ValueError(f"Argument 'blend_fraction' must be between 0 and 1; got {self.blend_fraction!r}.")
        if self.slice_spacing_mm is not None and not 0.5 <= self.slice_spacing_mm <= 10.0:
            raise ValueError(f"Argument 'slice_spacing_mm' must be between 0.5 and 10 mm, or None;"
                             f" got {self.slice_spacing_mm!r}.")
        if not 0.0 < self.noise_scale <= 10.0:
            raise ValueError(f"Argument 'noise_scale' must be in (0, 10]; got {self.noise_scale!r}.")
        if self.n < 0 or self.n_real < 0 or self.n_extra_axial < 0 or self.n + self.n_real + self.n_extra_axial < 1:
            raise ValueError(
                f"Arguments 'n', 'n_real' and 'n_extra_axial' must not be negative and must add up to at least 1;"
                f" got {self.n}, {self.n_real}, {self.n_extra_axial}."
            )
        parse_shares(self.lesion_mix, EXTRA_AXIAL_KINDS, name="lesion_mix")
        parse_shares(self.subdural_stages, ("acute", "subacute", "chronic", "mixed"), name="subdural_stages")
        if not 0.0 <= self.extra_axial_real_fraction <= 1.0:
            raise ValueError(
                f"Argument 'extra_axial_real_fraction' must be between 0 and 1; got {self.extra_axial_real_fraction!r}."
            )
        if not 0.0 <= self.subacute_fraction <= 1.0:
            raise ValueError(
                f"Argument 'subacute_fraction' must be between 0 and 1; got {self.subacute_fraction!r}."
            )
        if self.seed < 0:
            raise ValueError(f"Argument 'seed' must not be negative; got {self.seed}.")
        if not 64 <= self.size <= 1024:
            raise ValueError(f"Argument 'size' must be between 64 and 1024; got {self.size}.")
        if self.format not in ("nifti", "dicom"):
            raise ValueError(f"Argument 'format' must be 'nifti' or 'dicom'; got {self.format!r}.")
        unknown = [b for b in self.real_backgrounds if b not in REAL_BACKGROUNDS]
        if unknown:
            raise ValueError(
                f"Argument 'real_backgrounds' names {', '.join(unknown)}; known: {', '.join(REAL_BACKGROUNDS)}."
            )
        if self.real_split not in (None, "train", "val", "test"):
            raise ValueError(f"Argument 'real_split' must be train, val, test or None; got {self.real_split!r}.")


@dataclass(frozen=True)
class PhantomRecipe:
    """Everything drawn for one phantom study (stored in ``dataset.json``)."""

    case_id: str
    patient_id: str
    phantom_seed: int
    rows: int
    field_of_view_mm: float
    n_slices: int
    slice_spacing_mm: float
    gantry_tilt_deg: float
    noise_hu: float
    shading_hu: float
    stage: str
    blood_hu: float
    n_hematomas: int
    shape: str
    touch_skull: bool
    volume_ml: float
    edema_mm: float
    n_shaped: int
    shaped_touch_skull: tuple[bool, ...]
    ventricular_blood: bool
    calcifications: bool
    blend_fraction: float = 0.0

    def spec(self, *, volume_ml: float | None = None) -> PhantomSpec:
        """The phantom's options (its own hematomas only; the other lesions are painted after)."""
        return PhantomSpec(
            seed=self.phantom_seed,
            rows=self.rows,
            columns=self.rows,
            n_slices=self.n_slices,
            slice_spacing_mm=self.slice_spacing_mm,
            field_of_view_mm=self.field_of_view_mm,
            gantry_tilt_deg=self.gantry_tilt_deg,
            n_hematomas=self.n_hematomas,
            shape=self.shape,  # type: ignore[arg-type]  # drawn from the phantom's names
            touch_skull=self.touch_skull and self.n_hematomas > 0,
            volume_ml=(volume_ml or self.volume_ml) if self.n_hematomas else None,
            hematoma_hu=self.blood_hu,
            edema_mm=self.edema_mm,
            noise_hu=self.noise_hu,
            shading_hu=self.shading_hu,
        )


def draw_blood_hu(
    rng: np.random.Generator, *, subacute_fraction: float = DEFAULT_SUBACUTE_FRACTION
) -> tuple[str, float]:
    """Draw a blood stage and its HU: subacute (42-58 HU) with probability ``subacute_fraction``
    (by default one in four), else acute (60-85 HU)."""
    if rng.uniform() < 1.0 - subacute_fraction:
        return "acute", float(rng.uniform(60.0, 85.0))
    return "subacute", float(rng.uniform(42.0, 58.0))


def draw_recipe(options: GeneratorOptions, index: int) -> PhantomRecipe:
    """Draw phantom study ``index`` of a dataset (see the module docstring for the mix)."""
    rng = np.random.default_rng([options.seed, index, 0x7A1])
    phantom_seed = int(rng.integers(1, 2**62))
    if phantom_seed == DEMO_SEED:
        phantom_seed += 1
    spacing = float(rng.choice([4.0, 5.0, 5.0, 5.0, 6.0]))
    n_slices = int(np.clip(round(rng.uniform(130.0, 170.0) / spacing), 20, 48))
    tilt = float(rng.choice([-1.0, 1.0]) * rng.uniform(5.0, 20.0)) if (
        options.format == "dicom" and rng.uniform() < 0.3
    ) else 0.0
    if options.slice_spacing_mm is not None:  # the same head length (the draws above are kept)
        n_slices = round(n_slices * spacing / options.slice_spacing_mm)
        spacing = float(options.slice_spacing_mm)
    stage, hu = draw_blood_hu(rng, subacute_fraction=options.subacute_fraction)
    normal_head = rng.uniform() < 0.08
    n_hem = 0 if normal_head else int(rng.choice([0, 1, 1, 2], p=[0.4, 0.25, 0.25, 0.1]))
    n_shaped = 0 if normal_head else int(rng.choice([0, 1, 2], p=[0.3, 0.55, 0.15]))
    ivh = (not normal_head) and rng.uniform() < 0.2
    if not normal_head and n_hem == 0 and n_shaped == 0 and not ivh:
        n_hem = 1
    return PhantomRecipe(
        case_id=f"synth-{options.seed}-{index:04d}",
        patient_id=f"synth-{options.seed}-{index:04d}",
        phantom_seed=phantom_seed,
        rows=options.size,
        field_of_view_mm=float(rng.uniform(200.0, 250.0)),
        n_slices=n_slices,
        slice_spacing_mm=spacing,
        gantry_tilt_deg=tilt,
        noise_hu=float(rng.uniform(2.0, 10.0)) * options.noise_scale,
        shading_hu=float(rng.uniform(0.0, 12.0)),
        stage=stage,
        blood_hu=hu,
        n_hematomas=n_hem,
        shape=str(rng.choice(["ellipsoid", "irregular"])),
        touch_skull=bool(rng.uniform() < options.touch_skull_fraction),
        volume_ml=float(math.exp(rng.uniform(math.log(2.0), math.log(60.0)))),
        edema_mm=float(rng.uniform(1.0, 4.0)) if rng.uniform() < (0.6 if stage == "subacute" else 0.2) else 0.0,
        n_shaped=n_shaped,
        shaped_touch_skull=tuple(bool(rng.uniform() < options.touch_skull_fraction) for _ in range(n_shaped)),
        ventricular_blood=bool(ivh),
        calcifications=bool(rng.uniform() < 0.4),
        blend_fraction=options.blend_fraction,
    )


def draw_shape_scale(rng: np.random.Generator, volume_ml: float, max_ml: float = 80.0) -> float:
    """Draw a size factor (0.8-1.25) for a lesion shape of ``volume_ml``, capped so it stays under ``max_ml``."""
    scale = float(rng.uniform(0.8, 1.25))
    return min(scale, (max_ml / max(volume_ml, 1e-6)) ** (1.0 / 3.0))
