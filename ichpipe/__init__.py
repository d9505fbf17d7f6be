"""ichpipe: intracerebral hemorrhage pipeline for non-contrast head CT.

This small package holds what every layer shares: the version and the error
hierarchy. The work itself lives in the top-level packages ``dicom_io``
(DICOM in and out), ``models`` (networks and checkpoints) and ``pipeline``
(the flow and the command line).
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
