"""The backtrader engine against the native one: the same fills and the same equity.

Every parity test runs one strategy on the same real bars (the bundled ETFs, unadjusted) in
``native`` and in ``backtrader`` and compares fill by fill (symbol, date, quantity, price,
commission) and the equity, cash and positions at every close.

Tolerances, and why:

* quantities, prices and dates of whole-share orders: exact;
* commissions: exact, except backtrader's own percentage commission (``cost_mapping =
  "settings"`` with ``percent``), which multiplies ``|size| * rate * price`` where the cost model
  multiplies ``|size| * price * rate``: the last binary digit may differ (relative 1e-15);
* equity and cash: 1e-6 (far inside the cent): backtrader books each fill into its cash one at a
  time, the simulator adds a bar's fills in one dot product, so the sums round differently;
* fractional quantities: 1e-9 shares, because the size ``weight * value / close`` is not
  truncated and so carries the rounding of the cash above.
"""

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

import rlbridge
from rlbridge import sample_data
from rlbridge.config import config_from_mapping
from rlbridge.context import RunSpec, StrategyError
from rlbridge.features import FeaturePipeline
from rlbridge.interfaces import Bars
from rlbridge.manager import make_plugin_manager
from rlbridge.plugins.costs.percent import PercentCost
from rlbridge.plugins.engines.backtrader_engine import BacktraderEngine
from rlbridge.plugins.engines.backtrader_engine.costs import Settings, backtrader_settings
from rlbridge.plugins.engines.native import NativeEngine
from rlbridge.training import train
from tests.strategies import TwoDownDays

torch.set_num_threads(1)

SYMBOLS = ["SPY", "AGG", "XLK"]
PM = make_plugin_manager(entrypoints=False, warn=False)
REG = PM.registries

COSTS = {
    "percent": ("percent", {"rate": 0.001}),
    "per_share": ("per_share", {"per_share": 0.005, "minimum": 1.0, "maximum_percent": 0.01}),
    "spread": ("spread", {"bps": 5}),
    "volatility_slippage": ("volatility_slippage", {"coefficient": 0.5, "window": 10,
                                                    "minimum_bps": 1}),
    "composite": ("composite", {"parts": [{"model": "spread", "bps": 2},
                                          {"model": "per_share", "minimum": 0.35}]}),
    "percent_and_spread": ("composite", {"parts": [{"model": "spread", "bps": 3},
                                                   {"model": "percent", "rate": 0.0005}]}),
}


@pytest.fixture(scope="module")
def bars():
    return sample_data.load(SYMBOLS, start="2018-10-01", end="2020-09-30", adjust=False)


def spec_for(bars, cost="percent", start="2019-01-02", end="2020-09-30", **kw):
    name, options = COSTS[cost]
    i0 = int(bars.index.get_loc(pd.Timestamp(start)))
    i1 = int(bars.index.get_loc(pd.Timestamp(end)))
    return RunSpec(bars=bars, start=i0, end=i1, cash=100_000.0,
                   cost_model=REG["costs"].create(name, options), **kw)


def both(make, bars, spec, mapping="settings"):
    """``(native output, backtrader output)`` of a fresh strategy from ``make()`` each."""
    native = NativeEngine().run(make(), bars, spec)
    engine = BacktraderEngine(BacktraderEngine.Config(cost_mapping=mapping))
    return native, engine.run(make(), bars, spec)


def assert_parity(native, bt, *, commission_rel=0.0, quantity_atol=0.0):
    assert native.error is None and bt.error is None, (native.error, bt.error)
    assert len(bt.fills) == len(native.fills)
    for a, b in zip(native.fills, bt.fills, strict=True):
        assert (b.symbol, b.time, b.price) == (a.symbol, a.time, a.price), (a, b)
        if quantity_atol:
            assert b.quantity == pytest.approx(a.quantity, rel=0, abs=quantity_atol), (a, b)
        else:
            assert b.quantity == a.quantity, (a, b)
        if commission_rel:
            assert b.commission == pytest.approx(a.commission, rel=commission_rel), (a, b)
        else:
            assert b.commission == a.commission, (a, b)
    assert bt.index.equals(native.index)
    np.testing.assert_allclose(bt.equity, native.equity, rtol=0, atol=1e-6)
    np.testing.assert_allclose(bt.cash, native.cash, rtol=0, atol=1e-6)
    if quantity_atol:
        np.testing.assert_allclose(bt.positions, native.positions, rtol=0, atol=quantity_atol)
    else:
        np.testing.assert_array_equal(bt.positions, native.positions)
    assert [o.symbol for o in bt.orders] == [o.symbol for o in native.orders]


