"""``ichpipe measure``: volume and ABC/2 of an existing mask (NIfTI or DICOM SEG)."""

from __future__ import annotations

from pathlib import Path

import click

from ichpipe.logs import register_path_alias
from ichpipe.pipeline.cli._common import config_option, echo_json, handle_errors, load_cli_config

__all__ = ["measure"]


@click.command()
@click.option(
    "--study",
    type=click.Path(path_type=Path),
    default=None,
    help="Study folder, DICOMDIR or .zip the mask belongs to. Without it, a NIfTI mask is measured on its"
    " header's geometry.",
)
@click.option(
    "--mask",
    required=True,
    type=click.Path(path_type=Path),
    help="The mask: NIfTI (.nii, .nii.gz; non-zero = hematoma) or DICOM SEG (needs --study).",
)
@click.option(
    "--abc2-c-method",
    type=click.Choice(["count", "kothari"]),
    default=None,
    help="C of ABC/2: slices with hematoma x their thickness (count, default) or Kothari's 1 / 0.5 / 0 weights.",
)
@click.option(
    "--abc2-component",
    type=click.Choice(["largest", "all"]),
    default=None,
    help="Voxels ABC/2 is taken from: the largest 3D connected component (default) or all.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the study report as JSON on stdout.")
@config_option
@handle_errors
def measure(
    study: Path | None,
    mask: Path,
    abc2_c_method: str | None,
    abc2_component: str | None,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """Measure the hematoma volume (from the DICOM geometry) and the automated ABC/2 of MASK.

    Exit status 0 on success, 1 when the mask or study cannot be read or the
    mask does not match the series, 2 on bad usage.
    """
    from ichpipe.pipeline.jobs.measure_mask import measure_config_from, measure_mask

    config = load_cli_config(config_path)
    if study is not None:
        register_path_alias(study, "<study>")  # its name often holds the patient's: masked unless --log-phi
    measure_cfg = measure_config_from(config, abc2_c_method=abc2_c_method, abc2_component=abc2_component)
    report = measure_mask(mask, study=study, config=config, measure=measure_cfg)
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(report.to_text())
