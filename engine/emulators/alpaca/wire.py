"""Value formats of Alpaca's wire protocol: decimals as strings, RFC 3339 times, error bodies.

Alpaca sends money and quantities as JSON strings (``"100000"``, ``"187.25"``) and times as
RFC 3339 in UTC with a ``Z`` (the clock uses a New York offset).  The emulator computes with
:class:`~decimal.Decimal` so that cash and positions stay exact to the cent.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from ...errors import RLBridgeError

UTC = dt.UTC

#: Namespace of the deterministic asset ids (one UUID per symbol).
_ASSET_NAMESPACE = uuid.UUID("6f1f3c52-8a7e-4d0c-9a51-0c5b1f0e7a11")


class EmulatorError(RLBridgeError):
    """A test drove the emulator wrongly: an unknown order, a fill larger than the order, ..."""


class EmulatorTimeout(EmulatorError, TimeoutError):
    """A wait on the emulator (for stream clients, for idle) ran out of time."""


class ApiError(Exception):
    """An error response: HTTP ``status`` with Alpaca's ``{"code", "message"}`` body."""

    def __init__(self, status: int, code: int, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body Alpaca sends with this error."""
        return {"code": self.code, "message": self.message}


def dec(value: Any, what: str = "value") -> Decimal:
    """``value`` (a number or a numeric string) as a finite Decimal, or ``ApiError`` 422."""
    try:
        out = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ApiError(422, 40010001, f"invalid {what}: {value!r}") from None
    if not out.is_finite():
        raise ApiError(422, 40010001, f"invalid {what}: {value!r}")
    return out


def num(value: Decimal | None) -> str | None:
    """A Decimal as Alpaca writes it: ``"10"``, ``"187.25"``, never an exponent; None stays."""
    if value is None:
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def to_float(value: Decimal) -> float:
    """A Decimal as a float, for the inspection API."""
    return float(value)


def utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` as an aware UTC datetime (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def stamp(moment: dt.datetime | None) -> str | None:
    """RFC 3339 in UTC with microseconds and ``Z``: ``2024-01-02T14:30:00.000000Z``."""
    if moment is None:
        return None
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def bar_stamp(moment: dt.datetime) -> str:
    """A bar time as Alpaca writes it: ``2024-01-02T05:00:00Z`` (whole seconds)."""
    moment = utc(moment)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, what: str) -> dt.datetime:
    """An RFC 3339 time or ``YYYY-MM-DD`` date from a query, as aware UTC; else 400."""
    text = text.strip()
    try:
        if len(text) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), UTC)
        return utc(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise ApiError(400, 40010001, f"invalid {what}: {text!r}") from None


def asset_id(symbol: str) -> str:
    """The emulator's stable asset id of ``symbol`` (a UUID)."""
    return str(uuid.uuid5(_ASSET_NAMESPACE, position_symbol(symbol)))


def is_crypto(symbol: str) -> bool:
    """True for a crypto pair such as ``BTC/USD``."""
    return "/" in symbol


def position_symbol(symbol: str) -> str:
    """The symbol a position is listed under: Alpaca drops the slash of crypto pairs."""
    return symbol.replace("/", "")


def parse_uuid(text: str) -> str | None:
    """``text`` as a canonical UUID string, or None when it is not one."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None
