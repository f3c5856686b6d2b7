"""``AlpacaBroker``: the Broker protocol on alpaca-py's ``TradingClient``.

Orders always carry rlbridge's client order id, so an order whose answer was lost is found
again by that id (``GET /v2/orders:by_client_order_id``) instead of being sent twice; the runner
does the looking up, this class says which errors leave the outcome unknown
(:mod:`~rlbridge.plugins.brokers.alpaca.connection`).

Order kinds: ``market`` is a day order (good-till-canceled for crypto), ``market_on_open`` an
opening-auction order (``time_in_force = opg``, whole shares only; crypto trades around the
clock and gets a good-till-canceled market order), ``limit`` a day limit order.  Alpaca's order
states map onto rlbridge's six (:func:`order_state`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from rlbridge.errors import BrokerError, RLBridgeError
from rlbridge.interfaces import Account, BrokerOrder

from .config import AlpacaConfig, credentials
from .connection import call, read, trading_client

if TYPE_CHECKING:
    import pandas as pd

    from rlbridge.interfaces import Order

    from .bars import BarTarget, LiveBars, Minute
    from .stream import TradeUpdates

_LOG = logging.getLogger("rlbridge.plugins.brokers.alpaca")

#: Alpaca's open states, by what rlbridge calls them (``partially_filled`` when some filled)
_OPEN = frozenset({"new", "accepted", "pending_new", "accepted_for_bidding", "held",
                   "calculated", "pending_cancel", "pending_replace", "stopped", "suspended",
                   "done_for_day"})
_FINAL = {"filled": "filled", "canceled": "canceled", "expired": "expired",
          "rejected": "rejected", "replaced": "canceled"}
_QUOTES = ("USDT", "USDC", "USD", "BTC")


class AlpacaBroker:
    """Alpaca's paper (default) or live account through alpaca-py.

    Args:
        config: the ``[broker]`` options (:class:`AlpacaConfig`).

    Raises:
        ConfigError: ``APCA_API_KEY_ID`` or ``APCA_API_SECRET_KEY`` is not set.
    """

    Config = AlpacaConfig

    def __init__(self, config: AlpacaConfig | None = None) -> None:
        self.config = config if config is not None else AlpacaConfig()
        self.paper = self.config.paper
        self._keys = credentials("the alpaca broker")
        self._client: Any = None
        self._symbols: dict[str, str] = {}
        self._updates: TradeUpdates | None = None
        self._session: Any = None
        self._live_bars: LiveBars | None = None
        self._bar_target: BarTarget | None = None
        self._no_bar_stream = False
        self._last_minute: pd.Timestamp | None = None  # the latest minute stored
        self._clock: tuple[float, pd.Timestamp] | None = None

    def __repr__(self) -> str:
        return f"AlpacaBroker(paper={self.paper}, trading_url={self.config.trading!r})"

    # ------------------------------------------------------------------ lifecycle
    @property
    def client(self) -> Any:
        """The ``TradingClient`` (made on first use)."""
        if self._client is None:
            self._client = trading_client(self.config, self._keys)
        return self._client

    def connect(self, session: Any) -> None:
        """Check the account can trade; learn the run's symbols (crypto positions map back)."""
        self._session = session
        if session is not None:
            self._symbols = {s.replace("/", ""): s for s in session.bars.symbols}
        account = self._read("reading the account", self.client.get_account)
        if account.trading_blocked or account.account_blocked:
            raise BrokerError(f"the Alpaca account {account.account_number} is blocked from "
                              "trading")

    def close(self) -> None:
        """Stop the streams and release the HTTP connections."""
        if self._updates is not None:
            self._updates.stop()
            self._updates = None
        if self._live_bars is not None:
            self._live_bars.stop()
            self._live_bars = None
        if self._bar_target is not None:
            self._bar_target.close()
            self._bar_target = None
        if self._client is not None:
            self._client._session.close()
            self._client = None

    def market_time(self) -> pd.Timestamp:
        """Now, by Alpaca's clock (read once, then advanced with the local monotonic clock).

        The live runner decides by this clock, so a machine whose clock drifts still sends
        market-on-open orders before the open.
        """
        import pandas as pd

        if self._clock is None:
            clock = self._read("reading the market clock", self.client.get_clock)
            self._clock = (time.monotonic(), pd.Timestamp(clock.timestamp).tz_convert("UTC"))
        started, stamp = self._clock
        return stamp + pd.Timedelta(seconds=time.monotonic() - started)

    # ------------------------------------------------------------------ account
    def account(self) -> Account:
        """Cash and equity of the account."""
        account = self._read("reading the account", self.client.get_account)
        return Account(float(account.cash), float(account.equity), str(account.currency or "USD"))

    def positions(self) -> dict[str, float]:
        """Signed quantity per symbol; crypto pairs under the run's name (``BTC/USD``)."""
        held = self._read("reading the positions", self.client.get_all_positions)
        out: dict[str, float] = {}
        for position in held:
            qty = float(position.qty)
            if str(getattr(position.side, "value", position.side)) == "short" and qty > 0:
                qty = -qty
            out[self._run_symbol(position.symbol, position.asset_class)] = qty
        return out

    def _run_symbol(self, symbol: str, asset_class: Any) -> str:
        if symbol in self._symbols:
            return self._symbols[symbol]
        if "/" not in symbol and str(getattr(asset_class, "value", asset_class)) == "crypto":
            for quote in _QUOTES:
                if symbol.endswith(quote) and len(symbol) > len(quote):
                    return f"{symbol[:-len(quote)]}/{quote}"
        return symbol

    # ------------------------------------------------------------------ orders
    def submit(self, order: Order) -> BrokerOrder:
        """Send ``order`` with its client order id; Alpaca's view of it once accepted.

        Raises:
            DuplicateOrderError: Alpaca has an order with this client id already.
            TransientBrokerError: the answer was lost (timeout, 5xx, dropped connection).
            BrokerError: Alpaca refused the order, or rlbridge cannot express it.
        """
        request = self.order_request(order)
        placed = call(f"submitting {order.client_order_id}",
                      lambda: self.client.submit_order(request), self._keys)
        return to_broker_order(placed)

    def order_request(self, order: Order) -> Any:
        """The alpaca-py request for ``order`` (see the module for the order kinds)."""
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

        cid = order.client_order_id
        if not cid:
            raise BrokerError(f"an order of {order.symbol} has no client order id: rlbridge "
                              "never sends one without (it is what prevents a second send)")
        qty = round(abs(float(order.quantity)), 9)  # Alpaca takes at most 9 decimals
        if qty == 0:
            raise BrokerError(f"{cid}: nothing to trade (quantity {order.quantity})")
        crypto = "/" in order.symbol
        side = OrderSide.BUY if order.quantity > 0 else OrderSide.SELL
        tif = TimeInForce.GTC if crypto else TimeInForce.DAY
        if order.kind == "market_on_open" and not crypto:
            if qty != int(qty):
                raise BrokerError(f"{cid}: market-on-open orders take whole shares at Alpaca, "
                                  f"got {order.quantity} {order.symbol}")
            tif = TimeInForce.OPG
        fields = {"symbol": order.symbol, "qty": qty, "side": side, "time_in_force": tif,
                  "client_order_id": cid}
        if order.kind in ("market", "market_on_open"):
            return MarketOrderRequest(**fields)
        if order.kind == "limit":
            if order.limit_price is None or not order.limit_price > 0:
                raise BrokerError(f"{cid}: a limit order needs a limit price above 0")
            return LimitOrderRequest(limit_price=round(float(order.limit_price), 4), **fields)
        raise BrokerError(f"{cid}: the alpaca broker sends market, market_on_open and limit "
                          f"orders, not {order.kind!r}")

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        """The order with this client id, or None when Alpaca has none (404)."""
        found = self._find(client_order_id)
        return None if found is None else to_broker_order(found)

    def cancel(self, client_order_id: str) -> None:
        """Cancel the order if it is still open; nothing happens for a final or unknown one."""
        from alpaca.common.exceptions import APIError

        found = self._find(client_order_id)
        if found is None:
            return
        status = str(found.status.value)
        if status not in _OPEN and status != "partially_filled":
            return

        def cancel() -> None:
            try:
                self.client.cancel_order_by_id(found.id)
            except APIError as exc:
                if exc.status_code not in (404, 422):  # gone, or final in the meantime
                    raise

        call(f"canceling {client_order_id}", cancel, self._keys)

    # ------------------------------------------------------------------ fills
    def wait_for_update(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a trade update (the live runner's fill wait).

        The trade-updates stream starts on the first call (``stream = true``); without it
        this sleeps ``timeout``.

        Returns:
            True when an update arrived.
        """
        if not self.config.stream:
            time.sleep(max(0.0, timeout))
            return False
        if self._updates is None:
            from .stream import TradeUpdates

            self._updates = TradeUpdates(self.config.trade_stream, self._keys).start()
        return self._updates.wait(timeout)

    # ------------------------------------------------------------------ bars
    def wait_for_bar(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the next bar to close (the live loop's clock).

        The first call subscribes to the 1-minute bars of the run's symbols on the market-data
        streams (``data_stream_url``; ``crypto_data_stream_url`` for pairs such as
        ``BTC/USD``).  A minute is handed on once every symbol's bar has arrived (or a later
        minute began, or a few seconds passed); a ``[data] feed = "sql"`` reading
        ``interval = "1m"`` finds it in the store before this returns.  A daily run, or a
        ``sql`` feed at another interval, gets no stream: this sleeps ``timeout``.

        Returns:
            True when a new bar was stored (or, for another feed, arrived); False on timeout.
        """
        if self._live_bars is None and not self._no_bar_stream:
            from .bars import LiveBars, bar_target

            target = bar_target(self._session, _LOG)
            if target is None:
                self._no_bar_stream = True
            else:
                self._bar_target = target
                self._live_bars = LiveBars(
                    self._session.bars.symbols, self.config.data_stream,
                    self.config.crypto_data_stream, self._keys).start()
        if self._live_bars is None:
            time.sleep(max(0.0, timeout))
            return False
        minutes = self._live_bars.wait(timeout)
        if not minutes:
            return False
        assert self._bar_target is not None
        if self._bar_target.store is not None:
            minutes = self._missed(minutes) + minutes
        self._bar_target.write(minutes)
        return True

    def _missed(self, minutes: list[Minute]) -> list[Minute]:
        """The minutes between the latest one stored and ``minutes`` that the stream did not
        bring (it was down, or the run was not running), read from Alpaca's bars API.

        A failed read leaves the gap (logged) rather than stop the loop: the streamed minutes
        are stored all the same.
        """
        import pandas as pd

        from .bars import missed_minutes

        last = self._last_minute
        if last is None:
            assert self._session is not None
            last = pd.Timestamp(self._session.bars.index[-1])
        newest = max(stamp for stamp, _ in minutes)
        self._last_minute = max(last, newest)
        first = min(stamp for stamp, _ in minutes)
        if first - last <= pd.Timedelta(minutes=1):
            return []
        try:
            found = missed_minutes(self.config, list(self._session.bars.symbols), last, first)
        except RLBridgeError as exc:
            _LOG.warning("the bars between %s and %s could not be read from Alpaca: %s",
                         last, first, exc)
            return []
        if found:
            _LOG.info("read %d missed minutes (%s .. %s) from Alpaca's bars API", len(found),
                      found[0][0], found[-1][0])
        return found

    # ------------------------------------------------------------------ helpers
    def _read(self, what: str, func: Any) -> Any:
        return read(what, func, self.config, self._keys)

    def _find(self, client_order_id: str) -> Any:
        """Alpaca's order with this client id, or None (404)."""
        from alpaca.common.exceptions import APIError

        def fetch() -> Any:
            try:
                return self.client.get_order_by_client_id(client_order_id)
            except APIError as exc:
                if exc.status_code == 404:
                    return None
                raise

        return self._read(f"looking up {client_order_id}", fetch)


def order_state(status: str, filled: float) -> str:
    """rlbridge's state of an order Alpaca reports as ``status`` with ``filled`` shares done.

    Open states (``new``, ``accepted``, ``pending_new``, ``done_for_day``, ...) are ``new``,
    or ``partially_filled`` once something filled; ``replaced`` is ``canceled`` (rlbridge
    never replaces an order, so the one it knows is gone).
    """
    if status in _FINAL:
        return _FINAL[status]
    if status == "partially_filled" or (status in _OPEN and filled):
        return "partially_filled"
    if status in _OPEN:
        return "new"
    raise BrokerError(f"Alpaca reports an order state rlbridge does not know: {status!r}")


def to_broker_order(order: Any) -> BrokerOrder:
    """An alpaca-py ``Order`` as rlbridge's :class:`~rlbridge.interfaces.BrokerOrder`."""
    sign = 1.0 if str(order.side.value) == "buy" else -1.0
    filled = float(order.filled_qty or 0)
    price = order.filled_avg_price
    status = str(getattr(order.status, "value", order.status))
    state = order_state(status, filled)
    reason = {"rejected": "rejected by Alpaca", "expired": "expired at Alpaca",
              "replaced": "replaced at Alpaca"}.get(status)
    when = order.filled_at or (order.updated_at if filled else None)
    return BrokerOrder(
        client_order_id=str(order.client_order_id), broker_order_id=str(order.id),
        symbol=str(order.symbol), quantity=sign * float(order.qty or 0),
        filled_quantity=sign * filled,
        average_price=float(price) if price not in (None, "") else None,
        status=state, commission=0.0, reason=reason, filled_at=when)

