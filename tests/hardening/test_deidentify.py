"""De-identified outputs: ``ichpipe run --deidentify`` / ``outputs.deidentify: true``."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner
from hardening_corpus import BIRTH_DATE, PATIENT_ID, PATIENT_NAME

from ichpipe.dicom_io.deidentify import BASIC_PROFILE_SUBSET, deidentify_dataset
from ichpipe.pipeline.cli import cli

SECRETS = [PATIENT_ID, *PATIENT_NAME.split("^"), BIRTH_DATE]

#: The documented table (SECURITY.md): a change to the profile must change this test and the docs together.
EXPECTED_PROFILE = {
    "Z": ["AccessionNumber", "PatientBirthDate", "PatientID", "PatientName", "PatientSex", "ReferringPhysicianName",
          "StudyDate", "StudyID", "StudyTime"],
    "D": ["ContentDate", "ContentTime"],
    "X": ["AcquisitionDate", "AcquisitionDateTime", "AcquisitionTime", "AdditionalPatientHistory", "AdmissionID",
          "ContributionDateTime", "DateOfSecondaryCapture", "DeviceSerialNumber", "EthnicGroup", "InstanceCreationDate",
          "InstanceCreationTime", "InstitutionAddress", "InstitutionName", "InstitutionalDepartmentName",
          "IssuerOfPatientID", "MedicalRecordLocator", "MilitaryRank", "NameOfPhysiciansReadingStudy", "Occupation",
          "OperatorsName", "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "PatientAddress",
          "PatientAge", "PatientBirthTime", "PatientComments", "PatientMotherBirthName", "PatientSize",
          "PatientTelephoneNumbers", "PatientWeight", "PerformingPhysicianName", "RequestAttributesSequence",
          "RequestingPhysician", "SeriesDate", "SeriesTime", "StationName", "StudyDescription",
          "TimeOfSecondaryCapture", "TimezoneOffsetFromUTC"],
}


def test_profile_table_is_the_documented_one() -> None:
    by_action = {a: sorted(k for k, v in BASIC_PROFILE_SUBSET.items() if v == a) for a in "ZDX"}
    assert by_action == {a: sorted(v) for a, v in EXPECTED_PROFILE.items()}


def _run(study: Path, out: Path, config: Path, *extra: str) -> dict[str, object]:
    result = CliRunner().invoke(cli, ["run", "--study", str(study), "--out", str(out), "--segmenter", "threshold",
                                      "--json", "--config", str(config), *extra])
    assert result.exit_code == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


@pytest.mark.parametrize("how", ["flag", "config"])
def test_deidentified_outputs_carry_no_direct_identifier(how: str, good_study: Path, tmp_path: Path,
                                                         store_config: Path) -> None:
    config = store_config
    extra: tuple[str, ...] = ("--deidentify",)
    if how == "config":
        config = tmp_path / "deid.yaml"
        config.write_text(store_config.read_text() + "outputs:\n  deidentify: true\n")
        extra = ()
    identified = _run(good_study, tmp_path / "plain", store_config)
    report = _run(good_study, tmp_path / "deid", config, *extra)
    assert identified["patient_id"] == PATIENT_ID  # the identified run names the patient...
    assert report["patient_id"] is None and report["accession_number"] is None  # ... this one does not
    assert report["acquisition_datetime"] is None
    assert report["study_instance_uid"] == identified["study_instance_uid"]  # Retain UIDs Option
    folder = tmp_path / "deid"
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert {p.name for p in files} == {"report.json", "seg.dcm", "key_image.png", "key_image_sc.dcm", "sr.dcm"}
    for path in files:
        data = path.read_bytes()
        leaked = [s for s in SECRETS if s.encode() in data]
        assert leaked == [], f"{path.name} holds {leaked}"
    for name in ("seg.dcm", "key_image_sc.dcm", "sr.dcm"):
        outputs = report["outputs"]
        assert isinstance(outputs, dict)
        ds = pydicom.dcmread(Path(outputs["report"]).with_name(name))
        assert ds.PatientIdentityRemoved == "YES" and ds.PatientName == "" and ds.PatientID == ""
        assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100", "113110", "113105"]
        assert "InstitutionName" not in ds and ds.StudyDate == "" and ds.ContentDate == "19000101"
        assert all(e.keyword not in ("InstitutionName", "ContributionDateTime") for e in ds.iterall())
        assert not any(e.tag.is_private for e in ds.iterall())


def test_deidentify_dataset_reports_what_it_touched() -> None:
    ds = pydicom.Dataset()
    ds.PatientName, ds.PatientID, ds.PatientAge = PATIENT_NAME, PATIENT_ID, "077Y"
    ds.StudyInstanceUID = "1.2.3"
    item = pydicom.Dataset()
    item.InstitutionName = "St Elsewhere"
    ds.ContributingEquipmentSequence = [item]
    ds.add_new(0x00291010, "LO", "private note")
    touched = deidentify_dataset(ds)
    assert touched == ["InstitutionName", "PatientAge", "PatientID", "PatientName"]
    assert ds.StudyInstanceUID == "1.2.3" and "PatientAge" not in ds and not ds.PatientName
    assert "InstitutionName" not in ds.ContributingEquipmentSequence[0]
    assert (0x0029, 0x1010) not in ds
