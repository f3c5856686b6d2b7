"""Equity curves, holdings and benchmarks of runs: recorded at each close, read back as pandas."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ..errors import DataError
from ..schema import equity_table, positions_table
from ..store import Store
from ._base import RunRecord, _get_run, _index_from_ns, _index_ns, _insert_many, _run_id

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["EquitySpan", "equity_spans", "record_equity", "record_positions", "run_benchmark",
           "run_equity", "run_positions"]


@dataclass(frozen=True)
class EquitySpan:
    """The extent of a run's recorded equity curve (:func:`equity_spans`).

    Attributes:
        start, end: the first and last time (session dates for daily runs, else UTC).
        bars: the number of recorded values.
        final_value: the value at ``end``.
    """

    start: pd.Timestamp
    end: pd.Timestamp
    bars: int
    final_value: float


def record_equity(store: Store, run: RunRecord | str, index: pd.DatetimeIndex,
                  value: np.ndarray | Sequence[float],
                  cash: np.ndarray | Sequence[float], *,
                  benchmark: np.ndarray | Sequence[float] | None = None) -> int:
    """Record portfolio value and cash at each time of ``index``; return the rows written.

    Call it once with the whole curve or repeatedly with consecutive pieces: rows of the run
    between the first and last time of ``index`` are replaced, so recording a bar again does
    not duplicate it.  ``benchmark`` is the value of the run's benchmark at each time (read
    back by :func:`run_benchmark`).

    Raises:
        DataError: lengths differ, ``index`` is not sorted and unique, or a value is not finite
            (naming the time).
        NotFoundError: no such run.
    """
    import numpy as np
    import pandas as pd

    run_id = _run_id(run)
    stamps = pd.DatetimeIndex(index)
    value = np.asarray(value, dtype=np.float64).reshape(-1)
    cash = np.asarray(cash, dtype=np.float64).reshape(-1)
    columns = [("value", value), ("cash", cash)]
    if benchmark is not None:
        columns.append(("benchmark", np.asarray(benchmark, dtype=np.float64).reshape(-1)))
    if not len(stamps) == len(value) == len(cash):
        raise DataError(f"equity of run {run_id}: {len(stamps)} times, {len(value)} values "
                        f"and {len(cash)} cash amounts; they must be equally long")
    if benchmark is not None and len(columns[2][1]) != len(stamps):
        raise DataError(f"equity of run {run_id}: {len(stamps)} times and "
                        f"{len(columns[2][1])} benchmark values; they must be equally long")
    if not stamps.is_monotonic_increasing or not stamps.is_unique:
        raise DataError(f"equity of run {run_id}: times must be sorted and unique")
    for name, column in columns:
        bad = ~np.isfinite(column)
        if bad.any():
            at = int(bad.argmax())
            raise DataError(f"equity of run {run_id}: {name} is {column[at]} at {stamps[at]}")
    ns = _index_ns(stamps)
    names = ["ts", *(name for name, _ in columns)]
    rows = [{"run_id": run_id, **dict(zip(names, row, strict=True))}
            for row in zip(ns, *(column.tolist() for _, column in columns), strict=True)]
    with store.transaction() as conn:
        _get_run(store, conn, run_id)
        if rows:
            e = equity_table.c
            conn.execute(sa.delete(equity_table).where(
                e.run_id == run_id, e.ts >= ns[0], e.ts <= ns[-1]))
            conn.execute(equity_table.insert(), rows)
    return len(rows)



def run_equity(store: Store, run: RunRecord | str) -> pd.DataFrame:
    """The run's equity curve: columns ``value`` and ``cash`` indexed by time.

    Raises:
        NotFoundError: no such run.
    """
    import pandas as pd

    run_id = _run_id(run)
    e = equity_table.c
    stmt = sa.select(e.ts, e.value, e.cash).where(e.run_id == run_id).order_by(e.ts)
    with store._connection() as conn:
        _get_run(store, conn, run_id)
        rows = conn.execute(stmt).all()
    index = _index_from_ns([r[0] for r in rows])
    return pd.DataFrame({"value": [r[1] for r in rows], "cash": [r[2] for r in rows]},
                        index=index, dtype="float64")



# ---------------------------------------------------------------------- positions, benchmark
def record_positions(store: Store, run: RunRecord | str, index: pd.DatetimeIndex,
                     symbols: Sequence[str], quantity: np.ndarray,
                     value: np.ndarray) -> int:
    """Record the holdings at each time of ``index``; return the rows written.

    Only non-zero holdings are stored, except at the first time, where every symbol gets a
    row, so that :func:`run_positions` knows the symbols and their order.  Call it once per
    run, with the whole curve.

    Args:
        store: the open store.
        run: the run or its id.
        index: the times (the run's equity times).
        symbols: the ``N`` symbols, in the order of the columns.
        quantity: ``[T, N]`` shares held at each close.
        value: ``[T, N]`` their value at that close.

    Raises:
        DataError: shapes that do not match, or a value that is not finite.
        NotFoundError: no such run.
    """
    import numpy as np
    import pandas as pd

    run_id = _run_id(run)
    stamps = pd.DatetimeIndex(index)
    quantity = np.asarray(quantity, dtype=np.float64)
    value = np.asarray(value, dtype=np.float64)
    shape = (len(stamps), len(symbols))
    if quantity.shape != shape or value.shape != shape:
        raise DataError(f"positions of run {run_id}: {len(stamps)} times x {len(symbols)} "
                        f"symbols, but quantities {quantity.shape} and values {value.shape}")
    for name, array in (("quantity", quantity), ("value", value)):
        bad = ~np.isfinite(array)
        if bad.any():
            t, j = np.argwhere(bad)[0]
            raise DataError(f"positions of run {run_id}: {name} of {symbols[j]} is "
                            f"{array[t, j]} at {stamps[t]}")
    keep = quantity != 0
    if len(stamps):
        keep[0] = True
    t_at, slot = np.nonzero(keep)  # row-major: time order, then slot order
    ns = np.asarray(_index_ns(stamps), dtype=np.int64)
    names = [str(s) for s in symbols]
    rows = zip([run_id] * len(slot), ns[t_at].tolist(), slot.tolist(),
               [names[j] for j in slot.tolist()], quantity[keep].tolist(),
               value[keep].tolist(), strict=True)
    with store.transaction() as conn:
        _get_run(store, conn, run_id)
        _insert_many(conn, positions_table, rows)
    return len(slot)


def run_positions(store: Store, run: RunRecord | str, *, values: bool = False) -> pd.DataFrame:
    """The run's holdings at each time of its equity curve: ``[T, N]``, one column per symbol
    in the run's order, zero where nothing was held.

    Args:
        store: the open store.
        run: the run or its id.
        values: the value of the holdings at each close instead of the shares.

    Returns:
        The frame, indexed like :func:`run_equity`; no columns when the run recorded no
        positions.

    Raises:
        NotFoundError: no such run.
    """
    import numpy as np
    import pandas as pd

    run_id = _run_id(run)
    p, e = positions_table.c, equity_table.c
    with store._connection() as conn:
        _get_run(store, conn, run_id)
        first = sa.select(sa.func.min(p.ts)).where(p.run_id == run_id).scalar_subquery()
        names = conn.execute(sa.select(p.slot, p.symbol).where(p.run_id == run_id, p.ts == first)
                             .order_by(p.slot)).all()
    # the bulk of the rows straight into numpy, without a Python object per row
    times = store._fetch(sa.select(e.ts).where(e.run_id == run_id).order_by(e.ts),
                         [("ts", "i8")])["ts"]
    rows = store._fetch(sa.select(p.ts, p.slot, p.value if values else p.quantity)
                        .where(p.run_id == run_id), [("ts", "i8"), ("slot", "i8"), ("x", "f8")])
    slots = np.array([slot for slot, _ in names], dtype=np.int64)
    frame = np.zeros((len(times), len(slots)))
    frame[np.searchsorted(times, rows["ts"]), np.searchsorted(slots, rows["slot"])] = rows["x"]
    return pd.DataFrame(frame, index=_index_from_ns(times), columns=[s for _, s in names])


def run_benchmark(store: Store, run: RunRecord | str) -> pd.Series | None:
    """The value of the run's benchmark at each time of its equity curve, or None when the run
    recorded no benchmark.

    Raises:
        NotFoundError: no such run.
    """
    import pandas as pd

    run_id = _run_id(run)
    e = equity_table.c
    stmt = sa.select(e.ts, e.benchmark).where(e.run_id == run_id).order_by(e.ts)
    with store._connection() as conn:
        _get_run(store, conn, run_id)
        rows = conn.execute(stmt).all()
    if not rows or all(r[1] is None for r in rows):
        return None
    return pd.Series([math.nan if r[1] is None else r[1] for r in rows],
                     index=_index_from_ns([r[0] for r in rows]), dtype="float64",
                     name="benchmark")



def equity_spans(store: Store, runs: Iterable[RunRecord | str]) -> dict[str, EquitySpan]:
    """The first and last time, number of values and final value of each run's equity curve,
    in two queries whatever the number of runs.

    Returns:
        Run id -> :class:`EquitySpan`; a run without equity (or not in the store) is left out.
    """
    ids = sorted({_run_id(r) for r in runs})
    if not ids:
        return {}
    e = equity_table.c
    spans = (sa.select(e.run_id, sa.func.min(e.ts).label("first"),
                       sa.func.max(e.ts).label("last"), sa.func.count().label("bars"))
             .where(e.run_id.in_(ids)).group_by(e.run_id).subquery())
    stmt = (sa.select(spans.c.run_id, spans.c.first, spans.c.last, spans.c.bars, e.value)
            .join(equity_table, sa.and_(e.run_id == spans.c.run_id, e.ts == spans.c.last)))
    with store._connection() as conn:
        rows = conn.execute(stmt).all()
    out = {}
    for run_id, first, last, bars, value in rows:
        start, end = _index_from_ns([first, last])
        out[run_id] = EquitySpan(start, end, int(bars), float(value))
    return out
