"""Rolling-window features of each asset: ``volatility``, ``sharpe`` and ``sma_ratio``.

Returns are log close returns, ``log c[t] - log c[t-1]``.  Each window is summed by a fixed
pairwise tree of its own rows (:func:`rlbridge.features.rolling_sum`), so a value reads its
window only, to the bit, and ``memory`` is what the window spans: ``window`` bars before t for
the returns features (``window`` returns need ``window + 1`` closes), ``window - 1`` for
``sma_ratio``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlbridge.hookspecs import hookimpl
from rlbridge.plugins.features.base import Transform, check_int, pick_windows, stack

if TYPE_CHECKING:
    import numpy as np

    from rlbridge.interfaces import Bars

#: a window whose variance is below this fraction of its mean square holds constant returns
#: (flat prices): its Sharpe ratio is 0, not the ratio of two rounding errors
FLAT = 1e-10


def volatility(returns: np.ndarray, window: int) -> np.ndarray:
    """Sample standard deviation of the last ``window`` returns (``[T, N]``)."""
    from rlbridge.features import rolling_std

    return rolling_std(returns, window)


def sharpe(returns: np.ndarray, window: int, annualisation: float) -> np.ndarray:
    """``mean / std * sqrt(annualisation)`` over the last ``window`` returns; 0 when flat."""
    import numpy as np

    from rlbridge.features import rolling_moments

    var, mean, meansq = rolling_moments(returns, window)
    out = np.full(var.shape, np.nan)
    known = ~np.isnan(var)
    flat = known & (var <= FLAT * meansq)
    live = known & ~flat
    out[flat] = 0.0
    out[live] = mean[live] / np.sqrt(var[live]) * np.sqrt(annualisation)
    return out


def sma_ratio(prices: np.ndarray, window: int) -> np.ndarray:
    """``p / SMA(p, window) - 1`` (``[T, N]`` prices)."""
    from rlbridge.features import rolling_mean

    return prices / rolling_mean(prices, window) - 1.0


class Volatility(Transform):
    """Rolling standard deviation of log close returns: feature ``volatility_<window>``."""

    name = "volatility"

    @dataclass(frozen=True)
    class Config:
        """Options of ``volatility``.

        Attributes:
            window: returns per window (at least 2); not annualised.
        """

        window: int = 20

        def __post_init__(self) -> None:
            check_int(self.window, "window", 2)

    def __init__(self, config: Volatility.Config | None = None) -> None:
        super().__init__(config)
        self.lookback = self.memory = self.config.window
        self._names = (f"{self.name}_{self.config.window}",)

    def compute(self, bars: Bars) -> np.ndarray:
        from rlbridge.features import bar_log_returns

        return stack([volatility(bar_log_returns(bars), self.config.window)],
                     len(bars.symbols))


class Sharpe(Transform):
    """Rolling mean over standard deviation of log close returns, annualised.

    Feature ``sharpe_<window>``; 0 over a window of flat prices.
    """

    name = "sharpe"

    @dataclass(frozen=True)
    class Config:
        """Options of ``sharpe``.

        Attributes:
            window: returns per window (at least 2).
            annualisation: bars per year; the ratio is multiplied by its square root (252
                for daily bars).
        """

        window: int = 20
        annualisation: float = 252.0

        def __post_init__(self) -> None:
            check_int(self.window, "window", 2)
            if not self.annualisation > 0:
                from rlbridge.errors import ConfigError

                raise ConfigError(f"must be a positive number, got {self.annualisation}",
                                  key="annualisation")

    def __init__(self, config: Sharpe.Config | None = None) -> None:
        super().__init__(config)
        self.lookback = self.memory = self.config.window
        self._names = (f"{self.name}_{self.config.window}",)

    def compute(self, bars: Bars) -> np.ndarray:
        from rlbridge.features import bar_log_returns

        cfg = self.config
        return stack([sharpe(bar_log_returns(bars), cfg.window, cfg.annualisation)],
                     len(bars.symbols))


class SmaRatio(Transform):
    """``close / SMA(close, window) - 1``: feature ``sma_ratio_<window>`` per window."""

    name = "sma_ratio"

    @dataclass(frozen=True)
    class Config:
        """Options of ``sma_ratio``.

        Attributes:
            window: closes per moving average (at least 2; 20 when neither key is set).
            windows: several windows, one feature each (instead of ``window``).
        """

        window: int | None = None
        windows: tuple[int, ...] | None = None

        def __post_init__(self) -> None:
            object.__setattr__(self, "windows", pick_windows(self.window, self.windows))
            object.__setattr__(self, "window", None)

    def __init__(self, config: SmaRatio.Config | None = None) -> None:
        super().__init__(config)
        windows = self.config.windows
        self.lookback = self.memory = max(windows) - 1
        self._names = tuple(f"{self.name}_{w}" for w in windows)

    def compute(self, bars: Bars) -> np.ndarray:
        return stack([sma_ratio(bars.close, w) for w in self.config.windows],
                     len(bars.symbols))


@hookimpl
def register_features(register: Any) -> None:
    register("volatility", Volatility,
             description="rolling std of log close returns (option: window 20)")
    register("sharpe", Sharpe,
             description="rolling mean/std of log close returns x sqrt(annualisation) "
                         "(options: window 20, annualisation 252)")
    register("sma_ratio", SmaRatio,
             description="close / simple moving average - 1 (options: window 20, or windows)")
