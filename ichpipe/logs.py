"""One logging set-up for every process ichpipe runs, with patient identifiers kept out of what it prints.

The command line (:func:`configure_logging`), the batch's pool workers and
Dask workers (:func:`configure_worker_logging`) and ``watch`` all log through
:class:`PrivacyFilter`, which rewrites every record before any formatter or
handler sees it:

- **identifiers masked**: every PatientName (whole and each part), PatientID,
  PatientBirthDate, OtherPatientIDs/Names and AccessionNumber of a header this
  process has read (:mod:`ichpipe.dicom_io._privacy`) becomes ``[PatientID]``
  etc., as whole words, case-insensitively;
- **paths masked**: paths registered with :func:`register_path_alias` (the
  ``--study`` folder, each inbox entry of a batch: their names often hold a
  patient's name or ID) are shown by their alias (``<study>``,
  ``<inbox>/#3f2a9c01d2``), whatever they hold;
- **control characters escaped**: a newline, carriage return, escape sequence
  or other control character in a message (a hostile file name or UID) is
  shown as ``\\n``, ``\\x1b`` ..., so one record is one line and nothing can
  forge a log line or move the terminal's cursor; tracebacks keep their line
  breaks only;
- **pydicom's embedded tracebacks cut**: ``With tag (0020,000E) got exception:
  ...\\nTraceback (most recent call last): ...`` keeps its first line.

``ichpipe --log-phi`` turns the masking off (escaping stays). The same
functions serve text that is printed without logging (:func:`safe_text`: the
error line, batch progress and failure lines, summaries).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "MIN_MASKED_LENGTH",
    "LogSettings",
    "PrivacyFilter",
    "configure_logging",
    "configure_worker_logging",
    "current_settings",
    "escape_controls",
    "one_line",
    "path_digest",
    "redact",
    "register_path_alias",
    "safe_text",
]

#: Identifiers shorter than this are not masked: they would match everywhere and identify no one.
MIN_MASKED_LENGTH = 3

#: Format of the main process's lines; workers add their process id.
MAIN_FORMAT = "%(levelname)s %(name)s: %(message)s"
WORKER_FORMAT = "%(levelname)s %(name)s[%(process)d]: %(message)s"


@dataclass(frozen=True)
class LogSettings:
    """How a process logs: level, ``--debug`` and ``--log-phi`` (picklable, handed to workers)."""

    level: int = logging.WARNING
    debug: bool = False
    log_phi: bool = False


_lock = threading.Lock()
_settings: dict[str, Any] = {"current": LogSettings(), "configured": False}
_aliases: dict[str, str] = {}
_cache: dict[str, Any] = {"key": None, "pattern": None, "lookup": {}}


def current_settings() -> LogSettings:
    """The settings this process logs with (the defaults until one of the ``configure_*`` ran)."""
    return _settings["current"]


# ----------------------------------------------------------------------------- text


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_KEEP_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str, *, keep_newlines: bool = False) -> str:
    r"""``text`` with every control character written as an escape (``\n``, ``\x1b``, ``\u2028``).

    Examples
    --------
    >>> escape_controls("series 1.2\nINFO forged line\x1b[2J")
    'series 1.2\\nINFO forged line\\x1b[2J'
    """
    return (_CONTROL_KEEP_NEWLINE if keep_newlines else _CONTROL).sub(_escape, text)


_TRACEBACK = re.compile(r"\n?Traceback \(most recent call last\):\n(?:[ \t]+[^\n]*\n?)*(?:[^\s][^\n]*)?")


def one_line(text: str) -> str:
    r"""A message on one line: embedded Python tracebacks cut out, control characters escaped.

    pydicom wraps conversion errors as ``With tag (0020,000E) got exception:
    <message>\nTraceback (most recent call last): ...``; the traceback is cut.

    Examples
    --------
    >>> one_line("With tag (0028,0030) got exception: bad\nTraceback (most recent call last):\n  File 'x'\nE: bad")
    'With tag (0028,0030) got exception: bad'
    """
    return escape_controls(_TRACEBACK.sub("", text).strip())


def path_digest(path: str | os.PathLike[str]) -> str:
    """A short, stable name for a path that must not be shown (10 hex digits of its SHA-256)."""
    return hashlib.sha256(os.fsencode(os.fspath(path))).hexdigest()[:10]


def register_path_alias(path: str | os.PathLike[str], alias: str) -> None:
    """Show ``path`` (and every path under it) as ``alias`` in masked text, unless ``--log-phi``.

    Both the path as given and its absolute, resolved form are registered.
    """
    forms = {os.fspath(path)}
    try:
        forms.add(str(Path(path).resolve()))
        forms.add(str(Path(path).absolute()))
    except (OSError, RuntimeError):
        pass
    with _lock:
        for form in forms:
            if form and form not in (".", "/"):
                _aliases[form.rstrip("/") or form] = alias


def _masking_pattern() -> tuple[re.Pattern[str] | None, dict[str, str]]:
    """One regular expression for the registered paths and the identifiers known now (cached)."""
    from ichpipe.dicom_io._privacy import identifiers_generation, known_identifiers

    with _lock:
        aliases = dict(_aliases)
    key = (identifiers_generation(), tuple(sorted(aliases.items())))
    if _cache["key"] == key:
        return _cache["pattern"], _cache["lookup"]
    known = {k: f"[{v}]" for k, v in known_identifiers().items() if len(k) >= MIN_MASKED_LENGTH}
    parts = []
    if aliases:
        # a registered path and whatever path follows it (shown as "/..."), only at a path boundary
        paths = "|".join(re.escape(p) for p in sorted(aliases, key=len, reverse=True))
        parts.append(rf"(?P<path>(?:{paths}))(?P<rest>/[^\s'\"),:;\]]*)?(?![^\s/'\"),:;.\]])")
    if known:
        # whole words: not next to a letter or digit (an underscore or a slash is a boundary: folder names)
        words = "|".join(re.escape(k) for k in sorted(known, key=len, reverse=True))
        parts.append(rf"(?<![^\W_])(?:{words})(?![^\W_])")
    pattern = re.compile("|".join(parts), re.IGNORECASE) if parts else None
    lookup = {k.casefold(): v for k, v in known.items()}
    lookup.update({f"path:{p}": a for p, a in aliases.items()})
    _cache.update(key=key, pattern=pattern, lookup=lookup)
    return pattern, lookup


def redact(text: str) -> str:
    """``text`` with registered paths shown by alias and known identifiers masked (nothing after ``--log-phi``)."""
    if current_settings().log_phi or not text:
        return text
    pattern, lookup = _masking_pattern()
    if pattern is None:
        return text

    def replace(match: re.Match[str]) -> str:
        path = match.groupdict().get("path")
        if path is not None:
            alias = lookup.get(f"path:{path}", "<path>")
            return f"{alias}/..." if match.group("rest") and match.group("rest") != "/" else alias
        return lookup.get(match.group(0).casefold(), "[redacted]")

    return pattern.sub(replace, text)


def safe_text(text: object) -> str:
    """What may be printed: :func:`redact` then :func:`one_line` (for error lines, progress, summaries)."""
    return one_line(redact(str(text)))


# ----------------------------------------------------------------------------- logging


class PrivacyFilter(logging.Filter):
    """Rewrites each record: identifiers and registered paths masked, one line, tracebacks masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` in place; always keep it."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: show what there is rather than lose the record
            message = f"{record.msg!s} {record.args!r}"
        record.msg, record.args = safe_text(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = escape_controls(redact(record.exc_text), keep_newlines=True)
        if record.stack_info:
            record.stack_info = escape_controls(redact(record.stack_info), keep_newlines=True)
        return True


def _library_levels(settings: LogSettings) -> None:
    # pydicom and highdicom are chatty about vendor quirks at WARNING; we report
    # what matters ourselves. Their debug output names each file before its
    # header (and so its identifiers) is known: only with --debug --log-phi.
    library = logging.DEBUG if settings.debug and settings.log_phi else logging.ERROR
    logging.getLogger("pydicom").setLevel(library)
    logging.getLogger("highdicom").setLevel(library)
    # pynetdicom dumps every DIMSE message at INFO/DEBUG: only with --debug
    logging.getLogger("pynetdicom").setLevel(logging.DEBUG if settings.debug else logging.WARNING)


def _handler(stream: TextIO, fmt: str) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.addFilter(PrivacyFilter())
    handler.setFormatter(logging.Formatter(fmt))
    return handler


def configure_logging(settings: LogSettings, *, stream: TextIO | None = None, worker: bool = False) -> None:
    """Set up logging of this process: one stderr handler on the root logger, through :class:`PrivacyFilter`.

    Parameters
    ----------
    settings:
        Level, ``--debug``, ``--log-phi``.
    stream:
        Where lines go (default ``sys.stderr``).
    worker:
        A worker process (lines carry the process id).

    Python warnings go through the same handler.
    """
    with _lock:
        _settings["current"] = settings
        _settings["configured"] = True
        _aliases.clear()
    handler = _handler(stream or sys.stderr, WORKER_FORMAT if worker else MAIN_FORMAT)
    logging.captureWarnings(True)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    _library_levels(settings)


def configure_worker_logging(settings: LogSettings) -> None:
    """Log like the command that started this work, in a process that may not be ours (a Dask worker).

    In a process where :func:`configure_logging` already ran, only the
    settings are updated. Elsewhere the process's own handlers are kept but
    get a :class:`PrivacyFilter`, and ichpipe's loggers get a stderr handler
    of their own with the filter (Dask workers often have no root handler).
    Idempotent.
    """
    with _lock:
        first = not _settings["configured"]
        _settings["current"] = settings
        _settings["configured"] = True
    _library_levels(settings)
    if not first:
        return
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, PrivacyFilter) for f in handler.filters):
            handler.addFilter(PrivacyFilter())
    ours = logging.getLogger("ichpipe")
    ours.handlers[:] = [_handler(sys.stderr, WORKER_FORMAT)]
    ours.setLevel(settings.level)
    ours.propagate = False
