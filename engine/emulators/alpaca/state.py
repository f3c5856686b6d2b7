"""The emulated brokerage account: orders, fills, positions, cash; thread-safe.

The REST handlers and the test (through :class:`~rlbridge.emulators.alpaca.AlpacaEmulator`)
change the account from different threads; one re-entrant lock guards everything.  Each change
of an order emits a trade-update event (``new``, ``partial_fill``, ``fill``, ``canceled``,
``rejected``) to the listeners, in order, while the lock is held.

Fills move the account: ``cash -= signed qty * price``; a position's average entry price is
the volume-weighted price of the fills that opened it (reducing a position keeps it, crossing
zero starts again at the fill price); equity is cash plus every position at its last price
(the last fill, pushed bar or :meth:`TradingState.set_price`).
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .bars import BarBook
from .clock import MarketClock
from .faults import Fault
from .orders import OrderRecord, parse_order
from .wire import (
    ApiError,
    EmulatorError,
    asset_id,
    dec,
    is_crypto,
    num,
    parse_uuid,
    position_symbol,
    stamp,
)

Listener = Callable[[dict[str, Any]], None]
AutoFill = Callable[[dict[str, Any]], "float | None"]


@dataclass
class PositionRecord:
    """An open position: signed quantity and average entry price."""

    symbol: str
    qty: Decimal
    avg_entry_price: Decimal
    crypto: bool


class TradingState:
    """Orders, fills, positions and cash of the one account the emulator serves."""

    def __init__(self, *, cash: float, clock: MarketClock, bars: BarBook,
                 account_number: str) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.bars = bars
        self.account_id = str(uuid.uuid4())
        self.account_number = account_number
        self.created_at = clock.now()
        self.cash = dec(cash, "cash")
        self.initial_equity = self.cash
        self.orders: dict[str, OrderRecord] = {}
        self.by_client_id: dict[str, str] = {}
        self.positions: dict[str, PositionRecord] = {}
        self.last_price: dict[str, Decimal] = {}
        self.fills: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.submit_counts: Counter[str] = Counter()
        self.listeners: list[Listener] = []
        self.auto_fill: Callable[[OrderRecord], Decimal | None] | None = None

    # -- orders --------------------------------------------------------------------------

    def submit(self, body: Any, fault: Fault | None = None) -> dict[str, Any]:
        """Accept an order (``POST /v2/orders``); returns its JSON at acceptance.

        Raises:
            ApiError: 422 for an invalid order or a ``client_order_id`` already used.
        """
        with self.lock:
            if isinstance(body, dict) and isinstance(body.get("client_order_id"), str):
                self.submit_counts[body["client_order_id"]] += 1
            order = parse_order(body, now=self.clock.now(), seq=len(self.orders))
            if order.client_order_id in self.by_client_id:
                raise ApiError(422, 40010001, "client_order_id must be unique")
            self._check_balance(order)
            order.fault = fault
            self.orders[order.id] = order
            self.by_client_id[order.client_order_id] = order.id
            self._emit("new", order)
            accepted = order.to_json()
            if fault is not None and fault.reject is not None:
                self.reject(order.id, fault.reject)
            else:
                self.try_auto_fill(order)
            return accepted

    def find(self, ref: str | uuid.UUID) -> OrderRecord:
        """The order with this id or client order id.

        Raises:
            EmulatorError: no such order.
        """
        with self.lock:
            key = str(ref)
            order = self.orders.get(key) or self.orders.get(self.by_client_id.get(key, ""))
            if order is None:
                raise EmulatorError(f"no order with id or client_order_id {key!r}")
            return order

    def order_by_id(self, order_id: str) -> OrderRecord:
        """The order with this id, or ``ApiError`` 404 as Alpaca answers."""
        with self.lock:
            order = self.orders.get(parse_uuid(order_id) or "")
            if order is None:
                raise ApiError(404, 40410000, "order not found")
            return order

    def order_by_client_id(self, client_id: str) -> OrderRecord:
        """The order with this client order id, or ``ApiError`` 404."""
        with self.lock:
            order_id = self.by_client_id.get(client_id)
            if order_id is None:
                raise ApiError(404, 40410000, "order not found")
            return self.orders[order_id]

    def cancel(self, ref: str, *, api: bool = False) -> OrderRecord:
        """Cancel an open order and emit ``canceled``.

        Raises:
            ApiError: (``api=True``) 404 unknown, 422 not cancelable.
            EmulatorError: (``api=False``) unknown or already closed.
        """
        with self.lock:
            order = self.order_by_id(ref) if api else self.find(ref)
            if not order.is_open:
                if api:
                    raise ApiError(422, 42210000, f"order is already in {order.status!r} state")
                raise EmulatorError(f"order {order.client_order_id!r} is {order.status}")
            order.status, order.canceled_at = "canceled", self._touch(order)
            self._emit("canceled", order)
            return order

    def reject(self, ref: str, reason: str = "rejected by the broker") -> OrderRecord:
        """Reject an open order that has not filled yet and emit ``rejected``."""
        with self.lock:
            order = self.find(ref)
            if order.status not in ("new", "accepted", "pending_new"):
                raise EmulatorError(f"only an unfilled open order can be rejected; "
                                    f"{order.client_order_id!r} is {order.status}")
            order.status, order.failed_at = "rejected", self._touch(order)
            order.reject_reason = reason
            self._emit("rejected", order)
            return order

    def fill(self, ref: str, qty: float | Decimal | None, price: float | Decimal) -> dict[str, Any]:
        """Fill ``qty`` of an open order (all that remains when None) at ``price``.

        Emits ``partial_fill`` or ``fill`` and moves cash and the position.

        Returns:
            The fill record.

        Raises:
            EmulatorError: unknown or closed order, a quantity above what remains, or a price
                that breaks the order's limit.
        """
        with self.lock:
            order = self.find(ref)
            price_d = dec(price, "price")
            if not order.is_open:
                raise EmulatorError(f"order {order.client_order_id!r} is {order.status}")
            if price_d <= 0:
                raise EmulatorError(f"a fill price must be > 0, got {price}")
            if order.limit_price is not None and \
                    (price_d - order.limit_price) * order.signed > 0:
                raise EmulatorError(f"a {order.side} limit order at {order.limit_price} "
                                    f"cannot fill at {price}")
            remaining = order.remaining(price_d)
            qty_d = remaining if qty is None else dec(qty, "qty")
            if not 0 < qty_d <= remaining:
                raise EmulatorError(f"fill qty {qty_d} must be > 0 and <= the {remaining} "
                                    f"remaining of {order.client_order_id!r}")
            now = self._touch(order)
            order.filled_qty += qty_d
            order.filled_value += qty_d * price_d
            done = qty is None or qty_d == remaining
            order.status = "filled" if done else "partially_filled"
            if done:
                order.filled_at = now
            position_qty = self._book(order.symbol, qty_d * order.signed, price_d)
            record = {"execution_id": str(uuid.uuid4()), "order_id": order.id,
                      "client_order_id": order.client_order_id, "symbol": order.symbol,
                      "side": order.side, "qty": float(qty_d), "price": float(price_d),
                      "timestamp": now}
            self.fills.append(record)
            self._emit("fill" if done else "partial_fill", order,
                       execution_id=record["execution_id"], price=num(price_d),
                       qty=num(qty_d), position_qty=num(position_qty))
            return record

    def try_auto_fill(self, order: OrderRecord) -> bool:
        """Fill ``order`` by the auto-fill rule if it gives a price now; True if it filled."""
        with self.lock:
            if self.auto_fill is None or not order.is_open or not order.auto_fill:
                return False
            price = self.auto_fill(order)
            if price is None or (order.limit_price is not None
                                 and (price - order.limit_price) * order.signed > 0):
                return False  # no price yet, or a limit order that is not marketable
            fault = order.fault
            if fault is None or fault.partial is None or order.filled_qty:
                self.fill(order.id, None, price)
                return True
            part = (order.remaining(price) * Decimal(str(fault.partial))).quantize(
                Decimal(1) if order.qty is not None and order.qty % 1 == 0 else Decimal("1e-9"))
            if part <= 0 or part >= order.remaining(price):
                self.fill(order.id, None, price)
                return True
            self.fill(order.id, part, price)
            if fault.rest == "fill":
                self.fill(order.id, None, price)
            elif fault.rest == "cancel":
                self.cancel(order.id)
            else:
                order.auto_fill = False
            return True

    def run_auto_fills(self) -> int:
        """Try the auto-fill rule on every open order, oldest first; returns how many filled."""
        with self.lock:
            return sum(self.try_auto_fill(o) for o in sorted(self.orders.values(),
                                                             key=lambda o: o.seq)
                       if o.is_open)

    # -- positions and account -----------------------------------------------------------

    def set_position(self, symbol: str, qty: float, avg_entry_price: float) -> None:
        """Start with a position (cash is not touched); qty 0 removes it."""
        with self.lock:
            key, qty_d = position_symbol(symbol), dec(qty, "qty")
            if qty_d == 0:
                self.positions.pop(key, None)
                return
            self.positions[key] = PositionRecord(key, qty_d, dec(avg_entry_price, "price"),
                                                 is_crypto(symbol))

    def set_price(self, symbol: str, price: float | Decimal) -> None:
        """Set the last price of ``symbol`` (used for market value and equity)."""
        with self.lock:
            self.last_price[position_symbol(symbol)] = dec(price, "price")

    def price_of(self, position: PositionRecord) -> Decimal:
        """The last known price of a position (its entry price before any price is known)."""
        return self.last_price.get(position.symbol, position.avg_entry_price)

    def equity(self) -> Decimal:
        """Cash plus the market value of every position at its last price."""
        with self.lock:
            return self.cash + sum((p.qty * self.price_of(p) for p in self.positions.values()),
                                   Decimal(0))

    def position_json(self, position: PositionRecord) -> dict[str, Any]:
        """A position as ``GET /v2/positions`` lists it."""
        price = self.price_of(position)
        value, cost = position.qty * price, position.qty * position.avg_entry_price
        gain = value - cost
        ratio = num((gain / abs(cost)).quantize(Decimal("1e-10")).normalize()) if cost else "0"
        return {
            "asset_id": asset_id(position.symbol), "symbol": position.symbol,
            "exchange": "CRYPTO" if position.crypto else "NASDAQ",
            "asset_class": "crypto" if position.crypto else "us_equity",
            "asset_marginable": not position.crypto,
            "qty": num(position.qty), "qty_available": num(position.qty),
            "avg_entry_price": num(position.avg_entry_price),
            "side": "long" if position.qty > 0 else "short",
            "market_value": num(value), "cost_basis": num(cost),
            "unrealized_pl": num(gain), "unrealized_plpc": ratio,
            "unrealized_intraday_pl": num(gain), "unrealized_intraday_plpc": ratio,
            "current_price": num(price), "lastday_price": num(price), "change_today": "0",
        }

    def account_json(self) -> dict[str, Any]:
        """The account as ``GET /v2/account`` returns it (money fields as strings)."""
        with self.lock:
            values = [p.qty * self.price_of(p) for p in self.positions.values()]
            long_value = sum((v for v in values if v > 0), Decimal(0))
            short_value = sum((v for v in values if v < 0), Decimal(0))
            equity = self.cash + long_value + short_value
            power = num(max(self.cash, Decimal(0)))
            return {
                "id": self.account_id, "account_number": self.account_number,
                "status": "ACTIVE", "crypto_status": "ACTIVE", "currency": "USD",
                "buying_power": power, "regt_buying_power": power,
                "daytrading_buying_power": "0", "non_marginable_buying_power": power,
                "options_buying_power": power, "cash": num(self.cash), "accrued_fees": "0",
                "pending_transfer_out": "0", "pending_transfer_in": "0",
                "portfolio_value": num(equity), "equity": num(equity),
                "last_equity": num(self.initial_equity),
                "long_market_value": num(long_value), "short_market_value": num(short_value),
                "initial_margin": "0", "maintenance_margin": "0",
                "last_maintenance_margin": "0", "sma": "0", "multiplier": "1",
                "pattern_day_trader": False, "trading_blocked": False,
                "transfers_blocked": False, "account_blocked": False,
                "trade_suspended_by_user": False, "shorting_enabled": True,
                "created_at": stamp(self.created_at), "daytrade_count": 0,
                "options_approved_level": 0, "options_trading_level": 0,
            }

    # -- internals -----------------------------------------------------------------------

    def _book(self, symbol: str, signed_qty: Decimal, price: Decimal) -> Decimal:
        key = position_symbol(symbol)
        self.cash -= signed_qty * price
        self.last_price[key] = price
        position = self.positions.get(key)
        if position is None:
            self.positions[key] = PositionRecord(key, signed_qty, price, is_crypto(symbol))
            return signed_qty
        new_qty = position.qty + signed_qty
        if new_qty == 0:
            del self.positions[key]
        elif position.qty * signed_qty > 0:  # adding to the position
            position.avg_entry_price = ((position.avg_entry_price * abs(position.qty)
                                         + price * abs(signed_qty)) / abs(new_qty))
        elif position.qty * new_qty < 0:  # crossed zero: the rest opened at this price
            position.avg_entry_price = price
        position.qty = new_qty
        return new_qty

    def _check_balance(self, order: OrderRecord) -> None:
        """Crypto cannot be sold short: Alpaca refuses with 403 insufficient balance."""
        if order.side != "sell" or not is_crypto(order.symbol) or order.qty is None:
            return
        held = self.positions.get(position_symbol(order.symbol))
        available = held.qty if held is not None else Decimal(0)
        if order.qty > available:
            coin = order.symbol.split("/")[0]
            raise ApiError(403, 40310000, f"insufficient balance for {coin} (requested: "
                                          f"{num(order.qty)}, available: {num(available)})")

    def _touch(self, order: OrderRecord) -> dt.datetime:
        now = self.clock.now()
        order.updated_at = now
        return now

    def _emit(self, event: str, order: OrderRecord, **extra: Any) -> None:
        data: dict[str, Any] = {"event": event, "execution_id": str(uuid.uuid4()),
                                "order": order.to_json(), "timestamp": stamp(self.clock.now())}
        data.update(extra)
        self.events.append(data)
        for listener in list(self.listeners):
            listener(data)
