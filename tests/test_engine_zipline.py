"""The zipline engine: fill-for-fill parity with native, the bundle cache, bad input.

Every run goes through zipline-reloaded's real ``TradingAlgorithm``, blotter and ledger over a
real bundle (SQLite asset and adjustment databases) made from the bars in a temporary folder.
Parity compares every fill (time, symbol, quantity, price, commission) exactly, and equity,
cash and shares at every close to 1e-6: zipline's ledger books each transaction and each
commission separately where native subtracts one sum per bar, so the float roundings differ in
the last bits (the same cents).
"""

import json
import logging
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch

import rlbridge
from rlbridge import sample_data
from rlbridge.cli import build_cli
from rlbridge.config import config_from_mapping
from rlbridge.context import RunSpec
from rlbridge.errors import ConfigError, DataError
from rlbridge.interfaces import Bars
from rlbridge.manager import make_plugin_manager
from rlbridge.plugins.engines.zipline_engine import ZiplineEngine
from rlbridge.training import train
from tests.strategies import TwoDownDays

torch.set_num_threads(1)

PM = make_plugin_manager(entrypoints=False, warn=False)
REGISTRIES = PM.registries
SYMBOLS = ["SPY", "AGG", "XLK"]
#: equity, cash and shares: zipline books each transaction and commission on its own (see above)
ATOL = 1e-6


@pytest.fixture(scope="module", autouse=True)
def bundle_root(tmp_path_factory):
    """One bundle folder for the module (the engine's default root comes from the env)."""
    root = tmp_path_factory.mktemp("zipline-bundles")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RLBRIDGE_ZIPLINE_ROOT", str(root))
        yield root


@pytest.fixture(scope="module")
def bars():
    return sample_data.load(SYMBOLS, start="2018-10-01", end="2020-09-30", adjust=False)


def spec_for(bars, start="2019-01-02", end="2020-09-30", cost=("percent", {}), **kw):
    i0 = int(bars.index.get_loc(np.datetime64(start)))
    i1 = int(bars.index.get_loc(np.datetime64(end)))
    model = REGISTRIES["costs"].create(cost[0], cost[1])
    return RunSpec(bars=bars, start=i0, end=i1, cash=100_000.0, cost_model=model, **kw)


def both(strategy, bars, spec, **options):
    """``(native output, zipline output)`` of two fresh instances of ``strategy``."""
    make = strategy if callable(strategy) else (
        lambda: REGISTRIES["strategies"].create(strategy[0], strategy[1]))
    native = REGISTRIES["engines"].create("native", {"fill_at": spec.fill_at})
    zipline = ZiplineEngine(ZiplineEngine.Config(fill_at=spec.fill_at, **options))
    return native.run(make(), bars, spec), zipline.run(make(), bars, spec)


def assert_same_run(native, zipline):
    assert str(zipline.error) == str(native.error)
    assert [(f.time, f.symbol, f.quantity, f.price, f.commission) for f in zipline.fills] == [
        (f.time, f.symbol, f.quantity, f.price, f.commission) for f in native.fills]
    assert zipline.index.equals(native.index)
    np.testing.assert_allclose(zipline.equity, native.equity, rtol=0, atol=ATOL)
    np.testing.assert_allclose(zipline.cash, native.cash, rtol=0, atol=ATOL)
    np.testing.assert_array_equal(zipline.positions, native.positions)
    assert [(o.symbol, o.quantity, o.created) for o in zipline.orders] == [
        (o.symbol, o.quantity, o.created) for o in native.orders]


PER_SHARE = ("per_share", {"per_share": 0.005, "minimum": 1.0, "maximum_percent": 0.01})
COMPOSITE = ("composite", {"parts": [{"model": "spread", "bps": 3},
                                     {"model": "per_share", "minimum": 0.35}]})


