"""The predictor's feature table from the results store: each patient's first scan and clinical record.

Imaging columns come from the first scan's recorded features (``ichpipe
run``: feature space ``ichpipe-ibsi/1``, or a timeline import of the contest
tables: ``contest-2023e/1``); clinical columns from the stored clinical record
through a clinical mapping. A value the store does not hold is ``NaN``
(missing); :mod:`~ichpipe.pipeline.risk.missing_features` says who lacks what.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ichpipe.errors import PredictorInputError
from ichpipe.pipeline.risk.feature_table import CONTEST_FEATURE_SPACE, IBSI_FEATURE_SPACE, FeatureTable
from ichpipe.pipeline.serial.clinical import ClinicalMapping, clinical_feature_names, map_clinical_row
from ichpipe.pipeline.serial.store import Store

__all__ = ["store_feature_table"]




def _store_imaging(features: Mapping[str, Any] | None, volume_ml: float) -> tuple[str, dict[str, float]]:
    """Imaging columns and feature space of one recorded first scan."""
    out: dict[str, float] = {}
    if features and isinstance(features.get("values"), Mapping):
        for key, value in features["values"].items():
            out[f"HM_{key}"] = math.nan if value is None else float(value)
        out.setdefault("HM_volume_ml", volume_ml)
        return str(features.get("feature_space") or IBSI_FEATURE_SPACE), out
    # Imported tables (timeline import): flat values in the table's units.
    out["HM_volume_ml"] = volume_ml
    for key, value in (features or {}).items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        if key == "ED_volume_mm3":
            out["ED_volume_ml"] = float(value) / 1000.0
        else:
            out[key] = float(value)
    return CONTEST_FEATURE_SPACE, out


def store_feature_table(
    store: Store,
    *,
    clinical_mapping: ClinicalMapping,
    allow_post_baseline: bool = False,
    patients: Iterable[str] | None = None,
) -> FeatureTable:
    """The feature table of the patients in the results store (their first scan).

    Imaging columns come from the first scan's recorded features
    (``ichpipe run`` or a timeline import); clinical columns from the stored
    clinical record through ``clinical_mapping``; ``onset_to_scan_h`` from the
    timeline when the record has none.

    Raises
    ------
    PredictorInputError
        If a requested patient has no dated scan, or the rows mix feature spaces.
    """
    from ichpipe.pipeline.serial.store import list_clinical, list_measurements
    from ichpipe.pipeline.serial.timeline import load_timelines

    wanted = None if patients is None else set(patients)
    series = {m.series_instance_uid: m for m in list_measurements(store)}
    clinical = list_clinical(store)
    clinical_names = [
        n for n in clinical_feature_names(allow_post_baseline=allow_post_baseline) if n in clinical_mapping.fields
    ]
    if "onset_to_scan_h" not in clinical_names:  # from the timeline when the mapping has no column for it
        clinical_names.append("onset_to_scan_h")
    rows: dict[str, dict[str, float]] = {}
    spaces: dict[str, int] = {}
    reasons: dict[str, tuple[str, ...]] = {}
    for timeline in load_timelines(store):
        pid = timeline.patient_id
        if wanted is not None and pid not in wanted:
            continue
        if not timeline.scans:
            continue
        first = timeline.scans[0]
        measurement = series[first.series_instance_uid]
        space, imaging = _store_imaging(measurement.features, measurement.volume_ml)
        if not measurement.features:
            reasons[pid] = ("its first scan has no recorded imaging features (volume only)",)
        spaces[space] = spaces.get(space, 0) + 1
        record = clinical.get((pid, timeline.issuer_of_patient_id))
        if record is None or not record.clinical:
            reasons[pid] = (*reasons.get(pid, ()), "the store holds no clinical values for it")
        raw = dict(record.clinical or {}) if record is not None else {}
        values = map_clinical_row(raw, clinical_mapping, where="stored clinical record")
        row: dict[str, float] = {}
        for n in clinical_names:
            value = values.get(n)
            row[n] = math.nan if value is None else float(value)
        if math.isnan(row["onset_to_scan_h"]):
            hours = first.hours_from_onset
            row["onset_to_scan_h"] = math.nan if hours is None else float(hours)
        row.update(imaging)
        rows[pid] = row
    if wanted is not None and (absent := wanted - set(rows)):
        raise PredictorInputError(
            f"{len(absent)} requested patient(s) have no dated scan in the results store."
        )
    if len(spaces) > 1:
        detail = ", ".join(f"{n} patient(s) in {s}" for s, n in sorted(spaces.items()))
        raise PredictorInputError(f"The results store mixes feature spaces ({detail}); select patients of one.")
    names: list[str] = list(clinical_names)
    for row in rows.values():
        names += [n for n in row if n not in names]
    ids = tuple(sorted(rows))
    values_array = np.asarray([[rows[p].get(n, math.nan) for n in names] for p in ids], dtype=np.float64)
    return FeatureTable(
        ids, tuple(names), values_array.reshape(len(ids), len(names)), next(iter(spaces), None),
        reasons={p: r for p, r in reasons.items() if p in rows},
    )
