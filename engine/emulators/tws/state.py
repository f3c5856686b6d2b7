"""The emulated broker: orders, executions and the account, moved by requests and the test.

Everything here runs on the emulator's event-loop thread (:class:`TwsEmulator` marshals the
test's calls onto it), so no lock is needed.  What clients must hear about is handed to a
:class:`Notifier` (the server), which turns it into messages for the connections concerned.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Protocol

from .contracts import ContractSpec
from .errors import EmulatorError, RequestRefused, error_text
from .ledger import Ledger
from .orders import ExecutionRecord, OrderRecord, default_commission
from .requests import OrderTicket

ORDER_TYPES = ("MKT", "LMT", "MOC", "LOC")
TIFS = ("DAY", "GTC", "OPG", "IOC", "GTD", "FOK")
AutoFill = Callable[[OrderRecord], "Decimal | None"]
Commission = Callable[[ContractSpec, Decimal, Decimal], Decimal]


class Notifier(Protocol):
    """Where the broker's news goes (the server sends it to the connections concerned)."""

    def order_update(self, order: OrderRecord, *, open_order: bool) -> None:
        """An order changed: send openOrder (when asked) and orderStatus to its owner."""

    def execution(self, execution: ExecutionRecord) -> None:
        """An execution: execDetails, orderStatus, commissionReport to the order's owner."""

    def order_error(self, order: OrderRecord, code: int, text: str) -> None:
        """An error about an order, to its owner (reqId is the order id)."""

    def portfolio_changed(self, contracts: list[ContractSpec]) -> None:
        """Positions of ``contracts`` (and account values) changed: tell the subscribers."""