# ---------------------------------------------------------------------- packaging
def test_importing_the_plugin_imports_neither_zipline_nor_pandas():
    code = ("import sys, rlbridge.plugins.engines.zipline_engine as z; "
            "print(sorted(m for m in ('zipline', 'pandas', 'numpy', 'exchange_calendars') "
            "if m in sys.modules)); print(z.ZiplineEngine.name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "zipline"]
    assert REGISTRIES["engines"].info("zipline").plugin == "rlbridge.plugins.engines.zipline_engine"


# ---------------------------------------------------------------------- parity with native
@pytest.mark.parametrize("strategy, cost", [
    (("buy_and_hold", {"symbol": "SPY"}), ("percent", {"rate": 0.001})),
    (("buy_and_hold", {"symbol": "XLK"}), PER_SHARE),
    (("equal_weight", {"rebalance": 21}), ("percent", {"rate": 0.001})),
    (("equal_weight", {"rebalance": 21}), PER_SHARE),
    (("equal_weight", {"rebalance": 21}), ("spread", {"bps": 5})),
    (("ma_crossover", {"fast": 10, "slow": 40}), ("percent", {"rate": 0.0005})),
    (("ma_crossover", {"fast": 10, "slow": 40}), ("volatility_slippage", {"minimum_bps": 1})),
    (TwoDownDays, PER_SHARE),
    (TwoDownDays, COMPOSITE),
], ids=["buy_and_hold-percent", "buy_and_hold-per_share", "equal_weight-percent",
        "equal_weight-per_share", "equal_weight-spread", "ma_crossover-percent",
        "ma_crossover-volatility_slippage", "two_down_days-per_share",
        "two_down_days-composite"])
def test_fills_and_equity_match_native(bars, strategy, cost):
    native, zipline = both(strategy, bars, spec_for(bars, cost=cost))
    assert zipline.error is None and len(zipline.fills) >= 1
    assert_same_run(native, zipline)
    if strategy is TwoDownDays:  # one share in, one share out, five bars apart
        assert {f.quantity for f in zipline.fills} == {1.0, -1.0} and len(zipline.fills) > 10


def test_the_last_bar_of_the_data_keeps_its_positions(bars):
    """No de-listing sale when the run ends on the data's last session."""
    spec = spec_for(bars, end="2020-09-30", cost=PER_SHARE)
    assert spec.end == len(bars) - 1
    native, zipline = both(("buy_and_hold", {"symbol": "SPY"}), bars, spec)
    [fill] = zipline.fills
    assert zipline.positions[-1].tolist() == [fill.quantity, 0.0, 0.0]
    assert zipline.equity[-1] == pytest.approx(
        zipline.cash[-1] + fill.quantity * bars.close[-1, 0], abs=1e-9)
    assert_same_run(native, zipline)


def test_adjusted_prices_with_many_decimals_are_kept_exact():
    """Adjusted closes have more decimals than zipline's integer-thousandths formats hold."""
    adjusted = sample_data.load(SYMBOLS, start="2019-06-03", end="2020-03-31")
    assert np.abs(adjusted.close * 1000 - np.round(adjusted.close * 1000)).max() > 0.1
    spec = spec_for(adjusted, start="2019-06-03", end="2020-03-31", cost=PER_SHARE)
    native, zipline = both(("equal_weight", {"rebalance": 5}), adjusted, spec)
    assert len(zipline.fills) > 50
    assert_same_run(native, zipline)


def test_fill_at_close(bars):
    spec = spec_for(bars, start="2019-01-02", end="2019-12-31", fill_at="close")
    native, zipline = both(("equal_weight", {"rebalance": 21}), bars, spec)
    first = zipline.fills[0]
    t = int(bars.index.get_loc(first.time))
    assert first.price == bars.close[t, bars.symbols.index(first.symbol)]
    assert_same_run(native, zipline)


def test_orders_are_never_refused_for_cash(bars):
    class AllIn(rlbridge.Strategy):
        def on_bar(self, ctx):
            if ctx.bar_index == 0:
                ctx.order("SPY", 500)  # about 125,000 of SPY with 100,000 of cash

    seen = []
    spec = spec_for(bars, start="2019-01-02", end="2019-01-10", on_fill=seen.append)
    native, zipline = both(AllIn, bars, spec)
    assert [(f.symbol, f.quantity) for f in zipline.fills] == [("SPY", 500.0)]
    assert zipline.cash[-1] < -20_000
    assert seen == native.fills + zipline.fills  # the run's observer saw each engine's fill
    assert_same_run(native, zipline)


def test_an_error_in_start_is_raised_as_is(bars):
    class Unready(rlbridge.Strategy):
        def start(self, ctx):
            raise KeyError("model")

    with pytest.raises(KeyError, match="model"):
        ZiplineEngine().run(Unready(), bars, spec_for(bars))


# ---------------------------------------------------------------------- rl_allocation
def agent(tmp, **changes):
    mapping = {
        "data": {"feed": "sample", "symbols": SYMBOLS, "start": "2016-01-04",
                 "end": "2020-09-30", "adjust": False},
        "features": {"window": 5, "transforms": ["log_return", {"name": "volatility",
                                                                "window": 10}]},
        "env": {"fractional": True},
        "costs": {"model": "percent", "rate": 0.001},
        "policy": {"algo": "ppo", "n_steps": 128, "batch_size": 64, "n_epochs": 2,
                   "net_arch": [16]},
        "train": {"start": "2016-03-01", "end": "2018-12-31", "timesteps": 256, "seed": 5,
                  "output": str(tmp / "models")},
        "strategy": {"name": "rl_allocation", "model": "unset"},
        "backtest": {"cash": 100_000, "start": "2019-01-02", "end": "2020-09-30"},
    }
    for table, values in changes.items():
        mapping[table] = {**mapping[table], **values}
    return config_from_mapping(mapping, pm=PM)


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rl")
    return tmp, train(agent(tmp), PM, record=False).path


@pytest.mark.parametrize("costs", [{"model": "percent", "rate": 0.001},
                                   {"model": "per_share", "minimum": 1.0}])
def test_rl_allocation_with_a_trained_policy_matches_native(policy, costs):
    tmp, path = policy
    config = agent(tmp, strategy={"model": str(path)})
    config = config_from_mapping({**config.to_dict(), "costs": costs}, pm=PM)
    native = rlbridge.backtest(config, engine="native", pm=PM, record=False)
    zipline = rlbridge.backtest(config, engine="zipline", pm=PM, record=False)
    assert len(zipline.fills) > 50
    assert all(f.quantity == int(f.quantity) for f in zipline.fills)
    assert [(f.time, f.symbol, f.quantity, f.price, f.commission) for f in zipline.fills] == [
        (f.time, f.symbol, f.quantity, f.price, f.commission) for f in native.fills]
    np.testing.assert_allclose(zipline.equity.to_numpy(), native.equity.to_numpy(),
                               rtol=0, atol=ATOL)
    assert zipline.equity.index.equals(native.equity.index)
    assert round(zipline.final_value, 2) == round(native.final_value, 2)


# ---------------------------------------------------------------------- failures
class Boom(rlbridge.Strategy):
    def __init__(self, where):
        super().__init__()
        self.where = where

    def on_bar(self, ctx):
        if ctx.bar_index == 0:
            ctx.order("SPY", 5)
        if ctx.bar_index == 3 and self.where == "on_bar":
            raise ValueError("model output is NaN")

    def on_fill(self, ctx, fill):
        if self.where == "on_fill":
            raise RuntimeError("cannot log the fill")


@pytest.mark.parametrize("where, message, marked", [
    ("on_bar", "strategy Boom failed at 2019-01-07 (bar 3): ValueError: model output is NaN", 4),
    ("on_fill", "strategy Boom failed at 2019-01-03 (bar 1): RuntimeError: cannot log the fill",
     1),
], ids=["on_bar", "on_fill"])
def test_a_failing_strategy_stops_the_run_and_keeps_the_bars_done(bars, where, message, marked):
    native, zipline = both(lambda: Boom(where), bars, spec_for(bars))
    assert str(zipline.error) == message
    assert len(zipline.equity) == len(zipline.cash) == len(zipline.index) == marked
    assert [(f.symbol, f.quantity) for f in zipline.fills] == [("SPY", 5.0)]
    assert_same_run(native, zipline)


def test_a_fractional_order_is_the_strategy_error_it_is(bars):
    class Half(rlbridge.Strategy):
        def on_bar(self, ctx):
            if ctx.bar_index == 2:
                ctx.order("AGG", 1.5)

    zipline = ZiplineEngine().run(Half(), bars, spec_for(bars, end="2019-01-10"))
    assert str(zipline.error) == ("strategy Half failed at 2019-01-04 (bar 2): MarketError: the "
                                  "zipline engine trades whole shares; cannot order 1.5 shares "
                                  "of AGG")
    assert len(zipline.equity) == 3 and zipline.fills == []


def test_fractional_shares_are_a_config_error_naming_the_key(bars, tmp_path):
    with pytest.raises(ConfigError) as info:
        ZiplineEngine.Config(fractional=True)
    assert str(info.value) == ("[fractional]: the zipline engine trades whole shares only; "
                               "leave `fractional` unset (or false), or run the native engine "
                               "for fractional shares")
    with pytest.raises(ConfigError, match=r"^\[fractional\]: the zipline engine trades whole"):
        ZiplineEngine().run(TwoDownDays(), bars, spec_for(bars, fractional=True))
    path = tmp_path / "agent.toml"
    path.write_text('[backtest]\nengine = "zipline"\nfractional = true\n')
    with pytest.raises(ConfigError) as info:
        rlbridge.load_config(path, pm=PM)
    assert str(info.value).startswith(f"{path}: [backtest.fractional]: the zipline engine "
                                      "trades whole shares only")


def drop(bars, day):
    k = int(bars.index.get_loc(np.datetime64(day)))
    return Bars(bars.index.delete(k), bars.symbols, np.delete(bars.values, k, axis=0))


def insert(bars, day):
    k = int(bars.index.searchsorted(np.datetime64(day)))
    values = np.insert(bars.values, k, bars.values[k - 1], axis=0)
    return Bars(bars.index.insert(k, np.datetime64(day)), bars.symbols, values)


TAIL = (" (align them to the calendar or choose the calendar of their exchange with the "
        "engine's `calendar` option)")


@pytest.mark.parametrize("change, problem", [
    (lambda b: drop(b, "2019-03-15"), "1 XNYS session(s) have no bar: 2019-03-15"),
    (lambda b: insert(insert(b, "2019-07-04"), "2019-12-25"),
     "2 bar(s) fall on dates that are not XNYS sessions: 2019-07-04, 2019-12-25"),
    (lambda b: insert(drop(drop(b, "2019-02-01"), "2019-02-04"), "2019-01-01"),
     "2 XNYS session(s) have no bar: 2019-02-01, 2019-02-04; 1 bar(s) fall on dates that are "
     "not XNYS sessions: 2019-01-01"),
], ids=["missing-session", "holiday-rows", "both"])
def test_bars_off_the_calendar_are_a_data_error_naming_the_dates(bars, tmp_path, change, problem):
    bad = change(bars.between("2018-12-03", "2019-12-31"))
    with pytest.raises(DataError) as info:
        ZiplineEngine(ZiplineEngine.Config(root=tmp_path)).run(
            TwoDownDays(), bad, spec_for(bad, end="2019-12-31"))
    assert str(info.value) == ("the bars of SPY, AGG, XLK do not match the XNYS calendar "
                               f"between 2018-12-03 and 2019-12-31: {problem}{TAIL}")
    assert list(tmp_path.iterdir()) == []  # nothing ingested


def test_intraday_bars_are_a_data_error(bars):
    short = bars.between("2019-01-02", "2019-01-31")
    hourly = Bars(short.index.tz_localize("UTC") + np.timedelta64(870, "m"), short.symbols,
                  short.values)
    with pytest.raises(DataError) as info:
        ZiplineEngine().run(TwoDownDays(), hourly, RunSpec(
            bars=hourly, start=0, end=len(hourly) - 1, cash=1e5,
            cost_model=REGISTRIES["costs"].create("zero", {})))
    assert str(info.value) == ("the zipline engine runs daily bars; these are intraday "
                               "(2019-01-02 14:30 UTC ..)")


def test_an_unknown_calendar_is_a_config_error(bars):
    with pytest.raises(ConfigError) as info:
        ZiplineEngine(ZiplineEngine.Config(calendar="xnys")).run(
            TwoDownDays(), bars, spec_for(bars))
    assert str(info.value) == ("[calendar]: unknown exchange calendar 'xnys' (did you mean "
                               "'XNYS'?); use an exchange_calendars name such as 'XNYS', "
                               "'XLON' or 'XTKS'")


# ---------------------------------------------------------------------- benchmark
def test_benchmark_none_a_symbol_or_an_unknown_symbol(bars):
    spec = spec_for(bars, start="2019-01-02", end="2019-12-31")
    runs = {}
    for benchmark in (None, "SPY", "AGG"):
        engine = ZiplineEngine(ZiplineEngine.Config(benchmark=benchmark))
        out = engine.run(REGISTRIES["strategies"].create("buy_and_hold", {"symbol": "SPY"}),
                         bars, spec)
        runs[benchmark] = (out, engine.zipline_metrics)
    zero = runs[None][1]
    assert (zero["benchmark_period_return"], zero["benchmark_volatility"]) == (0.0, 0.0)
    for symbol in ("SPY", "AGG"):
        n = bars.symbols.index(symbol)
        held = bars.close[spec.end, n] / bars.close[spec.start - 1, n] - 1  # tz-naive: not zeros
        assert runs[symbol][1]["benchmark_period_return"] == pytest.approx(held, rel=1e-9)
    assert runs["SPY"][1]["beta"] == pytest.approx(1.0, abs=0.03)  # nearly all in SPY
    for out, metrics in runs.values():  # the benchmark changes no trade
        np.testing.assert_array_equal(out.equity, runs[None][0].equity)
        assert metrics["algorithm_period_return"] == pytest.approx(
            out.equity[-1] / 100_000 - 1, rel=1e-9)
    with pytest.raises(ConfigError) as info:
        ZiplineEngine(ZiplineEngine.Config(benchmark="QQQ")).run(TwoDownDays(), bars, spec)
    assert str(info.value) == ("[benchmark]: benchmark 'QQQ' is not a symbol of this run; the "
                               "run trades SPY, AGG, XLK")


# ---------------------------------------------------------------------- the bundle cache
def fail_if_ingesting(patch):
    import zipline.assets

    def refuse(*args, **kwargs):
        raise AssertionError("the bundle was ingested again")

    patch.setattr(zipline.assets.AssetDBWriter, "write", refuse)


def test_the_bundle_is_made_once_per_bars_and_reused(bars, tmp_path, monkeypatch, caplog,
                                                     capsys):
    short = bars.between("2019-01-02", "2019-06-28")
    spec = spec_for(short, end="2019-06-28")
    first = ZiplineEngine(ZiplineEngine.Config(root=tmp_path))
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = first.run(TwoDownDays(), short, spec)
    # zipline's ingest and simulation are noisy (pandas FutureWarnings, INFO and WARNING logs)
    assert [str(w.message) for w in caught] == [] and caplog.records == []
    assert capsys.readouterr() == ("", "")
    assert first.ingested and first.bundle.parent == tmp_path
    assert sorted(p.name for p in first.bundle.iterdir()) == [
        "adjustments.sqlite", "assets-7.sqlite", "bars.npy", "bundle.json", "sessions.npy"]
    meta = json.loads((first.bundle / "bundle.json").read_text())
    assert (meta["digest"], meta["symbols"], meta["sessions"]) == (short.digest(), SYMBOLS, 124)
    inode = first.bundle.stat().st_ino

    with monkeypatch.context() as patch:
        fail_if_ingesting(patch)
        second = ZiplineEngine(ZiplineEngine.Config(root=tmp_path))
        again = second.run(TwoDownDays(), short, spec)
    assert (second.ingested, second.bundle, second.bundle.stat().st_ino) == (
        False, first.bundle, inode)
    assert_same_run(out, again)

    other = short.between("2019-01-02", "2019-05-31")  # different bars: a bundle of their own
    third = ZiplineEngine(ZiplineEngine.Config(root=tmp_path))
    third.run(TwoDownDays(), other, spec_for(other, end="2019-05-31"))
    assert third.ingested and third.bundle != first.bundle
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [first.bundle.name, third.bundle.name])


