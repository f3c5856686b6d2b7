"""Walk-forward validation: train on a window, test on the next, move on, repeat.

``rlbridge walkforward CONFIG`` (and :func:`walkforward`) cuts the data into folds from the
``[walkforward]`` table: each fold trains the ``[policy]`` on its train window and backtests it
on the test window that follows, in the chosen engine.  The out-of-sample pieces are chained into
one equity curve, the way the strategy would have been re-fitted and traded through time.

No fold can see its future, by construction: a fold trains on the bars up to the end of its
train window only (the bars after it are cut off before the features are computed and the
normaliser fitted), and backtests on the bars up to the end of its test window.  A fold's model
is therefore the same whether or not later data exists (a test checks it).

Folds (``mode = "rolling"``): train ``[s + k*step, s + k*step + train)``, then an optional
``gap``, then test for ``test``; ``mode = "expanding"`` keeps every train window starting at
``s``.  ``step`` defaults to ``test``, so the test windows tile the period.  The last test
window is cut at the end of the data when it still holds enough bars.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from .backtesting import BacktestResult
    from .config import Config, WalkforwardConfig
    from .interfaces import Bars
    from .manager import RLBridgePluginManager
    from .store import Store

_PERIOD = re.compile(r"^\s*(\d+)\s*([YMWD])\s*$", re.IGNORECASE)
_UNITS = {"Y": "years", "M": "months", "W": "weeks", "D": "days"}


def parse_period(text: str, *, key: str = "walkforward", allow_zero: bool = False) -> Any:
    """A ``pandas.DateOffset`` from ``"5Y"``, ``"6M"``, ``"13W"`` or ``"90D"``.

    Raises:
        ConfigError: the text is not a number and a unit (naming ``key``).
    """
    match = _PERIOD.match(text) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(f"expected a period like \"5Y\", \"6M\", \"13W\" or \"90D\", got "
                          f"{text!r}", key=key)
    count = int(match[1])
    if count == 0 and not allow_zero:
        raise ConfigError(f"the period must be longer than 0, got {text!r}", key=key)
    import pandas as pd

    return pd.DateOffset(**{_UNITS[match[2].upper()]: count})


@dataclass(frozen=True)
class Fold:
    """One fold: bar index ranges (inclusive) and their first and last timestamps."""

    number: int
    train: tuple[int, int]
    test: tuple[int, int]
    train_span: tuple[pd.Timestamp, pd.Timestamp]
    test_span: tuple[pd.Timestamp, pd.Timestamp]

    def describe(self) -> dict[str, Any]:
        from .data import format_stamp

        return {"fold": self.number,
                "train": [format_stamp(t) for t in self.train_span],
                "test": [format_stamp(t) for t in self.test_span]}


def plan_folds(bars: Bars, settings: WalkforwardConfig, *, window: int | None = None,
               path: Any = None) -> list[Fold]:
    """The folds of ``settings`` over ``bars``.

    Args:
        bars: the data (its timestamps decide which bars fall in each window).
        settings: the ``[walkforward]`` table.
        window: the ``[features] window``: every test window must hold at least that many
            bars (a shorter one could not give the policy a full observation of its own).
        path: the config file, for error messages.

    Raises:
        ConfigError: no fold fits the data, or a test window is shorter than ``window``.
    """
    import numpy as np
    import pandas as pd

    from .data import format_stamp

    index = bars.index
    if len(index) < 4:
        raise ConfigError(f"walk-forward needs data; the bars hold {len(index)}", path=path,
                          key="walkforward")
    train = parse_period(settings.train, key="walkforward.train")
    test = parse_period(settings.test, key="walkforward.test")
    step = test if settings.step is None else parse_period(settings.step, key="walkforward.step")
    gap = parse_period(settings.gap, key="walkforward.gap", allow_zero=True)
    origin = bars._stamp(settings.start) if settings.start is not None else index[0]
    limit = bars._stamp(settings.end) if settings.end is not None else index[-1]
    day = pd.Timedelta(days=1) if not bars.intraday else pd.Timedelta(0)
    need = max(2, window or 0)

    def locate(lo_time: pd.Timestamp, hi_time: pd.Timestamp) -> tuple[int, int]:
        """Bars with lo_time <= t < hi_time (and t <= limit)."""
        lo = int(np.searchsorted(index, lo_time, "left"))
        hi = int(np.searchsorted(index, min(hi_time, limit + day), "left")) - 1
        return lo, hi

    folds: list[Fold] = []
    for k in range(10_000):
        shift = _times(step, k)
        train_start = origin if settings.mode == "expanding" else origin + shift
        train_end = origin + shift + train  # exclusive
        test_start = train_end + gap
        if test_start > limit:
            break
        train_lo, train_hi = locate(train_start, train_end)
        test_lo, test_hi = locate(test_start, test_start + test)
        count = test_hi - test_lo + 1
        if count < need:
            if k == 0 or test_start + test <= limit + day:  # a full window that is too short
                raise ConfigError(
                    f"the test window of fold {k + 1} ({format_stamp(test_start)} .. "
                    f"{format_stamp(test_start + test - day)}) holds {count} bar(s), fewer than "
                    f"{need} ([features] window = {window}): make `test` longer", path=path,
                    key="walkforward.test")
            break  # the last, partial window is too short to test: stop before it
        if train_hi - train_lo + 1 < need:
            raise ConfigError(f"the train window of fold {k + 1} holds {train_hi - train_lo + 1} "
                              f"bar(s), fewer than {need}: make `train` longer", path=path,
                              key="walkforward.train")
        folds.append(Fold(k + 1, (train_lo, train_hi), (test_lo, test_hi),
                          (index[train_lo], index[train_hi]), (index[test_lo], index[test_hi])))
    if not folds:
        first_test = origin + train + gap
        raise ConfigError(
            f"no fold fits the data: train {settings.train} from {format_stamp(origin)}"
            f"{f' and a gap of {settings.gap}' if any(gap.kwds.values()) else ''} reach "
            f"{format_stamp(first_test)}, after the data's end {format_stamp(limit)}; "
            f"shorten `train` or load more data", path=path, key="walkforward")
    return folds


def _times(offset: Any, k: int) -> Any:
    import pandas as pd

    return pd.DateOffset(**{name: value * k for name, value in offset.kwds.items()})


@dataclass(frozen=True)
class FoldResult:
    """What one fold trained and how its test window went."""

    fold: Fold
    backtest: BacktestResult
    model_path: Path | None = None
    train_run_id: str | None = None

    def row(self) -> dict[str, Any]:
        """The fold's line of the per-fold table."""
        m = self.backtest.metrics
        return {**self.fold.describe(), "train_run": self.train_run_id,
                "backtest_run": self.backtest.run_id, "final_value": self.backtest.final_value,
                **{k: m.get(k) for k in ("total_return", "annual_return", "sharpe",
                                         "max_drawdown", "turnover")}}


