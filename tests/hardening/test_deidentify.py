"""De-identified outputs: ``ichpipe run --deidentify`` / ``outputs.deidentify: true``."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner
from hardening_corpus import BIRTH_DATE, PATIENT_ID, PATIENT_NAME, copy_study, dicom_files, edit_files
from pydicom.datadict import dictionary_VR, keyword_for_tag

from ichpipe.dicom_io.deidentify import BASIC_PROFILE, DEIDENTIFICATION_METHOD, basic_profile_action, deidentify_dataset
from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.config import load_config
from ichpipe.pipeline.serial.store import list_measurements, open_store

SECRETS = [PATIENT_ID, *PATIENT_NAME.split("^"), BIRTH_DATE]

def test_profile_is_the_whole_standard_table_spot_checked_against_ps3_15() -> None:
    # Rows read off DICOM PS3.15 Table E.1-1 ("Basic Prof." column) by hand, independently of the data module.
    from_the_standard = {
        "0010,0010": "Z", "0010,0020": "Z", "0010,0030": "Z", "0008,0050": "Z", "0008,0090": "Z",
        "0010,2297": "X", "0008,1048": "X", "0012,0040": "D", "0010,2000": "X", "0010,2110": "X",
        "0008,0096": "X", "0010,2299": "X", "0008,0080": "X/Z/D", "0018,1000": "X/Z/D", "0008,0023": "Z/D",
        "0020,000D": "U", "0008,2112": "X/Z/U*", "0008,103E": "X", "0070,0084": "Z/D", "50XX,XXXX": "X",
        "60XX,3000": "X", "GGGG,EEEE": "X",
    }
    assert {tag: BASIC_PROFILE[tag].action for tag in from_the_standard} == from_the_standard
    assert len(BASIC_PROFILE) == 443  # 432 attributes of the 2020 edition + 11 later ones
    assert basic_profile_action(0x50100020) == "X" and basic_profile_action(0x60024000) == "X"
    assert basic_profile_action(0x00291010) == "X" and basic_profile_action(0x00280010) is None  # Rows: not listed
    assert len(DEIDENTIFICATION_METHOD) <= 64


#: What each action leaves (the Retain UIDs Option keeps U); compound actions: see _expected.
TYPE1_TOP = {"DeviceSerialNumber", "ContentDate", "ContentTime"}
OWN_TEXT = {"SeriesDescription", "DerivationDescription", "ImageComments", "ContentDescription"}
TYPE2_TOP = {"ContentCreatorName", "StudyDate", "StudyTime", "ReferringPhysicianName", "AccessionNumber",
             "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyID"}


def _expected(action: str, keyword: str, *, top: bool) -> str:
    """The documented resolution (SECURITY.md), written out here apart from the code."""
    if top and keyword in OWN_TEXT:
        return "keep"  # Clean Descriptors Option: ichpipe's own fixed descriptions
    if action in ("U", "X/Z/U*", "K"):
        return "keep"
    if action in ("X", "C"):
        return "removed"
    if action == "Z":
        return "empty"
    if action == "D":
        return "dummy"
    if top and keyword in TYPE1_TOP and "D" in action:
        return "dummy"
    if top and keyword in TYPE1_TOP | TYPE2_TOP and "Z" in action:
        return "empty"
    return "removed" if action.startswith("X") else "empty"


def _value_for(vr: str) -> object:
    return {"DA": "20010203", "TM": "101112", "DT": "20010203101112", "PN": "Secret^Person", "UI": "1.2.3.4",
            "AS": "077Y", "DS": "12.5", "IS": "7", "US": 7, "SS": -7, "UL": 7, "SL": -7, "FL": 1.5, "FD": 1.5,
            "AT": 0x00100010, "OB": b"secret", "OW": b"secret", "UN": b"secret", "UR": "http://x/secret",
            "SQ": None}.get(vr, b"secret" if vr.startswith("O") else "SECRET VALUE")


def _table_elements() -> list[tuple[int, str, str, str]]:
    """(tag, VR, keyword, action) of every listed attribute pydicom knows with one VR."""
    out = []
    for row in BASIC_PROFILE.values():
        if "X" in row.tag or row.tag == "GGGG,EEEE":
            continue
        tag = int(row.tag.replace(",", ""), 16)
        if tag >> 16 in (0x0000, 0x0002, 0xFFFA, 0xFFFC):  # command, file meta, signatures, padding
            continue
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            continue
        if " " in vr:
            continue
        out.append((tag, vr, keyword_for_tag(tag), row.action))
    return out


def _dataset_with(elements: list[tuple[int, str, str, str]]) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    for tag, vr, _, _ in elements:
        value = _value_for(vr)
        ds.add_new(tag, vr, pydicom.Sequence([pydicom.Dataset()]) if vr == "SQ" else value)
    return ds


def test_every_attribute_of_the_table_is_handled_at_every_level() -> None:
    elements = _table_elements()
    assert len(elements) > 380
    top = _dataset_with(elements)
    deep = _dataset_with(elements)
    level2 = pydicom.Dataset()
    level2.ReferencedSeriesSequence = [deep]  # not in the table: kept, and its items cleaned
    top.ReferencedImageNavigationSequence = [level2]
    top.add_new(0x00291010, "LO", "private note")
    top.add_new(0x50000030, "SH", "CURVE")
    deep.add_new(0x00411001, "LO", "nested private note")
    deidentify_dataset(top)
    nested = top.ReferencedImageNavigationSequence[0].ReferencedSeriesSequence[0]
    wrong = []
    for where, ds, at_top in (("top", top, True), ("nested", nested, False)):
        for tag, vr, keyword, action in elements:
            want = _expected(action, keyword, top=at_top)
            elem = ds.get(tag)
            if want == "removed":
                ok = elem is None
            elif want == "empty":
                ok = (elem is not None and elem.value in (None, "", b"")) or (vr == "SQ" and elem is not None
                                                                               and len(elem.value) == 0)
            elif want == "dummy":
                ok = elem is not None and (vr == "SQ" or (elem.value not in (None, "")
                                                          and elem.value != _value_for(vr)))
            else:
                ok = elem is not None and (vr == "SQ" or elem.value == _value_for(vr))
            if not ok:
                wrong.append(f"{where} {keyword} ({action}): expected {want}, got {elem!r}")
    assert wrong == []
    assert not any(e.tag.is_private for e in top.iterall()) and 0x50000030 not in top
    assert top.PatientIdentityRemoved == "YES" and len(top.DeidentificationMethod) <= 64


#: Attributes real sources carry that the first profile (a subset) copied into de-identified SEGs.
SOURCE_EXTRAS = {
    "ResponsiblePerson": "Responsibleperson^Xq", "PhysiciansOfRecord": "Recordphys^Xq",
    "ClinicalTrialSubjectID": "SUBJ-Q77X", "MedicalAlerts": "ALERTQ77", "Allergies": "ALLERGYQ77",
    "ClinicalTrialSponsorName": "SPONSORQ77", "ClinicalTrialProtocolID": "PROTQ77",
}
REFERRING_ID = "REFIDQ77X"


def _add_extras(ds: pydicom.Dataset) -> None:
    for keyword, value in SOURCE_EXTRAS.items():
        setattr(ds, keyword, value)
    code = pydicom.Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = REFERRING_ID, "L", "Referring doctor"
    person = pydicom.Dataset()
    person.PersonIdentificationCodeSequence = [code]
    person.InstitutionName = "St Elsewhere Q77"
    ds.ReferringPhysicianIdentificationSequence = [person]


def test_deidentified_seg_and_key_image_carry_no_identifier_the_source_had(good_study: Path, tmp_path: Path,
                                                                            store_config: Path) -> None:
    study = copy_study(good_study, tmp_path / "study")
    edit_files(dicom_files(study), _add_extras)
    report = _run(study, tmp_path / "deid", store_config, "--deidentify")
    outputs = report["outputs"]
    assert isinstance(outputs, dict)
    secrets = [*SECRETS, *SOURCE_EXTRAS.values(), *(v.split("^")[0] for v in SOURCE_EXTRAS.values()), REFERRING_ID,
               "St Elsewhere Q77"]
    for name in ("seg", "secondary_capture"):
        data = Path(outputs[name]).read_bytes()
        assert [s for s in secrets if s.encode() in data] == [], name
        ds = pydicom.dcmread(outputs[name])
        assert all(k not in ds for k in ("ResponsiblePerson", "PhysiciansOfRecord", "MedicalAlerts", "Allergies",
                                         "ReferringPhysicianIdentificationSequence"))
        assert len(ds.DeidentificationMethod) <= 64


def test_deidentified_run_still_records_the_measurement_under_the_original_identity(
        good_study: Path, tmp_path: Path, store_config: Path) -> None:
    report = _run(good_study, tmp_path / "deid", store_config, "--deidentify")
    assert report["patient_id"] is None
    with open_store(load_config(store_config).store) as store:
        rows = list_measurements(store)
    assert [(m.patient_id, m.series_instance_uid) for m in rows] == [(PATIENT_ID, report["series_instance_uid"])]
    assert rows[0].volume_ml == pytest.approx(report["hematoma"]["volume_ml"])  # type: ignore[index]


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
    assert touched == ["(0029,1010)", "InstitutionName", "PatientAge", "PatientID", "PatientName"]
    assert ds.StudyInstanceUID == "1.2.3" and "PatientAge" not in ds and not ds.PatientName
    assert "InstitutionName" not in ds.ContributingEquipmentSequence[0]
    assert (0x0029, 0x1010) not in ds