def strategy(name, **params):
    return lambda: REG["strategies"].create(name, params)


# ---------------------------------------------------------------------- parity, whole shares
RULES = {
    "buy_and_hold": strategy("buy_and_hold", symbol="XLK"),
    "equal_weight": strategy("equal_weight", rebalance=21),
    "ma_crossover": strategy("ma_crossover", fast=10, slow=40),
    "two_down_days": TwoDownDays,
}
CASES = [
    ("buy_and_hold", "percent"), ("buy_and_hold", "per_share"),
    ("equal_weight", "percent"), ("equal_weight", "per_share"), ("equal_weight", "spread"),
    ("equal_weight", "volatility_slippage"), ("equal_weight", "composite"),
    ("equal_weight", "percent_and_spread"),
    ("ma_crossover", "percent"), ("ma_crossover", "per_share"), ("ma_crossover", "spread"),
    ("ma_crossover", "volatility_slippage"),
    ("two_down_days", "percent"), ("two_down_days", "per_share"),
    ("two_down_days", "volatility_slippage"),
]
MIN_FILLS = {"buy_and_hold": 1, "equal_weight": 40, "ma_crossover": 40, "two_down_days": 40}


@pytest.mark.parametrize("mapping", ["settings", "model"])
@pytest.mark.parametrize("name, cost", CASES)
def test_rule_strategies_fill_as_in_native(bars, name, cost, mapping):
    native, bt = both(RULES[name], bars, spec_for(bars, cost), mapping)
    assert len(native.fills) >= MIN_FILLS[name]
    # backtrader's percentage commission rounds its product in another order (see the top)
    uses_bt_percent = mapping == "settings" and cost in ("percent", "percent_and_spread")
    assert_parity(native, bt, commission_rel=1e-15 if uses_bt_percent else 0.0)


def test_the_cost_models_backtrader_reproduces_become_its_settings():
    def model(cost):
        name, options = COSTS[cost]
        return REG["costs"].create(name, options)

    assert backtrader_settings(model("percent")) == Settings(rate=0.001, slip=0.0)
    assert backtrader_settings(model("spread")) == Settings(rate=0.0, slip=0.0005)
    assert backtrader_settings(model("percent_and_spread")) == Settings(rate=0.0005, slip=0.0003)
    assert backtrader_settings(REG["costs"].create("zero", {})) == Settings()
    for cost in ("per_share", "volatility_slippage", "composite"):
        assert backtrader_settings(model(cost)) is None

    class Doubled(PercentCost):  # a subclass may charge otherwise: the broker asks it
        def commission(self, price, quantity, context):
            return 2 * super().commission(price, quantity, context)

    assert backtrader_settings(Doubled()) is None


def test_a_cost_model_backtrader_has_no_setting_for_is_evaluated_in_its_broker(bars):
    class Doubled(PercentCost):
        def commission(self, price, quantity, context):
            return 2 * super().commission(price, quantity, context)

    spec = replace(spec_for(bars), cost_model=Doubled(PercentCost.Config(rate=0.001)))
    native, bt = both(strategy("equal_weight", rebalance=21), bars, spec)
    assert_parity(native, bt)
    first = bt.fills[0]
    assert first.commission == 2 * (abs(first.quantity) * first.price * 0.001)


def test_spread_slippage_is_not_capped_to_the_bar_range(bars):
    """backtrader caps slipped prices to the bar's high/low by default; rlbridge does not."""
    spec = replace(spec_for(bars), cost_model=REG["costs"].create("spread", {"bps": 150}))
    native, bt = both(strategy("equal_weight", rebalance=5), bars, spec)
    assert_parity(native, bt)
    t = {stamp: i for i, stamp in enumerate(bars.index)}
    outside = [f for f in bt.fills
               if f.price > bars.high[t[f.time], SYMBOLS.index(f.symbol)]
               or f.price < bars.low[t[f.time], SYMBOLS.index(f.symbol)]]
    assert len(outside) > 10


