"""The run's cost model as zipline's slippage and commission models.

rlbridge cost models price all assets of a bar at once (``fill_price(reference[N],
quantity[N], context)``), with a :class:`~rlbridge.interfaces.CostContext` whose ``t`` is the
decision bar; zipline asks its slippage model for one order at a time, then its commission
model for that order's transaction.  :class:`BarPricer` bridges the two: when zipline processes
the first order of a bar, it evaluates the cost model once for every order of that bar (the
quantities the bridge sent at the decision bar, the reference prices zipline's data gives for
the fill session) and keeps the prices and commissions that the two models then hand out per
order.  Every built-in cost model and any third-party one gets exactly the fills of the
``native`` engine, where zipline's own models would differ (a volume limit, a per-trade
minimum applied per transaction, a price at the close).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from zipline.finance.commission import CommissionModel
from zipline.finance.slippage import SlippageModel
from zipline.finance.transaction import create_transaction

from rlbridge.interfaces import CostContext

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from rlbridge.interfaces import Bars, CostModel


class BarPricer:
    """Prices the fills of one decision bar with the run's cost model, all assets at once.

    Args:
        cost_model: the run's cost model.
        bars: the run's bars (the cost context reads them up to the decision bar).
        assets: zipline's equities in symbol order (``sid`` = position).
        fill_at: ``"open"`` or ``"close"``: the field of the fill session to start from.
    """

    def __init__(self, cost_model: CostModel, bars: Bars, assets: Sequence[Any],
                 fill_at: str) -> None:
        self.cost_model = cost_model
        self.context = CostContext(bars)
        self.assets = list(assets)
        self.field = fill_at
        n = len(self.assets)
        self.quantity = np.zeros(n)
        self.price = np.zeros(n)
        self.commission = np.zeros(n)
        self._due = False

    def decided(self, t: int, quantity: np.ndarray) -> None:
        """The bridge sent ``quantity`` (signed shares per asset) at decision bar ``t``."""
        self.context.t = t
        self.quantity[:] = quantity
        self._due = True

    def prices(self, data: Any) -> None:
        """Evaluate the cost model for the decided orders at this session's reference prices.

        ``data`` is zipline's bar data of the fill session; only assets with an order are
        read (the others keep a reference of 1 and, with no quantity, cost nothing).
        """
        if not self._due:
            return
        self._due = False
        quantity = self.quantity
        reference = np.ones(len(quantity))
        ordered = np.flatnonzero(quantity)
        # one read for all assets: zipline resolves the session once per call, not per asset
        current = data.current([self.assets[i] for i in ordered], self.field)
        reference[ordered] = current.to_numpy(dtype=np.float64)
        price = self.cost_model.fill_price(reference, quantity, self.context)
        self.price = np.asarray(price, dtype=np.float64)
        self.commission = np.asarray(
            self.cost_model.commission(self.price, quantity, self.context), dtype=np.float64)


class CostModelSlippage(SlippageModel):
    """Fills every market order whole at the cost model's price for the fill session.

    rlbridge's market model (DESIGN.md section 4) fills an order decided after bar ``t`` at
    bar ``t + 1``, entirely, whatever that bar's volume: so this model does not inherit the
    volume checks of zipline's base ``simulate`` (which skips a bar with no volume and leaves
    the order open) and never splits an order.
    """

    def __init__(self, pricer: BarPricer) -> None:
        super().__init__()
        self.pricer = pricer

    def process_order(self, data: Any, order: Any) -> tuple[float, int]:
        """``(price, amount)``: the whole open amount at the priced fill price."""
        self.pricer.prices(data)
        return float(self.pricer.price[order.asset.sid]), order.open_amount

    def simulate(self, data: Any, asset: Any, orders_for_asset: Any) -> Iterator[Any]:
        """One transaction per open order, at this session's fill price."""
        self._volume_for_bar = 0
        dt = data.current_dt
        for order in orders_for_asset:
            if order.open_amount == 0:
                continue
            price, amount = self.process_order(data, order)
            yield order, create_transaction(order, dt, price, amount)


class CostModelCommission(CommissionModel):
    """Charges each transaction the commission the cost model gave its order."""

    def __init__(self, pricer: BarPricer) -> None:
        self.pricer = pricer

    def calculate(self, order: Any, transaction: Any) -> float:
        """The cost model's commission for ``order`` (filled whole in ``transaction``)."""
        return float(self.pricer.commission[order.asset.sid])
