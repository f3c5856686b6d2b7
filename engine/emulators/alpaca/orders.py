"""Orders as the emulator keeps them: validation of a submitted order and its JSON shape.

The JSON is the order object of Alpaca's trading API (the one alpaca-py parses into
``alpaca.trading.models.Order``): ids as UUID strings, quantities and prices as strings,
times as RFC 3339.  Supported: ``market`` and ``limit`` orders, by ``qty`` or (market only)
``notional``, ``time_in_force`` ``day``/``gtc``/``opg``/``cls``/``ioc``/``fok`` for stocks and
``gtc``/``ioc`` for crypto pairs; anything else is refused with a 422, as Alpaca refuses it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from .faults import Fault
from .wire import ApiError, asset_id, dec, is_crypto, num, stamp

OPEN_STATUSES = frozenset({"new", "accepted", "pending_new", "partially_filled",
                           "pending_cancel", "pending_replace", "accepted_for_bidding",
                           "held", "calculated", "stopped", "suspended"})
CLOSED_STATUSES = frozenset({"filled", "canceled", "expired", "rejected", "replaced",
                             "done_for_day"})
STOCK_TIFS = ("day", "gtc", "opg", "cls", "ioc", "fok")
CRYPTO_TIFS = ("gtc", "ioc")
QTY_STEP = Decimal("0.000000001")  # Alpaca takes up to 9 decimal places
MAX_CLIENT_ID = 128


@dataclass
class OrderRecord:
    """One accepted order and its execution so far."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    extended_hours: bool
    submitted_at: dt.datetime
    seq: int
    position_intent: str | None = None
    status: str = "new"
    updated_at: dt.datetime | None = None
    filled_at: dt.datetime | None = None
    canceled_at: dt.datetime | None = None
    failed_at: dt.datetime | None = None
    filled_qty: Decimal = Decimal(0)
    filled_value: Decimal = Decimal(0)
    auto_fill: bool = True
    reject_reason: str | None = None
    fault: Fault | None = field(default=None, repr=False)

    @property
    def is_open(self) -> bool:
        """True while the order can still fill or be canceled."""
        return self.status in OPEN_STATUSES

    @property
    def signed(self) -> int:
        """+1 for a buy, -1 for a sell."""
        return 1 if self.side == "buy" else -1

    def remaining(self, price: Decimal) -> Decimal:
        """The quantity still to fill; for a notional order, what the rest buys at ``price``."""
        if self.qty is not None:
            return self.qty - self.filled_qty
        assert self.notional is not None
        return ((self.notional - self.filled_value) / price).quantize(QTY_STEP, ROUND_DOWN)

    @property
    def filled_avg_price(self) -> Decimal | None:
        """Volume-weighted price of the fills so far, or None before the first fill."""
        if not self.filled_qty:
            return None
        return (self.filled_value / self.filled_qty).quantize(Decimal("0.0001")).normalize()

    def to_json(self) -> dict[str, Any]:
        """The order as Alpaca's REST API and trade-update stream send it."""
        created = stamp(self.submitted_at)
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": created,
            "updated_at": stamp(self.updated_at or self.submitted_at),
            "submitted_at": created,
            "filled_at": stamp(self.filled_at),
            "expired_at": None,
            "canceled_at": stamp(self.canceled_at),
            "failed_at": stamp(self.failed_at),
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": asset_id(self.symbol),
            "symbol": self.symbol,
            "asset_class": "crypto" if is_crypto(self.symbol) else "us_equity",
            "notional": num(self.notional),
            "qty": num(self.qty),
            "filled_qty": num(self.filled_qty),
            "filled_avg_price": num(self.filled_avg_price),
            "order_class": "",
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "position_intent": self.position_intent,
            "time_in_force": self.time_in_force,
            "limit_price": num(self.limit_price),
            "stop_price": None,
            "status": self.status,
            "extended_hours": self.extended_hours,
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "subtag": None,
            "source": None,
            "expires_at": None,
        }


def parse_order(body: Any, *, now: dt.datetime, seq: int) -> OrderRecord:
    """Validate a ``POST /v2/orders`` body into an order (not yet accepted).

    Raises:
        ApiError: 422 with Alpaca's code 40010001 and a message naming the bad field.
    """
    if not isinstance(body, dict):
        raise _invalid("request body must be a JSON object")
    symbol = body.get("symbol")
    if not isinstance(symbol, str) or not symbol.strip():
        raise _invalid("symbol is required")
    symbol = symbol.strip().upper()
    side = _choice(body, "side", ("buy", "sell"))
    order_type = _choice(body, "type", ("market", "limit"))
    tifs = CRYPTO_TIFS if is_crypto(symbol) else STOCK_TIFS
    tif = _choice(body, "time_in_force", tifs)
    if body.get("order_class") not in (None, "", "simple"):
        raise _invalid(f"order_class {body['order_class']!r} is not supported")
    qty = _positive(body, "qty")
    notional = _positive(body, "notional")
    if (qty is None) == (notional is None):
        raise _invalid("qty or notional is required" if qty is None
                       else "only one of qty or notional can be specified")
    if notional is not None and order_type != "market":
        raise _invalid("notional orders must be market orders")
    if qty is not None and qty != qty.quantize(QTY_STEP, ROUND_DOWN):
        raise _invalid("qty must have at most 9 decimal places")
    limit_price = _positive(body, "limit_price")
    if order_type == "limit" and limit_price is None:
        raise _invalid("limit_price is required for limit orders")
    if order_type == "market" and limit_price is not None:
        raise _invalid("limit_price must not be set for market orders")
    client_id = body.get("client_order_id")
    if client_id is None or client_id == "":
        client_id = str(uuid.uuid4())
    if not isinstance(client_id, str) or len(client_id) > MAX_CLIENT_ID:
        raise _invalid(f"client_order_id must be a string of at most {MAX_CLIENT_ID} characters")
    return OrderRecord(
        id=str(uuid.uuid4()), client_order_id=client_id, symbol=symbol, side=side,
        type=order_type, time_in_force=tif, qty=qty, notional=notional,
        limit_price=limit_price, extended_hours=bool(body.get("extended_hours") or False),
        submitted_at=now, seq=seq, position_intent=body.get("position_intent"),
    )


def _invalid(message: str) -> ApiError:
    return ApiError(422, 40010001, message)


def _choice(body: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = body.get(key)
    if not isinstance(value, str) or value.lower() not in allowed:
        raise _invalid(f"{key} must be one of {', '.join(allowed)}; got {value!r}")
    return value.lower()


def _positive(body: dict[str, Any], key: str) -> Decimal | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    number = dec(value, key)
    if number <= 0:
        raise _invalid(f"{key} must be > 0")
    return number
