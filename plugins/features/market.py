"""Market-level features: ``market_volatility``, ``market_sharpe``, ``market_sma_ratio``.

The market is the equal-weighted portfolio of the run's assets, rebalanced every bar: its log
return is the mean across assets of their log close returns, and its level grows by those
returns.  Each feature is the per-asset one computed on the market and broadcast, so every
asset sees the same value at a bar, and reads the same bars (``memory``): ``window`` bars
before t for volatility and Sharpe, ``window - 1`` for the SMA ratio, whose windows hold the
levels relative to the last one (:func:`rlbridge.features.level_sma_ratio`) rather than a
level accumulated from the first bar.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rlbridge.hookspecs import hookimpl
from rlbridge.plugins.features.base import stack
from rlbridge.plugins.features.rolling import (
    Sharpe,
    SmaRatio,
    Volatility,
    sharpe,
    volatility,
)

if TYPE_CHECKING:
    import numpy as np

    from rlbridge.interfaces import Bars


def market_returns(bars: Bars) -> np.ndarray:
    """``[T, 1]``: the mean across assets of the log close returns (row 0 NaN)."""
    from rlbridge.features import bar_log_returns

    return bar_log_returns(bars).mean(axis=1, keepdims=True)


class MarketVolatility(Volatility):
    """Rolling std of the market's log returns: ``market_volatility_<window>``."""

    name = "market_volatility"

    def compute(self, bars: Bars) -> np.ndarray:
        return stack([volatility(market_returns(bars), self.config.window)], len(bars.symbols))


class MarketSharpe(Sharpe):
    """Rolling annualised Sharpe ratio of the market's log returns: ``market_sharpe_<window>``."""

    name = "market_sharpe"

    def compute(self, bars: Bars) -> np.ndarray:
        cfg = self.config
        return stack([sharpe(market_returns(bars), cfg.window, cfg.annualisation)],
                     len(bars.symbols))


class MarketSmaRatio(SmaRatio):
    """The market level over its moving average, minus 1: ``market_sma_ratio_<window>``."""

    name = "market_sma_ratio"

    def compute(self, bars: Bars) -> np.ndarray:
        from rlbridge.features import level_sma_ratio

        returns = market_returns(bars)
        return stack([level_sma_ratio(returns, w) for w in self.config.windows],
                     len(bars.symbols))


@hookimpl
def register_features(register: Any) -> None:
    register("market_volatility", MarketVolatility,
             description="rolling std of the equal-weighted market's log returns, same for "
                         "every asset (option: window 20)")
    register("market_sharpe", MarketSharpe,
             description="rolling Sharpe ratio of the equal-weighted market, same for every "
                         "asset (options: window 20, annualisation 252)")
    register("market_sma_ratio", MarketSmaRatio,
             description="equal-weighted market level / its moving average - 1, same for "
                         "every asset (options: window 20, or windows)")
