"""``rlbridge.backtest(config, engine=...)``: run a config's strategy in an engine and record it.

One function behind ``rlbridge backtest`` and notebooks alike: it loads the bars (with the
history before ``[backtest] start`` the strategy may read), computes the raw features, builds
the cost model, the strategy and the engine from their registries, runs, computes the metrics
and records the run (config, equity, orders, fills, holdings, benchmark) in the store.  A
strategy that fails keeps what was recorded, marks the run failed and raises
:class:`~rlbridge.context.StrategyError` naming the bar.

The benchmark (``[backtest] benchmark``) is a buy-and-hold of one of the run's symbols: the
starting cash held from the first bar's close, fractional, without costs, so its value at bar
``t`` is ``cash * close[t] / close[first bar]``.

``[risk]`` applies in every engine alike: every order goes through the ``check_order`` hook
(:func:`rlbridge.risk.order_check`; rejections are recorded with their reason, status
``rejected``), and with ``max_daily_loss`` or ``max_drawdown`` set the strategy runs behind the
kill switch (:func:`rlbridge.risk.guard`), whose halt is recorded as an order row with status
``halted`` and symbol ``*``, followed by the flattening orders carrying the same reason.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from .config import Config
    from .context import EngineOutput, Rejection
    from .interfaces import Bars, Fill, Order, Strategy
    from .manager import RLBridgePluginManager
    from .risk import Halt
    from .store import Store


@dataclass(frozen=True)
class BacktestResult:
    """The outcome of one backtest.

    Attributes:
        run_id: the run's id in the store (None when not recorded).
        engine, strategy: the names that ran.
        equity: portfolio value at each close, indexed by session date (or UTC time).
        cash: cash at each close.
        weights: ``[T, N+1]`` weights at each close (cash last) as a DataFrame.
        fills, orders, rejections: what traded, what was asked, what the risk check refused.
        metrics: :func:`rlbridge.metrics.performance` of the equity curve.
        final_value: the last equity value.
        benchmark: the benchmark's buy-and-hold value at each close (None without
            ``[backtest] benchmark``), starting at the same cash.
        benchmark_symbol: the benchmark's symbol, or None.
        benchmark_metrics: :func:`~rlbridge.metrics.performance` of ``benchmark`` ({} without).
        config_path: the config file the run came from, if any.
        extra: more about the run.  ``extra["halted"]`` is set when the kill switch of
            ``[risk]`` fired: ``{"time", "bar_index", "reason"}`` of the bar it fired at (the
            portfolio was flattened at the next bar and the strategy not called again).
    """

    run_id: str | None
    engine: str
    strategy: str
    equity: pd.Series
    cash: pd.Series
    weights: pd.DataFrame
    fills: list[Fill]
    orders: list[Order]
    rejections: list[Rejection]
    metrics: dict[str, float]
    final_value: float
    extra: dict[str, Any] = field(default_factory=dict)
    benchmark: pd.Series | None = None
    benchmark_symbol: str | None = None
    benchmark_metrics: dict[str, float] = field(default_factory=dict)
    config_path: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` form: run id, engine, strategy, final value, metrics, trade counts,
        and the benchmark (symbol, final value, metrics) or None."""
        bench = None
        if self.benchmark is not None and len(self.benchmark):
            bench = {"symbol": self.benchmark_symbol,
                     "final_value": float(self.benchmark.iloc[-1]),
                     "metrics": self.benchmark_metrics}
        return {"run_id": self.run_id, "engine": self.engine, "strategy": self.strategy,
                "final_value": self.final_value, "metrics": self.metrics,
                "fills": len(self.fills), "orders": len(self.orders),
                "rejections": [{"symbol": r.order.symbol, "quantity": r.order.quantity,
                                "reason": r.reason} for r in self.rejections],
                "halted": _halted_json(self.extra.get("halted")),
                "start": str(self.equity.index[0].date()) if len(self.equity) else None,
                "end": str(self.equity.index[-1].date()) if len(self.equity) else None,
                "benchmark": bench}


def _halted_json(halted: dict[str, Any] | None) -> dict[str, Any] | None:
    """``extra["halted"]`` with its time as text, for ``--json``."""
    if halted is None:
        return None
    from .data import format_stamp

    return {**halted, "time": format_stamp(halted["time"])}


def decision_range(bars: Bars, start: Any, end: Any, *, what: str = "backtest") -> tuple[int, int]:
    """The bar indices of the first and last bar between ``start`` and ``end`` (inclusive).

    Raises:
        DataError: the range is empty or outside the bars, naming both ranges.
    """
    import numpy as np

    from .data import format_stamp

    index = bars.index
    lo = 0 if start is None else int(np.searchsorted(index, bars._stamp(start), "left"))
    hi = (len(bars) if end is None
          else int(np.searchsorted(index, bars._stamp(end), "right"))) - 1
    if len(bars) == 0 or lo > hi or hi - lo < 1:
        span = f"{format_stamp(index[0])} .. {format_stamp(index[-1])}" if len(bars) else "none"
        raise DataError(f"the {what} range {start or 'start'} .. {end or 'end'} holds "
                        f"{max(hi - lo + 1, 0)} bar(s) of the data ({span}); it needs at least 2",
                        source=f"[{what}]")
    return lo, hi


