"""The ``sim`` broker: rlbridge's market simulator behind the broker interface, for dry runs.

It fills the orders decided on bar t at the open of bar t+1 (or its close) of the recorded bars,
through the run's cost model and with the simulator's own arithmetic, once that bar exists: the
live runner on ``sim`` replaying a period gives the fills of a ``native`` backtest.  Its account
is the journal's: on connect it takes back the positions, cash and unfilled orders of the
deployment's journal, so successive ``rlbridge live --once`` runs continue one account.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from rlbridge.errors import BrokerError, ConfigError, DuplicateOrderError
from rlbridge.hookspecs import hookimpl
from rlbridge.interfaces import Account, BrokerOrder

if TYPE_CHECKING:
    from rlbridge.interfaces import Order


class SimBroker:
    """Fills at the next recorded bar; the account lives in the store's journal."""

    paper = True
    #: the recorded bars are its clock: the live runner replays them instead of waiting
    replays = True

    @dataclass(frozen=True)
    class Config:
        """Options of the ``sim`` broker (``[broker]`` keys).

        Attributes:
            cash: the simulated account's starting cash.
            fill_at: fill at the ``open`` (default) or the ``close`` of the bar after the
                decision.
        """

        cash: float = 100_000.0
        fill_at: Literal["open", "close"] = "open"

        def __post_init__(self) -> None:
            if not self.cash > 0:
                raise ConfigError(f"must be more than 0, got {self.cash!r}", key="cash")

    def __init__(self, config: SimBroker.Config | None = None) -> None:
        self.config = config if config is not None else SimBroker.Config()
        self.session: Any = None
        self.orders: dict[str, BrokerOrder] = {}
        self._bar: dict[str, int] = {}  # client id -> decision bar

    # ------------------------------------------------------------------ lifecycle
    def connect(self, session: Any) -> None:
        """Take the account back from the deployment's journal."""
        from rlbridge.interfaces import CostContext
        from rlbridge.market import Portfolio

        self.session = session
        self._context = CostContext(session.bars)
        bars = session.bars
        journal = session.journal
        positions = journal.positions()
        held = [positions.get(s, 0.0) for s in bars.symbols]
        self.portfolio = Portfolio(bars.symbols, self.config.cash - journal.cash_spent(), held)
        self.orders, self._bar = {}, {}
        for entry in journal.entries():
            if entry.status in ("new", "partially_filled"):
                self._accept(entry.order())

    def close(self) -> None:
        self.session = None

    # ------------------------------------------------------------------ account
    def account(self) -> Account:
        self._advance()
        bars = self.session.bars
        value = self.portfolio.value(bars.close[-1])
        return Account(self.portfolio.cash, value)

    def positions(self) -> dict[str, float]:
        self._advance()
        return {s: float(q) for s, q in zip(self.portfolio.symbols,
                                            self.portfolio.positions.tolist(), strict=True)
                if q != 0.0}

    # ------------------------------------------------------------------ orders
    def submit(self, order: Order) -> BrokerOrder:
        if order.client_order_id is None:
            raise BrokerError("the sim broker needs a client order id")
        if order.client_order_id in self.orders:
            raise DuplicateOrderError(f"client order id {order.client_order_id} exists already")
        if order.kind not in ("market", "market_on_open"):
            raise BrokerError(f"the sim broker fills market orders only, not {order.kind!r}")
        if order.symbol not in self.session.bars.symbols:
            raise BrokerError(f"unknown symbol {order.symbol!r}")
        self._accept(order)
        self._advance()
        return self.orders[order.client_order_id]

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        self._advance()
        return self.orders.get(client_order_id)

    def cancel(self, client_order_id: str) -> None:
        order = self.orders.get(client_order_id)
        if order is not None and not order.final:
            self.orders[client_order_id] = replace(order, status="canceled")

    def _accept(self, order: Order) -> None:
        t = int(self.session.bars.index.get_indexer([order.created])[0])
        if t < 0:
            raise BrokerError(f"order {order.client_order_id} was decided on {order.created}, "
                              "which is not a recorded bar")
        cid = str(order.client_order_id)
        self._bar[cid] = t
        self.orders[cid] = BrokerOrder(cid, f"sim-{len(self.orders) + 1}", order.symbol,
                                       float(order.quantity))

    def _advance(self) -> None:
        """Fill, bar by bar, every open order whose next bar has been recorded."""
        import numpy as np

        from rlbridge.market import execute

        bars = self.session.bars
        if self._context.bars is not bars:  # newer bars: the cost tables are computed anew
            from rlbridge.interfaces import CostContext

            self._context = CostContext(bars)
        reference = bars.open if self.config.fill_at == "open" else bars.close
        waiting: dict[int, list[str]] = {}
        for cid, order in self.orders.items():
            if order.status == "new" and self._bar[cid] + 1 < len(bars):
                waiting.setdefault(self._bar[cid], []).append(cid)
        for t in sorted(waiting):
            quantity = np.zeros(len(bars.symbols))
            index = {s: i for i, s in enumerate(bars.symbols)}
            for cid in waiting[t]:
                quantity[index[self.orders[cid].symbol]] += self.orders[cid].quantity
            self._context.t = t
            price, commission = execute(quantity, reference[t + 1], self.session.cost_model,
                                        self._context)
            self.portfolio.apply(quantity, price, commission)
            for cid in waiting[t]:
                order = self.orders[cid]
                i = index[order.symbol]
                share = order.quantity / quantity[i] if quantity[i] else 0.0
                self.orders[cid] = replace(order, filled_quantity=order.quantity,
                                           average_price=float(price[i]), status="filled",
                                           commission=float(commission[i] * share),
                                           filled_at=bars.index[t + 1])


@hookimpl
def register_brokers(register: Any) -> None:
    register("sim", SimBroker,
             description="rlbridge's simulator as a broker: fills at the next recorded bar "
                         "through the run's cost model (dry runs)")
