"""The predictor's feature table and labels: CSV, store, contest tables (ichpipe.pipeline.risk.feature_table)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from predictor_support import synthetic

from ichpipe.errors import PredictorInputError
from ichpipe.pipeline.config.store_config import StoreConfig
from ichpipe.pipeline.measure.features.extract import FEATURE_SPACE
from ichpipe.pipeline.risk.feature_table import (
    CONTEST_FEATURE_SPACE,
    FeatureTable,
    contest_feature_table,
    contest_labels,
    labelled,
    read_features_csv,
    read_label_rule,
    read_labels_csv,
    write_features_csv,
    write_labels_csv,
)
from ichpipe.pipeline.risk.store_features import store_feature_table
from ichpipe.pipeline.serial.clinical import load_clinical_mapping
from ichpipe.pipeline.serial.expansion import PRESETS
from ichpipe.pipeline.serial.store import ClinicalRecord, MeasurementRecord, open_store, record_batch


def test_features_csv_round_trip(tmp_path: Path) -> None:
    table, _ = synthetic(10)
    values = table.values.copy()
    values[2, 1] = np.nan
    table = FeatureTable(table.patient_ids, table.feature_names, values, table.feature_space)
    back = read_features_csv(write_features_csv(table, tmp_path / "f.csv"))
    assert back.patient_ids == table.patient_ids and back.feature_names == table.feature_names
    assert back.feature_space == table.feature_space
    assert np.array_equal(np.isnan(back.values), np.isnan(values))
    assert np.allclose(np.nan_to_num(back.values), np.nan_to_num(values))


def test_features_csv_errors_name_row_and_column_not_patient(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("patient_id,age_years\nsecret-1,abc\n")
    with pytest.raises(PredictorInputError, match=r"row 2, column 'age_years'") as info:
        read_features_csv(bad)
    assert "secret-1" not in str(info.value)
    leaky = tmp_path / "leaky.csv"
    leaky.write_text("patient_id,age_years,90天mRS\np1,70,3\n")
    with pytest.raises(PredictorInputError, match="outcomes, labels or data splits"):
        read_features_csv(leaky)
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("patient_id,feature_space,age_years\np1,a/1,70\np2,b/1,71\n")
    with pytest.raises(PredictorInputError, match="mixes feature spaces"):
        read_features_csv(mixed)
    with pytest.raises(ValueError, match="outcomes"):
        FeatureTable(("p",), ("label",), np.zeros((1, 1)))


def test_labels_csv_and_exclusion_of_undetermined(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        "patient_id,issuer_of_patient_id,status,label,rule\n"
        "p000,,expanded,1,r\np001,,not_expanded,0,r\np002,,undetermined,,r\n"
    )
    labels = read_labels_csv(path)
    assert labels == {"p000": 1, "p001": 0, "p002": None}
    assert read_label_rule(path) == "r"
    table, _ = synthetic(4)
    data = labelled(table, labels)
    assert data.table.patient_ids == ("p000", "p001")
    assert data.y.tolist() == [1, 0] and data.n_undetermined == 1 and data.n_unlabelled == 1
    out = write_labels_csv(labels, tmp_path / "out.csv", rule="x")
    assert read_labels_csv(out) == labels
    bad = tmp_path / "bad.csv"
    bad.write_text("patient_id,label\np1,yes\n")
    with pytest.raises(PredictorInputError, match="must be 1, 0 or empty"):
        read_labels_csv(bad)
    with pytest.raises(PredictorInputError, match="No patient"):
        labelled(table, {"p000": None})


def test_store_feature_table_from_run_features_and_clinical(tmp_path: Path) -> None:
    config = StoreConfig(path=str(tmp_path / "s.sqlite"))
    values = {"volume_ml": 21.5, "original_shape_Sphericity": 0.8, "location_infratentorial_fraction": None}
    records = []
    for pid, hour in (("a", 2.0), ("b", 3.0)):
        records.append(MeasurementRecord(
            patient_id=pid, series_instance_uid=f"1.2.{len(records)}", volume_ml=21.5,
            acquisition_datetime=datetime(2024, 1, 1, int(hour)), accession_number=f"A{pid}",
            features={"feature_space": FEATURE_SPACE, "values": values},
        ))
    clinical = [
        ClinicalRecord(patient_id="a", onset_to_first_scan_h=1.5,
                       clinical={"年龄": 70, "性别": "男", "血压": "160/90", "90天mRS": 5}),
        ClinicalRecord(patient_id="b", clinical={"年龄": 55}),
    ]
    with open_store(config) as store:
        record_batch(store, measurements=records, clinical=clinical)
        table = store_feature_table(store, clinical_mapping=load_clinical_mapping("contest_2023e"))
    assert table.patient_ids == ("a", "b") and table.feature_space == FEATURE_SPACE
    row = dict(zip(table.feature_names, table.values[0], strict=True))
    assert row["age_years"] == 70 and row["sex_male"] == 1 and row["sbp_mmhg"] == 160
    assert row["onset_to_scan_h"] == 1.5  # from the timeline (no onset column in the stored record)
    assert row["HM_volume_ml"] == 21.5 and row["HM_original_shape_Sphericity"] == 0.8
    assert np.isnan(row["HM_location_infratentorial_fraction"])
    assert not any("mRS" in n and "pre" not in n for n in table.feature_names)
    assert not any(n.startswith("tx_") for n in table.feature_names)  # treatments stay out by default
    assert np.isnan(table.values[1, table.feature_names.index("onset_to_scan_h")])


@pytest.fixture(scope="module")
def contest(shared_data: Path) -> Path:
    folder = shared_data / "contest-2023E"
    if not folder.is_dir():
        pytest.skip("../shared/data/contest-2023E not present")
    return folder


def test_contest_feature_table(contest: Path) -> None:
    table = contest_feature_table(contest, clinical_mapping=load_clinical_mapping("contest_2023e"))
    assert table.values.shape == (130, 97) and table.feature_space == CONTEST_FEATURE_SPACE
    assert not np.isnan(table.values).any()
    names = table.feature_names
    assert not any("mRS" in n and n != "pre_mrs" for n in names) and "pre_mrs" in names
    assert not any(n.startswith("tx_") for n in names)
    assert "HM_original_firstorder_Entropy" in names and "ED_original_shape_MeshVolume" in names
    assert not any(n.startswith(("NCCT", "HM_NCCT")) for n in names)
    row = dict(zip(names, table.rows(["sub001"]).values[0], strict=True))
    assert row["HM_volume_ml"] == pytest.approx(69.714) and row["ED_volume_ml"] == pytest.approx(48.919)
    assert row["HM_original_shape_VoxelVolume"] == 32894  # table3, accession 20161212002136 (voxel units)
    assert row["sbp_mmhg"] == 180 and row["onset_to_scan_h"] == 2.5
    # sub074: table2's first accession (table1 names a follow-up)
    assert dict(zip(names, table.rows(["sub074"]).values[0], strict=True))["HM_original_shape_VoxelVolume"] == 21677
    with_tx = contest_feature_table(contest, clinical_mapping=load_clinical_mapping("contest_2023e"),
                                    allow_post_baseline=True)
    assert len(with_tx.feature_names) == 104


def test_contest_labels_follow_the_previous_issue(contest: Path) -> None:
    labels = contest_labels(contest, rule=PRESETS["contest_2023e"])
    first = {p: v for p, v in labels.items() if int(p[3:]) <= 100}
    assert sum(v == 1 for v in first.values()) == 23 and sum(v == 0 for v in first.values()) == 73
    assert sorted(p for p, v in first.items() if v is None) == ["sub015", "sub046", "sub050", "sub052"]
    assert all(labels[f"sub{i}"] is None for i in range(101, 131))
