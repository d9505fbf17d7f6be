"""The Frame of Reference of a series: its slices' FrameOfReferenceUID, or one derived from the series.

CT images must carry a FrameOfReferenceUID (Frame of Reference module, Type 1)
and so must a DICOM SEG on them; some anonymised archives drop it. Volumes do
not need it (the geometry comes from ImagePositionPatient and
ImageOrientationPatient), so ``run`` measures as usual and writes the SEG with
a deterministic UID derived from the SeriesInstanceUID, recorded in the report
as derived.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from ichpipe.dicom_io.assemble import CTVolume

__all__ = ["frame_of_reference", "with_frame_of_reference"]


def frame_of_reference(volume: CTVolume) -> tuple[str, bool]:
    """The FrameOfReferenceUID of ``volume``'s slices, and whether it had to be derived.

    CT images must carry a FrameOfReferenceUID, and a DICOM SEG must too
    (highdicom refuses sources without one). Some anonymised archives drop
    it (a public CQ500 series has none). Then a deterministic UID is derived
    from the SeriesInstanceUID (``pydicom.uid.generate_uid`` with the series
    UID as entropy): running again gives the same UID, and every output of
    one series shares it. When the slices disagree, the first slice's UID is used.

    Returns
    -------
    (uid, derived)
        ``derived`` is True when no slice had a FrameOfReferenceUID.
    """
    for sh in volume.slices:
        uid = str(sh.dataset.get("FrameOfReferenceUID", "") or "").strip()
        if uid:
            return uid, False
    return str(generate_uid(entropy_srcs=["ichpipe derived Frame of Reference", volume.series_uid])), True


def with_frame_of_reference(ds: Dataset, uid: str) -> Dataset:
    """``ds`` itself when it has a FrameOfReferenceUID, else a shallow copy that has ``uid``."""
    if str(ds.get("FrameOfReferenceUID", "") or "").strip():
        return ds
    out = Dataset()
    for elem in ds:
        out.add(elem)
    out.FrameOfReferenceUID = uid
    return out