def backtest(
    config: Config,
    engine: str | None = None,
    pm: RLBridgePluginManager | None = None,
    *,
    store: Store | None = None,
    record: bool = True,
    bars: Bars | None = None,
    strategy: Strategy | None = None,
) -> BacktestResult:
    """Run ``config``'s strategy over ``[backtest] start .. end`` with ``engine``.

    Args:
        config: needs ``[data]``, ``[strategy]`` and ``[backtest]``; ``[costs]`` (default: no
            costs), ``[features]`` (for strategies that read features) and ``[risk]`` are used
            when present.
        engine: overrides ``[backtest] engine``.
        pm: the plugin manager (default: a new one).
        store: where the run is recorded (default: :func:`rlbridge.store.open_store`).
        record: record the run in the store.
        bars: use these bars instead of loading them through the configured feed.
        strategy: run this strategy object instead of building ``[strategy] name`` (its
            parameters still come from ``[strategy]``: ``ctx.params``).

    Raises:
        ConfigError: a missing table; an unknown engine, strategy or cost model; a benchmark
            that is not one of the run's symbols.
        DataError: the backtest range is outside the data.
        StrategyError: the strategy raised; the run is recorded as failed first.
    """
    import pandas as pd

    from .context import RunSpec
    from .costs import create_cost_model
    from .data import load_bars
    from .metrics import performance

    if pm is None:
        from .manager import make_plugin_manager

        pm = make_plugin_manager(warn=False)
    from .config import require

    require(config, "a backtest needs", "data", "strategy", "backtest")
    settings = config.backtest
    assert settings is not None and config.strategy is not None
    engine_name = engine or settings.engine
    registries = pm.registries
    runner = registries["engines"].create(engine_name, _engine_options(registries, engine_name,
                                                                       settings),
                                          where="backtest", path=config.path)
    if strategy is None:
        strategy = registries["strategies"].create(config.strategy.name, config.strategy.params,
                                                   where="strategy", path=config.path)
    if record and store is None:
        from .store import open_store

        store = open_store(config=config)
    if bars is None:
        bars = load_bars(config, pm, store_url=None if store is None else store.full_url)
    start, end = decision_range(bars, settings.start, settings.end)
    bench_at = _benchmark_column(settings.benchmark, bars.symbols, config.path)
    features, names = None, ()  # type: tuple[np.ndarray | None, tuple[str, ...]]
    if config.features is not None and config.features.transforms:
        from .features import FeaturePipeline

        pipeline = FeaturePipeline.from_config(config.features, pm, path=config.path)
        features, names = pipeline.compute(bars), pipeline.feature_names
    engine_options = getattr(runner, "config", None)

    from .risk import KILL_SWITCH_KEYS, guard, order_check

    # the kill switch wraps the strategy, so every engine halts on the same bar
    guarded = (guard(strategy, config.risk)
               if any(getattr(config.risk, key) is not None for key in KILL_SWITCH_KEYS) else None)
    if guarded is not None:
        strategy = guarded
    spec = RunSpec(
        bars=bars, start=start, end=end, cash=settings.cash,
        cost_model=create_cost_model(config.costs, pm, path=config.path),
        features=features, feature_names=tuple(names), params=config.strategy.params,
        feature_window=None if config.features is None else config.features.window,
        fractional=bool(getattr(engine_options, "fractional", False)),
        fill_at=str(getattr(engine_options, "fill_at", "open")),
        check_order=order_check(pm, config.risk),
    )
    run = None
    if record:
        from .runs import start_run

        # the config as run: an --engine override is what the stored run must say
        ran = config if engine_name == settings.engine else dataclasses.replace(
            config, backtest=dataclasses.replace(settings, engine=engine_name))
        run = start_run(store, "backtest", ran, bars.digest())  # type: ignore[arg-type]
        pm.hook.before_run(run=run)
    spec = dataclasses.replace(spec, on_fill=(lambda fill: pm.hook.after_fill(run=run, fill=fill)))
    try:
        output = runner.run(strategy, bars, spec)
    except BaseException as exc:  # the strategy could not start: the run failed before bar 0
        if run is not None:
            from .runs import error_text, finish_run

            run = finish_run(store, run, "failed", error_text(exc))  # type: ignore[arg-type]
            pm.hook.on_run_error(run=run, error=exc)
        raise
    index = output.index
    equity = pd.Series(output.equity, index=index, name="equity")
    cash = pd.Series(output.cash, index=index, name="cash")
    close = bars.close[start:start + len(index)]
    weights = _weights(output, close, bars.symbols)
    benchmark = None
    if bench_at is not None:
        benchmark = pd.Series(settings.cash * close[:, bench_at] / bars.close[start, bench_at],
                              index=index, name=settings.benchmark)
    halt = None if guarded is None else guarded.halted
    if run is not None:
        _record(store, run, output, close, bars.symbols, benchmark, halt)
    if output.error is not None:
        if run is not None:
            from .runs import finish_run

            run = finish_run(store, run, "failed", str(output.error))  # type: ignore[arg-type]
            pm.hook.on_run_error(run=run, error=output.error)
        raise output.error
    metrics = performance(equity, fills=output.fills) if len(equity) > 1 else {}
    result = BacktestResult(
        run_id=None if run is None else run.id, engine=engine_name, strategy=config.strategy.name,
        equity=equity, cash=cash, weights=weights, fills=output.fills, orders=output.orders,
        rejections=output.rejections, metrics=metrics,
        final_value=float(equity.iloc[-1]) if len(equity) else float(settings.cash),
        benchmark=benchmark, benchmark_symbol=None if benchmark is None else settings.benchmark,
        benchmark_metrics=(performance(benchmark) if benchmark is not None
                           and len(benchmark) > 1 else {}),
        config_path=None if config.path is None else str(config.path),
        extra={**output.extra, **({} if halt is None else {"halted": halt.to_dict()})},
    )
    if run is not None:
        from .runs import finish_run

        run = finish_run(store, run, "completed")  # type: ignore[arg-type]
        pm.hook.after_run(run=run, result=result)
    return result