def test_only_the_most_recently_used_bundles_are_kept(bars, tmp_path):
    def run(start, end):
        part = bars.between(start, end)
        engine = ZiplineEngine(ZiplineEngine.Config(root=tmp_path, keep_bundles=2))
        engine.run(TwoDownDays(), part, spec_for(part, end=end))
        return engine.bundle

    first = run("2019-01-02", "2019-02-28")
    second = run("2019-01-02", "2019-03-29")
    os.utime(first / "bundle.json", (1_000, 1_000))  # made long ago...
    os.utime(second / "bundle.json", (2_000, 2_000))
    assert run("2019-01-02", "2019-02-28") == first  # ...but used again now
    third = run("2019-01-02", "2019-04-30")  # a third bundle: the least recently used goes
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, third.name])
    with pytest.raises(ConfigError, match="keep_bundles.*must be at least 1"):
        ZiplineEngine.Config(keep_bundles=0)


def test_an_ingest_that_fails_leaves_no_bundle_behind(bars, tmp_path, monkeypatch):
    from zipline.data.adjustments import SQLiteAdjustmentWriter

    from rlbridge.plugins.engines.zipline_engine.bundle import BundleError, bundle_key

    short = bars.between("2019-01-02", "2019-03-29")
    spec = spec_for(short, end="2019-03-29")
    key = bundle_key(short, "XNYS")
    killed = tmp_path / f".{key}.killed.tmp"  # what an ingest killed two hours ago left
    (killed / "bars.npy").parent.mkdir()
    (killed / "bars.npy").write_bytes(b"half")
    os.utime(killed, (time.time() - 7200,) * 2)

    def crash(self, *args, **kwargs):
        raise OSError("No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(SQLiteAdjustmentWriter, "write", crash)
        with pytest.raises(BundleError) as info:
            ZiplineEngine(ZiplineEngine.Config(root=tmp_path)).run(TwoDownDays(), short, spec)
    assert str(info.value) == (f"cannot write the zipline bundle of {short!r} in {tmp_path}: "
                               "OSError: No space left on device")
    assert list(tmp_path.iterdir()) == []  # no half bundle, and the stale leftover is gone

    engine = ZiplineEngine(ZiplineEngine.Config(root=tmp_path))
    out = engine.run(TwoDownDays(), short, spec)
    assert engine.ingested and engine.bundle.name == key and out.error is None
    assert [p.name for p in tmp_path.iterdir()] == [key]


# ---------------------------------------------------------------------- the CLI
def test_cli_backtest_with_engine_zipline_gives_the_native_final_value(tmp_path):
    from click.testing import CliRunner

    path = tmp_path / "agent.toml"
    path.write_text(
        '[data]\nfeed = "sample"\nsymbols = ["SPY", "AGG", "XLK"]\nstart = "2018-06-01"\n'
        'end = "2020-06-30"\n\n[costs]\nmodel = "per_share"\nminimum = 1.0\n\n'
        '[strategy]\nname = "equal_weight"\nrebalance = 21\n\n'
        '[backtest]\ncash = 50_000\nstart = "2019-01-01"\nend = "2020-06-30"\n')
    results = {}
    for engine in ("native", "zipline"):
        out = CliRunner().invoke(build_cli(PM), ["--db", f"sqlite:///{tmp_path / 'runs.db'}",
                                                 "backtest", str(path), "--engine", engine,
                                                 "--json"])
        assert out.exit_code == 0, out.output
        results[engine] = json.loads(out.output)
    native, zipline = results["native"], results["zipline"]
    assert zipline["engine"] == "zipline" and zipline["run_id"] != native["run_id"]
    assert round(zipline["final_value"], 2) == round(native["final_value"], 2)
    assert zipline["final_value"] == pytest.approx(native["final_value"], abs=ATOL)
    assert (zipline["fills"], zipline["start"], zipline["end"]) == (
        native["fills"], "2019-01-02", "2020-06-30")
    assert zipline["fills"] > 30


def test_the_config_files_benchmark_is_ziplines_and_its_figures_reach_the_result(
        tmp_path, monkeypatch):
    monkeypatch.setenv("RLBRIDGE_ZIPLINE_ROOT", str(tmp_path / "zipline"))
    config = config_from_mapping({
        "data": {"feed": "sample", "symbols": ["SPY", "AGG"], "start": "2019-01-02",
                 "end": "2019-12-31"},
        "strategy": {"name": "buy_and_hold", "symbol": "AGG"},
        "backtest": {"engine": "zipline", "cash": 10_000, "benchmark": "SPY"},
    }, pm=PM)
    result = rlbridge.backtest(config, pm=PM, record=False)
    figures = result.extra["zipline"]
    spy = sample_data.load(["SPY"], start="2019-01-02", end="2019-12-31").close[:, 0]
    assert figures["benchmark_period_return"] == pytest.approx(spy[-1] / spy[0] - 1, rel=1e-9)
    assert result.benchmark_symbol == "SPY"
