"""Keep patient names out of warnings raised while building DICOM objects.

highdicom warns about a single-component person name with the name itself in
the message ("The string "DOE" is unlikely to represent ..."); warnings end up
in logs, and logs must not carry patient names.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["no_person_name_warnings"]

_PERSON_NAME_WARNING = r"The string .* is unlikely to represent the intended person name"


@contextmanager
def no_person_name_warnings() -> Iterator[None]:
    """Silence highdicom's person-name warnings (they quote the name) inside the block."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_PERSON_NAME_WARNING, category=UserWarning)
        yield
