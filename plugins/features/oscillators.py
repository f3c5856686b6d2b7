"""Oscillators of the close: ``rsi`` (Wilder) and ``macd`` (exponential moving averages).

Both are scale-free, so one network input range serves every asset: RSI is rescaled to
[-1, 1] and the MACD lines are divided by the close.  Both depend on every earlier bar (no
``memory``), and both can ``resume``: a live run carries their averages from one bar to the
next, so a decision computes the new bar's values only, to the bit what the whole history
gives.  Both are recursive averages, so a value
depends on every earlier bar: ``memory`` is None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlbridge.errors import ConfigError
from rlbridge.hookspecs import hookimpl
from rlbridge.plugins.features.base import Transform, check_int, stack

if TYPE_CHECKING:
    import numpy as np

    from rlbridge.interfaces import Bars


class Rsi(Transform):
    """Wilder's relative strength index, rescaled to [-1, 1]: feature ``rsi_<window>``.

    With ``G`` and ``L`` Wilder's smoothed average gain and loss of the close (first the mean
    of the first ``window`` changes, then ``A[t] = (A[t-1] * (window - 1) + x[t]) / window``),
    the textbook RSI is ``100 - 100 / (1 + G / L)`` in [0, 100]; this feature is
    ``(RSI - 50) / 50 = (G - L) / (G + L)``: 0 is neutral (and flat prices), +1 only gains,
    -1 only losses.  Centred on 0 with unit range, it needs no further scaling for a network.
    """

    name = "rsi"
    memory = None  # Wilder's average starts at the first bar

    @dataclass(frozen=True)
    class Config:
        """Options of ``rsi``.

        Attributes:
            window: Wilder's period (at least 2).
        """

        window: int = 14

        def __post_init__(self) -> None:
            check_int(self.window, "window", 2)

    def __init__(self, config: Rsi.Config | None = None) -> None:
        super().__init__(config)
        self.lookback = self.config.window
        self._names = (f"{self.name}_{self.config.window}",)

    def compute(self, bars: Bars) -> np.ndarray:
        return self.resume(bars, None)[0]

    def resume(self, bars: Bars, state: Any) -> tuple[np.ndarray, Any]:
        """The rows of :meth:`compute` from where ``state`` left off, and the state after
        them (see :meth:`rlbridge.features.FeaturePipeline.compute_tail`); all rows when
        ``state`` is None.  The state is ``(rows, gain, loss)``: the rows done and the last
        smoothed gain and loss (None until they have a value)."""
        import numpy as np

        from rlbridge.features import smooth, wilder_mean

        close = bars.close
        n = len(bars.symbols)
        if state is None:
            change = np.full(close.shape, np.nan)
            np.subtract(close[1:], close[:-1], out=change[1:])
            gain = wilder_mean(np.maximum(change, 0.0), self.config.window)
            loss = wilder_mean(np.maximum(-change, 0.0), self.config.window)
        else:
            done, last_gain, last_loss = state
            change = close[done:] - close[done - 1:-1]
            alpha = 1.0 / self.config.window
            gain = smooth(np.maximum(change, 0.0), alpha, last_gain)
            loss = smooth(np.maximum(-change, 0.0), alpha, last_loss)
        total = gain + loss
        out = np.where(total > 0, (gain - loss) / np.where(total > 0, total, 1.0), 0.0)
        out[np.isnan(total)] = np.nan
        after = None
        if len(close) and len(gain) and not np.isnan(gain[-1]).any():
            after = (len(close), gain[-1].copy(), loss[-1].copy())
        elif state is not None:
            after = (len(close), state[1], state[2])
        return stack([out], n), after


class Macd(Transform):
    """MACD of the close, divided by the close.

    Features ``macd_<f>_<s>_<g>`` (``EMA_f(close) - EMA_s(close)``), ``macd_signal_<f>_<s>_<g>``
    (``EMA_g`` of the MACD line) and ``macd_hist_<f>_<s>_<g>`` (line minus signal), each over
    the close.  EMAs use ``alpha = 2 / (span + 1)`` from the first bar; the first
    ``slow + signal - 2`` rows, where they are still warming up, are NaN.
    """

    name = "macd"
    memory = None  # exponential averages start at the first bar

    @dataclass(frozen=True)
    class Config:
        """Options of ``macd``.

        Attributes:
            fast: span of the fast EMA.
            slow: span of the slow EMA (more than ``fast``).
            signal: span of the signal line's EMA.
        """

        fast: int = 12
        slow: int = 26
        signal: int = 9

        def __post_init__(self) -> None:
            check_int(self.fast, "fast", 1)
            check_int(self.signal, "signal", 1)
            if self.slow <= self.fast:
                raise ConfigError(f"must be more than fast ({self.fast}), got {self.slow}",
                                  key="slow")

    def __init__(self, config: Macd.Config | None = None) -> None:
        super().__init__(config)
        cfg = self.config
        self.lookback = cfg.slow + cfg.signal - 2
        tag = f"{cfg.fast}_{cfg.slow}_{cfg.signal}"
        self._names = (f"macd_{tag}", f"macd_signal_{tag}", f"macd_hist_{tag}")

    def compute(self, bars: Bars) -> np.ndarray:
        return self.resume(bars, None)[0]

    def resume(self, bars: Bars, state: Any) -> tuple[np.ndarray, Any]:
        """The rows of :meth:`compute` from where ``state`` left off, and the state after
        them (see :meth:`rlbridge.features.FeaturePipeline.compute_tail`); all rows when
        ``state`` is None.  The state is ``(rows, fast, slow, signal)``: the rows done and
        the last value of each average."""
        import numpy as np

        from rlbridge.features import ema, smooth

        cfg = self.config
        close = bars.close
        fast, slow, sig = (2.0 / (cfg.fast + 1), 2.0 / (cfg.slow + 1), 2.0 / (cfg.signal + 1))
        if state is None:
            done = 0
            fast_ema, slow_ema = ema(close, fast), ema(close, slow)
            line = fast_ema - slow_ema
            signal = ema(line, sig)
        else:
            done, last_fast, last_slow, last_signal = state
            new = close[done:]
            fast_ema, slow_ema = smooth(new, fast, last_fast), smooth(new, slow, last_slow)
            line = fast_ema - slow_ema
            signal = smooth(line, sig, last_signal)
            close = new
        out = stack([line / close, signal / close, (line - signal) / close],
                    len(bars.symbols))
        out[:max(0, self.lookback - done)] = float("nan")
        after = None
        if len(out) and np.isfinite(signal[-1]).all():
            after = (done + len(out), fast_ema[-1].copy(), slow_ema[-1].copy(),
                     signal[-1].copy())
        return out, after


@hookimpl
def register_features(register: Any) -> None:
    register("rsi", Rsi,
             description="Wilder RSI of the close, scaled to [-1, 1] (option: window 14)")
    register("macd", Macd,
             description="MACD line, signal and histogram over the close "
                         "(options: fast 12, slow 26, signal 9)")
