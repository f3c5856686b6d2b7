"""Bars held by the emulator and served by the market-data REST API, page by page.

Bars are kept per symbol and timeframe (``"1Min"``, ``"1Hour"``, ``"1Day"``, ...); nothing is
aggregated, so a request is answered from the bars loaded for exactly its timeframe.  Naive
timestamps of daily (or longer) stock bars are session dates and are stamped at midnight New
York, as Alpaca stamps them; every other naive timestamp is UTC.

A multi-symbol request returns bars ordered by symbol, then time; ``limit`` caps the bars of a
page across all symbols and a ``next_page_token`` (opaque, base64) marks where the next page
starts, exactly the contract alpaca-py's pagination loop follows.
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import json
import math
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .clock import NEW_YORK
from .wire import UTC, ApiError, EmulatorError, bar_stamp, is_crypto, utc

_TIMEFRAME = re.compile(r"^(\d+)(Min|T|Hour|H|Day|D|Week|W|Month|M)$")
_UNITS = {"Min": "Min", "T": "Min", "Hour": "Hour", "H": "Hour", "Day": "Day", "D": "Day",
          "Week": "Week", "W": "Week", "Month": "Month", "M": "Month"}
_ALIASES = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume",
            "n": "trade_count", "vw": "vwap", "t": "timestamp", "date": "timestamp",
            "time": "timestamp", "datetime": "timestamp"}


@dataclass(frozen=True)
class StoredBar:
    """One bar as the emulator holds it."""

    t: dt.datetime
    o: float
    h: float
    l: float  # noqa: E741  (Alpaca's wire name)
    c: float
    v: float
    n: int | None = None
    vw: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The REST shape ``{"t", "o", "h", "l", "c", "v", "n", "vw"}``; ``n``, ``vw`` nullable."""
        volume: float | int = int(self.v) if float(self.v).is_integer() else self.v
        return {"t": bar_stamp(self.t), "o": self.o, "h": self.h, "l": self.l, "c": self.c,
                "v": volume, "n": self.n, "vw": self.vw}


def normalize_timeframe(text: str) -> str:
    """``"1D"``, ``"1Day"`` -> ``"1Day"``; an unknown timeframe is a 400, as Alpaca answers."""
    match = _TIMEFRAME.match(str(text).strip())
    if not match:
        raise ApiError(400, 40010001, f"invalid timeframe: {text!r}")
    return f"{int(match.group(1))}{_UNITS[match.group(2)]}"


