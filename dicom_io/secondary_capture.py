"""DICOM Secondary Capture key image (RGB) for a PACS user, with highdicom.

The key image (for example a CT slice with the hematoma outline drawn in)
goes into the study of the source CT (same StudyInstanceUID, patient and
study attributes copied from the source header by
:meth:`highdicom.sc.SCImage.from_ref_dataset`) as a new series, references
the CT images it was rendered from, and says in DerivationDescription and
ImageComments that it is not for diagnosis.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from ichpipe import __version__
from ichpipe.dicom_io._atomic import set_series_datetime, write_dataset_atomic
from ichpipe.dicom_io._privacy import no_person_name_warnings
from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.dicom_io.deidentify import deidentified_copy
from ichpipe.dicom_io.seg import checked_display_values
from ichpipe.errors import OutputBuildError

__all__ = ["NOT_FOR_DIAGNOSIS", "build_secondary_capture", "write_secondary_capture"]

#: Sentence written into every key image's ImageComments and DerivationDescription.
NOT_FOR_DIAGNOSIS = "Research use only; not for diagnosis."

# Letter of each patient axis direction (LPS), per sign: +x L, -x R, +y P, -y A, +z H, -z F.
_AXIS_LETTERS = (("R", "L"), ("A", "P"), ("F", "H"))


def _orientation_letter(direction: Sequence[float]) -> str:
    """The PatientOrientation letter of the main axis of a direction cosine vector."""
    vec = np.asarray(direction, dtype=np.float64)
    axis = int(np.argmax(np.abs(vec)))
    return _AXIS_LETTERS[axis][1 if vec[axis] > 0 else 0]


def _patient_orientation(ref: Dataset) -> tuple[str, str]:
    """(row, column) PatientOrientation of an image drawn in the source slice's orientation."""
    iop = ref.get("ImageOrientationPatient")
    if iop is None:
        shared = (ref.get("SharedFunctionalGroupsSequence") or [Dataset()])[0]
        plane = (shared.get("PlaneOrientationSequence") or [Dataset()])[0]
        iop = plane.get("ImageOrientationPatient")
    if iop is None or len(iop) != 6:
        # axial default: rows run to the patient's left, columns to posterior
        return ("L", "P")
    values = [float(v) for v in iop]
    return (_orientation_letter(values[:3]), _orientation_letter(values[3:]))


def _check_image(image: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"Argument 'image' must be an RGB array of shape (rows, columns, 3); got {arr.shape}.")
    if arr.dtype != np.uint8:
        raise ValueError(f"Argument 'image' must have dtype uint8; got {arr.dtype}.")
    return np.ascontiguousarray(arr)


def _reference_of(source: CTVolume | Dataset) -> tuple[Dataset, list[Dataset]]:
    """The header to copy patient and study from, and the images the key image derives from."""
    if isinstance(source, CTVolume):
        seen: dict[str, Dataset] = {}
        for sh in source.slices:
            seen.setdefault(sh.sop_instance_uid, sh.dataset)
        return checked_display_values(source.first), list(seen.values())
    if isinstance(source, Dataset):
        return checked_display_values(source), [source]
    raise TypeError(f"Argument 'source' must be a CTVolume or a pydicom Dataset; got {type(source).__name__}.")


