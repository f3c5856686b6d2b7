"""The risk engine: the ``[risk]`` limits and the kill switch, in real backtests, in every engine.

Every expected rejection, reason and halt bar is computed here by hand from the bars (or, for the
kill switch, from the equity curve of the same run without it), never read back from the code
under test.
"""

import numpy as np
import pandas as pd
import pytest

import rlbridge
from rlbridge import sample_data
from rlbridge.config import RiskConfig, config_from_mapping
from rlbridge.context import StrategyError
from rlbridge.errors import ConfigError
from rlbridge.interfaces import Bars
from rlbridge.manager import make_plugin_manager
from rlbridge.runs import run_fills, run_orders, trade_counts
from rlbridge.testing import register_plugin

SYMBOLS = ("SPY", "AGG", "XLK")
CASH = 100_000.0
PM = make_plugin_manager(entrypoints=False, warn=False)


@pytest.fixture(scope="module")
def bars():
    return sample_data.load(list(SYMBOLS), start="2018-10-01", end="2020-09-30", adjust=False)


def config(strategy, risk=None, *, start="2019-01-02", end="2020-09-30", costs="percent",
           engine="native"):
    cost = {"model": "percent", "rate": 0.001} if costs == "percent" else {"model": costs}
    mapping = {"data": {"feed": "sample", "symbols": list(SYMBOLS)}, "costs": cost,
               "strategy": strategy,
               "backtest": {"engine": engine, "cash": CASH, "start": start, "end": end}}
    if risk is not None:
        mapping["risk"] = risk
    return config_from_mapping(mapping, pm=PM)


def run(bars, strategy, risk=None, *, pm=PM, engine=None, store=None, obj=None, **kw):
    name = strategy if isinstance(strategy, dict) else {"name": "buy_and_hold"}
    return rlbridge.backtest(config(name, risk, **kw), engine=engine, pm=pm, bars=bars,
                             strategy=obj, store=store, record=store is not None)


def at(bars, day):
    return int(bars.index.get_loc(pd.Timestamp(day)))


def rejected(result):
    return [(r.order.created, r.order.symbol, r.order.quantity, r.reason)
            for r in result.rejections]


def fills(result):
    return [(f.time, f.symbol, f.quantity, f.price) for f in result.fills]


class Script(rlbridge.Strategy):
    """Orders ``{bar_index: [(symbol, quantity), ...]}``; records what each order returned."""

    def __init__(self, plan):
        super().__init__()
        self.plan = plan
        self.placed = []

    def on_bar(self, ctx):
        for symbol, quantity in self.plan.get(ctx.bar_index, []):
            self.placed.append(ctx.order(symbol, quantity) is not None)


# ---------------------------------------------------------------------- the limits
def test_max_orders_per_bar_counts_the_orders_accepted_at_this_bar(bars):
    plan = {0: [("SPY", 1), ("AGG", 1), ("XLK", 1), ("SPY", 1)], 1: [("XLK", 2), ("AGG", 2)],
            2: [("SPY", 3), ("AGG", 3), ("XLK", 3)]}
    script = Script(plan)
    result = run(bars, None, {"max_orders_per_bar": 2}, obj=script)
    t0 = at(bars, "2019-01-02")
    day = bars.index
    why = "max_orders_per_bar 2: 2 orders already sent at this bar"
    assert rejected(result) == [(day[t0], "XLK", 1.0, why), (day[t0], "SPY", 1.0, why),
                                (day[t0 + 2], "XLK", 3.0, why)]
    assert script.placed == [True, True, False, False, True, True, True, True, False]
    # the accepted orders fill at the next open; the previous bar's orders no longer count
    opens = bars.open
    assert fills(result) == [
        (day[t0 + 1], "SPY", 1.0, opens[t0 + 1, 0]), (day[t0 + 1], "AGG", 1.0, opens[t0 + 1, 1]),
        (day[t0 + 2], "AGG", 2.0, opens[t0 + 2, 1]), (day[t0 + 2], "XLK", 2.0, opens[t0 + 2, 2]),
        (day[t0 + 3], "SPY", 3.0, opens[t0 + 3, 0]), (day[t0 + 3], "AGG", 3.0, opens[t0 + 3, 1])]