@dataclass(frozen=True)
class WalkforwardResult:
    """All folds, and the out-of-sample equity they make when chained."""

    run_id: str | None
    engine: str
    folds: list[FoldResult]
    equity: pd.Series
    metrics: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "engine": self.engine,
                "final_value": float(self.equity.iloc[-1]), "metrics": self.metrics,
                "folds": [f.row() for f in self.folds]}


def chain(pieces: list[tuple[pd.Series, pd.Series]], cash: float
          ) -> tuple[pd.Series, pd.Series]:
    """One equity curve (and its cash) from consecutive test windows, each from ``cash``.

    Args:
        pieces: ``(equity, cash)`` of each test window, in order.
        cash: the starting value of the chained curve.

    Each piece contributes its returns from its first bar on, scaled to continue where the
    previous piece ended; where a piece overlaps the next one, the next one wins from its first
    bar.

    Returns:
        ``(equity, cash)`` over the union of the pieces' bars.
    """
    import numpy as np
    import pandas as pd

    stamps, values, cashes, scale = [], [], [], float(cash)
    for i, (equity, held_cash) in enumerate(pieces):
        keep = (equity.index < pieces[i + 1][0].index[0]) if i + 1 < len(pieces) else slice(None)
        piece, piece_cash = equity[keep], held_cash[keep]
        factor = scale / float(piece.iloc[0])
        values.append(piece.to_numpy() * factor)
        cashes.append(piece_cash.to_numpy() * factor)
        stamps.append(piece.index.to_numpy())
        scale = float(values[-1][-1])
    index = pd.DatetimeIndex(np.concatenate(stamps))
    return (pd.Series(np.concatenate(values), index=index, name="equity"),
            pd.Series(np.concatenate(cashes), index=index, name="cash"))


