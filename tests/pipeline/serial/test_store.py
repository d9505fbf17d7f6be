"""The results store: upsert, preferred series, schema versions and migration, concurrent writers."""

from __future__ import annotations

import multiprocessing
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ichpipe.errors import StoreError
from ichpipe.pipeline.config.store_config import StoreConfig
from ichpipe.pipeline.serial.store import (
    SCHEMA_VERSION,
    ClinicalRecord,
    MeasurementRecord,
    get_clinical,
    imported_series_uid,
    list_measurements,
    list_patients,
    measurement_from_report,
    open_store,
    record_measurement,
    record_measurements,
    schema_version,
    set_preferred,
    upsert_clinical,
)

T0 = datetime(2024, 3, 1, 8, 0, 0)


def rec(uid: str, *, patient: str = "P1", accession: str | None = "A1", volume: float = 10.0,
        hours: float = 0.0, preferred: bool = True, **kw: object) -> MeasurementRecord:
    return MeasurementRecord(
        patient_id=patient,
        series_instance_uid=uid,
        accession_number=accession,
        volume_ml=volume,
        acquisition_datetime=T0 + timedelta(hours=hours),
        preferred=preferred,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def store_config(tmp_path: Path) -> StoreConfig:
    return StoreConfig(path=str(tmp_path / "out" / "ichpipe.sqlite"))


def test_new_store_is_created_at_the_latest_schema_in_wal_mode(store_config: StoreConfig) -> None:
    with open_store(store_config) as store:
        assert schema_version(store) == SCHEMA_VERSION == 4
    con = sqlite3.connect(store_config.path)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        versions = [v for (v,) in con.execute("SELECT version FROM schema_version ORDER BY version")]
        assert versions == [1, 2, 3, 4]
    finally:
        con.close()


def test_rerecording_a_series_replaces_its_row(store_config: StoreConfig) -> None:
    with open_store(store_config) as store:
        record_measurement(store, rec("1.2.3", volume=10.0, segmenter="threshold", features={"a": 1.0}))
        first = list_measurements(store)
        record_measurement(store, rec("1.2.3", volume=12.5, segmenter="sa_cbam_unet", abc2_ml=11.0))
        rows = list_measurements(store)
    assert len(first) == 1 and len(rows) == 1
    (row,) = rows
    assert row.volume_ml == 12.5 and row.abc2_ml == 11.0 and row.segmenter == "sa_cbam_unet"
    assert row.features is None  # replaced, not merged
    assert row.recorded_at >= first[0].recorded_at


def test_preferred_series_per_accession(store_config: StoreConfig) -> None:
    with open_store(store_config) as store:
        record_measurement(store, rec("1.1", volume=10.0))
        record_measurement(store, rec("1.2", volume=11.0))  # same accession, newer: takes the mark
        marks = {m.series_instance_uid: m.preferred for m in list_measurements(store)}
        assert marks == {"1.1": False, "1.2": True}
        set_preferred(store, "1.1")
        marks = {m.series_instance_uid: m.preferred for m in list_measurements(store)}
        assert marks == {"1.1": True, "1.2": False}
        # Re-recording without preferred keeps the mark where the user put it.
        record_measurement(store, rec("1.2", volume=11.5, preferred=False))
        marks = {m.series_instance_uid: m.preferred for m in list_measurements(store)}
        assert marks == {"1.1": True, "1.2": False}
        # Another accession is untouched.
        record_measurement(store, rec("2.1", accession="A2", hours=20))
        assert {m.series_instance_uid for m in list_measurements(store) if m.preferred} == {"1.1", "2.1"}
        with pytest.raises(StoreError, match="No recorded series"):
            set_preferred(store, "9.9.9")


def test_clinical_upsert_and_patients(store_config: StoreConfig) -> None:
    with open_store(store_config) as store:
        record_measurements(store, [rec("1.1"), rec("2.1", patient="P2", issuer_of_patient_id="SITE-B")])
        upsert_clinical(store, [ClinicalRecord(patient_id="P1", onset_to_first_scan_h=2.0, clinical={"age": 60})])
        upsert_clinical(store, [ClinicalRecord(patient_id="P1", onset_to_first_scan_h=3.0)])
        c = get_clinical(store, "P1")
        assert c is not None and c.onset_to_first_scan_h == 3.0 and c.clinical is None
        assert get_clinical(store, "P2") is None
        assert list_patients(store) == [("P1", ""), ("P2", "SITE-B")]


def test_missing_store_is_an_error_when_reading(tmp_path: Path) -> None:
    config = StoreConfig(path=str(tmp_path / "none.sqlite"))
    with pytest.raises(StoreError, match="No results store"):
        open_store(config, create=False)
    assert not (tmp_path / "none.sqlite").exists()


# A version-1 store exactly as version 1 of this code wrote it (frozen here on purpose:
# the migration must keep upgrading what is already on disk at sites).
V1_SQL = """
CREATE TABLE schema_version (
    version INTEGER NOT NULL, applied_at DATETIME NOT NULL, description VARCHAR NOT NULL,
    PRIMARY KEY (version));
CREATE TABLE measurements (
    series_instance_uid VARCHAR NOT NULL, patient_id VARCHAR NOT NULL, accession_number VARCHAR,
    study_instance_uid VARCHAR, acquisition_datetime DATETIME, volume_ml FLOAT NOT NULL, abc2_ml FLOAT,
    segmenter VARCHAR, segmenter_version VARCHAR, checkpoint_sha256 VARCHAR, features JSON,
    recorded_at DATETIME NOT NULL, PRIMARY KEY (series_instance_uid));
CREATE INDEX ix_measurements_patient ON measurements (patient_id);
INSERT INTO schema_version VALUES (1, '2025-01-01 00:00:00.000000', 'measurements table');
INSERT INTO measurements VALUES ('1.1', 'P1', 'A1', NULL, '2024-03-01 08:00:00.000000', 10.0, 9.0,
    'threshold', '1', NULL, '{"x": 1}', '2025-01-01 00:00:00.000000');
INSERT INTO measurements VALUES ('1.2', 'P1', 'A1', NULL, '2024-03-01 08:00:00.000000', 10.5, NULL,
    'sa_cbam_unet', '1', 'abc', NULL, '2025-01-02 00:00:00.000000');
INSERT INTO measurements VALUES ('2.1', 'P1', 'A2', NULL, '2024-03-02 08:00:00.000000', 18.0, NULL,
    NULL, NULL, NULL, NULL, '2025-01-01 00:00:00.000000');
"""


def test_a_version_1_store_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite"
    con = sqlite3.connect(path)
    con.executescript(V1_SQL)
    con.close()
    with open_store(StoreConfig(path=str(path))) as store:
        assert schema_version(store) == SCHEMA_VERSION
        rows = {m.series_instance_uid: m for m in list_measurements(store)}
        assert set(rows) == {"1.1", "1.2", "2.1"}
        assert rows["1.1"].features == {"x": 1} and rows["1.1"].abc2_ml == 9.0
        assert all(m.issuer_of_patient_id == "" and m.source == "dicom" for m in rows.values())
        # Two series of accession A1: the latest recorded keeps the preferred mark.
        assert (rows["1.1"].preferred, rows["1.2"].preferred, rows["2.1"].preferred) == (False, True, True)
        # Version 4: no user ever chose a series, so the marks are automatic; nothing is flagged;
        # the precision of the old times is unknown (08:00 is a real time of day).
        assert (rows["1.1"].preferred_by, rows["1.2"].preferred_by) == (None, "auto")
        assert all(m.quality_flags == () and m.acquisition_precision is None for m in rows.values())
        assert rows["1.2"].method == ("sa_cbam_unet", "abc") and rows["1.2"].time_known
        # The version-2 table works, with version 4's surgery time.
        upsert_clinical(store, [ClinicalRecord(patient_id="P1", onset_to_first_scan_h=1.5,
                                               surgery_datetime=datetime(2024, 3, 1, 20, 0))])
        c = get_clinical(store, "P1")
        assert c is not None and c.surgery_datetime == datetime(2024, 3, 1, 20, 0)
    con = sqlite3.connect(path)
    try:
        assert [v for (v,) in con.execute("SELECT version FROM schema_version ORDER BY version")] == [1, 2, 3, 4]
    finally:
        con.close()


def test_migrate_to_an_intermediate_version_then_up(store_config: StoreConfig) -> None:
    with open_store(store_config, migrate_to=1) as store:
        assert schema_version(store) == 1
    with open_store(store_config) as store:
        assert schema_version(store) == SCHEMA_VERSION
        record_measurement(store, rec("1.1"))
        assert len(list_measurements(store)) == 1


def test_a_newer_store_is_refused(store_config: StoreConfig) -> None:
    open_store(store_config).close()
    con = sqlite3.connect(store_config.path)
    con.execute("INSERT INTO schema_version VALUES (99, '2030-01-01 00:00:00', 'future')")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="newer than this ichpipe"):
        open_store(store_config)