def test_max_order_notional_values_buys_and_sells_at_the_decision_close(bars):
    script = Script({0: [("SPY", 10), ("SPY", 100), ("AGG", -100), ("AGG", 50)]})
    result = run(bars, None, {"max_order_notional": 10_000}, obj=script)
    t0 = at(bars, "2019-01-02")
    spy, agg = bars.close[t0, 0], bars.close[t0, 1]
    assert 100 * spy > 10_000 > 10 * spy and 100 * agg > 10_000 > 50 * agg
    assert rejected(result) == [
        (bars.index[t0], "SPY", 100.0,
         f"max_order_notional 10,000: SPY +100 shares x {spy:,.2f} = {100 * spy:,.2f}"),
        (bars.index[t0], "AGG", -100.0,
         f"max_order_notional 10,000: AGG -100 shares x {agg:,.2f} = {100 * agg:,.2f}")]
    assert [(f.symbol, f.quantity) for f in result.fills] == [("SPY", 10.0), ("AGG", 50.0)]


def test_max_position_weight_counts_open_orders_and_lets_reductions_through(bars):
    t0 = at(bars, "2019-01-02")
    close0 = bars.close[t0]
    spy = np.trunc(0.39 * CASH / close0[0])
    agg = np.trunc(0.39 * CASH / close0[1])
    later = 80  # SPY rallied: its weight drifted above 0.4 with the same shares
    plan = {0: [("SPY", spy), ("AGG", agg), ("SPY", 10)], later: [("SPY", 1), ("SPY", -1)]}
    script = Script(plan)
    result = run(bars, None, {"max_position_weight": 0.4}, obj=script, costs="zero")
    # bar 0: nothing held yet, but the open SPY order counts
    extra = (spy + 10) * close0[0]
    # bar 80: cash and holdings at that close (zero costs: cash = CASH - shares x open)
    t = t0 + later
    cash = CASH - spy * bars.open[t0 + 1, 0] - agg * bars.open[t0 + 1, 1]
    value = cash + spy * bars.close[t, 0] + agg * bars.close[t, 1]
    weight = spy * bars.close[t, 0] / value
    assert weight > 0.4
    more = (spy + 1) * bars.close[t, 0]
    assert rejected(result) == [
        (bars.index[t0], "SPY", 10.0, f"max_position_weight 0.4: SPY would be "
         f"{extra / CASH:.3f} of value ({extra:,.2f} of {CASH:,.2f})"),
        (bars.index[t], "SPY", 1.0, f"max_position_weight 0.4: SPY would be "
         f"{more / value:.3f} of value ({more:,.2f} of {value:,.2f})")]
    assert script.placed == [True, True, False, False, True]
    assert fills(result)[-1] == (bars.index[t + 1], "SPY", -1.0, bars.open[t + 1, 0])


def test_equal_weight_on_three_symbols_needs_a_cap_above_one_third(bars):
    """A cap of 0.3 refuses every order of a 1/3 portfolio (the user sees why, each time, and
    the money stays in cash: a check rejects, it never resizes); 0.34 changes nothing."""
    strategy = {"name": "equal_weight", "rebalance": 63}
    free = run(bars, strategy)
    loose = run(bars, strategy, {"max_position_weight": 0.34})
    assert loose.rejections == [] and fills(loose) == fills(free)
    assert loose.final_value == free.final_value
    # rebalanced every bar, so each bar tries again (and is refused again)
    tight = run(bars, {**strategy, "rebalance": 1}, {"max_position_weight": 0.3})
    assert tight.fills == [] and tight.orders == []
    assert set(tight.equity) == {CASH}
    expected = []
    for t in range(at(bars, "2019-01-02"), at(bars, "2020-09-30") + 1):
        for i, symbol in enumerate(SYMBOLS):
            shares = np.trunc(CASH / 3 / bars.close[t, i])
            worth = shares * bars.close[t, i]
            expected.append((bars.index[t], symbol, shares, f"max_position_weight 0.3: {symbol} "
                             f"would be {worth / CASH:.3f} of value ({worth:,.2f} of "
                             f"{CASH:,.2f})"))
    assert rejected(tight) == expected


