"""Serial phantom studies of one patient through ``ichpipe run`` then ``ichpipe expansion``."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner

from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study

T0 = datetime(2026, 1, 1, 8, 0, 0)

# patient: (seed, [(hours after the first scan, target volume mL), ...])
PATIENTS = {
    "GROWS": (5, [(0, 10.0), (20, 20.0)]),  # +10 mL at 20 h: expanded at hour 20
    "STABLE": (6, [(0, 12.0), (24, 12.5)]),  # +0.5 mL: not expanded
    "LATE": (7, [(0, 10.0), (60, 25.0)]),  # only follow-up after 48 h: undetermined, not negative
}

#: The phantoms here are cut heads (12-16 slices, fast): ``head_not_covered`` off (tested in
#: ``tests/pipeline/quality/test_coverage.py``), or every scan is flagged and left out of serial comparisons.
CUT_HEADS = "quality:\n  coverage:\n    max_end_share: null\n"


@pytest.fixture(scope="module")
def expansion_result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("serial")
    cfg = root / "config.yaml"
    cfg.write_text(f"store:\n  path: {root / 'store.sqlite'}\n{CUT_HEADS}")
    runner = CliRunner()
    for patient, (seed, scans) in PATIENTS.items():
        for k, (hours, volume) in enumerate(scans):
            study = root / f"{patient}-{k}"
            write_phantom_study(study, PhantomSpec(
                seed=seed, rows=128, columns=128, n_slices=16, volume_ml=volume, patient_id=patient,
                accession_number=f"{patient}-ACC{k}", acquisition_datetime=T0 + timedelta(hours=hours)))
            result = runner.invoke(cli, ["run", "--study", str(study), "--out", str(root / "out"),
                                         "--segmenter", "threshold", "--config", str(cfg)])
            assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["expansion", "--json", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    return {p["patient_id"]: p for p in json.loads(result.stdout)["patients"]}


def test_growing_hematoma_is_expanded_at_hour_20(expansion_result: dict) -> None:
    p = expansion_result["GROWS"]
    assert p["status"] == "expanded"
    assert p["time_origin"] == "first_scan"  # no onset known: hours count from the first scan
    assert p["expansion_hours"] == pytest.approx(20.0)
    assert p["first_expansion"]["accession_number"] == "GROWS-ACC1"
    assert p["first_expansion"]["delta_ml"] == pytest.approx(10.0, abs=0.6)


def test_stable_hematoma_is_not_expanded(expansion_result: dict) -> None:
    assert expansion_result["STABLE"]["status"] == "not_expanded"


def test_follow_up_only_after_the_window_is_undetermined(expansion_result: dict) -> None:
    assert expansion_result["LATE"]["status"] == "undetermined"
