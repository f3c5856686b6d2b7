"""The array kernels of the feature transforms: returns, window sums and moments, averages.

They work on ``[T, N]`` float64 arrays and are causal to the bit: the value at row t is
computed from rows 0..t only, by the same floating-point operations whatever comes after row t
(and however long the series is), so a feature computed live on the bars up to now equals the
one the environment precomputed.  The rolling ones are also start-independent to the bit: the
value at row t reads the window's rows only, through a fixed tree of operations
(``O(T log window)``), so :meth:`rlbridge.features.FeaturePipeline.compute_tail` can compute a
finite-memory transform on the last rows of the bars alone.  The exponential ones
(:func:`ema`, :func:`wilder_mean`) depend on every earlier row.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .interfaces import Bars

__all__ = [
    "bar_log_returns",
    "smooth",
    "ema",
    "level_sma_ratio",
    "log_returns",
    "rolling_mean",
    "rolling_moments",
    "rolling_std",
    "rolling_sum",
    "wilder_mean",
]

def log_returns(prices: np.ndarray) -> np.ndarray:
    """``log p[t] - log p[t-1]`` per column of ``[T, N]`` prices; row 0 is NaN."""
    logs = np.log(np.asarray(prices, dtype=np.float64))
    out = np.empty_like(logs)
    out[:1] = np.nan
    np.subtract(logs[1:], logs[:-1], out=out[1:])
    return out


_RETURNS: weakref.WeakKeyDictionary[Bars, dict[str, np.ndarray]] = weakref.WeakKeyDictionary()


def bar_log_returns(bars: Bars, field: str = "close") -> np.ndarray:
    """:func:`log_returns` of one field of ``bars``, computed once per panel (read-only).

    Several transforms of a pipeline read the log close returns; a ``Bars`` never changes,
    so they share one array.
    """
    cached = _RETURNS.setdefault(bars, {})
    if field not in cached:
        returns = log_returns(bars.field(field))
        returns.flags.writeable = False
        cached[field] = returns
    return cached[field]


def _first_row(x: np.ndarray) -> int:
    """The first row with no NaN (leading NaN rows are a lookback not yet filled)."""
    rows = np.flatnonzero(np.isfinite(x).all(axis=1))
    return int(rows[0]) if rows.size else len(x)


_States = tuple[np.ndarray, ...]


def _window_reduce(leaf: _States, window: int,
                   join: Callable[[_States, _States], _States]) -> _States:
    """Fold every run of ``window`` consecutive rows, by a fixed tree of ``join`` calls.

    ``leaf`` holds the state of each one-row block (arrays of ``m >= window`` rows), and
    ``join(recent, older)`` gives the state of the block ``older`` followed by ``recent``.
    Blocks of 1, 2, 4, ... rows are built by doubling; a window is then joined from the blocks
    of the binary digits of ``window``, the most recent first.  The result has
    ``m - window + 1`` rows, row ``i`` for the window ending at row ``i + window - 1``, each
    computed by the same operations on the same values whatever rows come before its window:
    a series cut anywhere gives the same bits.  ``O(m log window)``.
    """
    count = len(leaf[0]) - window + 1
    digits: list[tuple[int, _States]] = []
    level, size = leaf, 1
    while True:
        if window & size:
            digits.append((size, level))
        if 2 * size > window:
            break
        # row j of the next level: the block of rows j .. j + 2 * size - 1
        level = join(tuple(a[size:] for a in level), tuple(a[:-size] for a in level))
        size *= 2
    result: _States | None = None
    gap = 0  # rows between the window's last row and the current block's last row
    for size, states in reversed(digits):
        first = window - gap - size
        block = tuple(a[first:first + count] for a in states)
        result = block if result is None else join(result, block)
        gap += size
    assert result is not None
    return result


def _add(recent: _States, older: _States) -> _States:
    return (recent[0] + older[0],)


def rolling_sum(x: np.ndarray, window: int) -> np.ndarray:
    """Sum of the last ``window`` rows of ``[T, N]`` ``x`` at each row.

    Each sum is a fixed pairwise tree of the window's values (blocks of 1, 2, 4, ... rows, see
    :func:`_window_reduce`): the sum at row t depends on rows ``t - window + 1 .. t`` only, to
    the bit, so the same rows cut out of a longer series give the same sums.  ``O(T log
    window)``, with no cancellation (prefix sums would carry rounding from the series' start).

    Leading NaN rows are skipped: the first sum is at row ``s + window - 1`` where ``s`` is
    the first row without NaN; earlier rows are NaN.

    Raises:
        ValueError: ``window`` is less than 1.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    x = np.asarray(x, dtype=np.float64)
    out = np.full(x.shape, np.nan)
    s = _first_row(x)
    if s + window > len(x):
        return out
    out[s + window - 1:] = _window_reduce((x[s:],), window, _add)[0]
    return out


def level_sma_ratio(returns: np.ndarray, window: int) -> np.ndarray:
    """``level / SMA(level, window) - 1`` of a level whose log changes are ``returns``.

    ``returns[t]`` (``[T, N]``) is ``log(level[t] / level[t-1])``; row 0 is not read.  The
    level is never formed: each window sums its levels relative to its last one,
    ``exp(-(returns[t-k+1] + ... + returns[t]))`` for ``k = 0 .. window - 1``, so the value at
    row t depends on ``returns[t - window + 2 .. t]`` only, to the bit (a level built by a
    cumulative sum from row 0 would carry that sum's rounding).  The first ``window - 1`` rows
    are NaN.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    growth = np.array(returns, dtype=np.float64)
    growth[:1] = 0.0  # the change into row 0: never part of a window's relative levels
    out = np.full(growth.shape, np.nan)
    if window > len(growth):
        return out
    total = _window_reduce((np.ones(growth.shape), growth), window, _join_levels)[0]
    out[window - 1:] = window / total - 1.0
    return out


def _join_levels(recent: _States, older: _States) -> _States:
    """(sum of levels over the block's last level, log growth over the block), two blocks.

    The older block's levels are rescaled by ``exp(-growth of the recent block)``: only a
    recent block's growth is ever used, so the change into a series' first row never is.
    """
    return (recent[0] + np.exp(-recent[1]) * older[0], recent[1] + older[1])


def rolling_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` rows (see :func:`rolling_sum` for leading NaN rows)."""
    return rolling_sum(x, window) / window


def rolling_std(x: np.ndarray, window: int, ddof: int = 1) -> np.ndarray:
    """Standard deviation of the last ``window`` rows (sample, ``ddof=1``, by default)."""
    return np.sqrt(rolling_moments(x, window, ddof)[0])


def rolling_moments(x: np.ndarray, window: int,
                    ddof: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(variance, mean, mean of squares)`` of the last ``window`` rows at each row."""
    x = np.asarray(x, dtype=np.float64)
    mean = rolling_sum(x, window) / window
    meansq = rolling_sum(x * x, window) / window
    var = (meansq - mean * mean) * (window / (window - ddof))
    np.maximum(var, 0.0, out=var, where=~np.isnan(var))  # rounding can dip below zero
    return var, mean, meansq


def smooth(x: np.ndarray, alpha: float, last: np.ndarray) -> np.ndarray:
    """``e[t] = alpha * x[t] + (1 - alpha) * e[t-1]`` for the rows of ``x``, after ``last``.

    One row after the other (scipy's ``lfilter``, in C), so the value at a row is the same
    bits whether the rows before it were smoothed in this call or in an earlier one that
    ended with ``last``: a live run carries ``last`` from one bar to the next.
    """
    from scipy.signal import lfilter

    beta = 1.0 - alpha
    if len(x) == 0:
        return np.empty_like(x)
    out, _ = lfilter([alpha], [1.0, -beta], x, axis=0, zi=(beta * last)[None, ...])
    return np.asarray(out, dtype=np.float64)


def _recurse(x: np.ndarray, alpha: float, start: int, seed: np.ndarray) -> np.ndarray:
    """``e[start] = seed``; ``e[t] = alpha * x[t] + (1 - alpha) * e[t-1]`` after; NaN before."""
    out = np.full(x.shape, np.nan)
    if start >= len(x):
        return out
    out[start] = seed
    out[start + 1:] = smooth(x[start + 1:], alpha, out[start])
    return out


def ema(x: np.ndarray, alpha: float) -> np.ndarray:
    """Exponential moving average ``e[t] = alpha * x[t] + (1 - alpha) * e[t-1]``.

    Starts at the first row without NaN with ``e = x`` there (a span ``s`` is
    ``alpha = 2 / (s + 1)``); pandas' ``ewm(alpha=alpha, adjust=False).mean()`` computes the
    same recursion.  :func:`smooth` continues it on later rows.
    """
    x = np.asarray(x, dtype=np.float64)
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    s = _first_row(x)
    if s >= len(x):
        return np.full(x.shape, np.nan)
    return _recurse(x, alpha, s, x[s])


def wilder_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Wilder's smoothing: the mean of the first ``window`` rows, then ``alpha = 1 / window``.

    The first value is at row ``s + window - 1`` (``s``: the first row without NaN);
    :func:`smooth` with ``alpha = 1 / window`` continues it on later rows.
    """
    x = np.asarray(x, dtype=np.float64)
    s = _first_row(x)
    first = s + window - 1
    if first >= len(x):
        return np.full(x.shape, np.nan)
    return _recurse(x, 1.0 / window, first, x[s:first + 1].mean(axis=0))
