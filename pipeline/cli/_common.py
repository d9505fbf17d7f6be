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

from ichpipe.errors import IchpipeError
from pipeline.configuration import Config, load_config

__all__ = ["config_option", "echo_json", "handle_errors", "load_cli_config", "setup_logging"]

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger("ichpipe")


def setup_logging(*, verbose: bool, debug: bool) -> None:
    """Send logs to stderr: warnings by default, info with -v, debug with --debug."""
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pydicom and highdicom are chatty about vendor quirks at WARNING; we report
    # what matters ourselves.
    logging.getLogger("pydicom").setLevel(logging.ERROR if not debug else logging.DEBUG)
    logging.getLogger("highdicom").setLevel(logging.ERROR if not debug else logging.DEBUG)


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
            click.echo(f"ichpipe: error: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]
