"""The ``spread`` cost model: crossing half the bid-ask spread on every fill.

A market buy pays the ask, ``price * (1 + bps / 10_000)``, and a market sell receives the
bid, ``price * (1 - bps / 10_000)``, where ``bps`` is the *half* spread in basis points and
``price`` is the reference (mid) price.  No commission.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlbridge.hookspecs import hookimpl
from rlbridge.plugins.costs import check_range

if TYPE_CHECKING:
    import numpy as np

    from rlbridge.interfaces import CostContext


class SpreadCost:
    """Buys fill ``bps`` basis points above the reference price, sells as far below."""

    price_impact = True
    charges_commission = False

    @dataclass(frozen=True)
    class Config:
        """Options of the ``spread`` cost model.

        Attributes:
            bps: the half spread in basis points (5 = 0.05% paid on each side).
        """

        bps: float = 5.0

        def __post_init__(self) -> None:
            check_range("bps", self.bps, 0.0, 10_000.0,
                        hint="the half spread in basis points: 5 is 0.05%")

    def __init__(self, config: SpreadCost.Config | None = None) -> None:
        import numpy as np

        from rlbridge.costs import apply_slippage, zeros

        self.config = config if config is not None else SpreadCost.Config()
        self._fraction = np.float64(self.config.bps / 1e4)  # a ufunc converts a float per call
        self._slip = apply_slippage
        self._zeros = zeros

    def __repr__(self) -> str:
        return f"SpreadCost(bps={self.config.bps!r})"

    def describe(self) -> str:
        """``spread: 5 bps half spread``."""
        return f"spread: {self.config.bps:g} bps half spread"

    def fill_price(self, price: np.ndarray, quantity: np.ndarray,
                   context: CostContext) -> np.ndarray:
        """``price * (1 + sign(quantity) * bps / 10_000)``."""
        return self._slip(price, quantity, self._fraction)

    def kernel_parts(self, context: CostContext) -> list[tuple[str, int, tuple[float, ...], Any]]:
        """This model for the vectorised environment's compiled step (:mod:`rlbridge.kernels`)."""
        from rlbridge.kernels import SPREAD

        return [("price", SPREAD, (float(self._fraction),), None)]

    def commission(self, price: np.ndarray, quantity: np.ndarray,
                   context: CostContext) -> np.ndarray:
        """Zeros: the spread is paid in the price."""
        return self._zeros(price)


@hookimpl
def register_cost_models(register: Any) -> None:
    register("spread", SpreadCost,
             description="half spread in basis points on the fill price (bps = 5), "
                         "no commission")
