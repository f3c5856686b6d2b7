"""``AlpacaEmulator``: Alpaca's REST APIs and websocket streams on 127.0.0.1, for tests."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from types import TracebackType
from typing import Any

from .bars import BarBook, StoredBar, normalize_timeframe
from .clock import NEW_YORK, MarketClock, session_open
from .faults import FaultPlan
from .orders import OrderRecord
from .rest import RequestRecord, RestApp, RestServer
from .routes import Routes
from .state import TradingState
from .streams import StreamHub, bar_message
from .wire import ApiError, EmulatorError, EmulatorTimeout, dec, is_crypto, utc

AutoFillPrice = Callable[[dict[str, Any]], "float | None"]
_DAILY_UNITS = ("Day", "Week", "Month")


class AlpacaEmulator:
    """Alpaca's trading and market-data APIs and both streams, served on loopback ports.

    Point the real alpaca-py clients at it: ``TradingClient(key, secret,
    url_override=emulator.trading_url)``, ``StockHistoricalDataClient(...,
    url_override=emulator.data_url)``, ``TradingStream(..., url_override=
    emulator.trade_stream_url)``, ``StockDataStream(..., url_override=
    emulator.data_stream_url)``.  The test decides executions (:meth:`fill`, :meth:`reject`,
    :meth:`cancel`) or lets ``auto_fill_price`` fill orders, injects faults through
    :attr:`faults`, and inspects :attr:`orders`, :attr:`fills`, :attr:`requests` and
    :attr:`submit_counts`.

    Args:
        key_id: the API key id clients must send.
        secret_key: the secret clients must send (never logged, never in an error).
        cash: the account's starting cash.
        host: the interface to bind (ports are chosen by the OS).
        auto_fill_price: None (the test fills orders), ``"next_open"`` (an order fills at
            the open of the first bar of ``auto_fill_timeframe`` that opens at or after its
            submission, as soon as that bar is loaded or pushed; a limit order at the first
            such bar that reaches its limit), or a callable taking the order JSON and
            returning a price, or None to leave the order open for now.
        auto_fill_timeframe: the bars ``"next_open"`` reads.
        max_page_size: the most bars one market-data page holds (Alpaca: 10,000); make it
            small to exercise pagination.
        account_number: the account number ``GET /v2/account`` reports.
    """

    def __init__(self, *, key_id: str = "rlbridge-emulator-key",
                 secret_key: str = "rlbridge-emulator-secret", cash: float = 100_000.0,
                 host: str = "127.0.0.1", auto_fill_price: str | AutoFillPrice | None = None,
                 auto_fill_timeframe: str = "1Day", max_page_size: int = 10_000,
                 account_number: str = "PA3RLBRIDGE1") -> None:
        if not key_id or not secret_key:
            raise EmulatorError("the emulator needs a key id and a secret key")
        self.key_id = key_id
        self.secret_key = secret_key
        self.host = host
        self.clock = MarketClock()
        self.bars = BarBook()
        self.faults = FaultPlan()
        self._state = TradingState(cash=cash, clock=self.clock, bars=self.bars,
                                   account_number=account_number)
        self._stopping = threading.Event()
        self._routes = Routes(self._state, self.bars, self.clock, max_page_size)
        self._app = RestApp(self._routes, self.faults, key_id, secret_key, self._stopping)
        self._streams = StreamHub(host, key_id, secret_key, self.faults)
        self._state.listeners.append(self._streams.publish_trade_update)
        self._servers: dict[str, RestServer] = {}
        self.auto_fill_timeframe = normalize_timeframe(auto_fill_timeframe)
        self.auto_fill_price = auto_fill_price

    def __repr__(self) -> str:  # never shows the keys
        where = self.trading_url if self._servers else "not started"
        return f"<AlpacaEmulator {where}>"

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> AlpacaEmulator:
        """Bind the ports and serve in background threads; returns the emulator."""
        if self._servers:
            raise EmulatorError("the emulator is already started")
        self._stopping.clear()
        try:
            for api in ("trading", "data"):
                server = self._servers[api] = RestServer(self.host, self._app, api)
                server.thread.start()
            self._streams.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Release held responses, close every connection and port, join the threads."""
        self._stopping.set()
        self._streams.stop()
        for server in self._servers.values():
            server.stop()
        self._servers.clear()

    def __enter__(self) -> AlpacaEmulator:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    @property
    def trading_url(self) -> str:
        """Base URL of the trading API (``TradingClient(url_override=...)``)."""
        return self._server("trading").url

    @property
    def data_url(self) -> str:
        """Base URL of the market-data API (``StockHistoricalDataClient(url_override=...)``)."""
        return self._server("data").url

    @property
    def trade_stream_url(self) -> str:
        """Full websocket URL of the trade-updates stream (``TradingStream``)."""
        return self._streams.url("/stream")

    @property
    def data_stream_url(self) -> str:
        """Full websocket URL of the stock market-data stream (``StockDataStream``)."""
        return self._streams.url("/v2/iex")

    @property
    def crypto_data_stream_url(self) -> str:
        """Full websocket URL of the crypto market-data stream (``CryptoDataStream``)."""
        return self._streams.url("/v1beta3/crypto/us")

    # -- market data ---------------------------------------------------------------------

    def add_bars(self, symbol: str, frame_or_rows: Any, *, timeframe: str = "1Day") -> int:
        """Load bars the data API serves (see :meth:`BarBook.add` for the accepted shapes).

        Pending orders are then offered to ``auto_fill_price`` again.

        Returns:
            How many bars were added.
        """
        added = self.bars.add(symbol, frame_or_rows, timeframe)
        if added:
            self._state.set_price(symbol, added[-1].c)
        self._state.run_auto_fills()
        return len(added)

    def push_bar(self, symbol: str, *, open: float, high: float, low: float,  # noqa: A002
                 close: float, volume: float, timestamp: dt.datetime | None = None,
                 trade_count: int | None = None, vwap: float | None = None,
                 timeframe: str = "1Min") -> None:
        """Stream one bar to the market-data subscribers of ``symbol`` and keep it.

        The bar is also added to the REST data (``timeframe``), sets the last price, and
        pending orders are offered to ``auto_fill_price``.  ``timestamp`` defaults to the
        clock's current minute.
        """
        when = utc(timestamp) if timestamp else self.clock.now().replace(second=0,
                                                                          microsecond=0)
        row = {"timestamp": when, "open": open, "high": high, "low": low, "close": close,
               "volume": volume, "trade_count": trade_count, "vwap": vwap}
        self.add_bars(symbol, [row], timeframe=timeframe)
        self._streams.publish_bar(symbol, bar_message(symbol, when, open, high, low, close,
                                                      volume, trade_count, vwap))

    def set_price(self, symbol: str, price: float) -> None:
        """Set the last price of ``symbol`` (market value, equity)."""
        self._state.set_price(symbol, price)

    # -- executions ----------------------------------------------------------------------

    def fill(self, order: str, qty: float | None = None, *, price: float) -> dict[str, Any]:
        """Fill an open order (by id or client order id): all of it, or ``qty`` of it.

        A partial fill emits ``partial_fill``, the last one ``fill``; cash, the position and
        the order's ``filled_qty`` / ``filled_avg_price`` move with it.

        Returns:
            The fill: ``execution_id, order_id, client_order_id, symbol, side, qty, price,
            timestamp``.
        """
        return self._state.fill(order, qty, price)

    def reject(self, order: str, reason: str = "rejected by the broker") -> dict[str, Any]:
        """Reject an unfilled open order (emits ``rejected``); returns the order JSON."""
        return self._state.reject(order, reason).to_json()

    def cancel(self, order: str) -> dict[str, Any]:
        """Cancel an open order, as the broker would (emits ``canceled``); returns its JSON."""
        return self._state.cancel(order).to_json()

    def set_position(self, symbol: str, qty: float, avg_entry_price: float) -> None:
        """Give the account a position without an order (cash untouched); qty 0 removes it."""
        self._state.set_position(symbol, qty, avg_entry_price)

    # -- inspection ----------------------------------------------------------------------

    @property
    def orders(self) -> list[dict[str, Any]]:
        """Every order ever accepted, oldest first, as Alpaca's order JSON."""
        with self._state.lock:
            return [o.to_json() for o in sorted(self._state.orders.values(),
                                                key=lambda o: o.seq)]

    def order(self, ref: str) -> dict[str, Any]:
        """One order (by id or client order id) as JSON."""
        return self._state.find(ref).to_json()

    @property
    def fills(self) -> list[dict[str, Any]]:
        """Every fill, oldest first."""
        with self._state.lock:
            return list(self._state.fills)

    @property
    def trade_events(self) -> list[dict[str, Any]]:
        """Every trade-update event emitted (the ``data`` of each stream message)."""
        with self._state.lock:
            return list(self._state.events)

    @property
    def positions(self) -> dict[str, float]:
        """Open positions: symbol (crypto without the slash, as Alpaca lists it) -> qty."""
        with self._state.lock:
            return {k: float(p.qty) for k, p in sorted(self._state.positions.items())}

    @property
    def cash(self) -> float:
        """The account's cash."""
        return float(self._state.cash)

    @property
    def equity(self) -> float:
        """Cash plus positions at their last prices."""
        return float(self._state.equity())

    @property
    def requests(self) -> list[RequestRecord]:
        """Every REST request answered, oldest first: api, method, path, query, status, body.

        Headers are never kept, so the keys are not in it.
        """
        return list(self._app.requests)

    @property
    def submit_counts(self) -> Counter[str]:
        """``client_order_id`` -> how many ``POST /v2/orders`` carried it (duplicates too)."""
        with self._state.lock:
            return Counter(self._state.submit_counts)

    @property
    def errors(self) -> list[str]:
        """Tracebacks of requests that failed inside the emulator (answered 500)."""
        return list(self._app.errors)

    def stream_clients(self, stream: str) -> int:
        """Ready connections of ``"trade_updates"`` or ``"market_data"`` now."""
        return self._streams.ready_count(stream)

    def stream_connections_total(self, stream: str) -> int:
        """Connections of ``stream`` that became ready since the start (reconnects count)."""
        return self._streams.ready_total[stream]

    def wait_for_stream_clients(self, stream: str, count: int = 1, *, total: int | None = None,
                                timeout: float = 10.0) -> None:
        """Wait until ``count`` clients of ``stream`` are ready now (and ``total`` ever).

        Ready means authenticated and listening (trade updates) or subscribed (market data).

        Raises:
            EmulatorTimeout: not reached within ``timeout`` seconds.
        """
        self._streams.wait_ready(stream, count, total, timeout)

    def drop_stream_connections(self, stream: str | None = None) -> int:
        """Abort the connections of ``stream`` (both when None), as a network drop would."""
        return self._streams.drop(stream)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until no REST request is in progress (held responses included).

        Raises:
            EmulatorTimeout: requests still running after ``timeout`` seconds.
        """
        if not self._app.wait_idle(timeout):
            raise EmulatorTimeout(f"REST requests still running after {timeout} s")

    # -- settings ------------------------------------------------------------------------

    @property
    def max_page_size(self) -> int:
        """The most bars one market-data page holds; settable (small values force pages)."""
        return self._routes.max_page_size

    @max_page_size.setter
    def max_page_size(self, size: int) -> None:
        if size < 1:
            raise EmulatorError("max_page_size must be >= 1")
        self._routes.max_page_size = int(size)

    @property
    def auto_fill_price(self) -> str | AutoFillPrice | None:
        """The auto-fill rule (see the class documentation); settable."""
        return self._auto_fill_price

    @auto_fill_price.setter
    def auto_fill_price(self, rule: str | AutoFillPrice | None) -> None:
        if rule is None:
            self._state.auto_fill = None
        elif rule == "next_open":
            self._state.auto_fill = self._next_open_price
        elif callable(rule):
            self._state.auto_fill = lambda order: _price_or_none(rule(order.to_json()))
        else:
            raise EmulatorError(f"auto_fill_price is None, 'next_open' or a callable; "
                                f"got {rule!r}")
        self._auto_fill_price = rule

    def _next_open_price(self, order: OrderRecord) -> Decimal | None:
        daily = self.auto_fill_timeframe.endswith(_DAILY_UNITS) \
            and not is_crypto(order.symbol)
        since = order.submitted_at - dt.timedelta(days=1)
        for bar in self.bars.first_at_or_after(order.symbol, self.auto_fill_timeframe, since):
            opens = _daily_open(bar) if daily else bar.t
            if opens < order.submitted_at:
                continue
            if order.limit_price is None:
                return dec(bar.o)
            limit = float(order.limit_price)
            if order.side == "buy" and bar.l <= limit:
                return dec(min(bar.o, limit))
            if order.side == "sell" and bar.h >= limit:
                return dec(max(bar.o, limit))
        return None

    def _server(self, api: str) -> RestServer:
        server = self._servers.get(api)
        if server is None:
            raise EmulatorError("the emulator is not started; call start() or use `with`")
        return server


def _daily_open(bar: StoredBar) -> dt.datetime:
    return session_open(bar.t.astimezone(NEW_YORK).date())


def _price_or_none(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return dec(value, "auto-fill price")
    except ApiError:
        raise EmulatorError(f"auto_fill_price returned {value!r}, not a price") from None