def test_orders_fill_at_the_next_close_with_fill_at_close(bars):
    for cost in ("percent", "spread", "volatility_slippage"):
        spec = spec_for(bars, cost, fill_at="close")
        native, bt = both(strategy("equal_weight", rebalance=5), bars, spec)
        assert_parity(native, bt, commission_rel=1e-15 if cost == "percent" else 0.0)
    t = {stamp: i for i, stamp in enumerate(bars.index)}
    spec = spec_for(bars, "percent", fill_at="close")
    _, bt = both(strategy("equal_weight", rebalance=5), bars, spec)
    first = [f for f in bt.fills if f.time == bt.fills[0].time]
    assert first[0].time == bars.index[spec.start + 1]
    assert [f.price for f in first] == [bars.close[t[f.time], SYMBOLS.index(f.symbol)]
                                        for f in first]


@pytest.mark.parametrize("mapping", ["settings", "model"])
def test_fractional_shares_match_native(bars, mapping):
    spec = spec_for(bars, "percent", fractional=True)
    native, bt = both(strategy("equal_weight", rebalance=5), bars, spec, mapping)
    assert any(f.quantity != round(f.quantity) for f in bt.fills)
    assert_parity(native, bt, commission_rel=1e-9, quantity_atol=1e-9)
    # fully invested with fractional shares: an open above the sizing close leaves cash
    # below zero, and backtrader's broker is not allowed to refuse the buys
    assert bt.cash.min() < 0


def test_orders_of_one_symbol_at_one_bar_net_into_one_fill(bars):
    class Netting(rlbridge.Strategy):
        def on_bar(self, ctx):
            if ctx.bar_index == 0:
                ctx.order("SPY", 5)
                ctx.order("SPY", 3)
                ctx.order("AGG", 4)
                ctx.order("AGG", -4)
            if ctx.bar_index == 2:
                ctx.order("SPY", -12)  # from 8 long to 4 short in one order

    spec = spec_for(bars, "per_share")
    for mapping in ("settings", "model"):
        native, bt = both(Netting, bars, spec, mapping)
        assert_parity(native, bt)
        assert [(f.symbol, f.quantity, f.commission) for f in bt.fills] == [
            ("SPY", 8.0, 1.0), ("SPY", -12.0, 1.0)]  # the $1 minimum once per order
        assert bt.positions[-1].tolist() == [-4.0, 0.0, 0.0]


# ---------------------------------------------------------------------- rl_allocation
@pytest.fixture(scope="module")
def rl(tmp_path_factory):
    """A tiny PPO policy trained on SPY/AGG/XLK, and the bars and features to test it on."""
    tmp = tmp_path_factory.mktemp("rl")
    rl_bars = sample_data.load(SYMBOLS, start="2015-06-01", end="2020-09-30", adjust=False)
    mapping = {
        "data": {"feed": "sample", "symbols": SYMBOLS},
        "features": {"window": 5, "transforms": ["log_return", {"name": "volatility",
                                                                "window": 10}]},
        "env": {"fractional": True},
        "costs": {"model": "percent", "rate": 0.001},
        "policy": {"algo": "ppo", "n_steps": 128, "batch_size": 64, "n_epochs": 2,
                   "net_arch": [16]},
        "train": {"start": "2016-01-01", "end": "2018-12-31", "timesteps": 256, "seed": 5,
                  "output": str(tmp / "models")},
    }
    config = config_from_mapping(mapping, pm=PM)
    result = train(config, PM, record=False, bars=rl_bars)
    pipeline = FeaturePipeline.from_config(config.features, PM)
    return result.path, rl_bars, pipeline.compute(rl_bars), pipeline.feature_names


@pytest.mark.parametrize("cost, mapping", [("percent", "settings"), ("percent", "model"),
                                           ("per_share", "settings"), ("spread", "settings"),
                                           ("volatility_slippage", "settings")])
def test_rl_allocation_fills_as_in_native(rl, cost, mapping):
    path, rl_bars, features, names = rl
    spec = spec_for(rl_bars, cost, features=features, feature_names=tuple(names),
                    feature_window=5)
    native, bt = both(strategy("rl_allocation", model=str(path)), rl_bars, spec, mapping)
    assert len(native.fills) > 100
    uses_bt_percent = mapping == "settings" and cost == "percent"
    assert_parity(native, bt, commission_rel=1e-15 if uses_bt_percent else 0.0)


# ---------------------------------------------------------------------- failures
class Boom(rlbridge.Strategy):
    def __init__(self, where="on_bar", **params):
        super().__init__(**params)
        self.where = where

    def start(self, ctx):
        if self.where == "start":
            raise KeyError("no model")

    def on_bar(self, ctx):
        if ctx.bar_index == 0:
            ctx.order("SPY", 5)
        if ctx.bar_index == 3 and self.where == "on_bar":
            raise ValueError("model output is NaN")

    def on_fill(self, ctx, fill):
        if self.where == "on_fill":
            raise RuntimeError("bad fill")

    def stop(self, ctx):
        if self.where == "stop":
            raise OSError("disk full")


