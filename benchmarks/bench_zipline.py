"""The zipline engine's overhead (issue 4 speed goal), against a bare zipline algorithm.

30 synthetic assets x 10 years of XNYS sessions (geometric Brownian motion, fixed seed):

* ``rl_allocation`` with a tiny trained PPO policy (window 20, five features) run by the
  ``zipline`` engine: the bridge, the strategy API, the features, the policy and the cost model
  as zipline's slippage and commission models;
* a bare zipline algorithm, written directly against zipline, that replays the target weights
  the policy chose (recorded beforehand) with the same sizing: ``order_target`` to
  ``trunc(weight * portfolio value / close)`` shares, a next-open slippage model and zipline's
  ``PerDollar`` commission at the same rate.

Both run zipline's ``TradingAlgorithm`` over the same bundle with the same metrics set and a zero
benchmark; the one-time bundle ingest is timed on its own and excluded from both.  Goal:
rl_allocation in zipline <= 1.5x the bare algorithm.  Both must end at the same value.

Run: .venv/bin/python benchmarks/bench_zipline.py   (about two minutes)
"""

from __future__ import annotations

import cProfile
import dataclasses
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from rlbridge import Bars
from rlbridge.config import config_from_mapping
from rlbridge.context import RunSpec
from rlbridge.costs import create_cost_model
from rlbridge.features import FeaturePipeline
from rlbridge.manager import make_plugin_manager
from rlbridge.plugins.engines.native import NativeEngine
from rlbridge.plugins.engines.zipline_engine import ZiplineEngine, _quiet
from rlbridge.strategies.rl_allocation import RLAllocation
from rlbridge.training import train

GOAL = 1.5
RATE = 0.001
CASH = 1_000_000.0


def synthetic_bars(n: int = 30, seed: int = 11) -> Bars:
    """``n`` assets over the XNYS sessions of 2010-2019, random walks."""
    import exchange_calendars

    from rlbridge.testing import random_walk_bars

    sessions = exchange_calendars.get_calendar("XNYS", start="2010-01-01").sessions_in_range(
        "2010-01-04", "2019-12-31")
    return random_walk_bars(len(sessions), [f"A{i:02d}" for i in range(n)], seed=seed,
                            index=sessions, price=100.0, volatility=0.015)


def agent(bars: Bars, output: Path, pm: Any) -> Any:
    return config_from_mapping({
        "data": {"feed": "sample", "symbols": list(bars.symbols)},
        "features": {"window": 20, "transforms": ["log_return", {"name": "volatility",
                                                                 "window": 10}]},
        "costs": {"model": "percent", "rate": RATE},
        "policy": {"algo": "ppo", "n_steps": 128, "batch_size": 64, "n_epochs": 2,
                   "net_arch": [32]},
        "train": {"start": "2010-03-01", "end": "2014-12-31", "timesteps": 384, "seed": 1,
                  "output": str(output)},
        "strategy": {"name": "rl_allocation", "model": "unset"},
        "backtest": {"cash": CASH, "start": "2010-02-01", "end": "2019-12-31"},
    }, pm=pm)


def run_spec(config: Any, bars: Bars, pm: Any) -> RunSpec:
    pipeline = FeaturePipeline.from_config(config.features, pm)
    start = int(bars.index.searchsorted(pd.Timestamp("2010-02-01")))
    return RunSpec(bars=bars, start=start, end=len(bars) - 1, cash=CASH,
                   cost_model=create_cost_model(config.costs, pm),
                   features=pipeline.compute(bars), feature_names=pipeline.feature_names,
                   feature_window=config.features.window, params={"model": None})


class Recording(RLAllocation):
    """rl_allocation, keeping the target weights it asks for at each bar."""

    def start(self, ctx: Any) -> None:
        super().start(ctx)
        self.targets: dict[int, np.ndarray] = {}

    def on_bar(self, ctx: Any) -> None:
        strategy = self

        class Tap:
            def __getattr__(self, name: str) -> Any:
                return getattr(ctx, name)

            def order_target_weights(self, weights: Any) -> Any:
                strategy.targets[ctx.bar_index] = np.asarray(weights, dtype=float)[:len(
                    ctx.symbols)].copy()
                return ctx.order_target_weights(weights)

        super().on_bar(Tap())


