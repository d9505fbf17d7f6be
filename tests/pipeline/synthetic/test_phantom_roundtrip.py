"""Round trips through the reader: ``ichpipe inspect`` and ``ichpipe measure`` on phantom studies.

For every geometry option the reader must find what ``truth.json`` says
(tilt with its sign, spacing along the normal, uniform spacing, missing
slices, slice count), select the soft-tissue axial series among the
distractors, and measure the truth mask to the truth volume. The truth volume
is the phantom's planned slices over their nominal thickness, computed without
the reader's thickness rule; where the written files cannot say everything (a
dropped slice, a change of thickness) the reader must land within the
phantom's ``reader_tolerance_ml``, which is zero for complete, evenly spaced
stacks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydicom
import pytest
from click.testing import CliRunner

from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, PhantomTruth, write_phantom_study

SMALL: dict[str, Any] = {"seed": 31, "rows": 128, "columns": 128, "n_slices": 12, "volume_ml": 12.0}

CASES: dict[str, dict[str, Any]] = {
    "plain": {},
    "tilt": {"gantry_tilt_deg": 18.5},
    "negative_tilt": {"gantry_tilt_deg": -18.5},
    "uneven": {"uneven_spacing_mm": (4.0, 7.0)},
    "drop": {"drop_slice": 6},
    "duplicate": {"duplicate_slice": 4},
    "tilt_uneven_drop": {"gantry_tilt_deg": 18.5, "uneven_spacing_mm": (4.0, 7.0), "n_slices": 16, "drop_slice": 11},
    "distractors": {"distractors": ("localizer", "bone", "thin", "summary")},
    "compressed_distractors": {
        "distractors": ("localizer", "bone", "summary"), "transfer_syntax": "jpeg2000", "rescale": "per_slice",
    },
    "irregular_touching": {"shape": "irregular", "touch_skull": True, "n_hematomas": 2, "rescale": "scaled"},
}


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PhantomTruth]:
    root = tmp_path_factory.mktemp("roundtrip")
    return {name: write_phantom_study(root / name, PhantomSpec(**{**SMALL, **kw})) for name, kw in CASES.items()}


def run_json(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("case", list(CASES))
def test_inspect_finds_the_truth_geometry_and_series(case: str, studies: dict[str, PhantomTruth]) -> None:
    truth = studies[case]
    report = run_json("inspect", "--study", str(truth.out_dir), "--json")
    selected = [s for s in report["series"] if s["selected"]]
    assert len(selected) == 1
    (chosen,) = selected
    assert chosen["series_instance_uid"] == truth.data["selected_series_instance_uid"]
    assert {s["series_instance_uid"] for s in report["series"]} == {
        s["series_instance_uid"] for s in truth.data["series"]
    }
    expected = truth.geometry
    assert chosen["n_slices"] == expected["n_slices"]
    assert chosen["rows"] == expected["rows"] and chosen["columns"] == expected["columns"]
    assert chosen["pixel_spacing_mm"] == pytest.approx(expected["pixel_spacing_mm"])
    assert chosen["slice_spacing_mm"] == pytest.approx(expected["slice_spacing_mm"], abs=1e-3)
    assert chosen["gantry_tilt_deg"] == pytest.approx(expected["gantry_tilt_deg"], abs=1e-2)
    assert chosen["uniform_spacing"] is expected["uniform_spacing"]
    assert chosen["missing_slices"] == expected["missing_slices"]


@pytest.mark.parametrize("case", list(CASES))
def test_measure_of_the_truth_mask_gives_the_truth_volume(case: str, studies: dict[str, PhantomTruth]) -> None:
    truth = studies[case]
    report = run_json("measure", "--study", str(truth.out_dir), "--mask", str(truth.mask_path), "--json")
    assert report["series_instance_uid"] == truth.series_instance_uid
    assert report["study_instance_uid"] == truth.study_instance_uid
    assert report["accession_number"] == truth.accession_number
    assert report["hematoma"]["n_voxels"] == truth.n_voxels
    assert abs(report["hematoma"]["volume_ml"] - truth.volume_ml) <= truth.reader_tolerance_ml + 1e-3
    if "drop_slice" in CASES[case] or "uneven_spacing_mm" in CASES[case]:
        assert truth.reader_tolerance_ml > 0.01  # these cases do test something beyond rounding
    else:
        assert truth.reader_tolerance_ml == 0.0


def test_truth_as_dicom_seg_measures_like_the_nifti(tmp_path: Path) -> None:
    from ichpipe.pipeline.synthetic.phantom.seg_writer import dicom_seg_writer

    spec = PhantomSpec(**{**SMALL, "gantry_tilt_deg": 12.0, "duplicate_slice": 3, "n_hematomas": 2})
    truth = write_phantom_study(tmp_path / "seg", spec, seg_writer=dicom_seg_writer)
    assert truth.seg_path is not None and truth.seg_path == tmp_path / "seg" / truth.data["files"]["mask_seg"]
    seg = pydicom.dcmread(truth.seg_path)
    assert seg.Modality == "SEG" and seg.StudyInstanceUID == truth.study_instance_uid
    roles = {s["role"]: s for s in truth.data["series"]}
    assert roles["seg"]["series_instance_uid"] == seg.SeriesInstanceUID and not roles["seg"]["should_select"]
    report = run_json("measure", "--study", str(truth.out_dir), "--mask", str(truth.seg_path), "--json")
    assert report["hematoma"]["n_voxels"] == truth.n_voxels
    assert report["hematoma"]["volume_ml"] == pytest.approx(truth.volume_ml, abs=1e-3)
    scan = run_json("inspect", "--study", str(truth.out_dir), "--json")
    assert [s["series_instance_uid"] for s in scan["series"] if s["selected"]] == [truth.series_instance_uid]