def build_secondary_capture(
    image: npt.ArrayLike,
    source: CTVolume | Dataset,
    *,
    derived_from: Sequence[Dataset] | None = None,
    series_number: int = 902,
    series_description: str = "ICH key images (ichpipe, not for diagnosis)",
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
    instance_number: int = 1,
    manufacturer: str = "ichpipe",
    manufacturer_model_name: str = "ichpipe",
    software_versions: str = __version__,
    derivation_description: str | None = None,
    patient_orientation: tuple[str, str] | None = None,
    burned_in_annotation: bool = False,
    body_part_examined: str | None = None,
    series_datetime: datetime | None = None,
) -> hd.sc.SCImage:
    """Build an RGB Secondary Capture key image in the study of ``source``.

    Parameters
    ----------
    image:
        RGB pixels, uint8, shape (rows, columns, 3).
    source:
        The source CT: a :class:`~ichpipe.dicom_io.assemble.CTVolume` or one of its
        slice headers. Patient and study attributes are copied from it.
    derived_from:
        Headers of the CT images the key image was rendered from (listed in
        SourceImageSequence); default: the given header, or for a volume its
        first slice.
    series_number, series_description, series_instance_uid, sop_instance_uid, instance_number:
        Identity of the new key-image series and instance (UIDs generated when ``None``).
    manufacturer, manufacturer_model_name, software_versions:
        This software, as the equipment that made the image.
    derivation_description:
        How the image was made; :data:`NOT_FOR_DIAGNOSIS` is appended.
    patient_orientation:
        (row, column) PatientOrientation letters; default: those of the source
        slice orientation (the image is assumed drawn as the slice is stored).
    burned_in_annotation:
        Whether the pixels show text that identifies the patient (BurnedInAnnotation).
    body_part_examined:
        BodyPartExamined of the new series; default: the source's, else
        ``"HEAD"`` (ichpipe reads head CT). Without it, validators ask for
        Laterality.
    series_datetime:
        SeriesDate and SeriesTime of the key-image series (when this run made it); default now.

    Returns
    -------
    highdicom.sc.SCImage
        The Secondary Capture instance.

    Raises
    ------
    ValueError
        If ``image`` is not a uint8 RGB array.
    TypeError
        If ``source`` is neither a CTVolume nor a Dataset.
    OutputBuildError
        If highdicom refuses the source header, with its reason (an
        :class:`~ichpipe.errors.OutputError`).
    """
    pixels = _check_image(image)
    ref, default_sources = _reference_of(source)
    sources = list(derived_from) if derived_from is not None else default_sources[:1]
    orientation = patient_orientation or _patient_orientation(ref)
    description = f"{derivation_description.rstrip('. ')}. " if derivation_description else ""
    description += f"Rendered by ichpipe {__version__} from CT series {ref.get('SeriesInstanceUID', '?')}. "
    description += NOT_FOR_DIAGNOSIS
    try:
        with no_person_name_warnings():
            sc = hd.sc.SCImage.from_ref_dataset(
                ref_dataset=ref,
                pixel_array=pixels,
                photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
                bits_allocated=8,
                coordinate_system=hd.CoordinateSystemNames.PATIENT,
                series_instance_uid=series_instance_uid or generate_uid(),
                series_number=series_number,
                sop_instance_uid=sop_instance_uid or generate_uid(),
                instance_number=instance_number,
                manufacturer=manufacturer,
                patient_orientation=orientation,
                transfer_syntax_uid=ExplicitVRLittleEndian,
                series_description=series_description,
                manufacturer_model_name=manufacturer_model_name,
                software_versions=software_versions,
            )
    except (ValueError, TypeError, AttributeError) as exc:
        raise OutputBuildError(
            f"highdicom could not build the Secondary Capture image ({type(exc).__name__}: {exc})."
        ) from exc
    sc.DerivationDescription = description[:1024]
    sc.ImageComments = NOT_FOR_DIAGNOSIS
    sc.BurnedInAnnotation = "YES" if burned_in_annotation else "NO"
    sc.BodyPartExamined = body_part_examined or str(ref.get("BodyPartExamined", "") or "") or "HEAD"
    set_series_datetime(sc, series_datetime)
    items = []
    for src in sources:
        item = Dataset()
        item.ReferencedSOPClassUID = src.SOPClassUID
        item.ReferencedSOPInstanceUID = src.SOPInstanceUID
        items.append(item)
    if items:
        sc.SourceImageSequence = items
    return sc


def write_secondary_capture(
    image: npt.ArrayLike,
    source: CTVolume | Dataset,
    path: str | os.PathLike[str],
    *,
    deidentify: bool = False,
    **options: Any,
) -> Path:
    """Build a key image with :func:`build_secondary_capture` and write it atomically to ``path``.

    Parameters
    ----------
    image, source:
        As for :func:`build_secondary_capture`.
    path:
        Output file; its folder must exist. Build it from UIDs, never from
        free-text tags.
    deidentify:
        Write a de-identified copy (:func:`ichpipe.dicom_io.deidentify.deidentified_copy`:
        the PS3.15 Basic Profile, UIDs kept); the source headers are untouched.
    **options:
        Keyword-only options of :func:`build_secondary_capture`.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If ``image`` is not a uint8 RGB array.
    OutputError
        If the image cannot be built or the file cannot be written; no partial
        file is left.
    """
    sc = build_secondary_capture(image, source, **options)
    out: Dataset = deidentified_copy(sc) if deidentify else sc
    return write_dataset_atomic(out, path, what="DICOM Secondary Capture")
