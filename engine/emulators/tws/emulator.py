"""``TwsEmulator``: the TWS API socket protocol on 127.0.0.1, for tests of IB clients."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from decimal import Decimal
from types import TracebackType
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from ..alpaca.clock import MarketClock
from .autofill import AutoFillPrice, make_rule
from .bars import BarStore, normalize_bar_size
from .contracts import ContractBook, forex, stock
from .controls import ExchangeControls
from .errors import EmulatorError, EmulatorTimeout
from .faults import FaultPlan
from .handlers import Handlers
from .ledger import Ledger
from .protocol import MAX_SERVER_VERSION, MIN_SERVER_VERSION
from .server import Hub, ServerThread
from .state import BrokerState, Commission

T = TypeVar("T")


class TwsEmulator(ExchangeControls):
    """A TWS / IB Gateway stand-in: the real API socket protocol, an account and a market.

    Connect the real client to it: ``await IB().connectAsync(emulator.host, emulator.port,
    clientId=1)``.  The test plays the exchange: :meth:`fill`, :meth:`reject`,
    :meth:`cancel` (or ``auto_fill``), loads bars (:meth:`add_bars`, :meth:`push_bar`),
    injects faults (:attr:`faults`, :meth:`disconnect`, :meth:`connectivity_lost`) and
    inspects :attr:`orders`, :attr:`executions`, :attr:`positions` and :attr:`errors`.

    Args:
        account: the managed account code (a paper account starts with ``DU``).
        cash: the starting cash in ``base_currency``.
        base_currency: the account's base currency.
        host: the interface to bind (the port is chosen by the OS).
        server_version: the highest server version to negotiate,
            :data:`MIN_SERVER_VERSION` .. :data:`MAX_SERVER_VERSION`.
        time_zone: the zone TWS writes times in (executions, intraday bars).
        auto_fill: None (the test fills), ``"last"`` (market orders, and limit orders the
            last price reaches, fill at the instrument's last price as soon as one is
            known), ``"next_open"`` (at the open of the first bar of ``auto_fill_bar_size``
            that opens at or after the order, once loaded; a limit order at the first such
            bar reaching its limit), or a callable taking the order dict and returning a
            price or None.
        auto_fill_bar_size: the bars ``"next_open"`` reads.
        first_order_id: the first ``nextValidId`` of a new client id.
        farm_messages: send the 2104/2106/2158 farm-status notices after startApi, as TWS.
        default_contracts: know the default ETFs, stocks and FX majors (else only those
            added with :meth:`add_contract` or :meth:`add_bars`).
        commission: ``f(contract, qty, price) -> commission``; default IB's fixed pricing.
    """

    def __init__(self, *, account: str = "DU1234567", cash: float = 100_000.0,
                 base_currency: str = "USD", host: str = "127.0.0.1",
                 server_version: int = MAX_SERVER_VERSION, time_zone: str = "US/Eastern",
                 auto_fill: str | AutoFillPrice | None = None,
                 auto_fill_bar_size: str = "1 day", first_order_id: int = 1,
                 farm_messages: bool = True, default_contracts: bool = True,
                 commission: Commission | None = None) -> None:
        if not MIN_SERVER_VERSION <= server_version <= MAX_SERVER_VERSION:
            raise EmulatorError(f"server_version must be {MIN_SERVER_VERSION}.."
                                f"{MAX_SERVER_VERSION}, got {server_version}")
        self.account = account
        self.host = host
        self.server_version = server_version
        self.zone = ZoneInfo(time_zone)
        self.farm_messages = farm_messages
        self.clock = MarketClock()
        self.faults = FaultPlan()
        self._contracts = ContractBook(default_contracts)
        self._bars = BarStore()
        self._ledger = Ledger(account, Decimal(str(cash)), base_currency)
        self._hub = Hub(self)
        kwargs = {"commission": commission} if commission is not None else {}
        self._state = BrokerState(self._ledger, self._hub, self.clock.now,
                                  first_order_id=first_order_id, **kwargs)
        self._handlers = Handlers(self)
        self._server = ServerThread(self, host)
        self._errors: list[str] = []
        self._unhandled: list[tuple[int, list[str]]] = []
        self._messages: deque[tuple[str, int, str, list[str]]] = deque(maxlen=50_000)
        self._changes = threading.Condition()
        self._version = 0
        self.auto_fill_bar_size = normalize_bar_size(auto_fill_bar_size)
        self.auto_fill = auto_fill

    def __repr__(self) -> str:
        where = f"{self.host}:{self.port}" if self._server.running else "not started"
        return f"<TwsEmulator {where} v{self.server_version}>"

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> TwsEmulator:
        """Bind the port and serve in a background thread; returns the emulator."""
        if self._server.running:
            raise EmulatorError("the emulator is already started")
        self._server = ServerThread(self, self.host)
        self._server.start()
        return self

    def stop(self) -> None:
        """Close every connection and the port, and join the thread."""
        self._server.stop()

    def __enter__(self) -> TwsEmulator:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The listening port (``IB.connectAsync(emulator.host, emulator.port, ...)``)."""
        if not self._server.running:
            raise EmulatorError("the emulator is not started; call start() or use `with`")
        return self._server.port

    # -- instruments and market data -----------------------------------------------------

    def add_contract(self, symbol: str, sec_type: str = "STK", *, primary_exchange: str = "ARCA",
                     currency: str = "USD", con_id: int | None = None, long_name: str = "",
                     stock_type: str = "COMMON") -> dict[str, Any]:
        """Add a SMART stock/ETF (``"STK"``) or an IDEALPRO pair (``"CASH"``, ``"EUR.USD"``).

        Returns:
            The instrument (:meth:`contract`).
        """
        if sec_type.upper() == "CASH":
            spec = forex(symbol, con_id=con_id)
        elif sec_type.upper() == "STK":
            spec = stock(symbol, primary_exchange, currency=currency, stock_type=stock_type,
                         long_name=long_name, con_id=con_id)
        else:
            raise EmulatorError(f"the emulator has stocks (STK) and forex (CASH), not {sec_type}")
        self._apply(self._contracts.add, spec)
        return self.contract(spec.key)

    def contract(self, symbol: str) -> dict[str, Any]:
        """An instrument (``"SPY"``, ``"EUR.USD"``): con_id, symbol, sec_type, currency, ..."""
        spec = self._call(self._contracts.get, symbol)
        return {"con_id": spec.con_id, "symbol": spec.symbol, "sec_type": spec.sec_type,
                "currency": spec.currency, "exchange": spec.exchange,
                "primary_exchange": spec.primary_exchange, "local_symbol": spec.local_symbol,
                "trading_class": spec.trading_class, "long_name": spec.long_name}

    def add_bars(self, symbol: str, rows: Any, *, bar_size: str = "1 day") -> int:
        """Load bars reqHistoricalData serves (see :meth:`BarStore.add` for the shapes).

        An unknown symbol is added as a SMART stock (or an IDEALPRO pair for ``"EUR.USD"``).
        The last bar's close becomes the last price; orders are offered to ``auto_fill``.

        Returns:
            How many bars were added.
        """
        size = _size(bar_size)

        def add() -> int:
            spec = self._contracts.ensure(symbol)
            added = self._bars.add(spec.key, rows, size, self.zone)
            if added:
                self._ledger.set_mark(spec, Decimal(repr(added[-1].close)))
            self._state.run_auto_fills()
            return len(added)

        return self._apply(add)

    def push_bar(self, symbol: str, *, open: float, high: float, low: float,  # noqa: A002
                 close: float, volume: float, time: dt.datetime | None = None,
                 bar_size: str = "5 secs", average: float | None = None,
                 bar_count: int = 0) -> None:
        """A new live bar: kept, sent to keepUpToDate (and, at 5 secs, real-time-bar)
        subscribers of ``symbol``; its close becomes the last price; auto-fills run.

        ``time`` (the bar's start; naive is UTC) defaults to the clock's current time.
        """
        size = _size(bar_size)
        when = time or self.clock.now()
        when = when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)
        wap = close if average is None else average

        def push() -> None:
            spec = self._contracts.ensure(symbol)
            row = {"timestamp": when, "open": open, "high": high, "low": low, "close": close,
                   "volume": volume, "average": wap, "bar_count": bar_count}
            self._bars.add(spec.key, [row], size, self.zone)
            self._ledger.set_mark(spec, Decimal(repr(close)))
            self._handlers.publish_bar(spec.key, size, when,
                                       (open, high, low, close, volume, wap, bar_count))
            self._state.run_auto_fills()

        self._apply(push)

    def set_price(self, symbol: str, price: float) -> None:
        """Set an instrument's last price (market values, FX rates, ``auto_fill="last"``)."""
        def set_() -> None:
            self._ledger.set_mark(self._contracts.ensure(symbol), Decimal(str(price)))
            self._state.run_auto_fills()

        self._apply(set_)

    # -- inspection ----------------------------------------------------------------------

    @property
    def orders(self) -> list[dict[str, Any]]:
        """Every order accepted, oldest first."""
        return self._call(lambda: [o.to_dict() for o in sorted(
            self._state.orders.values(), key=lambda o: o.seq)])

    def order(self, ref: int | str, client_id: int | None = None) -> dict[str, Any]:
        """One order, by order id or orderRef (the newest carrying it)."""
        return self._call(lambda: self._state.find(ref, client_id).to_dict())

    def orders_by_ref(self, order_ref: str) -> list[dict[str, Any]]:
        """Every order carrying ``order_ref``, oldest first (more than one is a duplicate)."""
        return [o for o in self.orders if o["order_ref"] == order_ref]

    @property
    def executions(self) -> list[dict[str, Any]]:
        """Every execution, oldest first."""
        return self._call(lambda: [e.to_dict() for e in self._state.executions])

    @property
    def positions(self) -> dict[str, float]:
        """Open positions: ``"SPY"`` / ``"EUR.USD"`` -> signed quantity."""
        return self._call(lambda: {p.contract.key: float(p.qty)
                                   for p in self._ledger.open_positions()})

    @property
    def cash(self) -> dict[str, float]:
        """Cash balances by currency."""
        return self._call(lambda: {c: float(v) for c, v in sorted(self._ledger.cash.items())})

    @property
    def account_values(self) -> dict[tuple[str, str], str]:
        """``(tag, currency) -> value`` as the account updates report them."""
        return self._call(lambda: {(t, c): v for t, v, c in self._ledger.values()})

    @property
    def submit_counts(self) -> Counter[str]:
        """orderRef -> how many placeOrder requests carried it (modifications too)."""
        return self._call(lambda: Counter(self._state.submit_counts))

    @property
    def errors(self) -> list[str]:
        """Protocol errors and emulator failures (a test should end with none)."""
        return self._call(lambda: list(self._errors))

    @property
    def unhandled(self) -> list[tuple[int, list[str]]]:
        """``(client_id, fields)`` of requests the emulator does not answer."""
        return self._call(lambda: list(self._unhandled))

    def messages(self, direction: str | None = None, name: str | None = None,
                 client_id: int | None = None) -> list[tuple[str, int, str, list[str]]]:
        """The message log: ``(direction "in"/"out", client_id, name, fields)``, filtered."""
        return self._call(lambda: [m for m in self._messages
                                   if (direction is None or m[0] == direction)
                                   and (name is None or m[2] == name)
                                   and (client_id is None or m[1] == client_id)])

    @property
    def clients(self) -> list[int]:
        """Client ids of the connections past startApi now."""
        return self._call(lambda: sorted(s.client_id for s in self._hub.ready()))

    @property
    def connections_total(self) -> int:
        """Connections accepted since the start (reconnects count)."""
        return self._hub.connections_total

    def wait_until(self, predicate: Callable[[TwsEmulator], bool], timeout: float = 10.0,
                   what: str = "the condition") -> None:
        """Wait until ``predicate(emulator)`` holds (checked after every change).

        Raises:
            EmulatorTimeout: it does not hold within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._changes:
                seen = self._version
            if predicate(self):
                return
            with self._changes:
                while self._version == seen:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise EmulatorTimeout(f"{what} did not happen within {timeout} s")
                    self._changes.wait(left)

    def wait_for_clients(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until ``count`` clients are connected past startApi."""
        self.wait_until(lambda e: len(e.clients) >= count, timeout, f"{count} client(s)")

    # -- internals -----------------------------------------------------------------------

    @property
    def auto_fill(self) -> str | AutoFillPrice | None:
        """The auto-fill rule (see the class documentation); settable."""
        return self._auto_fill

    @auto_fill.setter
    def auto_fill(self, rule: str | AutoFillPrice | None) -> None:
        chosen = make_rule(rule, self._ledger, self._bars, self.auto_fill_bar_size, self.zone)
        self._auto_fill = rule
        self._apply(setattr, self._state, "auto_fill", chosen)

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return self._server.call(fn, *args)

    def _apply(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return self._server.call(fn, *args)
        finally:
            self._notify()

    def _notify(self) -> None:
        with self._changes:
            self._version += 1
            self._changes.notify_all()

    def _log(self, direction: str, client_id: int, name: str, fields: list[str]) -> None:
        self._messages.append((direction, client_id, name, list(fields)))


def _size(bar_size: str) -> str:
    try:
        return normalize_bar_size(bar_size)
    except ValueError as exc:
        raise EmulatorError(str(exc)) from None

