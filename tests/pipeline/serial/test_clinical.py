"""Clinical schema, mappings and the leakage guard (ichpipe.pipeline.serial.clinical)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ichpipe.errors import ConfigError, PredictorInputError
from ichpipe.pipeline.serial.clinical import (
    CLINICAL_FIELDS,
    clinical_feature_names,
    is_leaky_name,
    list_clinical_mappings,
    load_clinical_mapping,
    map_clinical_row,
    read_clinical_csv,
)

MAPPING = """\
name: site
patient: PID
fields:
  age_years: {column: Age}
  sex_male: {column: Sex, values: {M: 1, F: 0}}
  sbp_mmhg: {column: BP, split: "/", part: 0}
  dbp_mmhg: {column: BP, split: "/", part: 1}
  tx_hemostatic: {column: TXA}
excluded:
  mRS_90d: outcome
"""


@pytest.fixture
def site_mapping(tmp_path: Path):
    path = tmp_path / "site.yaml"
    path.write_text(MAPPING)
    return load_clinical_mapping(path)


def test_schema_times_every_field() -> None:
    names = [f.name for f in CLINICAL_FIELDS]
    assert len(names) == len(set(names))
    baseline = clinical_feature_names()
    assert "age_years" in baseline and "onset_to_scan_h" in baseline
    assert not any(n.startswith("tx_") for n in baseline)  # treatments come after the first scan
    assert set(clinical_feature_names(allow_post_baseline=True)) == set(names)
    assert not any(is_leaky_name(n) for n in names)


@pytest.mark.parametrize(
    ("name", "leaky"),
    [("90天mRS", True), ("mRS_90d", True), ("mrs at discharge", True), ("outcome", True), ("death", True),
     ("数据集划分", True), ("expanded", True), ("label", True), ("随访1流水号", True),
     ("脑出血前mRS评分", False), ("pre_mrs", False), ("年龄", False), ("HM_volume_ml", False),
     ("original_shape_MeshVolume", False), ("sbp_mmhg", False)],
)
def test_leaky_names(name: str, leaky: bool) -> None:
    assert is_leaky_name(name) is leaky


def test_mapping_reads_coded_split_and_missing_values(site_mapping) -> None:
    row = {"PID": "p1", "Age": "71", "Sex": "F", "BP": "182/96", "TXA": ""}
    assert map_clinical_row(row, site_mapping) == {
        "age_years": 71.0, "sex_male": 0.0, "sbp_mmhg": 182.0, "dbp_mmhg": 96.0, "tx_hemostatic": None,
    }
    assert map_clinical_row({"Age": 60, "Sex": "M"}, site_mapping)["sbp_mmhg"] is None  # stored JSON, no BP


@pytest.mark.parametrize(
    ("row", "message"),
    [({"Age": "old"}, "'Age'.*not a number"), ({"Age": "171"}, "plausible range of age_years"),
     ({"Sex": "X"}, "known codes: M, F"), ({"BP": "180"}, "no part 1"), ({"TXA": "0.5"}, "whole number")],
)
def test_bad_cells_are_refused_naming_the_column(site_mapping, row: dict[str, str], message: str) -> None:
    with pytest.raises(PredictorInputError, match=message) as info:
        map_clinical_row({"PID": "secret-id", **row}, site_mapping, where="site.csv row 7")
    assert "secret-id" not in str(info.value) and "row 7" in str(info.value)


def test_leakage_guard_refuses_outcome_columns(tmp_path: Path) -> None:
    outcome = tmp_path / "outcome.yaml"
    outcome.write_text("name: bad\npatient: ID\nfields:\n  pre_mrs: {column: 90天mRS}\n")
    with pytest.raises(ConfigError, match="outcome, a label or a data split"):
        load_clinical_mapping(outcome)
    excluded = tmp_path / "excluded.yaml"
    excluded.write_text("name: bad\npatient: ID\nfields:\n  age_years: {column: Age}\nexcluded:\n  Age: identifier\n")
    with pytest.raises(ConfigError, match="excludes"):
        load_clinical_mapping(excluded)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("name: bad\npatient: ID\nfields:\n  mrs_90: {column: X}\n")
    with pytest.raises(ConfigError, match="does not have"):
        load_clinical_mapping(unknown)
    with pytest.raises(ConfigError, match="not found"):
        load_clinical_mapping("no_such_mapping")


def test_read_clinical_csv(tmp_path: Path, site_mapping) -> None:
    good = tmp_path / "good.csv"
    good.write_text("PID,Age,Sex,BP,TXA,mRS_90d\np1,50,M,150/80,1,4\np2,,F,,0,\n")
    table = read_clinical_csv(good, site_mapping)
    assert table["p1"]["age_years"] == 50.0 and table["p2"]["age_years"] is None
    assert all("mRS" not in k for row in table.values() for k in row)
    twice = tmp_path / "twice.csv"
    twice.write_text("PID,Age,Sex,BP,TXA\np1,50,M,150/80,1\np1,51,M,150/80,1\n")
    with pytest.raises(PredictorInputError, match="row 3: the patient occurs twice"):
        read_clinical_csv(twice, site_mapping)
    short = tmp_path / "short.csv"
    short.write_text("PID,Age\np1,50\n")
    with pytest.raises(PredictorInputError, match="lacks the column"):
        read_clinical_csv(short, site_mapping)


def test_contest_mapping_excludes_the_outcome(shared_data: Path) -> None:
    assert "contest_2023e" in list_clinical_mappings()
    mapping = load_clinical_mapping("contest_2023e")
    assert "90天mRS" in mapping.excluded and "数据集划分" in mapping.excluded
    table1 = shared_data / "contest-2023E" / "table1_clinical.csv"
    if not table1.is_file():
        pytest.skip("contest-2023E not present")
    header = table1.read_text(encoding="utf-8-sig").splitlines()[0].split(",")
    used = {s.column for s in mapping.fields.values()}
    assert set(header) == used | set(mapping.excluded) | {mapping.patient}  # every column decided
    rows = read_clinical_csv(table1, mapping)
    assert len(rows) == 130
    assert rows["sub001"]["sbp_mmhg"] == 180.0 and rows["sub001"]["dbp_mmhg"] == 90.0
    assert rows["sub001"]["sex_male"] == 0.0 and rows["sub002"]["sex_male"] == 1.0
