"""The native engine: the strategy API on the simulator, hand-checked fills, and failures kept."""

import numpy as np
import pytest

import rlbridge
from rlbridge import sample_data
from rlbridge.context import RunSpec
from rlbridge.manager import make_plugin_manager
from tests.test_market import Percent


@pytest.fixture(scope="module")
def registries():
    return make_plugin_manager(entrypoints=False, warn=False).registries


@pytest.fixture(scope="module")
def bars():
    return sample_data.load(["SPY", "AGG", "XLK"], start="2018-10-01", end="2020-09-30",
                            adjust=False)


def spec_for(bars, start="2019-01-02", end="2020-09-30", **kw):
    i0 = int(bars.index.get_loc(np.datetime64(start)))
    i1 = int(bars.index.get_loc(np.datetime64(end)))
    kw.setdefault("cost_model", Percent(0.001))
    return RunSpec(bars=bars, start=i0, end=i1, cash=100_000.0, **kw)


def run(registries, name, bars, spec, **params):
    strategy = registries["strategies"].create(name, params)
    return registries["engines"].create("native").run(strategy, bars, spec)


def test_buy_and_hold_buys_whole_shares_at_the_next_open_and_holds(registries, bars):
    spec = spec_for(bars)
    out = run(registries, "buy_and_hold", bars, spec, symbol="SPY")
    t0 = spec.start
    shares = np.trunc(100_000 / bars.close[t0, 0])
    [fill] = out.fills
    assert (fill.symbol, fill.quantity, fill.price) == ("SPY", shares, bars.open[t0 + 1, 0])
    assert fill.time == bars.index[t0 + 1]
    assert fill.commission == pytest.approx(0.001 * shares * bars.open[t0 + 1, 0])
    cash = 100_000 - shares * fill.price - fill.commission
    assert out.equity[0] == 100_000
    np.testing.assert_allclose(out.equity[1:], cash + shares * bars.close[t0 + 1:spec.end + 1, 0])
    assert len(out.equity) == spec.end - spec.start + 1 and out.error is None


def test_equal_weight_rebalances_on_schedule(registries, bars):
    spec = spec_for(bars)
    out = run(registries, "equal_weight", bars, spec, rebalance=63)
    fill_days = sorted({f.time for f in out.fills})
    expected = [bars.index[spec.start + k + 1] for k in range(0, spec.end - spec.start, 63)]
    assert fill_days == expected
    first = [f for f in out.fills if f.time == fill_days[0]]
    for f in first:
        i = bars.symbols.index(f.symbol)
        assert f.quantity == np.trunc(100_000 / 3 / bars.close[spec.start, i])
    # ledger invariant at every close
    np.testing.assert_allclose(out.equity, out.cash + (out.positions * bars.close[spec.start:spec.end + 1]).sum(1))


def test_ma_crossover_holds_what_is_above_its_average(registries, bars):
    spec = spec_for(bars, fractional=True)
    out = run(registries, "ma_crossover", bars, spec, fast=10, slow=40)
    held = out.positions[-1] > 0
    close = bars.close[:spec.end + 1]
    # the last decision that traded was made on the bar before the last fill
    last_fill = max(f.time for f in out.fills)
    t = int(bars.index.get_loc(last_fill)) - 1
    above = close[t - 9:t + 1].mean(0) > close[t - 39:t + 1].mean(0)
    assert held.tolist() == above.tolist()


def test_the_strategy_api_reports_state_and_history(bars):
    seen = {}

    class Probe(rlbridge.Strategy):
        def on_bar(self, ctx):
            if ctx.bar_index == 0:
                ctx.order("AGG", 10)
                seen["history"] = ctx.history("close", 3).copy()
                seen["now"] = ctx.now
            if ctx.bar_index == 1:
                seen["position"] = ctx.position("AGG")
                seen["weights"] = ctx.weights.copy()
                seen["open_orders"] = list(ctx.open_orders)
                ctx.close_all()
            if ctx.bar_index == 2:
                seen["after_close"] = dict(ctx.positions)

        def on_fill(self, ctx, fill):
            seen.setdefault("fills_before_bar", []).append((fill.symbol, ctx.bar_index))

    spec = spec_for(bars, end="2019-01-10")
    from rlbridge.plugins.engines.native import NativeEngine
    out = NativeEngine().run(Probe(), bars, spec)
    assert out.error is None
    t0 = spec.start
    np.testing.assert_array_equal(seen["history"], bars.close[t0 - 2:t0 + 1])
    assert seen["position"] == 10 and seen["open_orders"] == []
    assert seen["weights"][1] == pytest.approx(10 * bars.close[t0 + 1, 1] / out.equity[1])
    assert seen["after_close"] == {"SPY": 0.0, "AGG": 0.0, "XLK": 0.0}
    assert seen["fills_before_bar"] == [("AGG", 1), ("AGG", 2)]


def test_a_failing_strategy_stops_with_its_error_and_the_bar_and_keeps_the_past(bars):
    class Boom(rlbridge.Strategy):
        def on_bar(self, ctx):
            if ctx.bar_index == 0:
                ctx.order("SPY", 5)
            if ctx.bar_index == 3:
                raise ValueError("model output is NaN")

    from rlbridge.plugins.engines.native import NativeEngine
    spec = spec_for(bars)
    out = NativeEngine().run(Boom(), bars, spec)
    assert str(out.error) == ("strategy Boom failed at 2019-01-07 (bar 3): "
                              "ValueError: model output is NaN")
    assert len(out.equity) == 4 and len(out.fills) == 1


def test_rejected_orders_are_kept_with_their_reason(bars):
    def cap(order, ctx):
        return "more than 5 shares" if abs(order.quantity) > 5 else None

    class Greedy(rlbridge.Strategy):
        def on_bar(self, ctx):
            if ctx.bar_index == 0:
                ctx.order("SPY", 50)
                ctx.order("AGG", 5)

    from rlbridge.plugins.engines.native import NativeEngine
    out = NativeEngine().run(Greedy(), bars, spec_for(bars, check_order=cap))
    assert [(r.order.symbol, r.reason) for r in out.rejections] == [("SPY", "more than 5 shares")]
    assert [(f.symbol, f.quantity) for f in out.fills] == [("AGG", 5.0)]
