"""The emulator's market clock: a settable "now" and the market's open/closed state.

By default the clock follows real time and a plain schedule: weekdays 09:30-16:00 New York,
no holidays.  A test freezes or moves time with :meth:`MarketClock.set` and may override
``is_open``, ``next_open`` and ``next_close`` (for a holiday or an early close).
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any
from zoneinfo import ZoneInfo

from .wire import UTC, utc

NEW_YORK = ZoneInfo("America/New_York")
OPEN_TIME = dt.time(9, 30)
CLOSE_TIME = dt.time(16, 0)

_KEEP: Any = object()


class MarketClock:
    """A thread-safe market clock for the emulator (``GET /v2/clock`` reads it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now: dt.datetime | None = None
        self._is_open: bool | None = None
        self._next_open: dt.datetime | None = None
        self._next_close: dt.datetime | None = None

    def set(self, now: dt.datetime | None = _KEEP, *, is_open: bool | None = _KEEP,
            next_open: dt.datetime | None = _KEEP,
            next_close: dt.datetime | None = _KEEP) -> None:
        """Freeze or move the clock; arguments left out keep their setting.

        Args:
            now: the time the emulator reports and stamps orders with (naive means UTC);
                None goes back to real time.
            is_open: force the market open or closed; None computes it from the schedule.
            next_open: force the next open; None computes it.
            next_close: force the next close; None computes it.
        """
        with self._lock:
            if now is not _KEEP:
                self._now = None if now is None else utc(now)
            if is_open is not _KEEP:
                self._is_open = is_open
            if next_open is not _KEEP:
                self._next_open = None if next_open is None else utc(next_open)
            if next_close is not _KEEP:
                self._next_close = None if next_close is None else utc(next_close)

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        """Move a frozen clock forward by ``delta`` (freezing it at real time first if needed).

        Returns:
            The new time.
        """
        with self._lock:
            self._now = (self._now or dt.datetime.now(UTC)) + delta
            return self._now

    def reset(self) -> None:
        """Back to real time and the plain schedule."""
        self.set(None, is_open=None, next_open=None, next_close=None)

    def now(self) -> dt.datetime:
        """The emulator's current time, aware UTC."""
        with self._lock:
            return self._now or dt.datetime.now(UTC)

    def snapshot(self) -> dict[str, Any]:
        """The ``GET /v2/clock`` body: ``timestamp``, ``is_open``, ``next_open``, ``next_close``.

        Times carry the New York offset, as Alpaca writes them.
        """
        with self._lock:
            now = self._now or dt.datetime.now(UTC)
            is_open, next_open, next_close = self._is_open, self._next_open, self._next_close
        if is_open is None:
            is_open = market_open_at(now)
        if next_open is None:
            next_open = _next_session_edge(now, OPEN_TIME)
        if next_close is None:
            next_close = _next_session_edge(now, CLOSE_TIME)
        return {
            "timestamp": _new_york(now),
            "is_open": bool(is_open),
            "next_open": _new_york(next_open),
            "next_close": _new_york(next_close),
        }


def market_open_at(moment: dt.datetime) -> bool:
    """True on a weekday between 09:30 and 16:00 New York (no holiday calendar)."""
    local = utc(moment).astimezone(NEW_YORK)
    return local.weekday() < 5 and OPEN_TIME <= local.time() < CLOSE_TIME


def session_open(day: dt.date) -> dt.datetime:
    """09:30 New York on ``day``, as aware UTC."""
    return dt.datetime.combine(day, OPEN_TIME, NEW_YORK).astimezone(UTC)


def _next_session_edge(moment: dt.datetime, edge: dt.time) -> dt.datetime:
    """The first weekday ``edge`` (open or close time) strictly after ``moment``."""
    local = utc(moment).astimezone(NEW_YORK)
    day = local.date()
    for _ in range(8):
        candidate = dt.datetime.combine(day, edge, NEW_YORK)
        if candidate.weekday() < 5 and candidate > local:
            return candidate.astimezone(UTC)
        day += dt.timedelta(days=1)
    raise AssertionError("unreachable: a weekday comes within 8 days")


def _new_york(moment: dt.datetime) -> str:
    return utc(moment).astimezone(NEW_YORK).isoformat(timespec="microseconds")
