"""Speed of the ``backtrader`` engine (issue 4 goals), each figure beside its baseline.

Synthetic data: 30 assets x 10 years of XNYS sessions (2010-2019), geometric Brownian motion
prices with a fixed seed, built directly as ``rlbridge.interfaces.Bars``.

(a) ``rl_allocation`` inside backtrader (the engine) against a bare backtrader strategy written
    directly against backtrader that replays the same target weights, precomputed, with the
    same sizing (whole shares of ``weight * value / close``) and the same 0.1% commission.
    The policy is a tiny PPO trained here for 512 steps on the same data (window 20, five
    features): its quality does not matter, only that it trades every bar.  Goal: <= 1.5x.
(b) ``equal_weight`` (rebalance 21) on ``native`` against the same run on ``backtrader``.
    Goal: native >= 20x faster.

Run: .venv/bin/python benchmarks/bench_backtrader.py   (takes about a minute)
"""

from __future__ import annotations

import math
import tempfile
import time
from typing import Any

import numpy as np

from rlbridge.config import config_from_mapping
from rlbridge.context import RunSpec
from rlbridge.features import FeaturePipeline
from rlbridge.interfaces import Bars
from rlbridge.manager import make_plugin_manager
from rlbridge.plugins.engines.backtrader_engine import BacktraderEngine
from rlbridge.plugins.engines.native import NativeEngine
from rlbridge.strategies.rl_allocation import RLAllocation

PM = make_plugin_manager(entrypoints=False, warn=False)
N_ASSETS = 30
WINDOW = 20
WARMUP = 40  # the first decision bar: features need 20 + 10 bars


def synthetic_bars(seed: int = 7) -> Bars:
    """30 assets x XNYS sessions 2010-2019 of random walks."""
    import exchange_calendars

    from rlbridge.testing import random_walk_bars

    sessions = exchange_calendars.get_calendar("XNYS").sessions_in_range("2010-01-01",
                                                                         "2019-12-31")
    return random_walk_bars(len(sessions), N_ASSETS, seed=seed, index=sessions, price=100.0,
                            volatility=0.015)


def train_policy(bars: Bars, folder: str) -> tuple[str, Any]:
    """A tiny PPO trained on the first 8 years; returns its path and the [features] table."""
    import torch

    from rlbridge.training import train

    torch.set_num_threads(1)
    config = config_from_mapping({
        "data": {"feed": "sample", "symbols": list(bars.symbols)},
        "features": {"window": WINDOW, "transforms": [
            "log_return", {"name": "volatility", "window": 10}]},
        "costs": {"model": "percent", "rate": 0.001},
        "policy": {"algo": "ppo", "n_steps": 256, "batch_size": 64, "n_epochs": 1,
                   "net_arch": [32]},
        "train": {"start": "2010-01-01", "end": "2017-12-31", "timesteps": 512, "seed": 1,
                  "output": folder},
    }, pm=PM)
    result = train(config, PM, record=False, bars=bars)
    return str(result.path), config.features


def best_of(repeats: int, run: Any) -> tuple[float, Any]:
    best, out = math.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = run()
        best = min(best, time.perf_counter() - start)
    return best, out


class Recording(RLAllocation):
    """``rl_allocation`` that also keeps the target weights it asked for, by bar."""

    def start(self, ctx: Any) -> None:
        super().start(ctx)
        self.targets: dict[int, np.ndarray] = {}
        mapping = self.mapping

        def record(action: Any, weights: Any) -> Any:
            target = mapping(action, weights)
            self.targets[ctx.bar_index] = np.asarray(target, dtype=float)[:N_ASSETS].copy()
            return target

        self.mapping = record


