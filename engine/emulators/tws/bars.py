"""Historical bars the emulator serves, and IB's bar sizes, durations and date strings.

Bars are kept per instrument and bar size (``"1 day"``, ``"1 hour"``, ``"5 mins"``, ...);
nothing is aggregated, so a request is answered from the bars loaded for exactly its bar
size.  Daily (and weekly, monthly) bars are keyed by date: a naive timestamp is the session
date.  Intraday bars are keyed by their start time: naive timestamps are UTC.

A request's window is ``(end - duration, end]`` in calendar time (``S`` seconds, ``D`` days,
``W`` weeks, ``M`` months, ``Y`` years): a daily bar is served when its date is after the
start's date and not after the end's date (both in the emulator's time zone); an intraday
bar when ``start <= time < end``.
"""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import EmulatorError

UTC = dt.UTC
#: IB's bar size settings, as TWS spells them, and their length in seconds (0: calendar).
BAR_SIZES: dict[str, int] = {
    "1 secs": 1, "5 secs": 5, "10 secs": 10, "15 secs": 15, "30 secs": 30,
    "1 min": 60, "2 mins": 120, "3 mins": 180, "5 mins": 300, "10 mins": 600,
    "15 mins": 900, "20 mins": 1200, "30 mins": 1800, "1 hour": 3600, "2 hours": 7200,
    "3 hours": 10800, "4 hours": 14400, "8 hours": 28800,
    "1 day": 0, "1 week": 0, "1 month": 0,
}
_SIZE = re.compile(r"^(\d+)\s*(secs?|mins?|hours?|days?|weeks?|months?)$", re.IGNORECASE)
_DURATION = re.compile(r"^(\d+)\s+([SDWMY])$")
_END = re.compile(r"^(\d{8})(?:([ -])(\d{1,2}:\d{2}:\d{2}))?(?:\s+(\S+))?$")
_ALIASES = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume",
            "t": "timestamp", "date": "timestamp", "time": "timestamp", "datetime": "timestamp",
            "vwap": "average", "wap": "average", "vw": "average", "n": "bar_count",
            "trade_count": "bar_count", "barcount": "bar_count", "count": "bar_count"}


@dataclass(frozen=True)
class StoredBar:
    """One bar: ``key`` is a date (daily) or an aware UTC start time (intraday)."""

    key: dt.date
    open: float
    high: float
    low: float
    close: float
    volume: float
    average: float
    bar_count: int

    @property
    def start(self) -> dt.datetime:
        """The bar's start as aware UTC (midnight UTC for a daily bar)."""
        if isinstance(self.key, dt.datetime):
            return self.key
        return dt.datetime.combine(self.key, dt.time(), UTC)


def normalize_bar_size(text: str) -> str:
    """``"1 min"``, ``"1 mins"``, ``"1min"`` -> ``"1 min"``; ``"1 secs"`` for seconds.

    Raises:
        ValueError: not one of IB's bar sizes.
    """
    match = _SIZE.match(text.strip())
    if match:
        count, unit = int(match.group(1)), match.group(2).lower().rstrip("s")
        plural = unit == "sec" or (count > 1 and unit in ("min", "hour"))
        name = f"{count} {unit}" + ("s" if plural else "")
        if name in BAR_SIZES:
            return name
    raise ValueError(f"invalid bar size {text!r}; valid: {', '.join(BAR_SIZES)}")


def is_daily(bar_size: str) -> bool:
    """True for bar sizes keyed by date (day, week, month)."""
    return BAR_SIZES[bar_size] == 0


def window_start(end: dt.datetime, duration: str) -> dt.datetime:
    """``end`` minus an IB duration string (``"30 D"``, ``"1 Y"``, ``"3600 S"``).

    Raises:
        ValueError: not a duration.
    """
    match = _DURATION.match(duration.strip())
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"invalid duration {duration!r}; use an integer and S, D, W, M or Y")
    count, unit = int(match.group(1)), match.group(2)
    if unit == "S":
        return end - dt.timedelta(seconds=count)
    if unit == "D":
        return end - dt.timedelta(days=count)
    if unit == "W":
        return end - dt.timedelta(weeks=count)
    months = count if unit == "M" else 12 * count
    year, month = divmod(end.year * 12 + end.month - 1 - months, 12)
    day = min(end.day, calendar.monthrange(year, month + 1)[1])
    return end.replace(year=year, month=month + 1, day=day)


