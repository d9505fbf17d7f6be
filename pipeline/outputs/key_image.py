"""The key image: the slice with the largest hematoma area, in the brain window,
with the hematoma outlined and the volume and ABC/2 printed on it.

Returned as an RGB uint8 array so the same picture becomes a PNG for people
and a DICOM Secondary Capture for PACS users.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from ichpipe.dicom_io.window import WindowPreset, apply_window

__all__ = ["render_key_image"]

CONTOUR_RGB = (255, 40, 40)
TEXT_RGB = (255, 255, 0)


def render_key_image(
    hu_slice: npt.NDArray[np.floating],
    mask_slice: npt.NDArray[np.bool_],
    *,
    window: WindowPreset,
    lines: list[str],
    scale: int = 1,
) -> npt.NDArray[np.uint8]:
    """Render one slice with the hematoma contour and caption lines.

    Parameters
    ----------
    hu_slice:
        2D HU array (rows, columns).
    mask_slice:
        2D bool hematoma mask of the same shape.
    window:
        Display window (brain by default).
    lines:
        Caption lines drawn top-left (volume, ABC/2, "not for diagnosis"...).
    scale:
        Integer upscaling factor for small matrices (1 keeps the size).

    Returns
    -------
    numpy.ndarray
        uint8 array (rows*scale, columns*scale, 3).
    """
    if hu_slice.shape != mask_slice.shape or hu_slice.ndim != 2:
        raise ValueError("Arguments 'hu_slice' and 'mask_slice' must be 2D arrays of the same shape.")
    if scale < 1:
        raise ValueError("Argument 'scale' must be at least 1.")
    grey = apply_window(hu_slice, window)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    mask = mask_slice.astype(bool)
    if mask.any():
        edge = mask & ~ndimage.binary_erosion(mask)
        if min(mask.shape) >= 256:  # a 2-pixel line stays visible on full-size slices
            edge = ndimage.binary_dilation(edge)
        rgb[edge] = CONTOUR_RGB
    if scale > 1:
        rgb = np.kron(rgb, np.ones((scale, scale, 1), dtype=np.uint8))
    image = Image.fromarray(rgb, mode="RGB")
    draw = ImageDraw.Draw(image)
    size = max(10, image.height // 32)
    try:
        font: ImageFont.ImageFont | ImageFont.FreeTypeFont = ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType support for the default font
        font = ImageFont.load_default()
    y = 4
    for line in lines:
        draw.text((6, y), line, fill=TEXT_RGB, font=font, stroke_width=1, stroke_fill=(0, 0, 0))
        y += int(size * 1.3)
    return np.asarray(image, dtype=np.uint8)
