"""The algorithm bridge: a rlbridge strategy driven by zipline's ``handle_data``.

zipline calls :meth:`Bridge.handle_data` at the close of each session of the run, after its
blotter has booked the transactions of the orders sent at the previous close.  The bridge then,
like the ``native`` engine at each bar:

1. reports those transactions as :class:`~rlbridge.interfaces.Fill` (symbol order, time = the
   session) to ``spec.on_fill`` and ``strategy.on_fill``;
2. records zipline's portfolio value, cash and shares at that close;
3. calls ``strategy.on_bar`` with a :class:`ZiplineContext`;
4. sends the bar's orders to zipline, one market order per asset for the net quantity (so a
   per-order minimum commission is charged once per asset and bar, as ``native`` does).

A strategy that raises stops the run through :class:`StrategyFailed`, which zipline lets
propagate out of ``TradingAlgorithm.run``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from zipline.finance.blotter import SimulationBlotter

from rlbridge.context import EngineContext, strategy_error
from rlbridge.interfaces import Fill

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rlbridge.context import RunSpec, StrategyError
    from rlbridge.interfaces import Order, Strategy

    from .models import BarPricer


class StrategyFailed(Exception):
    """Raised inside zipline to stop the run when the strategy raised (carries nothing)."""


class RecordingBlotter(SimulationBlotter):
    """zipline's simulation blotter, keeping the transactions it booked at the current bar."""

    def __init__(self, **models: Any) -> None:
        super().__init__(**models)
        self.booked: list[Any] = []

    def get_transactions(self, bar_data: Any) -> tuple[list[Any], list[Any], list[Any]]:
        transactions, commissions, closed = super().get_transactions(bar_data)
        self.booked = transactions
        return transactions, commissions, closed


class ZiplineContext(EngineContext):
    """The strategy API on zipline's portfolio.

    Cash and shares are zipline's, read from ``context.portfolio`` once per session (after the
    session's fills; they cannot change before the next session).  Orders are collected per
    asset and sent to zipline after ``on_bar``.
    """

    def __init__(self, spec: RunSpec) -> None:
        super().__init__(spec)
        n = len(self.symbols)
        self._cash = float(spec.cash)
        self._held = np.zeros(n)
        self._outgoing = np.zeros(n)

    @property
    def cash(self) -> float:
        return self._cash

    def holdings(self) -> np.ndarray:
        return self._held

    def _send(self, order: Order, asset: int) -> None:
        from rlbridge.market import MarketError

        quantity = order.quantity
        if quantity != int(quantity):
            raise MarketError(f"the zipline engine trades whole shares; cannot order "
                              f"{quantity:g} shares of {order.symbol}")
        self._outgoing[asset] += quantity


class Bridge:
    """Runs ``strategy`` in zipline's callbacks and records what the run needs.

    Args:
        strategy: the strategy.
        spec: the run.
        ctx: the strategy's context.
        blotter: the blotter the algorithm uses.
        pricer: prices the fills of the orders sent at each bar.
        assets: zipline's equities in symbol order.
    """

    def __init__(self, strategy: Strategy, spec: RunSpec, ctx: ZiplineContext,
                 blotter: RecordingBlotter, pricer: BarPricer, assets: Sequence[Any]) -> None:
        self.strategy = strategy
        self.spec = spec
        self.ctx = ctx
        self.blotter = blotter
        self.pricer = pricer
        self.assets = list(assets)
        count = spec.end - spec.start + 1
        n = len(self.assets)
        self.equity = np.full(count, np.nan)
        self.cash = np.full(count, np.nan)
        self.positions = np.full((count, n), np.nan)
        self.fills: list[Fill] = []
        self.error: StrategyError | None = None
        #: how many bars were marked (the bar a strategy failed on counts when its fills
        #: were reported, as in ``native``)
        self.marked = 0
        self._t = spec.start - 1
        self._index = spec.bars.index

    def initialize(self, algo: Any) -> None:
        """zipline's ``initialize``: nothing to set up (models and blotter are given)."""

    def handle_data(self, algo: Any, data: Any) -> None:
        """One session: fills, marks, the strategy's decision, the orders."""
        self._t += 1
        t = self._t
        i = t - self.spec.start
        ctx = self.ctx
        ctx.t = t
        ctx._filled()
        value = self._sync(algo)
        strategy = self.strategy
        try:
            booked = self.blotter.booked
            if booked:
                self.blotter.booked = []
                self._report(booked, t)
            self.equity[i] = value
            self.cash[i] = ctx._cash
            self.positions[i] = ctx._held
            self.marked = i + 1
            strategy.on_bar(ctx)
        except Exception as exc:  # the strategy's error stops the run; what happened is kept
            self.error = strategy_error(strategy, self._index[t], i, exc)
            raise StrategyFailed from None
        outgoing = ctx._outgoing
        if outgoing.any():
            self.pricer.decided(t, outgoing)
            assets = self.assets
            for k in np.flatnonzero(outgoing):
                algo.order(assets[k], int(outgoing[k]))
            outgoing[:] = 0.0

    def stop(self) -> None:
        """``strategy.stop`` after the last session; an error is kept like ``on_bar``'s."""
        try:
            self.strategy.stop(self.ctx)
        except Exception as exc:
            t = self._t
            self.error = strategy_error(self.strategy, self._index[t], t - self.spec.start, exc)

    def _sync(self, algo: Any) -> float:
        """Read zipline's cash and shares into the context; return the portfolio value.

        zipline marks its positions at the current session's close when the portfolio is read.
        """
        portfolio = algo.portfolio
        held = np.zeros(len(self.assets))
        for asset, position in portfolio.positions.items():
            held[asset.sid] = position.amount
        ctx = self.ctx
        ctx._cash = float(portfolio.cash)
        ctx._held = held
        return float(portfolio.portfolio_value)

    def _report(self, booked: list[Any], t: int) -> None:
        when = self._index[t]
        orders = self.blotter.orders
        on_fill = self.spec.on_fill
        strategy, ctx = self.strategy, self.ctx
        symbols = self.spec.bars.symbols
        for txn in sorted(booked, key=lambda txn: txn.asset.sid):
            fill = Fill(symbols[txn.asset.sid], float(txn.amount), float(txn.price),
                        float(orders[txn.order_id].commission), when)
            self.fills.append(fill)
            if on_fill is not None:
                on_fill(fill)
            strategy.on_fill(ctx, fill)