def gross_expected(bars):
    t0 = at(bars, "2019-01-02")
    close = bars.close[t0]
    shares = np.trunc(CASH / 3 / close)
    spy = shares[0] * close[0]
    why = []
    for i in (1, 2):
        after = spy + shares[i] * close[i]
        why.append((bars.index[t0], SYMBOLS[i], shares[i],
                    f"max_gross_exposure 0.5: gross exposure would be {after / CASH:.3f} of "
                    f"value ({after:,.2f} of {CASH:,.2f})"))
    return why


def test_max_gross_exposure_keeps_the_first_third_and_refuses_the_rest(bars):
    result = run(bars, {"name": "equal_weight", "rebalance": 21}, {"max_gross_exposure": 0.5})
    assert rejected(result)[:2] == gross_expected(bars)
    # SPY alone (a third) stays under half at every rebalance; AGG and XLK never get in
    assert {f.symbol for f in result.fills} == {"SPY"} and len(result.fills) > 5
    assert {r.order.symbol for r in result.rejections} == {"AGG", "XLK"}
    assert (result.weights[["AGG", "XLK"]].to_numpy() == 0).all()
    assert result.weights["SPY"].max() < 0.5


def test_the_same_rejections_and_fills_in_backtrader_and_zipline(bars):
    strategy = {"name": "equal_weight", "rebalance": 21}
    risk = {"max_gross_exposure": 0.5, "max_order_notional": 30_000}
    native = run(bars, strategy, risk)
    assert any(r.reason.startswith("max_order_notional") for r in native.rejections)
    for engine in ("backtrader", "zipline"):
        other = run(bars, strategy, risk, engine=engine)
        assert rejected(other) == rejected(native), engine
        assert fills(other) == fills(native), engine
        np.testing.assert_allclose(other.equity.to_numpy(), native.equity.to_numpy(), atol=1e-6)


def test_daily_bars_always_pass_the_trading_hours_guard(bars):
    strategy = {"name": "equal_weight", "rebalance": 21}
    guarded = run(bars, strategy, {"trading_hours": True})
    assert guarded.rejections == [] and fills(guarded) == fills(run(bars, strategy))


# ---------------------------------------------------------------------- the store
def test_rejections_are_stored_with_status_rejected_and_their_reason(bars, rlbridge_store):
    result = run(bars, {"name": "equal_weight", "rebalance": 21}, {"max_gross_exposure": 0.5},
                 store=rlbridge_store)
    orders = run_orders(rlbridge_store, result.run_id)
    stored = orders[orders.status == "rejected"]
    assert [(t, s, q, why) for t, s, q, why in zip(
        stored.index, stored.symbol, stored.quantity, stored.reason, strict=True)] == \
        rejected(result)
    accepted = orders[orders.status == "submitted"]
    assert len(accepted) == len(result.orders) and accepted.reason.isna().all()
    assert trade_counts(rlbridge_store, result.run_id) == {
        "orders": len(result.orders) + len(result.rejections),
        "orders_by_status": {"rejected": len(result.rejections),
                             "submitted": len(result.orders)},
        "fills": len(result.fills)}


# ---------------------------------------------------------------------- the kill switch
def first_breach(equity, limit):
    """The first bar whose drawdown from the running peak (the start included) reaches limit."""
    values = equity.to_numpy()
    peak = np.maximum.accumulate(values)
    hit = np.flatnonzero(1 - values / peak >= limit)
    return int(hit[0]), values, peak


