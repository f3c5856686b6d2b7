"""Build frozen option dataclasses from plain mappings (TOML tables, CLI ``key=value`` pairs).

One coercion routine serves the config file and every plugin's own options, so a misspelt key or
a wrong type is reported the same way everywhere: the file, the dotted key, what was expected and
the valid keys.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")

_NOTHING = object()


_NAMES: dict[Any, tuple[str, str]] = {
    str: ("a string", "strings"),
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    bool: ("true or false", "booleans (true or false)"),
    dt.date: ("a date (YYYY-MM-DD)", "dates (YYYY-MM-DD)"),
    Path: ("a path", "paths"),
    Any: ("anything", "values"),
}


def _type_name(tp: Any, plural: bool = False) -> str:
    """How a type reads in a message: ``"an integer"``, or ``"integers"`` inside a list."""
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "nothing"
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(
            _type_name(a, plural) for a in typing.get_args(tp) if a is not type(None)
        )
    if origin in (tuple, list):
        args = typing.get_args(tp)
        head = "lists" if plural else "a list"
        return f"{head} of {_type_name(args[0], plural=True)}" if args else head
    if origin in (dict, Mapping) or tp in (dict, Mapping) or dataclasses.is_dataclass(tp):
        return "tables" if plural else "a table"
    if tp in _NAMES:
        return _NAMES[tp][plural]
    return getattr(tp, "__name__", str(tp))


def coerce(tp: Any, value: Any, *, path: object, key: str) -> Any:
    """Return ``value`` as type ``tp`` or raise :class:`ConfigError` naming ``key``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value in choices:
            return value
        raise ConfigError(
            f"{value!r} is not one of {', '.join(repr(c) for c in choices)}", path=path, key=key
        )
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(arg, value, path=path, key=key)
            except ConfigError:
                continue
        raise ConfigError(f"expected {_type_name(tp)}, got {value!r}", path=path, key=key)
    if origin in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"expected {_type_name(tp)}, got {value!r}", path=path, key=key)
        item_types = [a for a in typing.get_args(tp) if a is not Ellipsis]
        item = item_types[0] if item_types else Any
        return tuple(coerce(item, v, path=path, key=f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping, typing.get_origin(Mapping[str, Any])) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a table, got {value!r}", path=path, key=key)
        return types.MappingProxyType(dict(value))
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a table, got {value!r}", path=path, key=key)
        return build(tp, value, path=path, key=key)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Path:
        if isinstance(value, (str, Path)) and str(value):
            # relative paths in a config file are relative to that file, not to the cwd
            resolved = Path(value).expanduser()
            if not resolved.is_absolute() and path is not None and Path(str(path)).suffix:
                resolved = Path(str(path)).resolve().parent / resolved
            return resolved
    elif tp is dt.date:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"expected {_type_name(tp)}, got {value!r}", path=path, key=key)


def build(
    cls: type[T], mapping: Mapping[str, Any] | None, *, path: object = None, key: str = ""
) -> T:
    """Build dataclass ``cls`` from ``mapping``.

    Unknown keys, missing required keys and wrong types raise :class:`ConfigError` naming
    ``path`` and the dotted key, with the valid keys (and the closest one) for unknown keys.
    """
    mapping = dict(mapping or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = [k for k in mapping if k not in fields]
    if unknown:
        bad = unknown[0]
        close = difflib.get_close_matches(bad, list(fields), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        where = f"{key}.{bad}" if key else bad
        raise ConfigError(
            f"unknown key {bad!r}{hint}; valid keys: {', '.join(fields) or '(none)'}",
            path=path,
            key=where,
        )
    kwargs = {}
    for name, f in fields.items():
        where = f"{key}.{name}" if key else name
        if name in mapping:
            kwargs[name] = coerce(hints[name], mapping[name], path=path, key=where)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key {name!r}", path=path, key=where)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        if exc.path is not None or path is None and not key:
            raise
        raise _located(exc, path, key) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc), path=path, key=key or None) from None


def _located(exc: ConfigError, path: object, key: str) -> ConfigError:
    """``exc``, raised by a dataclass's own checks with keys relative to it, located in the file.

    ``[columns.dat]: unknown column`` from ``__post_init__`` becomes
    ``agent.toml: [data.columns.dat]: unknown column``.
    """
    where = f"[{exc.key}]" if exc.key else ""
    text = str(exc.args[0]) if exc.args else ""
    message = text[len(where) + 2:] if where and text.startswith(f"{where}: ") else text
    dotted = ".".join(part for part in (key, exc.key) if part) or None
    return ConfigError(message, path=path, key=dotted)


def describe(cls: type) -> list[tuple[str, str, object]]:
    """``(key, type description, default)`` for each field of dataclass ``cls`` (for docs).

    A field may override its type description with ``field(metadata={"type": "..."})`` when
    the annotation alone does not say what a config file may hold there.
    """
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default: object = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = _NOTHING
        described = f.metadata.get("type") or _type_name(hints[f.name])
        rows.append((f.name, described, default))
    return rows


REQUIRED = _NOTHING
