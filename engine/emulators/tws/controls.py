"""What the test does as the exchange and as the network: fills, rejections, cancels,
account changes, dropped connections and IB's connectivity notices.

Each call runs on the emulator's loop thread and the connected clients get the messages
TWS would send.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import error_text
from .orders import ExecutionRecord, OrderRecord

if TYPE_CHECKING:
    from .contracts import ContractBook
    from .ledger import Ledger
    from .server import Hub
    from .state import BrokerState

T = TypeVar("T")


class ExchangeControls:
    """The exchange and network side of :class:`~.emulator.TwsEmulator`."""

    _state: BrokerState
    _ledger: Ledger
    _contracts: ContractBook
    _hub: Hub
    _apply: Callable[..., Any]

    # -- the exchange --------------------------------------------------------------------

    def fill(self, order: int | str, qty: float | None = None, *, price: float,
             commission: float | None = None, client_id: int | None = None) -> dict[str, Any]:
        """Fill an active order (by order id or orderRef): all of it, or ``qty`` of it.

        The owner gets execDetails, orderStatus (Filled or Submitted with the filled
        quantity) and commissionReport; positions and account values move.

        Returns:
            The execution (:attr:`executions` shape).
        """
        def run() -> ExecutionRecord:
            record = self._state.find(order, client_id)
            return self._state.fill(record, None if qty is None else Decimal(str(qty)),
                                    Decimal(str(price)),
                                    None if commission is None else Decimal(str(commission)))

        return self._apply(run).to_dict()

    def reject(self, order: int | str, reason: str = "rejected by the exchange", *,
               status: str = "Cancelled", client_id: int | None = None) -> dict[str, Any]:
        """Reject an unfilled order: error 201 with ``reason``, then ``status``."""
        def run() -> OrderRecord:
            record = self._state.find(order, client_id)
            self._state.reject(record, reason, status)
            return record

        return self._apply(run).to_dict()

    def cancel(self, order: int | str, reason: str = "", *,
               client_id: int | None = None) -> dict[str, Any]:
        """Cancel an order's unfilled rest as the broker would: Cancelled, then error 202."""
        def run() -> OrderRecord:
            record = self._state.find(order, client_id)
            self._state.cancel(record, reason)
            return record

        return self._apply(run).to_dict()

    def set_position(self, symbol: str, qty: float, avg_cost: float) -> None:
        """Give the account a position without a trade (cash untouched); 0 flattens it."""
        def run() -> None:
            spec = self._contracts.ensure(symbol)
            self._ledger.set_position(spec, Decimal(str(qty)), Decimal(str(avg_cost)))
            self._hub.portfolio_changed([spec])

        self._apply(run)

    def set_cash(self, amount: float, currency: str | None = None) -> None:
        """Set a cash balance (the base currency by default)."""
        def run() -> None:
            self._ledger.cash[currency or self._ledger.base] = Decimal(str(amount))
            self._hub.portfolio_changed([])

        self._apply(run)

    # -- connection faults ---------------------------------------------------------------

    def disconnect(self, client_id: int | None = None) -> int:
        """Drop the connections (of one client id, or all) now; returns how many."""
        def run() -> int:
            sessions = [s for s in list(self._hub.sessions)
                        if client_id is None or s.client_id == client_id]
            for session in sessions:
                session.close()
            return len(sessions)

        return self._apply(run)

    def send_error(self, code: int, text: str | None = None, *, req_id: int = -1,
                   client_id: int | None = None) -> int:
        """Send an IB error to the connected clients (or one); returns how many got it."""
        return self._apply(self._hub.broadcast_error, code, text or error_text(code), req_id,
                          client_id)

    def connectivity_lost(self) -> int:
        """Error 1100: TWS lost its connection to IB."""
        return self.send_error(1100)

    def connectivity_restored(self, data_lost: bool = False) -> int:
        """Error 1102 (data maintained) or 1101 (data lost, clients must resubscribe)."""
        return self.send_error(1101 if data_lost else 1102)
