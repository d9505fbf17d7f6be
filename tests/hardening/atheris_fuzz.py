"""Coverage-guided fuzzing of the DICOM reading path with atheris (libFuzzer for Python).

Each input replaces the bytes of one slice of a small valid series (the other
four slices stay good); the study is then scanned and every series assembled
(:func:`hardening_corpus.read_study`). Anything but a normal return or an
:class:`~ichpipe.errors.IchpipeError` is a crash that libFuzzer reports with
the input saved as ``crash-<sha1>``.

Run it by hand for as long as you like (atheris is optional)::

    pip install atheris
    PYTHONPATH=tests/hardening python tests/hardening/atheris_fuzz.py -max_total_time=600

``tests/hardening/test_fuzz_dicom.py::test_atheris_harness`` runs it for a
bounded number of inputs when atheris is installed.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["ichpipe.dicom_io", "pydicom"]):
    import pydicom  # noqa: F401  (instrumented for coverage feedback)
    from hardening_corpus import read_study, write_minimal_series

    from ichpipe.dicom_io.assemble import assemble_series  # noqa: F401
    from ichpipe.errors import IchpipeError

# libFuzzer ends the process with C exit(), so Python never cleans a temporary folder up:
# the pytest harness passes a folder under its tmp_path; by hand, a fresh temporary folder
# is made and left for you to inspect (libFuzzer saves crash inputs in the current folder).
_WORK = Path(os.environ.get("ICHPIPE_ATHERIS_WORK") or tempfile.mkdtemp(prefix="ichpipe-atheris-"))
_GOOD = write_minimal_series(_WORK / "seed", n=5)
_STUDY = _WORK / "study"


def test_one_input(data: bytes) -> None:
    """Replace slice 2 by ``data`` and read the study; only IchpipeError may come out."""
    _STUDY.mkdir(exist_ok=True)
    for i, good in enumerate(_GOOD):
        (_STUDY / f"{i}.dcm").write_bytes(data if i == 2 else good.read_bytes())
    try:
        read_study(_STUDY)
    except IchpipeError:
        pass  # a clear refusal is a correct outcome


def main() -> None:
    """Seed libFuzzer with a good slice and fuzz until -runs / -max_total_time."""
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)  # every corrupt file logs why it is skipped: too much for a fuzz run
    corpus = _WORK / "corpus"
    corpus.mkdir(exist_ok=True)
    (corpus / "good_slice").write_bytes(_GOOD[2].read_bytes())
    args = [a for a in sys.argv if not a.startswith("corpus=")]
    atheris.Setup([*args, str(corpus)], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
