"""Performance metrics against numbers computed independently with numpy, and the table."""

import math

import numpy as np
import pandas as pd
import pytest

from rlbridge.errors import DataError, RLBridgeError
from rlbridge.interfaces import Fill
from rlbridge.metrics import format_table, performance
from rlbridge.runs import record_equity, record_fills, run_equity, run_fills, start_run
from rlbridge.store import open_store

# 12 daily returns with ups and downs; the curve starts at 1,000
RETURNS = np.array([0.012, -0.004, 0.021, -0.017, 0.003, 0.0, 0.009, -0.026, 0.014, 0.006,
                    -0.008, 0.011])


def curve(returns=RETURNS, start=1_000.0, first="2021-01-04"):
    values = start * np.concatenate(([1.0], np.cumprod(1.0 + returns)))
    return pd.Series(values, index=pd.bdate_range(first, periods=len(values)))


def test_return_and_risk_match_numpy():
    equity = curve()
    m = performance(equity)
    r, n = RETURNS, len(RETURNS)
    total = np.prod(1 + r) - 1
    annual = (1 + total) ** (252 / n) - 1
    drawdown = (equity / equity.cummax() - 1).min()
    downside = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)) * np.sqrt(252)
    assert m["total_return"] == pytest.approx(total, rel=1e-12)
    assert m["annual_return"] == pytest.approx(annual, rel=1e-12)
    assert m["annual_volatility"] == pytest.approx(r.std(ddof=1) * np.sqrt(252), rel=1e-12)
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(252), rel=1e-12)
    # empyrical's Sharpe uses the sample deviation (ddof=1), not the population one
    assert m["sharpe"] != pytest.approx(r.mean() / r.std(ddof=0) * np.sqrt(252), rel=1e-3)
    assert m["sortino"] == pytest.approx(r.mean() * 252 / downside, rel=1e-12)
    assert m["max_drawdown"] == pytest.approx(drawdown, rel=1e-12)
    assert m["calmar"] == pytest.approx(annual / abs(drawdown), rel=1e-12)
    assert m["final_value"] == pytest.approx(1_000 * np.prod(1 + r), rel=1e-15)
    assert m["bars"] == 13
    assert math.isnan(m["turnover"]) and math.isnan(m["costs_paid"])  # no fills given


def test_annual_risk_free_rate_is_compounded_to_a_daily_one():
    m = performance(curve(), risk_free=0.05)
    excess = RETURNS - (1.05 ** (1 / 252) - 1)
    assert m["sharpe"] == pytest.approx(excess.mean() / excess.std(ddof=1) * np.sqrt(252),
                                        rel=1e-12)
    downside = np.sqrt(np.mean(np.minimum(excess, 0.0) ** 2)) * np.sqrt(252)
    assert m["sortino"] == pytest.approx(excess.mean() * 252 / downside, rel=1e-12)


def test_periods_per_year_scales_annual_figures():
    m = performance(curve(), periods_per_year=52)
    assert m["annual_volatility"] == pytest.approx(RETURNS.std(ddof=1) * np.sqrt(52), rel=1e-12)
    assert m["annual_return"] == pytest.approx(np.prod(1 + RETURNS) ** (52 / 12) - 1, rel=1e-12)


def test_drawdown_depth_and_duration_with_a_known_trough():
    # Thu 2 Jan .. Thu 9 Jan 2020: peak 120 on Fri, trough 90 on Mon, regained on Wed (130)
    index = pd.DatetimeIndex(["2020-01-02", "2020-01-03", "2020-01-06", "2020-01-07",
                              "2020-01-08", "2020-01-09"])
    m = performance(pd.Series([100.0, 120.0, 90.0, 100.0, 130.0, 125.0], index=index))
    assert m["max_drawdown"] == pytest.approx(90 / 120 - 1)  # -25%
    assert m["max_drawdown_duration"] == 3  # Fri -> Wed
    assert m["max_drawdown_duration_days"] == 5.0


