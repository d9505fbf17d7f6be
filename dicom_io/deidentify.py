"""De-identify the DICOM objects ichpipe writes (SEG, Secondary Capture key image) by the PS3.15 Basic Profile.

Every attribute of **DICOM PS3.15 Table E.1-1** (the whole table, as data in
:mod:`ichpipe.dicom_io.confidentiality_profile`: 443 rows including private
attributes, curves and overlays) gets its Basic Profile action at every
level of the dataset, nested sequences included, with two options:

- **Retain UIDs Option** (DCM 113110): ``U`` attributes are kept, so the SEG
  and key image still reference the source CT in the PACS;
- **Clean Descriptors Option** (DCM 113105): descriptions ichpipe writes
  itself (SeriesDescription, DerivationDescription, ImageComments,
  ContentDescription, ContentLabel: fixed text about the method) are kept;
  every descriptor copied from the source is removed.

Compound actions take the first letter unless the attribute must be present
in our objects: at the top level, a Type 1 attribute of SEG or SC
(DeviceSerialNumber, ContentDate, ContentTime) gets a dummy (``D``), a Type 2
one (ContentCreatorName, ...) an empty value (``Z``); otherwise compound
actions take their first letter, except ``X/Z/U*`` (references to source images), kept
by the Retain UIDs Option (``Z/D`` empties). ``D`` on a sequence keeps the sequence and
applies the table inside it.

The dataset is changed in place; callers pass a copy (``write_seg`` and
``write_secondary_capture`` do), so the source headers in memory, which the
results store records the measurement from, are never touched.
PatientIdentityRemoved, DeidentificationMethod (at most 64 characters) and its
code sequence (DCM 113100, 113110, 113105) and
LongitudinalTemporalInformationModified record what was done.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType

from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from ichpipe.dicom_io.confidentiality_profile import ADDED_ROWS, TABLE_E1_1

__all__ = [
    "BASIC_PROFILE",
    "DEIDENTIFICATION_METHOD",
    "ICHPIPE_ADDITIONS",
    "OWN_DESCRIPTORS",
    "ProfileRow",
    "basic_profile_action",
    "deidentified_copy",
    "deidentify_dataset",
    "resolve_action",
]

#: Written into DeidentificationMethod (LO: at most 64 characters); the code sequence says the same.
DEIDENTIFICATION_METHOD = "ichpipe: PS3.15 Basic Profile; Retain UIDs; Clean Descriptors"

_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113110", "Retain UIDs Option"),
    ("113105", "Clean Descriptors Option"),
)

#: Descriptions ichpipe writes itself (fixed text about the method): kept by the Clean Descriptors Option.
OWN_DESCRIPTORS = frozenset({"SeriesDescription", "DerivationDescription", "ImageComments", "ContentDescription",
                             "ContentLabel"})

#: Attributes our objects must carry at the top level: Type 1 get a dummy, Type 2 an empty value.
_TOP_TYPE1 = frozenset({"DeviceSerialNumber", "ContentDate", "ContentTime"})
_TOP_TYPE2 = frozenset({"ContentCreatorName", "StudyDate", "StudyTime", "ReferringPhysicianName", "AccessionNumber",
                        "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyID"})

# Dummy values for ``D``, by VR.
_DUMMY = {"DA": "19000101", "TM": "000000", "DT": "19000101000000", "PN": "ANONYMOUS", "LO": "ANONYMIZED",
          "SH": "ANONYMIZED", "CS": "ANONYMIZED", "LT": "ANONYMIZED", "ST": "ANONYMIZED", "UT": "ANONYMIZED",
          "AE": "ANONYMIZED", "UC": "ANONYMIZED", "AS": "000Y", "DS": "0", "IS": "0"}


class ProfileRow(tuple[str, str, str]):
    """One row of Table E.1-1: (``GGGG,EEEE`` with ``X`` for any digit, action, attribute name)."""

    __slots__ = ()

    @property
    def tag(self) -> str:
        """``GGGG,EEEE``."""
        return self[0]

    @property
    def action(self) -> str:
        """The Basic Profile action (``X``, ``Z``, ``D``, ``U``, ``X/Z/D`` ...)."""
        return self[1]

    @property
    def name(self) -> str:
        """The attribute's name in the standard."""
        return self[2]


def _parse(text: str) -> list[ProfileRow]:
    rows = []
    for line in text.splitlines():
        if line.strip():
            tag, action, name = line.split(None, 2)
            rows.append(ProfileRow((tag, action, name)))
    return rows