def _writer(path: str, worker: int, n: int) -> None:
    """One process: n upserts of its own series and n re-records of series every worker writes."""
    config = StoreConfig(path=path, busy_timeout_s=30.0, retries=20)
    with open_store(config) as store:
        for i in range(n):
            record_measurement(store, rec(f"9.{worker}.{i}", patient=f"W{worker}", accession=f"W{worker}-{i}",
                                          volume=float(i), hours=i))
            record_measurement(store, rec(f"8.{i}", patient="SHARED", accession=f"S{i}", volume=float(worker),
                                          hours=i))


def test_concurrent_writers_lose_nothing_and_duplicate_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")  # created by the racing workers themselves
    workers, n = 4, 25
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, n)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * workers  # no "database is locked" escaped
    with open_store(StoreConfig(path=path), create=False) as store:
        rows = list_measurements(store)
        assert schema_version(store) == SCHEMA_VERSION
    uids = [m.series_instance_uid for m in rows]
    assert len(uids) == len(set(uids))
    own = {u for u in uids if u.startswith("9.")}
    assert own == {f"9.{w}.{i}" for w in range(workers) for i in range(n)}
    shared = [m for m in rows if m.patient_id == "SHARED"]
    assert len(shared) == n and all(m.volume_ml in range(workers) for m in shared)


