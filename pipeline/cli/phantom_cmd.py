"""``ichpipe phantom``: write a synthetic head-CT study with a known hematoma volume."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from ichpipe.errors import UsageError
from ichpipe.pipeline.cli._common import echo_json, handle_errors

__all__ = ["phantom"]

log = logging.getLogger("ichpipe.phantom")

_DISTRACTOR_CHOICES = ("localizer", "bone", "thin", "summary")


def _parse_datetime(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"Option --acquisition-datetime {value!r} is not an ISO 8601 date and time"
            " (e.g. 2026-03-01T14:30:00)."
        ) from None


@click.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Study folder to create (must be new or empty; see --overwrite).")
@click.option("--overwrite", is_flag=True, help="Replace a phantom study written to --out before.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of every random choice; one seed is one synthetic patient.")
@click.option("--rows", type=int, default=512, show_default=True, help="Matrix rows.")
@click.option("--columns", type=int, default=512, show_default=True, help="Matrix columns.")
@click.option("--slices", "n_slices", type=int, default=32, show_default=True, help="Planned axial slices.")
@click.option("--slice-spacing", type=float, default=5.0, show_default=True,
              help="Spacing between slices along the slice normal, mm.")
@click.option("--pixel-spacing", type=float, default=None,
              help="Pixel size in mm [default: 230 mm field of view / matrix].")
@click.option("--tilt", "tilt_deg", type=float, default=0.0, show_default=True,
              help="Signed gantry tilt in degrees (GE-style orientation, table steps along z).")
@click.option("--uneven", is_flag=True,
              help="Uneven spacing: lower half of the stack at 4 mm, upper at 7 mm (see --uneven-spacing).")
@click.option("--uneven-spacing", type=(float, float), default=None, metavar="LOWER UPPER",
              help="Spacings of the lower and upper blocks in mm (implies --uneven).")
@click.option("--drop-slice", type=int, default=None, metavar="INDEX",
              help="Do not write planned slice INDEX (0-based along the normal, an inner slice).")
@click.option("--duplicate-slice", type=int, default=None, metavar="INDEX",
              help="Write planned slice INDEX twice (another SOPInstanceUID).")
@click.option("--transfer-syntax", type=click.Choice(["explicit", "implicit", "rle", "jpeg2000", "jpegls"]),
              default="explicit", show_default=True, help="Transfer syntax of every file (all lossless).")
@click.option("--rescale", type=click.Choice(["standard", "unsigned", "zero_intercept", "scaled", "per_slice"]),
              default="standard", show_default=True, help="How HU are stored (slope, intercept, signedness).")
@click.option("--padding/--no-padding", default=True, show_default=True,
              help="Write pixels outside the circular scan field as PixelPaddingValue.")
@click.option("--distractors", "default_distractors", is_flag=True,
              help="Add a localizer, a bone-kernel series and an exam-summary image to the study.")
@click.option("--distractor", "distractor_names", multiple=True, type=click.Choice(_DISTRACTOR_CHOICES),
              help="Add one distractor series (repeatable); 'thin' adds a 1.25 mm series.")
@click.option("--hematomas", "n_hematomas", type=int, default=1, show_default=True,
              help="Number of hematomas (0 for a normal head).")
@click.option("--shape", type=click.Choice(["ellipsoid", "irregular"]), default="ellipsoid", show_default=True,
              help="Hematoma shape.")
@click.option("--touch-skull", is_flag=True, help="Place the first hematoma against the inner table.")
@click.option("--volume-ml", type=float, default=None, help="Target total hematoma volume, mL [default: from seed].")
@click.option("--hu", "hematoma_hu", type=float, default=None, help="Mean hematoma HU [default: 60-80 from seed].")
@click.option("--edema", "edema_mm", type=float, default=0.0, show_default=True,
              help="Width of a hypodense rim around each hematoma, mm.")
@click.option("--noise", "noise_hu", type=float, default=5.0, show_default=True, help="Image noise sigma, HU.")
@click.option("--shading", "shading_hu", type=float, default=0.0, show_default=True,
              help="Amplitude of a slow intensity variation, HU.")
@click.option("--skull-flap", "skull_flap_deg", type=float, default=0.0, show_default=True, metavar="DEG",
              help="Remove a bone flap of DEG degrees over the first hematoma (craniotomy); 0 keeps the skull closed.")
@click.option("--export", type=click.Choice(["full", "skull_stripped", "skull_air_stripped", "brain_only"]),
              default="full", show_default=True,
              help="Export quirk: skull (and air) set to 0 HU, or only the brain kept.")
@click.option("--clip-hu", type=float, default=None, metavar="HU", help="Clip stored HU at this maximum.")
@click.option("--photometric", type=click.Choice(["MONOCHROME2", "MONOCHROME1"]), default="MONOCHROME2",
              show_default=True, help="PhotometricInterpretation (stored values and HU do not change).")
@click.option("--no-frame-of-reference", "frame_of_reference", flag_value=False, default=True,
              help="Leave FrameOfReferenceUID out of the images (some anonymised archives do).")
@click.option("--patient-id", default=None, help="PatientID [default: from seed].")
@click.option("--patient-name", default=None, help="PatientName [default: from seed].")
@click.option("--accession", "accession_number", default=None, help="AccessionNumber [default: from the options].")
@click.option("--acquisition-datetime", default=None, metavar="ISO",
              help="Acquisition date and time, ISO 8601 [default: from seed].")
@click.option("--study-uid", "study_instance_uid", default=None, help="StudyInstanceUID [default: from the options].")
@click.option("--seg", "write_seg", is_flag=True,
              help="Also write the truth mask as DICOM SEG (truth_mask_seg.dcm, via ichpipe.dicom_io.seg).")
@click.option("--json", "as_json", is_flag=True, help="Print truth.json on stdout.")
@handle_errors
def phantom(
    out_dir: Path,
    overwrite: bool,
    uneven: bool,
    uneven_spacing: tuple[float, float] | None,
    default_distractors: bool,
    distractor_names: tuple[str, ...],
    acquisition_datetime: str | None,
    write_seg: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Write a synthetic head-CT study with known hematoma volume(s) to OUT.

    OUT gets DICOM/ (every series, hashed file names), truth.json (the
    voxel-count volume of every planned slice over its nominal thickness,
    computed from the plan and not by a reader's rule, with the tolerance a
    reader cannot do better than; expected geometry, UIDs, which series to
    select) and truth_mask.nii.gz (hematoma labels of the written slices;
    with --seg also truth_mask_seg.dcm).
    """
    from ichpipe.pipeline.synthetic.phantom import DEFAULT_DISTRACTORS, PhantomSpec, write_phantom_study

    distractors: list[str] = list(DEFAULT_DISTRACTORS) if default_distractors else []
    distractors += [name for name in distractor_names if name not in distractors]
    if uneven_spacing is None and uneven:
        uneven_spacing = (4.0, 7.0)
    try:
        spec = PhantomSpec(
            uneven_spacing_mm=uneven_spacing,
            distractors=tuple(distractors),  # type: ignore[arg-type]
            acquisition_datetime=_parse_datetime(acquisition_datetime),
            gantry_tilt_deg=options.pop("tilt_deg"),
            slice_spacing_mm=options.pop("slice_spacing"),
            pixel_spacing_mm=options.pop("pixel_spacing"),
            **options,
        )
    except UsageError:
        raise
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    started = time.perf_counter()
    try:
        seg_writer = None
        if write_seg:
            from ichpipe.pipeline.synthetic.phantom.seg_writer import dicom_seg_writer

            seg_writer = dicom_seg_writer
        truth = write_phantom_study(out_dir, spec, overwrite=overwrite, seg_writer=seg_writer)
    except UsageError:
        raise
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    elapsed = time.perf_counter() - started
    if as_json:
        echo_json(dict(truth.data))
        return
    geometry = truth.geometry
    click.echo(
        f"wrote {out_dir}: {geometry['n_files']} axial files"
        f" + {len(truth.data['series']) - 1} distractor series in {elapsed:.1f} s\n"
        f"hematoma volume {truth.volume_ml:.3f} mL ({truth.n_voxels} voxels),"
        f" slice spacing {geometry['slice_spacing_mm']:g} mm, tilt {geometry['gantry_tilt_deg']:g} deg,"
        f" missing slices {geometry['missing_slices']}\n"
        f"truth: {truth.truth_path}\nmask:  {truth.mask_path}"
        + (f"\nseg:   {truth.seg_path}" if truth.seg_path else "")
    )
