"""Performance metrics against numbers computed independently with numpy, round trips against a
plain loop, metrics per period against empyrical, and the table."""

import math
from pathlib import Path

import empyrical
import numpy as np
import pandas as pd
import pytest

from rlbridge.backtesting import backtest
from rlbridge.config import config_from_mapping
from rlbridge.errors import DataError, RLBridgeError
from rlbridge.interfaces import Fill
from rlbridge.manager import make_plugin_manager
from rlbridge.metrics import (
    METRICS,
    format_table,
    performance,
    performance_by_period,
    round_trips,
    trade_stats,
)
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
    assert len(lines) == 1 + len(METRICS) - 1  # header + every metric but slippage (no reference)
    assert lines[1].split() == ["Total", "return", "126.00%", "126.00%"]
    assert lines[-1].split() == ["Bars", "127", "127"]
    by_label = {line[:29].strip(): line[29:].split() for line in lines[1:]}
    assert by_label["Turnover (per year)"] == ["63.57%", "n/a"]  # unknown without fills
    assert by_label["Trades (round trips)"] == ["0", "n/a"]  # SPY 500 - 200 and AGG: both open
    assert by_label["Win rate"] == ["n/a", "n/a"]
    assert by_label["Costs paid"] == ["7.20", "n/a"]


# ---------------------------------------------------------------------- round trips
D = pd.bdate_range("2021-01-04", periods=8)  # Mon 4 .. Wed 13 Jan 2021
# AAA: two buys, one sale back to flat: +300 - 100 - 120 - 4 commissions = +76
# BBB: long 5, sell 8 (3 short): that fill closes the long (5 of its 8 shares, so 5/8 of its
#      commission) and opens a short that a buy of 3 closes:
#      long  5 @ 100 -> 90: 450 - 500 - 0.5 - 0.5 = -51.0
#      short 3 @ 90 -> 80: 270 - 240 - 0.3 - 0.3 = +29.4
# CCC: bought, never sold: still open, not a trade
ROUND_TRIP_FILLS = [
    Fill("AAA", 10, 10.0, 1.0, D[1]), Fill("BBB", 5, 100.0, 0.5, D[1]),
    Fill("AAA", 10, 12.0, 1.0, D[2]), Fill("BBB", -8, 90.0, 0.8, D[3]),
    Fill("AAA", -20, 15.0, 2.0, D[4]), Fill("BBB", 3, 80.0, 0.3, D[5]),
    Fill("CCC", 1, 50.0, 0.0, D[6]),
]


def test_round_trips_by_hand_with_a_fill_crossing_zero():
    trips = round_trips(ROUND_TRIP_FILLS)
    assert trips["symbol"].tolist() == ["BBB", "AAA", "BBB"]  # in the order they closed
    assert trips["opened"].tolist() == [D[1], D[1], D[3]]
    assert trips["closed"].tolist() == [D[3], D[4], D[5]]
    assert trips["pnl"].to_numpy() == pytest.approx([-51.0, 76.0, 29.4], abs=1e-9)
    assert trips["commission"].to_numpy() == pytest.approx([1.0, 4.0, 0.6], abs=1e-12)
    m = performance(pd.Series(1_000.0 + np.arange(8.0), index=D), fills=ROUND_TRIP_FILLS)
    assert m["trades"] == 3
    assert m["win_rate"] == pytest.approx(2 / 3)
    assert m["avg_trade_pnl"] == pytest.approx((76.0 - 51.0 + 29.4) / 3)
    assert m["costs_paid"] == pytest.approx(5.6)  # every commission, open trade's included
    assert "slippage_paid" not in m


def test_round_trips_do_not_depend_on_how_symbols_interleave():
    by_symbol = sorted(ROUND_TRIP_FILLS, key=lambda f: f.symbol)
    pd.testing.assert_frame_equal(round_trips(by_symbol), round_trips(ROUND_TRIP_FILLS))
    frame = pd.DataFrame([(f.symbol, f.quantity, f.price, f.commission)
                          for f in ROUND_TRIP_FILLS],
                         index=pd.DatetimeIndex([f.time for f in ROUND_TRIP_FILLS]),
                         columns=["symbol", "quantity", "price", "commission"])
    assert round_trips(frame)["pnl"].tolist() == round_trips(ROUND_TRIP_FILLS)["pnl"].tolist()


