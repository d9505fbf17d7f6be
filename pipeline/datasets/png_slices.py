"""Cases stored as the seed's PNG slices: one folder of 8-bit brain-window slices, one of binary labels.

Seed 000 exported each CT slice as a 512x512 8-bit PNG in the brain window
(0-255) and drew the hematoma label with Labelme as a binary PNG. A case is a
folder of slice PNGs; its labels are PNGs **of the same file names** in
another folder (any non-zero pixel is hematoma; palette, grey or RGB labels are
accepted). Slices are ordered by the numbers in their file names (natural
order), so ``slice_2.png`` comes before ``slice_10.png``.

PNGs carry no geometry: volumes need ``pixel_spacing_mm`` and
``slice_thickness_mm`` from the manifest (the seed's ``H x sum of areas``).

Two optional inputs carry label noise to training (manifest columns ``ignore`` and
``slice_weights``): a folder of masks with the slices' file names whose non-zero pixels are
left out of the loss, and a CSV ``file,weight`` of per-slice weights in [0, 1]. A third
(``neighbours``) carries each slice's neighbours in its original stack, for 2.5D training.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from ichpipe.errors import DicomInputError
from ichpipe.pipeline.datasets.case import CaseVolume, uniform_geometry

__all__ = ["natural_key", "read_png_case", "read_png_slice", "read_slice_weights"]

log = logging.getLogger(__name__)

_SUFFIXES = (".png",)


def natural_key(name: str) -> tuple[object, ...]:
    """Sort key that orders the numbers in a name by value (``s2`` before ``s10``)."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))


def read_png_slice(path: Path, *, label: bool = False) -> npt.NDArray[np.uint8]:
    """One PNG as a 2D uint8 array: grey levels, or 0/1 for a label.

    Raises
    ------
    DicomInputError
        If the file cannot be read, or an image slice is not 8-bit.
    """
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if label:
                arr = np.asarray(img)
                if arr.ndim == 3:
                    arr = arr[..., :3].max(axis=-1) if arr.shape[-1] >= 3 else arr[..., 0]
                return (arr != 0).astype(np.uint8)
            if mode not in ("L", "P", "RGB", "RGBA", "LA"):
                raise DicomInputError(
                    f"PNG slice {path.name} has mode {mode}; the seed's format is 8-bit grey (0-255 brain window)."
                )
            return np.asarray(img.convert("L"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DicomInputError(f"PNG {path} cannot be read ({type(exc).__name__}: {exc}).") from exc


def _pngs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DicomInputError(f"PNG folder {folder} does not exist or is not a folder.")
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(_SUFFIXES)),
        key=lambda p: natural_key(p.name),
    )


