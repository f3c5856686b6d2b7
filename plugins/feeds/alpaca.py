"""The ``alpaca`` feed: historical bars from Alpaca's market-data API, page by page.

Stocks come from ``StockHistoricalDataClient``, crypto pairs (a symbol with a slash,
``BTC/USD``) from ``CryptoHistoricalDataClient``; alpaca-py follows ``next_page_token`` until
every page is read.  Each symbol's bars are checked like a file's (:func:`rlbridge.data.
validate_frame`) and the symbols aligned like every other feed's (:func:`rlbridge.data.align`),
so a run, ``rlbridge data ingest --feed alpaca`` and ``[data] feed = "alpaca"`` see the same
panel::

    [data]
    feed = "alpaca"
    symbols = ["SPY", "AGG"]
    start = 2019-01-01
    timeframe = "1Day"              # "1Hour", "15Min", ...

Daily bars become session dates (Alpaca stamps a stock's daily bar at midnight New York, a
crypto pair's at midnight UTC); intraday bars keep their UTC start time.  Keys come from
``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY`` (crypto bars need none).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from rlbridge.data import AlignOptions
from rlbridge.errors import ConfigError, DataError
from rlbridge.hookspecs import hookimpl

if TYPE_CHECKING:
    import pandas as pd

    from rlbridge.interfaces import Bars

_TIMEFRAME = re.compile(r"^([1-9]\d*)(Min|Hour|Day|Week|Month)$")
#: the bar lengths Alpaca serves, per unit
_AMOUNTS = {"Min": range(1, 60), "Hour": range(1, 24), "Day": (1,), "Week": (1,),
            "Month": (1, 2, 3, 6, 12)}
#: where bars start when ``[data] start`` is unset (Alpaca's stock history begins in 2016)
EARLIEST = dt.datetime(2015, 1, 1, tzinfo=dt.UTC)


class AlpacaFeed:
    """Bars of stocks and crypto pairs from Alpaca (or any server speaking its API)."""

    @dataclass(frozen=True, kw_only=True)
    class Config(AlignOptions):
        """Options of the ``alpaca`` feed.

        Attributes:
            data_url: base URL of the market-data API; unset: ``https://data.alpaca.markets``.
            timeframe: bar length: ``"1Day"`` (session dates), ``"1Hour"``, ``"15Min"``, ...
            data_feed: the stock feed: ``"iex"`` or ``"sip"``; unset: what the account's plan
                gives.
            adjustment: stock prices ``"raw"``, or adjusted for ``"split"``, ``"dividend"``
                or ``"all"`` (both).
            timeout: seconds to wait for each page before giving up.
        """

        data_url: str | None = None
        timeframe: str = "1Day"
        data_feed: Literal["iex", "sip"] | None = None
        adjustment: Literal["raw", "split", "dividend", "all"] = "all"
        timeout: float = 30.0

        def __post_init__(self) -> None:
            super().__post_init__()
            match = _TIMEFRAME.match(self.timeframe)
            if not match or int(match.group(1)) not in _AMOUNTS[match.group(2)]:
                raise ConfigError(f"expected 1-59Min, 1-23Hour, 1Day, 1Week or 1, 2, 3, 6 or "
                                  f"12Month (\"1Day\", \"15Min\"), got {self.timeframe!r}",
                                  key="timeframe")
            if not self.timeout > 0:
                raise ConfigError(f"must be more than 0 seconds, got {self.timeout!r}",
                                  key="timeout")

    def __init__(self, config: AlpacaFeed.Config | None = None) -> None:
        self.config = config if config is not None else AlpacaFeed.Config()

    @property
    def url(self) -> str:
        """The market-data API's base URL in use."""
        from rlbridge.plugins.brokers.alpaca.config import DATA_URL

        return self.config.data_url or DATA_URL

    def __repr__(self) -> str:
        return f"AlpacaFeed(data_url={self.url!r}, timeframe={self.config.timeframe!r})"

    @property
    def daily(self) -> bool:
        """Whether the bars are daily or longer (a panel of session dates)."""
        return self.config.timeframe.endswith(("Day", "Week", "Month"))

    def load(self, symbols: Sequence[str] | None = None, start: object = None,
             end: object = None) -> Bars:
        """The bars of ``symbols`` from ``start`` to ``end`` (inclusive), aligned.

        Raises:
            ConfigError: no symbols given, or a key is missing for stock bars.
            DataError: Alpaca refused or failed the request, or a symbol has no bars in the
                range; naming the feed's URL.
        """
        from rlbridge.data import align, clip, validate_frame

        if not symbols:
            raise ConfigError("the alpaca feed needs [data] symbols (it cannot list every "
                              "symbol Alpaca has)", key="data.symbols")
        wanted = list(dict.fromkeys(symbols))
        raw = self.fetch(wanted, start, end)
        frames = {}
        source = f"alpaca {self.url}"
        for symbol in wanted:
            frame = self._frame(symbol, raw.get(symbol, []))
            frame = clip(validate_frame(frame, source=f"{source} ({symbol})"), start, end)
            if frame.empty:
                raise DataError(f"no {self.config.timeframe} bars of {symbol} between "
                                f"{start or 'the start'} and {end or 'now'}", source=source)
            frames[symbol] = frame
        return align(frames, self.config, source=source)

    # ------------------------------------------------------------------ requests
    def fetch(self, symbols: list[str], start: object, end: object) -> dict[str, list[Any]]:
        """Alpaca's bar records (``t``, ``o``, ``h``, ``l``, ``c``, ``v``) of each symbol, all
        pages, from a little before ``start`` to a little after ``end`` (:meth:`load` cuts
        and aligns them).

        Raises:
            DataError: Alpaca refused or failed the request.
        """
        from alpaca.data.historical import CryptoHistoricalDataClient, StockHistoricalDataClient
        from alpaca.data.requests import CryptoBarsRequest, StockBarsRequest

        from rlbridge.plugins.brokers.alpaca.config import credentials, optional_credentials
        from rlbridge.plugins.brokers.alpaca.connection import translate, with_timeout

        stocks = [s for s in symbols if "/" not in s]
        pairs = [s for s in symbols if "/" in s]
        who = "the alpaca feed"
        keys = credentials(who) if stocks else optional_credentials(who)
        window: dict[str, Any] = {"timeframe": self._timeframe(),
                                  "start": self._bound(start, EARLIEST),
                                  "end": self._bound(end, None, after=True)}
        out: dict[str, list[Any]] = {}
        try:
            if stocks:
                assert keys is not None
                client = with_timeout(StockHistoricalDataClient(
                    keys.key_id, keys.secret_key, raw_data=True, url_override=self.url),
                    self.config.timeout)
                extra: dict[str, Any] = {"adjustment": self.config.adjustment}
                if self.config.data_feed is not None:
                    extra["feed"] = self.config.data_feed
                out.update(client.get_stock_bars(StockBarsRequest(
                    symbol_or_symbols=stocks, **window, **extra)))
            if pairs:
                client = with_timeout(CryptoHistoricalDataClient(
                    keys.key_id if keys else None, keys.secret_key if keys else None,
                    raw_data=True, url_override=self.url), self.config.timeout)
                out.update(client.get_crypto_bars(CryptoBarsRequest(
                    symbol_or_symbols=pairs, **window)))
        except Exception as exc:  # noqa: BLE001  (translate re-raises what it does not know)
            error = translate(exc, f"reading {self.config.timeframe} bars of "
                                   f"{', '.join(symbols)}", keys)
            raise DataError(str(error), source=f"alpaca {self.url}") from None
        return out

    def _timeframe(self) -> Any:
        from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

        match = _TIMEFRAME.match(self.config.timeframe)
        assert match is not None
        return TimeFrame(int(match.group(1)), TimeFrameUnit(match.group(2)))

    def _bound(self, value: object, default: dt.datetime | None, *,
               after: bool = False) -> dt.datetime | None:
        """A request bound wide enough for :func:`rlbridge.data.clip` to cut exactly."""
        import pandas as pd

        if value is None:
            return default
        stamp = pd.Timestamp(value)
        if stamp.tz is None:
            stamp = stamp.tz_localize("UTC")
        # a session date's bar is stamped at midnight New York or UTC: widen by a day
        stamp += pd.Timedelta(days=1 if after else -1)
        return stamp.to_pydatetime()

    def _frame(self, symbol: str, rows: list[Any]) -> pd.DataFrame:
        import pandas as pd

        frame = pd.DataFrame.from_records(
            [(r["t"], r["o"], r["h"], r["l"], r["c"], r["v"]) for r in rows],
            columns=["time", "open", "high", "low", "close", "volume"])
        index = pd.DatetimeIndex(pd.to_datetime(frame.pop("time"), utc=True), name="time")
        if self.daily:
            local = index.tz_convert("UTC" if "/" in symbol else "America/New_York")
            index = pd.DatetimeIndex(local.tz_localize(None).normalize(), name="date")
        frame.index = index
        return frame.astype("float64")


@hookimpl
def register_feeds(register: Any) -> None:
    register("alpaca", AlpacaFeed,
             description="Alpaca market data: stock and crypto bars, daily or intraday, with "
                         "pagination; keys from APCA_API_KEY_ID / APCA_API_SECRET_KEY")
