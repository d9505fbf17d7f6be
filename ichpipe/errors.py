"""The project's error types.

Every error ichpipe raises on purpose derives from :class:`IchpipeError`; the
command line turns those into one line on stderr and exit status 1 (2 for
:class:`ConfigError` and :class:`UsageError`). Anything else is a bug.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DicomInputError",
    "GeometryError",
    "IchpipeError",
    "MissingExtraError",
    "NoSeriesSelectedError",
    "OutputBuildError",
    "OutputError",
    "PacsError",
    "PredictorInputError",
    "StoreError",
    "TimelineError",
    "UsageError",
]


class IchpipeError(Exception):
    """Base class of every error ichpipe raises on purpose.

    Its message is always one line: control characters that came from the
    data (a newline in a hostile UID or file name) are escaped and a Python
    traceback embedded by a library (pydicom's ``With tag ... got exception``)
    is cut (:func:`ichpipe.logs.one_line`), whoever formats it.
    """

    #: Exit status the command line uses for this error.
    exit_code: int = 1

    def __str__(self) -> str:
        """The message on one line."""
        from ichpipe.logs import one_line

        return one_line(super().__str__())


class ConfigError(IchpipeError, ValueError):
    """The configuration file or an option is invalid (exit status 2)."""

    exit_code = 2


class UsageError(IchpipeError, ValueError):
    """The command was called with arguments that cannot work (exit status 2)."""

    exit_code = 2


class MissingExtraError(IchpipeError, ImportError):
    """An optional dependency is not installed; the message names the extra to install (exit status 2)."""

    exit_code = 2


class DicomInputError(IchpipeError):
    """A file or folder could not be read as the DICOM input it should be."""


class GeometryError(DicomInputError):
    """A series' geometry is missing or inconsistent (positions, orientation, spacing)."""


class NoSeriesSelectedError(DicomInputError):
    """No series in the study passed the selection rules."""


class CheckpointError(IchpipeError):
    """A checkpoint file is missing, not a checkpoint, or does not match the model."""


class OutputError(IchpipeError):
    """An output could not be written (read-only folder, disk full, ...)."""


class OutputBuildError(OutputError):
    """An output object (DICOM SEG, key image) cannot be built from these sources; nothing was written.

    Unlike other :class:`OutputError`s this is about the content, not the file
    system: ``run`` skips that one output, flags it and writes the others.
    """


class PacsError(IchpipeError):
    """A DICOM network operation with the PACS failed (refused association, timeout, failure status)."""


class PredictorInputError(IchpipeError):
    """Predictor inputs (features, clinical values, labels) are missing, invalid or of another kind."""


class StoreError(IchpipeError):
    """The results store cannot be opened, migrated, read or written."""


class TimelineError(IchpipeError):
    """Serial-scan data cannot be linked: unknown patient, or a table row that cannot be read."""
