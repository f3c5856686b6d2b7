"""Is a strategy's Sharpe ratio better than its baseline's, or is that luck?

:func:`compare_sharpe` answers with a stationary block bootstrap (Politis and Romano, 1994) of
the paired bar returns of the strategy and the baseline:

1. The point estimate is ``d = Sharpe(strategy) - Sharpe(baseline)``, both annualised with
   ``sqrt(periods_per_year)`` and the sample deviation (ddof 1), as
   :func:`rlbridge.metrics.performance` and empyrical compute them (risk-free rate 0).
2. Each resample draws the bar indices of both series together (pairs stay pairs, so the
   correlation between strategy and baseline is kept) in blocks of consecutive bars whose
   lengths are geometric with mean ``block``: a block starts at a uniformly drawn bar and
   continues to the next bar (wrapping from the last to the first) with probability
   ``1 - 1/block``.  Blocks keep the serial dependence of returns (volatility clusters) that
   an i.i.d. bootstrap would destroy.  The default ``block`` is ``n ** (1/3)`` rounded
   (at least 1), the rate at which the optimal block length of a bootstrap variance estimate
   grows with the sample size ``n`` (Hall, Horowitz and Jing, 1995).
3. The confidence interval is the percentile interval of the resampled differences ``d*``.
4. The p-value is one-sided, for H0: the Sharpe difference is <= 0.  The resampled
   differences centred on the estimate, ``d* - d``, stand for the estimation error under
   H0's boundary (difference 0); ``p = (1 + #{d* - d >= d}) / (1 + n_boot)``.  A small p
   says a difference as large as ``d`` is unlikely if the strategy were no better.  Ties
   count against the strategy, so identical series give ``d = 0`` and ``p = 1``.

Everything is vectorised with numpy: a chunk of resamples is one index matrix.  The same
``seed`` gives the same result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import DataError, RLBridgeError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["SharpeComparison", "compare_sharpe", "default_block", "stationary_bootstrap_indices"]

_CHUNK_CELLS = 2_000_000  # resampled returns per chunk: bounds memory at about 50 MB


@dataclass(frozen=True)
class SharpeComparison:
    """The outcome of :func:`compare_sharpe`.

    Attributes:
        difference: annualised Sharpe of the strategy minus that of the baseline.
        low, high: the bootstrap percentile confidence interval of ``difference``.
        p_value: one-sided p-value of H0: difference <= 0.
        n_boot: the resamples used.
        block: the mean block length, in bars.
        confidence: the interval's confidence level.
        observations: the number of paired returns.
    """

    difference: float
    low: float
    high: float
    p_value: float
    n_boot: int
    block: float
    confidence: float = 0.95
    observations: int = 0

    def to_json(self) -> dict[str, Any]:
        """The fields as a plain dict (the ``--json`` form)."""
        return {"difference": self.difference, "low": self.low, "high": self.high,
                "p_value": self.p_value, "n_boot": self.n_boot, "block": self.block,
                "confidence": self.confidence, "observations": self.observations}


def default_block(n: int) -> int:
    """The default mean block length for ``n`` returns: ``round(n ** (1/3))``, at least 1."""
    return max(1, round(n ** (1.0 / 3.0)))


def compare_sharpe(
    strategy_returns: pd.Series | np.ndarray | Any,
    baseline_returns: pd.Series | np.ndarray | Any,
    *,
    n_boot: int = 2000,
    block: float | None = None,
    confidence: float = 0.95,
    seed: int = 0,
    periods_per_year: int = 252,
) -> SharpeComparison:
    """The Sharpe difference of a strategy over a baseline, its confidence interval and p-value.

    See the module notes for the method.

    Args:
        strategy_returns: the strategy's simple returns per bar.
        baseline_returns: the baseline's on the same bars: the same length and, for two
            Series with a DatetimeIndex, the same times.
        n_boot: the number of bootstrap resamples.
        block: the mean block length in bars (default :func:`default_block`).
        confidence: the confidence level of the interval, between 0 and 1.
        seed: the seed of the random generator.
        periods_per_year: bars per year, to annualise the Sharpe ratios.

    Returns:
        The :class:`SharpeComparison`.

    Raises:
        DataError: the series differ in length or times, hold a NaN or infinite value, are
            shorter than twice the block length, or one of them does not vary (its Sharpe
            ratio is undefined).
        RLBridgeError: ``n_boot`` below 1, ``block`` below 1, or ``confidence`` outside
            (0, 1).
    """
    import numpy as np

    if int(n_boot) != n_boot or n_boot < 1:
        raise RLBridgeError(f"n_boot must be a whole number of at least 1, not {n_boot!r}")
    if not 0.0 < confidence < 1.0:
        raise RLBridgeError(f"confidence must be between 0 and 1, not {confidence!r}")
    a, b = _paired(strategy_returns, baseline_returns)
    n = len(a)
    mean_block = float(default_block(n) if block is None else block)
    if not math.isfinite(mean_block) or mean_block < 1.0:
        raise RLBridgeError(f"the mean block length must be at least 1 bar, not {block!r}")
    if n < 2 * mean_block or n < 3:
        raise DataError(f"{n} paired returns are too few for a block bootstrap with mean "
                        f"block length {mean_block:g}: at least {max(3, math.ceil(2 * mean_block))}"
                        " are needed")
    for name, series in (("strategy", a), ("baseline", b)):
        if float(np.ptp(series)) <= 1e-12 * float(np.max(np.abs(series))):
            raise DataError(f"the {name} returns do not vary: its Sharpe ratio is undefined")
    scale = math.sqrt(periods_per_year)
    difference = float(_sharpe(a[None, :], scale)[0] - _sharpe(b[None, :], scale)[0])
    rng = np.random.default_rng(seed)
    draws = np.empty(int(n_boot))
    rows = max(1, _CHUNK_CELLS // n)
    for lo in range(0, int(n_boot), rows):
        index = stationary_bootstrap_indices(n, min(rows, int(n_boot) - lo), mean_block, rng)
        draws[lo:lo + len(index)] = _sharpe(a[index], scale) - _sharpe(b[index], scale)
    draws = draws[np.isfinite(draws)]  # a resample of identical returns has no Sharpe ratio
    if len(draws) == 0:
        raise DataError("no bootstrap resample has a defined Sharpe ratio; the returns barely "
                        "vary")
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(draws, [tail, 1.0 - tail])
    exceed = int(np.count_nonzero(draws - difference >= difference))
    return SharpeComparison(
        difference=difference, low=float(low), high=float(high),
        p_value=(1.0 + exceed) / (1.0 + len(draws)), n_boot=len(draws), block=mean_block,
        confidence=float(confidence), observations=n)


def stationary_bootstrap_indices(n: int, n_boot: int, block: float,
                                 rng: np.random.Generator) -> np.ndarray:
    """``[n_boot, n]`` indices into a series of length ``n``: one stationary-bootstrap
    resample per row, blocks of geometric length with mean ``block``, wrapping around.

    Args:
        n: the length of the series.
        n_boot: the number of resamples.
        block: the mean block length (at least 1).
        rng: the random generator.
    """
    import numpy as np

    starts = rng.integers(0, n, size=(n_boot, n))
    new_block = rng.random((n_boot, n)) < 1.0 / block
    new_block[:, 0] = True
    steps = np.arange(n)
    # the column where each position's block began, and the index it started at
    began = np.maximum.accumulate(np.where(new_block, steps, 0), axis=1)
    first = np.take_along_axis(starts, began, axis=1)
    return (first + (steps - began)) % n


def _sharpe(returns: np.ndarray, scale: float) -> np.ndarray:
    """Annualised Sharpe ratio of each row (NaN where a row does not vary)."""
    import numpy as np

    mean = returns.mean(axis=1)
    deviation = returns.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = mean / deviation * scale
    tiny = 1e-12 * np.abs(returns).max(axis=1)
    return np.where(deviation > tiny, ratio, np.nan)


def _paired(strategy: Any, baseline: Any) -> tuple[np.ndarray, np.ndarray]:
    """The two return series as float arrays, checked to pair up bar by bar."""
    import numpy as np
    import pandas as pd

    if isinstance(strategy, pd.Series) and isinstance(baseline, pd.Series) \
            and isinstance(strategy.index, pd.DatetimeIndex) \
            and isinstance(baseline.index, pd.DatetimeIndex) \
            and not strategy.index.equals(baseline.index):
        if len(strategy) != len(baseline):
            raise DataError(f"the strategy has {len(strategy)} returns and the baseline "
                            f"{len(baseline)}; align them on the same bars")
        at = int(np.flatnonzero(strategy.index != baseline.index)[0])
        raise DataError(f"the strategy and baseline returns are on different bars: the "
                        f"{_ordinal(at + 1)} is {strategy.index[at]} for the strategy and "
                        f"{baseline.index[at]} for the baseline; align them on the same bars")
    arrays = []
    for name, series in (("strategy", strategy), ("baseline", baseline)):
        values = np.asarray(series, dtype=np.float64)
        if values.ndim != 1:
            raise DataError(f"the {name} returns must be one series, got shape {values.shape}")
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            where = series.index[bad[0]] if isinstance(series, pd.Series) else f"position {bad[0]}"
            raise DataError(f"the {name} return at {where} is {values[bad[0]]}; returns must "
                            "be finite (drop the first bar of a pct_change)")
        arrays.append(values)
    if len(arrays[0]) != len(arrays[1]):
        raise DataError(f"the strategy has {len(arrays[0])} returns and the baseline "
                        f"{len(arrays[1])}; align them on the same bars")
    return arrays[0], arrays[1]


def _ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"
