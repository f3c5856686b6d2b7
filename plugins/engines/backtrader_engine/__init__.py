"""The ``backtrader`` engine: any rlbridge strategy inside backtrader's Cerebro and broker.

The strategy runs unchanged: a ``bt.Strategy`` bridge calls its ``start``, ``on_fill``,
``on_bar`` and ``stop`` through the same strategy API as in the ``native`` engine, and its
market orders go to backtrader's broker, which fills them at the next bar's open (or close)
with the run's cost model mapped onto backtrader's commission and slippage.  Cash, positions and
the equity curve are the broker's own.  The same strategy on the same bars gives the same fills
and the same equity as ``native``.

backtrader, numpy and pandas are imported when a run starts, never by this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from rlbridge.hookspecs import hookimpl
from rlbridge.interfaces import EngineOptions

if TYPE_CHECKING:
    from rlbridge.context import EngineOutput, RunSpec
    from rlbridge.interfaces import Bars, Strategy


class BacktraderEngine:
    """Runs a strategy bar by bar in a backtrader ``Cerebro``."""

    name = "backtrader"

    @dataclass(frozen=True)
    class Config(EngineOptions):
        """``[backtest]`` options of the ``backtrader`` engine.

        Attributes:
            fractional: let ``order_target_weights`` trade fractional shares (default: whole
                shares, truncated toward zero).
            fill_at: fill market orders at the ``open`` (default) or the ``close`` of the bar
                after the decision.
            cost_mapping: ``settings`` (default): the built-in cost models backtrader has an
                equivalent for (``percent``, ``spread``, ``zero``, a ``composite`` of one
                ``percent`` and one ``spread``) become backtrader's percentage commission and
                slippage; any other model is evaluated by the broker for every fill.
                ``model``: the broker evaluates the run's cost model for every fill.
        """

        cost_mapping: Literal["settings", "model"] = "settings"

    def __init__(self, config: BacktraderEngine.Config | None = None) -> None:
        self.config = config if config is not None else BacktraderEngine.Config()

    def run(self, strategy: Strategy, bars: Bars, config: RunSpec) -> EngineOutput:
        """Run ``strategy`` over ``config.start .. config.end`` of ``bars`` in backtrader.

        Args:
            strategy: any rlbridge strategy.
            bars: the run's bars (``config.bars``), history before ``config.start`` included.
            config: the run's :class:`~rlbridge.context.RunSpec`; its ``fill_at`` and
                ``fractional`` govern the fills and the sizing.

        Returns:
            The broker's value, cash and positions at each close, the fills backtrader made,
            the orders and rejections; ``error`` set when the strategy raised (everything
            before its bar is kept).  An error in ``strategy.start`` is raised as is.
        """
        from .bridge import run
        from .costs import backtrader_settings

        spec = config
        settings = (backtrader_settings(spec.cost_model)
                    if self.config.cost_mapping == "settings" else None)
        return run(strategy, bars, spec, settings, fractional=spec.fractional)


@hookimpl
def register_engines(register: Any) -> None:
    register("backtrader", BacktraderEngine,
             description="backtrader's Cerebro and broker: next-open fills, the run's cost "
                         "model as backtrader commission and slippage")
