"""Recorded runs side by side on their common dates, and each against a baseline.

::

    comparison = compare_runs(store, ["20260105-101500-0a1f", "20260105-101702-77c3"],
                              baseline="SPY")
    print(format_table(comparison.columns))
    comparison.significance["20260105-101500-0a1f"].p_value

The runs are measured over the span they share, from the latest first time to the earliest
last time, so that every column answers for the same market.  Trades (round trips) count
when they closed inside the span.  The baseline of each run is one of:

* another run, by id;
* ``"equal_weight"``: the ``equal_weight`` strategy (rebalanced every 21 bars) run on the
  native engine over the run's own span, symbols, data and costs, starting from its first
  value; it is computed, not recorded;
* a symbol: the buy-and-hold benchmark recorded with the run when it is that symbol,
  otherwise the run's starting value held in that symbol from the first close, fractional
  and without costs (the benchmark's definition), from the run's own data.

The Sharpe difference of each run over its baseline, its confidence interval and p-value come
from :func:`rlbridge.significance.compare_sharpe` on the paired bar returns of the dates the
two curves share inside the span.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import DataError, NotFoundError, RLBridgeError
from ..store import Store
from ._base import RunRecord
from .records import get_run
from .series import run_benchmark, run_equity
from .trades import run_fills

if TYPE_CHECKING:
    import pandas as pd

    from ..manager import RLBridgePluginManager
    from ..significance import SharpeComparison

__all__ = ["ComparisonError", "RunComparison", "compare_runs"]

EQUAL_WEIGHT = "equal_weight"


class ComparisonError(RLBridgeError):
    """Runs cannot be compared: no equity curve, no common dates, or an unknown baseline."""


@dataclass(frozen=True)
class RunComparison:
    """What :func:`compare_runs` found.

    Attributes:
        start, end: the span the runs share.
        bars: the number of times every run has a value at, inside the span.
        runs: the run ids, in the order asked.
        columns: column label -> metrics over the span (:func:`rlbridge.metrics.performance`
            keys): each run under its id, then each distinct baseline.
        describe: column label -> what it is (``"equal_weight on native, backtest"``).
        baseline: the baseline asked for, or None.
        baselines: run id -> the label of its baseline's column.
        significance: run id -> its Sharpe comparison against its baseline.
    """

    start: pd.Timestamp
    end: pd.Timestamp
    bars: int
    runs: tuple[str, ...]
    columns: dict[str, dict[str, Any]]
    describe: dict[str, str]
    baseline: str | None = None
    baselines: dict[str, str] = field(default_factory=dict)
    significance: dict[str, SharpeComparison] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` form."""
        return {
            "start": _day(self.start), "end": _day(self.end), "bars": self.bars,
            "baseline": self.baseline,
            "runs": [{"run_id": r, "describe": self.describe[r], "metrics": self.columns[r],
                      "baseline": self.baselines.get(r),
                      "significance": (self.significance[r].to_json()
                                       if r in self.significance else None)}
                     for r in self.runs],
            "baselines": {label: {"describe": self.describe[label],
                                  "metrics": self.columns[label]}
                          for label in dict.fromkeys(self.baselines.values())
                          if label not in self.runs},
        }


