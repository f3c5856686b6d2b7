"""The ``zipline`` engine: any rlbridge strategy inside zipline-reloaded's simulation.

The run's bars become a zipline bundle on first use (cached under a hash of the bars, see
:mod:`.bundle`); zipline's ``TradingAlgorithm`` runs the sessions of the backtest with its own
blotter and ledger; a ``handle_data`` bridge (:mod:`.bridge`) hands each session to the
strategy; the run's cost model prices every fill through zipline's slippage and commission
extension points (:mod:`.models`).  The result is the ``native`` engine's, fill for fill:
orders decided after a close fill whole at the next open (or close), no order is refused for
cash, and equity, cash and shares are read from zipline's portfolio at each close.

zipline trades whole shares only.  Importing this package imports neither zipline, numpy nor
pandas: ``run`` does.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlbridge.errors import ConfigError
from rlbridge.hookspecs import hookimpl
from rlbridge.interfaces import EngineOptions

if TYPE_CHECKING:
    from rlbridge.context import EngineOutput, RunSpec
    from rlbridge.interfaces import Bars, Strategy

#: the figures of zipline's own performance frame kept in ``ZiplineEngine.zipline_metrics``
ZIPLINE_METRICS = ("algorithm_period_return", "benchmark_period_return", "alpha", "beta",
                   "sharpe", "sortino", "max_drawdown", "algo_volatility",
                   "benchmark_volatility")
WHOLE_SHARES = ("the zipline engine trades whole shares only; leave `fractional` unset (or "
                "false), or run the native engine for fractional shares")
#: zipline's loggers that are not children of the ``zipline`` logger
_LOGGERS = ("zipline", "Algorithm", "AlgoWarning", "Blotter", "DataPortal", "Performance",
            "Trade Simulation", "Trading", "TradingControl", "UsEquityPricing", "ZiplineLog",
            "assets.py", "zipline_logging",
            "alembic", "h5py")  # zipline imports them: their import-time records
_NOISY_MODULES = r"(zipline|empyrical|exchange_calendars)(\..*)?$"


class ZiplineEngine:
    """Runs a strategy in zipline-reloaded, with the fills of the ``native`` engine.

    After a run, :attr:`bundle` is the bundle folder used, :attr:`ingested` says whether this
    run made it, and :attr:`zipline_metrics` holds zipline's own end-of-run figures (returns,
    alpha, beta, Sharpe, ... against the benchmark) as plain floats.
    """

    name = "zipline"

    @dataclass(frozen=True)
    class Config(EngineOptions):
        """``[backtest]`` options of the ``zipline`` engine.

        Attributes:
            fractional: must stay false: zipline trades whole shares.
            fill_at: fill market orders at the ``open`` (default) or the ``close`` of the
                session after the decision.
            calendar: the exchange calendar the bars follow (an ``exchange_calendars`` name).
            benchmark: a symbol of the run whose daily returns are zipline's benchmark;
                None: a zero benchmark.
            root: the folder of cached bundles (default: ``RLBRIDGE_ZIPLINE_ROOT``, else
                ``~/.cache/rlbridge/zipline``).
            keep_bundles: how many bundles ``root`` keeps, the most recently used; older ones
                are deleted when a new one is made.
        """

        calendar: str = "XNYS"
        benchmark: str | None = None
        root: Path | None = None
        keep_bundles: int = 20

        def __post_init__(self) -> None:
            if self.fractional:
                raise ConfigError(WHOLE_SHARES, key="fractional")
            if not self.calendar:
                raise ConfigError("empty calendar name; e.g. 'XNYS'", key="calendar")
            if self.keep_bundles < 1:
                raise ConfigError(f"must be at least 1 (the run's own bundle), got "
                                  f"{self.keep_bundles}", key="keep_bundles")

    def __init__(self, config: ZiplineEngine.Config | None = None) -> None:
        self.config = config if config is not None else ZiplineEngine.Config()
        self.bundle: Path | None = None
        self.ingested = False
        self.zipline_metrics: dict[str, float] = {}

    def run(self, strategy: Strategy, bars: Bars, config: RunSpec) -> EngineOutput:
        """Run ``strategy`` over the sessions ``config.start .. config.end`` of ``bars``.

        Raises:
            ConfigError: fractional shares, an unknown calendar or benchmark symbol.
            DataError: bars that are not daily or do not follow the calendar's sessions.
        """
        spec = config
        if spec.fractional:
            raise ConfigError(WHOLE_SHARES, key="fractional")
        if spec.fill_at not in ("open", "close"):
            raise ConfigError(f"fill_at must be 'open' or 'close', got {spec.fill_at!r}",
                              key="fill_at")
        with _quiet():
            return self._run(strategy, bars, spec)

    def _run(self, strategy: Strategy, bars: Bars, spec: RunSpec) -> EngineOutput:
        from zipline.algorithm import TradingAlgorithm
        from zipline.finance.trading import SimulationParameters

        from rlbridge.context import EngineOutput

        from .bridge import Bridge, RecordingBlotter, StrategyFailed, ZiplineContext
        from .bundle import check_sessions, default_root, ensure_bundle, load_bundle, open_calendar
        from .models import BarPricer, CostModelCommission, CostModelSlippage

        calendar = open_calendar(self.config.calendar, bars)
        check_sessions(bars, calendar)
        benchmark = self._benchmark(bars, spec)
        root = self.config.root if self.config.root is not None else default_root()
        self.bundle, self.ingested = ensure_bundle(bars, calendar, root,
                                                   keep=self.config.keep_bundles)
        bundle = load_bundle(self.bundle, calendar)
        pricer = BarPricer(spec.cost_model, bars, bundle.assets, spec.fill_at)
        blotter = RecordingBlotter(equity_slippage=CostModelSlippage(pricer),
                                   equity_commission=CostModelCommission(pricer))
        ctx = ZiplineContext(spec)
        bridge = Bridge(strategy, spec, ctx, blotter, pricer, bundle.assets)
        index = bars.index
        algo = TradingAlgorithm(
            sim_params=SimulationParameters(
                start_session=index[spec.start], end_session=index[spec.end],
                trading_calendar=calendar, capital_base=float(spec.cash),
                data_frequency="daily"),
            data_portal=bundle.data_portal(calendar), trading_calendar=calendar,
            blotter=blotter, benchmark_returns=benchmark,
            initialize=bridge.initialize, handle_data=bridge.handle_data)
        strategy.start(ctx)  # a setup error (bad params, a mismatched model) is raised as is
        self.zipline_metrics = {}
        try:
            perf = algo.run()
        except StrategyFailed:
            pass
        else:
            bridge.stop()
            last = perf.iloc[-1]
            self.zipline_metrics = {key: _number(last.get(key)) for key in ZIPLINE_METRICS}
        done = bridge.marked
        return EngineOutput(spec.index[:done], bridge.equity[:done], bridge.cash[:done],
                            bridge.positions[:done], bridge.fills, ctx.orders, ctx.rejections,
                            bridge.error, extra={"zipline": dict(self.zipline_metrics)})

    def _benchmark(self, bars: Bars, spec: RunSpec) -> Any:
        """zipline's daily benchmark returns over the run's sessions (tz-naive, or zipline
        silently reads zeros): the benchmark symbol's close-to-close returns, or zeros."""
        import numpy as np
        import pandas as pd

        sessions = bars.index[spec.start:spec.end + 1]
        symbol = self.config.benchmark
        if symbol is None:
            return pd.Series(0.0, index=sessions)
        if symbol not in bars.symbols:
            raise ConfigError(f"benchmark {symbol!r} is not a symbol of this run; the run "
                              f"trades {', '.join(bars.symbols)}", key="benchmark")
        close = bars.close[:, bars.symbols.index(symbol)]
        returns = np.zeros(len(close))
        returns[1:] = close[1:] / close[:-1] - 1.0
        return pd.Series(returns[spec.start:spec.end + 1], index=sessions)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence zipline's log records below ERROR and its (and its helpers') warnings."""
    names = set(_LOGGERS) | {name for name in logging.root.manager.loggerDict
                             if name.startswith("zipline")}
    loggers = [logging.getLogger(name) for name in sorted(names)]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=_NOISY_MODULES)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@hookimpl
def register_engines(register: Any) -> None:
    register("zipline", ZiplineEngine,
             description="zipline-reloaded's simulation (bundle made from the run's bars), "
                         "fills as native: next open, the run's cost model, whole shares")
