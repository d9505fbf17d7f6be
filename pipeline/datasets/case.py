"""A labelled case read from any dataset format, ready for training or evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.dicom_io.geometry import VolumeGeometry, compute_geometry
from ichpipe.dicom_io.window import WindowPreset

__all__ = ["CaseVolume", "Intensity", "grey_to_pseudo_hu", "uniform_geometry"]

Intensity = Literal["hu", "grey"]


def uniform_geometry(
    *, n_slices: int, rows: int, columns: int, pixel_spacing_mm: float, slice_thickness_mm: float
) -> VolumeGeometry:
    """An axial, evenly spaced geometry for images that carry none (PNG slices).

    Raises
    ------
    ValueError
        If a size or spacing is not positive.
    """
    for name, value in (("n_slices", n_slices), ("rows", rows), ("columns", columns)):
        if value < 1:
            raise ValueError(f"Argument '{name}' must be at least 1; got {value}.")
    for name, spacing in (("pixel_spacing_mm", pixel_spacing_mm), ("slice_thickness_mm", slice_thickness_mm)):
        if not spacing > 0:
            raise ValueError(f"Argument '{name}' must be positive; got {spacing}.")
    positions = np.zeros((n_slices, 3))
    positions[:, 2] = np.arange(n_slices) * slice_thickness_mm
    return compute_geometry(
        orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
        positions=positions,
        pixel_spacing=(pixel_spacing_mm, pixel_spacing_mm),
        rows=rows,
        columns=columns,
        slice_thickness_mm=slice_thickness_mm if n_slices == 1 else None,
    )


def grey_to_pseudo_hu(grey: npt.NDArray[np.floating], window: WindowPreset) -> npt.NDArray[np.float32]:
    """Undo a window: 0-255 grey levels to HU inside the window (what ``apply_window`` maps back to ``grey``).

    Values outside the window were clipped when the PNG was made and cannot
    be recovered: they come back as the window's ends.
    """
    return (np.float32(window.low) + np.asarray(grey, dtype=np.float32) * np.float32(window.width / 255.0)).astype(
        np.float32
    )


@dataclass(frozen=True)
class CaseVolume:
    """A labelled case: image, mask and geometry, slices sorted along the normal.

    Attributes
    ----------
    case_id, patient_id:
        From the manifest.
    image:
        float32 (slices, rows, columns): HU, or 0-255 grey levels when
        ``intensity`` is ``"grey"`` (PNG slices are already windowed).
    mask:
        bool (slices, rows, columns); all False when the case has no label.
    geometry:
        Geometry for volumes (DICOM: from the headers; NIfTI: from the header;
        PNG: from the manifest's spacings), ``None`` when unknown.
    intensity:
        ``"hu"`` or ``"grey"``.
    source:
        Free text from the manifest.
    ct:
        The assembled DICOM series (DICOM cases only).
    labelled:
        Whether the case had a mask.
    ignore:
        bool (slices, rows, columns): pixels left out of the training loss (uncertain labels),
        or ``None``.
    slice_weight:
        float32 (slices,): each slice's weight in the training loss (label confidence), or ``None``
        (all 1).
    neighbours:
        float32 (slices, 2, rows, columns): the slices below and above each slice in its original
        stack, in the image's intensity, for 2.5D training when the case holds only some slices
        of a stack; ``None``: the neighbours are the case's own slices (by geometry).
    """

    case_id: str
    patient_id: str
    image: npt.NDArray[np.float32]
    mask: npt.NDArray[np.bool_]
    geometry: VolumeGeometry | None
    intensity: Intensity
    source: str = ""
    ct: CTVolume | None = None
    labelled: bool = True
    ignore: npt.NDArray[np.bool_] | None = None
    slice_weight: npt.NDArray[np.float32] | None = None
    neighbours: npt.NDArray[np.float32] | None = None

    def __post_init__(self) -> None:
        if self.image.ndim != 3:
            raise ValueError(f"Argument 'image' must be 3D (slices, rows, columns); got shape {self.image.shape}.")
        if self.mask.shape != self.image.shape:
            raise ValueError(
                f"Argument 'mask' must have the image's shape {self.image.shape}; got {self.mask.shape}."
            )
        if self.ignore is not None and self.ignore.shape != self.image.shape:
            raise ValueError(
                f"Argument 'ignore' must have the image's shape {self.image.shape}; got {self.ignore.shape}."
            )
        if self.slice_weight is not None and (
            self.slice_weight.shape != (self.image.shape[0],)
            or not bool(np.all((self.slice_weight >= 0) & (self.slice_weight <= 1)))
        ):
            raise ValueError(
                f"Argument 'slice_weight' must hold one weight in [0, 1] per slice ({self.image.shape[0]})."
            )
        if self.neighbours is not None and self.neighbours.shape != (
            self.image.shape[0], 2, *self.image.shape[1:]
        ):
            raise ValueError(
                f"Argument 'neighbours' must be (slices, 2, rows, columns) for image {self.image.shape};"
                f" got {self.neighbours.shape}."
            )
        if self.intensity not in ("hu", "grey"):
            raise ValueError(f"Argument 'intensity' must be 'hu' or 'grey'; got {self.intensity!r}.")
        if self.geometry is not None and (self.geometry.n_slices, self.geometry.rows, self.geometry.columns) != (
            self.image.shape
        ):
            raise ValueError(
                f"Argument 'geometry' describes {self.geometry.n_slices}x{self.geometry.rows}x"
                f"{self.geometry.columns} voxels; the image is {self.image.shape}."
            )

    def as_ct_volume(self, window: WindowPreset) -> CTVolume:
        """The case as a :class:`~ichpipe.dicom_io.assemble.CTVolume` for a segmenter.

        DICOM cases return their assembled series. A grey-level case is turned
        into pseudo-HU with ``window`` (the window its PNGs were made with).

        Raises
        ------
        ValueError
            If the case has no geometry (a PNG case without spacings).
        """
        if self.ct is not None:
            return self.ct
        if self.geometry is None:
            raise ValueError(
                f"Argument 'self' (case {self.case_id}) has no geometry; give pixel_spacing_mm and"
                " slice_thickness_mm in the manifest."
            )
        hu = self.image if self.intensity == "hu" else grey_to_pseudo_hu(self.image, window)
        return CTVolume(
            hu=np.ascontiguousarray(hu, dtype=np.float32),
            geometry=self.geometry,
            slices=(),
            study_uid="",
            series_uid="",
            warnings=(),
        )
