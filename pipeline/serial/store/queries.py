"""Reading the results store: measurements, patients and clinical records.
"""

from __future__ import annotations

import sqlalchemy as sa

from ichpipe.pipeline.serial.store.connection import Store
from ichpipe.pipeline.serial.store.migrations import measurements_table, patients_table
from ichpipe.pipeline.serial.store.records import ClinicalRecord, StoredMeasurement

__all__ = ["get_clinical", "list_clinical", "list_measurements", "list_patients"]


def _to_stored(row: sa.RowMapping) -> StoredMeasurement:
    return StoredMeasurement(
        patient_id=row["patient_id"],
        issuer_of_patient_id=row["issuer_of_patient_id"],
        series_instance_uid=row["series_instance_uid"],
        study_instance_uid=row["study_instance_uid"],
        accession_number=row["accession_number"],
        acquisition_datetime=row["acquisition_datetime"],
        volume_ml=row["volume_ml"],
        abc2_ml=row["abc2_ml"],
        segmenter=row["segmenter"],
        segmenter_version=row["segmenter_version"],
        checkpoint_sha256=row["checkpoint_sha256"],
        features=row["features"],
        source=row["source"],
        preferred=bool(row["preferred"]),
        recorded_at=row["recorded_at"],
        preferred_by=row["preferred_by"] if row["preferred"] else None,
        quality_flags=tuple(row["quality_flags"] or ()),
        acquisition_precision=row["acquisition_precision"] if row["acquisition_datetime"] is not None else None,
        source_path=row["source_path"],
    )


def list_measurements(
    store: Store, *, patient_id: str | None = None, issuer_of_patient_id: str | None = None
) -> list[StoredMeasurement]:
    """Return recorded series (all, or one patient's), by patient then acquisition time.

    ``issuer_of_patient_id=None`` matches any issuer.
    """
    m = measurements_table.c
    query = sa.select(measurements_table)
    if patient_id is not None:
        query = query.where(m.patient_id == patient_id)
    if issuer_of_patient_id is not None:
        query = query.where(m.issuer_of_patient_id == issuer_of_patient_id)
    query = query.order_by(m.patient_id, m.issuer_of_patient_id, m.acquisition_datetime,
                           m.series_instance_uid)
    rows = store.read(lambda conn: conn.execute(query).mappings().all())
    return [_to_stored(r) for r in rows]


def list_patients(store: Store) -> list[tuple[str, str]]:
    """Return every (patient_id, issuer_of_patient_id) with at least one recorded series, sorted."""
    m = measurements_table.c
    query = sa.select(m.patient_id, m.issuer_of_patient_id).distinct().order_by(
        m.patient_id, m.issuer_of_patient_id
    )
    rows = store.read(lambda conn: conn.execute(query).all())
    return [(str(p), str(i)) for p, i in rows]


def _to_clinical(row: sa.RowMapping) -> ClinicalRecord:
    return ClinicalRecord(
        patient_id=row["patient_id"],
        issuer_of_patient_id=row["issuer_of_patient_id"],
        onset_datetime=row["onset_datetime"],
        onset_to_first_scan_h=row["onset_to_first_scan_h"],
        clinical=row["clinical"],
        source=row["source"],
        surgery_datetime=row["surgery_datetime"],
    )


def list_clinical(store: Store) -> dict[tuple[str, str], ClinicalRecord]:
    """Return every patient's clinical record keyed by (patient_id, issuer_of_patient_id)."""
    rows = store.read(lambda conn: conn.execute(sa.select(patients_table)).mappings().all())
    return {(r["patient_id"], r["issuer_of_patient_id"]): _to_clinical(r) for r in rows}


def get_clinical(store: Store, patient_id: str, issuer_of_patient_id: str = "") -> ClinicalRecord | None:
    """Return one patient's clinical record, or ``None``."""
    p = patients_table.c
    query = sa.select(patients_table).where(p.patient_id == patient_id,
                                      p.issuer_of_patient_id == issuer_of_patient_id)
    row = store.read(lambda conn: conn.execute(query).mappings().first())
    return _to_clinical(row) if row is not None else None
