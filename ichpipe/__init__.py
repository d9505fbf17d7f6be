"""ichpipe: intracerebral hemorrhage pipeline for non-contrast head CT.

One namespace. The top-level folders of the repository install as
subpackages of this one (setuptools ``package_dir``), so that no generic name
lands in site-packages:

- ``ichpipe.dicom_io`` (folder ``dicom_io/``): DICOM in and out;
- ``ichpipe.models`` (folder ``models/``): networks and their checkpoints;
- ``ichpipe.pipeline`` (folder ``pipeline/``): the flow by stage and the command line.

This package itself holds what every layer shares: the version, the error
hierarchy (:mod:`ichpipe.errors`), the atomic writer (:mod:`ichpipe.atomic`),
the import of optional dependencies (:mod:`ichpipe.extras`) and the progress
of long stages (:mod:`ichpipe.progress`). In a
checkout, ``ichpipe/dicom_io``, ``ichpipe/models`` and ``ichpipe/pipeline`` are
relative symlinks to the folders, so that tools reading the tree (mypy,
pytest's doctests, ``python -c "import ichpipe.pipeline"`` at the root) see
the installed layout; the wheel holds real files.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
