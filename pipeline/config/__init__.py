"""Configuration: one frozen dataclass per ``config.yaml`` section, loaded from YAML with validation.

Stage ``config`` of the pipeline. Precedence: built-in defaults <
``--config FILE`` (or ``$ICHPIPE_CONFIG``) < command-line options. An unknown
key or a wrong type is a :class:`ichpipe.errors.ConfigError` naming the key
(exit status 2).

Modules: :mod:`~ichpipe.pipeline.config.loader` (``load_config``, the generic
YAML-to-dataclass loader), :mod:`~ichpipe.pipeline.config.schema` (:class:`Config`,
the tree of sections) and one ``<section>_config`` module per section of
``pipeline``: ``windows``, ``anatomy``, ``models``, ``inference``,
``threshold``, ``quality``, ``measure``, ``outputs``, ``store``, ``expansion``,
``predictor`` (with ``features``), ``batch``, ``pacs``, ``training``, ``progress``.
The ``discovery``, ``selection`` and ``geometry`` sections are
:mod:`ichpipe.dicom_io`'s own dataclasses.

May import: :mod:`ichpipe.errors`, :mod:`ichpipe.dicom_io` (its config
dataclasses) and :mod:`ichpipe.pipeline.serial.expansion` (the expansion
presets); nothing heavy (no torch, SQLAlchemy, Dask or pynetdicom), so that
every command loads its configuration fast. Every other stage imports its
section from here.
"""

from __future__ import annotations

from ichpipe.pipeline.config.loader import load_config, read_yaml, to_plain
from ichpipe.pipeline.config.schema import Config
from ichpipe.pipeline.config.windows_config import WindowsConfig

__all__ = ["Config", "WindowsConfig", "load_config", "read_yaml", "to_plain"]
