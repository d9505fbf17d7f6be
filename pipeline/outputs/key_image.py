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

__all__ = ["orientation_labels", "render_key_image"]

CONTOUR_RGB = (255, 40, 40)
TEXT_RGB = (255, 255, 0)
MARKER_RGB = (120, 220, 255)

# Letter of each patient axis direction (LPS), per sign: +x L, -x R, +y P, -y A, +z H, -z F.
_AXIS_LETTERS = (("R", "L"), ("A", "P"), ("F", "H"))


def _letter(direction: npt.ArrayLike) -> str:
    vec = np.asarray(direction, dtype=np.float64)
    axis = int(np.argmax(np.abs(vec)))
    return _AXIS_LETTERS[axis][1 if vec[axis] > 0 else 0]


def orientation_labels(row_direction: npt.ArrayLike, column_direction: npt.ArrayLike) -> tuple[str, str, str, str]:
    """Patient-direction letters of the image's (left, right, top, bottom) edges.

    The right edge lies along +row direction (the first triplet of
    ImageOrientationPatient), the bottom along +column direction.

    Examples
    --------
    >>> orientation_labels([1, 0, 0], [0, 1, 0])  # a standard axial slice
    ('R', 'L', 'A', 'P')
    """
    row = np.asarray(row_direction, dtype=np.float64)
    col = np.asarray(column_direction, dtype=np.float64)
    return _letter(-row), _letter(row), _letter(-col), _letter(col)


def _draw_at(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
             x: int, y: int, fx: float, fy: float, fill: tuple[int, int, int], *, stroke: int) -> None:
    """Draw ``text`` so that the point (fx, fy) of its box (0 left/top .. 1 right/bottom) lies at (x, y)."""
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font, stroke_width=stroke)
    draw.text((x - x0 - fx * (x1 - x0), y - y0 - fy * (y1 - y0)), text, fill=fill, font=font, stroke_width=stroke,
              stroke_fill=(0, 0, 0))


def render_key_image(
    hu_slice: npt.NDArray[np.floating],
    mask_slice: npt.NDArray[np.bool_],
    *,
    window: WindowPreset,
    lines: list[str],
    scale: int = 1,
    edge_labels: tuple[str, str, str, str] | None = None,
    footer: str | None = None,
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
    edge_labels:
        Patient-direction letters drawn at the middle of the (left, right,
        top, bottom) edges (:func:`orientation_labels`), so that left and right
        are never guessed.
    footer:
        A line drawn bottom-left (the slice number and position).

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
    width, height = image.size
    if edge_labels is not None:
        left, right, top, bottom = edge_labels
        big = max(size, int(size * 1.5))
        try:
            marker: ImageFont.ImageFont | ImageFont.FreeTypeFont = ImageFont.load_default(size=big)
        except TypeError:
            marker = font
        top_y = int(size * 1.3) * len(lines) + 6
        spots = ((left, 0.0, 0.5, 6, height // 2), (right, 1.0, 0.5, width - 6, height // 2),
                 (top, 0.5, 0.0, width // 2, top_y), (bottom, 0.5, 1.0, width // 2, height - 6))
        for text, fx, fy, x, y0 in spots:
            _draw_at(draw, text, marker, x, y0, fx, fy, MARKER_RGB, stroke=2)
    if footer:
        _draw_at(draw, footer, font, 6, height - 6, 0.0, 1.0, TEXT_RGB, stroke=1)
    return np.asarray(image, dtype=np.uint8)