def read_slice_weights(path: Path) -> dict[str, float]:
    """Per-slice loss weights from a CSV with columns ``file`` and ``weight`` (file name -> weight in [0, 1]).

    Raises
    ------
    DicomInputError
        If the file cannot be read, lacks a column, or a weight is not a number in [0, 1].
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DicomInputError(f"Slice weights {path} cannot be read ({exc}).") from exc
    reader = csv.DictReader(text.splitlines())
    if not {"file", "weight"} <= set(reader.fieldnames or []):
        raise DicomInputError(f"Slice weights {path} must have the columns 'file' and 'weight'.")
    out: dict[str, float] = {}
    for number, row in enumerate(reader, start=2):
        try:
            value = float(row["weight"])
        except (TypeError, ValueError):
            value = math.nan
        if not 0.0 <= value <= 1.0:
            raise DicomInputError(f"Slice weights {path}, line {number}: weight {row['weight']!r} is not in [0, 1].")
        out[str(row["file"]).strip()] = value
    return out


def read_png_case(
    images: Path,
    labels: Path | None,
    *,
    case_id: str,
    patient_id: str,
    pixel_spacing_mm: float | None = None,
    slice_thickness_mm: float | None = None,
    source: str = "",
    ignore: Path | None = None,
    slice_weights: Path | None = None,
    neighbours: Path | None = None,
) -> CaseVolume:
    """Read a folder of PNG slices and the folder of their labels.

    Parameters
    ----------
    images:
        Folder of 8-bit PNG slices (brain window, 0-255).
    labels:
        Folder of label PNGs with the same file names; ``None`` for an
        unlabelled case. A slice without a label file counts as empty (logged).
    case_id, patient_id, source:
        From the manifest.
    pixel_spacing_mm, slice_thickness_mm:
        Geometry for volumes; without both the case has no geometry.
    ignore:
        Optional folder of masks with the slices' names: non-zero pixels are left out of the
        training loss (a slice without a file ignores nothing).
    slice_weights:
        Optional CSV ``file,weight`` (:func:`read_slice_weights`); unlisted slices weigh 1.
    neighbours:
        Optional folder with ``below/`` and ``above/``: a PNG per slice (same name), the slices
        next to it in its original stack (2.5D training); every slice must have both.

    Raises
    ------
    DicomInputError
        If a folder is missing or empty, a PNG is unreadable, sizes differ, or
        no label file matches any slice.
    """
    files = _pngs(Path(images))
    if not files:
        raise DicomInputError(f"Case {case_id}: PNG folder {images} holds no .png file.")
    grey = [read_png_slice(p) for p in files]
    shape = grey[0].shape
    odd = [p.name for p, g in zip(files, grey, strict=True) if g.shape != shape]
    if odd:
        raise DicomInputError(
            f"Case {case_id}: slices {', '.join(odd[:3])} differ in size from {files[0].name} {shape}."
        )
    mask = np.zeros((len(files), *shape), dtype=bool)
    if labels is not None:
        by_name = {p.name: p for p in _pngs(Path(labels))}
        found = 0
        for k, p in enumerate(files):
            lab = by_name.get(p.name)
            if lab is None:
                continue
            arr = read_png_slice(lab, label=True)
            if arr.shape != shape:
                raise DicomInputError(f"Case {case_id}: label {lab.name} is {arr.shape}; its slice is {shape}.")
            mask[k] = arr != 0
            found += 1
        if found == 0:
            raise DicomInputError(
                f"Case {case_id}: no label PNG in {labels} has the name of a slice in {images}; labels must"
                " have the same file names as their slices."
            )
        if found < len(files):
            log.info("case %s: %d of %d slices have no label file; taken as empty", case_id, len(files) - found,
                     len(files))
    ignored = None
    if ignore is not None:
        ignored = np.zeros(mask.shape, dtype=bool)
        by_name = {p.name: p for p in _pngs(Path(ignore))}
        for k, p in enumerate(files):
            if p.name in by_name:
                arr = read_png_slice(by_name[p.name], label=True)
                if arr.shape != shape:
                    raise DicomInputError(f"Case {case_id}: ignore mask {p.name} is {arr.shape}; its slice is {shape}.")
                ignored[k] = arr != 0
    weights = None
    if slice_weights is not None:
        table = read_slice_weights(slice_weights)
        weights = np.array([table.get(p.name, 1.0) for p in files], dtype=np.float32)
    context = None
    if neighbours is not None:
        context = np.empty((len(files), 2, *shape), dtype=np.float32)
        for side, sub in enumerate(("below", "above")):
            for k, p in enumerate(files):
                path = Path(neighbours) / sub / p.name
                if not path.is_file():
                    raise DicomInputError(f"Case {case_id}: slice {p.name} has no neighbour {sub}/{p.name} in"
                                          f" {neighbours}.")
                arr = read_png_slice(path)
                if arr.shape != shape:
                    raise DicomInputError(f"Case {case_id}: neighbour {sub}/{p.name} is {arr.shape}; its slice is"
                                          f" {shape}.")
                context[k, side] = arr
    geometry = None
    if pixel_spacing_mm is not None and slice_thickness_mm is not None:
        geometry = uniform_geometry(
            n_slices=len(files), rows=shape[0], columns=shape[1], pixel_spacing_mm=pixel_spacing_mm,
            slice_thickness_mm=slice_thickness_mm,
        )
    return CaseVolume(
        case_id=case_id,
        patient_id=patient_id,
        image=np.stack(grey).astype(np.float32),
        mask=mask,
        geometry=geometry,
        intensity="grey",
        source=source,
        labelled=labels is not None,
        ignore=ignored,
        slice_weight=weights,
        neighbours=context,
    )
