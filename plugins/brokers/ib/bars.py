"""Live bars of the ``ib`` broker: TWS's 5-second real-time bars, built into the run's bars.

``rlbridge live`` on intraday bars waits in :meth:`IBBroker.wait_for_bar
<rlbridge.plugins.brokers.ib.IBBroker.wait_for_bar>`.  Its first call subscribes to
``reqRealTimeBars`` (5-second bars: ``TRADES`` for stocks and ETFs, ``MIDPOINT`` for forex,
or ``[data] what_to_show``) for every symbol of the run, on the broker's connection.  The
5-second bars are summed into bars of the run's interval (``[data] interval`` of the ``sql``
feed, ``bar_size`` of the ``ib`` feed, else the spacing of the run's bars), aligned on the
epoch in UTC (``1m``, ``5m``, ``15m``... start on whole minutes) and keyed by their start
time, as the store keeps intraday bars.

A bar is complete when its last 5-second bar has arrived, or when a 5-second bar of a later
bar arrives.  A bar whose start was missed (the subscription began inside it) is left out:
it would be a wrong bar.  Each complete bar is written to the run's store at the interval
the ``[data]`` feed reads; the wait returns True once a new bar has been written for every
symbol (or once one symbol has moved a whole bar past it: a symbol that did not trade does
not hold the run back).

After a dropped connection the next wait reconnects and subscribes again; a bar in progress
during the outage is left out.  The bars that closed while nothing streamed (during an outage,
or before the run started: from the last bar the run's panel holds) are read from TWS's
historical bars when each symbol's first bar after a subscription is written, and stored
before it, so the panel has no hole.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlbridge.errors import BrokerError, ConfigError, TransientBrokerError

from . import contracts

if TYPE_CHECKING:
    from rlbridge.store import Store

    from .connection import Connection

log = logging.getLogger("rlbridge.plugins.brokers.ib")

#: the length of TWS's real-time bars (seconds): the only size it serves
STEP = 5
_LABEL = re.compile(r"^\s*(\d+)\s*(s|sec|secs|m|min|mins|h|hour|hours)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True)
class LiveBar:
    """One complete bar: ``start`` in epoch seconds (UTC)."""

    symbol: str
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: float


def parse_interval(text: str) -> int | None:
    """Seconds of an intraday interval (``"1m"``, ``"5 mins"``, ``"1h"``, ``"30s"``); None
    for daily and longer bars (``"1d"``, ``"1 day"``) or anything else."""
    match = _LABEL.match(text)
    if match is None:
        return None
    return int(match.group(1)) * _UNITS[match.group(2)[0].lower()]


def label(seconds: int) -> str:
    """The store's label for ``seconds``: ``"1h"``, ``"5m"``, ``"30s"``."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def run_interval(config: Any, bars: Any) -> tuple[int, str] | None:
    """``(seconds, store label)`` of the run's bars; None for daily bars.

    Raises:
        ConfigError: an intraday interval that is not a whole number of 5-second bars.
    """
    data = getattr(config, "data", None)
    options = dict(getattr(data, "options", None) or {})
    text = options.get("interval") or options.get("bar_size")
    seconds: int | None = None
    if text is not None:
        seconds = parse_interval(str(text))
        if seconds is None:
            return None
        name = str(options["interval"]) if "interval" in options else label(seconds)
    else:
        index = getattr(bars, "index", None)
        if index is None or index.tz is None or len(index) < 2:
            return None
        from rlbridge.store import infer_interval

        name = infer_interval(index)
        seconds = parse_interval(name)
        if seconds is None:
            return None
    if seconds <= 0 or seconds % STEP:
        raise ConfigError(f"live bars from IB are built from 5-second bars: the interval "
                          f"{text or name!r} is not a multiple of 5 seconds", key="data.interval")
    return seconds, name


class Aggregator:
    """5-second bars of one symbol summed into bars of ``seconds``."""

    def __init__(self, symbol: str, seconds: int) -> None:
        self.symbol, self.seconds = symbol, seconds
        self._start: int | None = None
        self._whole = False
        self._ohlcv: list[float] = []
        self._last = -1  # start of the last 5-second bar counted

    def reset(self) -> None:
        """Forget the bar in progress (the stream broke: it is no longer whole)."""
        self._start, self._whole, self._ohlcv = None, False, []

    def add(self, at: int, o: float, h: float, low: float, c: float,
            v: float) -> list[LiveBar]:
        """Add the 5-second bar starting at ``at`` (epoch seconds); the bars it completes."""
        start = at - at % self.seconds
        done: list[LiveBar] = []
        if at <= self._last:  # sent again, or older: already counted or lost
            return done
        self._last = at
        if self._start is not None and start != self._start:
            done += self._finish()
        if self._start is None:
            self._start, self._whole = start, at == start
            self._ohlcv = [o, h, low, c, max(v, 0.0)]
        else:
            bar = self._ohlcv
            bar[1], bar[2], bar[3] = max(bar[1], h), min(bar[2], low), c
            bar[4] += max(v, 0.0)  # MIDPOINT bars have no volume (-1)
        if at + STEP >= start + self.seconds:
            done += self._finish()
        return done

    def _finish(self) -> list[LiveBar]:
        start, whole, bar = self._start, self._whole, self._ohlcv
        self.reset()
        if start is None or not whole:
            return []
        return [LiveBar(self.symbol, start, *bar)]


