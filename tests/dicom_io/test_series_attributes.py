from __future__ import annotations

import pydicom
from pydicom.dataelem import DataElement

from ichpipe.dicom_io import scan_study


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
