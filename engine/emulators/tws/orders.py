"""Orders and executions as the emulated broker keeps them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .contracts import ContractSpec

#: Statuses in which an order can still fill or be cancelled.
ACTIVE = ("PendingSubmit", "PreSubmitted", "Submitted")
#: Statuses of a finished order (reported by reqCompletedOrders).
DONE = ("Filled", "Cancelled", "ApiCancelled", "Inactive")


@dataclass
class OrderRecord:
    """One order the broker accepted."""

    seq: int
    client_id: int
    order_id: int
    perm_id: int
    contract: ContractSpec
    action: str
    total_qty: Decimal
    order_type: str
    lmt_price: Decimal | None
    aux_price: Decimal | None
    tif: str
    account: str
    order_ref: str
    outside_rth: bool
    oca_group: str
    parent_id: int
    good_after_time: str
    good_till_date: str
    submitted_at: dt.datetime
    status: str = "Submitted"
    filled: Decimal = Decimal(0)
    avg_fill_price: Decimal = Decimal(0)
    last_fill_price: Decimal = Decimal(0)
    completed_at: dt.datetime | None = None
    completed_status: str = ""
    why_held: str = ""
    modifications: int = 0

    @property
    def remaining(self) -> Decimal:
        """The quantity still to fill (0 once the order is done)."""
        return Decimal(0) if self.done else self.total_qty - self.filled

    @property
    def active(self) -> bool:
        """True while the order can fill or be cancelled."""
        return self.status in ACTIVE

    @property
    def done(self) -> bool:
        """True once the order is filled, cancelled or rejected."""
        return self.status in DONE

    @property
    def is_buy(self) -> bool:
        """True for a BUY order."""
        return self.action == "BUY"

    def to_dict(self) -> dict[str, Any]:
        """The order for a test to inspect (numbers as floats)."""
        return {
            "client_id": self.client_id, "order_id": self.order_id, "perm_id": self.perm_id,
            "order_ref": self.order_ref, "symbol": self.contract.key,
            "con_id": self.contract.con_id, "sec_type": self.contract.sec_type,
            "action": self.action, "total_qty": float(self.total_qty),
            "order_type": self.order_type,
            "lmt_price": None if self.lmt_price is None else float(self.lmt_price),
            "aux_price": None if self.aux_price is None else float(self.aux_price),
            "tif": self.tif, "account": self.account, "outside_rth": self.outside_rth,
            "status": self.status, "filled": float(self.filled),
            "remaining": float(self.remaining), "avg_fill_price": float(self.avg_fill_price),
            "submitted_at": self.submitted_at, "completed_at": self.completed_at,
            "completed_status": self.completed_status, "modifications": self.modifications,
        }


@dataclass
class ExecutionRecord:
    """One execution (a fill, partial or whole) of an order."""

    exec_id: str
    order: OrderRecord
    shares: Decimal
    price: Decimal
    time: dt.datetime
    cum_qty: Decimal
    avg_price: Decimal
    commission: Decimal
    commission_currency: str
    realized_pnl: Decimal | None
    exchange: str
    liquidity: int = 2  # removed liquidity
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def side(self) -> str:
        """``"BOT"`` or ``"SLD"``, as IB writes an execution's side."""
        return "BOT" if self.order.is_buy else "SLD"

    def to_dict(self) -> dict[str, Any]:
        """The execution for a test to inspect (numbers as floats)."""
        return {
            "exec_id": self.exec_id, "order_id": self.order.order_id,
            "client_id": self.order.client_id, "perm_id": self.order.perm_id,
            "order_ref": self.order.order_ref, "symbol": self.order.contract.key,
            "side": self.side, "shares": float(self.shares), "price": float(self.price),
            "cum_qty": float(self.cum_qty), "avg_price": float(self.avg_price),
            "commission": float(self.commission),
            "realized_pnl": None if self.realized_pnl is None else float(self.realized_pnl),
            "time": self.time,
        }


def default_commission(contract: ContractSpec, shares: Decimal, price: Decimal) -> Decimal:
    """IB's fixed pricing: stocks USD 0.005 a share, at least 1.00, at most 1 % of value;
    forex 0.2 basis points of the value, at least 2.00 (in the quote currency)."""
    value = abs(shares * price)
    if contract.sec_type == "CASH":
        return max(Decimal("2.00"), (value * Decimal("0.00002")).quantize(Decimal("0.01")))
    fee = max(Decimal("1.00"), abs(shares) * Decimal("0.005"))
    return min(fee, (value * Decimal("0.01")).quantize(Decimal("0.01"))).quantize(
        Decimal("0.0001"))
