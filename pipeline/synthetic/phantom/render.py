"""From a :class:`PhantomSpec` to a 3D model, and from the model to HU images.

:func:`build_model` draws the head, plans the axial stack and places the
hematomas; :func:`render_plane` samples the model on any image plane: noise-
free HU from the anatomy (with an optional bone flap removed), the hematomas
painted over it (with an optional hypodense rim), an in-plane point-spread
blur, a slow shading, correlated Gaussian noise, HU clipped to the scanner's
range [-1024, 3071], and the export's own changes (skull stripping, a clip).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ichpipe.pipeline.synthetic.phantom.head_model import HeadModel
from ichpipe.pipeline.synthetic.phantom.lesions import Hematoma, label_points, place_hematomas
from ichpipe.pipeline.synthetic.phantom.spec import PhantomSpec
from ichpipe.pipeline.synthetic.phantom.stack_plan import StackPlan, plan_gaps, plan_stack, plan_thickness, rng_for

__all__ = [
    "BONE_KERNEL",
    "FLAP_HU",
    "HU_MAX",
    "HU_MIN",
    "SOFT_KERNEL",
    "STRIPPED_HU",
    "STRIP_ABOVE_HU",
    "Kernel",
    "LocalizerImage",
    "PhantomModel",
    "apply_export",
    "build_model",
    "flap_bone",
    "montage",
    "reconstruct",
    "render_localizer",
    "render_plane",
    "sample_plane",
    "scan_field",
]

FloatArray = npt.NDArray[np.float64]
F32Array = npt.NDArray[np.float32]
LabelArray = npt.NDArray[np.uint8]

HU_MIN = -1024.0
HU_MAX = 3071.0

#: HU of the tissue that fills a removed bone flap (scalp-like soft tissue).
FLAP_HU = 35.0
#: Skull-stripping exports set every voxel above this (the skull) to :data:`STRIPPED_HU`.
STRIP_ABOVE_HU = 150.0
#: The value a stripped skull (and, for ``skull_air_stripped``, the air) is set to.
STRIPPED_HU = 0.0


@dataclass(frozen=True)
class Kernel:
    """How a reconstruction kernel looks: blur, edge enhancement and noise texture.

    Attributes
    ----------
    name:
        ConvolutionKernel value.
    blur_mm:
        Gaussian point-spread sigma in the image plane.
    sharpen:
        Unsharp-mask gain (0 for none).
    noise_factor:
        Noise sigma relative to the spec's ``noise_hu``.
    noise_correlation_mm:
        Sigma of the Gaussian that correlates the noise (smaller is sharper).
    """

    name: str
    blur_mm: float
    sharpen: float
    noise_factor: float
    noise_correlation_mm: float


SOFT_KERNEL = Kernel("STANDARD", blur_mm=0.4, sharpen=0.0, noise_factor=1.0, noise_correlation_mm=0.5)
BONE_KERNEL = Kernel("BONE", blur_mm=0.15, sharpen=0.6, noise_factor=3.0, noise_correlation_mm=0.1)


@dataclass(frozen=True)
class PhantomModel:
    """The continuous phantom and the plan of its axial series.

    Attributes
    ----------
    spec:
        The options it was built from.
    head:
        Head anatomy.
    plan:
        Planned slices of the axial series.
    hematomas:
        The hematomas (may be empty).
    target_volume_ml:
        The total volume asked for (or drawn); the exact voxel volume is in the truth.
    hematoma_hu:
        Mean hematoma attenuation used.
    scan_centre:
        LPS point on which the slab's image centres are centred.
    unit_samples:
        Uniform points in ``[-1, 1]^3`` used for Monte-Carlo volumes.
    """

    spec: PhantomSpec
    head: HeadModel
    plan: StackPlan
    hematomas: tuple[Hematoma, ...]
    target_volume_ml: float
    hematoma_hu: float
    scan_centre: FloatArray
    unit_samples: FloatArray


def build_model(spec: PhantomSpec) -> PhantomModel:
    """Draw the head, plan the axial stack and place the hematomas.

    Raises
    ------
    ValueError
        If the hematomas cannot be placed (the message names the argument to change).
    """
    anatomy_rng = rng_for(spec.seed, "anatomy")
    table_z = float(anatomy_rng.uniform(40.0, 160.0))
    head = HeadModel.from_rng(anatomy_rng, centre=np.array([0.0, -5.0, table_z]))
    slab_shift = float(anatomy_rng.uniform(-4.0, 4.0))
    pixel = spec.resolved_pixel_spacing_mm
    scan_centre = np.array([0.0, 0.0, head.centre[2] + slab_shift])
    n, step, uneven = spec.n_slices, spec.slice_spacing_mm, spec.uneven_spacing_mm
    plan = plan_stack(
        rows=spec.rows,
        columns=spec.columns,
        pixel_spacing_mm=pixel,
        gaps_mm=plan_gaps(n_slices=n, spacing_mm=step, uneven_spacing_mm=uneven),
        nominal_thickness_mm=plan_thickness(n_slices=n, spacing_mm=step, uneven_spacing_mm=uneven),
        tilt_deg=spec.gantry_tilt_deg,
        centre=scan_centre,
        dropped=() if spec.drop_slice is None else (spec.drop_slice,),
        duplicated=() if spec.duplicate_slice is None else (spec.duplicate_slice,),
    )
    lesion_rng = rng_for(spec.seed, "lesions")
    drawn_volume = float(math.exp(lesion_rng.uniform(math.log(8.0), math.log(60.0))))
    drawn_hu = float(lesion_rng.uniform(60.0, 80.0))
    if spec.volume_ml is not None:
        volume = float(spec.volume_ml)
    else:
        # A drawn volume must fit a short slab: at most a ball 0.6 x the slab high.
        slab = float(plan.offsets_mm[-1] - plan.offsets_mm[0])
        volume = min(drawn_volume, math.pi / 6.0 * (0.6 * slab) ** 3 / 1000.0)
    hu = float(spec.hematoma_hu) if spec.hematoma_hu is not None else drawn_hu
    offsets = plan.offsets_mm
    hematomas = place_hematomas(
        head=head,
        rng=lesion_rng,
        n_hematomas=spec.n_hematomas,
        shape=spec.shape,
        total_volume_ml=volume,
        hu=hu,
        touch_skull=spec.touch_skull,
        normal=plan.normal,
        slab_mm=(float(offsets[0]), float(offsets[-1])),
    )
    return PhantomModel(
        spec=spec,
        head=head,
        plan=plan,
        hematomas=hematomas,
        target_volume_ml=volume if spec.n_hematomas else 0.0,
        hematoma_hu=hu,
        scan_centre=scan_centre,
        unit_samples=rng_for(spec.seed, "monte-carlo").uniform(-1.0, 1.0, size=(200_000, 3)),
    )


def _correlated_noise(
    rng: np.random.Generator, shape: tuple[int, int], sigma_px: float
) -> F32Array:
    """Unit-variance Gaussian noise with a Gaussian autocorrelation of ``sigma_px`` pixels."""
    white = rng.standard_normal(shape, dtype=np.float32)
    if sigma_px < 0.2:
        return white
    smooth = ndimage.gaussian_filter(white, sigma_px, mode="wrap")
    delta = np.zeros((int(8 * sigma_px) * 2 + 1,) * 2, dtype=np.float64)
    delta[delta.shape[0] // 2, delta.shape[1] // 2] = 1.0
    gain = math.sqrt(float(np.sum(ndimage.gaussian_filter(delta, sigma_px) ** 2)))
    return (smooth / np.float32(gain)).astype(np.float32)


def sample_plane(model: PhantomModel, points: FloatArray) -> tuple[F32Array, LabelArray]:
    """Noise-free, unblurred HU and hematoma labels at LPS voxel centres (rows, columns, 3).

    The hematomas are painted over the anatomy at their mean HU, with the
    optional hypodense rim (``edema_mm``) around them.
    """
    spec = model.spec
    hu = model.head.sample_hu(points)
    if spec.skull_flap_deg > 0 and model.hematomas:
        hu[flap_bone(model, points)] = np.float32(FLAP_HU)
    labels = label_points(points, model.hematomas, model.head)
    if spec.edema_mm > 0 and model.hematomas:
        grown = tuple(
            hem.scaled(1.0 + spec.edema_mm / float(np.mean(hem.semi_axes_mm))) for hem in model.hematomas
        )
        rim = (label_points(points, grown, model.head) > 0) & (labels == 0) & model.head.intracranial(points)
        hu[rim] = np.minimum(hu[rim], np.float32(18.0))
    for hem in model.hematomas:
        hu[labels == hem.label] = np.float32(hem.hu)
    return hu, labels


def reconstruct(
    model: PhantomModel,
    clean_hu: F32Array,
    points: FloatArray,
    *,
    pixel_spacing_mm: float,
    kernel: Kernel,
    noise_rng: np.random.Generator | None,
    noise_scale: float = 1.0,
) -> F32Array:
    """Turn a noise-free plane into what a kernel shows: blur, sharpening, shading, noise, clipping.

    Parameters
    ----------
    model:
        The phantom.
    clean_hu:
        Output of :func:`sample_plane`.
    points:
        The plane's LPS voxel centres (for the shading).
    pixel_spacing_mm:
        In-plane pixel size (for the blur and noise correlation).
    kernel:
        Reconstruction kernel look.
    noise_rng:
        Noise stream; ``None`` for a noise-free image.
    noise_scale:
        Extra factor on the noise (thin slices are noisier).
    """
    spec = model.spec
    hu = clean_hu
    if kernel.blur_mm / pixel_spacing_mm >= 0.2:
        blurred = ndimage.gaussian_filter(hu, kernel.blur_mm / pixel_spacing_mm, mode="nearest")
    else:
        blurred = hu.copy()
    if kernel.sharpen > 0:
        broad = ndimage.gaussian_filter(hu, 1.0, mode="nearest")
        blurred = blurred + np.float32(kernel.sharpen) * (blurred - broad)
    image = blurred.astype(np.float32)
    if spec.shading_hu > 0:
        inside = model.head.signed_distance(model.head.to_head_frame(points)) < (
            model.head.skull_mm + model.head.scalp_mm
        )
        image += np.where(inside & (hu < 200), model.head.shading(points, spec.shading_hu), np.float32(0.0))
    if noise_rng is not None and spec.noise_hu > 0:
        sigma = np.float32(spec.noise_hu * kernel.noise_factor * noise_scale)
        image += sigma * _correlated_noise(noise_rng, hu.shape, kernel.noise_correlation_mm / pixel_spacing_mm)
    np.clip(image, HU_MIN, HU_MAX, out=image)
    return apply_export(model, image, points)


def flap_bone(model: PhantomModel, points: FloatArray) -> npt.NDArray[np.bool_]:
    """Skull voxels in the cone of ``skull_flap_deg`` around the centre -> first-hematoma direction."""
    head = model.head
    q = head.to_head_frame(points)
    centre = head.to_head_frame(np.asarray(model.hematomas[0].centre, dtype=np.float64)[None])[0]
    direction = centre / max(float(np.linalg.norm(centre)), 1e-6)
    cosang = (q @ direction.astype(np.float32)) / np.maximum(np.linalg.norm(q, axis=-1), np.float32(1e-6))
    d = head.signed_distance(q)
    cone = cosang >= np.float32(math.cos(math.radians(model.spec.skull_flap_deg / 2.0)))
    return np.asarray(cone & (d >= 0) & (d < np.float32(head.skull_mm)))


def apply_export(model: PhantomModel, image: F32Array, points: FloatArray) -> F32Array:
    """What the export did to the reconstructed HU: skull stripping (``export``), a clip (``clip_hu``)."""
    spec = model.spec
    if spec.export in ("skull_stripped", "skull_air_stripped"):
        image[image > STRIP_ABOVE_HU] = np.float32(STRIPPED_HU)
        if spec.export == "skull_air_stripped":
            image[image < np.float32(-300.0)] = np.float32(STRIPPED_HU)
    elif spec.export == "brain_only":
        outside = model.head.signed_distance(model.head.to_head_frame(points)) >= np.float32(-1.0)
        image[outside | (image > STRIP_ABOVE_HU)] = np.float32(STRIPPED_HU)
    if spec.clip_hu is not None:
        np.minimum(image, np.float32(spec.clip_hu), out=image)
    return image


def render_plane(
    model: PhantomModel,
    points: FloatArray,
    *,
    pixel_spacing_mm: float,
    kernel: Kernel,
    noise_rng: np.random.Generator | None,
    noise_scale: float = 1.0,
) -> tuple[F32Array, LabelArray]:
    """HU image (float32, clipped to [-1024, 3071]) and uint8 hematoma labels of one plane.

    :func:`sample_plane` followed by :func:`reconstruct`; see those for the parameters.
    """
    clean, labels = sample_plane(model, points)
    image = reconstruct(
        model, clean, points, pixel_spacing_mm=pixel_spacing_mm, kernel=kernel, noise_rng=noise_rng,
        noise_scale=noise_scale,
    )
    return image, labels


def scan_field(rows: int, columns: int) -> npt.NDArray[np.bool_]:
    """Pixels inside the circular scan field: the disc inscribed in the image, centred on it."""
    r = np.arange(rows, dtype=np.float64)[:, None] - (rows - 1) / 2.0
    c = np.arange(columns, dtype=np.float64)[None, :] - (columns - 1) / 2.0
    radius = min(rows, columns) / 2.0
    return (r * r + c * c) <= radius * radius


@dataclass(frozen=True)
class LocalizerImage:
    """A coronal scout: a projection of the head, with its plane geometry."""

    hu: F32Array
    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float, float, float]
    pixel_spacing_mm: float


def render_localizer(
    model: PhantomModel,
    *,
    rows: int = 256,
    columns: int = 512,
    pixel_spacing_mm: float = 0.9765625,
    noise_rng: np.random.Generator | None = None,
) -> LocalizerImage:
    """A coronal localizer (scout): water-equivalent path length through the head, as pseudo-HU.

    The projection is computed on a 2 mm grid around the head and
    interpolated to the localizer's pixels; it is a distractor, not a
    quantitative image.
    """
    head = model.head
    step = 2.0
    reach = float(np.max(head.outer_semi_axes_mm)) + 6.0
    xs = np.arange(-reach, reach + step, step) + head.centre[0]
    ys = np.arange(-reach, reach + step, step) + head.centre[1]
    zs = np.arange(-reach, reach + step, step) + head.centre[2]
    projection = np.zeros((zs.size, xs.size), dtype=np.float64)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    for k, z in enumerate(zs):
        pts = np.stack([gx, gy, np.full_like(gx, z)], axis=-1)
        hu = head.sample_hu(pts)
        projection[k] = np.maximum(hu.astype(np.float64) + 1000.0, 0.0).sum(axis=1) * step / 1000.0
    cx, cz = float(model.scan_centre[0]), float(head.centre[2])
    x0 = cx - (columns - 1) / 2.0 * pixel_spacing_mm
    z_top = cz + (rows - 1) / 2.0 * pixel_spacing_mm
    px = x0 + np.arange(columns) * pixel_spacing_mm
    pz = z_top - np.arange(rows) * pixel_spacing_mm
    ci = (px - xs[0]) / step
    ri = (pz - zs[0]) / step
    rr, cc = np.meshgrid(ri, ci, indexing="ij")
    path = ndimage.map_coordinates(projection, [rr, cc], order=1, mode="constant", cval=0.0)
    image = (HU_MIN + 8.0 * path).astype(np.float32)
    if noise_rng is not None:
        image += np.float32(6.0) * noise_rng.standard_normal(image.shape, dtype=np.float32)
    np.clip(image, HU_MIN, HU_MAX, out=image)
    return LocalizerImage(
        hu=image,
        position=(x0, float(model.scan_centre[1]), z_top),
        orientation=(1.0, 0.0, 0.0, 0.0, 0.0, -1.0),
        pixel_spacing_mm=pixel_spacing_mm,
    )


def montage(images: list[F32Array]) -> F32Array:
    """A 2x2 montage of up to four images, each halved in size (an exam-summary page)."""
    rows, columns = images[0].shape
    h, w = rows // 2, columns // 2
    page = np.full((2 * h, 2 * w), HU_MIN, dtype=np.float32)
    for k, img in enumerate(images[:4]):
        r, c = divmod(k, 2)
        page[r * h : (r + 1) * h, c * w : (c + 1) * w] = img[: 2 * h : 2, : 2 * w : 2]
    return page
