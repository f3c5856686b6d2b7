"""The TWS API socket protocol: framing, the handshake, message ids and field values.

Every message after the handshake is a frame: a 4-byte big-endian length, then the fields,
each a UTF-8 string ended by a NUL byte.  The client opens with the bytes ``API\\0`` followed
by one frame holding its version range (``v157..176``, maybe followed by connect options);
the server answers with a frame of two fields, the negotiated server version and its
connection time.

The negotiated version decides field layouts (``messages`` and ``requests`` branch on it), so
the emulator caps it: it speaks :data:`MIN_SERVER_VERSION` .. :data:`MAX_SERVER_VERSION`,
the range the ib_insync 0.9.x client offers.  Version 177 and later change layouts the
client does not read (178 adds a field to execDetails), which is why the cap matters.
"""

from __future__ import annotations

import math
import re
import struct
from decimal import Decimal

from .errors import ProtocolError

#: The lowest server version the emulator speaks (ib_insync's ``MinClientVersion``).
MIN_SERVER_VERSION = 157
#: The highest server version the emulator speaks (MIN_SERVER_VER_BOND_ISSUERID).
MAX_SERVER_VERSION = 176

HANDSHAKE_PREFIX = b"API\0"
_HEADER = struct.Struct(">I")
#: Frames larger than this are refused (TWS's own limit is 16 MB).
MAX_FRAME = 16 * 1024 * 1024

#: Incoming message ids -> request names (as the client library names its calls).
INCOMING: dict[int, str] = {
    1: "reqMktData", 2: "cancelMktData", 3: "placeOrder", 4: "cancelOrder",
    5: "reqOpenOrders", 6: "reqAccountUpdates", 7: "reqExecutions", 8: "reqIds",
    9: "reqContractDetails", 15: "reqAutoOpenOrders", 16: "reqAllOpenOrders",
    17: "reqManagedAccts", 20: "reqHistoricalData", 25: "cancelHistoricalData",
    49: "reqCurrentTime", 50: "reqRealTimeBars", 51: "cancelRealTimeBars",
    58: "reqGlobalCancel", 59: "reqMarketDataType", 61: "reqPositions",
    62: "reqAccountSummary", 63: "cancelAccountSummary", 64: "cancelPositions",
    71: "startApi", 76: "reqAccountUpdatesMulti", 77: "cancelAccountUpdatesMulti",
    99: "reqCompletedOrders",
}

#: Outgoing message names -> message ids.
OUTGOING: dict[str, int] = {
    "orderStatus": 3, "error": 4, "openOrder": 5, "updateAccountValue": 6,
    "updatePortfolio": 7, "updateAccountTime": 8, "nextValidId": 9, "contractDetails": 10,
    "execDetails": 11, "managedAccounts": 15, "historicalData": 17, "currentTime": 49,
    "realtimeBar": 50, "contractDetailsEnd": 52, "openOrderEnd": 53,
    "accountDownloadEnd": 54, "execDetailsEnd": 55, "commissionReport": 59,
    "position": 61, "positionEnd": 62, "accountSummary": 63, "accountSummaryEnd": 64,
    "accountUpdateMulti": 73, "accountUpdateMultiEnd": 74, "historicalDataUpdate": 90,
    "completedOrder": 101, "completedOrdersEnd": 102,
}

_VERSION_RANGE = re.compile(r"^v(\d+)(?:\.\.(\d+))?(?:\s+(.*))?$")


def frame(fields: list[str]) -> bytes:
    """One message as bytes on the wire: length prefix, then NUL-terminated fields."""
    body = "".join(f"{f}\0" for f in fields).encode()
    return _HEADER.pack(len(body)) + body