def compare_runs(
    store: Store,
    runs: list[str] | tuple[str, ...],
    *,
    baseline: str | None = None,
    pm: RLBridgePluginManager | None = None,
    n_boot: int = 2000,
    block: float | None = None,
    confidence: float = 0.95,
    seed: int = 0,
) -> RunComparison:
    """Compare recorded runs over their common dates, each against ``baseline``.

    Args:
        store: the open store.
        runs: run ids (at least one).
        baseline: a run id, ``"equal_weight"`` or a symbol (see the module notes), or None.
        pm: the plugin manager for an ``equal_weight`` baseline or a symbol's data.
        n_boot, block, confidence, seed: the bootstrap's settings
            (:func:`~rlbridge.significance.compare_sharpe`).

    Raises:
        NotFoundError: a run id is not in the store.
        ComparisonError: a run has no equity curve, the runs do not overlap in dates, or the
            baseline is neither a run, ``equal_weight`` nor a symbol of the run.
        DataError: too few common bars for the bootstrap, or a curve that does not move.
    """
    from ..significance import compare_sharpe

    ids = tuple(dict.fromkeys(str(r) for r in runs))
    if not ids:
        raise ComparisonError("name at least one run to compare")
    records = [get_run(store, r) for r in ids]
    curves = {r.id: _equity(store, r) for r in records}
    start, end, common = _overlap(curves)
    columns = {r.id: _measure(curves[r.id], run_fills(store, r), start, end) for r in records}
    describe = {r.id: _describe(r) for r in records}
    comparison = RunComparison(start, end, len(common), ids, columns, describe, baseline)
    if baseline is None:
        return comparison
    resolver = _Baselines(store, pm, baseline)
    resolved = {r.id: resolver.resolve(r, curves[r.id]) for r in records}
    # one column per distinct baseline: curves that differ only in scale (the same benchmark
    # from a different starting cash) are one; a name shared by different curves gets the run
    seen: list[tuple[str, pd.Series, str]] = []
    for run_id, (label, curve, fills, what) in resolved.items():
        pair = common.intersection(curve.index) if curve.index.tz == common.tz else common[:0]
        if len(pair) < 3:
            raise ComparisonError(f"the baseline {label!r} has {len(pair)} bar(s) in common "
                                  f"with run {run_id} between {_day(start)} and {_day(end)}; "
                                  "at least 3 are needed")
        span = curve.loc[start:end]
        column = next((col for name, other, col in seen if name == label
                       and _same_shape(span, other)), None)
        if column is None:
            shared = any(name == label for name, *_ in seen)
            column = f"{label} for {run_id}" if shared else label
            seen.append((label, span, column))
            if column not in columns:
                columns[column] = _measure(curve, fills, start, end)
                describe[column] = what
        comparison.baselines[run_id] = column
        ours = curves[run_id].reindex(pair).pct_change().iloc[1:]
        theirs = curve.reindex(pair).pct_change().iloc[1:]
        comparison.significance[run_id] = compare_sharpe(
            ours, theirs, n_boot=n_boot, block=block, confidence=confidence, seed=seed)
    return comparison


def _measure(curve: pd.Series, fills: pd.DataFrame | None, start: Any,
             end: Any) -> dict[str, Any]:
    """:func:`~rlbridge.metrics.performance` of ``curve`` from ``start`` to ``end``, with the
    fills after ``start`` and the round trips that closed in the span."""
    import pandas as pd

    from ..metrics import performance, round_trips, trade_stats

    span = curve.loc[start:end]
    if fills is None:
        return performance(span)
    inside = fills[(fills.index > start) & (fills.index <= end)]
    metrics = performance(span, fills=inside)
    trips = round_trips(fills)
    closed = pd.DatetimeIndex(trips["closed"])
    metrics.update(trade_stats(trips[(closed > start) & (closed <= end)]))
    return metrics


def _same_shape(a: pd.Series, b: pd.Series) -> bool:
    """Whether two curves move alike: the same times and proportional values."""
    import numpy as np

    if not a.index.equals(b.index):
        return False
    x, y = a.to_numpy(), b.to_numpy()
    return bool(np.allclose(x / x[0], y / y[0], rtol=1e-12, atol=0.0))


def _equity(store: Store, record: RunRecord) -> pd.Series:
    equity = run_equity(store, record)
    if len(equity) < 2:
        raise ComparisonError(f"run {record.id} ({record.kind}, {record.status}) recorded "
                              f"{len(equity)} equity value(s); there is nothing to compare")
    return equity["value"].rename(record.id)


def _overlap(curves: dict[str, pd.Series]) -> tuple[Any, Any, pd.DatetimeIndex]:
    """The common span and the common times of the curves."""
    zones = {str(c.index.tz) for c in curves.values()}
    if len(zones) > 1:
        raise ComparisonError("cannot compare daily runs (session dates) with intraday runs "
                              "(UTC times): " + _spans(curves))
    start = max(c.index[0] for c in curves.values())
    end = min(c.index[-1] for c in curves.values())
    common = None
    for curve in curves.values():
        inside = curve.index[(curve.index >= start) & (curve.index <= end)]
        common = inside if common is None else common.intersection(inside)
    if common is None or len(common) < 2:
        raise ComparisonError(f"the runs do not overlap in dates (at least 2 common bars are "
                              f"needed): {_spans(curves)}")
    return start, end, common


def _spans(curves: dict[str, pd.Series]) -> str:
    return "; ".join(f"{r} {_day(c.index[0])} .. {_day(c.index[-1])}" for r, c in curves.items())


def _day(stamp: Any) -> str:
    return str(stamp.date()) if stamp == stamp.normalize() else str(stamp)


def _describe(record: RunRecord) -> str:
    config = record.config or {}
    strategy = (config.get("strategy") or {}).get("name")
    algo = (config.get("policy") or {}).get("algo")
    engine = (config.get("backtest") or {}).get("engine")
    what = strategy or algo or "?"
    return f"{what} on {engine}, {record.kind}" if engine else f"{what}, {record.kind}"


