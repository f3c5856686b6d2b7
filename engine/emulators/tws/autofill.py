"""Auto-fill rules: the price at which the emulated exchange fills an order by itself.

A rule takes an active order and returns a fill price, or None to leave the order open for
now.  :func:`make_rule` turns the emulator's ``auto_fill`` setting into a rule:

* ``"last"``: market orders fill at the instrument's last price as soon as one is known
  (:meth:`TwsEmulator.set_price`, a loaded bar's close, a previous fill); limit orders when
  the last price reaches the limit, at the last price.
* ``"next_open"``: at the open of the first bar (of the emulator's ``auto_fill_bar_size``)
  that opens at or after the order was placed, once that bar is loaded; a daily bar opens at
  09:30 in the emulator's time zone.  A limit order fills at the first such bar that reaches
  its limit, at the better of the open and the limit.
* a callable: called with the order as a dict (:meth:`OrderRecord.to_dict`); it returns a
  price or None.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from .bars import BarStore, is_daily
from .errors import EmulatorError
from .ledger import Ledger
from .orders import OrderRecord
from .state import AutoFill

AutoFillPrice = Callable[[dict[str, Any]], "float | None"]
OPEN_TIME = dt.time(9, 30)


def make_rule(rule: str | AutoFillPrice | None, ledger: Ledger, bars: BarStore,
              bar_size: str, zone: ZoneInfo) -> AutoFill | None:
    """The auto-fill rule for an ``auto_fill`` setting (see the module documentation).

    Raises:
        EmulatorError: not a known setting.
    """
    if rule is None:
        return None
    if rule == "last":
        def last(order: OrderRecord) -> Decimal | None:
            price = ledger.marks.get(order.contract.con_id)
            return None if price is None else limit_price(order, price, price, price)

        return last
    if rule == "next_open":
        def next_open(order: OrderRecord) -> Decimal | None:
            for bar in bars.first_at_or_after(order.contract.key, bar_size,
                                              order.submitted_at):
                opens = dt.datetime.combine(bar.key, OPEN_TIME, zone) \
                    if is_daily(bar_size) else bar.start
                if opens < order.submitted_at:
                    continue
                price = limit_price(order, Decimal(repr(bar.open)), Decimal(repr(bar.low)),
                                    Decimal(repr(bar.high)))
                if price is not None:
                    return price
            return None

        return next_open
    if callable(rule):
        def custom(order: OrderRecord) -> Decimal | None:
            return to_price(rule(order.to_dict()))

        return custom
    raise EmulatorError(f"auto_fill is None, 'last', 'next_open' or a callable, got {rule!r}")


def limit_price(order: OrderRecord, open_: Decimal, low: Decimal,
                high: Decimal) -> Decimal | None:
    """The fill price of ``order`` in a bar (open, low, high), or None if it does not fill."""
    if order.lmt_price is None or order.order_type in ("MKT", "MOC"):
        return open_
    if order.is_buy:
        return min(open_, order.lmt_price) if low <= order.lmt_price else None
    return max(open_, order.lmt_price) if high >= order.lmt_price else None


def to_price(value: Any) -> Decimal | None:
    """A rule's answer as a positive Decimal price (None stays None).

    Raises:
        EmulatorError: not a positive finite number.
    """
    if value is None:
        return None
    try:
        price = Decimal(str(value))
    except ArithmeticError:
        raise EmulatorError(f"auto_fill returned {value!r}, not a price") from None
    if not price.is_finite() or price <= 0:
        raise EmulatorError(f"auto_fill returned {value!r}, not a price")
    return price
