"""The flow: configuration, transforms, inference, measurement, linking, batch, CLI.

Composes ``dicom_io`` and ``models``; the click CLI in :mod:`ichpipe.pipeline.cli` is a
thin shell over the functions here.
"""