def test_trades_without_fills_are_unknown_and_with_none_are_zero():
    equity = pd.Series([100.0, 101.0, 102.0], index=D[:3])
    unknown = performance(equity)
    assert math.isnan(unknown["trades"]) and math.isnan(unknown["win_rate"])
    none = performance(equity, fills=[])
    assert none["trades"] == 0 and math.isnan(none["win_rate"])
    assert math.isnan(none["avg_trade_pnl"])
    assert trade_stats(round_trips([])) == {"trades": 0, "win_rate": none["win_rate"],
                                            "avg_trade_pnl": none["avg_trade_pnl"]}


def plain_round_trips(fills):
    """Round trips with a loop over the fills, one symbol at a time: the definition, spelt out."""
    done = []
    for symbol in dict.fromkeys(f.symbol for f in fills):
        position, cash, fees, opened = 0.0, 0.0, 0.0, None
        for f in (f for f in fills if f.symbol == symbol):
            quantity, commission = f.quantity, f.commission
            if position != 0 and (position + quantity) * position < 0:  # crosses zero
                closing = -position
                part = commission * abs(closing) / abs(quantity)
                cash += -closing * f.price - part
                done.append((symbol, opened, f.time, cash, fees + part))
                quantity, commission = quantity - closing, commission - part
                position, cash, fees, opened = 0.0, 0.0, 0.0, None
            if position == 0:
                opened = f.time
            position += quantity
            cash += -quantity * f.price - commission
            fees += commission
            if position == 0:
                done.append((symbol, opened, f.time, cash, fees))
                cash, fees, opened = 0.0, 0.0, None
    return sorted(done, key=lambda t: t[2])


def test_round_trips_of_a_real_backtest_match_a_plain_loop():
    pm = make_plugin_manager(entrypoints=False, warn=False)
    config = config_from_mapping({
        "data": {"feed": "sample", "symbols": ["SPY", "AGG", "XLK"], "start": "2018-10-01",
                 "end": "2020-09-30", "adjust": False},
        "costs": {"model": "percent", "rate": 0.001},
        "strategy": {"name": "ma_crossover", "fast": 10, "slow": 30},
        "backtest": {"engine": "native", "cash": 100_000, "start": "2019-01-02",
                     "end": "2020-09-30"}}, pm=pm)
    result = backtest(config, pm=pm, record=False)
    expected = plain_round_trips(result.fills)
    trips = round_trips(result.fills)
    assert len(expected) > 10  # the crossover trades in and out of each symbol
    assert len(trips) == len(expected) == result.metrics["trades"]
    for row, (symbol, opened, closed, pnl, fees) in zip(trips.itertuples(), expected,
                                                        strict=True):
        assert (row.symbol, row.opened, row.closed) == (symbol, opened, closed)
        assert row.pnl == pytest.approx(pnl, rel=1e-9)
        assert row.commission == pytest.approx(fees, rel=1e-12)
    pnl = np.array([t[3] for t in expected])
    assert result.metrics["win_rate"] == pytest.approx((pnl > 0).mean(), rel=1e-12)
    assert result.metrics["avg_trade_pnl"] == pytest.approx(pnl.mean(), rel=1e-9)


# ---------------------------------------------------------------------- slippage
def test_slippage_against_reference_prices_joins_the_costs():
    equity = pd.Series(1_000.0 + np.arange(8.0), index=D)
    opens = pd.DataFrame({"AAA": 9.0, "BBB": 95.0, "CCC": 50.0}, index=D)
    m = performance(equity, fills=ROUND_TRIP_FILLS, reference=opens)
    # AAA 10*(10-9) + 10*(12-9) - 20*(15-9) = -80 (sold above the open: a gain);
    # BBB 5*(100-95) - 8*(90-95) + 3*(80-95) = 20; CCC 0
    assert m["slippage_paid"] == pytest.approx(-60.0)
    assert m["costs_paid"] == pytest.approx(5.6 - 60.0)
    with pytest.raises(DataError, match=r"no reference price for the fill of CCC at "
                                        r"2021-01-12 00:00:00"):
        performance(equity, fills=ROUND_TRIP_FILLS, reference=opens.drop(columns="CCC"))
    with pytest.raises(DataError, match="no reference price for the fill of AAA at 2021-01-05"):
        performance(equity, fills=ROUND_TRIP_FILLS, reference=opens.iloc[2:])


