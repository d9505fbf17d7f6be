"""All imaging features of one measured series: what ``ichpipe run`` records.

:func:`compute_features` returns the ``features`` entry of the study report::

    {
      "feature_space": "ichpipe-ibsi/1",
      "units": {"length": "mm", "area": "mm2", "volume": "mm3", "intensity": "HU"},
      "settings": {... the FeatureConfig values that change numbers ...},
      "values": {"volume_ml": ..., "original_shape_MeshVolume": ..., ...}
    }

``values`` holds ``volume_ml`` (the planimetric volume, as ``measure``), the
shape features (:mod:`ichpipe.pipeline.measure.features.shape`), the first-order HU
statistics (:mod:`ichpipe.pipeline.measure.features.firstorder`) and the location features
(:mod:`ichpipe.pipeline.measure.features.location`); a value that is undefined (empty mask,
no head found) is ``None``. The onset-to-scan time is not an image property:
the feature table adds it from the patient's timeline
(:mod:`ichpipe.pipeline.risk.feature_table`).

``feature_space`` names the units and conventions. Values computed here are
in mm and HU; the contest's table3 radiomics are in voxel units with an
intensity scale that is not HU, so a model trained on one cannot read the
other (the predictor refuses a feature space it was not trained on).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ichpipe.dicom_io.assemble import CTVolume
from ichpipe.pipeline.config.features_config import FeatureConfig
from ichpipe.pipeline.measure.features.firstorder import firstorder_features
from ichpipe.pipeline.measure.features.grid import Grid, mask_indices
from ichpipe.pipeline.measure.features.location import find_head_frame, location_features
from ichpipe.pipeline.measure.features.shape import shape_features

__all__ = ["FEATURE_SPACE", "UNITS", "compute_features", "feature_values"]

#: Name of the units and conventions of the features computed here.
FEATURE_SPACE = "ichpipe-ibsi/1"

#: Units of the values.
UNITS = {"length": "mm", "area": "mm2", "volume": "mm3", "intensity": "HU"}


def feature_values(
    hu: npt.NDArray[np.floating],
    mask: npt.NDArray[np.bool_],
    grid: Grid,
    *,
    config: FeatureConfig | None = None,
) -> dict[str, float | None]:
    """The feature values of ``mask`` on ``hu`` (arrays and grid instead of a series).

    Parameters
    ----------
    hu:
        HU volume (slices, rows, columns).
    mask:
        Boolean hematoma mask of the same shape.
    grid:
        Voxel-to-patient mapping.
    config:
        Feature settings; the defaults when ``None``.

    Raises
    ------
    ValueError
        If the arrays do not match each other or the grid.
    """
    cfg = config or FeatureConfig()
    if hu.shape != mask.shape:
        raise ValueError(f"Arguments 'hu' {hu.shape} and 'mask' {mask.shape} must have the same shape.")
    shape = shape_features(mask, grid, mesh=cfg.mesh, smoothing_px=cfg.mesh_smoothing_px)
    k, r, c = mask_indices(mask)
    first = firstorder_features(
        hu[k, r, c],
        bin_width=cfg.bin_width_hu,
        voxel_array_shift=cfg.voxel_array_shift,
        voxel_volumes_mm3=grid.voxel_volumes_mm3[k],
    )
    frame = find_head_frame(hu, grid, head_min_hu=cfg.head_min_hu) if mask.any() else None
    location = location_features(
        mask,
        grid,
        frame,
        tentorium_below_vertex_mm=cfg.tentorium_below_vertex_mm,
        posterior_margin_mm=cfg.posterior_margin_mm,
    )
    voxel_volume = shape["original_shape_VoxelVolume"]
    return {
        "volume_ml": None if voxel_volume is None else voxel_volume / 1000.0,
        **shape,
        **first,
        **location,
    }


def compute_features(
    volume: CTVolume, mask: npt.NDArray[np.bool_], *, config: FeatureConfig | None = None
) -> dict[str, Any]:
    """The ``features`` entry of a study report for ``mask`` on ``volume``.

    Parameters
    ----------
    volume:
        The assembled series (HU and geometry).
    mask:
        Boolean hematoma mask aligned to ``volume.hu``.
    config:
        Feature settings; the defaults when ``None``.

    Returns
    -------
    dict
        ``feature_space``, ``units``, ``settings`` and ``values`` (JSON-ready:
        finite numbers or ``None``).

    Raises
    ------
    ValueError
        If the mask does not match the volume.
    """
    cfg = config or FeatureConfig()
    values = feature_values(volume.hu, np.asarray(mask, dtype=bool), Grid.from_geometry(volume.geometry), config=cfg)
    return {
        "feature_space": FEATURE_SPACE,
        "units": dict(UNITS),
        "settings": {
            "mesh": cfg.mesh,
            "mesh_smoothing_px": cfg.mesh_smoothing_px,
            "bin_width_hu": cfg.bin_width_hu,
            "voxel_array_shift": cfg.voxel_array_shift,
            "head_min_hu": cfg.head_min_hu,
            "tentorium_below_vertex_mm": cfg.tentorium_below_vertex_mm,
            "posterior_margin_mm": cfg.posterior_margin_mm,
        },
        "values": {k: (None if v is None or not np.isfinite(v) else float(v)) for k, v in values.items()},
    }
