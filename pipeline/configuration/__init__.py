"""Configuration: frozen dataclasses loaded from YAML with validation.

Precedence: built-in defaults < ``--config FILE`` (or ``$ICHPIPE_CONFIG``) <
command-line options. An unknown key or a wrong type is a
:class:`ichpipe.errors.ConfigError` naming the key (exit status 2).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ichpipe.errors import ConfigError
from ichpipe.pipeline.configuration.loader import build_dataclass, merge_mappings, to_plain
from ichpipe.pipeline.configuration.schema import Config, WindowsConfig

__all__ = ["Config", "WindowsConfig", "load_config", "read_yaml", "to_plain"]

ENV_VAR = "ICHPIPE_CONFIG"


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, raising ``ConfigError`` with the file name on any problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc.strerror or exc}.") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file {path} is not valid YAML: {exc}.") from exc
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"Config file {path} must hold a mapping of sections at the top level.")
    return dict(data)


def load_config(path: Path | None = None, *, overrides: Mapping[str, Any] | None = None) -> Config:
    """Load the configuration.

    Parameters
    ----------
    path:
        YAML file whose keys override the built-in defaults; ``None`` uses
        ``$ICHPIPE_CONFIG`` when set, else the defaults alone.
    overrides:
        Nested mapping of values from the command line; wins over the file.

    Raises
    ------
    ichpipe.errors.ConfigError
        On an unreadable file, invalid YAML, an unknown key or a wrong type.
    """
    if path is None and os.environ.get(ENV_VAR):
        path = Path(os.environ[ENV_VAR])
    data: dict[str, Any] = read_yaml(path) if path is not None else {}
    if overrides:
        data = merge_mappings(data, overrides)
    if path is not None:
        try:
            return build_dataclass(Config, data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    return build_dataclass(Config, data)
