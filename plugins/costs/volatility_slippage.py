"""The ``volatility_slippage`` cost model: square-root market impact.

The fill price moves against the order by the fraction::

    coefficient * volatility * sqrt(|q| / volume) + minimum_bps / 10_000

capped at ``max_bps / 10_000``, where ``volatility`` is the standard deviation of the last
``window`` log close-to-close returns and ``volume`` the shares traded, both of the decision
bar (never the bar the order fills on).  Buys pay ``price * (1 + fraction)``, sells receive
``price * (1 - fraction)``.  Where the volume is 0 or the volatility is not known yet (fewer
than two returns) only ``minimum_bps`` applies; the cap keeps a thin bar from producing an
absurd price.  No commission.

Trading 1% of a bar's volume in a stock with 2% daily volatility costs, with the default
coefficient 0.1, ``0.1 * 0.02 * sqrt(0.01) = 0.0002``, 2 bps; trading the whole bar's volume
costs 20 bps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlbridge.errors import ConfigError
from rlbridge.hookspecs import hookimpl
from rlbridge.plugins.costs import check_range

if TYPE_CHECKING:
    import numpy as np

    from rlbridge.interfaces import Bars, CostContext


class VolatilitySlippageCost:
    """Slippage that grows with recent volatility and with the square root of order/volume."""

    price_impact = True
    charges_commission = False

    @dataclass(frozen=True)
    class Config:
        """Options of the ``volatility_slippage`` cost model.

        Attributes:
            coefficient: scales ``volatility * sqrt(|q| / volume)`` into the price fraction.
            window: how many daily log returns the volatility spans (at least 2).
            minimum_bps: slippage in basis points paid on every fill, on top of the impact.
            max_bps: the most slippage of a fill, in basis points, minimum included.
        """

        coefficient: float = 0.1
        window: int = 20
        minimum_bps: float = 0.0
        max_bps: float = 500.0

        def __post_init__(self) -> None:
            check_range("coefficient", self.coefficient, 0.0, float("inf"),
                        hint="scales volatility x sqrt(order / volume)")
            if self.window < 2:
                raise ConfigError(f"must be at least 2 (returns in the volatility), got "
                                  f"{self.window!r}", key="window")
            check_range("max_bps", self.max_bps, 0.0, 10_000.0, closed="neither",
                        hint="the most slippage of a fill, in basis points")
            check_range("minimum_bps", self.minimum_bps, 0.0, self.max_bps, closed="both",
                        hint="basis points, at most max_bps")

    def __init__(self, config: VolatilitySlippageCost.Config | None = None) -> None:
        import numpy as np

        from rlbridge.costs import apply_slippage, per_run_table, zeros

        self.config = cfg = config if config is not None else VolatilitySlippageCost.Config()
        self._coefficient = float(cfg.coefficient)
        self._window = int(cfg.window)
        # numpy scalars: a ufunc converts a Python float on every call
        self._floor = np.float64(cfg.minimum_bps / 1e4)
        self._cap = np.float64(cfg.max_bps / 1e4)
        self._key = ("volatility_slippage", self._window, self._coefficient)
        self._np = np
        self._slip = apply_slippage
        self._table = per_run_table
        self._zeros = zeros
        self._context: CostContext | None = None
        self._scale = np.zeros((0, 0))

    def __repr__(self) -> str:
        c = self.config
        return (f"VolatilitySlippageCost(coefficient={c.coefficient!r}, window={c.window!r}, "
                f"minimum_bps={c.minimum_bps!r}, max_bps={c.max_bps!r})")

    def describe(self) -> str:
        """``volatility_slippage: 0.1 x 20-bar volatility x sqrt(order / volume), 0-500 bps``."""
        c = self.config
        return (f"volatility_slippage: {c.coefficient:g} x {c.window}-bar volatility x "
                f"sqrt(order / volume), {c.minimum_bps:g}-{c.max_bps:g} bps")

    def scale(self, bars: Bars) -> np.ndarray:
        """``[T, N]``: ``coefficient * volatility[t] / sqrt(volume[t])``, 0 where volume is 0.

        Row ``t`` uses bars ``0..t`` only: the volatility is the one
        :meth:`CostContext.volatility` gives at ``t`` (the same function computes it) and the
        volume is bar ``t``'s.
        """
        from rlbridge.interfaces import rolling_std_of_log_returns

        np = self._np
        volatility = rolling_std_of_log_returns(bars.close, self._window)
        volume = bars.volume
        table = np.zeros_like(volume)
        np.divide(volatility * self._coefficient, np.sqrt(np.abs(volume)), out=table,
                  where=volume > 0)
        return table

    def fill_price(self, price: np.ndarray, quantity: np.ndarray,
                   context: CostContext) -> np.ndarray:
        """``price * (1 ± min(coefficient * vol * sqrt(|q| / volume) + minimum, max))``."""
        np = self._np
        fraction = np.sqrt(abs(quantity))
        if context is not self._context:  # one table per run, looked up once per run
            self._context = context
            self._scale = self._table(context, self._key, self.scale)
        fraction *= self._scale[context.t]
        if self._floor:
            fraction += self._floor
        np.minimum(fraction, self._cap, out=fraction)
        return self._slip(price, quantity, fraction)

    def kernel_parts(self, context: CostContext) -> list[tuple[str, int, tuple[float, ...], Any]]:
        """This model for the vectorised environment's compiled step (:mod:`rlbridge.kernels`)."""
        from rlbridge.kernels import VOLATILITY

        table = self._table(context, self._key, self.scale)
        return [("price", VOLATILITY, (float(self._floor), float(self._cap)), table)]

    def commission(self, price: np.ndarray, quantity: np.ndarray,
                   context: CostContext) -> np.ndarray:
        """Zeros: the slippage is paid in the price."""
        return self._zeros(price)


@hookimpl
def register_cost_models(register: Any) -> None:
    register("volatility_slippage", VolatilitySlippageCost,
             description="square-root impact: coefficient x volatility x sqrt(order / volume), "
                         "capped at max_bps, no commission")
