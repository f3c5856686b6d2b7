"""Live minute bars from Alpaca's market-data streams, for the live loop's bar clock.

alpaca-py's ``StockDataStream`` (stocks) and ``CryptoDataStream`` (pairs with a slash,
``BTC/USD``) each run in a daemon thread of their own (``run()`` owns an event loop).  A bar
message is kept in memory by minute; a minute is *complete* once every subscribed symbol's bar
for it has arrived, or once a later minute has begun, or ``grace`` seconds after its first bar
(a symbol with no trade in a minute has no bar).  :meth:`LiveBars.wait` hands complete minutes
to the caller, which stores them where the run's ``[data]`` feed reads them: the store is only
ever written from the live loop's thread, never from a stream thread.

A dropped connection is reconnected by alpaca-py (it subscribes again); the bars of a minute
that closed while it was down are not streamed again: when the next minute arrives, the broker
reads the missed ones from Alpaca's bars API (:func:`missed_minutes`) and stores them first,
so the loop's panel has no hole (the same after a restart: from the last stored bar on).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .stream import _SDK_SOCKET, _Stopping, quiet_logger

if TYPE_CHECKING:
    import pandas as pd

    from .config import Credentials

#: one bar's open, high, low, close, volume
OHLCV = tuple[float, float, float, float, float]
#: a minute of bars: its start (UTC) and each symbol's bar
Minute = tuple["pd.Timestamp", dict[str, OHLCV]]

_STOPPING = _Stopping()
logging.getLogger("alpaca.data.live.websocket").addFilter(_STOPPING)


class LiveBars:
    """Bar subscriptions of the run's symbols on Alpaca's market-data streams.

    Args:
        symbols: the run's symbols; those with a slash go to the crypto stream.
        stock_url: websocket URL of the stock market-data stream.
        crypto_url: websocket URL of the crypto market-data stream.
        keys: the API keys.
        grace: seconds a minute waits for the bars of its other symbols.
    """

    def __init__(self, symbols: Sequence[str], stock_url: str, crypto_url: str,
                 keys: Credentials, grace: float = 5.0) -> None:
        from alpaca.data.live.crypto import CryptoDataStream
        from alpaca.data.live.stock import StockDataStream

        self.symbols = tuple(symbols)
        self.grace = grace
        self._changed = threading.Condition()
        # minute -> symbol -> OHLCV, and when the minute's first bar arrived (monotonic)
        self._pending: dict[pd.Timestamp, dict[str, OHLCV]] = {}
        self._first: dict[pd.Timestamp, float] = {}
        self._done: pd.Timestamp | None = None  # the latest minute handed out
        self.received = 0
        self._streams: list[tuple[Any, threading.Thread]] = []
        params = {**_SDK_SOCKET, "logger": quiet_logger()}
        stocks = [s for s in self.symbols if "/" not in s]
        pairs = [s for s in self.symbols if "/" in s]
        for kind, wanted, make in (
                ("stocks", stocks, lambda: StockDataStream(
                    keys.key_id, keys.secret_key, websocket_params=dict(params),
                    url_override=stock_url)),
                ("crypto", pairs, lambda: CryptoDataStream(
                    keys.key_id, keys.secret_key, websocket_params=dict(params),
                    url_override=crypto_url))):
            if not wanted:
                continue
            stream = make()
            stream.subscribe_bars(self._on_bar, *wanted)
            thread = threading.Thread(target=stream.run, daemon=True,
                                      name=f"rlbridge-alpaca-bars-{kind}-{id(self):x}")
            self._streams.append((stream, thread))

    @property
    def threads(self) -> list[threading.Thread]:
        """The stream threads (one per stream in use)."""
        return [thread for _, thread in self._streams]

    def start(self) -> LiveBars:
        """Connect in the background (the SDK authenticates and subscribes)."""
        for _, thread in self._streams:
            thread.start()
        return self

    async def _on_bar(self, bar: Any) -> None:
        import pandas as pd

        stamp = pd.Timestamp(bar.timestamp)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        values: OHLCV = (float(bar.open), float(bar.high), float(bar.low), float(bar.close),
                  float(bar.volume))
        with self._changed:
            self._pending.setdefault(stamp, {})[str(bar.symbol)] = values
            self._first.setdefault(stamp, time.monotonic())
            self.received += 1
            self._changed.notify_all()

    def wait(self, timeout: float) -> list[Minute]:
        """Wait up to ``timeout`` seconds for complete minutes (see the module).

        Returns:
            The complete minutes, oldest first, each handed out once; empty on timeout.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._changed:
            while True:
                ready, next_check = self._ready(time.monotonic())
                if ready:
                    return ready
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                wake = left if next_check is None else min(left, next_check - time.monotonic())
                self._changed.wait(max(0.0, wake))

    def _ready(self, now: float) -> tuple[list[Minute], float | None]:
        """Take the complete minutes out of the pending ones; also when to look again."""
        ready: list[Minute] = []
        next_check: float | None = None
        stamps = sorted(self._pending)
        for n, stamp in enumerate(stamps):
            rows = self._pending[stamp]
            late = self._done is not None and stamp <= self._done  # a straggler: stored alone
            closed = n < len(stamps) - 1 or now - self._first[stamp] >= self.grace
            if late or closed or len(rows) == len(self.symbols):
                ready.append((stamp, {s: rows[s] for s in self.symbols if s in rows}))
                del self._pending[stamp], self._first[stamp]
                if self._done is None or stamp > self._done:
                    self._done = stamp
            else:
                expires = self._first[stamp] + self.grace
                next_check = expires if next_check is None else min(next_check, expires)
        return ready, next_check

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the streams and join their threads (the sockets are closed under them)."""
        deadline = time.monotonic() + timeout
        for stream, thread in self._streams:
            while stream._loop is None and thread.is_alive() and time.monotonic() < deadline:
                time.sleep(0.01)  # the thread is still starting its event loop
            loop = stream._loop
            _Stopping.threads.add(thread.name)
            if loop is not None and loop.is_running():
                with contextlib.suppress(RuntimeError, asyncio.CancelledError,
                                         TimeoutError):
                    stream.stop()  # sets the stop flag and event
                    # the SDK checks the flag between receives only: closing the socket ends
                    # the pending receive at once
                    asyncio.run_coroutine_threadsafe(stream.close(), loop)
        for _, thread in self._streams:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
            if not thread.is_alive():
                _Stopping.threads.discard(thread.name)


class BarTarget:
    """Where streamed bars go: the store and interval the run's ``[data]`` reads.

    Attributes:
        store: the store the ``sql`` feed reads; None for another feed (the stream then only
            wakes the loop, which reloads bars through that feed).
        interval: the interval label the bars are stored at (``"1m"``).
        owned: ``store`` was opened here (another store than the run's) and is closed here.
    """

    def __init__(self, store: Any, interval: str, owned: bool = False) -> None:
        self.store, self.interval, self.owned = store, interval, owned

    def write(self, minutes: Sequence[Minute]) -> int:
        """Store ``minutes`` in one transaction (rows of the same minute are replaced).

        Returns:
            The rows written.
        """
        import numpy as np
        import pandas as pd

        from rlbridge.interfaces import Bars

        if self.store is None or not minutes:
            return 0
        written = 0
        with self.store.ingest(feed="alpaca", source="alpaca market-data stream") as batch:
            for stamp, rows in minutes:
                symbols = list(rows)
                values = np.array([[rows[s] for s in symbols]], dtype=np.float64)
                index = pd.DatetimeIndex([stamp]).tz_convert("UTC")
                written += batch.write(Bars(index, tuple(symbols), values),
                                       interval=self.interval)
        return written

    def close(self) -> None:
        """Close the store when it was opened here."""
        if self.owned and self.store is not None:
            self.store.close()


def missed_minutes(config: Any, symbols: list[str], after: pd.Timestamp,
                   before: pd.Timestamp) -> list[Minute]:
    """The 1-minute bars of ``symbols`` strictly between ``after`` and ``before``, from
    Alpaca's bars API (``config``: the broker's :class:`AlpacaConfig`), oldest first.

    Raises:
        DataError: Alpaca refused or failed the request.
    """
    import pandas as pd

    from rlbridge.plugins.feeds.alpaca import AlpacaFeed

    feed = AlpacaFeed(AlpacaFeed.Config(data_url=config.data, timeframe="1Min", calendar=None,
                                        timeout=config.timeout))
    rows = feed.fetch(symbols, after, before)
    found: dict[pd.Timestamp, dict[str, OHLCV]] = {}
    for symbol in symbols:
        for row in rows.get(symbol, []):
            stamp = pd.Timestamp(row["t"])
            stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
            if after < stamp < before:
                found.setdefault(stamp, {})[symbol] = (float(row["o"]), float(row["h"]),
                                                       float(row["l"]), float(row["c"]),
                                                       float(row["v"]))
    return sorted(found.items())


def bar_target(session: Any, log: logging.Logger | None = None) -> BarTarget | None:
    """Where the live run's streamed bars go, or None when streaming is of no use to it.

    Daily runs decide before the open: minute bars are no clock for them.  A ``sql`` feed
    gets the bars at its ``interval`` when that is ``"1m"`` (Alpaca streams 1-minute bars);
    another interval is not fed (the loop looks for new bars every minute, as without a
    stream).  Any other feed is woken by each bar and reloads through its own source.
    """
    config = getattr(session, "config", None)
    data = getattr(config, "data", None)
    if data is None or not session.bars.intraday:
        return None
    if data.feed != "sql":
        return BarTarget(None, "1m")
    options = data.options or {}
    interval = str(options.get("interval", "1d"))
    if interval != "1m":
        if log is not None:
            log.warning("the alpaca broker streams 1-minute bars and [data] reads %r bars: "
                        "the live loop looks for new bars every minute instead", interval)
        return None
    store = session.journal.store
    url = options.get("url")
    if url is None or url == store.full_url:
        return BarTarget(store, interval)
    from rlbridge.store import open_store

    return BarTarget(open_store(url), interval, owned=True)
