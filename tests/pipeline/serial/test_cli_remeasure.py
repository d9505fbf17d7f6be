"""``ichpipe timeline remeasure`` and ``ichpipe timeline prefer`` on phantom studies run through the CLI."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ichpipe.pipeline.cli import cli
from ichpipe.pipeline.config.store_config import StoreConfig
from ichpipe.pipeline.serial.store import MeasurementRecord, list_measurements, open_store, record_measurement
from ichpipe.pipeline.synthetic.phantom import PhantomSpec, write_phantom_study

T0 = datetime(2026, 1, 1, 8, 0, 0)

#: The phantoms here are cut heads (12-16 slices, fast): ``head_not_covered`` off (tested in
#: ``tests/pipeline/quality/test_coverage.py``), or every scan is flagged and left out of serial comparisons.
CUT_HEADS = "quality:\n  coverage:\n    max_end_share: null\n"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def mixed(tmp_path: Path) -> dict[str, object]:
    """Patient MIX: two phantom scans (15 mL, 15.5 mL) run with the threshold method; then the follow-up's row
    is replaced by one 'measured by a network' that reads 8 mL more, as a run with another method would."""
    cfg = tmp_path / "config.yaml"
    store_path = tmp_path / "store.sqlite"
    cfg.write_text(f"store:\n  path: {store_path}\n{CUT_HEADS}")
    studies = {}
    for k, (hours, volume, accession, seed) in enumerate([(0, 15.0, "A0", 11), (12, 15.5, "A1", 11),
                                                          (12, 15.5, "A1", 12)]):
        study = tmp_path / f"study{k}"
        write_phantom_study(study, PhantomSpec(
            seed=seed, rows=128, columns=128, n_slices=16, volume_ml=volume, patient_id="MIX",
            accession_number=accession, acquisition_datetime=T0 + timedelta(hours=hours)))
        studies[k] = study
    for k in (0, 1):
        result = run("run", "--study", str(studies[k]), "--out", str(tmp_path / "out"), "--segmenter", "threshold",
                     "--config", str(cfg))
        assert result.exit_code == 0, result.output
    with open_store(StoreConfig(path=str(store_path))) as store:
        rows = sorted(list_measurements(store), key=lambda m: m.accession_number or "")
        base, follow = rows
        assert follow.source_path == str(studies[1].resolve())
        record_measurement(store, MeasurementRecord(
            patient_id="MIX", series_instance_uid=follow.series_instance_uid,
            study_instance_uid=follow.study_instance_uid, accession_number="A1",
            acquisition_datetime=follow.acquisition_datetime, acquisition_precision="datetime",
            volume_ml=base.volume_ml + 8.0, segmenter="sa_cbam_unet_slim", checkpoint_sha256="f" * 64,
            source_path=follow.source_path))
    return {"cfg": str(cfg), "studies": studies, "base": base, "follow": follow, "out": str(tmp_path / "out")}


def test_mixed_methods_are_undetermined_until_remeasured_one_way(mixed: dict[str, object]) -> None:
    cfg = str(mixed["cfg"])
    result = run("timeline", "--patient", "MIX", "--config", cfg, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["expansion"]["status"] == "undetermined"  # +8 mL from the method alone is not an expansion
    assert data["expansion"]["unusable_followups"][0]["problem_code"] == "methods_differ"
    assert data["methods"] == ["threshold", "sa_cbam_unet_slim@ffffffff"]
    text = run("timeline", "--patient", "MIX", "--config", cfg).stdout
    assert "Methods differ" in text and "Window counted from the first scan" in text

    dry = run("timeline", "remeasure", "--patient", "MIX", "--segmenter", "threshold", "--dry-run", "--json",
              "--config", cfg)
    assert dry.exit_code == 0, dry.output
    assert [s["outcome"] for s in json.loads(dry.stdout)["scans"]] == ["already", "would_remeasure"]

    done = run("timeline", "remeasure", "--patient", "MIX", "--segmenter", "threshold", "--out", str(mixed["out"]),
               "--json", "--config", cfg)
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert [s["outcome"] for s in report["scans"]] == ["already", "remeasured"]
    follow = mixed["follow"]
    assert isinstance(follow, MeasurementRecord)
    assert report["scans"][1]["volume_after_ml"] == pytest.approx(follow.volume_ml)  # the same series, same method
    assert report["verdicts"][0]["status"] == "not_expanded"
    after = json.loads(run("timeline", "--patient", "MIX", "--config", cfg, "--json").stdout)
    assert after["methods"] == ["threshold"] and after["expansion"]["status"] == "not_expanded"


def test_remeasure_all_finds_mixed_patients_and_says_what_it_cannot_run(mixed: dict[str, object],
                                                                        tmp_path: Path) -> None:
    cfg = str(mixed["cfg"])
    # An imported patient measured two ways: no images to run again.
    (tmp_path / "v.csv").write_text("pid,acc,when,vol,who\nIMP,B1,2026-01-01 08:00:00,10,a\n"
                                    "IMP,B2,2026-01-01 20:00:00,17,a\n")
    assert run("timeline", "import", "--volumes", str(tmp_path / "v.csv"), "--patient-col", "pid",
               "--accession-col", "acc", "--volume-col", "vol", "--datetime-col", "when",
               "--config", cfg).exit_code == 0
    store = StoreConfig(path=str(tmp_path / "store.sqlite"))
    with open_store(store) as s:
        (row,) = [m for m in list_measurements(s, patient_id="IMP") if m.accession_number == "B2"]
        record_measurement(s, MeasurementRecord(patient_id="IMP", series_instance_uid=row.series_instance_uid,
                                                accession_number="B2", acquisition_datetime=row.acquisition_datetime,
                                                volume_ml=17.0, segmenter="elsewhere", source="import"))
    result = run("timeline", "remeasure", "--all", "--segmenter", "threshold", "--dry-run", "--json", "--config", cfg)
    assert result.exit_code == 0, result.output
    outcomes = {(s["patient_id"], s["accession_number"]): s["outcome"] for s in json.loads(result.stdout)["scans"]}
    assert outcomes == {("MIX", "A0"): "already", ("MIX", "A1"): "would_remeasure", ("IMP", "B1"): "no_source",
                        ("IMP", "B2"): "no_source"}
    result = run("timeline", "remeasure", "--patient", "IMP", "--segmenter", "threshold", "--config", cfg)
    assert result.exit_code == 1 and "imported from a table" in result.stdout


def test_prefer_a_series_and_keep_the_choice(mixed: dict[str, object]) -> None:
    cfg, studies, follow = str(mixed["cfg"]), mixed["studies"], mixed["follow"]
    assert isinstance(studies, dict) and isinstance(follow, MeasurementRecord)
    # A second series of accession A1 (another seed): the latest run is used.
    assert run("run", "--study", str(studies[2]), "--out", str(mixed["out"]), "--segmenter", "threshold",
               "--config", cfg).exit_code == 0
    data = json.loads(run("timeline", "--patient", "MIX", "--config", cfg, "--json").stdout)
    second = data["scans"][1]
    assert second["series_instance_uid"] != follow.series_instance_uid and second["preferred_by"] == "auto"
    result = run("timeline", "prefer", "--accession", "A1", "--series", follow.series_instance_uid, "--config", cfg)
    assert result.exit_code == 0, result.output
    # Running the other series again does not take the user's choice away.
    assert run("run", "--study", str(studies[2]), "--out", str(mixed["out"]), "--segmenter", "threshold",
               "--config", cfg).exit_code == 0
    text = run("timeline", "--patient", "MIX", "--config", cfg).stdout
    assert f"series {follow.series_instance_uid} (chosen by the user; 2 series)" in text
    wrong = run("timeline", "prefer", "--accession", "A0", "--series", follow.series_instance_uid, "--config", cfg)
    assert wrong.exit_code == 1 and "belongs to accession number" in wrong.stderr
    back = run("timeline", "prefer", "--auto", "--series", follow.series_instance_uid, "--config", cfg)
    assert back.exit_code == 0 and second["series_instance_uid"] in back.stdout
