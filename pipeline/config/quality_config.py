"""The ``quality:`` section of ``config.yaml``: when a volume is flagged, and what a flag does.

Each sub-section holds the thresholds of one check in
:mod:`ichpipe.pipeline.quality` (the keyword arguments of its function, one to
one); the reasons for the defaults are given per field. They were set on the
phantoms and the three real studies of ``../shared/data`` (see
``MODEL_CARD.md``, "Quality flags").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ichpipe.pipeline.config.config_checks import check_fractions as _check_fractions
from ichpipe.pipeline.config.config_checks import check_non_negative as _check_non_negative
from ichpipe.pipeline.config.config_checks import check_pair as _check_pair
from ichpipe.pipeline.config.cross_check_config import DisagreementConfig, MissedBloodConfig, SkullBaseConfig
from ichpipe.pipeline.config.quality_artifact_config import (
    DuralMassConfig,
    FluidLevelConfig,
    MetalConfig,
    SkippedSliceConfig,
)

__all__ = [
    "BlendSideCheckConfig",
    "BloodAtSkullConfig",
    "BloodDensityConfig",
    "BloodEdgeConfig",
    "BloodOutsideConfig",
    "ClippingConfig",
    "CoverageConfig",
    "DisagreementConfig",
    "DomainConfig",
    "DuralMassConfig",
    "FluidLevelConfig",
    "HuLevelsConfig",
    "HypodenseAtSkullConfig",
    "HypodensePartConfig",
    "ImageNoiseConfig",
    "IntracranialCheckConfig",
    "MetalConfig",
    "MissedBloodConfig",
    "QualityConfig",
    "SkippedSliceConfig",
    "SkullBaseConfig",
    "UncertainEdgeConfig",
]


@dataclass(frozen=True)
class IntracranialCheckConfig:
    """Flags ``intracranial_empty``, ``intracranial_small``, ``skull_open``, ``skull_absent``.

    Parameters
    ----------
    empty_ml:
        Below this the space was not found (no adult head holds less than
        ~1000 mL; 10 mL is a few slices of noise).
    min_ml:
        Below this even a partial scan of an adult head is implausible (the
        posterior fossa alone is ~150-200 mL; a neonate's whole space ~350 mL).
    min_head_ratio:
        Intracranial / head volume below this is implausible: 0.40-0.69 on the
        phantoms and the real GE head (more neck and face lowers it), 0.02 on
        the air-filled Philips head phantom.
    open_gap_deg:
        A bridged gap at least this wide on ``open_min_slices`` slices is an
        open skull (a craniotomy flap is 60-150 deg; sutures and foramina < 10 deg).
    open_min_slices:
        One bridged slice can be the skull base; two or more is a defect.
    absent_bone_share:
        A ring made mostly of other barriers than bone (a stripped skull's
        constant value, air) means there is no skull in the image.
    """

    empty_ml: float = 10.0
    min_ml: float = 300.0
    min_head_ratio: float = 0.2
    open_gap_deg: float = 20.0
    open_min_slices: int = 2
    absent_bone_share: float = 0.5

    def __post_init__(self) -> None:
        _check_non_negative(self)
        _check_fractions(self, "min_head_ratio", "absent_bone_share")


@dataclass(frozen=True)
class HuLevelsConfig:
    """Flags ``hu_calibration`` and ``hu_no_air``: air and brain levels from histogram peaks.

    Parameters
    ----------
    air_hu:
        Accepted air peak: air is -1000 HU by definition and a calibrated
        scanner keeps it within +/-50 (the tolerance of phantom QA).
    brain_hu:
        Accepted brain peak inside the intracranial space (white matter
        25-30, grey 35-45 HU; measured 31 on the real GE head, 34.5 on the
        real IVH example, 27-28 on the phantoms).
    min_air_fraction:
        Air is checked when at least this share of the voxels lie in
        -1100..-500 HU (a head CT always has air around the head unless it
        was masked); below it, ``hu_no_air``.
    min_brain_fraction:
        At least this share of the intracranial voxels must lie in -20..100 HU
        for a brain peak to exist (brain, CSF and blood are ~95 % of it).
    sample_step:
        In-plane subsampling of the histograms (every 2nd pixel is plenty).
    """

    air_hu: tuple[float, float] = (-1050.0, -950.0)
    brain_hu: tuple[float, float] = (20.0, 45.0)
    min_air_fraction: float = 0.01
    min_brain_fraction: float = 0.5
    sample_step: int = 2

    def __post_init__(self) -> None:
        _check_pair("air_hu", self.air_hu)
        _check_pair("brain_hu", self.brain_hu)
        _check_fractions(self, "min_air_fraction", "min_brain_fraction")
        if self.sample_step < 1:
            raise ValueError("Argument 'sample_step' must be at least 1.")


@dataclass(frozen=True)
class ClippingConfig:
    """Flag ``hu_clipped``: values cut at the top (bone lost) or at the bottom above air.

    Parameters
    ----------
    max_fraction:
        The maximum is a clip when at least this share of the voxels equal it
        (an unclipped maximum is one bright voxel of bone or metal; a clip at
        320 HU holds the whole skull, ~5 % of a head CT).
    min_fraction:
        The minimum is a clip when at least this share equal it *and* it lies
        above ``min_floor_hu``.
    min_floor_hu:
        A floor at or below this is the scanner's air floor (-1024), not a clip.
    sample_step:
        In-plane subsampling of the counts.
    """

    max_fraction: float = 0.001
    min_fraction: float = 0.01
    min_floor_hu: float = -1000.0
    sample_step: int = 2

    def __post_init__(self) -> None:
        _check_fractions(self, "max_fraction", "min_fraction")
        if self.sample_step < 1:
            raise ValueError("Argument 'sample_step' must be at least 1.")


@dataclass(frozen=True)
class BloodEdgeConfig:
    """Flags ``blood_at_mask_edge`` (blood against an intracranial edge that is not bone) and ``blood_beside_air``.

    Parameters
    ----------
    bone_search_mm:
        An edge pixel with bone within this distance outside the mask is
        bone-bounded (the inner table's partial-volume edge is 1-2 mm wide).
    max_fraction:
        Flag when at least this share of the blood's in-plane edge lies on a non-bone edge ...
    min_contact_mm:
        ... over at least this length in total (a few pixels of contact are
        noise; 10 mm is a short stretch of a hematoma's side).
    air_max_hu:
        On a slice whose ring is closed bone (not a skull-stripped export), an edge
        pixel with air (at most this HU) within ``bone_search_mm`` outside the mask
        is bounded too: the finder leaves air in the head out of the space, and
        blood does not continue into air (a cavity after a clot's evacuation,
        pneumocephalus). Blood whose edge lies within ``bone_search_mm`` of such
        air (and not as near bone: a sinus) over ``min_contact_mm`` raises
        ``blood_beside_air``: the networks never saw air inside the head.
        ``None``: only bone bounds blood, and no such flag.
    """

    bone_search_mm: float = 3.0
    max_fraction: float = 0.1
    min_contact_mm: float = 10.0
    air_max_hu: float | None = -300.0

    def __post_init__(self) -> None:
        _check_non_negative(self, skip=("air_max_hu",))
        _check_fractions(self, "max_fraction")
        if self.air_max_hu is not None and not self.air_max_hu <= -100.0:
            raise ValueError("Argument 'air_max_hu' must be at most -100 HU (air; fat lies near -100 HU) or null.")


@dataclass(frozen=True)
class BloodOutsideConfig:
    """Flag ``blood_outside_mask``: blood the segmenter found outside the intracranial space.

    Parameters
    ----------
    max_ml, max_fraction:
        Flag when the removed volume is at least ``max_ml`` *and* at least
        ``max_fraction`` of what the segmenter found (scalp haematomas and
        partial-volume specks remove well under 1 mL on normal studies).
    """

    max_ml: float = 1.0
    max_fraction: float = 0.1

    def __post_init__(self) -> None:
        _check_non_negative(self)
        _check_fractions(self, "max_fraction")


@dataclass(frozen=True)
class BloodDensityConfig:
    """Flags ``low_density_blood`` (the blood found is near brain density, so it is found only in part) and
    ``high_density_blood`` (it is denser than acute blood: contrast or calcification read as blood?).

    Parameters
    ----------
    max_median_hu:
        Flag when the median HU of everything segmented is under this (``None``: never). Acute blood
        is 50-90 HU, grey matter 35-45; a subacute (isodense) bleed, or blood mixed with CSF, reads
        in between, and the networks find such blood only in part. On 150 phantom studies, the 9
        whose segmented blood had a median under 47 HU read 0.10-0.76 of their true volume but one
        (1.01) (``MODEL_CARD.md``, "A flag for blood near brain density").
    min_ml:
        Not for less segmented blood than this (a speck's median says little).
    high_median_hu:
        Flag ``high_density_blood`` when that median is at or above this (``None``: never). Acute blood
        is 50-90 HU; contrast medium that stains the brain after an angiogram or a thrombectomy reads
        as blood to the networks up to about 120 HU (painted into the real GE head,
        ``bench/infarcts.py --kinds stain``: stains of median 93-118 HU read whole as blood), and
        nothing else here tells them apart on a single-energy scan.
    """

    max_median_hu: float | None = 47.0
    min_ml: float = 0.5
    high_median_hu: float | None = 90.0

    def __post_init__(self) -> None:
        _check_non_negative(self)


@dataclass(frozen=True)
class UncertainEdgeConfig:
    """Flag ``uncertain_edge``: the main network calls much more at its looser threshold, joined to the blood.

    Parameters
    ----------
    min_fraction:
        Flag when the network's call at ``inference.loose_threshold`` (0.3) that touches the blood and
        is not blood already (``quality.measurements.loose_call.beside_ml``) is at least this share of
        the volume: the blood's edge is faint, so the volume depends on where the line is drawn. Acute
        phantom bleeds measure 0.02-0.17 of their volume (up to 0.28 at 1-3 mL); faint subacute bleeds
        read low measure 0.36-1.17, lesions in the real Philips head (read 0.06-9 times their volume)
        0.28-0.87 (``MODEL_CARD.md``, "A flag for a faint edge").
    min_ml:
        ... and at least this many mL (a small bleed's partial-volume rim is a large share of it).
    """

    min_fraction: float = 0.3
    min_ml: float = 1.0

    def __post_init__(self) -> None:
        _check_non_negative(self)


@dataclass(frozen=True)
class BlendSideCheckConfig:
    """Flag ``blend_side``: the blend-side network reads an uncounted less dense side beside the blood.

    Parameters
    ----------
    min_fraction:
        Flag when what ``inference.blend_side`` reads beside the dense blood and the final mask does
        not hold (``quality.measurements.blend_side.uncounted_ml``) is at least this share of the volume ...
    min_ml:
        ... and at least this many mL.
    """

    min_fraction: float = 0.15
    min_ml: float = 0.5

    def __post_init__(self) -> None:
        _check_non_negative(self)


@dataclass(frozen=True)
class ImageNoiseConfig:
    """Flag ``noisy_image``: the image the networks read is noisier than any they learnt.

    Parameters
    ----------
    max_noise_hu:
        Flag when the pixel-to-pixel noise of the networks' input (thin slices as their slabs;
        :mod:`~ichpipe.pipeline.segment.image_noise`, ``quality.measurements.image_noise.noise_hu``) is
        above this: more than any phantom the networks learnt or were tested on (290 studies of the
        training, selection and evaluation sets: at most 4.8 intraparenchymal, 5.4 extra-axial). The
        real 4-5 mm scans here measure 2.4-3.3, the Philips head phantom 4.8. On phantoms with twice the
        recipe's noise (2.5-7.3) the networks read bleeds up to a quarter low
        (``MODEL_CARD.md``, "A flag for a noisy image"). ``None``: off.
    """

    max_noise_hu: float | None = 5.5

    def __post_init__(self) -> None:
        if self.max_noise_hu is not None and not self.max_noise_hu > 0:
            raise ValueError(f"Argument 'max_noise_hu' must be positive, or null; got {self.max_noise_hu!r}.")


@dataclass(frozen=True)
class HypodensePartConfig:
    """Flag ``extra_axial_hypodense_part``: hypodense tissue beside an added acute collection, not counted.

    Parameters
    ----------
    min_ml:
        Flag when at least this much of the extra-axial network's call at its growth threshold is
        hypodense (-5..28 HU), within 10 mm of the inner table, and connected to an acute collection it
        added (``quality.measurements.extra_axial.hypodense_beside_ml``): the chronic part of an
        acute-on-chronic subdural, or CSF. On the phantoms the mixed subdural read 35 mL low with its
        chronic part missing measured 13.7 mL of it, every other study at most 4.8 (``MODEL_CARD.md``).
    """

    min_ml: float = 5.0

    def __post_init__(self) -> None:
        _check_non_negative(self)


@dataclass(frozen=True)
class BloodAtSkullConfig:
    """Flag ``blood_at_skull_missed``: acute-blood density against the inner table, not segmented.

    See :mod:`ichpipe.pipeline.quality.inner_table` for what is measured and why.

    Parameters
    ----------
    blood_hu:
        Acute blood, after a light smoothing: 55 HU keeps grey matter (35-45 HU) and the inner
        table's partial-volume shoulder out; 90 HU stops below calcification and bone.
    min_thickness_mm:
        Pieces thinner than this (in-plane opening) are not counted: the partial-volume and
        beam-hardening rim under the inner table, the cortical ribbon and the falx are 1-2 mm.
    contact_mm:
        A piece counts when it lies within this distance of bone (against the skull); the pixel
        on the bone is lifted above ``blood_hu`` by the smoothing and the opening trims one more,
        so a collection on the inner table starts 1-2 mm from the bone voxels.
    blood_margin_mm:
        Voxels this close to the segmented blood are its partial-volume rim, not a missed bleed.
    min_area_fraction:
        Only slices whose intracranial area is at least this share of the largest: not the
        skull base, the posterior fossa (the transverse sinuses are dense venous blood along
        the occipital inner table) or the vertex. Raised from 0.4 after two of the 51 real
        PHE-SICH patients showed such pieces on slices at 0.53-0.66 (one of them 1.25 mL); the
        flagged phantom collections lie on slices at 0.76-1.0.
    min_length_mm:
        A piece counts when it is at least this long in its slice (bounding-box diagonal): a
        crescent or lens along the table; the real GE normal head has 15-20 mm pockets of
        partial volume there (0.6 mL), the flagged phantom collections are longer.
    min_ml:
        Flag from this volume.
    """

    blood_hu: tuple[float, float] = (55.0, 90.0)
    min_thickness_mm: float = 3.0
    contact_mm: float = 3.0
    blood_margin_mm: float = 3.0
    min_area_fraction: float = 0.7
    min_length_mm: float = 20.0
    min_ml: float = 1.0

    def __post_init__(self) -> None:
        _check_non_negative(self)
        _check_fractions(self, "min_area_fraction")
        _check_pair("blood_hu", self.blood_hu)


@dataclass(frozen=True)
class HypodenseAtSkullConfig:
    """Flag ``hypodense_at_skull``: hypodense tissue against the inner table on one side, not segmented.

    See :mod:`ichpipe.pipeline.quality.hypodense_at_skull` for what is measured and why.

    Parameters
    ----------
    below_brain_hu:
        (least, most) HU darker than the brain's level (the median of the intracranial voxels of
        15-60 HU) that counts as hypodense: 6-26, i.e. 5-25 HU on a brain of 31 (chronic subdural
        blood 0-25 HU on the phantoms; CSF 0-10, white matter 20-30). Relative, because a scanner's
        calibration or an assumed PNG window moves everything together. An absolute 8-28 took the
        phantom heads' subarachnoid band and sulci (8 HU, blurred against 40 HU cortex) on 7 of the
        first 100 phantom studies that had no other flag; absolute 5-25 flagged 5 of the 51 PHE-SICH
        patients once their assumed window was moved 5 HU down (relative: none).
    smooth_mm:
        In-plane Gaussian smoothing (intracranial voxels only) before ``below_brain_hu`` is applied.
    band_mm:
        Only voxels this close (in plane) to the intracranial edge: a collection on the table,
        not the white matter deeper in.
    min_thickness_mm:
        Pieces thinner than this (in-plane opening) are not counted: sulci, a thin subarachnoid space.
    contact_mm:
        A piece counts when it lies this close to bone.
    blood_margin_mm:
        Voxels this close to the segmented blood are left out (its oedema and rim).
    min_area_fraction:
        Only slices whose intracranial area is at least this share of the largest (as for
        ``blood_at_skull``): at 0.5 the posterior fossa of a real PHE-SICH patient (0055, beam
        hardening round the cerebellum, slices at 0.5-0.6) read 4.9 mL on one side once the assumed
        window was moved 5 HU down; the phantom chronic subdural lies on slices at 0.73-1.0.
    min_length_mm:
        A piece counts when it is at least this long in its slice (bounding-box diagonal).
    min_ml:
        Flag when one side holds at least this (the phantom chronic subdural read 0 mL: 9.96 mL, found
        6.6 mL here; ``None``: the check is off, nothing measured) ...
    max_other_share:
        ... and the other side at most this share of it (atrophy is on both sides).
    """

    below_brain_hu: tuple[float, float] = (6.0, 26.0)
    smooth_mm: float = 1.0
    band_mm: float = 8.0
    min_thickness_mm: float = 3.0
    contact_mm: float = 3.0
    blood_margin_mm: float = 3.0
    min_area_fraction: float = 0.7
    min_length_mm: float = 30.0
    min_ml: float | None = 3.0
    max_other_share: float = 0.33

    def __post_init__(self) -> None:
        _check_non_negative(self)
        _check_fractions(self, "min_area_fraction", "max_other_share")
        _check_pair("below_brain_hu", self.below_brain_hu)


@dataclass(frozen=True)
class CoverageConfig:
    """Flags ``blood_at_scan_end`` and ``head_not_covered`` (the series' first and last slices) and
    ``head_outside_field_of_view`` (the image's edge).

    Parameters
    ----------
    min_blood_mm2:
        Segmented blood on an end slice from this area raises ``blood_at_scan_end`` (20 mm^2: a few
        pixels of partial volume do not; ``null``: off).
    max_end_share:
        An end slice whose intracranial area is at least this share of the largest slice's raises
        ``head_not_covered`` (a whole head's end slices hold none or a sliver: the real heads 0-3 %,
        the 222 phantoms generated here at most 38 %; ``null``: off).
    field_band_mm, min_field_edge_mm:
        The intracranial space within ``field_band_mm`` of the field of view's edge (the image's border,
        or the reconstruction circle when the corners are padding) along ``min_field_edge_mm`` of it on
        one slice raises ``head_outside_field_of_view`` (a whole head keeps 10 mm and more of skull and
        scalp inside the field; ``null``: off).
    """

    min_blood_mm2: float | None = 20.0
    max_end_share: float | None = 0.5
    field_band_mm: float = 3.0
    min_field_edge_mm: float | None = 10.0

    def __post_init__(self) -> None:
        _check_non_negative(self)


@dataclass(frozen=True)
class DomainConfig:
    """Flags ``out_of_domain_contrast``, ``out_of_domain_paediatric``, ``out_of_domain_orientation``.

    Parameters
    ----------
    enhanced_hu:
        Enhancing vessels and sinuses after iodine are 150-300 HU; unenhanced
        blood stays below 100 and calcifications are small.
    enhanced_ml:
        Volume of enhanced-range voxels in and next to the intracranial space
        (away from bone, in components of at least
        ``enhanced_min_component_ml``) above which the study looks
        contrast-enhanced: enhanced sinuses and the circle of Willis hold
        5-15 mL; a calcified choroid plexus and pineal well under 1 mL.
    enhanced_min_component_ml:
        Smaller components (noise, calcification specks) are not counted.
    bone_margin_mm:
        Voxels this close to bone are its partial-volume edge, not enhancement.
    paediatric_ml, paediatric_area_cm2:
        An adult intracranial volume is 1100-1800 mL and its largest axial
        section 140-190 cm^2 (142-186 on the phantoms and the real heads
        here); a head below both limits is a child's (the network saw adults only).
    max_tilt_deg:
        Angle between the slice normal and the head-foot axis above which the
        series is not axial (gantry tilt reaches ~20-30 deg; the real GE
        head's 18.5 deg stays quiet; reformatted coronal or sagittal series are at 90).
    """

    enhanced_hu: tuple[float, float] = (150.0, 300.0)
    enhanced_ml: float = 1.5
    enhanced_min_component_ml: float = 0.05
    bone_margin_mm: float = 2.0
    paediatric_ml: float = 900.0
    paediatric_area_cm2: float = 110.0
    max_tilt_deg: float = 25.0

    def __post_init__(self) -> None:
        _check_non_negative(self)
        _check_pair("enhanced_hu", self.enhanced_hu)


@dataclass(frozen=True)
class QualityConfig:
    """Quality checks of every ``run``: thresholds, the cross-check segmenter, strictness.

    Parameters
    ----------
    strict:
        Any flag makes ``run`` exit 1, after every output was written (the
        same as ``run --strict``).
    cross_check:
        ``auto``: beside one of ichpipe's networks also run the classical
        baseline on the same intracranial space, and beside any other main
        segmenter (the baseline, BLAST-CT) ichpipe's default network
        (``models.default_checkpoint``), and compare the volumes (flag
        ``segmenter_disagreement``). The baseline
        costs 0.6-8.3 % of the network's segment stage on a CPU, the network
        beside the baseline or BLAST-CT 1.5-3.1 s a study (``BENCHMARKS.md``); without it the
        baseline's wrong volumes on the phantom sets were mostly silent
        (``MODEL_CARD.md``, "Do the flags catch the wrong volumes?").
        ``threshold``: the baseline beside any other segmenter, nothing
        beside the baseline (the behaviour before ``auto``). ``none``: no
        cross-check.
    intracranial, hu_levels, clipping, blood_edge, blood_outside, blood_at_skull, hypodense_at_skull, blood_density,
    uncertain_edge, blend_side, image_noise, hypodense_part, disagreement, domain, metal, fluid_level, skipped_slice,
    dural_mass, skull_base, missed_blood, coverage:
        The thresholds of each check.
    """

    strict: bool = False
    cross_check: Literal["auto", "threshold", "none"] = "auto"
    intracranial: IntracranialCheckConfig = field(default_factory=IntracranialCheckConfig)
    hu_levels: HuLevelsConfig = field(default_factory=HuLevelsConfig)
    clipping: ClippingConfig = field(default_factory=ClippingConfig)
    blood_edge: BloodEdgeConfig = field(default_factory=BloodEdgeConfig)
    blood_outside: BloodOutsideConfig = field(default_factory=BloodOutsideConfig)
    blood_at_skull: BloodAtSkullConfig = field(default_factory=BloodAtSkullConfig)
    hypodense_at_skull: HypodenseAtSkullConfig = field(default_factory=HypodenseAtSkullConfig)
    blood_density: BloodDensityConfig = field(default_factory=BloodDensityConfig)
    uncertain_edge: UncertainEdgeConfig = field(default_factory=UncertainEdgeConfig)
    blend_side: BlendSideCheckConfig = field(default_factory=BlendSideCheckConfig)
    image_noise: ImageNoiseConfig = field(default_factory=ImageNoiseConfig)
    hypodense_part: HypodensePartConfig = field(default_factory=HypodensePartConfig)
    disagreement: DisagreementConfig = field(default_factory=DisagreementConfig)
    domain: DomainConfig = field(default_factory=DomainConfig)
    metal: MetalConfig = field(default_factory=MetalConfig)
    fluid_level: FluidLevelConfig = field(default_factory=FluidLevelConfig)
    skipped_slice: SkippedSliceConfig = field(default_factory=SkippedSliceConfig)
    dural_mass: DuralMassConfig = field(default_factory=DuralMassConfig)
    skull_base: SkullBaseConfig = field(default_factory=SkullBaseConfig)
    missed_blood: MissedBloodConfig = field(default_factory=MissedBloodConfig)
    coverage: CoverageConfig = field(default_factory=CoverageConfig)