@pytest.mark.parametrize("where, message, marked, fills", [
    ("on_bar", "strategy Boom failed at 2019-01-07 (bar 3): ValueError: model output is NaN",
     4, 1),
    ("on_fill", "strategy Boom failed at 2019-01-03 (bar 1): RuntimeError: bad fill", 1, 1),
    ("stop", "strategy Boom failed at 2020-09-30 (bar 440): OSError: disk full", 441, 1),
])
def test_a_failing_strategy_stops_the_run_with_the_bar_and_keeps_the_past(bars, where, message,
                                                                          marked, fills):
    spec = spec_for(bars, "per_share")
    native, bt = both(lambda: Boom(where), bars, spec)
    assert str(bt.error) == str(native.error) == message
    assert isinstance(bt.error, StrategyError)
    assert len(bt.equity) == len(bt.cash) == len(bt.positions) == len(bt.index) == marked
    assert len(bt.fills) == fills
    np.testing.assert_allclose(bt.equity, native.equity, rtol=0, atol=1e-6)


def test_an_error_in_start_is_raised_as_is(bars):
    with pytest.raises(KeyError, match="no model"):
        BacktraderEngine().run(Boom("start"), bars, spec_for(bars))


# ---------------------------------------------------------------------- data fidelity
def test_intraday_bars_with_zero_volume_are_neither_dropped_nor_shifted():
    rng = np.random.default_rng(11)
    index = pd.date_range("2024-03-01 14:00", periods=300, freq="h", tz="UTC")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (300, 2)), axis=0))
    open_ = close * np.exp(rng.normal(0, 0.003, (300, 2)))
    high = np.maximum(open_, close) * 1.002
    low = np.minimum(open_, close) * 0.998
    volume = rng.integers(1_000, 50_000, (300, 2)).astype(float)
    volume[:5] = 0.0  # a feed's first bars without volume
    volume[100:103, 1] = 0.0
    hourly = Bars(index, ("BTC", "ETH"), np.stack([open_, high, low, close, volume], axis=-1))
    spec = RunSpec(bars=hourly, start=20, end=299, cash=50_000.0,
                   cost_model=REG["costs"].create(*COSTS["volatility_slippage"]))
    native, bt = both(strategy("equal_weight", rebalance=3), hourly, spec)
    assert_parity(native, bt)
    assert bt.fills[0].time == index[21] and len(bt.equity) == 280


# ---------------------------------------------------------------------- CLI and plugin
def test_cli_backtest_gives_the_same_final_value_as_native(tmp_path, rlbridge_cli):
    import json

    path = tmp_path / "agent.toml"
    path.write_text(
        '[data]\nfeed = "sample"\nsymbols = ["SPY", "AGG", "XLK"]\n'
        'start = "2018-06-01"\nend = "2020-09-30"\n\n'
        '[costs]\nmodel = "per_share"\nminimum = 1.0\n\n'
        '[strategy]\nname = "ma_crossover"\nfast = 10\nslow = 40\n\n'
        '[backtest]\nengine = "native"\ncash = 100_000\nstart = "2019-01-01"\n'
        'end = "2020-09-30"\n')
    runs = {}
    for engine in ("native", "backtrader"):
        result = rlbridge_cli("backtest", path, "--engine", engine, "--json")
        assert result.exit_code == 0, result.output
        runs[engine] = json.loads(result.stdout)
    assert runs["backtrader"]["engine"] == "backtrader"
    assert runs["backtrader"]["fills"] == runs["native"]["fills"] > 20
    assert runs["backtrader"]["final_value"] == pytest.approx(runs["native"]["final_value"],
                                                              rel=0, abs=1e-6)
    assert runs["backtrader"]["final_value"] != 100_000


def test_the_engine_is_registered_and_its_module_imports_nothing_heavy():
    info = REG["engines"].info("backtrader")
    assert info.plugin == "rlbridge.plugins.engines.backtrader_engine"
    code = ("import sys, rlbridge.plugins.engines.backtrader_engine; "
            "print(sorted(m for m in ('backtrader', 'numpy', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_a_run_prints_nothing(bars, capfd):
    BacktraderEngine().run(RULES["equal_weight"](), bars, spec_for(bars))
    captured = capfd.readouterr()
    assert (captured.out, captured.err) == ("", "")