def split_frames(buffer: bytearray) -> list[list[str]]:
    """Remove every complete frame from ``buffer`` and return their fields.

    Raises:
        ProtocolError: a frame announces more than :data:`MAX_FRAME` bytes.
    """
    out: list[list[str]] = []
    while len(buffer) >= _HEADER.size:
        (size,) = _HEADER.unpack_from(buffer)
        if size > MAX_FRAME:
            raise ProtocolError(f"frame of {size} bytes is larger than {MAX_FRAME}")
        end = _HEADER.size + size
        if len(buffer) < end:
            break
        text = bytes(buffer[_HEADER.size:end]).decode(errors="backslashreplace")
        del buffer[:end]
        fields = text.split("\0")
        if fields and fields[-1] == "":
            fields.pop()  # the last field's terminator
        out.append(fields)
    return out


def parse_version_range(text: str) -> tuple[int, int, str]:
    """``"v157..176 +PACEAPI"`` -> ``(157, 176, "+PACEAPI")``.

    Raises:
        ProtocolError: not a version range.
    """
    match = _VERSION_RANGE.match(text.strip())
    if not match:
        raise ProtocolError(f"not a client version range: {text!r}")
    low = int(match.group(1))
    high = int(match.group(2) or low)
    if high < low:
        raise ProtocolError(f"empty client version range: {text!r}")
    return low, high, match.group(3) or ""


def negotiate(client_low: int, client_high: int, cap: int) -> int | None:
    """The server version for a client range, or None when none is shared.

    The emulator answers with the highest version both sides speak, never above ``cap``.
    """
    version = min(client_high, cap)
    if version < max(client_low, MIN_SERVER_VERSION):
        return None
    return version


def fmt(value: object) -> str:
    """A value as a protocol field: None is empty, booleans are 0/1, numbers never exponents."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return _plain(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "Infinity"
        return _plain(Decimal(repr(value)))
    return str(value)


def _plain(value: Decimal) -> str:
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text


class Cursor:
    """Reads the fields of one incoming message in order, as the client wrote them."""

    def __init__(self, fields: list[str], start: int = 1) -> None:
        self.fields = fields
        self.pos = start

    def text(self) -> str:
        """The next field as it is."""
        if self.pos >= len(self.fields):
            raise ProtocolError(f"message ends after {len(self.fields)} fields")
        value = self.fields[self.pos]
        self.pos += 1
        return value

    def integer(self, default: int = 0) -> int:
        """The next field as an int (empty: ``default``)."""
        raw = self.text()
        if raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            try:
                number = float(raw)
            except ValueError:
                raise ProtocolError(f"field {self.pos - 1} is not an integer: {raw!r}") from None
            if not number.is_integer():
                raise ProtocolError(f"field {self.pos - 1} is not an integer: {raw!r}") from None
            return int(number)

    def number(self) -> Decimal | None:
        """The next field as a Decimal (empty or 'Infinite' unset: None)."""
        raw = self.text()
        if raw == "":
            return None
        if raw in ("Infinite", "Infinity", "inf"):
            return Decimal("Infinity")
        try:
            value = Decimal(raw)
        except ArithmeticError:
            raise ProtocolError(f"field {self.pos - 1} is not a number: {raw!r}") from None
        if value.is_nan():
            raise ProtocolError(f"field {self.pos - 1} is not a number: {raw!r}")
        return value

    def flag(self) -> bool:
        """The next field as a boolean (``"1"``/``"0"``, empty is False)."""
        raw = self.text()
        if raw in ("", "0", "false", "False"):
            return False
        if raw in ("1", "true", "True"):
            return True
        raise ProtocolError(f"field {self.pos - 1} is not a boolean: {raw!r}")

    def skip(self, count: int) -> None:
        """Step over ``count`` fields."""
        if self.pos + count > len(self.fields):
            raise ProtocolError(f"message ends after {len(self.fields)} fields")
        self.pos += count

    def finish(self) -> None:
        """Check that every field was read (a layout mismatch leaves fields over)."""
        if self.pos != len(self.fields):
            raise ProtocolError(f"{len(self.fields) - self.pos} unexpected fields at the end: "
                                f"{self.fields[self.pos:][:8]!r}")
