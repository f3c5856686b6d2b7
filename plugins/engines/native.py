"""The ``native`` engine: runs any strategy on rlbridge's own market simulator.

It is the reference the other engines are compared with: decisions after each close, market
orders filled at the next open through the cost model, the ledger of :mod:`rlbridge.market`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlbridge.hookspecs import hookimpl
from rlbridge.interfaces import EngineOptions

if TYPE_CHECKING:
    from rlbridge.context import EngineOutput, RunSpec
    from rlbridge.interfaces import Bars, Strategy


class NativeEngine:
    """Runs a strategy bar by bar on :class:`rlbridge.market.MarketSimulator`."""

    name = "native"

    @dataclass(frozen=True)
    class Config(EngineOptions):
        """``[backtest]`` options of the ``native`` engine: those every engine takes."""

    def __init__(self, config: NativeEngine.Config | None = None) -> None:
        self.config = config if config is not None else NativeEngine.Config()

    def run(self, strategy: Strategy, bars: Bars, config: RunSpec) -> EngineOutput:
        """Run ``strategy`` over ``config.start .. config.end`` of ``bars``."""
        import numpy as np

        from rlbridge.context import EngineOutput, SimContext, strategy_error
        from rlbridge.market import MarketSimulator

        spec = config
        sim = MarketSimulator(bars, spec.cost_model, cash=spec.cash, fill_at=spec.fill_at,
                              fractional=spec.fractional)
        sim.reset(spec.start)
        ctx = SimContext(sim, spec)
        count = spec.end - spec.start + 1
        equity = np.full(count, np.nan)
        cash = np.full(count, np.nan)
        positions = np.full((count, len(bars.symbols)), np.nan)
        fills = []
        error = None

        def mark(i: int) -> None:
            equity[i] = sim.value()
            cash[i] = sim.portfolio.cash
            positions[i] = sim.portfolio.positions

        strategy.start(ctx)  # a setup error (bad params, a mismatched model) is raised as is
        try:
            mark(0)
            strategy.on_bar(ctx)
            for i in range(1, count):
                batch = sim.step()
                ctx._filled()
                for fill in batch.fills(bars.symbols, bars.index[sim.t]):
                    fills.append(fill)
                    if spec.on_fill is not None:
                        spec.on_fill(fill)
                    strategy.on_fill(ctx, fill)
                mark(i)
                strategy.on_bar(ctx)
            strategy.stop(ctx)
        except Exception as exc:  # the strategy's error stops the run; what happened is kept
            error = strategy_error(strategy, bars.index[sim.t], sim.t - spec.start, exc)
        done = int(np.isfinite(equity).sum())
        return EngineOutput(spec.index[:done], equity[:done], cash[:done], positions[:done],
                            fills, ctx.orders, ctx.rejections, error)


@hookimpl
def register_engines(register: Any) -> None:
    register("native", NativeEngine,
             description="rlbridge's own simulator: next-open fills, the run's cost model")