def test_measurement_from_report() -> None:
    report = {
        "patient_id": "P9",
        "study_instance_uid": "1.2.3",
        "series_instance_uid": "1.2.3.4",
        "accession_number": "ACC9",
        "acquisition_datetime": "2024-03-01T08:00:00",
        "hematoma": {"volume_ml": 21.5, "abc2_ml": 24.0, "n_voxels": 1000},
        "segmenter": {"name": "sa_cbam_unet", "checkpoint_sha256": "ab" * 32, "version": "0.1.0"},
        "features": {"volume_ml": 21.5},
    }
    r = measurement_from_report(report)
    assert (r.patient_id, r.accession_number, r.volume_ml, r.abc2_ml) == ("P9", "ACC9", 21.5, 24.0)
    assert r.acquisition_datetime == T0 and r.segmenter == "sa_cbam_unet" and r.features == {"volume_ml": 21.5}
    with pytest.raises(ValueError, match=r"hematoma\.volume_ml"):
        measurement_from_report({"patient_id": "P9"})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"patient_id": " "}, "patient_id"),
        ({"volume_ml": -1.0}, "volume_ml"),
        ({"volume_ml": float("nan")}, "volume_ml"),
        ({"features": {"x": float("nan")}}, "features"),
        ({"series_instance_uid": ""}, "series_instance_uid"),
    ],
)
def test_invalid_records_name_the_field(kwargs: dict[str, object], match: str) -> None:
    base: dict[str, object] = {"patient_id": "P1", "series_instance_uid": "1.2", "volume_ml": 1.0,
                               "acquisition_datetime": T0}
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        MeasurementRecord(**base)  # type: ignore[arg-type]


def test_timezone_offsets_keep_the_wall_clock() -> None:
    from datetime import timezone

    aware = datetime(2024, 3, 1, 8, 0, tzinfo=timezone(timedelta(hours=8)))
    r = MeasurementRecord(patient_id="P", series_instance_uid="1", volume_ml=1.0, acquisition_datetime=aware)
    assert r.acquisition_datetime == T0 and r.acquisition_datetime.tzinfo is None


def test_imported_series_uid_is_deterministic_and_a_valid_uid() -> None:
    a = imported_series_uid("sub001", "20161212002136")
    assert a == imported_series_uid("sub001", "20161212002136")
    assert a != imported_series_uid("sub001", "20161212002136", "OTHER")
    assert a.startswith("2.25.") and len(a) <= 64 and a.replace(".", "").isdigit()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"url": "not a url"}, "store.url"),
        ({"busy_timeout_s": 0.0}, "busy_timeout_s"),
        ({"retries": -1}, "retries"),
        ({"path": " "}, "store.path"),
    ],
)
def test_store_config_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        StoreConfig(**kwargs)  # type: ignore[arg-type]


def test_store_url_works_for_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'via-url.sqlite'}"
    with open_store(StoreConfig(url=url)) as store:
        record_measurement(store, rec("1.1"))
        assert len(list_measurements(store)) == 1
        assert store.is_sqlite


def test_a_read_that_meets_a_lock_is_retried_and_a_lasting_one_is_a_store_error(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Two cron runs starting together: one may read while the other creates the store or switches it to WAL."""
    from contextlib import contextmanager

    from sqlalchemy.exc import OperationalError

    from ichpipe.pipeline.serial.store.connection import Store

    with open_store(StoreConfig(path=str(tmp_path / "s.sqlite"), retries=3)) as store:
        record_measurement(store, rec("1.1"))
        real = Store.connect
        failures = {"left": 2, "reads": 0}

        @contextmanager
        def flaky(self: Store, *, write: bool = False):  # type: ignore[no-untyped-def]
            if not write:
                failures["reads"] += 1
                if failures["left"] > 0:
                    failures["left"] -= 1
                    raise OperationalError("BEGIN", {}, sqlite3.OperationalError("database is locked"))
            with real(self, write=write) as conn:
                yield conn

        monkeypatch.setattr(Store, "connect", flaky)
        assert [m.series_instance_uid for m in list_measurements(store)] == ["1.1"]
        assert failures["reads"] == 3  # two locked attempts, then the read
        failures["left"] = 10
        with pytest.raises(StoreError, match="stayed locked by other writers through 4 attempts"):
            list_measurements(store)
