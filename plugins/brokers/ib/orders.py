"""rlbridge orders as IB orders, and IB's trades and executions as rlbridge's ``BrokerOrder``.

Order kinds: ``market`` is a day ``MKT`` order; ``market_on_open`` a ``MKT`` order with time in
force ``OPG`` (the opening auction; forex has none and gets a day market order); ``limit`` a
day ``LMT`` order.  Every order carries rlbridge's client order id as its ``orderRef``: IB keeps
it on the order, its status and its executions, and it is how an order is found again after a
dropped connection or a restart.  Quantities are whole shares (whole units of a forex pair's
base currency): the TWS API does not take fractional orders.

The state of an order (:func:`broker_order`) comes from its executions: the filled quantity,
the average price and the commission are summed over the executions whose commission report
has arrived, so a fill is reported once, complete, with its commission.  An order IB reports
as done but whose executions are not all available (TWS serves the executions of the current
day only) stays open in rlbridge's eyes, with the reason: nothing is recorded as filled
without its price.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from rlbridge.errors import BrokerError
from rlbridge.interfaces import BrokerOrder, Order

from .connection import CANCELLED

#: IB's states of an order that can still fill
ACTIVE = frozenset({"PendingSubmit", "ApiPending", "PreSubmitted", "Submitted",
                    "PendingCancel"})
_SANE = 1e100  # IB writes "unset" doubles as 1.79e308
#: IB's error codes that are warnings about an order, not the end of it (ib_insync's list)
WARNINGS = frozenset({110, 165, 202, 399, 404, 434, 492, 10167})


def ib_order(order: Order, account: str | None = None) -> Any:
    """The ib_insync order for ``order`` (see the module for the kinds).

    Raises:
        BrokerError: no client order id, nothing to trade, a fractional quantity, a limit
            order without a price or a kind IB is not sent.
    """
    from ib_insync import Order as IBOrder

    from .contracts import forex_pair

    cid = order.client_order_id
    if not cid:
        raise BrokerError(f"an order of {order.symbol} has no client order id: rlbridge never "
                          "sends one without (it is what prevents a second send)")
    quantity = abs(float(order.quantity))
    if quantity == 0:
        raise BrokerError(f"{cid}: nothing to trade (quantity {order.quantity})")
    if not math.isclose(quantity, round(quantity), abs_tol=1e-9):
        raise BrokerError(f"{cid}: IB takes whole shares through its API, got {order.quantity} "
                          f"{order.symbol} (set fractional = false in the strategy's engine)")
    fields: dict[str, Any] = {"action": "BUY" if order.quantity > 0 else "SELL",
                              "totalQuantity": float(round(quantity)), "orderRef": cid,
                              "tif": "DAY", "transmit": True}
    if account:
        fields["account"] = account
    if order.kind == "market":
        fields["orderType"] = "MKT"
    elif order.kind == "market_on_open":
        fields["orderType"] = "MKT"
        if forex_pair(order.symbol) is None:  # forex trades around the clock: no auction
            fields["tif"] = "OPG"
    elif order.kind == "limit":
        if order.limit_price is None or not order.limit_price > 0:
            raise BrokerError(f"{cid}: a limit order needs a limit price above 0")
        fields.update(orderType="LMT", lmtPrice=round(float(order.limit_price), 6))
    else:
        raise BrokerError(f"{cid}: the ib broker sends market, market_on_open and limit "
                          f"orders, not {order.kind!r}")
    return IBOrder(**fields)


def latest(trades: Iterable[Any]) -> Any:
    """Of the trades carrying one orderRef, the one that matters: an active one, else the
    newest (IB has no unique order reference; rlbridge never sends one twice)."""
    unique = {id(t): t for t in trades}.values()
    return max(unique, key=lambda t: (t.orderStatus.status in ACTIVE, t.order.permId,
                                      t.order.orderId), default=None)


def broker_order(trade: Any, fills: Iterable[Any], symbol: str,
                 reason: tuple[int, str] | None = None,
                 completed_status: str = "") -> BrokerOrder:
    """rlbridge's view of an IB order.

    Args:
        trade: the ib_insync ``Trade`` (None when only executions are known).
        fills: the ib_insync ``Fill`` objects of the order.
        symbol: the run's symbol of the order.
        reason: ``(code, text)`` of the last IB error about the order.
        completed_status: TWS's text for a completed order (``"Rejected - reason:..."``).
    """
    counted = [f for f in fills if f.commissionReport.execId == f.execution.execId]
    shares = sum(float(f.execution.shares) for f in counted)
    value = sum(float(f.execution.shares) * float(f.execution.price) for f in counted)
    commission = sum(float(f.commissionReport.commission) for f in counted)
    when = max((f.execution.time for f in counted), default=None)
    if trade is not None:
        buy = trade.order.action == "BUY"
        total = float(trade.order.totalQuantity)
        status = trade.orderStatus.status
        cid, perm = trade.order.orderRef, trade.order.permId
        reported = _reported_fill(trade)
    else:  # executions only (the order itself is not listed any more)
        first = next(iter(counted), None)
        if first is None:
            raise BrokerError("an IB order without a trade needs at least one execution")
        buy = first.execution.side == "BOT"
        total = reported = shares
        status, cid, perm = "Filled", first.execution.orderRef, first.execution.permId
    sign = 1.0 if buy else -1.0
    state, why = _state(status, shares, reported, reason, completed_status)
    return BrokerOrder(client_order_id=str(cid), broker_order_id=str(perm or ""),
                       symbol=symbol, quantity=sign * total, filled_quantity=sign * shares,
                       average_price=value / shares if shares else None, status=state,
                       commission=commission, reason=why, filled_at=when)


def _reported_fill(trade: Any) -> float:
    """What IB says is filled: the live status, else the completed order's quantity."""
    filled = float(trade.orderStatus.filled or 0.0)
    if not filled:
        quantity = float(trade.order.filledQuantity or 0.0)
        filled = quantity if 0 < quantity < _SANE else 0.0
    if not filled and trade.orderStatus.status == "Filled":
        filled = float(trade.order.totalQuantity)
    return filled


def _state(status: str, shares: float, reported: float, reason: tuple[int, str] | None,
           completed_status: str) -> tuple[str, str | None]:
    """rlbridge's state and reason for IB's ``status`` with ``shares`` of executions known.

    An order IB ended because of an error (201 "Order rejected", or any error that is not a
    warning, such as 200 "No security definition") is ``rejected`` when nothing filled;
    ``Inactive`` is ``rejected`` too; a cancel (202, by IB or by rlbridge) is ``canceled``.
    """
    said = f"{reason[1]} (IB error {reason[0]})" if reason is not None else None
    refused = reason is not None and reason[0] not in WARNINGS and not 2100 <= reason[0] < 2200
    if reported - shares > 1e-9 and status not in ACTIVE:
        return ("partially_filled" if shares else "new"), (
            f"IB reports {reported:g} filled but the executions of only {shares:g} are "
            "available (TWS serves the current day's executions); the order stays open here "
            "until they are")
    if status in ACTIVE:
        return ("partially_filled" if shares else "new"), None
    if status == "Filled":
        return "filled", None
    if not shares and (refused or completed_status.startswith("Rejected")):
        return "rejected", said if refused else completed_status
    if status == "Inactive":
        return "rejected", said or completed_status or "inactive at IB"
    if reason is not None and reason[0] == CANCELLED:
        return "canceled", said
    return "canceled", completed_status or None
