"""The ``percent`` cost model: a commission that is a fixed fraction of the traded value.

``commission = rate * |quantity| * fill price``, no price impact.  ``rate = 0.001`` charges
0.1% of every trade's value, both ways, which is what most backtests assume by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlbridge.hookspecs import hookimpl
from rlbridge.plugins.costs import check_range

if TYPE_CHECKING:
    import numpy as np

    from rlbridge.interfaces import CostContext


class PercentCost:
    """Commission of ``rate`` times the traded value; fills at the reference price."""

    price_impact = False
    charges_commission = True

    @dataclass(frozen=True)
    class Config:
        """Options of the ``percent`` cost model.

        Attributes:
            rate: the commission as a fraction of traded value (0.001 = 0.1%).
        """

        rate: float = 0.001

        def __post_init__(self) -> None:
            check_range("rate", self.rate, 0.0, 1.0,
                        hint="a fraction of traded value: 0.001 is 0.1%")

    def __init__(self, config: PercentCost.Config | None = None) -> None:
        self.config = config if config is not None else PercentCost.Config()
        self._rate = float(self.config.rate)

    def __repr__(self) -> str:
        return f"PercentCost(rate={self._rate!r})"

    def describe(self) -> str:
        """``percent: 0.1% of traded value``."""
        return f"percent: {self._rate * 100:g}% of traded value"

    def fill_price(self, price: np.ndarray, quantity: np.ndarray,
                   context: CostContext) -> np.ndarray:
        """The reference price itself: this model moves no price."""
        return price

    def kernel_parts(self, context: CostContext) -> list[tuple[str, int, tuple[float, ...], Any]]:
        """This model for the vectorised environment's compiled step (:mod:`rlbridge.kernels`)."""
        from rlbridge.kernels import PERCENT

        return [("commission", PERCENT, (self._rate,), None)]

    def commission(self, price: np.ndarray, quantity: np.ndarray,
                   context: CostContext) -> np.ndarray:
        """``rate * |quantity| * price`` per asset (0 where nothing trades)."""
        out = abs(quantity) * price
        out *= self._rate
        return out


@hookimpl
def register_cost_models(register: Any) -> None:
    register("percent", PercentCost,
             description="commission = rate x traded value (rate = 0.001: 0.1%), no slippage")