#: Every row of the table: ``GGGG,EEEE`` -> row.
BASIC_PROFILE: Mapping[str, ProfileRow] = MappingProxyType(
    {row.tag: row for row in _parse(TABLE_E1_1) + _parse(ADDED_ROWS)}
)

_MASKED = tuple((re.compile("^" + tag.replace("X", "[0-9A-F]").replace(",", "") + "$"), row)
                for tag, row in BASIC_PROFILE.items() if "X" in tag and tag != "GGGG,EEEE")


#: Beyond the table: dates the table does not list that our objects can carry (removed, as the
#: profile removes the other dates; LongitudinalTemporalInformationModified says REMOVED).
ICHPIPE_ADDITIONS: Mapping[int, str] = MappingProxyType({
    0x0018A002: "X",  # Contribution DateTime (Contributing Equipment Sequence)
})


@lru_cache(maxsize=4096)
def basic_profile_action(tag: int) -> str | None:
    """The action for ``tag`` (an int or BaseTag): the Basic Profile's, :data:`ICHPIPE_ADDITIONS`', or None."""
    tag = BaseTag(tag)
    if int(tag) in ICHPIPE_ADDITIONS:
        return ICHPIPE_ADDITIONS[int(tag)]
    if tag.is_private:
        return BASIC_PROFILE["GGGG,EEEE"].action
    row = BASIC_PROFILE.get(f"{tag.group:04X},{tag.element:04X}")
    if row is not None:
        return row.action
    text = f"{tag.group:04X}{tag.element:04X}"
    for pattern, masked in _MASKED:
        if pattern.match(text):
            return masked.action
    return None


def resolve_action(action: str, keyword: str, *, top: bool) -> str:
    """The one action ichpipe applies for a table action: ``X``, ``Z``, ``D`` or ``K``.

    ``U`` and ``X/Z/U*`` keep (Retain UIDs Option); ``K`` and ``C`` keep and
    remove (no cleaning beyond our own descriptors); compound actions as the
    module docstring says.
    """
    if action in ("U", "X/Z/U*", "K"):
        return "K"
    if action == "C":
        return "X"
    if "/" not in action:
        return action
    options = action.split("/")
    if top and keyword in _TOP_TYPE1 and "D" in options:
        return "D"
    if top and (keyword in _TOP_TYPE2 or keyword in _TOP_TYPE1) and "Z" in options:
        return "Z"
    return options[0]


def _dummy(elem: DataElement) -> object:
    return _DUMMY.get(elem.VR, "ANONYMIZED")


def _apply(ds: Dataset, touched: set[str], *, top: bool) -> None:
    for elem in list(ds):
        tag = elem.tag
        keyword = elem.keyword or keyword_for_tag(tag) or f"({tag.group:04X},{tag.element:04X})"
        action = basic_profile_action(tag)
        if action is not None and not (top and keyword in OWN_DESCRIPTORS):
            step = resolve_action(action, keyword, top=top)
            if step == "X":
                del ds[tag]
                touched.add(keyword)
                continue
            if step == "Z":
                ds[tag] = DataElement(tag, elem.VR, Sequence() if elem.VR == "SQ" else None)
                touched.add(keyword)
                continue
            if step == "D" and elem.VR != "SQ":
                ds[tag] = DataElement(tag, elem.VR, _dummy(elem))
                touched.add(keyword)
                continue
        if elem.VR == "SQ":
            for item in elem.value or ():
                _apply(item, touched, top=False)


def deidentified_copy(ds: Dataset) -> Dataset:
    """A de-identified deep copy of ``ds`` (a plain pydicom Dataset with the same file meta); ``ds`` is untouched.

    highdicom builds its objects from the source headers and may share their
    elements and sequence items; de-identifying in place would blank the
    source's identity in memory too.
    """
    out = Dataset()
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        out.file_meta = copy.deepcopy(meta)
    for elem in ds:
        out.add(copy.deepcopy(elem))
    out.preamble = getattr(ds, "preamble", None)
    deidentify_dataset(out)
    return out


def deidentify_dataset(ds: Dataset) -> list[str]:
    """Apply the PS3.15 Basic Profile (Retain UIDs, Clean Descriptors) to ``ds`` in place, at every level.

    Parameters
    ----------
    ds:
        A dataset built by ichpipe (SEG, Secondary Capture); its file meta is
        kept. Pass a copy if other objects share its elements or items.

    Returns
    -------
    list of str
        The keywords removed or replaced, sorted (for the report).
    """
    touched: set[str] = set()
    _apply(ds, touched, top=True)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = DEIDENTIFICATION_METHOD
    items = []
    for value, meaning in _CODES:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)
    ds.LongitudinalTemporalInformationModified = "REMOVED"
    return sorted(touched)
