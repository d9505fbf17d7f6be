"""Read the PHE-SICH-CT-IDS development subset: slices, VOC boxes and perihematomal-oedema masks.

Layout (``../shared/data/phe-sich-ct-ids-dev/``, see its README)::

    images/PPPP_SS.png         512x512 8-bit brain-windowed slice SS of patient PPPP
    boxes/PPPP_SS.xml          Pascal VOC: zero or one <bndbox> around the haemorrhage region
    oedema_masks/PPPP_SS.png   perihematomal oedema (the dark rim), 0/255; NOT the blood

Slice numbers run from the skull base upwards (``_00`` is the lowest slice).
Patient ``0013`` has no box files at all (the source renamed them ``013_SS.xml``
and they were lost): its slices are *unannotated*, not negative.
:attr:`PheSlice.box_state` keeps the two apart.

No pixel spacing or slice thickness comes with the PNGs. The slices are stored rotated: in all
51 patients the head rest (behind the head) is on the right (:func:`posterior_side`), i.e. anterior
is to the left, where DICOM axial images put it at the top; left-right cannot be told.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

from ichpipe.errors import DicomInputError

__all__ = [
    "DEFAULT_PHE_DIR",
    "Box",
    "BoxState",
    "PheSlice",
    "iter_images",
    "list_patients",
    "list_slices",
    "posterior_side",
    "read_grey",
    "read_voc_boxes",
]

#: Where the data set is expected: ``../shared/data/phe-sich-ct-ids-dev`` beside the repository root.
DEFAULT_PHE_DIR = Path(__file__).resolve().parents[4] / "shared" / "data" / "phe-sich-ct-ids-dev"

BoxState = Literal["boxed", "no_box", "unannotated"]

_NAME = re.compile(r"^(\d{4})_(\d{2})\.png$")


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixel coordinates, inclusive on both ends (VOC convention).

    Attributes
    ----------
    x0, y0, x1, y1:
        Column and row of the top-left and bottom-right pixels.
    """

    x0: int
    y0: int
    x1: int
    y1: int

    def __post_init__(self) -> None:
        if self.x1 < self.x0 or self.y1 < self.y0:
            raise ValueError(f"Argument 'x1'/'y1' must not be below 'x0'/'y0'; got {self}.")

    @property
    def area(self) -> int:
        """Pixels inside the box."""
        return (self.x1 - self.x0 + 1) * (self.y1 - self.y0 + 1)

    def slices(self) -> tuple[slice, slice]:
        """Row and column slices selecting the box from a 2D array."""
        return slice(self.y0, self.y1 + 1), slice(self.x0, self.x1 + 1)

    def mask(self, shape: tuple[int, int]) -> npt.NDArray[np.bool_]:
        """A boolean image of ``shape`` that is True inside the box (clipped to the image)."""
        out = np.zeros(shape, dtype=bool)
        out[self.slices()] = True
        return out

    def grown(self, pixels: int, shape: tuple[int, int]) -> Box:
        """The box grown by ``pixels`` on every side, clipped to an image of ``shape``."""
        return Box(
            max(0, self.x0 - pixels), max(0, self.y0 - pixels),
            min(shape[1] - 1, self.x1 + pixels), min(shape[0] - 1, self.y1 + pixels),
        )


