"""A quality flag, and the flags of one study together with what was measured.

A flag is one reason the reported volume may be wrong: a stable ``code``, a
sentence for a person, the measured ``value`` and the ``threshold`` it was
compared with. A flag never hides a volume: the report carries the volume next
to its flags, the command line prints them, ``run --strict`` exits 1 after
writing every output.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["FLAG_CODES", "QualityFlag", "QualityReport", "flag_codes_text", "slice_range_text"]

#: Every flag code, with what it means (README, MODEL_CARD and the tests list the same).
FLAG_CODES: dict[str, str] = {
    "intracranial_empty": "no intracranial space was found",
    "intracranial_small": "the intracranial space is too small for an adult head",
    "skull_open": "the bone ring is open (craniectomy, missing bone); its edge was interpolated",
    "skull_absent": "no skull in the image (skull-stripped or brain-only export)",
    "hu_calibration": "air or brain is not at its HU: the HU scale may be wrong",
    "hu_no_air": "no air in the image: the HU scale cannot be checked against air",
    "hu_clipped": "image values were clipped (bone or low values lost)",
    "head_not_covered": "the series ends inside the head: blood beyond the scanned range is not measured",
    "head_outside_field_of_view": "the intracranial space runs along the image's edge: the field of view cuts the"
                                  " head, blood beyond it is not measured",
    "blood_at_scan_end": "blood lies on the first or last slice: the bleed may go on beyond the scanned range",
    "metal_artifact": "metal in the head (clip, coil, drain, probe): its streaks can read as blood or hide it",
    "blood_at_mask_edge": "blood lies on an intracranial edge without bone: it may be cut off",
    "blood_beside_air": "blood lies against air in the head (a cavity after evacuation, pneumocephalus), which"
                        " the networks never saw: the volume may be too low or too high",
    "blood_outside_mask": "the segmenter found blood outside the intracranial space, not counted",
    "blood_at_skull_missed": "acute-blood density against the inner table was not segmented (extra-axial blood?)",
    "hypodense_at_skull": "hypodense tissue against the inner table on one side was not segmented (chronic"
                          " subdural? or an infarct): the volume may be too low",
    "extra_axial_low_density": "a hypodense or isodense collection against the inner table was added: found only"
                               " in part, its edges uncertain; the volume is usually too low, at times too high",
    "extra_axial_hypodense_part": "hypodense tissue joined to an added acute collection was not counted"
                                  " (acute-on-chronic subdural?): the volume may be too low",
    "skull_base_blood_missed": "the threshold baseline finds blood at the skull base (posterior fossa) that the"
                               " network, which never saw a bleed there, did not: the volume may be too low",
    "blood_missed_by_network": "the threshold baseline finds blood in pieces the network did not touch: a bleed may"
                               " be missed whole, the volume may be too low",
    "blood_skips_slice": "blood on the slices either side of a slice overlaps where that slice has none: it was"
                         " read empty (a head that moved, streaks?), the volume may be too low",
    "fluid_level": "a horizontal fluid level at the top of the blood: the serum above it is not counted, the volume"
                   " may be too low",
    "low_density_blood": "the blood found is near brain density (subacute, or mixed with CSF): often found only in"
                         " part, the volume may be too low",
    "high_density_blood": "the blood found is denser than acute blood (contrast staining after an angiogram or a"
                          " thrombectomy, or a calcification, read as blood?): the volume may be too high",
    "uncertain_edge": "the network calls much more blood at a looser threshold, joined to what it found: the edge is"
                      " faint, the volume may be too low or too high",
    "blend_side": "a network trained on clots with a less dense side reads such a side beside the dense blood,"
                  " not counted: the volume may be too low",
    "noisy_image": "the image is noisier than any the networks learnt (low dose, thin slices?): the volume may be"
                   " wrong",
    "dural_based_mass": "what was found includes a dome on the inner table with a broad base, the shape of a"
                        " meningioma (as dense as blood on a non-contrast scan, measured as blood): the volume may"
                        " not be blood",
    "segmenter_disagreement": "the network and the threshold baseline disagree",
    "out_of_domain_contrast": "the study looks contrast-enhanced; the network saw non-contrast CT only",
    "out_of_domain_paediatric": "a child's head size; the network saw adults only",
    "out_of_domain_orientation": "the slices are not axial; the network saw axial slices only",
    "output_skipped": "an output (DICOM SEG or key image) could not be built; the volume is unaffected",
}


@dataclass(frozen=True)
class QualityFlag:
    """One reason the reported volume may be wrong.

    Attributes
    ----------
    code:
        Stable machine-readable code, a key of :data:`FLAG_CODES`.
    message:
        One sentence for a person, naming what was measured.
    value:
        The measured number the flag is about (``None`` when there is none).
    threshold:
        The limit it was compared with (``None`` when there is none).
    """

    code: str
    message: str
    value: float | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.code not in FLAG_CODES:
            raise ValueError(f"Argument 'code' must be one of {', '.join(FLAG_CODES)}; got {self.code!r}.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{code, message, value, threshold}``."""
        return asdict(self)

    def line(self) -> str:
        """One line for a terminal: ``code: message``."""
        return f"{self.code}: {self.message}"


def slice_range_text(slices: Sequence[int]) -> str:
    """``slice N`` or ``slices N-M`` for a flag's message, numbered from 1 in volume order (sorted ``slices``).

    >>> slice_range_text([9]), slice_range_text([9, 10, 12])
    ('slice 10', 'slices 10-13')
    """
    return f"slices {slices[0] + 1}-{slices[-1] + 1}" if len(slices) > 1 else f"slice {slices[0] + 1}"


def flag_codes_text(codes: Iterable[str], *, limit: int | None = None, empty: str = "none") -> str:
    """Codes joined by commas, shortened to ``limit`` characters with ``...`` (for 64-character DICOM LO values)."""
    text = ", ".join(dict.fromkeys(codes)) or empty
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 3)].rstrip(", ") + "..."
    return text


@dataclass
class QualityReport:
    """The flags of one study and the numbers behind them (the report's ``quality`` block).

    Attributes
    ----------
    flags:
        Every flag raised, in the order of the checks.
    intracranial:
        The intracranial finder's method sentence and measurements.
    measurements:
        Further measured values (volumes of the cross-check, removed blood, ...).
    checks:
        Names of the checks that ran (a check that could not run is absent).
    """

    flags: list[QualityFlag] = field(default_factory=list)
    intracranial: dict[str, Any] = field(default_factory=dict)
    measurements: dict[str, Any] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)

    @property
    def codes(self) -> list[str]:
        """The flag codes, each once, in order."""
        return list(dict.fromkeys(f.code for f in self.flags))

    @property
    def flagged(self) -> bool:
        """Whether any flag was raised."""
        return bool(self.flags)

    def add(self, flags: Sequence[QualityFlag], check: str | None = None) -> None:
        """Append ``flags`` (and record that ``check`` ran)."""
        self.flags.extend(flags)
        if check is not None and check not in self.checks:
            self.checks.append(check)

    def to_dict(self) -> dict[str, Any]:
        """The report's ``quality`` block."""
        return {
            "flagged": self.flagged,
            "flags": [f.to_dict() for f in self.flags],
            "codes": self.codes,
            "intracranial": dict(self.intracranial),
            "measurements": dict(self.measurements),
            "checks": list(self.checks),
        }
