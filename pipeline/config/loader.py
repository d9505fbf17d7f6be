"""Load the configuration (:func:`load_config`): nested mappings (parsed YAML) into frozen dataclasses, validated.

The loader is generic: it reads the type hints of a dataclass and checks every
value against them. An unknown key or a value of the wrong type raises
:class:`ichpipe.errors.ConfigError` whose message names the key by its dotted
path (``windows.presets.brain.width``), so a user can find it in the file.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from ichpipe.errors import ConfigError
from ichpipe.pipeline.config.schema import Config

__all__ = ["ENV_VAR", "build_dataclass", "load_config", "merge_mappings", "read_yaml", "to_plain"]

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the type hint ``tp`` and return the converted value."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"Config key '{key}' must not be empty (null).")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"Config key '{key}' has an invalid value {value!r}.")
    if origin is typing.Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(
                f"Config key '{key}' must be one of {', '.join(map(repr, allowed))}; got {value!r}."
            )
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"Config key '{key}' must be a mapping (section); got {value!r}.")
        return build_dataclass(tp, value, prefix=key)
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"Config key '{key}' must be a list; got {value!r}.")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"Config key '{key}' must be a list of {len(args)} items; got {value!r}.")
        return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin in (dict, Mapping) or origin is typing.Mapping:
        key_tp, val_tp = get_args(tp)
        if not isinstance(value, Mapping):
            raise ConfigError(f"Config key '{key}' must be a mapping; got {value!r}.")
        return types.MappingProxyType(
            {_convert(k, key_tp, key): _convert(v, val_tp, f"{key}.{k}") for k, v in value.items()}
        )
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"Config key '{key}' must be true or false; got {value!r}.")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"Config key '{key}' must be a whole number; got {value!r}.")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"Config key '{key}' must be a number; got {value!r}.")
        if math.isnan(value):  # compares false with everything: a NaN threshold silently selects nothing
            raise ConfigError(f"Config key '{key}' must be a number; got NaN (.nan).")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"Config key '{key}' must be text; got {value!r}.")
        return value
    raise TypeError(f"Unsupported config type {_type_name(tp)} for key '{key}'.")  # a bug, not input


def build_dataclass(cls: type[T], data: Mapping[str, Any], *, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, filling missing keys with defaults.

    Parameters
    ----------
    cls:
        A (frozen) dataclass type whose fields carry type hints.
    data:
        The mapping read from YAML (or built in code).
    prefix:
        Dotted path of ``data`` inside the whole file, used in error messages.

    Raises
    ------
    ichpipe.errors.ConfigError
        If ``data`` holds a key ``cls`` does not have, or a value of the wrong type.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass.")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f" in section '{prefix}'" if prefix else ""
        raise ConfigError(
            f"Unknown config key '{_join(prefix, unknown[0])}'{where}; "
            f"valid keys are: {', '.join(sorted(fields))}."
        )
    required = sorted(
        name
        for name, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and name not in data
    )
    if required:
        raise ConfigError(f"Config key '{_join(prefix, required[0])}' is required but missing.")
    kwargs = {
        name: _convert(value, hints[name], _join(prefix, name)) for name, value in data.items()
    }
    try:
        return cls(**kwargs)
    except ValueError as exc:  # __post_init__ validation
        raise ConfigError(f"Config section '{prefix or '(top)'}': {exc}") from exc


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def merge_mappings(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into ``base`` (mappings merge, everything else replaces)."""
    out: dict[str, Any] = dict(base)
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge_mappings(out[k], v)
        else:
            out[k] = v
    return out


def to_plain(obj: Any) -> Any:
    """Convert a config dataclass tree back to plain dicts, lists and scalars."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return [to_plain(v) for v in obj]
    return obj


ENV_VAR = "ICHPIPE_CONFIG"


#: A configuration file larger than this is refused unread (config.yaml with every comment is ~20 kB).
MAX_CONFIG_BYTES = 1024**2
#: Deepest bracket or indentation nesting accepted (sections, keys, lists of lists: a handful).
MAX_CONFIG_DEPTH = 32


def _nesting(text: str) -> int:
    """How deep flow brackets (``[[[...``) or block indentation go, read cheaply before parsing."""
    deepest = depth = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth = max(0, depth - 1)
    indents = sorted({len(line) - len(line.lstrip(" ")) for line in text.splitlines() if line.strip()})
    return max(deepest, len(indents))


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, raising ``ConfigError`` with the file name on any problem."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc.strerror or exc}.") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"Config file {path} is {len(raw)} bytes, more than a configuration needs"
                          f" ({MAX_CONFIG_BYTES}); is it the right file?")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Config file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8.") from exc
    depth = _nesting(text)
    if depth > MAX_CONFIG_DEPTH:
        raise ConfigError(f"Config file {path} nests {depth} levels deep, more than {MAX_CONFIG_DEPTH};"
                          " a configuration has sections of keys, nothing deeper.")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file {path} is not valid YAML: {exc}.") from exc
    except RecursionError as exc:
        raise ConfigError(f"Config file {path} nests too deeply to be a configuration.") from exc
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
