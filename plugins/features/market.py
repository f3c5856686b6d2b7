"""Market-level features: ``market_volatility``, ``market_sharpe``, ``market_sma_ratio``.

The market is the equal-weighted portfolio of the run's assets, rebalanced every bar: its log
return is the mean across assets of their log close returns, and its level starts at 1 and
grows by those returns (``exp`` of their cumulative sum).  Each feature is the per-asset one
computed on the market and broadcast, so every asset sees the same value at a bar.
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
    sma_ratio,
    volatility,
)

if TYPE_CHECKING:
    import numpy as np

    from rlbridge.interfaces import Bars


def market_returns(bars: Bars) -> np.ndarray:
    """``[T, 1]``: the mean across assets of the log close returns (row 0 NaN)."""
    from rlbridge.features import bar_log_returns

    return bar_log_returns(bars).mean(axis=1, keepdims=True)


def market_level(bars: Bars) -> np.ndarray:
    """``[T, 1]``: the equal-weighted market's level, 1 at the first bar."""
    import numpy as np

    returns = market_returns(bars)
    logs = np.zeros(returns.shape)
    np.cumsum(returns[1:], axis=0, out=logs[1:])
    return np.exp(logs)


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
        level = market_level(bars)
        return stack([sma_ratio(level, w) for w in self.config.windows], len(bars.symbols))


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