# ---------------------------------------------------------------------- per period
def test_per_year_and_month_returns_equal_empyricals_aggregates(sample_bars):
    close = sample_bars.frame("SPY")["close"]
    equity = 100.0 * close
    returns = equity.pct_change().iloc[1:]
    years = performance_by_period(equity, period="Y")
    assert [str(p) for p in years.index] == ["2019", "2020"]
    np.testing.assert_allclose(years["total_return"].to_numpy(),
                               empyrical.aggregate_returns(returns, "yearly").to_numpy(),
                               rtol=1e-12)
    assert years["bars"].tolist() == [252, 254]  # 2020 starts from the last close of 2019
    assert years["final_value"].tolist() == [equity["2019-12-31"], equity.iloc[-1]]
    months = performance_by_period(equity, None, "M")
    assert len(months) == 24 and str(months.index[2]) == "2019-03"
    np.testing.assert_allclose(months["total_return"].to_numpy(),
                               empyrical.aggregate_returns(returns, "monthly").to_numpy(),
                               rtol=1e-12)
    assert np.prod(1 + months["total_return"]) - 1 == pytest.approx(
        performance(equity)["total_return"], rel=1e-12)
    march = months.loc[pd.Period("2020-03", "M")]
    assert march["max_drawdown"] == pytest.approx(
        performance(equity["2020-02-28":"2020-03-31"])["max_drawdown"], rel=1e-12)
    assert list(years.columns) == [k for k in METRICS if k != "slippage_paid"]


def test_per_period_trades_and_costs_add_up_to_the_whole():
    days = pd.bdate_range("2021-01-04", "2021-03-31")
    equity = pd.Series(1_000.0 + np.arange(len(days)), index=days)
    fills = [Fill("AAA", 10, 10.0, 1.0, days[1]), Fill("AAA", -10, 12.0, 1.0, days[30]),
             Fill("BBB", 5, 20.0, 0.5, days[35]), Fill("BBB", -5, 19.0, 0.5, days[45]),
             Fill("AAA", 3, 11.0, 0.2, days[50])]
    months = performance_by_period(equity, fills, "M")
    assert [str(p) for p in months.index] == ["2021-01", "2021-02", "2021-03"]
    # 20 sessions in January, 20 in February: AAA opened in January and closed in February
    # (+18), BBB opened in February and closed in March (-6), AAA's last buy is still open
    assert months["trades"].tolist() == [0, 1, 1]
    assert months["avg_trade_pnl"].tolist()[1:] == pytest.approx([18.0, -6.0])
    assert months["win_rate"].tolist()[1:] == [1.0, 0.0]
    assert months["costs_paid"].tolist() == pytest.approx([1.0, 1.5, 0.7])
    whole = performance(equity, fills=fills)
    assert months["costs_paid"].sum() == pytest.approx(whole["costs_paid"])
    assert months["trades"].sum() == whole["trades"] == 2


def test_per_period_refuses_an_unknown_period_or_an_untimed_curve():
    with pytest.raises(RLBridgeError, match=r"period must be 'Y' \(calendar years\) or 'M' "
                                            r"\(months\), not 'W'"):
        performance_by_period(curve(), period="W")
    with pytest.raises(DataError, match="metrics per period need an equity curve indexed by "
                                        "time"):
        performance_by_period(pd.Series([1.0, 2.0, 3.0]))


# ---------------------------------------------------------------------- docs/evaluation.md
EVALUATION = Path(__file__).resolve().parent.parent / "docs" / "evaluation.md"


def markdown_table(text, first_header):
    """The body rows of the Markdown table whose header starts with ``first_header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_evaluation_page_lists_every_metric_with_its_label():
    rows = markdown_table(EVALUATION.read_text(), "key")
    assert [(key.strip("`"), label) for key, label, _ in rows] == [
        (key, label) for key, (label, _) in METRICS.items()]


def test_the_evaluation_pages_worked_example_is_what_the_code_computes():
    text = EVALUATION.read_text()
    rows = markdown_table(text, "day")
    fills = [Fill(symbol, float(quantity.replace("\u2212", "-")), float(price), float(fee),
                  D[int(day)]) for day, symbol, quantity, price, fee in rows]
    assert fills == ROUND_TRIP_FILLS  # the page's fills are the ones tested above
    trips = round_trips(fills)
    for pnl in trips["pnl"]:
        assert f"**{pnl:+.1f}**".replace("-", "\u2212") in text, pnl
    m = performance(pd.Series(1_000.0 + np.arange(8.0), index=D), fills=fills)
    assert (f"So `trades` is {m['trades']}, `win_rate` 2/3, `avg_trade_pnl` (76.0 \u2212 51.0 + "
            f"29.4) / 3 = {m['avg_trade_pnl']:.2f}, and\n`costs_paid` {m['costs_paid']:.1f}") in text
    assert m["win_rate"] == 2 / 3
