"""De-identify the DICOM objects ichpipe writes (SEG, Secondary Capture key image).

pydicom has no confidentiality profile built in, so this module implements
the part of the **DICOM PS3.15 Annex E Basic Application Level
Confidentiality Profile** that concerns our derived objects, with the
**Retain UIDs Option** (the SEG and key image must still reference the
source CT in the PACS) and the **Clean Descriptors Option** for the
descriptions ichpipe writes itself (fixed text, no patient data).

Actions, as in PS3.15 Table E.1-1: ``Z`` replace with an empty value, ``X``
remove, ``D`` replace with a dummy value (for attributes the object must
carry). They are applied at every level of the dataset (sequences included);
private attributes are removed; PatientIdentityRemoved, DeidentificationMethod
and its code sequence (DCM 113100, 113110, 113105) and
LongitudinalTemporalInformationModified record what was done.
:data:`BASIC_PROFILE_SUBSET` is the table; ``SECURITY.md`` lists it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

__all__ = ["BASIC_PROFILE_SUBSET", "DEIDENTIFICATION_METHOD", "deidentify_dataset"]

Action = Literal["Z", "X", "D"]

#: Attribute keyword -> PS3.15 Basic Profile action, for every attribute our outputs can carry from the source.
BASIC_PROFILE_SUBSET: Mapping[str, Action] = {
    # patient
    "PatientName": "Z",
    "PatientID": "Z",
    "PatientBirthDate": "Z",
    "PatientSex": "Z",
    "PatientBirthTime": "X",
    "PatientAge": "X",
    "PatientSize": "X",
    "PatientWeight": "X",
    "PatientAddress": "X",
    "PatientTelephoneNumbers": "X",
    "PatientMotherBirthName": "X",
    "PatientComments": "X",
    "EthnicGroup": "X",
    "OtherPatientIDs": "X",
    "OtherPatientNames": "X",
    "OtherPatientIDsSequence": "X",
    "IssuerOfPatientID": "X",
    "MedicalRecordLocator": "X",
    "MilitaryRank": "X",
    "Occupation": "X",
    "AdditionalPatientHistory": "X",
    # study and visit
    "AccessionNumber": "Z",
    "StudyID": "Z",
    "StudyDate": "Z",
    "StudyTime": "Z",
    "StudyDescription": "X",
    "ReferringPhysicianName": "Z",
    "PerformingPhysicianName": "X",
    "NameOfPhysiciansReadingStudy": "X",
    "OperatorsName": "X",
    "RequestingPhysician": "X",
    "AdmissionID": "X",
    "RequestAttributesSequence": "X",
    # dates and times of the series, the acquisition and the instance
    "SeriesDate": "X",
    "SeriesTime": "X",
    "AcquisitionDate": "X",
    "AcquisitionTime": "X",
    "AcquisitionDateTime": "X",
    "ContentDate": "D",
    "ContentTime": "D",
    "InstanceCreationDate": "X",
    "InstanceCreationTime": "X",
    "DateOfSecondaryCapture": "X",
    "TimeOfSecondaryCapture": "X",
    "ContributionDateTime": "X",
    "TimezoneOffsetFromUTC": "X",
    # where and on what
    "InstitutionName": "X",
    "InstitutionAddress": "X",
    "InstitutionalDepartmentName": "X",
    "StationName": "X",
    "DeviceSerialNumber": "X",
}

#: Written into DeidentificationMethod.
DEIDENTIFICATION_METHOD = (
    "ichpipe: DICOM PS3.15 Basic Application Level Confidentiality Profile (subset for derived objects),"
    " Retain UIDs Option, Clean Descriptors Option"
)

_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113110", "Retain UIDs Option"),
    ("113105", "Clean Descriptors Option"),
)

# Dummy values for ``D`` (attributes the object must carry), by VR.
_DUMMY = {"DA": "19000101", "TM": "000000", "DT": "19000101000000", "LO": "ANONYMIZED", "SH": "ANON"}

#: Type 1 attributes of our outputs that ``X`` must not remove at the top level (a dummy replaces them).
_TOP_LEVEL_REQUIRED = {"DeviceSerialNumber"}


def _apply(ds: Dataset, *, top: bool) -> None:
    for keyword, action in BASIC_PROFILE_SUBSET.items():
        if keyword not in ds:
            continue
        if action == "X" and top and keyword in _TOP_LEVEL_REQUIRED:
            action = "D"
        if action == "X":
            del ds[keyword]
        elif action == "Z":
            ds[keyword].value = None if ds[keyword].VR != "SQ" else Sequence()
        else:
            ds[keyword].value = _DUMMY.get(ds[keyword].VR, "ANON")
    for elem in list(ds):
        if elem.VR == "SQ":
            for item in elem.value:
                _apply(item, top=False)


def deidentify_dataset(ds: Dataset) -> list[str]:
    """Apply :data:`BASIC_PROFILE_SUBSET` to ``ds`` in place (at every level) and record it.

    UIDs are kept (Retain UIDs Option), so the object still references its
    source images; private attributes are removed.

    Parameters
    ----------
    ds:
        A dataset built by ichpipe (SEG, Secondary Capture); its file meta is kept.

    Returns
    -------
    list of str
        The keywords found and removed or replaced, sorted (for the report).
    """
    touched = sorted({e.keyword for e in ds.iterall() if e.keyword in BASIC_PROFILE_SUBSET})
    _apply(ds, top=True)
    ds.remove_private_tags()
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = DEIDENTIFICATION_METHOD
    items = []
    for value, meaning in _CODES:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)
    ds.LongitudinalTemporalInformationModified = "REMOVED"
    return touched
