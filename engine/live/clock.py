"""Which bar a live cycle decides on, and whether the market lets it send anything now.

Daily bars: a cycle runs before a session's open; it decides on the close of the previous
session and sends market-on-open orders for this session.  On a day that is not a session, or
once the session has opened, nothing is sent.  Intraday bars: a cycle runs after a bar closes,
while the session is open (early closes included); its orders are market orders.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    import exchange_calendars as xcals
    import pandas as pd

    from ..data import format_stamp

    cal = xcals.get_calendar(calendar)
    now = pd.Timestamp(now)
    if now.tzinfo is None:
        raise RLBridgeError(f"the live clock must be time-zone aware, got {now}")
    if not bars.intraday:
        today = pd.Timestamp(now.tz_convert(cal.tz).date())
        if not cal.is_session(today):
            nxt = cal.date_to_session(today, direction="next")
            raise MarketClosed(f"{today.date()} is not a {calendar} session: nothing is sent; "
                               f"the next session is {nxt.date()}")
        opens = cal.session_open(today)
        if now >= opens:
            raise MarketClosed(
                f"the {today.date()} session opened at {opens.tz_convert(cal.tz):%H:%M %Z}: "
                f"daily orders go in before the open (market-on-open); nothing is sent")
        previous = cal.previous_session(today)
        index = bars.index
        if len(index) == 0 or index[-1] < previous:
            last = format_stamp(index[-1]) if len(index) else "no bars"
            raise DataError(f"the decision for {today.date()} needs the close of "
                            f"{previous.date()}, and the bars end at {last}: load the latest "
                            f"bars first", source="[data]")
        t = int(index.get_indexer([previous])[0])
        if t < 0:
            raise DataError(f"no bar for the session {previous.date()}", source="[data]")
        return Decision(t, index[t], "market_on_open", today)
    if not cal.is_open_on_minute(now, ignore_breaks=True):
        raise MarketClosed(f"the market is closed at {now}: nothing is sent")
    index = bars.index
    done = index[index <= now]
    if len(done) == 0:
        raise DataError(f"no bar has closed by {now}", source="[data]")
    t = len(done) - 1
    return Decision(t, index[t], "market")


def bar_decision(bars: Bars, t: int) -> Decision:
    """The decision on bar ``t`` without a clock (the ``sim`` broker replaying bars)."""
    return Decision(t, bars.index[t], "market" if bars.intraday else "market_on_open")
