"""Sending results to and pulling studies from a DICOM node (PACS).

- :mod:`pipeline.pacs.config` -- the ``pacs:`` config section (no pynetdicom import).
- :mod:`pipeline.pacs.store_scu` -- C-STORE of the DICOM SEG and Secondary Capture.
- :mod:`pipeline.pacs.retrieve` -- C-FIND of recent studies, C-MOVE or C-GET into the inbox.
"""

from pipeline.pacs.config import PacsConfig

__all__ = ["PacsConfig"]
