from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest
from pydicom.dataset import Dataset

from ichpipe.dicom_io.geometry import compute_geometry
from ichpipe.pipeline.measure.volume import measure_hematoma
from ichpipe.pipeline.outputs.report import (
    SegmenterInfo,
    StageTimer,
    acquisition_datetime,
    build_study_report,
    parse_dicom_datetime,
    study_identity,
)


def ds(**tags: str) -> Dataset:
    d = Dataset()
    for k, v in tags.items():
        setattr(d, k, v)
    return d


def test_parse_dicom_datetime_forms() -> None:
    assert parse_dicom_datetime(dt="20260102153000.25+0800") == datetime(
        2026, 1, 2, 15, 30, 0, 250000, tzinfo=timezone(timedelta(hours=8))
    )
    assert parse_dicom_datetime(dt="202601021530") == datetime(2026, 1, 2, 15, 30)
    assert parse_dicom_datetime(dt="20260102") == date(2026, 1, 2)
    assert parse_dicom_datetime(da="20260102", tm="0930") == datetime(2026, 1, 2, 9, 30)
    assert parse_dicom_datetime(da="2026.01.02", tm="09:30:15") == datetime(2026, 1, 2, 9, 30, 15)
    assert parse_dicom_datetime(da="20260102", tm="235960") == datetime(2026, 1, 2, 23, 59, 59)  # leap second
    assert parse_dicom_datetime(da="20260102", tm=None, tz_offset="-0500") == date(2026, 1, 2)
    assert parse_dicom_datetime(da="20261302", tm="0930") is None  # month 13
    assert parse_dicom_datetime(da="yesterday") is None
    assert parse_dicom_datetime() is None


def test_acquisition_datetime_priority_and_earliest() -> None:
    a = ds(AcquisitionDate="20260101", AcquisitionTime="120501", SeriesDate="20260101", SeriesTime="120000",
           StudyDate="20260101", StudyTime="115500")
    b = ds(AcquisitionDate="20260101", AcquisitionTime="120459.5", SeriesDate="20260101", SeriesTime="120000")
    assert acquisition_datetime([a, b]) == "2026-01-01T12:04:59.500000"
    assert acquisition_datetime([ds(AcquisitionDateTime="20260101120700", AcquisitionDate="20260101",
                                    AcquisitionTime="120000")]) == "2026-01-01T12:07:00"
    # a date-only acquisition loses to a series date + time
    assert acquisition_datetime([ds(AcquisitionDate="20260101", SeriesDate="20260101", SeriesTime="1300")]) == (
        "2026-01-01T13:00:00"
    )
    assert acquisition_datetime([ds(StudyDate="20260101", TimezoneOffsetFromUTC="+0100", StudyTime="08")]) == (
        "2026-01-01T08:00:00+01:00"
    )
    assert acquisition_datetime([ds(StudyDate="20260101")]) == "2026-01-01"
    assert acquisition_datetime([ds(PatientID="x")]) is None


def test_identity_and_report_contract() -> None:
    header = ds(PatientID="P1", StudyInstanceUID="1.2.3", SeriesInstanceUID="1.2.3.4", AccessionNumber="A9",
                StudyDate="20260101", StudyTime="120000")
    ident = study_identity([header], series_uid="1.2.3.4#2")
    assert ident.to_dict() == {
        "patient_id": "P1", "study_instance_uid": "1.2.3", "series_instance_uid": "1.2.3.4#2",
        "accession_number": "A9", "acquisition_datetime": "2026-01-01T12:00:00",
    }
    with pytest.raises(ValueError, match="Argument 'datasets'"):
        study_identity([])
    geo = compute_geometry(orientation=(1, 0, 0, 0, 1, 0), positions=np.array([[0, 0, z] for z in (0.0, 5.0)]),
                           pixel_spacing=(1, 1), rows=4, columns=4)
    hematoma = measure_hematoma(np.ones((2, 4, 4), dtype=bool), geo)
    timer = StageTimer()
    with timer.stage("measure"):
        pass
    report = build_study_report(identity=None, geometry=geo, hematoma=hematoma,
                                segmenter=SegmenterInfo("external-mask"), timings=timer, warnings=["w", "w"],
                                extra={"report_type": "measure"})
    assert report["patient_id"] is None and report["hematoma"]["volume_ml"] == pytest.approx(0.16)
    assert report["warnings"] == ["w"] and set(report["timings_s"]) == {"measure"}
    assert report["report_type"] == "measure"
    with pytest.raises(ValueError, match="Argument 'extra' must not replace report fields; it holds hematoma"):
        build_study_report(identity=None, geometry=geo, hematoma=hematoma, segmenter=SegmenterInfo("x"),
                           extra={"hematoma": {}})
