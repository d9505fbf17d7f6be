"""Shared pieces of the command line: config loading, error handling, JSON output."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ichpipe.dicom_io._privacy import forget_identifiers
from ichpipe.errors import IchpipeError
from ichpipe.logs import LogSettings, configure_logging, escape_controls, redact, safe_text
from ichpipe.pipeline.config import Config, load_config

__all__ = [
    "RedactingFormatter",
    "config_option",
    "echo_json",
    "handle_errors",
    "load_cli_config",
    "redact",
    "setup_logging",
]

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger("ichpipe")


class RedactingFormatter(logging.Formatter):
    """A formatter that masks patient identifiers in the whole record (message, arguments, traceback).

    The command line's handler uses :class:`ichpipe.logs.PrivacyFilter`
    instead (it works with any formatter); this is for callers that bring
    their own handler.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Format as usual, then :func:`redact` the result (control characters escaped but line breaks)."""
        return escape_controls(redact(super().format(record)), keep_newlines=True)


def setup_logging(*, verbose: bool, debug: bool, log_phi: bool = False) -> None:
    """Send logs to stderr: warnings by default, info with -v, debug with --debug.

    The one set-up of :func:`ichpipe.logs.configure_logging`: patient
    identifiers read by this command and the study and inbox paths are masked
    in every log line, warning and traceback unless ``log_phi`` (``ichpipe
    --log-phi``); control characters are escaped; Python warnings go through
    the same handler; pynetdicom logs at WARNING unless ``debug``. The record
    of identifiers starts empty for each command.
    """
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    forget_identifiers()
    configure_logging(LogSettings(level=level, debug=debug, log_phi=log_phi))


def config_option(func: F) -> F:
    """Add ``--config FILE`` to a command."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="YAML file overriding the built-in defaults (see config.yaml).",
    )(func)


def load_cli_config(config_path: Path | None, overrides: dict[str, Any] | None = None) -> Config:
    """Load the configuration: built-in defaults < ``--config FILE`` < command-line options."""
    return load_config(config_path, overrides=overrides or {})


def echo_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON on stdout."""
    click.echo(json.dumps(obj, indent=2, sort_keys=False, default=str))


def handle_errors(func: F) -> F:
    """Turn project errors into one line on stderr and the documented exit status.

    Patient identifiers and registered paths in the message are masked and
    control characters escaped (:func:`ichpipe.logs.safe_text`).

    ``IchpipeError`` and its subclasses exit with their ``exit_code`` (1 for a
    failed job, 2 for bad usage or config). With ``--debug`` on the group the
    traceback is printed too. Other exceptions are bugs and propagate.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except IchpipeError as exc:
            ctx = click.get_current_context(silent=True)
            debug = bool(ctx and ctx.find_root().obj and ctx.find_root().obj.get("debug"))
            if debug:
                log.exception("ichpipe failed")
            click.echo(f"ichpipe: error: {safe_text(exc)}", err=True)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]
