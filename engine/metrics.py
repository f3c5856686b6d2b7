"""Performance of an equity curve: returns, risk, drawdowns, turnover, trades and costs.

The return and risk statistics come from empyrical (``empyrical-reloaded``) on the simple
returns of the curve, ``equity.pct_change()``; this module adds what empyrical does not have
(drawdown durations, turnover, round trips and costs from fills, metrics per calendar period)
and the side-by-side table that ``rlbridge backtest``, ``rlbridge compare`` and
``rlbridge demo`` print.

Conventions:

* Ratios whose denominator is zero are NaN, never infinite: Sharpe of a flat curve (or of one
  growing by the same return every bar), Sortino with no bar below the required return,
  Calmar with no drawdown.  A deviation below 1e-12 of the largest return is rounding residue
  and counts as zero.  Volatility and drawdown of a flat curve are 0.
* ``max_drawdown`` is negative or 0 (``-0.25`` is a 25% fall from the peak).
* ``risk_free`` is an annual rate, turned into a per-bar rate by compounding; it is both the
  Sharpe ratio's risk-free return and the Sortino ratio's required return.
* Without fills, ``turnover``, ``trades``, ``win_rate``, ``avg_trade_pnl`` and ``costs_paid``
  are NaN (unknown); with an empty list, turnover, trades and costs are 0 and the win rate
  and average trade are NaN (no trade to average).
* A **trade** is a round trip of one symbol from flat to flat: see :mod:`rlbridge.trades`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import DataError, RLBridgeError
from .trades import fill_table as _fill_table
from .trades import on_clock as _on_clock
from .trades import round_trips, trade_stats

if TYPE_CHECKING:
    import pandas as pd

    from .interfaces import Fill

__all__ = ["METRICS", "format_table", "format_value", "performance", "performance_by_period",
           "round_trips", "trade_stats"]

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
    "trades": ("Trades (round trips)", "int"),
    "win_rate": ("Win rate", "pct"),
    "avg_trade_pnl": ("Average trade P&L", "money"),
    "costs_paid": ("Costs paid", "money"),
    "slippage_paid": ("Slippage paid", "money"),
    "final_value": ("Final value", "money"),
    "bars": ("Bars", "int"),
}

_PERIODS = {"Y": "Y", "A": "Y", "YEAR": "Y", "M": "M", "MONTH": "M"}


def performance(
    equity: pd.Series,
    *,
    fills: Iterable[Fill] | pd.DataFrame | None = None,
    periods_per_year: int = 252,
    risk_free: float = 0.0,
    reference: pd.DataFrame | None = None,
) -> dict[str, float]:
    """The performance of one equity curve.

    Args:
        equity: portfolio value at each bar, oldest first; a DatetimeIndex gives the drawdown
            duration in days and is needed for turnover.  A DataFrame with a ``value`` column
            (:func:`rlbridge.runs.run_equity`) is accepted too.
        fills: the run's fills (:class:`~rlbridge.interfaces.Fill` objects, or the frame of
            :func:`rlbridge.runs.run_fills`), for turnover, trades and costs.
        periods_per_year: bars per year (252 for daily bars).
        risk_free: annual risk-free rate.
        reference: the price each fill is measured against for slippage, usually the open of
            the bar it filled at: a frame indexed by bar time with one column per symbol.
            Every fill's time and symbol must be in it.

    Returns:
        ``total_return``, ``annual_return`` (compound), ``annual_volatility``, ``sharpe``,
        ``sortino``, ``calmar``, ``max_drawdown`` (<= 0), ``max_drawdown_duration`` (the
        longest time below a previous peak, in bars, from the peak to the bar that regains it
        or to the last bar), ``max_drawdown_duration_days`` (the same in calendar days; NaN
        without a DatetimeIndex), ``turnover`` (one-way: half the value bought and sold, as a
        fraction of the portfolio value at the bar before each fill, per year), ``trades``
        (closed round trips, see the module notes), ``win_rate`` (the fraction of them with a
        P&L above 0), ``avg_trade_pnl`` (their mean P&L, commissions included),
        ``costs_paid`` (commissions, plus the slippage when ``reference`` is given),
        ``slippage_paid`` (only with ``reference``: the sum of ``quantity * (price -
        reference)``, what the fill prices cost against the reference; negative when they
        were better), ``final_value`` and ``bars`` (number of equity values).
        ``max_drawdown_duration`` and ``bars`` are ints, ``trades`` an int with fills, the
        rest floats, NaN where undefined (see the module notes).

    Raises:
        RLBridgeError: fewer than 2 equity values.
        DataError: a value that is not a positive finite number, an unsorted time index,
            turnover asked of a curve without a time index, or a fill missing from
            ``reference``.
    """
    import empyrical
    import numpy as np

    equity = _equity_series(equity)
    values = equity.to_numpy()
    timed = _is_timed(equity)
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
    out: dict[str, Any] = {
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
        "trades": math.nan,
        "win_rate": math.nan,
        "avg_trade_pnl": math.nan,
        "costs_paid": math.nan,
        "final_value": float(values[-1]),
        "bars": len(values),
    }
    if fills is not None:
        table = _fill_table(fills)
        out["turnover"], out["costs_paid"] = _trading(equity, table, len(returns) / ppy)
        out.update(trade_stats(round_trips(table)))
        if reference is not None:
            slippage = _slippage(table, reference)
            out["slippage_paid"] = slippage
            out["costs_paid"] += slippage
    return out


def performance_by_period(
    equity: pd.Series,
    fills: Iterable[Fill] | pd.DataFrame | None = None,
    period: str = "Y",
    *,
    periods_per_year: int = 252,
    risk_free: float = 0.0,
) -> pd.DataFrame:
    """:func:`performance` of each calendar year (``period="Y"``) or month (``"M"``).

    A period's curve is its own bars preceded by the last bar of the period before, so its
    returns are exactly the bar returns dated in the period and the periods' total returns
    compound to the whole curve's (they equal ``empyrical.aggregate_returns``).  Its turnover
    and costs count the fills dated in it; its trades are the round trips that closed in it
    (opened whenever).  Annual figures of a month are annualised like those of the whole
    curve.  Bars of an intraday curve belong to their UTC date.

    Args:
        equity: portfolio value at each bar with a DatetimeIndex (or a ``value`` frame).
        fills: the run's fills, as for :func:`performance`.
        period: ``"Y"`` (calendar years) or ``"M"`` (calendar months).
        periods_per_year: bars per year.
        risk_free: annual risk-free rate.

    Returns:
        One row per period with at least one return, indexed by a ``PeriodIndex`` named
        ``period``; the columns are the keys of :func:`performance`.  A first period holding
        only the curve's first bar has no return and no row.

    Raises:
        RLBridgeError: an unknown ``period``, or fewer than 2 equity values.
        DataError: as for :func:`performance`, or an equity curve without a time index.
    """
    import numpy as np
    import pandas as pd

    freq = _PERIODS.get(str(period).upper())
    if freq is None:
        raise RLBridgeError(f"period must be 'Y' (calendar years) or 'M' (months), "
                            f"not {period!r}")
    equity = _equity_series(equity)
    if not _is_timed(equity):
        raise DataError("metrics per period need an equity curve indexed by time "
                        "(a DatetimeIndex)")
    labels = _clock_index(equity.index).to_period(freq)
    table = trips = None
    if fills is not None:
        daily = equity.index.tz is None
        table = _fill_table(fills)
        trips = round_trips(table)
        fill_labels = pd.DatetimeIndex(_on_clock(table["time"], daily)).to_period(freq)
        trip_labels = pd.DatetimeIndex(_on_clock(trips["closed"], daily)).to_period(freq)
    rows, names = [], []
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    ends = np.r_[starts[1:], len(equity)]
    for first, stop in zip(starts.tolist(), ends.tolist(), strict=True):
        lo = max(first - 1, 0)
        if stop - lo < 2:
            continue  # the curve's first bar alone: no return in this period
        label = labels[first]
        part = None if table is None else table[np.asarray(fill_labels == label)]
        row = performance(equity.iloc[lo:stop], fills=part, periods_per_year=periods_per_year,
                          risk_free=risk_free)
        if trips is not None:
            row.update(trade_stats(trips[np.asarray(trip_labels == label)]))
        rows.append(row)
        names.append(label)
    return pd.DataFrame(rows, index=pd.PeriodIndex(names, freq=freq, name="period"),
                        columns=[k for k in METRICS if k != "slippage_paid"])


# ---------------------------------------------------------------------- helpers
def _equity_series(equity: Any) -> pd.Series:
    """``equity`` as a float Series, checked: at least 2 positive finite values, sorted times."""
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
    if _is_timed(equity) and not (equity.index.is_monotonic_increasing
                                  and equity.index.is_unique):
        raise DataError("the equity curve's times must be sorted and unique")
    return equity


def _is_timed(equity: pd.Series) -> bool:
    import pandas as pd

    return isinstance(equity.index, pd.DatetimeIndex)


def _clock_index(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Session dates as they are; instants as UTC wall times (naive)."""
    return index if index.tz is None else index.tz_convert("UTC").tz_localize(None)


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