class LiveBars:
    """Real-time bar subscriptions of one run on one connection, written to its store.

    Args:
        connection: the broker's connection.
        symbols: the run's symbols.
        seconds: the run's bar interval.
        interval: the store label the ``[data]`` feed reads (``"1m"``).
        store: the run's store.
        what_to_show: TWS's price source; None: ``TRADES``, ``MIDPOINT`` for forex.
        use_rth: regular trading hours only.
        since: the start (epoch seconds) of the latest bar the run already has, the bars
            missed after it are read from TWS's history; None: none are.
    """

    def __init__(self, connection: Connection, symbols: Sequence[str], seconds: int,
                 interval: str, store: Store, *, what_to_show: str | None = None,
                 use_rth: bool = True, since: int | None = None) -> None:
        self.connection, self.symbols = connection, list(dict.fromkeys(symbols))
        self.seconds, self.interval, self.store = seconds, interval, store
        self.what_to_show, self.use_rth = what_to_show, use_rth
        self._changed = threading.Condition()
        self._done: list[LiveBar] = []  # complete bars not written yet
        self._live = False  # subscribed on the current connection
        self._closed = False
        self._lists: dict[str, Any] = {}  # symbol -> ib_insync RealTimeBarList (loop thread)
        self._aggregators = {s: Aggregator(s, seconds) for s in self.symbols}
        self._latest: dict[str, int] = {}  # symbol -> start of its latest bar written
        self._signalled: int | None = None
        self._first: int | None = None  # start of the first bar written
        self._hooked = False
        self._pause = 0.5
        # symbol -> start of its latest bar stored; symbols not heard from since subscribing
        self._stored: dict[str, int] = {} if since is None else dict.fromkeys(self.symbols,
                                                                             since)
        self._resumed: set[str] = set()

    # ------------------------------------------------------------------ the caller's thread
    def wait(self, timeout: float) -> bool:
        """Subscribe (again) if needed; wait up to ``timeout`` seconds for a new bar.

        Returns:
            True once a new complete bar is in the store (see the module documentation).
        """
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            with self._changed:
                live, closed = self._live, self._closed
            if closed:
                return False
            pause = 0.0
            if not live:
                try:
                    self._subscribe()
                    self._pause = 0.5
                except TransientBrokerError as exc:  # TWS is away: try again, then again
                    log.warning("live bars: %s", exc)
                    pause, self._pause = self._pause, min(2 * self._pause, 10.0)
            with self._changed:
                done, self._done = self._done, []
            if done and self._write(done):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._changed:
                if pause:
                    self._changed.wait(min(pause, left))
                else:
                    self._changed.wait_for(
                        lambda: bool(self._done) or not self._live or self._closed, left)

    def _write(self, done: list[LiveBar]) -> bool:
        """Write complete bars; whether a bar is now complete for the run as a whole."""
        import numpy as np
        import pandas as pd

        from rlbridge.interfaces import Bars

        missed = [bar for first in self._first_after_subscribing(done)
                  for bar in self._missed(first)]
        with self.store.ingest(feed="ib", source=f"ib {self.connection.address} live") as batch:
            for bar in missed + done:
                values = np.array([[[bar.open, bar.high, bar.low, bar.close, bar.volume]]])
                index = pd.DatetimeIndex([pd.Timestamp(bar.start, unit="s", tz="UTC")])
                batch.write(Bars(index, (bar.symbol,), values), interval=self.interval)
        for bar in missed + done:
            self._stored[bar.symbol] = max(self._stored.get(bar.symbol, bar.start), bar.start)
        for bar in done:
            self._latest[bar.symbol] = max(self._latest.get(bar.symbol, bar.start), bar.start)
            self._first = bar.start if self._first is None else min(self._first, bar.start)
        return self._advance()

    def _first_after_subscribing(self, done: list[LiveBar]) -> list[LiveBar]:
        """The first bar of each symbol not heard from since the subscription."""
        firsts = []
        for bar in sorted(done, key=lambda b: b.start):
            if bar.symbol in self._resumed:
                self._resumed.discard(bar.symbol)
                firsts.append(bar)
        return firsts

    def _missed(self, bar: LiveBar) -> list[LiveBar]:
        """The bars of ``bar.symbol`` between the latest one stored and ``bar``, from TWS's
        historical bars; none when there is no gap, or when TWS cannot say (logged)."""
        import datetime as dt

        from rlbridge.errors import DataError
        from rlbridge.plugins.feeds.ib import IBFeed, bar_size_of

        last = self._stored.get(bar.symbol)
        size = bar_size_of(self.seconds)
        if last is None or bar.start - last <= self.seconds or size is None:
            return []
        feed = IBFeed(IBFeed.Config(bar_size=size, what_to_show=self.what_to_show,
                                    use_rth=self.use_rth, calendar=None,
                                    timeout=self.connection.timeout))
        after = dt.datetime.fromtimestamp(last, dt.UTC)
        before = dt.datetime.fromtimestamp(bar.start, dt.UTC)  # past: the bar is complete
        try:
            rows = feed.fetch(self.connection, bar.symbol, after, before)
        except (BrokerError, DataError) as exc:
            log.warning("live bars: the %s bars of %s between %s and %s could not be read: %s",
                        self.interval, bar.symbol, after, before, exc)
            return []
        found = {}
        for row in rows:
            start = int(row.date.timestamp())
            if last < start < bar.start:
                found[start] = LiveBar(bar.symbol, start, float(row.open), float(row.high),
                                       float(row.low), float(row.close),
                                       max(float(row.volume), 0.0))
        if found:
            log.info("live bars: %d missed %s bars of %s read from TWS's history", len(found),
                     self.interval, bar.symbol)
        return [found[start] for start in sorted(found)]

    def _advance(self) -> bool:
        """Whether a bar later than the last one reported is complete for the run: every
        symbol has it, or a symbol is a whole bar past it."""
        if not self._latest or self._first is None:
            return False
        newest = max(self._latest.values())
        candidates = [newest - self.seconds] if newest - self.seconds >= self._first else []
        if len(self._latest) == len(self.symbols):
            candidates.append(min(self._latest.values()))
        if not candidates:
            return False
        ready = max(candidates)
        if self._signalled is not None and ready <= self._signalled:
            return False
        self._signalled = ready
        return True

    def _subscribe(self) -> None:
        connection = self.connection

        async def subscribe() -> None:
            ib = connection.ib
            if not self._hooked:
                ib.disconnectedEvent += self._on_disconnected
                self._hooked = True
            self._lists.clear()
            for symbol in self.symbols:
                contract = contracts.contract(symbol)
                show = self.what_to_show or ("MIDPOINT" if contract.secType == "CASH"
                                             else "TRADES")
                self._aggregators[symbol].reset()
                bars = ib.reqRealTimeBars(contract, STEP, show.upper(), self.use_rth)
                bars.updateEvent += self._receiver(symbol)
                self._lists[symbol] = bars
            # TWS answers in order: once its clock is read, it has every subscription
            await connection.server_time()
            with self._changed:
                self._live = ib.isConnected()
                self._resumed = set(self.symbols)

        connection.request(f"subscribing to live bars of {', '.join(self.symbols)}", subscribe)
        log.info("live %s bars of %s from TWS at %s", self.interval, ", ".join(self.symbols),
                 connection.address)

    def close(self) -> None:
        """Cancel the subscriptions (nothing is sent on a dropped connection)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        connection = self.connection

        async def cancel() -> None:
            ib = connection.ib
            if self._hooked:
                ib.disconnectedEvent -= self._on_disconnected
                self._hooked = False
            if ib.isConnected():
                for bars in self._lists.values():
                    ib.cancelRealTimeBars(bars)
            self._lists.clear()

        try:
            connection.call("canceling the live bars", cancel)
        except (BrokerError, RuntimeError) as exc:  # already gone: nothing to cancel
            log.debug("live bars: %s", exc)

    # ------------------------------------------------------------------ the loop thread
    def _receiver(self, symbol: str) -> Any:
        aggregator = self._aggregators[symbol]

        def received(bars: list[Any], has_new: bool) -> None:
            current = self._lists.get(symbol)
            if not has_new or not bars or current is None or current is not bars:
                return  # a subscription of an earlier connection
            bar = bars[-1]
            del bars[:-1]  # ib_insync keeps every bar: only the last is needed
            done = aggregator.add(int(bar.time.timestamp()), float(bar.open_), float(bar.high),
                                  float(bar.low), float(bar.close), float(bar.volume))
            if done:
                with self._changed:
                    self._done.extend(done)
                    self._changed.notify_all()

        return received

    def _on_disconnected(self) -> None:
        self._lists.clear()
        with self._changed:
            self._live = False
            self._changed.notify_all()
