"""``ichpipe timeline`` (one patient's serial scans, ``timeline import``) and ``ichpipe expansion``.

The pipeline modules (SQLAlchemy, matplotlib) are imported inside the
commands so that ``ichpipe --help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ichpipe.errors import ConfigError, UsageError
from ichpipe.pipeline.cli._common import config_option, echo_json, handle_errors, load_cli_config

__all__ = ["expansion", "timeline"]

_VOLUME_UNITS = ("mL", "cm3", "mm3", "uL")


def _store_option(func: Any) -> Any:
    return click.option(
        "--store",
        "store_location",
        default=None,
        metavar="PATH|URL",
        help="Results store: an SQLite file or a database URL (overrides store.path / store.url).",
    )(func)


def _store_overrides(store_location: str | None) -> dict[str, Any]:
    if store_location is None:
        return {}
    if "://" in store_location:
        return {"store": {"url": store_location}}
    return {"store": {"url": None, "path": store_location}}


def _rule_options(func: Any) -> Any:
    for option in reversed(
        (
            click.option("--preset", default=None, help="Expansion definition by name (expansion.preset)."),
            click.option("--absolute-ml", type=float, default=None, help="Absolute growth threshold in mL."),
            click.option("--relative-pct", type=float, default=None, help="Relative growth threshold in %."),
            click.option("--window-h", type=float, default=None, help="Window in hours from onset."),
        )
    ):
        func = option(func)
    return func


def _expansion_overrides(
    preset: str | None, absolute_ml: float | None, relative_pct: float | None, window_h: float | None
) -> dict[str, Any]:
    values = {"preset": preset, "absolute_ml": absolute_ml, "relative_pct": relative_pct, "window_h": window_h}
    given = {k: v for k, v in values.items() if v is not None}
    return {"expansion": given} if given else {}


@click.group(invoke_without_command=True)
@click.option("--patient", "patient_id", default=None, help="PatientID whose timeline to show.")
@click.option("--issuer", default=None, help="IssuerOfPatientID, when one ID is used by several issuers.")
@click.option("--json", "as_json", is_flag=True, help="Print the timeline as JSON on stdout.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the timeline plot (PNG) to this file.",
)
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a static QC page (key images, volumes, changes, verdict; sortable) to this file.")
@click.option("--outputs", "outputs_root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where `ichpipe run` wrote its outputs, to find key images (default: outputs.directory).")
@_rule_options
@_store_option
@config_option
@click.pass_context
@handle_errors
def timeline(
    ctx: click.Context,
    patient_id: str | None,
    issuer: str | None,
    as_json: bool,
    plot_path: Path | None,
    html_path: Path | None,
    outputs_root: Path | None,
    preset: str | None,
    absolute_ml: float | None,
    relative_pct: float | None,
    window_h: float | None,
    store_location: str | None,
    config_path: Path | None,
) -> None:
    """Show one patient's serial scans (ordered by time, one per accession) and expansion verdict.

    Exit status 0 on success, 1 when the patient is not in the store, 2 on bad usage or config.
    """
    if ctx.invoked_subcommand is not None:
        if patient_id is not None or as_json or plot_path is not None:
            raise UsageError("--patient, --json and --plot belong to `ichpipe timeline`, not to its subcommands.")
        return
    if patient_id is None:
        raise UsageError("Give --patient ID to show a timeline, or use `ichpipe timeline import`.")
    from ichpipe.pipeline.serial.timeline_reports import TimelineOptions, show_timeline

    overrides = {**_store_overrides(store_location),
                 **_expansion_overrides(preset, absolute_ml, relative_pct, window_h)}
    config = load_cli_config(config_path, overrides)
    report = show_timeline(
        TimelineOptions(
            store=config.store,
            rule=config.expansion.rule(),
            patient_id=patient_id,
            issuer_of_patient_id=issuer,
            plot_path=plot_path,
        )
    )
    if html_path is not None:
        from ichpipe.pipeline.serial.timeline_page import write_timeline_page

        write_timeline_page(report, html_path, outputs_root=outputs_root or Path(config.outputs.directory))
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(report.to_text())
        if html_path is not None:
            click.echo(f"QC page: {html_path}")
    sys.exit(report.exit_code)


_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@timeline.command("import")
@click.option("--volumes", type=_FILE, default=None, help="CSV of hematoma volumes per scan (long or wide).")
@click.option("--times", type=_FILE, default=None, help="CSV of scan date-times per accession number.")
@click.option("--clinical", type=_FILE, default=None, help="CSV of onset time per patient.")
@click.option(
    "--mapping",
    default=None,
    help="Column mapping: a shipped name (contest_2023e) or a YAML/JSON file. "
    "Without it, name the columns of long tables with the --*-col options.",
)
@click.option("--patient-col", default=None, help="Long tables: patient ID column (volumes and clinical).")
@click.option("--accession-col", default=None, help="Long tables: accession number column.")
@click.option("--volume-col", default=None, help="Long tables: volume column.")
@click.option("--datetime-col", default=None, help="Long tables: scan date-time column.")
@click.option("--volume-unit", type=click.Choice(_VOLUME_UNITS), default="mL", show_default=True)
@click.option("--onset-hours-col", default=None, help="Clinical: hours from onset to the first scan.")
@click.option("--onset-datetime-col", default=None, help="Clinical: onset date-time.")
@click.option("--datetime-format", default="iso", show_default=True, help="iso, dicom or a strptime format.")
@click.option("--json", "as_json", is_flag=True, help="Print the import report as JSON on stdout.")
@_store_option
@config_option
@handle_errors
def import_cmd(
    volumes: Path | None,
    times: Path | None,
    clinical: Path | None,
    mapping: str | None,
    patient_col: str | None,
    accession_col: str | None,
    volume_col: str | None,
    datetime_col: str | None,
    volume_unit: str,
    onset_hours_col: str | None,
    onset_datetime_col: str | None,
    datetime_format: str,
    as_json: bool,
    store_location: str | None,
    config_path: Path | None,
) -> None:
    """Import volumes measured elsewhere (and onset times) into the results store.

    Exit status 0 on success, 1 when a table row cannot be read, 2 on bad usage,
    a mapping that does not fit the tables, or bad config.
    """
    from ichpipe.pipeline.serial.import_mappings import load_mapping, long_mapping
    from ichpipe.pipeline.serial.timeline_import import ImportOptions, run_import

    if volumes is None and clinical is None:
        raise UsageError("Give --volumes, --clinical, or both.")
    column_options = (patient_col, accession_col, volume_col, datetime_col, onset_hours_col, onset_datetime_col)
    if mapping is not None:
        if any(c is not None for c in column_options):
            raise UsageError("Use either --mapping or the --*-col options, not both.")
        table_mapping = load_mapping(mapping)
    else:
        if patient_col is None:
            raise UsageError("Give --mapping NAME|FILE, or name the columns (at least --patient-col).")
        try:
            table_mapping = long_mapping(
                patient=patient_col,
                accession=accession_col,
                volume=volume_col,
                datetime_column=datetime_col,
                volume_unit=volume_unit,  # type: ignore[arg-type]  # click.Choice checked it
                onset_to_first_scan_h=onset_hours_col,
                onset_datetime=onset_datetime_col,
                datetime_format=datetime_format,
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    config = load_cli_config(config_path, _store_overrides(store_location))
    report = run_import(
        ImportOptions(store=config.store, mapping=table_mapping, volumes=volumes, times=times, clinical=clinical)
    )
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(
            f"Imported {report.n_scans} scan(s) of {report.n_patients} patient(s) and "
            f"{report.n_clinical} clinical row(s) into {report.store} (mapping {report.mapping})."
        )
        if report.n_times_unused:
            click.echo(f"{report.n_times_unused} scan time(s) had no volume and were not imported.")
        for warning in report.warnings:
            click.echo(f"Warning: {warning}")
    sys.exit(report.exit_code)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print every patient's result as JSON on stdout.")
@click.option("--csv", "as_csv", is_flag=True, help="Print one CSV row per patient on stdout.")
@click.option(
    "--plot-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write one timeline plot (PNG) per patient into this folder.",
)
@_rule_options
@_store_option
@config_option
@handle_errors
def expansion(
    as_json: bool,
    as_csv: bool,
    plot_dir: Path | None,
    preset: str | None,
    absolute_ml: float | None,
    relative_pct: float | None,
    window_h: float | None,
    store_location: str | None,
    config_path: Path | None,
) -> None:
    """Hematoma expansion of every patient in the store: expanded, not expanded or undetermined.

    The rule comes from the config (expansion.*) and the options. Exit status 0
    on success, 1 when the store is missing or empty, 2 on bad usage or config.
    """
    if as_json and as_csv:
        raise UsageError("Choose one of --json and --csv.")
    from ichpipe.pipeline.serial.timeline_reports import ExpansionOptions, summarize_expansion

    overrides = {**_store_overrides(store_location),
                 **_expansion_overrides(preset, absolute_ml, relative_pct, window_h)}
    config = load_cli_config(config_path, overrides)
    try:
        rule = config.expansion.rule()
    except ValueError as exc:  # pragma: no cover - the config loader validates it already
        raise ConfigError(str(exc)) from exc
    report = summarize_expansion(ExpansionOptions(store=config.store, rule=rule, plot_dir=plot_dir))
    if as_json:
        echo_json(report.to_dict())
    elif as_csv:
        click.echo(report.to_csv(), nl=False)
    else:
        click.echo(report.to_text())
    sys.exit(report.exit_code)