class BarBook:
    """Thread-safe store of bars by ``(symbol, timeframe)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bars: dict[tuple[str, str], list[StoredBar]] = {}

    def add(self, symbol: str, rows: Any, timeframe: str = "1Day") -> list[StoredBar]:
        """Add bars (a later bar with the same timestamp replaces the earlier one).

        Args:
            symbol: ``"SPY"`` or a crypto pair ``"BTC/USD"``.
            rows: a pandas DataFrame (a datetime index or a ``timestamp``/``date`` column, and
                ``open, high, low, close, volume`` columns, optionally ``trade_count`` and
                ``vwap``; short names ``t, o, h, l, c, v, n, vw`` also work), an
                :class:`rlbridge.Bars` panel holding ``symbol``, or an iterable of mappings
                with those keys or of ``(timestamp, open, high, low, close, volume)`` tuples.
            timeframe: the timeframe these bars answer, e.g. ``"1Day"``, ``"1Hour"``, ``"1Min"``.

        Returns:
            The bars added, in time order.
        """
        timeframe = _checked_timeframe(timeframe)
        daily = timeframe.endswith(("Day", "Week", "Month")) and not is_crypto(symbol)
        new = sorted((_to_bar(row, daily) for row in _records(symbol, rows)), key=lambda b: b.t)
        with self._lock:
            current = {bar.t: bar for bar in self._bars.get((symbol, timeframe), [])}
            current.update((bar.t, bar) for bar in new)
            self._bars[(symbol, timeframe)] = sorted(current.values(), key=lambda b: b.t)
        return new

    def series(self, symbol: str, timeframe: str) -> list[StoredBar]:
        """All bars of ``symbol`` in ``timeframe``, oldest first (a copy)."""
        with self._lock:
            return list(self._bars.get((symbol, _checked_timeframe(timeframe)), []))

    def query(self, symbols: list[str], timeframe: str, *, start: dt.datetime | None,
              end: dt.datetime | None, limit: int, page_token: str | None,
              descending: bool = False) -> tuple[dict[str, list[dict[str, Any]]], str | None]:
        """One page of bars for ``symbols``, ordered by symbol, then time.

        Args:
            symbols: the requested symbols (unknown ones simply have no bars).
            timeframe: a normalized timeframe.
            start: first time to include, or None for no bound.
            end: last time to include, or None for no bound.
            limit: the most bars in this page, across all symbols.
            page_token: the ``next_page_token`` of the previous page, or None.
            descending: newest first within each symbol.

        Returns:
            ``({symbol: [bar JSON, ...]}, next_page_token or None)``.
        """
        after = _decode_token(page_token) if page_token else None
        page: dict[str, list[dict[str, Any]]] = {}
        count, last = 0, None
        with self._lock:
            for symbol in sorted(set(symbols)):
                bars = [b for b in self._bars.get((symbol, timeframe), [])
                        if (start is None or b.t >= start) and (end is None or b.t <= end)]
                if descending:
                    bars.reverse()
                for bar in bars:
                    if after is not None and not _is_after(symbol, bar.t, after, descending):
                        continue
                    if count == limit:
                        return page, _encode_token(*last)  # type: ignore[misc]
                    page.setdefault(symbol, []).append(bar.to_json())
                    count, last = count + 1, (symbol, bar.t)
        return page, None

    def first_at_or_after(self, symbol: str, timeframe: str,
                          moment: dt.datetime) -> list[StoredBar]:
        """The bars of ``symbol`` whose time is at or after ``moment``, oldest first."""
        with self._lock:
            bars = self._bars.get((symbol, timeframe), [])
            keys = [b.t for b in bars]
            return bars[bisect.bisect_left(keys, moment):]


def _checked_timeframe(timeframe: str) -> str:
    try:
        return normalize_timeframe(timeframe)
    except ApiError as exc:
        raise EmulatorError(exc.message) from None


def _is_after(symbol: str, t: dt.datetime, key: tuple[str, dt.datetime], descending: bool) -> bool:
    if symbol != key[0]:
        return symbol > key[0]
    return t < key[1] if descending else t > key[1]


def _encode_token(symbol: str, t: dt.datetime) -> str:
    raw = json.dumps([symbol, t.isoformat()]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_token(token: str) -> tuple[str, dt.datetime]:
    try:
        symbol, when = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(symbol), dt.datetime.fromisoformat(when)
    except (ValueError, TypeError):
        raise ApiError(400, 40010001, "invalid page_token") from None


def _records(symbol: str, rows: Any) -> Iterable[Mapping[str, Any] | tuple[Any, ...]]:
    if hasattr(rows, "symbols") and hasattr(rows, "values") and hasattr(rows, "index"):
        if symbol not in rows.symbols:
            raise EmulatorError(f"the bars panel has no symbol {symbol!r}: {rows.symbols}")
        column = rows.symbols.index(symbol)
        return [(t, *map(float, rows.values[i, column]))
                for i, t in enumerate(rows.index)]
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a pandas DataFrame
        frame = rows.rename(columns=lambda c: _ALIASES.get(str(c).lower(), str(c).lower()))
        if "timestamp" not in frame.columns:
            frame = frame.rename_axis("timestamp").reset_index()
        return frame.to_dict("records")
    return rows


def _to_bar(row: Mapping[str, Any] | tuple[Any, ...], daily: bool) -> StoredBar:
    if isinstance(row, Mapping):
        data = {_ALIASES.get(str(k).lower(), str(k).lower()): v for k, v in row.items()}
    else:
        data = dict(zip(("timestamp", "open", "high", "low", "close", "volume",
                         "trade_count", "vwap"), row, strict=False))
    try:
        values = [float(data[k]) for k in ("open", "high", "low", "close", "volume")]
        when = _timestamp(data["timestamp"], daily)
    except KeyError as exc:
        raise EmulatorError(f"a bar needs timestamp, open, high, low, close and volume; "
                            f"missing {exc.args[0]!r} in {row!r}") from None
    if not all(math.isfinite(x) for x in values) or values[1] < values[2]:
        raise EmulatorError(f"a bar needs finite prices and high >= low: {row!r}")
    count, vwap = data.get("trade_count"), data.get("vwap")
    o, h, low, c, v = values
    return StoredBar(when, o, h, low, c, v, n=None if _missing(count) else int(count or 0),
                     vw=None if _missing(vwap) else float(vwap or 0.0))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _timestamp(value: Any, daily: bool) -> dt.datetime:
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        value = value.to_pydatetime()
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    if not isinstance(value, dt.datetime):
        raise EmulatorError(f"not a bar timestamp: {value!r}")
    if value.tzinfo is None:
        return value.replace(tzinfo=NEW_YORK).astimezone(UTC) if daily else utc(value)
    return utc(value)