@pytest.mark.parametrize("engine", ["native", "backtrader", "zipline"])
def test_drawdown_kill_switch_flattens_on_the_bar_it_is_reached(bars, engine):
    window = {"start": "2020-01-02", "end": "2020-04-30"}
    strategy = {"name": "buy_and_hold", "symbol": "SPY"}
    free = run(bars, strategy, engine=engine, **window)
    k, values, peak = first_breach(free.equity, 0.2)
    assert 0 < k < len(values) - 1 and 1 - values[k - 1] / peak[k - 1] < 0.2
    result = run(bars, strategy, {"max_drawdown": 0.2}, engine=engine, **window)
    when = free.equity.index[k]
    reason = (f"kill switch: drawdown {1 - values[k] / peak[k]:.1%} reached max_drawdown 20% "
              f"(value {values[k]:,.2f}, peak {peak[k]:,.2f})")
    assert result.extra["halted"] == {"time": when, "bar_index": k, "reason": reason}
    assert result.to_json()["halted"] == {"time": f"{when:%Y-%m-%d}", "bar_index": k,
                                          "reason": reason}
    # the same run up to the breach; then one sell of everything at the next open
    np.testing.assert_allclose(result.equity.to_numpy()[:k + 1], values[:k + 1], atol=1e-6)
    [buy] = free.fills
    t = at(bars, when)
    assert fills(result) == [(buy.time, "SPY", buy.quantity, buy.price),
                             (bars.index[t + 1], "SPY", -buy.quantity, bars.open[t + 1, 0])]
    assert [o.created for o in result.orders] == [free.orders[0].created, when]
    # flat from the flattening fill on: cash only, constant
    after = result.equity.to_numpy()[k + 1:]
    assert (result.weights["SPY"].to_numpy()[k + 1:] == 0).all()
    np.testing.assert_allclose(after, result.cash.to_numpy()[k + 1:], rtol=0, atol=1e-9)
    assert len(set(after)) == 1


def test_daily_loss_kill_switch_on_daily_bars_and_its_store_record(bars, rlbridge_store):
    window = {"start": "2020-01-02", "end": "2020-04-30"}
    # three buys of 100 SPY (each under the notional cap), so the kill switch's sell of 300
    # breaks max_order_notional: it must pass anyway
    plan = {0: [("SPY", 100)], 1: [("SPY", 100)], 2: [("SPY", 100)]}
    risk = {"max_order_notional": 40_000}
    free = run(bars, None, risk, obj=Script(plan), **window)
    values = free.equity.to_numpy()
    loss = 1 - values[1:] / values[:-1]
    k = int(np.flatnonzero(loss >= 0.05)[0]) + 1
    script = Script(plan)
    result = run(bars, None, {**risk, "max_daily_loss": 0.05}, obj=script, store=rlbridge_store,
                 **window)
    when = free.equity.index[k]
    reason = (f"kill switch: daily loss {loss[k - 1]:.1%} reached max_daily_loss 5% "
              f"(value {values[k]:,.2f}, previous close {values[k - 1]:,.2f})")
    assert result.extra["halted"] == {"time": when, "bar_index": k, "reason": reason}
    t = at(bars, when)
    assert 300 * bars.close[t, 0] > 40_000 and result.rejections == []
    assert fills(result)[-1] == (bars.index[t + 1], "SPY", -300.0, bars.open[t + 1, 0])
    orders = run_orders(rlbridge_store, result.run_id)
    assert list(zip(orders.index, orders.symbol, orders.quantity, orders.status, orders.reason,
                    strict=True)) == [
        *[(free.equity.index[i], "SPY", 100.0, "submitted", None) for i in range(3)],
        (when, "*", 0.0, "halted", reason), (when, "SPY", -300.0, "submitted", reason)]
    stored = run_fills(rlbridge_store, result.run_id)
    assert stored.order_id.isna().all() and len(stored) == 4


class Recorder(rlbridge.Strategy):
    """Equal weights every 21 bars; records its calls."""

    def start(self, ctx):
        self.calls = ["start"]

    def on_fill(self, ctx, fill):
        self.calls.append(("fill", fill.time, fill.symbol))

    def on_bar(self, ctx):
        self.calls.append(("bar", ctx.now))
        if ctx.bar_index % 21 == 0:
            ctx.order_target_weights({s: 1 / 3 for s in ctx.symbols})
        if ctx.bar_index == self.params.get("fail_at"):
            raise ValueError("model output is NaN")

    def stop(self, ctx):
        self.calls.append("stop")


