"""The ``per_share`` cost model: a commission per share with a per-order minimum and maximum.

The rule of Interactive Brokers' fixed pricing for US stocks::

    commission = min(max(per_share * |q|, minimum), maximum_percent * |q| * fill price)

so a small order pays the minimum, and the maximum (a fraction of the order's value) caps the
commission of large orders in cheap shares, even below the minimum: 1 share at $5 pays
1% of $5 = $0.05, not $1.  Where nothing trades the commission is 0.  No price impact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlbridge.hookspecs import hookimpl
from rlbridge.plugins.costs import check_range

if TYPE_CHECKING:
    import numpy as np

    from rlbridge.interfaces import CostContext


class PerShareCost:
    """A commission per share, at least ``minimum`` and at most ``maximum_percent`` of value."""

    price_impact = False
    charges_commission = True

    @dataclass(frozen=True)
    class Config:
        """Options of the ``per_share`` cost model.

        Attributes:
            per_share: the commission per share traded (0.005 = half a cent).
            minimum: the least commission of an order, in cash.
            maximum_percent: the most commission of an order, as a fraction of its traded
                value (0.01 = 1%); it wins over ``minimum``.
        """

        per_share: float = 0.005
        minimum: float = 1.0
        maximum_percent: float = 0.01

        def __post_init__(self) -> None:
            check_range("per_share", self.per_share, 0.0, float("inf"),
                        hint="cash per share traded")
            check_range("minimum", self.minimum, 0.0, float("inf"),
                        hint="the least commission of an order, in cash")
            check_range("maximum_percent", self.maximum_percent, 0.0, 1.0, closed="right",
                        hint="a fraction of the order's value: 0.01 is 1%")

    def __init__(self, config: PerShareCost.Config | None = None) -> None:
        import numpy as np

        self.config = config if config is not None else PerShareCost.Config()
        # numpy scalars: a ufunc converts a Python float on every call
        self._per_share = np.float64(self.config.per_share)
        self._minimum = np.float64(self.config.minimum)
        self._maximum = np.float64(self.config.maximum_percent)
        self._np = np

    def __repr__(self) -> str:
        c = self.config
        return (f"PerShareCost(per_share={c.per_share!r}, minimum={c.minimum!r}, "
                f"maximum_percent={c.maximum_percent!r})")

    def describe(self) -> str:
        """``per_share: $0.005 per share, at least $1 and at most 1% of value per order``."""
        return (f"per_share: ${self._per_share:g} per share, at least ${self._minimum:g} and "
                f"at most {self._maximum * 100:g}% of value per order")

    def fill_price(self, price: np.ndarray, quantity: np.ndarray,
                   context: CostContext) -> np.ndarray:
        """The reference price itself: this model moves no price."""
        return price

    def kernel_parts(self, context: CostContext) -> list[tuple[str, int, tuple[float, ...], Any]]:
        """This model for the vectorised environment's compiled step (:mod:`rlbridge.kernels`)."""
        from rlbridge.kernels import PER_SHARE

        return [("commission", PER_SHARE,
                 (float(self._per_share), float(self._minimum), float(self._maximum)), None)]

    def commission(self, price: np.ndarray, quantity: np.ndarray,
                   context: CostContext) -> np.ndarray:
        """``min(max(per_share * |q|, minimum), maximum_percent * |q| * price)`` per asset.

        The cap is 0 where ``q`` is 0, so an asset that does not trade pays nothing without
        a mask.
        """
        np = self._np
        shares = abs(quantity)
        out = shares * self._per_share
        np.maximum(out, self._minimum, out=out)
        cap = shares * price
        cap *= self._maximum
        np.minimum(out, cap, out=out)
        return out


@hookimpl
def register_cost_models(register: Any) -> None:
    register("per_share", PerShareCost,
             description="commission per share with a per-order minimum and a cap as a "
                         "fraction of value (fixed-rate broker pricing)")
