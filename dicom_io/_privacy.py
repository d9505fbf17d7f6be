"""Keep patient identifiers out of warnings and logs.

highdicom warns about a single-component person name with the name itself in
the message ("The string "DOE" is unlikely to represent ..."); warnings end up
in logs, and logs must not carry patient names.

Every header read records its patient identifiers here
(:func:`remember_identifiers`); the command line's log formatter masks those
values wherever they appear (a folder named after the patient, a library
warning quoting a value) unless ``--log-phi`` is given.
"""

from __future__ import annotations

import re
import threading
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pydicom is imported by what reads headers; the command line's log masking needs none of it
    from pydicom.dataset import Dataset

__all__ = [
    "IDENTIFYING_KEYWORDS",
    "forget_identifiers",
    "identifiers_generation",
    "known_identifiers",
    "no_person_name_warnings",
    "remember_identifiers",
    "remember_values",
]

_PERSON_NAME_WARNING = r"The string .* is unlikely to represent the intended person name"


@contextmanager
def no_person_name_warnings() -> Iterator[None]:
    """Silence highdicom's person-name warnings (they quote the name) inside the block."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_PERSON_NAME_WARNING, category=UserWarning)
        yield


# ------------------------------------------------------------------ identifiers seen

#: Attributes whose values identify the patient directly; :func:`remember_identifiers` records them.
IDENTIFYING_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDs", "OtherPatientNames",
                        "AccessionNumber")

_known: dict[str, str] = {}
_lock = threading.Lock()
_generation = [0]  # bumped on every change, so that readers can cache what they derive


def _words(keyword: str, value: object) -> list[str]:
    """The strings under which a value may show up in text (a name's parts, a date in ISO form)."""
    from pydicom.multival import MultiValue  # already imported: a value comes from a header just read

    values = list(value) if isinstance(value, list | tuple | MultiValue) else [value]
    out: list[str] = []
    for item in values:
        text = str(item or "").strip()
        if not text:
            continue
        out.append(text)
        if keyword.endswith("Names") or keyword == "PatientName":
            out += [part.strip() for part in re.split(r"[\^=]", text) if part.strip()]
            out += [word for word in re.split(r"[\s\^=,]+", text) if word]
        if keyword == "PatientBirthDate" and re.fullmatch(r"\d{8}", text):
            out.append(f"{text[:4]}-{text[4:6]}-{text[6:]}")
    return out


def remember_identifiers(ds: Dataset) -> None:
    """Record the patient identifiers of a header just read, so that logs can mask them.

    Called by :func:`ichpipe.dicom_io.discover.read_header` for every header; the
    command line's log formatter masks every recorded value (see
    :func:`known_identifiers`) unless ``--log-phi`` is given.
    """
    found: dict[str, str] = {}
    for keyword in IDENTIFYING_KEYWORDS:
        try:
            value = ds.get(keyword)
        except (ValueError, TypeError, LookupError):
            continue
        for word in _words(keyword, value):
            found.setdefault(word, keyword)
    if found:
        with _lock:
            before = len(_known)
            for word, keyword in found.items():
                _known.setdefault(word, keyword)
            if len(_known) != before:
                _generation[0] += 1


def remember_values(keyword: str, values: Iterable[str]) -> None:
    """Record identifiers that did not come from a DICOM header (e.g. patient IDs of an imported table).

    ``keyword`` names what they are (``PatientID``); logs then mask them as
    ``[PatientID]`` like the identifiers of a header.
    """
    if keyword not in IDENTIFYING_KEYWORDS:
        raise ValueError(f"Argument 'keyword' must be one of {', '.join(IDENTIFYING_KEYWORDS)}; got {keyword!r}.")
    words = [w for value in values for w in _words(keyword, value)]
    if not words:
        return
    with _lock:
        before = len(_known)
        for word in words:
            _known.setdefault(word, keyword)
        if len(_known) != before:
            _generation[0] += 1


def known_identifiers() -> dict[str, str]:
    """Every identifier recorded so far in this process: value -> the attribute it came from."""
    with _lock:
        return dict(_known)


def identifiers_generation() -> int:
    """A number that changes whenever the record of identifiers changes."""
    with _lock:
        return _generation[0]


def forget_identifiers() -> None:
    """Clear the record (the command line does this when a command starts)."""
    with _lock:
        _known.clear()
        _generation[0] += 1