def parse_end(text: str, now: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """A request's ``endDateTime`` as aware UTC; empty means ``now``.

    Accepts ``"20240105 16:00:00 US/Eastern"`` (any IANA zone), ``"20240105-21:00:00"``
    (UTC), ``"20240105 16:00:00"`` (the emulator's zone) and ``"20240105"`` (end of day).

    Raises:
        ValueError: not a date-time TWS accepts.
    """
    text = text.strip()
    if not text:
        return now
    match = _END.match(text)
    if not match:
        raise ValueError(f"end date/time {text!r} is invalid")
    day = dt.datetime.strptime(match.group(1), "%Y%m%d")
    tz: dt.tzinfo = zone
    if match.group(4):
        try:
            tz = ZoneInfo(match.group(4))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone in end date/time {text!r}") from None
    elif match.group(2) == "-":
        tz = UTC
    clock = match.group(3) or "23:59:59"
    hour, minute, second = (int(x) for x in clock.split(":"))
    return day.replace(hour=hour, minute=minute, second=second, tzinfo=tz).astimezone(UTC)


def stamp(moment: dt.datetime, zone: ZoneInfo) -> str:
    """``"20240105 16:00:00 US/Eastern"``: a time as TWS writes it, in its zone."""
    return f"{moment.astimezone(zone):%Y%m%d %H:%M:%S} {zone.key}"


def bar_date(bar: StoredBar, daily: bool, format_date: int, zone: ZoneInfo) -> str:
    """The date field of a bar: ``YYYYMMDD`` for daily bars, else zoned text or epoch seconds."""
    if daily:
        return f"{bar.key:%Y%m%d}"
    if format_date == 2:
        return str(int(bar.start.timestamp()))
    return stamp(bar.start, zone)


class BarStore:
    """Bars by ``(instrument key, bar size)``, sorted by key."""

    def __init__(self) -> None:
        self._bars: dict[tuple[str, str], list[StoredBar]] = {}

    def add(self, key: str, rows: Any, bar_size: str, zone: ZoneInfo) -> list[StoredBar]:
        """Add bars (a bar with the same date/time replaces the earlier one).

        Args:
            key: the instrument, ``"SPY"`` or ``"EUR.USD"``.
            rows: a pandas DataFrame (datetime index or a ``timestamp``/``date`` column;
                ``open, high, low, close, volume``, optionally ``average``/``vwap`` and
                ``bar_count``/``trade_count``), an :class:`rlbridge.Bars` panel holding
                ``key``, or an iterable of such mappings or of
                ``(timestamp, open, high, low, close, volume)`` tuples.
            bar_size: an IB bar size (``"1 day"``, ``"1 min"``, ...).
            zone: the zone an aware timestamp of a daily bar is converted to for its date.

        Returns:
            The bars added, oldest first.
        """
        daily = is_daily(bar_size)
        new = sorted((_to_bar(r, daily, zone) for r in _records(key, rows)),
                     key=lambda b: b.start)
        current = {bar.key: bar for bar in self._bars.get((key, bar_size), [])}
        current.update((bar.key, bar) for bar in new)
        self._bars[(key, bar_size)] = sorted(current.values(), key=lambda b: b.start)
        return new

    def series(self, key: str, bar_size: str) -> list[StoredBar]:
        """Every bar of ``key`` at ``bar_size``, oldest first (a copy)."""
        return list(self._bars.get((key, bar_size), []))

    def window(self, key: str, bar_size: str, start: dt.datetime, end: dt.datetime,
               zone: ZoneInfo) -> list[StoredBar]:
        """The bars a request for ``(start, end]`` gets (see the module documentation)."""
        bars = self._bars.get((key, bar_size), [])
        if is_daily(bar_size):
            first, last = start.astimezone(zone).date(), end.astimezone(zone).date()
            return [b for b in bars if first < b.key <= last]
        starts = [b.start for b in bars]
        return bars[bisect.bisect_left(starts, start):bisect.bisect_left(starts, end)]

    def first_at_or_after(self, key: str, bar_size: str, moment: dt.datetime) -> list[StoredBar]:
        """Bars of ``key`` starting at or after ``moment`` (daily: from its UTC date)."""
        bars = self._bars.get((key, bar_size), [])
        if is_daily(bar_size):
            day = moment.date()
            return [b for b in bars if b.key >= day]
        starts = [b.start for b in bars]
        return bars[bisect.bisect_left(starts, moment):]


def _records(key: str, rows: Any) -> Iterable[Mapping[str, Any] | tuple[Any, ...]]:
    if hasattr(rows, "symbols") and hasattr(rows, "values") and hasattr(rows, "index"):
        if key not in rows.symbols:
            raise EmulatorError(f"the bars panel has no symbol {key!r}: {rows.symbols}")
        column = rows.symbols.index(key)
        return [(t, *map(float, rows.values[i, column])) for i, t in enumerate(rows.index)]
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a pandas DataFrame
        frame = rows.rename(columns=lambda c: _ALIASES.get(str(c).lower(), str(c).lower()))
        if "timestamp" not in frame.columns:
            frame = frame.rename_axis("timestamp").reset_index()
        return frame.to_dict("records")
    return rows


def _to_bar(row: Mapping[str, Any] | tuple[Any, ...], daily: bool, zone: ZoneInfo) -> StoredBar:
    if isinstance(row, Mapping):
        data = {_ALIASES.get(str(k).lower(), str(k).lower()): v for k, v in row.items()}
    else:
        data = dict(zip(("timestamp", "open", "high", "low", "close", "volume", "average",
                         "bar_count"), row, strict=False))
    try:
        o, h, low, c, v = (float(data[k]) for k in ("open", "high", "low", "close", "volume"))
        when = data["timestamp"]
    except KeyError as exc:
        raise EmulatorError(f"a bar needs timestamp, open, high, low, close and volume; "
                            f"missing {exc.args[0]!r} in {row!r}") from None
    if not all(math.isfinite(x) for x in (o, h, low, c, v)) or h < low:
        raise EmulatorError(f"a bar needs finite prices and high >= low: {row!r}")
    average: Any = data.get("average")
    count: Any = data.get("bar_count")
    wap = c if _missing(average) else float(average)
    return StoredBar(_key(when, daily, zone), o, h, low, c, v, wap,
                     0 if _missing(count) else int(count))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _key(value: Any, daily: bool, zone: ZoneInfo) -> dt.date:
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        value = value.to_pydatetime()
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, dt.datetime):
        if daily:
            return (value.astimezone(zone) if value.tzinfo else value).date()
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, dt.date):
        if daily:
            return value
        return dt.datetime.combine(value, dt.time(), UTC)
    raise EmulatorError(f"not a bar timestamp: {value!r}")
