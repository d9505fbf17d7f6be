"""Shared pieces of the command line: config loading, error handling, JSON output."""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ichpipe.dicom_io._privacy import forget_identifiers, identifiers_generation, known_identifiers
from ichpipe.errors import IchpipeError
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


#: Identifiers shorter than this are not masked: they would match everywhere and identify no one.
MIN_MASKED_LENGTH = 3

_state = {"log_phi": False}


def redact(text: str) -> str:
    """``text`` with every patient identifier read so far masked as ``[PatientName]``, ``[PatientID]``...

    The identifiers are the PatientName (whole and each part), PatientID,
    PatientBirthDate (as stored and as ISO 8601), OtherPatientIDs/Names and
    AccessionNumber of every header this command has read
    (:func:`ichpipe.dicom_io._privacy.known_identifiers`), matched case-insensitively
    as whole words. Nothing is masked after ``ichpipe --log-phi``.
    """
    if _state["log_phi"] or not text:
        return text
    pattern, lookup = _masking_pattern()
    if pattern is None:
        return text
    return pattern.sub(lambda m: f"[{lookup.get(m.group(0).casefold(), 'redacted')}]", text)


_cache: dict[str, Any] = {"generation": None, "pattern": None, "lookup": {}}


def _masking_pattern() -> tuple[re.Pattern[str] | None, dict[str, str]]:
    """The regular expression of the identifiers known now (rebuilt only when they change)."""
    generation = identifiers_generation()
    if _cache["generation"] != generation:
        known = {k: v for k, v in known_identifiers().items() if len(k) >= MIN_MASKED_LENGTH}
        alternatives = "|".join(re.escape(k) for k in sorted(known, key=len, reverse=True))
        # whole words: not next to a letter or digit (an underscore or a slash is a boundary: folder names)
        pattern = re.compile(rf"(?<![^\W_])(?:{alternatives})(?![^\W_])", re.IGNORECASE) if known else None
        _cache.update(generation=generation, pattern=pattern, lookup={k.casefold(): v for k, v in known.items()})
    return _cache["pattern"], _cache["lookup"]


class RedactingFormatter(logging.Formatter):
    """A formatter that masks patient identifiers in the whole record (message, arguments, traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        """Format as usual, then :func:`redact` the result."""
        return redact(super().format(record))


def setup_logging(*, verbose: bool, debug: bool, log_phi: bool = False) -> None:
    """Send logs to stderr: warnings by default, info with -v, debug with --debug.

    Patient identifiers read by this command are masked in every log line,
    warning and traceback unless ``log_phi`` (``ichpipe --log-phi``); Python
    warnings go through the same handler. The record of identifiers starts
    empty for each command.
    """
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    _state["log_phi"] = log_phi
    forget_identifiers()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.captureWarnings(True)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pydicom and highdicom are chatty about vendor quirks at WARNING; we report
    # what matters ourselves. Their debug output names each file before its
    # header (and so its identifiers) is known: only with --debug --log-phi.
    library = logging.DEBUG if debug and log_phi else logging.ERROR
    logging.getLogger("pydicom").setLevel(library)
    logging.getLogger("highdicom").setLevel(library)
    # pynetdicom logs every DIMSE message (PDU dumps) at INFO: only with --debug
    logging.getLogger("pynetdicom").setLevel(logging.DEBUG if debug else logging.WARNING)


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

    Patient identifiers in the message are masked (see :func:`redact`).

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
            click.echo(f"ichpipe: error: {redact(str(exc))}", err=True)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]