def _engine_options(registries: Any, name: str, settings: Any) -> dict[str, Any]:
    """``[backtest]`` engine options, with ``[backtest] benchmark`` for an engine that takes one.

    ``benchmark`` is a key of the table itself (the report's buy-and-hold); an engine whose
    options have a ``benchmark`` field (``zipline``: its own benchmark returns) gets it too.
    """
    options = dict(settings.options)
    if settings.benchmark is not None and "benchmark" not in options:
        import dataclasses

        from .errors import UnknownNameError

        try:
            factory = registries["engines"].get(name, where="backtest")
        except UnknownNameError:
            return options  # create() reports it, with the valid names
        config = getattr(factory, "Config", None)
        if config is not None and dataclasses.is_dataclass(config) and "benchmark" in {
                f.name for f in dataclasses.fields(config)}:
            options["benchmark"] = settings.benchmark
    return options


def _weights(output: EngineOutput, close: np.ndarray, symbols: tuple[str, ...]) -> pd.DataFrame:
    import pandas as pd

    held = output.positions * close
    frame = pd.DataFrame(held / output.equity[:, None], index=output.index, columns=list(symbols))
    frame["cash"] = output.cash / output.equity
    return frame


def _benchmark_column(symbol: str | None, symbols: tuple[str, ...], path: Any) -> int | None:
    """The column of the benchmark ``symbol`` in the run's bars (None without a benchmark).

    Raises:
        ConfigError: ``symbol`` is not one of the run's symbols.
    """
    if symbol is None:
        return None
    if symbol not in symbols:
        raise ConfigError(f"the benchmark {symbol!r} is not one of the run's symbols "
                          f"({', '.join(symbols)}); add it to [data] symbols or leave "
                          "the benchmark out", path=path, key="backtest.benchmark")
    return symbols.index(symbol)


def _record(store: Any, run: Any, output: EngineOutput, close: np.ndarray,
            symbols: tuple[str, ...], benchmark: pd.Series | None, halt: Halt | None) -> None:
    from .interfaces import Order
    from .runs import record_equity, record_fills, record_orders, record_positions

    record_equity(store, run, output.index, output.equity, output.cash,
                  benchmark=None if benchmark is None else benchmark.to_numpy())
    record_positions(store, run, output.index, symbols, output.positions,
                     output.positions * close)
    flattening = set() if halt is None else {id(order) for order in halt.orders}
    orders = [order for order in output.orders if id(order) not in flattening]
    if orders:
        record_orders(store, run, orders)
    for rejection in output.rejections:
        record_orders(store, run, [rejection.order], status="rejected", reason=rejection.reason)
    if halt is not None:
        # the halt itself ("*": every symbol), then the orders that flattened, with its reason
        record_orders(store, run, [Order("*", 0.0, created=halt.time)], status="halted",
                      reason=halt.reason)
        if halt.orders:
            record_orders(store, run, list(halt.orders), reason=halt.reason)
    if output.fills:
        record_fills(store, run, output.fills)
