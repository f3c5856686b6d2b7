"""Baseline strategies every agent is measured against; they run in every engine.

* ``buy_and_hold``: put everything in one symbol (the benchmark) on the first bar and hold.
* ``equal_weight``: equal weights in every symbol, rebalanced every ``rebalance`` bars.
* ``ma_crossover``: hold, in equal weights, the symbols whose fast moving average of the close
  is above their slow one; rebalance when that set changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlbridge.errors import ConfigError
from rlbridge.hookspecs import hookimpl
from rlbridge.interfaces import BarContext, Strategy


class BuyAndHold(Strategy):
    """Buy ``symbol`` (default: the first symbol of the run) with ``weight`` of the portfolio."""

    @dataclass(frozen=True)
    class Config:
        symbol: str | None = None
        weight: float = 1.0

    def on_bar(self, ctx: BarContext) -> None:
        if ctx.bar_index == 0:
            symbol = self.params.get("symbol") or ctx.symbols[0]
            if symbol not in ctx.symbols:
                raise ConfigError(f"buy_and_hold symbol {symbol!r} is not among the run's "
                                  f"symbols {', '.join(ctx.symbols)}", key="strategy.symbol")
            ctx.order_target_weights({symbol: float(self.params.get("weight", 1.0))})


class EqualWeight(Strategy):
    """Equal weights (``exposure`` in all) in every symbol, rebalanced every ``rebalance`` bars.

    A book that holds nothing and has no open order is invested at once, whatever the bar:
    a live deployment that starts between two rebalance dates does not wait for the next one.
    """

    @dataclass(frozen=True)
    class Config:
        rebalance: int = 21
        exposure: float = 1.0

        def __post_init__(self) -> None:
            if self.rebalance < 1:
                raise ConfigError(f"must be at least 1, got {self.rebalance}", key="rebalance")

    def on_bar(self, ctx: BarContext) -> None:
        due = ctx.bar_index % int(self.params.get("rebalance", 21)) == 0
        empty = not ctx.open_orders and not any(ctx.positions.values())
        if due or empty:
            n = len(ctx.symbols)
            weight = float(self.params.get("exposure", 1.0)) / n
            ctx.order_target_weights({s: weight for s in ctx.symbols})


class MACrossover(Strategy):
    """Equal weights in the symbols whose ``fast``-bar average close is above the ``slow`` one."""

    @dataclass(frozen=True)
    class Config:
        fast: int = 20
        slow: int = 50

        def __post_init__(self) -> None:
            if not 1 <= self.fast < self.slow:
                raise ConfigError(f"need 1 <= fast < slow, got fast={self.fast}, "
                                  f"slow={self.slow}", key="fast")

    def start(self, ctx: BarContext) -> None:
        self.held: Any = None

    def on_bar(self, ctx: BarContext) -> None:
        fast, slow = int(self.params.get("fast", 20)), int(self.params.get("slow", 50))
        close = ctx.history("close", slow)
        if len(close) < slow:
            return
        above = close[-fast:].mean(axis=0) > close.mean(axis=0)
        key = tuple(bool(x) for x in above)
        if key == self.held:
            return
        self.held = key
        count = sum(key)
        ctx.order_target_weights({s: (1.0 / count if up else 0.0)
                                  for s, up in zip(ctx.symbols, key, strict=True)}
                                 if count else {s: 0.0 for s in ctx.symbols})


@hookimpl
def register_strategies(register: Any) -> None:
    register("buy_and_hold", BuyAndHold, description="all in one symbol on the first bar, held")
    register("equal_weight", EqualWeight,
             description="equal weights in every symbol, rebalanced every `rebalance` bars")
    register("ma_crossover", MACrossover, aliases=("sma_crossover",),
             description="equal weights in symbols whose fast moving average is above the slow")
