"""Who and when: patient, study, accession, times and UIDs of a phantom study.

Defaults are deterministic. Patient identity (ID, name, birth date, sex)
comes from the seed alone, so studies made with one seed belong to one
patient. Accession number, study ID and every UID come from a digest of all
the options, so two different studies never share them, while the same
options always give the same values.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pydicom.uid import UID, generate_uid

from ichpipe.pipeline.synthetic.phantom.spec import PhantomSpec
from ichpipe.pipeline.synthetic.phantom.stack_plan import rng_for

__all__ = ["StudyIdentity", "resolve_identity"]

_UID_NAMESPACE = "ichpipe-phantom"


@dataclass(frozen=True)
class StudyIdentity:
    """Identity and timing of one phantom study.

    Attributes
    ----------
    patient_id, patient_name, patient_birth_date, patient_sex:
        Patient module values.
    accession_number, study_id:
        Study identifiers.
    acquisition_datetime:
        When the axial series was acquired.
    study_datetime:
        When the study started (two minutes before the acquisition).
    study_instance_uid, frame_of_reference_uid:
        Study-level UIDs.
    digest:
        SHA-256 of the options; the entropy of every other UID.
    """

    patient_id: str
    patient_name: str
    patient_birth_date: date
    patient_sex: str
    accession_number: str
    study_id: str
    acquisition_datetime: datetime
    study_datetime: datetime
    study_instance_uid: UID
    frame_of_reference_uid: UID
    digest: str

    def uid(self, *parts: object) -> UID:
        """A UID unique to this study and ``parts`` (``"series", "main"``...), the same every run."""
        return generate_uid(entropy_srcs=[_UID_NAMESPACE, self.digest, *map(str, parts)])

    def series_uid(self, role: str) -> UID:
        """SeriesInstanceUID of the series playing ``role`` (``main``, ``bone``...)."""
        return self.uid("series", role)

    def sop_uid(self, role: str, index: int, copy: int = 0) -> UID:
        """SOPInstanceUID of image ``index`` (planned index) of series ``role``; ``copy`` for duplicates."""
        return self.uid("sop", role, index, copy)


def resolve_identity(spec: PhantomSpec) -> StudyIdentity:
    """Fill in every identity value the spec leaves out (see the module docstring)."""
    digest = spec.digest()
    patient_rng = rng_for(spec.seed, "patient")
    number = int(patient_rng.integers(10_000_000, 99_999_999))
    patient_id = spec.patient_id or f"PH{number}"
    patient_name = spec.patient_name or f"PHANTOM^P{number}"
    birth = date(1940, 1, 1) + timedelta(days=int(patient_rng.integers(0, 45 * 365)))
    sex = "M" if patient_rng.uniform() < 0.55 else "F"
    if spec.acquisition_datetime is not None:
        acquired = spec.acquisition_datetime.replace(microsecond=0)
    else:
        when_rng = rng_for(spec.seed, "acquisition-datetime")
        acquired = datetime(2025, 1, 1) + timedelta(
            days=int(when_rng.integers(0, 365)), seconds=int(when_rng.integers(0, 86_400))
        )
    accession = spec.accession_number or f"A{int(digest[:12], 16) % 10**10:010d}"
    study_id = str(int(digest[12:20], 16) % 100_000)
    study_uid = (
        UID(spec.study_instance_uid)
        if spec.study_instance_uid
        else generate_uid(entropy_srcs=[_UID_NAMESPACE, digest, "study"])
    )
    frame_uid = generate_uid(entropy_srcs=[_UID_NAMESPACE, digest, "frame-of-reference"])
    return StudyIdentity(
        patient_id=patient_id,
        patient_name=patient_name,
        patient_birth_date=birth,
        patient_sex=sex,
        accession_number=accession,
        study_id=study_id,
        acquisition_datetime=acquired,
        study_datetime=acquired - timedelta(minutes=2),
        study_instance_uid=study_uid,
        frame_of_reference_uid=frame_uid,
        digest=hashlib.sha256(digest.encode("ascii")).hexdigest(),
    )