def test_the_kill_switch_passes_every_call_through_until_it_fires(bars):
    free, guarded = Recorder(), Recorder()
    plain = run(bars, None, obj=free)
    watched = run(bars, None, {"max_drawdown": 0.99}, obj=guarded)
    assert "halted" not in watched.extra and watched.to_json()["halted"] is None
    assert fills(watched) == fills(plain) and guarded.calls == free.calls
    assert free.calls[-1] == "stop" and ("fill", plain.fills[0].time, "SPY") in free.calls
    # an error names the strategy, not the wrapper
    with pytest.raises(StrategyError) as info:
        run(bars, None, {"max_drawdown": 0.99}, obj=Recorder(fail_at=3))
    third = bars.index[at(bars, "2019-01-02") + 3]
    assert str(info.value) == (f"strategy Recorder failed at {third:%Y-%m-%d} (bar 3): "
                               "ValueError: model output is NaN")


def hourly(days_and_closes, symbol="SPY"):
    """Bars stamped at ``day hour:00 UTC`` with open = high = low = close."""
    index, closes = [], []
    for day, hours, values in days_and_closes:
        index += [pd.Timestamp(f"{day} {h:02d}:00", tz="UTC") for h in hours]
        closes += values
    c = np.asarray(closes, dtype=float)
    return Bars(pd.DatetimeIndex(index), (symbol,),
                np.stack([c, c, c, c, np.full_like(c, 1e6)], axis=-1)[:, None, :])


def hourly_config(strategy, risk=None):
    mapping = {"data": {"feed": "sample", "symbols": ["SPY"]}, "costs": {"model": "zero"},
               "strategy": strategy, "backtest": {"cash": CASH}}
    if risk is not None:
        mapping["risk"] = risk
    return config_from_mapping(mapping, pm=PM)


def test_daily_loss_on_intraday_bars_is_measured_from_the_previous_session_close():
    session = range(15, 22)  # 15:00 .. 21:00 UTC, inside the 14:30 .. 21:00 XNYS session
    panel = hourly([("2024-11-25", session, [100, 100, 101, 102, 103, 104, 105]),
                    ("2024-11-26", session, [103, 101, 99.5, 99, 98, 97, 96])])
    strategy = {"name": "buy_and_hold", "symbol": "SPY"}
    result = rlbridge.backtest(hourly_config(strategy, {"max_daily_loss": 0.05}), pm=PM,
                               bars=panel, record=False)
    # 1000 shares bought at 100; the previous session closed at 105 (value 105,000); 99.5 is
    # the first close 5% under it, though no bar lost more than 2% from the one before
    when = panel.index[9]
    reason = ("kill switch: daily loss 5.2% reached max_daily_loss 5% "
              "(value 99,500.00, previous close 105,000.00)")
    assert result.extra["halted"] == {"time": when, "bar_index": 9, "reason": reason}
    assert fills(result) == [(panel.index[1], "SPY", 1000.0, 100.0),
                             (panel.index[10], "SPY", -1000.0, 99.0)]
    assert list(result.equity.to_numpy()[10:]) == [99_000.0] * 4


def test_trading_hours_rejects_intraday_orders_outside_the_regular_session():
    hours = range(13, 23)  # 08:00 .. 17:00 New York time (EST)
    # a full session, Thanksgiving (closed), and the early close (13:00 New York) after it
    panel = hourly([(day, hours, [100.0] * len(hours))
                    for day in ("2024-11-27", "2024-11-28", "2024-11-29")])

    class EveryBar(rlbridge.Strategy):
        def on_bar(self, ctx):
            ctx.order("SPY", 1)

    result = rlbridge.backtest(hourly_config({"name": "buy_and_hold"}, {"trading_hours": True}),
                               pm=PM, bars=panel, strategy=EveryBar(), record=False)
    inside = {f"2024-11-27 {h}:00" for h in range(15, 22)} | {
        f"2024-11-29 {h}:00" for h in range(15, 19)}
    assert [f"{o.created:%Y-%m-%d %H:%M}" for o in result.orders] == sorted(inside)
    reasons = {f"{r.order.created:%Y-%m-%d %H:%M}": r.reason for r in result.rejections}
    assert len(reasons) == 30 - len(inside)
    assert reasons["2024-11-27 14:00"] == (
        "trading_hours XNYS: 2024-11-27 14:00 UTC is outside the regular session of "
        "2024-11-27 (14:30-21:00 UTC)")
    assert reasons["2024-11-27 22:00"] == (
        "trading_hours XNYS: 2024-11-27 22:00 UTC is outside the regular session of "
        "2024-11-27 (14:30-21:00 UTC)")
    assert reasons["2024-11-28 16:00"] == (
        "trading_hours XNYS: 2024-11-28 16:00 UTC is outside the regular session: "
        "2024-11-28 is not a session day")
    assert reasons["2024-11-29 19:00"] == (
        "trading_hours XNYS: 2024-11-29 19:00 UTC is outside the regular session of "
        "2024-11-29 (14:30-18:00 UTC)")
    # accepted orders fill at the next bar's open, whenever that bar is
    assert [f"{f.time:%m-%d %H:%M}" for f in result.fills][-2:] == ["11-29 18:00", "11-29 19:00"]


