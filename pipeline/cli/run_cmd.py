"""``ichpipe run``: the main job for one study."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ichpipe.logs import register_path_alias
from ichpipe.pipeline.cli._common import config_option, echo_json, handle_errors, load_cli_config, redact
from ichpipe.progress import ProgressDisplay

__all__ = ["run"]


#: What each output is and how to look at it (the lines ``run`` ends with).
VIEW_HINTS: dict[str, str] = {
    "report": "the study report (JSON)",
    "seg": "DICOM SEG: load with the CT in OHIF or 3D Slicer (untilted series), or send to the PACS",
    "secondary_capture": "key image as DICOM Secondary Capture, for the PACS",
    "sr": "DICOM SR measurement report (TID 1500): PACS, OHIF, dcmqi tid1500reader",
    "key_image_png": "key image (any image viewer)",
    "nifti_mask": "mask for ITK-SNAP / 3D Slicer / FSLeyes over the input (viewing only)",
    "ct_tilt_eq": "CT on an untilted regular grid (any NIfTI viewer)",
    "mask_tilt_eq": "mask on that grid (overlay on ct_tilt_eq.nii.gz)",
    "ct_tilt_eq_dicom": "that grid as a derived DICOM CT series",
    "seg_tilt_eq": "SEG on the derived series: 3D Slicer (with ct_tilt_eq/) and dcmqi read it",
}


def _short(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _summary(report: dict[str, Any], out_dir: Path) -> list[str]:
    h = report["hematoma"]
    segmenter = report.get("segmenter") or {}
    method = "threshold baseline" if segmenter.get("baseline") else segmenter.get("name")
    n_flags = len((report.get("quality") or {}).get("flags") or [])
    lines = [f"Hematoma volume {h['volume_ml']:.2f} mL (ABC/2 {h['abc2_ml']:.2f} mL), {h['n_voxels']} voxels,"
             f" {method}; {n_flags} quality flag(s) (on stderr, and in report.json)"]
    measured = (report.get("quality") or {}).get("measurements") or {}
    slab = (measured.get("network_input") or {}).get("thin_slab") or {}
    if slab:
        lines.append(f"  thin slices: the networks read each as a {slab['slab_mm']:g} mm slab (up to"
                     f" {slab['max_slices_averaged']} slices averaged; inference.thin_slab_mm); the mask is on the"
                     " thin slices")
    grid = (measured.get("network_input") or {}).get("grid")
    if grid:
        lines.append(f"  a large field of view: the networks read each slice on a {grid[0]} x {grid[1]} grid (a"
                     f" network pixel {grid[2]:g} mm wide, near what they learnt; inference.max_network_pixel_mm)")
    turn = measured.get("head_turn") or {}
    if turn.get("read_upright"):
        lines.append(f"  the head lay turned {abs(turn['degrees']):.0f} degrees in the image: the networks read it"
                     " turned upright, their call turned back (inference.upright_min_degrees)")
    dense = measured.get("denser_than_blood") or {}
    if dense.get("removed_ml"):
        lines.append(f"  not counted: {dense['removed_ml']:.2f} mL in {dense['components_removed']} component(s) the"
                     f" network called, denser than blood (median > {dense['median_hu_above']:g} HU: calcification"
                     " or bone)")
    calcified = measured.get("calcified") or {}
    if calcified.get("removed_ml") or calcified.get("parts_removed_ml"):
        lines.append(f"  not counted: {calcified['removed_ml']:.2f} mL in {calcified['components_removed']}"
                     f" component(s) and {calcified['parts_removed_ml']:.2f} mL beside blood, calcification (foci"
                     " denser than acute blood; inference.calcified)")
    edge = measured.get("bone_edge_pieces") or {}
    if edge.get("removed_ml"):
        lines.append(f"  not counted: {edge['removed_ml']:.2f} mL in {edge['components_removed']} single-slice"
                     " piece(s) on bone's edge (the skull base's partial volume; inference.bone_edge_max_ml)")
    faint = measured.get("faint_growth") or {}
    if faint.get("added_ml"):
        lines.append(f"  of it {faint['added_ml']:.2f} mL grown from {faint['components_grown']} faint component(s)"
                     " (median under inference.faint_max_median_hu) into the network's looser call")
    ends = measured.get("end_extension") or {}
    if ends.get("added_ml"):
        lines.append(f"  of it {ends['added_ml']:.2f} mL on {ends['slices_extended']} slice(s) just beyond the bleeds'"
                     " ends, added by the end-slice network (inference.end_extension)")
    extra = measured.get("extra_axial") or {}
    if extra.get("added_ml"):
        lines.append(f"  of it {extra['added_ml']:.2f} mL in {extra['components_added']} collection(s) against the"
                     " inner table, added by the extra-axial network (inference.extra_axial)")
    enclosed = measured.get("enclosed_fill") or {}
    if enclosed.get("added_ml"):
        lines.append(f"  of it {enclosed['added_ml']:.2f} mL in {enclosed['pieces']} hypodense part(s) that the"
                     " blood encloses (a swirl, a black hole; inference.enclosed_close_mm)")
    rim = measured.get("edge_rim") or {}
    if rim.get("added_ml"):
        lines.append(f"  of it {rim['added_ml']:.2f} mL in the bleeds' blurred rim (in plane, up to"
                     f" {rim['rim_mm']:g} mm out, {rim['min_hu']:g} HU and over; inference.rim_mm)")
    cross = measured.get("cross_check") or {}
    if cross.get("segmenter") and cross.get("volume_ml") is not None:
        lines.append(f"  beside it {cross['segmenter']} read {cross['volume_ml']:.2f} mL on the same intracranial space"
                     " (quality.cross_check; segmenter_disagreement when they differ)")
    serial = report.get("serial") or {}
    if serial and not serial.get("is_baseline") and serial.get("delta_ml") is not None:
        pct = serial.get("delta_pct")
        lines.append(f"Change since the baseline scan: {serial['delta_ml']:+.2f} mL"
                     f"{'' if pct is None else f' ({pct:+.1f} %)'}; expansion: {serial.get('expansion')}")
    lines.append(f"Wrote to {_short(out_dir)}/:")
    for name, value in report["outputs"].items():
        path = Path(value)
        shown = path.name + ("/" if path.is_dir() else "")
        lines.append(f"  {shown:<22} {VIEW_HINTS.get(name, name)}")
    for name, why in (report.get("outputs_skipped") or {}).items():
        lines.append(f"  (no {name}: {why})")
    return lines


@click.command()
@click.option("--study", required=True, type=click.Path(path_type=Path),
              help="Study folder, DICOMDIR or .zip; or a NIfTI CT (.nii, .nii.gz).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output root (default: outputs.directory in the config, ./ichpipe-out).")
@click.option("--segmenter", default=None, help="threshold or a network name (default: models.default_segmenter).")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="Network checkpoint (default: models.default_checkpoint); for --segmenter blast_ct, the"
                   " folder of its model_1.pt ... model_12.pt.")
@click.option("--blast-models", type=click.IntRange(1, 12), default=None,
              help="--segmenter blast_ct: how many of its 12 models to average (default: blast_ct.models).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="Where networks run (default: inference.device, auto).")
@click.option("--json", "as_json", is_flag=True, help="Print the study report as JSON on stdout.")
@click.option("--deidentify", is_flag=True, default=None,
              help="Write report, SEG and key image without direct patient identifiers (outputs.deidentify).")
@click.option("--strict/--no-strict", default=None,
              help="Exit 1 when any quality flag is raised, after writing every output (quality.strict).")
@config_option
@handle_errors
def run(study: Path, out: Path | None, segmenter: str | None, checkpoint: Path | None, blast_models: int | None,
        device: str | None, as_json: bool, deidentify: bool | None, strict: bool | None,
        config_path: Path | None) -> None:
    """Segment the hematoma in STUDY, measure it and write SEG, key image and report.

    Outputs go to OUT/<StudyInstanceUID>/<SeriesInstanceUID>/. Every reason the
    volume may be wrong is a quality flag: in the report ("quality"), on the
    key image, in the SEG and key-image descriptions and the results store,
    and printed on stderr, one line each. A flagged volume is still written;
    with --strict the exit status is then 1.
    """
    from ichpipe.pipeline.jobs.run_study import RunOptions, run_study

    config = load_cli_config(config_path, {"outputs": {"deidentify": True}} if deidentify else None)
    register_path_alias(study, "<study>")  # its name often holds the patient's: masked unless --log-phi
    options = RunOptions(study=study, out=out, segmenter=segmenter, checkpoint=checkpoint,
                         device=device, strict=strict, blast_models=blast_models)  # type: ignore[arg-type]
    with ProgressDisplay(interval_s=config.progress.interval_s):
        result = run_study(options, config)
    if as_json:
        echo_json(result.report)
    else:
        click.echo("\n".join(_summary(result.report, result.output_dir)))
    for flag in result.flags:
        click.echo(f"ichpipe: quality flag {redact(flag.line())}", err=True)
    if result.exit_code:
        click.echo(f"ichpipe: --strict: {len(result.flags)} quality flag(s) raised; the outputs were written,"
                   " exit status 1.", err=True)
    sys.exit(result.exit_code)
