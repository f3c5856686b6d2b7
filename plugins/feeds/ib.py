"""The ``ib`` feed: historical bars from TWS or IB Gateway (``reqHistoricalData``).

Stocks and ETFs are SMART contracts in USD, forex pairs (``EUR.USD``, ``EURUSD``) IDEALPRO
contracts (:mod:`rlbridge.plugins.brokers.ib.contracts`).  Each symbol's bars are checked like a
file's (:func:`rlbridge.data.validate_frame`) and the symbols aligned like every other feed's
(:func:`rlbridge.data.align`), so a run, ``rlbridge data ingest --feed ib`` and ``[data] feed =
"ib"`` see the same panel::

    [data]
    feed = "ib"
    port = 4002                     # IB Gateway paper; TWS paper 7497
    symbols = ["SPY", "AGG"]
    start = 2019-01-01
    bar_size = "1 day"              # "1 hour", "5 mins", ...

Daily (weekly, monthly) bars become session dates; intraday bars keep their UTC start time.
Daily bars come in one request; intraday bars in consecutive windows as long as IB serves for
the bar size (one day of 1-minute bars, a week of 5-minute bars, ...), oldest window last.
In one process the feed and the ``ib`` broker share one connection while both are in use, when
their host, port and client id are the same.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlbridge.data import AlignOptions
from rlbridge.errors import BrokerError, ConfigError, DataError
from rlbridge.hookspecs import hookimpl

if TYPE_CHECKING:
    import pandas as pd

    from rlbridge.interfaces import Bars

def bar_size_of(seconds: int) -> str | None:
    """IB's bar size setting for bars of ``seconds`` (``60`` -> ``"1 min"``), or None when
    IB has none of that length."""
    for size in BAR_SIZES:
        amount, unit = size.split()
        length = int(amount) * {"secs": 1, "min": 60, "mins": 60, "hour": 3600,
                                "hours": 3600}.get(unit, 0)
        if length == seconds:
            return size
    return None


#: IB's bar sizes, and the longest window one intraday request may cover (seconds)
BAR_SIZES: dict[str, int] = {
    "1 secs": 1800, "5 secs": 3600, "10 secs": 14400, "15 secs": 14400, "30 secs": 28800,
    "1 min": 86400, "2 mins": 2 * 86400, "3 mins": 7 * 86400, "5 mins": 7 * 86400,
    "10 mins": 7 * 86400, "15 mins": 7 * 86400, "20 mins": 7 * 86400,
    "30 mins": 28 * 86400, "1 hour": 28 * 86400, "2 hours": 28 * 86400,
    "3 hours": 28 * 86400, "4 hours": 28 * 86400, "8 hours": 28 * 86400,
    "1 day": 0, "1 week": 0, "1 month": 0}
SHOWS = ("TRADES", "MIDPOINT", "BID", "ASK", "BID_ASK", "ADJUSTED_LAST")
_DURATION = re.compile(r"^([1-9]\d*) ([SDWMY])$")
_SECONDS = {"S": 1, "D": 86400, "W": 7 * 86400, "M": 31 * 86400, "Y": 366 * 86400}


class IBFeed:
    """Bars of US stocks, ETFs and forex pairs from TWS or IB Gateway."""

    @dataclass(frozen=True, kw_only=True)
    class Config(AlignOptions):
        """Options of the ``ib`` feed.

        Attributes:
            host: where TWS or IB Gateway runs.
            port: its API port: IB Gateway 4002 (paper) or 4001 (live), TWS 7497 or 7496.
            client_id: the API client id (the ``ib`` broker's, to share its connection).
            bar_size: IB's bar size: ``"1 day"`` (session dates), ``"1 week"``,
                ``"1 month"``, or intraday ``"1 hour"``, ``"5 mins"``, ``"30 secs"``, ...
            what_to_show: IB's price source (``TRADES``, ``MIDPOINT``, ``BID``, ``ASK``,
                ``ADJUSTED_LAST``); unset: ``TRADES`` for stocks, ``MIDPOINT`` for forex.
            use_rth: regular trading hours only.
            lookback: how far back bars start when ``[data] start`` is unset, as an IB
                duration (``"1 Y"``, ``"6 M"``, ``"30 D"``).
            timeout: seconds to wait for each request.
        """

        host: str = "127.0.0.1"
        port: int = 4002
        client_id: int = 1
        bar_size: str = "1 day"
        what_to_show: str | None = None
        use_rth: bool = True
        lookback: str = "1 Y"
        timeout: float = 60.0

        def __post_init__(self) -> None:
            super().__post_init__()
            size = " ".join(self.bar_size.lower().split())
            if size not in BAR_SIZES:
                raise ConfigError(f"expected one of IB's bar sizes ({', '.join(BAR_SIZES)}), "
                                  f"got {self.bar_size!r}", key="bar_size")
            object.__setattr__(self, "bar_size", size)
            if self.what_to_show is not None and self.what_to_show.upper() not in SHOWS:
                raise ConfigError(f"expected one of {', '.join(SHOWS)}, got "
                                  f"{self.what_to_show!r}", key="what_to_show")
            if not _DURATION.match(self.lookback.strip()):
                raise ConfigError(f"expected an IB duration such as \"1 Y\", \"6 M\" or "
                                  f"\"30 D\", got {self.lookback!r}", key="lookback")
            if not 0 < self.port < 65536:
                raise ConfigError(f"expected a port number 1..65535, got {self.port!r}",
                                  key="port")
            if not self.timeout > 0:
                raise ConfigError(f"must be more than 0 seconds, got {self.timeout!r}",
                                  key="timeout")

    def __init__(self, config: IBFeed.Config | None = None) -> None:
        self.config = config if config is not None else IBFeed.Config()

    def __repr__(self) -> str:
        c = self.config
        return f"IBFeed(address='{c.host}:{c.port}', bar_size={c.bar_size!r})"

    @property
    def daily(self) -> bool:
        """Whether the bars are daily or longer (a panel of session dates)."""
        return BAR_SIZES[self.config.bar_size] == 0

    def load(self, symbols: Sequence[str] | None = None, start: object = None,
             end: object = None) -> Bars:
        """The bars of ``symbols`` from ``start`` to ``end`` (inclusive), aligned.

        Raises:
            ConfigError: no symbols given, or a symbol IB cannot trade here.
            DataError: TWS refused or failed a request, or a symbol has no bars in the range;
                naming TWS's address.
        """
        from rlbridge.data import align, clip, validate_frame
        from rlbridge.plugins.brokers.ib import connection as ibc

        if not symbols:
            raise ConfigError("the ib feed needs [data] symbols (it cannot list every "
                              "instrument IB has)", key="data.symbols")
        c = self.config
        source = f"ib {c.host}:{c.port}"
        frames = {}
        link = ibc.acquire(c.host, c.port, c.client_id, c.timeout)
        try:
            for symbol in dict.fromkeys(symbols):
                try:  # a little wider than asked (session dates, zones): clipped below
                    rows = self.fetch(
                        link, symbol,
                        None if start is None else _utc(start) - dt.timedelta(days=1),
                        None if end is None else _utc(end) + dt.timedelta(days=2))
                except BrokerError as exc:
                    raise DataError(f"{c.bar_size} bars of {symbol}: {exc}",
                                    source=source) from None
                frame = clip(validate_frame(self._frame(rows), source=f"{source} ({symbol})"),
                             start, end)
                if frame.empty:
                    raise DataError(f"no {c.bar_size} bars of {symbol} between "
                                    f"{start or 'the start'} and {end or 'now'}", source=source)
                frames[symbol] = frame
        finally:
            ibc.release(link)
        return align(frames, c, source=source)

    # ------------------------------------------------------------------ requests
    def fetch(self, link: Any, symbol: str, first: dt.datetime | None,
              last: dt.datetime | None) -> list[Any]:
        """The bars of ``symbol`` IB serves from ``first`` to ``last`` (UTC; None: the
        ``lookback`` before now, and now), on the connection ``link`` (ib_insync ``BarData``).

        Raises:
            BrokerError: TWS refused or failed a request.
        """
        from rlbridge.plugins.brokers.ib import contracts

        c = self.config
        contract = contracts.contract(symbol)
        show = (c.what_to_show or ("MIDPOINT" if contract.secType == "CASH" else "TRADES"))
        ask = _Asker(link, contract, c.bar_size, show.upper(), c.use_rth, c.timeout)
        if self.daily:
            span = self._span(first, last)
            return link.request(f"reading {c.bar_size} bars of {symbol}",
                                lambda: ask(last, span, missing_ok=False), barrier=False)
        step = BAR_SIZES[c.bar_size]
        window = f"{step // 86400} D" if step % 86400 == 0 else f"{step} S"
        stop = last or link.request("reading TWS's clock", link.server_time, barrier=False)
        begin = first or stop - dt.timedelta(seconds=_seconds(c.lookback))
        rows: list[Any] = []
        while stop > begin:  # one request per window, newest first
            rows[:0] = link.request(f"reading {c.bar_size} bars of {symbol} to {stop}",
                                    lambda end=stop: ask(end, window, missing_ok=True),
                                    barrier=False)
            stop -= dt.timedelta(seconds=step)
        return rows

    def _span(self, first: dt.datetime | None, last: dt.datetime | None) -> str:
        if first is None:
            return self.config.lookback.strip()
        days = ((last or dt.datetime.now(dt.UTC)) - first).days + 2
        return f"{days} D" if days <= 365 else f"{math.ceil(days / 365)} Y"

    def _frame(self, rows: list[Any]) -> pd.DataFrame:
        import pandas as pd

        frame = pd.DataFrame.from_records(
            [(r.date, r.open, r.high, r.low, r.close, max(float(r.volume), 0.0))
             for r in rows],  # MIDPOINT bars have no volume (-1)
            columns=["time", "open", "high", "low", "close", "volume"])
        times = frame.pop("time")
        if self.daily:
            index = pd.DatetimeIndex(pd.to_datetime(times), name="date")
        else:
            index = pd.DatetimeIndex(pd.to_datetime(times, utc=True), name="time")
        frame.index = index
        frame = frame[~frame.index.duplicated(keep="last")].sort_index()
        return frame.astype("float64")


class _Asker:
    """One ``reqHistoricalData`` call, on the connection's loop, with IB's errors kept."""

    def __init__(self, link: Any, contract: Any, size: str, show: str, rth: bool,
                 timeout: float) -> None:
        self.link, self.contract, self.size, self.show = link, contract, size, show
        self.rth, self.timeout = rth, timeout

    async def __call__(self, end: dt.datetime | None, duration: str, *,
                       missing_ok: bool) -> list[Any]:
        import asyncio

        from ib_insync import RequestError

        try:
            bars = await asyncio.wait_for(self.link.ib.reqHistoricalDataAsync(
                self.contract, end or "", duration, self.size, self.show, self.rth,
                formatDate=2, timeout=0), self.timeout)
        except RequestError as exc:  # a window with no bar (a weekend) is not an error
            if missing_ok and exc.code == 162 and "no data" in exc.message.lower():
                return []
            raise
        return list(bars)


def _utc(value: object) -> dt.datetime:
    import pandas as pd

    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def _seconds(duration: str) -> int:
    match = _DURATION.match(duration.strip())
    assert match is not None
    return int(match.group(1)) * _SECONDS[match.group(2)]


@hookimpl
def register_feeds(register: Any) -> None:
    register("ib", IBFeed,
             description="Interactive Brokers historical bars through TWS or IB Gateway "
                         "(ib_insync): SMART stocks and ETFs, IDEALPRO forex; daily or "
                         "intraday")
