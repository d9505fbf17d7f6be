"""DICOM SR (TID 1500) and the SEG/SC metadata of ``ichpipe run``: read back with highdicom, dciodvfy-clean.

The SR is checked against the report it was written from (volumes, ABC/2
diameters, quality flags, per-type volumes, the change since the baseline),
on phantoms, on a report dict carrying quality flags and per-type volumes (as
branches i12 and i13 will add them), on the real GE tilted head
(``../shared/data/ct-real/ge-hispeed-head-tilt``, skipped when absent) and on
a series without FrameOfReferenceUID.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import highdicom as hd
import pydicom
import pytest
from click.testing import CliRunner
from pydicom.sr.coding import Code

from ichpipe.dicom_io.assemble import assemble_series
from ichpipe.dicom_io.seg import build_seg
from ichpipe.dicom_io.sr import PRIVATE_SCHEME, build_measurement_sr
from ichpipe.dicom_io.study import scan_study
from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.outputs.series_naming import kind_of_series_number
from ichpipe.pipeline.outputs.sr_content import sr_content_from_report
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study

REPO = Path(__file__).resolve().parents[2]
GE_TILT = REPO.parent / "shared" / "data" / "ct-real" / "ge-hispeed-head-tilt"
VOLUME = Code("118565006", "SCT", "Volume")

#: The phantoms here are cut heads (12-16 slices, fast): ``head_not_covered`` off (tested in
#: ``tests/pipeline/quality/test_coverage.py``), or every scan is flagged and left out of serial comparisons.
CUT_HEADS = "quality:\n  coverage:\n    max_end_share: null\n"


def _dciodvfy_errors(path: Path) -> list[str]:
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not on PATH")
    proc = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=120, check=False)
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("Error")]


def _run(study: Path, out: Path, config: Path, *extra: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["run", "--study", str(study), "--out", str(out), "--segmenter", "threshold",
                                      "--json", "--config", str(config), *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"store:\n  path: {tmp_path / 'store.sqlite'}\n{CUT_HEADS}")
    return cfg


def _group(sr: hd.sr.Comprehensive3DSR) -> Any:
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == 1
    return groups[0]


def _value(group: Any, name: Code) -> float:
    items = group.get_measurements(name=name)
    assert len(items) == 1, name
    return float(items[0].value)


def test_run_writes_sr_matching_report_and_seg(tmp_path: Path, config: Path) -> None:
    spec = PhantomSpec(seed=5, rows=128, columns=128, n_slices=16, volume_ml=20.0, gantry_tilt_deg=12.0,
                       uneven_spacing_mm=(4.0, 7.0), patient_id="SRPAT1")
    write_phantom_study(tmp_path / "study", spec)
    report = _run(tmp_path / "study", tmp_path / "out", config)
    out = Path(report["outputs"]["sr"]).parent
    sr = hd.sr.srread(out / "sr.dcm")
    seg = pydicom.dcmread(out / "seg.dcm")
    group = _group(sr)
    h = report["hematoma"]
    assert _value(group, VOLUME) == pytest.approx(h["volume_ml"], abs=1e-3)
    assert _value(group, Code("121221", "DCM", "Volume of ellipsoid")) == pytest.approx(h["abc2_ml"], abs=1e-3)
    assert _value(group, Code("103339001", "SCT", "Long axis")) == pytest.approx(h["abc2"]["a_mm"], abs=1e-3)
    assert _value(group, Code("131189007", "SCT", "Perpendicular Axis")) == pytest.approx(h["abc2"]["b_mm"], abs=1e-3)
    assert _value(group, Code("121207", "DCM", "Height")) == pytest.approx(h["abc2"]["c_mm"], abs=1e-3)
    segment = group.referenced_segment
    assert segment is not None
    assert segment[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == seg.SOPInstanceUID
    assert sr.StudyInstanceUID == report["study_instance_uid"] == seg.StudyInstanceUID
    # every DICOM output is valid, carries the run's date and a number of its kind
    kinds = {"seg.dcm": "seg", "key_image_sc.dcm": "sc", "sr.dcm": "sr"}
    for name, kind in kinds.items():
        ds = pydicom.dcmread(out / name, stop_before_pixels=True)
        assert _dciodvfy_errors(out / name) == [], name
        assert kind_of_series_number(int(ds.SeriesNumber)) == kind
        assert ds.SeriesDescription.startswith("ichpipe ") and "threshold" in ds.SeriesDescription
        assert len(str(ds.SeriesDate)) == 8 and ds.SeriesTime
    # the uneven stack's SEG carries each frame's own SliceThickness (4 and 7 mm), not one shared value
    thickness = {float(f.PixelMeasuresSequence[0].SliceThickness) for f in seg.PerFrameFunctionalGroupsSequence}
    assert thickness == {4.0, 7.0}
    assert "PixelMeasuresSequence" not in seg.SharedFunctionalGroupsSequence[0]
    assert str(seg.ContentCreatorName).startswith("ichpipe")
    assert hd.seg.segread(out / "seg.dcm").number_of_segments == 1  # highdicom still reads it


def test_follow_up_sr_carries_change_since_baseline(tmp_path: Path, config: Path) -> None:
    reports = []
    for k, (volume, hour) in enumerate(((15.0, 0), (30.0, 6))):
        spec = PhantomSpec(seed=11 + k, rows=128, columns=128, n_slices=16, volume_ml=volume, patient_id="SERIAL1",
                           accession_number=f"ACC{k}", acquisition_datetime=datetime(2025, 3, 1, 8 + hour, 0))
        write_phantom_study(tmp_path / f"study{k}", spec)
        reports.append(_run(tmp_path / f"study{k}", tmp_path / "out", config))
    base, follow = reports
    assert base["serial"]["is_baseline"] is True
    serial = follow["serial"]
    delta = follow["hematoma"]["volume_ml"] - base["hematoma"]["volume_ml"]
    assert serial["is_baseline"] is False and serial["time_point_order"] == 2
    assert serial["delta_ml"] == pytest.approx(delta, abs=1e-3)
    assert serial["delta_pct"] == pytest.approx(100 * delta / base["hematoma"]["volume_ml"], abs=1e-2)
    assert serial["hours_since_baseline"] == pytest.approx(6.0)
    assert serial["expansion"] == "expanded"  # 15 -> 30 mL within 6 h meets 6 mL / 33 %
    sr = hd.sr.srread(follow["outputs"]["sr"])
    group = _group(sr)
    assert _value(group, Code("VOLCHG", PRIVATE_SCHEME, "x")) == pytest.approx(delta, abs=1e-3)
    assert _value(group, Code("VOLCHGPCT", PRIVATE_SCHEME, "x")) == pytest.approx(serial["delta_pct"], abs=1e-2)
    verdicts = [e for e in group.get_qualitative_evaluations(name=Code("EXPANSION", PRIVATE_SCHEME, "x"))]
    assert [v.value.value for v in verdicts] == ["EXPANDED"]
    assert _dciodvfy_errors(Path(follow["outputs"]["sr"])) == []


def test_follow_up_by_another_segmenter_still_gets_its_sr(tmp_path: Path, config: Path) -> None:
    """Baseline by the network, follow-up by the threshold baseline: no change is stated, the SR is written.

    (It was lost before: formatting the missing change raised, and the run flagged ``output_skipped``.)
    """
    for k, extra in enumerate((("--segmenter", "sa_cbam_unet_slim"), ())):  # _run adds --segmenter threshold
        spec = PhantomSpec(seed=21 + k, rows=128, columns=128, n_slices=16, volume_ml=15.0, patient_id="SERIAL2",
                           accession_number=f"ACC{k}", acquisition_datetime=datetime(2025, 3, 1, 8 + 3 * k, 0))
        write_phantom_study(tmp_path / f"study{k}", spec)
        follow = _run(tmp_path / f"study{k}", tmp_path / "out", config, *extra)
    assert follow["serial"]["same_method_as_baseline"] is False
    assert "output_skipped" not in [f["code"] for f in follow["quality"]["flags"]]
    sr = hd.sr.srread(follow["outputs"]["sr"])
    texts = [str(i.TextValue) for i in sr.ContentSequence[-1].ContentSequence[0].ContentSequence
             if i.ValueType == "TEXT"]
    assert any("Change since baseline series" in t and "not comparable" in t for t in texts)
    assert not _group(sr).get_measurements(name=Code("VOLCHG", PRIVATE_SCHEME, "x"))


def test_sr_from_report_with_quality_flags_and_types(tmp_path: Path) -> None:
    """Quality flags (branch i12's ``quality`` block) and per-type volumes (i13's ``by_type``) reach the SR."""
    write_phantom_study(tmp_path / "study", PhantomSpec(seed=2, rows=96, columns=96, n_slices=12))
    with scan_study(tmp_path / "study") as scan:
        volume = assemble_series(scan.require_selected().series)
    mask = volume.hu > 50
    report = {
        "hematoma": {"volume_ml": 12.5, "abc2_ml": 14.0, "abc2": {"a_mm": 40.0, "b_mm": 30.0, "c_mm": 23.3},
                     "by_type": {"iph_ml": 9.0, "ivh_ml": 3.5, "eah_ml": 0.0}},
        "segmenter": {"name": "blast_ct", "version": "1", "checkpoint_sha256": "ab" * 32},
        "quality": {"method": "rules", "flags": [
            {"code": "intracranial_space_not_found", "message": "no bone ring found", "value": None},
            {"code": "hu_implausible", "message": "median brain HU 120 outside 0..80", "value": 120.0}]},
    }
    seg = build_seg(mask, volume, algorithm_name="ichpipe-blast_ct", algorithm_version="1",
                    algorithm_parameters={"checkpoint_sha256": "ab" * 32})
    assert seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmParameters \
        == f"checkpoint_sha256={'ab' * 32}"
    sr = build_measurement_sr(sr_content_from_report(report), volume, seg=seg)
    sr.save_as(tmp_path / "sr.dcm", enforce_file_format=True)
    back = hd.sr.srread(tmp_path / "sr.dcm")
    group = _group(back)
    flags = group.get_qualitative_evaluations(name=Code("111052", "DCM", "Quality Finding"))
    assert sorted(f.value.value for f in flags) == ["hu_implausible", "intracranial_space_not_found"]
    comments = [str(i.TextValue) for i in back.ContentSequence[-1].ContentSequence[0].ContentSequence
                if i.ValueType == "TEXT"]
    assert any("median brain HU 120 outside 0..80 (value 120.0)" in c for c in comments)
    typed = back.content.get_image_measurement_groups()
    by_type = {g.tracking_identifier: float(g.get_measurements(name=VOLUME)[0].value) for g in typed}
    assert by_type == {"Hematoma IPH": 9.0, "Hematoma IVH": 3.5, "Hematoma EAH": 0.0}
    def texts(code: str) -> list[str]:
        found = hd.sr.utils.find_content_items(group[0], name=Code(code, "DCM", "x"), recursive=True)
        return [str(i.TextValue) for i in found]

    assert texts("111001") == ["ichpipe-blast_ct"]  # Algorithm Name
    assert texts("111002") == [f"checkpoint_sha256={'ab' * 32}"]  # Algorithm Parameters
    assert _dciodvfy_errors(tmp_path / "sr.dcm") == []


def test_sr_without_quality_block_says_nothing_about_quality(tmp_path: Path) -> None:
    report = {"hematoma": {"volume_ml": 1.0, "abc2_ml": 1.0, "abc2": {"a_mm": 1.0, "b_mm": 1.0, "c_mm": 1.0}},
              "segmenter": {"name": "threshold"}}
    content = sr_content_from_report(report)
    assert content.quality_flags == () and content.quality_checked is False
    with pytest.raises(ValueError, match="lacks the hematoma's volume_ml"):
        sr_content_from_report({"hematoma": {}})


def test_no_frame_of_reference_series(tmp_path: Path, config: Path) -> None:
    """A series without FrameOfReferenceUID is measured, and its SEG, SC and SR (derived FoR) are valid."""
    write_phantom_study(tmp_path / "study", PhantomSpec(seed=4, rows=96, columns=96, n_slices=12, volume_ml=10.0,
                                                        patient_id="NOFOR"))
    for f in (tmp_path / "study" / "DICOM").rglob("*"):
        if f.is_file():
            ds = pydicom.dcmread(f)
            if "FrameOfReferenceUID" in ds:
                del ds.FrameOfReferenceUID
                ds.save_as(f)
    result = CliRunner().invoke(cli, ["run", "--study", str(tmp_path / "study"), "--out", str(tmp_path / "out"),
                                      "--segmenter", "threshold", "--json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["frame_of_reference"]["derived"] is True
    for name in ("seg", "secondary_capture", "sr"):
        assert _dciodvfy_errors(Path(report["outputs"][name])) == [], name
    assert _value(_group(hd.sr.srread(report["outputs"]["sr"])), VOLUME) == pytest.approx(
        report["hematoma"]["volume_ml"], abs=1e-3)


@pytest.mark.skipif(not GE_TILT.is_dir(), reason="../shared/data/ct-real/ge-hispeed-head-tilt is absent")
def test_real_ge_tilted_head_outputs_valid(tmp_path: Path, config: Path) -> None:
    config.write_text(config.read_text() + "outputs:\n  tilt_eq: true\n  tilt_eq_dicom: true\n")
    report = _run(GE_TILT, tmp_path / "out", config)
    outputs = report["outputs"]
    for name in ("seg", "secondary_capture", "sr", "seg_tilt_eq"):
        assert _dciodvfy_errors(Path(outputs[name])) == [], name
    derived = sorted(Path(outputs["ct_tilt_eq_dicom"]).glob("*.dcm"))
    assert derived and _dciodvfy_errors(derived[0]) == [] and _dciodvfy_errors(derived[-1]) == []
    seg = pydicom.dcmread(outputs["seg"])
    thickness = {float(f.PixelMeasuresSequence[0].SliceThickness) for f in seg.PerFrameFunctionalGroupsSequence}
    assert thickness == {4.0, 7.0}  # the GE header's 4 mm and 7 mm slices, frame by frame
    group = _group(hd.sr.srread(outputs["sr"]))
    assert _value(group, VOLUME) == pytest.approx(report["hematoma"]["volume_ml"], abs=1e-3)
