"""Which bar a live cycle decides on, and whether the market lets it send anything now.

Daily bars: a cycle runs before a session's open; it decides on the close of the previous
session and sends market-on-open orders for this session.  On a day that is not a session, or
once the session has opened, nothing is sent.  Intraday bars: a cycle runs after a bar closes,
while the session is open (early closes included); its orders are market orders.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from ..errors import DataError, RLBridgeError

if TYPE_CHECKING:
    import pandas as pd

    from ..interfaces import Bars


class MarketClosed(RLBridgeError):
    """The market does not take this cycle's orders now; the message says when it will."""


@dataclass(frozen=True)
class Decision:
    """The bar a cycle decides on and the kind of order it sends."""

    t: int
    bar: pd.Timestamp
    order_kind: str
    session: pd.Timestamp | None = None


def decide_at(bars: Bars, now: pd.Timestamp, calendar: str = "XNYS") -> Decision:
    """The decision bar at time ``now`` (tz-aware).

    Raises:
        MarketClosed: not a session day, or the session is already open (daily bars); the
            market is closed (intraday bars).
        DataError: the bars do not reach the bar the decision needs (ingest first).
    """
    import pandas as pd

    from ..data import format_stamp

    now = pd.Timestamp(now)
    if now.tzinfo is None:
        raise RLBridgeError(f"the live clock must be time-zone aware, got {now}")
    if not bars.intraday:
        day = _day(calendar, now)
        if day.next_session is not None:
            raise MarketClosed(f"{day.today.date()} is not a {calendar} session: nothing is "
                               f"sent; the next session is {day.next_session.date()}")
        assert day.opens is not None and day.previous is not None
        if now >= day.opens:
            raise MarketClosed(
                f"the {day.today.date()} session opened at {day.opens_local}: daily orders go "
                f"in before the open (market-on-open); nothing is sent")
        previous = day.previous
        index = bars.index
        if len(index) == 0 or index[-1] < previous:
            last = format_stamp(index[-1]) if len(index) else "no bars"
            raise DataError(f"the decision for {day.today.date()} needs the close of "
                            f"{previous.date()}, and the bars end at {last}: load the latest "
                            f"bars first", source="[data]")
        t = int(index.searchsorted(previous))
        if t >= len(index) or index[t] != previous:
            raise DataError(f"no bar for the session {previous.date()}", source="[data]")
        return Decision(t, index[t], "market_on_open", day.today)
    import exchange_calendars as xcals

    cal = xcals.get_calendar(calendar)
    if not cal.is_open_on_minute(now, ignore_breaks=True):
        raise MarketClosed(f"the market is closed at {now}: nothing is sent")
    index = bars.index
    t = int(index.searchsorted(now, side="right")) - 1  # the last bar closed by now
    if t < 0:
        raise DataError(f"no bar has closed by {now}", source="[data]")
    return Decision(t, index[t], "market")


@dataclass(frozen=True)
class _Day:
    """What a calendar says of one day (it never changes, so it is looked up once)."""

    today: pd.Timestamp
    next_session: pd.Timestamp | None  # when ``today`` is not a session
    opens: pd.Timestamp | None
    opens_local: str
    previous: pd.Timestamp | None


@lru_cache(maxsize=64)
def _day_facts(calendar: str, today: pd.Timestamp) -> _Day:
    import exchange_calendars as xcals

    cal = xcals.get_calendar(calendar)
    if not cal.is_session(today):
        return _Day(today, cal.date_to_session(today, direction="next"), None, "", None)
    opens = cal.session_open(today)
    return _Day(today, None, opens, f"{opens.tz_convert(cal.tz):%H:%M %Z}",
                cal.previous_session(today))


def _day(calendar: str, now: pd.Timestamp) -> _Day:
    """The calendar's facts of the exchange's day at ``now``."""
    import exchange_calendars as xcals
    import pandas as pd

    tz = _zones.get(calendar)
    if tz is None:
        tz = _zones[calendar] = xcals.get_calendar(calendar).tz
    return _day_facts(calendar, pd.Timestamp(now.tz_convert(tz).date()))


_zones: dict[str, object] = {}


def bar_decision(bars: Bars, t: int) -> Decision:
    """The decision on bar ``t`` without a clock (the ``sim`` broker replaying bars)."""
    return Decision(t, bars.index[t], "market" if bars.intraday else "market_on_open")