# ---------------------------------------------------------------------- third-party checks
class NoTech:
    """A third-party check: no XLK; it also records what it was shown."""

    def __init__(self):
        self.seen = []

    @rlbridge.hookimpl
    def check_order(self, order, context):
        self.seen.append((order.symbol, context.risk))
        return "house rule: no tech" if order.symbol == "XLK" else None


class Frozen:
    @rlbridge.hookimpl
    def check_order(self, order, context):
        return "account frozen"


def test_a_third_party_check_rejects_in_every_run(bars, rlbridge_pm):
    rule = NoTech()
    register_plugin(rlbridge_pm, rule, name="no_tech")
    result = run(bars, {"name": "equal_weight", "rebalance": 63}, pm=rlbridge_pm)
    assert {(r.order.symbol, r.reason) for r in result.rejections} == {
        ("XLK", "house rule: no tech")}
    assert {f.symbol for f in result.fills} == {"SPY", "AGG"}
    assert rule.seen[0] == ("SPY", RiskConfig())


def test_the_first_reason_wins(bars, rlbridge_pm):
    rule = NoTech()
    register_plugin(rlbridge_pm, rule, name="no_tech")
    strategy = {"name": "equal_weight", "rebalance": 63}
    # plugins are called last registered first: the third-party rule before the built-in limit
    capped = run(bars, strategy, {"max_position_weight": 0.3}, pm=rlbridge_pm)
    t0 = at(bars, "2019-01-02")
    assert [(r.order.symbol, r.reason.split(":")[0]) for r in capped.rejections[:3]] == [
        ("SPY", "max_position_weight 0.3"), ("AGG", "max_position_weight 0.3"),
        ("XLK", "house rule")]
    assert capped.rejections[0].order.created == bars.index[t0]
    # a later plugin answers first and the others are not asked
    register_plugin(rlbridge_pm, Frozen(), name="frozen")
    rule.seen.clear()
    frozen = run(bars, strategy, {"max_position_weight": 0.3}, pm=rlbridge_pm)
    assert {r.reason for r in frozen.rejections} == {"account frozen"}
    assert len(frozen.rejections) == len(capped.rejections) and rule.seen == []


# ---------------------------------------------------------------------- config
def test_risk_config_keys_and_errors():
    risk = config_from_mapping({"risk": {"trading_hours": True, "calendar": "XLON"}}).risk
    assert (risk.trading_hours, risk.session_calendar) == (True, "XLON")
    assert RiskConfig().session_calendar == "XNYS"
    assert config_from_mapping({"risk": {}}).to_dict()["risk"] == {}
    with pytest.raises(ConfigError) as info:
        config_from_mapping({"risk": {"calendar": "XNYZ"}}, path="agent.toml")
    assert str(info.value).startswith(
        "agent.toml: [risk.calendar]: unknown exchange calendar 'XNYZ'; close names: ")
    with pytest.raises(ConfigError, match=r"\[risk.trading_hours\]: expected true or false"):
        config_from_mapping({"risk": {"trading_hours": "yes"}})
