"""Sending results to and pulling studies from a DICOM node (PACS); needs the ``[pacs]`` extra.

- :mod:`ichpipe.pipeline.config.pacs_config` -- the ``pacs:`` config section (no pynetdicom import).
- :mod:`ichpipe.pipeline.batch.pacs.store_scu` -- C-STORE of the DICOM SEG and Secondary Capture.
- :mod:`ichpipe.pipeline.batch.pacs.retrieve` -- C-FIND of recent studies, C-MOVE or C-GET into the inbox.

May import pydicom, pynetdicom (inside the functions, through
:func:`ichpipe.extras.import_extra`) and :mod:`ichpipe.pipeline.config`.
"""

__all__: list[str] = []