class BrokerState:
    """Orders, executions and the account of the emulated broker."""

    def __init__(self, ledger: Ledger, notifier: Notifier, now: Callable[[], dt.datetime],
                 *, first_order_id: int = 1, commission: Commission = default_commission
                 ) -> None:
        self.ledger = ledger
        self.notifier = notifier
        self.now = now
        self.commission = commission
        self.orders: dict[tuple[int, int], OrderRecord] = {}
        self.executions: list[ExecutionRecord] = []
        self.submit_counts: Counter[str] = Counter()
        self.auto_fill: AutoFill | None = None
        self.partials: dict[int, tuple[float, str]] = {}
        self._first_order_id = first_order_id
        self._next_perm = 1_200_000_001
        self._seq = 0

    # -- orders --------------------------------------------------------------------------

    def next_order_id(self, client_id: int) -> int:
        """The next order id for ``client_id``: above every id it used."""
        used = [oid for (cid, oid) in self.orders if cid == client_id]
        return max([self._first_order_id - 1, *used]) + 1

    def place(self, client_id: int, ticket: OrderTicket, spec: ContractSpec) -> OrderRecord:
        """Accept a new order or modify an active one, and tell its owner.

        Raises:
            RequestRefused: the order is invalid, or reuses the id of a finished order.
        """
        oid = ticket.order_id
        _validate(ticket, self.ledger.account)
        self.submit_counts[ticket.order_ref] += 1
        existing = self.orders.get((client_id, oid))
        if existing is not None:
            if not existing.active:
                raise RequestRefused(103, error_text(103), oid)
            if existing.contract.con_id != spec.con_id:
                raise RequestRefused(321, "Error validating request: an order's contract "
                                     "cannot be modified", oid)
            if existing.filled >= ticket.total_qty:
                raise RequestRefused(321, "Error validating request: the new quantity is "
                                     "not above the filled quantity", oid)
            existing.total_qty = ticket.total_qty
            existing.order_type, existing.tif = ticket.order_type, ticket.tif or existing.tif
            existing.lmt_price, existing.aux_price = ticket.lmt_price, ticket.aux_price
            existing.order_ref = ticket.order_ref
            existing.modifications += 1
            self.notifier.order_update(existing, open_order=True)
            return existing
        self._seq += 1
        self._next_perm += 1
        order = OrderRecord(
            seq=self._seq, client_id=client_id, order_id=oid, perm_id=self._next_perm,
            contract=spec, action=ticket.action, total_qty=ticket.total_qty,
            order_type=ticket.order_type, lmt_price=ticket.lmt_price,
            aux_price=ticket.aux_price, tif=ticket.tif or "DAY",
            account=ticket.account or self.ledger.account, order_ref=ticket.order_ref,
            outside_rth=ticket.outside_rth, oca_group=ticket.oca_group,
            parent_id=ticket.parent_id, good_after_time=ticket.good_after_time,
            good_till_date=ticket.good_till_date, submitted_at=self.now(),
            status="PreSubmitted" if ticket.tif == "OPG" or ticket.order_type in ("MOC", "LOC")
            else "Submitted")
        self.orders[(client_id, oid)] = order
        self.notifier.order_update(order, open_order=True)
        return order

    def find(self, ref: int | str, client_id: int | None = None) -> OrderRecord:
        """An order by order id (an int) or orderRef (a string; the newest one carrying it).

        Raises:
            EmulatorError: no such order, or an order id several clients used.
        """
        if isinstance(ref, int) and not isinstance(ref, bool):
            found = [o for (cid, oid), o in self.orders.items()
                     if oid == ref and (client_id is None or cid == client_id)]
            if len(found) > 1:
                raise EmulatorError(f"order id {ref} is used by several clients; "
                                    "pass client_id=")
        else:
            found = sorted((o for o in self.orders.values() if o.order_ref == ref
                            and (client_id is None or o.client_id == client_id)),
                           key=lambda o: (o.active, o.seq))[-1:]
        if not found:
            raise EmulatorError(f"no order {ref!r}")
        return found[0]

    def cancel_request(self, client_id: int, order_id: int) -> None:
        """A client's cancelOrder.

        Raises:
            RequestRefused: unknown order (135) or not cancellable any more (10148).
        """
        order = self.orders.get((client_id, order_id))
        if order is None:
            raise RequestRefused(135, f"{error_text(135)} {order_id}", order_id)
        if not order.active:
            raise RequestRefused(10148, f"OrderId {order_id} that needs to be cancelled "
                                 f"cannot be cancelled, state: {order.status}.", order_id)
        self.cancel(order, "", by_client=True)

    def cancel(self, order: OrderRecord, reason: str = "", *, by_client: bool = False) -> None:
        """Cancel an active order's rest: status Cancelled, then error 202.

        Raises:
            EmulatorError: the order is not active.
        """
        if not order.active:
            raise EmulatorError(f"order {order.order_id} is {order.status}, not active")
        self._finish(order, "Cancelled",
                     "Cancelled by Trader" if by_client else f"Cancelled - {reason}".rstrip(" -"))
        self.notifier.order_update(order, open_order=False)
        self.notifier.order_error(order, 202, error_text(202, reason))

    def reject(self, order: OrderRecord, reason: str, status: str = "Cancelled") -> None:
        """Reject an unfilled active order: error 201, then ``status`` (Cancelled/Inactive).

        Raises:
            EmulatorError: the order is not active, or partly filled.
        """
        if not order.active or order.filled:
            raise EmulatorError(f"order {order.order_id} cannot be rejected: it is "
                                f"{order.status} with {order.filled} filled")
        if status not in ("Cancelled", "Inactive"):
            raise EmulatorError("a rejected order ends Cancelled or Inactive")
        self.notifier.order_error(order, 201, error_text(201, reason))
        self._finish(order, status, f"Rejected - reason:{reason}")
        self.notifier.order_update(order, open_order=False)

    def cancel_all(self) -> None:
        """reqGlobalCancel: cancel every active order."""
        for order in sorted(self.orders.values(), key=lambda o: o.seq):
            if order.active:
                self.cancel(order, "", by_client=True)

    def _finish(self, order: OrderRecord, status: str, text: str) -> None:
        order.status = status
        order.completed_at = self.now()
        order.completed_status = text

    # -- executions ----------------------------------------------------------------------

    def fill(self, order: OrderRecord, qty: Decimal | None, price: Decimal,
             commission: Decimal | None = None) -> ExecutionRecord:
        """Execute ``qty`` (default: the rest) of an active order at ``price``.

        Raises:
            EmulatorError: the order is not active, or ``qty`` is not in (0, remaining].
        """
        if not order.active:
            raise EmulatorError(f"order {order.order_id} is {order.status}, not active")
        qty = order.remaining if qty is None else qty
        if not 0 < qty <= order.remaining:
            raise EmulatorError(f"fill qty {qty} not in (0, {order.remaining}] "
                                f"for order {order.order_id}")
        if price <= 0:
            raise EmulatorError(f"fill price must be positive, got {price}")
        fee = self.commission(order.contract, qty, price) if commission is None else commission
        realized = self.ledger.apply_fill(order.contract, order.is_buy, qty, price, fee)
        order.avg_fill_price = (order.avg_fill_price * order.filled + qty * price) / \
            (order.filled + qty)
        order.filled += qty
        order.last_fill_price = price
        if order.filled == order.total_qty:
            self._finish(order, "Filled", f"Filled Size: {_plain(order.filled)} "
                                          f"Price: {_plain(order.avg_fill_price)}")
        elif order.status == "PreSubmitted":
            order.status = "Submitted"
        execution = ExecutionRecord(
            exec_id=f"{order.perm_id:08x}.{len(self.executions) + 1:08x}.01.01", order=order,
            shares=qty, price=price, time=self.now(), cum_qty=order.filled,
            avg_price=order.avg_fill_price, commission=fee,
            commission_currency=order.contract.currency, realized_pnl=realized,
            exchange=_venue(order.contract))
        self.executions.append(execution)
        self.notifier.execution(execution)
        self.notifier.portfolio_changed([order.contract])
        return execution

    def run_auto_fills(self, only: OrderRecord | None = None) -> None:
        """Offer active orders (or just ``only``) to the auto-fill rule."""
        if self.auto_fill is None:
            return
        for order in [only] if only is not None else sorted(self.orders.values(),
                                                            key=lambda o: o.seq):
            if not order.active:
                continue
            price = self.auto_fill(order)
            if price is None:
                continue
            partial = self.partials.pop(order.perm_id, None)
            if partial is None:
                self.fill(order, None, price)
                continue
            fraction, rest = partial
            first = (order.remaining * Decimal(str(fraction))).quantize(Decimal(1)) \
                or Decimal(1)
            if first < order.remaining:
                self.fill(order, first, price)
            if rest == "fill" and order.active:
                self.fill(order, None, price)
            elif rest == "cancel" and order.active:
                self.cancel(order, "the rest of the order could not be filled")