def test_longest_drawdown_in_bars_and_in_days_can_differ():
    # A: Mon 6 -> Thu 9 Jan, 3 bars and 3 days; B: Fri 10 -> Tue 14, 2 bars over a weekend
    index = pd.DatetimeIndex(["2020-01-06", "2020-01-07", "2020-01-08", "2020-01-09",
                              "2020-01-10", "2020-01-13", "2020-01-14"])
    m = performance(pd.Series([10.0, 9.0, 9.5, 10.0, 11.0, 10.5, 11.0], index=index))
    assert m["max_drawdown_duration"] == 3
    assert m["max_drawdown_duration_days"] == 4.0
    assert m["max_drawdown"] == pytest.approx(-0.1)


def test_an_unrecovered_drawdown_runs_to_the_last_bar():
    index = pd.bdate_range("2020-01-06", periods=6)  # Mon .. next Mon
    m = performance(pd.Series([10.0, 12.0, 11.0, 11.5, 9.0, 11.9], index=index))
    assert m["max_drawdown_duration"] == 4  # peak on Tue, still below on the last bar
    assert m["max_drawdown_duration_days"] == 6.0
    assert m["max_drawdown"] == pytest.approx(9 / 12 - 1)


def test_without_a_time_index_durations_in_days_are_nan():
    m = performance(pd.Series([10.0, 8.0, 9.0, 10.0]))
    assert m["max_drawdown_duration"] == 3
    assert math.isnan(m["max_drawdown_duration_days"])


def test_a_flat_curve_has_zero_risk_and_undefined_ratios():
    m = performance(pd.Series(100_000.0, index=pd.bdate_range("2020-01-01", periods=30)))
    assert m["total_return"] == 0.0 and m["annual_return"] == 0.0
    assert m["annual_volatility"] == 0.0
    assert m["max_drawdown"] == 0.0
    assert m["max_drawdown_duration"] == 0 and m["max_drawdown_duration_days"] == 0.0
    for ratio in ("sharpe", "sortino", "calmar"):
        assert math.isnan(m[ratio]), ratio


def test_ratios_with_a_zero_denominator_are_nan_not_infinite():
    steady = performance(curve(np.full(20, 0.001)))  # same return every bar: no deviation
    assert math.isnan(steady["sharpe"]) and math.isnan(steady["sortino"])
    assert math.isnan(steady["calmar"])  # no drawdown
    assert steady["total_return"] == pytest.approx(1.001 ** 20 - 1, rel=1e-12)
    rising = performance(curve(np.array([0.01, 0.02, 0.005])))  # never a down bar
    assert math.isfinite(rising["sharpe"]) and math.isnan(rising["sortino"])


def test_too_short_or_bad_curves_are_refused():
    for values in ([], [100.0]):
        with pytest.raises(RLBridgeError, match=f"need at least 2 equity values to measure "
                                                f"performance, got {len(values)}"):
            performance(pd.Series(values, dtype=float))
    index = pd.bdate_range("2020-01-01", periods=3)
    with pytest.raises(DataError, match="it is nan at 2020-01-02"):
        performance(pd.Series([1.0, np.nan, 1.0], index=index))
    with pytest.raises(DataError, match="it is 0.0 at 2020-01-03"):
        performance(pd.Series([1.0, 0.5, 0.0], index=index))
    with pytest.raises(DataError, match="sorted and unique"):
        performance(pd.Series([1.0, 1.0, 1.0], index=index[::-1]))


# ---------------------------------------------------------------------- turnover and costs
def trading_case():
    """127 daily values (126 returns = half a year) growing by 1,000 a bar, and three fills."""
    index = pd.bdate_range("2021-01-04", periods=127)
    equity = pd.Series(100_000.0 + 1_000.0 * np.arange(127), index=index)
    fills = [Fill("SPY", 500, 100.0, 5.0, index[1]),      # decided on bar 0, worth 100,000
             Fill("SPY", -200, 110.0, 2.2, index[100]),   # decided on bar 99, worth 199,000
             Fill("AGG", 100, 50.0, 0.0, index[100])]
    one_way = 0.5 * (50_000 / 100_000 + 22_000 / 199_000 + 5_000 / 199_000)
    return equity, fills, one_way / 0.5