def bare_backtrader(bars: Bars, start: int, end: int, targets: dict[int, np.ndarray]) -> float:
    """A plain backtrader strategy replaying ``targets``; returns the final value."""
    import backtrader as bt

    class Replay(bt.Strategy):
        def next(self) -> None:
            weights = targets.get(len(self) - 1)
            if weights is None:
                return
            value = self.broker.getvalue()
            for n, data in enumerate(self.datas):
                close = data.close[0]
                quantity = math.trunc(weights[n] * value / close) - self.getposition(data).size
                if abs(quantity) * close < 0.01:
                    continue
                if quantity > 0:
                    self.buy(data=data, size=quantity)
                else:
                    self.sell(data=data, size=-quantity)

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(100_000.0)
    cerebro.broker.setcommission(commission=0.001)
    cerebro.broker.set_checksubmit(False)
    for symbol in bars.symbols:
        frame = bars.frame(symbol).iloc[start:end + 1]
        cerebro.adddata(bt.feeds.PandasData(dataname=frame, openinterest=None), name=symbol)
    cerebro.addstrategy(Replay)
    cerebro.run()
    return float(cerebro.broker.getvalue())


def main() -> None:
    bars = synthetic_bars()
    t_count, n = len(bars), len(bars.symbols)
    print(f"data: {n} assets x {t_count} XNYS sessions "
          f"({bars.index[0].date()} .. {bars.index[-1].date()}), GBM, seed 7")
    percent = PM.registries["costs"].create("percent", {"rate": 0.001})
    engine = BacktraderEngine()

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        path, features_config = train_policy(bars, folder)
        print(f"policy: PPO, 512 steps, trained in {time.perf_counter() - started:.1f} s")
        pipeline = FeaturePipeline.from_config(features_config, PM)
        spec = RunSpec(bars=bars, start=WARMUP, end=t_count - 1, cash=100_000.0,
                       cost_model=percent, features=pipeline.compute(bars),
                       feature_names=pipeline.feature_names, feature_window=WINDOW)

        # (a) rl_allocation in the engine vs a bare backtrader replay of its weights
        recorder = Recording(model=path)
        native = NativeEngine().run(recorder, bars, spec)
        targets = recorder.targets
        rl_seconds, out = best_of(1, lambda: engine.run(RLAllocation(model=path), bars, spec))
        bare_seconds, bare_value = best_of(1, lambda: bare_backtrader(bars, spec.start,
                                                                      spec.end, targets))
        print(f"\n(a) rl_allocation, {len(out.equity)} bars, {len(out.fills):,} fills")
        print(f"    backtrader engine, rl_allocation:          {rl_seconds:7.2f} s "
              f"(final value {out.equity[-1]:,.2f}; native {native.equity[-1]:,.2f})")
        print(f"    bare backtrader replaying the weights:     {bare_seconds:7.2f} s "
              f"(final value {bare_value:,.2f})")
        ratio = rl_seconds / bare_seconds
        print(f"    overhead ratio: {ratio:.2f}x  (goal <= 1.5x: "
              f"{'met' if ratio <= 1.5 else 'NOT met'})")

    # (b) equal_weight, native vs backtrader
    equal = PM.registries["strategies"]
    plain = RunSpec(bars=bars, start=0, end=t_count - 1, cash=100_000.0, cost_model=percent)
    native_seconds, native_out = best_of(5, lambda: NativeEngine().run(
        equal.create("equal_weight", {"rebalance": 21}), bars, plain))
    bt_seconds, bt_out = best_of(2, lambda: engine.run(
        equal.create("equal_weight", {"rebalance": 21}), bars, plain))
    print(f"\n(b) equal_weight (rebalance 21), {len(native_out.equity)} bars, "
          f"{len(native_out.fills):,} fills")
    print(f"    native:     {native_seconds:7.3f} s (final value {native_out.equity[-1]:,.2f})")
    print(f"    backtrader: {bt_seconds:7.3f} s (final value {bt_out.equity[-1]:,.2f})")
    speedup = bt_seconds / native_seconds
    print(f"    native is {speedup:.1f}x faster  (goal >= 20x: "
          f"{'met' if speedup >= 20 else 'NOT met'})")


if __name__ == "__main__":
    main()