def bare_zipline(bars: Bars, spec: RunSpec, targets: dict[int, np.ndarray],
                 bundle_path: Path) -> tuple[float, float]:
    """The weights replayed by a plain zipline algorithm; ``(seconds, final value)``."""
    from zipline.algorithm import TradingAlgorithm
    from zipline.finance.commission import PerDollar
    from zipline.finance.slippage import SlippageModel
    from zipline.finance.trading import SimulationParameters

    from rlbridge.plugins.engines.zipline_engine.bundle import load_bundle, open_calendar

    class NextOpen(SlippageModel):
        """Orders fill whole at the open of the session after they were placed."""

        def process_order(self, data: Any, order: Any) -> tuple[float, int]:
            return data.current(order.asset, "open"), order.open_amount

    calendar = open_calendar("XNYS", bars)
    bundle = load_bundle(bundle_path, calendar)
    assets = bundle.assets

    def initialize(context: Any) -> None:
        context.set_slippage(us_equities=NextOpen())
        context.set_commission(us_equities=PerDollar(cost=RATE))
        context.bar = -1

    def handle_data(context: Any, data: Any) -> None:
        context.bar += 1
        weights = targets.get(context.bar)
        if weights is None:
            return
        value = context.portfolio.portfolio_value
        close = data.current(assets, "close").to_numpy()
        shares = np.trunc(weights * value / close)
        for asset, target in zip(assets, shares, strict=True):
            context.order_target(asset, int(target))

    index = bars.index
    algo = TradingAlgorithm(
        sim_params=SimulationParameters(start_session=index[spec.start],
                                        end_session=index[spec.end], trading_calendar=calendar,
                                        capital_base=CASH, data_frequency="daily"),
        data_portal=bundle.data_portal(calendar), trading_calendar=calendar,
        benchmark_returns=pd.Series(0.0, index=index[spec.start:spec.end + 1]),
        initialize=initialize, handle_data=handle_data)
    start = time.perf_counter()
    perf = algo.run()
    return time.perf_counter() - start, float(perf["portfolio_value"].iloc[-1])


def main() -> None:
    torch.set_num_threads(1)
    pm = make_plugin_manager(entrypoints=False, warn=False)
    bars = synthetic_bars()
    print(f"bars: {bars!r}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = agent(bars, root / "models", pm)
        t = time.perf_counter()
        model = train(config, pm, record=False, bars=bars).path
        print(f"train (384 steps of PPO, not timed below): {time.perf_counter() - t:.1f} s")
        spec = run_spec(config, bars, pm)
        spec = dataclasses.replace(spec, params={"model": str(model)})
        recorder = Recording({"model": str(model)})
        native = NativeEngine().run(recorder, bars, spec)
        print(f"native replay reference: {len(native.fills):,} fills over "
              f"{len(native.equity):,} sessions, final value {native.equity[-1]:,.2f}")

        from rlbridge.plugins.engines.zipline_engine.bundle import ensure_bundle, open_calendar

        with _quiet():
            t = time.perf_counter()
            calendar = open_calendar("XNYS", bars)
            t_cal = time.perf_counter() - t
            t = time.perf_counter()
            bundle_path, _ = ensure_bundle(bars, calendar, root / "bundles")
            t_ingest = time.perf_counter() - t
        print(f"one-time: exchange calendar {t_cal:.2f} s, bundle ingest {t_ingest:.2f} s "
              "(excluded below)")

        engine = ZiplineEngine(ZiplineEngine.Config(root=root / "bundles"))
        profile = "--profile" in sys.argv
        profiler = cProfile.Profile() if profile else None
        t = time.perf_counter()
        if profiler:
            profiler.enable()
        out = engine.run(RLAllocation({"model": str(model)}), bars, spec)
        if profiler:
            profiler.disable()
        t_engine = time.perf_counter() - t
        assert not engine.ingested and out.error is None
        with _quiet():
            t_bare, bare_value = bare_zipline(bars, spec, recorder.targets, bundle_path)
        print(f"rl_allocation in zipline: {t_engine:6.2f} s  final value {out.equity[-1]:,.2f}"
              f"  ({len(out.fills):,} fills)")
        print(f"bare zipline replay:      {t_bare:6.2f} s  final value {bare_value:,.2f}")
        ratio = t_engine / t_bare
        print(f"ratio: {ratio:.2f}x (goal <= {GOAL}x: {'met' if ratio <= GOAL else 'NOT met'})")
        final = out.equity[-1]
        if abs(final - bare_value) > 0.01 or abs(final - native.equity[-1]) > 0.01:
            print("WARNING: the runs do not end at the same value")
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)


if __name__ == "__main__":
    main()
