"""Performance of an equity curve: returns, risk, drawdowns, turnover and costs.

The return and risk statistics come from empyrical (``empyrical-reloaded``) on the simple
returns of the curve, ``equity.pct_change()``; this module adds what empyrical does not have
(drawdown durations, turnover and costs from fills) and the side-by-side table that
``rlbridge backtest`` and ``rlbridge demo`` print.

Conventions:

* Ratios whose denominator is zero are NaN, never infinite: Sharpe of a flat curve (or of one
  growing by the same return every bar), Sortino with no bar below the required return,
  Calmar with no drawdown.  A deviation below 1e-12 of the largest return is rounding residue
  and counts as zero.  Volatility and drawdown of a flat curve are 0.
* ``max_drawdown`` is negative or 0 (``-0.25`` is a 25% fall from the peak).
* ``risk_free`` is an annual rate, turned into a per-bar rate by compounding; it is both the
  Sharpe ratio's risk-free return and the Sortino ratio's required return.
* Without fills, ``turnover`` and ``costs_paid`` are NaN (unknown); with an empty list, 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import DataError, RLBridgeError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from .interfaces import Fill

__all__ = ["METRICS", "format_table", "performance"]

#: The keys of :func:`performance`, in the order :func:`format_table` prints them, with their
#: labels and formats (``pct``: percent, ``ratio``: two decimals, ``int``, ``days``, ``money``).
METRICS: dict[str, tuple[str, str]] = {
    "total_return": ("Total return", "pct"),
    "annual_return": ("Annual return", "pct"),
    "annual_volatility": ("Annual volatility", "pct"),
    "sharpe": ("Sharpe ratio", "ratio"),
    "sortino": ("Sortino ratio", "ratio"),
    "calmar": ("Calmar ratio", "ratio"),
    "max_drawdown": ("Max drawdown", "pct"),
    "max_drawdown_duration": ("Max drawdown duration (bars)", "int"),
    "max_drawdown_duration_days": ("Max drawdown duration (days)", "days"),
    "turnover": ("Turnover (per year)", "pct"),
    "costs_paid": ("Costs paid", "money"),
    "final_value": ("Final value", "money"),
    "bars": ("Bars", "int"),
}


def performance(
    equity: pd.Series,
    *,
    fills: Iterable[Fill] | pd.DataFrame | None = None,
    periods_per_year: int = 252,
    risk_free: float = 0.0,
) -> dict[str, float]:
    """The performance of one equity curve.

    Args:
        equity: portfolio value at each bar, oldest first; a DatetimeIndex gives the drawdown
            duration in days and is needed for turnover.  A DataFrame with a ``value`` column
            (:func:`rlbridge.runs.run_equity`) is accepted too.
        fills: the run's fills (:class:`~rlbridge.interfaces.Fill` objects, or the frame of
            :func:`rlbridge.runs.run_fills`), for turnover and costs.
        periods_per_year: bars per year (252 for daily bars).
        risk_free: annual risk-free rate.

    Returns:
        ``total_return``, ``annual_return`` (compound), ``annual_volatility``, ``sharpe``,
        ``sortino``, ``calmar``, ``max_drawdown`` (<= 0), ``max_drawdown_duration`` (the
        longest time below a previous peak, in bars, from the peak to the bar that regains it
        or to the last bar), ``max_drawdown_duration_days`` (the same in calendar days; NaN
        without a DatetimeIndex), ``turnover`` (one-way: half the value bought and sold, as a
        fraction of the portfolio value at the bar before each fill, per year), ``costs_paid``
        (sum of commissions; slippage is in the fill prices), ``final_value`` and ``bars``
        (number of equity values).  ``max_drawdown_duration`` and ``bars`` are ints, the
        rest floats, NaN where undefined (see the module notes).

    Raises:
        RLBridgeError: fewer than 2 equity values.
        DataError: a value that is not a positive finite number, an unsorted time index, or
            turnover asked of a curve without a time index.
    """
    import empyrical
    import numpy as np
    import pandas as pd

    if isinstance(equity, pd.DataFrame):
        if "value" not in equity.columns:
            raise DataError("an equity frame needs a 'value' column")
        equity = equity["value"]
    equity = pd.Series(equity, dtype="float64", copy=False)
    if len(equity) < 2:
        raise RLBridgeError(f"need at least 2 equity values to measure performance, "
                            f"got {len(equity)}")
    values = equity.to_numpy()
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        at = int(bad.argmax())
        raise DataError(f"equity must be a positive finite number at every bar; "
                        f"it is {values[at]} at {equity.index[at]}")
    timed = isinstance(equity.index, pd.DatetimeIndex)
    if timed and not (equity.index.is_monotonic_increasing and equity.index.is_unique):
        raise DataError("the equity curve's times must be sorted and unique")

    returns = equity.pct_change().iloc[1:]
    ppy = periods_per_year
    rf = (1.0 + risk_free) ** (1.0 / ppy) - 1.0
    # a curve compounding the same return every bar differs from it by rounding residue only
    # (about 1e-18): a deviation that small is zero, not a denominator giving a ratio of 1e14
    excess = returns.to_numpy() - rf
    tiny = 1e-12 * float(np.max(np.abs(excess)))
    steady = float(np.ptp(excess)) <= tiny
    no_downside = float(empyrical.downside_risk(returns, required_return=rf,
                                                annualization=ppy)) <= tiny * math.sqrt(ppy)
    bars_long, days_long = _drawdown_durations(values, equity.index if timed else None)
    out = {
        "total_return": float(empyrical.cum_returns_final(returns)),
        "annual_return": float(empyrical.annual_return(returns, annualization=ppy)),
        "annual_volatility": float(empyrical.annual_volatility(returns, annualization=ppy)),
        "sharpe": _ratio(empyrical.sharpe_ratio(returns, risk_free=rf, annualization=ppy),
                         steady),
        "sortino": _ratio(empyrical.sortino_ratio(returns, required_return=rf,
                                                  annualization=ppy), no_downside),
        "calmar": _ratio(empyrical.calmar_ratio(returns, annualization=ppy)),
        "max_drawdown": float(empyrical.max_drawdown(returns)),
        "max_drawdown_duration": bars_long,
        "max_drawdown_duration_days": days_long,
        "turnover": math.nan,
        "costs_paid": math.nan,
        "final_value": float(values[-1]),
        "bars": len(values),
    }
    if fills is not None:
        out["turnover"], out["costs_paid"] = _trading(equity, fills, len(returns) / ppy)
    return out


def _ratio(value: Any, undefined: bool = False) -> float:
    value = float(value)
    return value if math.isfinite(value) and not undefined else math.nan


def _drawdown_durations(values: Any, index: pd.DatetimeIndex | None) -> tuple[int, float]:
    """The longest stretch from a peak to the bar regaining it (or the last bar): bars, days."""
    import numpy as np

    positions = np.arange(len(values))
    peak = np.maximum.accumulate(values)
    at_peak = values >= peak
    last_peak = np.maximum.accumulate(np.where(at_peak, positions, 0))
    # bar t ends (or extends) a stretch when bar t-1 was below its peak
    ends = np.flatnonzero(~at_peak[:-1]) + 1
    if len(ends) == 0:
        return 0, (0.0 if index is not None else math.nan)
    starts = last_peak[ends - 1]
    bars = int((ends - starts).max())
    if index is None:
        return bars, math.nan
    span = (index.asi8[ends] - index.asi8[starts]) / (86_400 * 10**9)
    return bars, float(span.max())


def _trading(equity: pd.Series, fills: Iterable[Fill] | pd.DataFrame,
             years: float) -> tuple[float, float]:
    """(one-way turnover per year, commissions paid) of ``fills`` against ``equity``."""
    import numpy as np
    import pandas as pd

    if isinstance(fills, pd.DataFrame):
        missing = [c for c in ("quantity", "price", "commission") if c not in fills.columns]
        if missing:
            raise DataError(f"the fills frame has no column {', '.join(missing)}")
        times = fills["time"] if "time" in fills.columns else fills.index
        quantity = fills["quantity"].to_numpy(dtype=np.float64)
        price = fills["price"].to_numpy(dtype=np.float64)
        commission = fills["commission"].to_numpy(dtype=np.float64)
    else:
        rows = list(fills)
        times = [f.time for f in rows]
        quantity = np.array([f.quantity for f in rows], dtype=np.float64)
        price = np.array([f.price for f in rows], dtype=np.float64)
        commission = np.array([f.commission for f in rows], dtype=np.float64)
    if len(quantity) == 0:
        return 0.0, 0.0
    if not isinstance(equity.index, pd.DatetimeIndex):
        raise DataError("turnover needs an equity curve indexed by time (a DatetimeIndex)")
    daily = equity.index.tz is None
    stamps = _on_clock(times, daily)
    ticks = equity.index.asi8 if daily else equity.index.tz_convert("UTC").asi8
    # the portfolio value when the trade was decided: the last value strictly before the fill
    before = np.searchsorted(ticks, stamps, side="left") - 1
    base = equity.to_numpy()[np.clip(before, 0, None)]
    one_way = 0.5 * float(np.sum(np.abs(quantity * price) / base))
    return one_way / years, float(commission.sum())


def _on_clock(times: Any, daily: bool) -> np.ndarray:
    """Fill times as epoch ns on the equity's clock.

    Against daily bars (tz-naive session dates) a fill belongs to the session of its date as
    reported, in its own time zone; against intraday bars it is an instant (naive means UTC).
    """
    import numpy as np
    import pandas as pd

    try:
        index = pd.DatetimeIndex(times)
    except (TypeError, ValueError):  # times in several zones: one at a time
        return np.array([_on_clock([t], daily)[0] for t in times], dtype=np.int64)
    if daily:
        return (index.tz_localize(None) if index.tz is not None else index).normalize().asi8
    return (index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")).asi8


# ---------------------------------------------------------------------- the table
def format_table(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """Several strategies' metrics side by side, as plain text.

    Args:
        rows: strategy name -> its metrics (as :func:`performance` returns them).  Columns are
            the strategies in this order; rows are the metrics of :data:`METRICS` that any
            strategy has, in that order, then any other metric in order of appearance.

    Returns:
        The table, one line per metric under a header line, without a trailing newline.
        Fractions of :data:`METRICS` marked ``pct`` print as percentages (``12.34%``), ratios
        with two decimals, money with thousands separators; NaN or a missing metric prints
        as ``n/a``.
    """
    names = list(rows)
    keys = [k for k in METRICS if any(k in m for m in rows.values())]
    for metrics in rows.values():
        keys += [k for k in metrics if k not in METRICS and k not in keys]
    labels = [METRICS[k][0] if k in METRICS else k.replace("_", " ").capitalize()
              for k in keys]
    cells = [[format_value(rows[n].get(k), METRICS.get(k, ("", ""))[1]) for n in names] for k in keys]
    first = max([len("Metric"), *map(len, labels)])
    widths = [max([len(n), *(len(row[j]) for row in cells)]) for j, n in enumerate(names)]
    lines = ["  ".join(["Metric".ljust(first), *(n.rjust(w) for n, w in zip(names, widths,
                                                                         strict=True))])]
    for label, row in zip(labels, cells, strict=True):
        lines.append("  ".join([label.ljust(first),
                                *(c.rjust(w) for c, w in zip(row, widths, strict=True))]))
    return "\n".join(line.rstrip() for line in lines)


def format_value(value: Any, fmt: str) -> str:
    """One metric as `format_table` shows it: `n/a` for a missing or NaN value."""
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return "n/a"
    if fmt == "pct":
        return f"{number * 100:.2f}%"
    if fmt == "ratio":
        return f"{number:.2f}"
    if fmt == "int" or (fmt == "" and number.is_integer() and abs(number) < 1e15):
        return f"{number:,.0f}"
    if fmt == "days":
        return f"{number:,.0f}"
    if fmt == "money":
        return f"{number:,.2f}"
    return f"{number:.4g}"