def read_voc_boxes(path: Path) -> list[Box]:
    """Every ``<bndbox>`` of a Pascal VOC annotation file (an empty list when it has none).

    Raises
    ------
    DicomInputError
        If the file is not well-formed XML or a box coordinate is not a number.
    """
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise DicomInputError(f"VOC annotation {path} cannot be read ({type(exc).__name__}: {exc}).") from exc
    boxes: list[Box] = []
    for node in root.iter("bndbox"):
        try:
            x0, y0, x1, y1 = (round(float(node.findtext(k, ""))) for k in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError as exc:
            raise DicomInputError(f"VOC annotation {path} has a box coordinate that is not a number.") from exc
        boxes.append(Box(x0, y0, x1, y1))
    return boxes


def read_grey(path: Path) -> npt.NDArray[np.uint8]:
    """A PNG as a 2D uint8 array (grey, or the maximum over RGB channels for a colour mask).

    Raises
    ------
    DicomInputError
        If the file cannot be read as an image.
    """
    try:
        with Image.open(path) as img:
            arr = np.asarray(img)
    except (OSError, UnidentifiedImageError) as exc:
        raise DicomInputError(f"PNG {path} cannot be read ({type(exc).__name__}: {exc}).") from exc
    if arr.ndim == 3:
        arr = arr[..., :3].max(axis=-1)
    return np.ascontiguousarray(arr, dtype=np.uint8)


@dataclass(frozen=True)
class PheSlice:
    """One slice of the data set and its annotations.

    Attributes
    ----------
    patient_id:
        Four-digit patient number (``"0001"``).
    index:
        Slice number within the patient (0 = lowest).
    image_path, box_path, oedema_path:
        Files; ``box_path`` is ``None`` when the box file is missing.
    """

    patient_id: str
    index: int
    image_path: Path
    box_path: Path | None
    oedema_path: Path | None

    @property
    def name(self) -> str:
        """``PPPP_SS``, the file stem."""
        return f"{self.patient_id}_{self.index:02d}"

    @cached_property
    def boxes(self) -> tuple[Box, ...]:
        """The VOC boxes (empty when there is no box or no box file)."""
        return tuple(read_voc_boxes(self.box_path)) if self.box_path is not None else ()

    @property
    def box_state(self) -> BoxState:
        """``boxed``, ``no_box`` (a box file without box) or ``unannotated`` (no box file)."""
        if self.box_path is None:
            return "unannotated"
        return "boxed" if self.boxes else "no_box"

    def image(self) -> npt.NDArray[np.uint8]:
        """The 8-bit slice."""
        return read_grey(self.image_path)

    def oedema(self) -> npt.NDArray[np.bool_]:
        """The perihematomal-oedema mask (all False when there is no mask file)."""
        if self.oedema_path is None:
            return np.zeros(self.image().shape, dtype=bool)
        return read_grey(self.oedema_path) > 0


def list_slices(root: Path = DEFAULT_PHE_DIR) -> list[PheSlice]:
    """Every slice of the data set, sorted by patient and slice number.

    Raises
    ------
    DicomInputError
        If ``root/images`` is not a folder or holds no ``PPPP_SS.png`` file.
    """
    images = Path(root) / "images"
    if not images.is_dir():
        raise DicomInputError(f"PHE-SICH folder {root} has no 'images' folder; point 'root' at the data set.")
    out: list[PheSlice] = []
    for path in sorted(images.iterdir()):
        match = _NAME.match(path.name)
        if match is None:
            continue
        stem = path.stem
        box = Path(root) / "boxes" / f"{stem}.xml"
        oedema = Path(root) / "oedema_masks" / f"{stem}.png"
        out.append(
            PheSlice(
                patient_id=match.group(1),
                index=int(match.group(2)),
                image_path=path,
                box_path=box if box.is_file() else None,
                oedema_path=oedema if oedema.is_file() else None,
            )
        )
    if not out:
        raise DicomInputError(f"PHE-SICH folder {images} holds no PPPP_SS.png slice.")
    return sorted(out, key=lambda s: (s.patient_id, s.index))


def list_patients(slices: list[PheSlice]) -> dict[str, list[PheSlice]]:
    """The slices grouped by patient (sorted by slice number), patients in sorted order."""
    groups: dict[str, list[PheSlice]] = {}
    for s in sorted(slices, key=lambda s: (s.patient_id, s.index)):
        groups.setdefault(s.patient_id, []).append(s)
    return groups


def iter_images(slices: list[PheSlice]) -> Iterator[tuple[PheSlice, npt.NDArray[np.uint8]]]:
    """Each slice with its image, read one at a time."""
    for s in slices:
        yield s, s.image()


def posterior_side(grey: npt.NDArray[np.uint8]) -> Literal["up", "down", "left", "right"] | None:
    """Which image side is posterior, from the head rest: the saturated arc outside the head.

    The patient lies on the head rest, so it is behind the head. Returns ``None`` when no arc of
    at least 50 saturated pixels lies outside the head (its largest non-zero region, filled,
    grown by 3 pixels).
    """
    labels, n = ndimage.label(grey > 0)
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    head = ndimage.binary_fill_holes(labels == int(np.argmax(sizes)))
    arc = (grey == 255) & ~ndimage.binary_dilation(head, iterations=3)
    if int(arc.sum()) < 50:
        return None
    rows, cols = np.nonzero(head)
    arc_rows, arc_cols = np.nonzero(arc)
    dy, dx = arc_rows.mean() - rows.mean(), arc_cols.mean() - cols.mean()
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"