class _Baselines:
    """Resolves ``--baseline`` for each run, loading data and running backtests once."""

    def __init__(self, store: Store, pm: RLBridgePluginManager | None, name: str) -> None:
        self.store, self.name = store, name
        self._pm = pm
        self._run: RunRecord | None = None
        if name != EQUAL_WEIGHT:
            try:
                self._run = get_run(store, name)
            except NotFoundError:
                self._run = None  # then it is a symbol
        self._cache: dict[str, Any] = {}

    @property
    def pm(self) -> RLBridgePluginManager:
        if self._pm is None:
            from ..manager import make_plugin_manager

            self._pm = make_plugin_manager(warn=False)
        return self._pm

    def resolve(self, record: RunRecord,
                curve: pd.Series) -> tuple[str, pd.Series, pd.DataFrame | None, str]:
        """(column label, value curve, fills or None, description) of ``record``'s baseline."""
        if self._run is not None:
            key = self._run.id
            if key not in self._cache:
                self._cache[key] = _equity(self.store, self._run)
            return (key, self._cache[key], run_fills(self.store, self._run),
                    _describe(self._run))
        config = record.config or {}
        symbols = tuple((config.get("data") or {}).get("symbols") or ())
        if self.name == EQUAL_WEIGHT:
            return self._equal_weight(record, curve, symbols)
        stored = (config.get("backtest") or {}).get("benchmark")
        if stored == self.name:
            bench = run_benchmark(self.store, record)
            if bench is not None and bench.notna().all():
                return (f"{self.name} (buy & hold)", bench.rename(self.name), None,
                        f"{self.name} buy and hold, the benchmark of {record.id}")
        if self.name not in symbols:
            where = f"benchmark {stored}; " if stored else ""
            raise ComparisonError(
                f"--baseline {self.name!r} is neither a run id, {EQUAL_WEIGHT!r}, nor a symbol "
                f"of run {record.id} ({where}symbols: {', '.join(symbols) or 'none recorded'})")
        close = self._bars(record).frame(self.name)["close"]
        close = close.reindex(curve.index)
        if close.isna().any():
            raise DataError(f"the data of run {record.id} lacks {self.name} closes at some of "
                            "its bars")
        held = float(curve.iloc[0]) * close / float(close.iloc[0])
        return (f"{self.name} (buy & hold)", held.rename(self.name), None,
                f"{self.name} buy and hold from the run's data")

    def _bars(self, record: RunRecord) -> Any:
        from ..config import config_from_mapping
        from ..data import load_bars

        key = repr(("bars", (record.config or {}).get("data"), record.config_path))
        if key not in self._cache:
            config = config_from_mapping(_plain(record), path=record.config_path, pm=self.pm)
            self._cache[key] = load_bars(config, self.pm, store_url=self.store.full_url)
        return self._cache[key]

    def _equal_weight(self, record: RunRecord, curve: pd.Series,
                      symbols: tuple[str, ...]) -> tuple[str, pd.Series, pd.DataFrame, str]:
        import pandas as pd

        from ..backtesting import backtest
        from ..config import config_from_mapping

        config = record.config or {}
        mapping = {key: config[key] for key in ("data", "costs", "store") if config.get(key)}
        mapping["strategy"] = {"name": EQUAL_WEIGHT}
        mapping["backtest"] = {"engine": "native", "cash": float(curve.iloc[0]),
                               "start": _day(curve.index[0]), "end": _day(curve.index[-1])}
        key = repr(mapping) + repr(record.config_path)
        if key not in self._cache:
            if "data" not in mapping:
                raise ComparisonError(f"run {record.id} recorded no [data] table: the "
                                      f"{EQUAL_WEIGHT} baseline needs its data")
            run_config = config_from_mapping(mapping, path=record.config_path, pm=self.pm)
            result = backtest(run_config, pm=self.pm, store=self.store, record=False)
            fills = pd.DataFrame(
                [(f.symbol, float(f.quantity), float(f.price), float(f.commission))
                 for f in result.fills],
                index=pd.DatetimeIndex([f.time for f in result.fills]),
                columns=["symbol", "quantity", "price", "commission"])
            self._cache[key] = (result.equity, fills)
        equity, fills = self._cache[key]
        return (EQUAL_WEIGHT, equity.rename(EQUAL_WEIGHT), fills,
                f"{EQUAL_WEIGHT} of {', '.join(symbols)} on native, rebalanced every 21 bars")


def _plain(record: RunRecord) -> dict[str, Any]:
    """The stored config without the tables a data load does not need."""
    config = record.config or {}
    return {key: config[key] for key in ("data", "store") if config.get(key)}
