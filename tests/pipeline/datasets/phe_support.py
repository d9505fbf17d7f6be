"""Synthetic PHE-SICH-like data: brain-windowed slices with a known clot, oedema rim and skull, and a fake folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from ichpipe.dicom_io.window import WindowPreset

WINDOW = WindowPreset(width=120.0, level=40.0)
SIZE = 256


def slice_hu(
    *, clot: bool = True, ring_closed: bool = True, calcification: bool = False, seed: int = 0, noise: float = 3.0,
    clot_hu: float = 65.0, brain_hu: float = 30.0, blur_px: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hu, clot mask, oedema mask) of one 256x256 axial slice, blurred like a scanner (partial volume)."""
    rng = np.random.default_rng(seed)
    y, x = np.indices((SIZE, SIZE), dtype=np.float64)
    r = np.hypot((y - 128) / 100.0, (x - 128) / 85.0)
    hu = np.full((SIZE, SIZE), -1000.0)
    hu[r < 1.08] = 1000.0
    inside = r < 1.0
    hu[inside] = brain_hu
    ventricles = inside & ((np.hypot((y - 120) / 30.0, (x - 112) / 6.0) < 1) | (np.hypot((y - 120) / 30.0,
                                                                                        (x - 144) / 6.0) < 1))
    hu[ventricles] = 7.0
    clot_mask = np.hypot((y - 95) / 14.0, (x - 175) / 11.0) < 1.0 if clot else np.zeros((SIZE, SIZE), bool)
    rim = (np.hypot((y - 95) / 20.0, (x - 175) / 17.0) < 1.0) & ~(np.hypot((y - 95) / 16.0, (x - 175) / 13.0) < 1.0)
    if not ring_closed:
        rim &= x > 175  # a C-shape on one side only
    hu[rim] = 20.0
    hu[clot_mask] = clot_hu
    if calcification:
        hu[(y - 140) ** 2 + (x - 100) ** 2 < 9] = 400.0
    if blur_px > 0:
        hu = ndimage.gaussian_filter(hu, blur_px)
    hu = hu + rng.normal(0.0, noise, size=hu.shape) * inside
    return hu.astype(np.float32), clot_mask, rim


def to_png(hu: np.ndarray, *, width: float = 120.0, level: float = 40.0, offset: float = 0.4375) -> np.ndarray:
    """The slice as the PHE PNGs were made: integer HU, ``floor(255 / W * (HU - low) + offset)``, clipped."""
    k = np.clip(np.rint(hu) - (level - width / 2.0), 0.0, width)
    return np.clip(np.floor(255.0 / width * k + offset), 0, 255).astype(np.uint8)


BOX = (150, 70, 200, 120)  # x0, y0, x1, y1 around the synthetic clot

#: slice index -> (kind, options); boxed slices are 4, 5 and 6.
LAYOUT: dict[int, tuple[str, dict[str, object]]] = {
    0: ("blank", {}),
    1: ("plain", {"clot": False}),
    2: ("plain", {"clot": False}),
    3: ("plain", {"clot": True}),  # blood one slice beyond the boxed run
    4: ("boxed", {"clot": True, "ring": "closed"}),
    5: ("boxed", {"clot": True, "ring": "open"}),
    6: ("boxed", {"clot": True, "ring": "closed", "clot_hu": 34.0}),  # isodense clot: nothing above threshold
    7: ("plain", {"clot": False}),
    8: ("plain", {"clot": False}),
    9: ("plain", {"clot": False, "calcification": True}),
}


def _voc(path: Path, box: tuple[int, int, int, int] | None) -> None:
    obj = ""
    if box is not None:
        obj = (
            "<object><name>a</name><bndbox>"
            f"<xmin>{box[0]}</xmin><ymin>{box[1]}</ymin><xmax>{box[2]}</xmax><ymax>{box[3]}</ymax>"
            "</bndbox></object>"
        )
    path.write_text(f"<annotation><folder>VOC2007</folder>{obj}</annotation>", encoding="utf-8")


def write_patient(root: Path, patient: str, *, seed: int = 0, clot_scale: float = 1.0,
                  with_boxes: bool = True) -> dict[int, np.ndarray]:
    """Write one patient; returns the true clot mask of each slice."""
    for sub in ("images", "boxes", "oedema_masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    truth: dict[int, np.ndarray] = {}
    for k, (kind, opts) in LAYOUT.items():
        name = f"{patient}_{k:02d}"
        if kind == "blank":
            grey = np.zeros((256, 256), dtype=np.uint8)
            clot = oedema = np.zeros((256, 256), dtype=bool)
        else:
            hu, clot, oedema = slice_hu(
                clot=bool(opts.get("clot", False)), ring_closed=opts.get("ring") != "open",
                calcification=bool(opts.get("calcification", False)), seed=seed * 100 + k,
                clot_hu=float(opts.get("clot_hu", 65.0)),  # type: ignore[arg-type]
            )
            grey = to_png(hu)
            if kind != "boxed":
                oedema = np.zeros_like(oedema)
        truth[k] = clot
        Image.fromarray(grey).save(root / "images" / f"{name}.png")
        Image.fromarray((oedema * 255).astype(np.uint8)).save(root / "oedema_masks" / f"{name}.png")
        if with_boxes:
            _voc(root / "boxes" / f"{name}.xml", BOX if kind == "boxed" else None)
    return truth


def write_cohort(root: Path, n: int = 8) -> dict[str, dict[int, np.ndarray]]:
    """Write patients 0001..n and, as slice 0001_10 without a box, every grey level of the window once
    (so the width fit can identify the window); returns each patient's true clot masks."""
    truth = {f"{k:04d}": write_patient(root, f"{k:04d}", seed=k) for k in range(1, n + 1)}
    ramp = np.zeros((SIZE, SIZE), dtype=np.uint8)
    ramp[:20, :30] = to_png(np.arange(-300, 300, dtype=np.float32).reshape(20, 30))
    Image.fromarray(ramp).save(root / "images" / "0001_10.png")
    (root / "boxes" / "0001_10.xml").write_text("<annotation></annotation>", encoding="utf-8")
    return truth
