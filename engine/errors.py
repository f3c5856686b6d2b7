"""The rlbridge error hierarchy.

Every error rlbridge raises on purpose subclasses :class:`RLBridgeError`.  The CLI turns any of
them into a one-paragraph message on stderr and exit code 2, with no traceback; anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class RLBridgeError(Exception):
    """Base class of every error rlbridge raises on purpose."""


class ConfigError(RLBridgeError):
    """A configuration file or value is wrong.

    Args:
        message: what is wrong.
        path: the file, when the value came from one.
        key: the dotted key, e.g. ``data.feed``.
    """

    def __init__(self, message: str, *, path: object = None, key: str | None = None) -> None:
        self.path = None if path is None else str(path)
        self.key = key
        where = ": ".join(part for part in (self.path, f"[{key}]" if key else None) if part)
        super().__init__(f"{where}: {message}" if where else message)


class DataError(RLBridgeError):
    """Market data is missing, malformed or inconsistent.

    The message always says where: the source (file, table or feed), and when known the row
    (1-based, counting the header as row 1, as a spreadsheet shows it) and the column.
    """

    def __init__(
        self,
        message: str,
        *,
        source: object = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.source = None if source is None else str(source)
        self.row = row
        self.column = column
        parts = []
        if self.source:
            parts.append(self.source)
        if row is not None:
            parts.append(f"row {row}")
        if column is not None:
            parts.append(f"column {column!r}")
        super().__init__(f"{', '.join(parts)}: {message}" if parts else message)


class StoreError(RLBridgeError):
    """The store cannot be opened, read or written."""


class PluginError(RLBridgeError):
    """A plugin failed to load or register (raised only in strict mode)."""


class UnknownNameError(RLBridgeError, KeyError):
    """A plugin name is not registered for its kind.

    The message lists the valid names and, when there is one, the closest match.
    """

    def __init__(self, kind: str, name: str, valid: Iterable[str], *, where: str = "") -> None:
        self.kind = kind
        self.name = name
        self.valid = sorted(valid)
        close = difflib.get_close_matches(name, self.valid, n=1)
        self.suggestion = close[0] if close else None
        message = f"unknown {kind} {name!r}"
        if where:
            message = f"{where}: {message}"
        message += f"; valid names: {', '.join(self.valid) if self.valid else '(none registered)'}"
        if self.suggestion:
            message += f" (did you mean {self.suggestion!r}?)"
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class DuplicateNameError(RLBridgeError):
    """Two plugins registered the same name (or alias) for one kind."""

    def __init__(self, kind: str, name: str, first: str, second: str) -> None:
        self.kind = kind
        self.name = name
        self.plugins = (first, second)
        super().__init__(
            f"{kind} {name!r} is registered by both plugin {first!r} and plugin {second!r}; "
            f"uninstall or disable one of them (RLBRIDGE_DISABLE_PLUGINS={second})"
        )


class NotFoundError(StoreError):
    """A run, model or other record asked for by id or path is not in the store.

    The message names what was asked for and lists the most recent records that do exist.
    """


class BrokerError(RLBridgeError):
    """A broker refused a request or answered something rlbridge cannot use."""


class TransientBrokerError(BrokerError):
    """The outcome of a broker request is unknown (timeout, 5xx, dropped connection).

    An order sent when this is raised may or may not exist: look it up by its client order id
    before sending it again.
    """


class DuplicateOrderError(BrokerError):
    """The broker already has an order with this client order id."""