def walkforward(
    config: Config,
    engine: str | None = None,
    pm: RLBridgePluginManager | None = None,
    *,
    store: Store | None = None,
    record: bool = True,
    bars: Bars | None = None,
    on_fold: Callable[[Fold, str], None] | None = None,
) -> WalkforwardResult:
    """Train and test ``config`` fold by fold (``rlbridge walkforward``).

    Args:
        config: needs ``[data]``, ``[strategy]``, ``[backtest]`` and ``[walkforward]``; with a
            ``[policy]`` (and ``[features]``, ``[train]``) each fold trains it first and the
            strategy (``rl_allocation``) trades the fold's model.
        engine: overrides ``[backtest] engine``.
        pm: the plugin manager (default: a new one).
        store: where the runs are recorded (default: :func:`rlbridge.store.open_store`).
        record: record every fold's runs and the walk-forward run.
        bars: use these bars instead of loading them through the configured feed.
        on_fold: called with ``(fold, "train" | "test")`` as each phase starts (progress).

    Raises:
        ConfigError: a missing table, folds that do not fit the data, a test window shorter
            than the feature window.
    """
    from .config import require
    from .data import load_bars
    from .metrics import performance

    require(config, "a walk-forward needs", "data", "strategy", "backtest", "walkforward")
    assert config.walkforward is not None and config.backtest is not None
    assert config.strategy is not None
    if config.policy is not None and config.train is None:
        raise ConfigError("a walk-forward that trains needs a [train] table (timesteps, seed)",
                          path=config.path, key="train")
    if pm is None:
        from .manager import make_plugin_manager

        pm = make_plugin_manager(warn=False)
    if record and store is None:
        from .store import open_store

        store = open_store(config=config)
    if bars is None:
        bars = load_bars(config, pm, store_url=None if store is None else store.full_url)
    window = config.features.window if config.features is not None else None
    folds = plan_folds(bars, config.walkforward, window=window, path=config.path)
    engine_name = engine or config.backtest.engine
    run = None
    if record:
        from .runs import start_run

        run = start_run(store, "walkforward", config, bars.digest())  # type: ignore[arg-type]
        pm.hook.before_run(run=run)
    try:
        results = [_fold(config, fold, bars, engine_name, pm, store, record, on_fold)
                   for fold in folds]
    except BaseException as exc:
        if run is not None:
            from .runs import error_text, finish_run

            run = finish_run(store, run, "failed", error_text(exc))  # type: ignore[arg-type]
            pm.hook.on_run_error(run=run, error=exc)
        raise
    equity, cash = chain([(r.backtest.equity, r.backtest.cash) for r in results],
                         config.backtest.cash)
    metrics = performance(equity, fills=[f for r in results for f in r.backtest.fills])
    # each fold starts flat: its round trips are its own (a position a fold leaves open is
    # not closed by the next fold's first sale)
    import pandas as pd

    from .metrics import round_trips, trade_stats

    trips = [round_trips(r.backtest.fills) for r in results if r.backtest.fills]
    if trips:
        metrics.update(trade_stats(pd.concat(trips, ignore_index=True)))
    result = WalkforwardResult(run.id if run is not None else None, engine_name, results, equity,
                               metrics)
    if run is not None:
        from .runs import finish_run, record_equity, record_fills

        benchmarks = [(r.backtest.benchmark, r.backtest.benchmark) for r in results]
        benchmark = None
        if all(b is not None for b, _ in benchmarks):
            benchmark = chain(benchmarks, config.backtest.cash)[0].to_numpy()
        record_equity(store, run, equity.index, equity.to_numpy(),  # type: ignore[arg-type]
                      cash.to_numpy(), benchmark=benchmark)
        fills = [f for r in results for f in r.backtest.fills]
        if fills:  # every fold's fills, so that the run's turnover and costs can be read back
            record_fills(store, run, fills)  # type: ignore[arg-type]
        run = finish_run(store, run, "completed")  # type: ignore[arg-type]
        pm.hook.after_run(run=run, result=result)
    return result


def _fold(config: Config, fold: Fold, bars: Bars, engine: str, pm: RLBridgePluginManager,
          store: Store | None, record: bool,
          on_fold: Callable[[Fold, str], None] | None) -> FoldResult:
    from .backtesting import backtest
    from .training import train

    assert config.backtest is not None and config.strategy is not None
    strategy = config.strategy
    model_path, train_run = None, None
    if config.policy is not None:
        assert config.train is not None
        if on_fold is not None:
            on_fold(fold, "train")
        base = config.train.output if config.train.output is not None else (
            (config.path.parent if config.path is not None else Path.cwd()) / "models")
        fold_train = dataclasses.replace(
            config.train, start=fold.train_span[0].date(), end=fold.train_span[1].date(),
            output=Path(base) / "walkforward" / f"fold-{fold.number}")
        trained = train(dataclasses.replace(config, train=fold_train), pm, store=store,
                        record=record, bars=bars.between(None, fold.train_span[1]))
        model_path, train_run = trained.path, trained.run_id
        strategy = dataclasses.replace(strategy, params={**strategy.params,
                                                         "model": trained.path})
    if on_fold is not None:
        on_fold(fold, "test")
    fold_backtest = dataclasses.replace(config.backtest, start=fold.test_span[0].date(),
                                        end=fold.test_span[1].date())
    result = backtest(dataclasses.replace(config, backtest=fold_backtest, strategy=strategy),
                      engine, pm, store=store, record=record,
                      bars=bars.between(None, fold.test_span[1]))
    return FoldResult(fold, result, model_path, train_run)
