from __future__ import annotations

import pydicom
from pydicom.dataelem import DataElement

from ichpipe.dicom_io import scan_study
from ichpipe.dicom_io.selection import Candidate, SelectionConfig, default_preferences, select_series


def test_single_valued_or_mangled_image_type_is_read_as_a_list(make_series) -> None:
    # found by the fuzzer: ImageType rewritten as a number (DS/IS) crashed series_attributes
    folder = make_series()
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        ds[0x00080008] = DataElement(0x00080008, "DS", "1.5")
        ds.save_as(f)
    with scan_study(folder) as scan:
        attrs = scan.series[0].attributes
        assert attrs["ImageType"] == ["1.5"]
        failed = {v.rule for v in scan.selection.verdicts[scan.series[0].series.key] if not v.passed}
    assert "original_primary" in failed


def test_backslash_image_type_in_one_value_is_split(make_series) -> None:
    folder = make_series()
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        ds[0x00080008] = DataElement(0x00080008, "LO", "ORIGINAL\\PRIMARY\\AXIAL")
        ds.save_as(f)
    with scan_study(folder) as scan:
        assert scan.require_selected().attributes["ImageType"] == ["ORIGINAL", "PRIMARY", "AXIAL"]


def test_field_of_view_is_derived_and_a_head_field_preferred(make_series) -> None:
    head = make_series(name="head", extra={"PixelSpacing": [15.0, 15.0]})  # 16 x 15 mm: a 240 mm field
    body = make_series(name="body", extra={"PixelSpacing": [31.25, 31.25], "SeriesNumber": 1})  # 500 mm
    fields = {}
    for folder in (head, body):
        with scan_study(folder) as scan:
            fields[folder.name] = scan.require_selected().attributes["field_of_view_mm"]
    assert fields == {"head": 240.0, "body": 500.0}
    # the same slices in two fields: the body field has the lower SeriesNumber, which the tie-break prefers
    same = {"Modality": "CT", "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"], "sop_class_name": "CT Image Storage",
            "axial_deviation_deg": 0.0, "n_slices": 30, "SliceThickness": 5.0, "geometry_valid": "yes"}
    candidates = [Candidate("body", {**same, "SeriesNumber": 1, "field_of_view_mm": 500.0}),
                  Candidate("head", {**same, "SeriesNumber": 2, "field_of_view_mm": 240.0})]
    assert select_series(candidates, SelectionConfig()).selected == "head"
    without = SelectionConfig(preferences=tuple(p for p in default_preferences() if p.name != "head_field"))
    assert select_series(candidates, without).selected == "body"
    unknown = [Candidate("a", {**same, "SeriesNumber": 1}), Candidate("b", {**same, "SeriesNumber": 2})]
    assert select_series(unknown, SelectionConfig()).selected == "a"  # no field known: it passes, as before
