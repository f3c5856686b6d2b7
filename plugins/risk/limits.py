"""The pre-trade limits of ``[risk]``, as one ``check_order`` hook implementation.

Each limit reads the run's ``[risk]`` table from ``context.risk`` (None, or the limit unset:
no check) and the book through the public ``BarContext`` API only (``positions``,
``open_orders``, ``value``, ``history("close", 1)``, ``now``), so the same checks run in every
engine and live.  Positions and orders are valued at the close of the bar that decided the
order.  The limits are tried in the order of :data:`CHECKS`; the first that refuses gives the
reason:

* ``trading_hours``: an order decided outside the regular session of ``calendar`` (intraday
  bars only; a daily bar's decision is for the next session's open by design);
* ``max_orders_per_bar``: the orders already accepted at this bar;
* ``max_order_notional``: ``|quantity| x close`` of this order;
* ``max_position_weight``: ``|held + open + quantity| x close / value`` of the order's symbol;
* ``max_gross_exposure``: the sum of ``|held + open (+ quantity)| x close`` over the value.

An order that lowers the symbol's weight (or the gross exposure) always passes the weight (or
exposure) limit, even when the book is still above it after a price move: refusing it would keep
the risk it removes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rlbridge.hookspecs import hookimpl

if TYPE_CHECKING:
    from rlbridge.config import RiskConfig
    from rlbridge.interfaces import Order

#: ``check(order, context, risk) -> reason or None``
Check = Callable[["Order", Any, "RiskConfig"], "str | None"]


def _num(value: float) -> str:
    return f"{value:,.10g}"


def trading_hours(order: Order, context: Any, risk: RiskConfig) -> str | None:
    """``trading_hours``: the order's bar is inside the regular session (intraday bars)."""
    if not risk.trading_hours:
        return None
    from rlbridge.risk import outside_session

    calendar = risk.session_calendar
    why = outside_session(context.now, calendar)
    return None if why is None else f"trading_hours {calendar}: {why}"


def max_orders_per_bar(order: Order, context: Any, risk: RiskConfig) -> str | None:
    """``max_orders_per_bar``: fewer orders than the limit were accepted at this bar."""
    limit = risk.max_orders_per_bar
    if limit is None:
        return None
    now = context.now
    sent = sum(1 for o in context.open_orders if o.created is None or o.created == now)
    if sent < limit:
        return None
    return f"max_orders_per_bar {limit}: {sent} orders already sent at this bar"


def max_order_notional(order: Order, context: Any, risk: RiskConfig) -> str | None:
    """``max_order_notional``: ``|quantity| x close`` is within the limit."""
    limit = risk.max_order_notional
    if limit is None:
        return None
    symbols = tuple(context.symbols)
    price = float(context.history("close", 1)[-1][symbols.index(order.symbol)])
    notional = abs(order.quantity) * price
    if notional <= limit:
        return None
    return (f"max_order_notional {_num(limit)}: {order.symbol} {order.quantity:+g} shares x "
            f"{price:,.2f} = {notional:,.2f}")


def max_position_weight(order: Order, context: Any, risk: RiskConfig) -> str | None:
    """``max_position_weight``: the symbol's weight after the order (open orders included)."""
    limit = risk.max_position_weight
    if limit is None:
        return None
    from rlbridge.risk import Exposure

    book = Exposure.of(context)
    i = book.index(order.symbol)
    before = abs(book.shares[i]) * book.close[i]
    after = abs(book.shares[i] + order.quantity) * book.close[i]
    if after <= before:
        return None
    if book.value <= 0:
        return (f"max_position_weight {_num(limit)}: the portfolio value is "
                f"{book.value:,.2f}; no position can be added")
    weight = after / book.value
    if weight <= limit:
        return None
    return (f"max_position_weight {_num(limit)}: {order.symbol} would be {weight:.3f} of value "
            f"({after:,.2f} of {book.value:,.2f})")


def max_gross_exposure(order: Order, context: Any, risk: RiskConfig) -> str | None:
    """``max_gross_exposure``: the sum of absolute position values after the order."""
    limit = risk.max_gross_exposure
    if limit is None:
        return None
    import numpy as np

    from rlbridge.risk import Exposure

    book = Exposure.of(context)
    before = float(np.abs(book.shares) @ book.close)
    shares = book.shares.copy()
    shares[book.index(order.symbol)] += order.quantity
    after = float(np.abs(shares) @ book.close)
    if after <= before:
        return None
    if book.value <= 0:
        return (f"max_gross_exposure {_num(limit)}: the portfolio value is "
                f"{book.value:,.2f}; no exposure can be added")
    gross = after / book.value
    if gross <= limit:
        return None
    return (f"max_gross_exposure {_num(limit)}: gross exposure would be {gross:.3f} of value "
            f"({after:,.2f} of {book.value:,.2f})")


#: the limits, in the order they are tried
CHECKS: tuple[Check, ...] = (trading_hours, max_orders_per_bar, max_order_notional,
                             max_position_weight, max_gross_exposure)

_KEYS = ("trading_hours", "max_orders_per_bar", "max_order_notional", "max_position_weight",
         "max_gross_exposure")


@hookimpl
def check_order(order: Order, context: Any) -> str | None:
    """Refuse ``order`` when it breaks a limit of ``context.risk``; the first reason wins."""
    risk = getattr(context, "risk", None)
    if risk is None or not any(getattr(risk, key, None) for key in _KEYS):
        return None
    for check in CHECKS:
        reason = check(order, context, risk)
        if reason:
            return reason
    return None