def _validate(ticket: OrderTicket, account: str) -> None:
    oid = ticket.order_id
    if ticket.account and ticket.account != account:
        raise RequestRefused(321, f"Error validating request: account {ticket.account} is "
                             "not managed by this login", oid)
    if ticket.combo or ticket.conditions:
        raise RequestRefused(387, error_text(387) + " (combos and conditions are not "
                             "emulated)", oid)
    if ticket.action not in ("BUY", "SELL"):
        raise RequestRefused(321, f"Error validating request: invalid action "
                             f"{ticket.action!r}", oid)
    if ticket.total_qty <= 0:
        raise RequestRefused(434, "The order size cannot be zero.", oid)
    if ticket.order_type not in ORDER_TYPES:
        raise RequestRefused(387, f"{error_text(387)} ({ticket.order_type})", oid)
    if ticket.order_type in ("LMT", "LOC") and (ticket.lmt_price is None
                                                or ticket.lmt_price <= 0):
        raise RequestRefused(321, "Error validating request: a limit order needs a "
                             "positive limit price", oid)
    if ticket.tif and ticket.tif not in TIFS:
        raise RequestRefused(321, f"Error validating request: invalid time in force "
                             f"{ticket.tif!r}", oid)


def _venue(spec: ContractSpec) -> str:
    if spec.sec_type == "CASH":
        return "IDEALPRO"
    return {"NASDAQ": "ISLAND"}.get(spec.primary_exchange, spec.primary_exchange or "ARCA")


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text