def _trading(equity: pd.Series, table: pd.DataFrame, years: float) -> tuple[float, float]:
    """(one-way turnover per year, commissions paid) of the fills ``table`` against ``equity``."""
    import numpy as np

    quantity = table["quantity"].to_numpy()
    if len(quantity) == 0:
        return 0.0, 0.0
    if not _is_timed(equity):
        raise DataError("turnover needs an equity curve indexed by time (a DatetimeIndex)")
    daily = equity.index.tz is None
    stamps = _on_clock(table["time"], daily)
    ticks = equity.index.asi8 if daily else equity.index.tz_convert("UTC").asi8
    # the portfolio value when the trade was decided: the last value strictly before the fill
    before = np.searchsorted(ticks, stamps, side="left") - 1
    base = equity.to_numpy()[np.clip(before, 0, None)]
    one_way = 0.5 * float(np.sum(np.abs(quantity * table["price"].to_numpy()) / base))
    return one_way / years, float(table["commission"].to_numpy().sum())


def _slippage(table: pd.DataFrame, reference: pd.DataFrame) -> float:
    """Sum of ``quantity * (price - reference price)`` over the fills (positive: a cost)."""
    import numpy as np
    import pandas as pd

    if len(table) == 0:
        return 0.0
    if not isinstance(reference, pd.DataFrame) or not isinstance(reference.index,
                                                                 pd.DatetimeIndex):
        raise DataError("reference prices must be a frame indexed by time, one column per "
                        "symbol")
    daily = reference.index.tz is None
    ticks = reference.index.asi8 if daily else reference.index.tz_convert("UTC").asi8
    stamps = _on_clock(table["time"], daily)
    row = np.searchsorted(ticks, stamps)
    found = (row < len(ticks)) & (ticks[np.clip(row, 0, len(ticks) - 1)] == stamps)
    column = reference.columns.get_indexer(table["symbol"])
    missing = np.flatnonzero(~found | (column < 0))
    if len(missing):
        at = int(missing[0])
        raise DataError(f"no reference price for the fill of {table['symbol'].iloc[at]} at "
                        f"{table['time'].iloc[at]}")
    prices = reference.to_numpy(dtype=np.float64)[row, column]
    if not np.isfinite(prices).all():
        at = int(np.flatnonzero(~np.isfinite(prices))[0])
        raise DataError(f"the reference price of {table['symbol'].iloc[at]} at "
                        f"{table['time'].iloc[at]} is {prices[at]}")
    quantity = table["quantity"].to_numpy()
    return float(np.sum(quantity * (table["price"].to_numpy() - prices)))


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
    cells = [[format_value(rows[n].get(k), METRICS.get(k, ("", ""))[1]) for n in names]
             for k in keys]
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