def test_turnover_and_costs_from_known_fills():
    equity, fills, expected = trading_case()
    m = performance(equity, fills=fills)
    assert m["turnover"] == pytest.approx(expected, rel=1e-12)
    assert m["costs_paid"] == pytest.approx(7.2, rel=1e-12)
    none = performance(equity, fills=[])
    assert none["turnover"] == 0.0 and none["costs_paid"] == 0.0


def test_fill_times_in_another_zone_are_matched_to_daily_bars():
    equity, fills, expected = trading_case()
    # a fill reported at 09:30 New York on the session date is still on that session
    shifted = [Fill(f.symbol, f.quantity, f.price, f.commission,
                    pd.Timestamp(f.time).tz_localize("America/New_York") + pd.Timedelta("9.5h"))
               for f in fills]
    assert performance(equity, fills=shifted)["turnover"] == pytest.approx(expected, rel=1e-12)
    mixed = [shifted[0], Fill("SPY", -200, 110.0, 2.2,
                              pd.Timestamp(fills[1].time).tz_localize("UTC") + pd.Timedelta("20h")),
             fills[2]]  # New York, UTC and naive dates in one list
    assert performance(equity, fills=mixed)["turnover"] == pytest.approx(expected, rel=1e-12)


def test_metrics_from_a_stored_run_equal_metrics_from_memory(tmp_path):
    equity, fills, expected = trading_case()
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        run = start_run(store, "backtest", {})
        record_equity(store, run, equity.index, equity.to_numpy(), np.zeros(len(equity)))
        record_fills(store, run, fills)
        stored = performance(run_equity(store, run.id), fills=run_fills(store, run.id))
    assert stored == performance(equity, fills=fills)
    assert stored["turnover"] == pytest.approx(expected, rel=1e-12)


def test_buy_and_hold_spy_on_the_sample_data(sample_bars):
    close = sample_bars.frame("SPY")["close"]
    m = performance(100.0 * close)
    assert m["total_return"] == pytest.approx(close.iloc[-1] / close.iloc[0] - 1, rel=1e-12)
    peak = close.cummax()
    trough = (close / peak - 1).idxmin()
    assert trough == pd.Timestamp("2020-03-23")  # the COVID-19 low
    assert m["max_drawdown"] == pytest.approx(close[trough] / peak[trough] - 1, rel=1e-12)
    top = close.loc[:trough].idxmax()
    regained = close.loc[trough:][close.loc[trough:] >= close[top]].index[0]
    assert m["max_drawdown_duration"] == close.index.get_loc(regained) - close.index.get_loc(top)
    assert m["max_drawdown_duration_days"] == (regained - top).days


# ---------------------------------------------------------------------- the table
def test_format_table_puts_strategies_side_by_side():
    rows = {
        "rl_allocation": {"total_return": 0.1234, "sharpe": 1.5, "max_drawdown": -0.0821,
                          "max_drawdown_duration": 41, "turnover": 2.5,
                          "costs_paid": 1234.5, "final_value": 112_340.0},
        "buy_and_hold": {"total_return": -0.05, "sharpe": float("nan"), "max_drawdown": -0.3,
                         "max_drawdown_duration": 120, "final_value": 95_000.0, "hit_rate": 0.5},
    }
    assert format_table(rows) == "\n".join([
        "Metric                        rl_allocation  buy_and_hold",
        "Total return                         12.34%        -5.00%",
        "Sharpe ratio                           1.50           n/a",
        "Max drawdown                         -8.21%       -30.00%",
        "Max drawdown duration (bars)             41           120",
        "Turnover (per year)                 250.00%           n/a",
        "Costs paid                         1,234.50           n/a",
        "Final value                      112,340.00     95,000.00",
        "Hit rate                                n/a           0.5",
    ])


def test_format_table_of_full_performance_dicts():
    equity, fills, _ = trading_case()
    table = format_table({"a": performance(equity, fills=fills), "b": performance(equity)})
    lines = table.splitlines()
    assert len(lines) == 14  # header + every metric
    assert lines[1].split() == ["Total", "return", "126.00%", "126.00%"]
    assert lines[-1].split() == ["Bars", "127", "127"]
    assert lines[-4].split()[-2:] == ["63.57%", "n/a"]  # turnover, unknown without fills
