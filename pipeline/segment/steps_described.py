"""The report's account of the networks' post-processing steps and their settings.

:meth:`~ichpipe.pipeline.segment.inference.NetworkSegmenter.describe` puts these keys beside the
network's identity; :func:`~ichpipe.pipeline.serial.store.records.method_name` reads them, so two scans
are compared as measured the same way only when every step ran with the same settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from ichpipe.pipeline.config.inference_config import InferenceConfig
from ichpipe.pipeline.segment.extra_axial_addition import JOINED_TABLE_SHARE

__all__ = ["described_steps"]


def described_steps(config: InferenceConfig, *, extender: Mapping[str, Any] | None = None,
                    extra_axial: Mapping[str, Any] | None = None,
                    blend_side: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The settings of each step ``config`` turns on, keyed as the report names them.

    Parameters
    ----------
    config:
        The inference settings.
    extender, extra_axial, blend_side:
        The identity (name, checkpoint SHA-256 and path, runtime; the extra-axial network's window too)
        of the end-slice, extra-axial and blend-side networks, ``None`` when the step is off.

    Examples
    --------
    >>> steps = described_steps(InferenceConfig())
    >>> steps["edge_rim"], steps["upright"]
    ({'rim_mm': 1.0, 'min_hu': 42.0}, {'min_degrees': 10.0, 'min_elongation': 1.05})
    >>> steps["vertex_zoom"]
    {'min_share': 0.6, 'max_factor': 2.0, 'min_hu': 55.0}
    """
    steps: dict[str, Any] = {}
    if config.bone_edge_max_ml is not None:
        steps["bone_edge"] = {"max_ml": config.bone_edge_max_ml, "share": config.bone_edge_share}
    if config.calcified.min_share is not None:
        steps["calcified"] = asdict(config.calcified)
    if config.loose_threshold is not None:
        steps["loose_threshold"] = config.loose_threshold
        if config.faint_max_median_hu is not None:
            steps["faint_growth"] = {"max_median_hu": config.faint_max_median_hu, "min_hu": config.faint_min_hu,
                                     "threshold": config.loose_threshold,
                                     "beside_acute_ml": config.faint_beside_acute_ml}
    if config.enclosed_close_mm is not None:
        steps["enclosed_fill"] = {"close_mm": config.enclosed_close_mm, "min_hu": config.enclosed_min_hu}
    if config.rim_mm is not None:
        steps["edge_rim"] = {"rim_mm": config.rim_mm, "min_hu": config.rim_min_hu}
    if extender is not None:
        ends = config.end_extension
        steps["end_extension"] = {
            **extender,
            "threshold": ends.threshold,
            "radius_mm": ends.radius_mm,
            "depth_mm": ends.depth_mm,
            "end_slice_hu": ends.end_slice_hu,
        }
    if config.dense_ends.min_hu is not None:
        dense = config.dense_ends
        steps["dense_ends"] = {"min_hu": dense.min_hu, "max_hu": dense.max_hu, "radius_mm": dense.radius_mm,
                               "depth_mm": dense.depth_mm, "edge_mm": dense.edge_mm,
                               "min_area_mm2": dense.min_area_mm2, "toward": dense.toward,
                               "head_min_cover": dense.head_min_cover if dense.toward == "both" else None,
                               "fill_end_slice": dense.fill_end_slice,
                               "fill_between_rounds": dense.fill_between_rounds}
    if extra_axial is not None:
        extra = config.extra_axial
        steps["extra_axial"] = {
            **extra_axial,
            "threshold": extra.threshold,
            "table_mm": extra.table_mm,
            "min_ml": extra.min_ml,
            "min_area_fraction": extra.min_area_fraction,
            "narrow_slices": extra.narrow_slices,
            "min_thickness_mm": extra.min_thickness_mm,
            "min_median_hu": extra.min_median_hu,
            "joined_min_median_hu": extra.joined_min_median_hu,
            "min_contrast_hu": extra.min_contrast_hu,
            "low_density_min_ml": extra.low_density_min_ml,
            "low_density_max_found_depth_mm": extra.low_density_max_found_depth_mm,
            "low_density_grow_threshold": extra.low_density_grow_threshold,
            "joined_table_share": JOINED_TABLE_SHARE,
            "judged_on": "added",  # the density and size tests read what a component adds (twenty-fourth session)
        }
    if blend_side is not None:
        blend = config.blend_side
        steps["blend_side"] = {**blend_side, "threshold": blend.threshold, "min_hu": blend.min_hu,
                               "max_hu": blend.max_hu, "min_clot_median_hu": blend.min_clot_median_hu,
                               "add": blend.add}
    if config.upright_min_degrees is not None:
        steps["upright"] = {"min_degrees": config.upright_min_degrees,
                            "min_elongation": config.upright_min_elongation}
    if config.vertex_zoom_share is not None:
        steps["vertex_zoom"] = {"min_share": config.vertex_zoom_share, "max_factor": config.vertex_max_zoom,
                                "min_hu": config.vertex_zoom_min_hu}
    return steps
