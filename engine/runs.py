"""Runs and models in the store: what was run, on which data, what it traded and what it was worth.

A run is one train, backtest, walk-forward or live session.  It is started before any work
(status ``running``), receives its equity curve, orders and fills as they happen, and is
finished as ``completed`` or ``failed`` (with the error text).  A failed run keeps everything
recorded before the failure.  A backtest also records its holdings at each close
(:func:`record_positions`) and its benchmark's value beside its equity, so that its report can
be rebuilt from the store alone.  Trained models are saved with the run that produced them, their
config, the hash of the data and the library versions, and found again by id or by file path.

Every write is one transaction: it is saved whole or not at all.  Configs are stored without
secrets: keys naming a secret, password, token or key id are dropped, at any depth, and
passwords in URLs are masked (:func:`rlbridge.redact.clean_config`).

Timestamps are stored as epoch nanoseconds, the convention of the ``bars`` table: a tz-naive
timestamp (a daily session date) as is, a tz-aware one in UTC.  Read back, a series whose
timestamps all fall on midnight is a tz-naive index of dates; any other is a UTC index.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import secrets
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .errors import DataError, NotFoundError, RLBridgeError, StoreError
from .interfaces import Fill, Order
from .redact import clean_config, mask_text
from .schema import (
    equity_table,
    fills_table,
    models_table,
    orders_table,
    positions_table,
    runs_table,
)
from .store import Store

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "KINDS", "ModelRecord", "RunRecord", "clean_config", "error_text", "finish_run", "get_model",
    "get_run", "list_models", "list_runs", "record_equity", "record_fills", "record_orders",
    "record_positions", "recording", "run_benchmark", "run_equity", "run_fills", "run_orders",
    "run_positions", "save_model", "start_run", "update_order",
]

#: The kinds of run the store records.
KINDS: tuple[str, ...] = ("train", "backtest", "walkforward", "live")
_FINAL = ("completed", "failed")
_SHOWN = 5  # records listed in a "not found" message


# ---------------------------------------------------------------------- records
@dataclass(frozen=True)
class RunRecord:
    """One row of ``runs``.

    Attributes:
        id: sortable id, the UTC start time and a random suffix: ``"20261121-011502-a3f9"``.
        kind: ``"train"``, ``"backtest"``, ``"walkforward"`` or ``"live"``.
        status: ``"running"``, ``"completed"`` or ``"failed"``.
        config: the run's config as stored (secrets removed).
        data_hash: the hash of the data the run used (:meth:`Bars.digest`), if given.
        started_at: when the run started (UTC).
        finished_at: when it finished (UTC), None while running.
        error: the error text of a failed run.
        config_path: the config file the run was started from, if any.
    """

    id: str
    kind: str
    status: str
    config: dict[str, Any]
    data_hash: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    error: str | None = None
    config_path: str | None = None


@dataclass(frozen=True)
class ModelRecord:
    """One row of ``models``: a trained policy file and what it was trained with.

    Attributes:
        id: the model id (``rlbridge backtest --model ID``).
        run_id: the training run, or None.
        algo: the algorithm name, e.g. ``"ppo"``.
        path: the absolute path of the saved model file.
        config: the training config (secrets removed).
        data_hash: the hash of the training data.
        versions: library name -> version at training time (None: not installed).
        created_at: when the model was saved (UTC).
    """

    id: int
    run_id: str | None
    algo: str
    path: str
    config: dict[str, Any]
    data_hash: str | None
    versions: dict[str, str | None]
    created_at: dt.datetime


# ---------------------------------------------------------------------- runs
def start_run(store: Store, kind: str, config: Mapping[str, Any] | Any,
              data_hash: str | None = None, *, config_path: str | Path | None = None
              ) -> RunRecord:
    """Record a new run with status ``running``.

    Args:
        store: the open store.
        kind: one of :data:`KINDS`.
        config: the run's config: a mapping, or a :class:`~rlbridge.config.Config` (anything
            with ``to_dict()``) or dataclass.  Stored without secrets (:func:`clean_config`).
        data_hash: the hash of the data the run uses.
        config_path: the config file the run was started from (default: ``config.path``
            when the config has one).

    Raises:
        StoreError: an unknown ``kind``, or the store cannot be written.
    """
    if kind not in KINDS:
        raise StoreError(f"unknown run kind {kind!r}; kinds: {', '.join(KINDS)}")
    cleaned = clean_config(config)
    if config_path is None:
        config_path = getattr(config, "path", None)
    where = None if config_path is None else str(config_path)
    with store.transaction() as conn:
        now, run_id = _new_run_id(conn)
        conn.execute(runs_table.insert().values(
            id=run_id, kind=kind, status="running", config=cleaned, data_hash=data_hash,
            started_at=now, config_path=where))
    return RunRecord(run_id, kind, "running", cleaned, data_hash, now, config_path=where)


def finish_run(store: Store, run: RunRecord | str, status: str = "completed",
               error: str | None = None) -> RunRecord:
    """Mark a running run ``completed`` or ``failed``; what it recorded stays.

    Args:
        store: the open store.
        run: the run or its id.
        status: ``"completed"`` or ``"failed"``.
        error: the error text of a failed run (URL passwords are masked).

    Returns:
        The finished run as stored.

    Raises:
        NotFoundError: no such run.
        StoreError: a bad ``status``, or the run is already finished.
    """
    if status not in _FINAL:
        raise StoreError(f"a run finishes as 'completed' or 'failed', not {status!r}")
    run_id = _run_id(run)
    text = None if error is None else mask_text(str(error))
    with store.transaction() as conn:
        current = _get_run(store, conn, run_id)
        if current.status != "running":
            raise StoreError(f"run {run_id} is already {current.status}")
        now = dt.datetime.now(dt.UTC)
        conn.execute(runs_table.update().where(runs_table.c.id == run_id).values(
            status=status, finished_at=now, error=text))
    return dataclasses.replace(current, status=status, finished_at=now, error=text)


@contextmanager
def recording(store: Store, kind: str, config: Mapping[str, Any] | Any,
              data_hash: str | None = None) -> Iterator[RunRecord]:
    """Start a run, yield it, and finish it: ``completed``, or ``failed`` if the body raises.

    ::

        with recording(store, "backtest", config, bars.digest()) as run:
            record_equity(store, run, index, value, cash)

    The exception is re-raised after the run is marked failed with its text
    (``"KeyboardInterrupt"`` for Ctrl-C); whatever was recorded before it stays.
    """
    run = start_run(store, kind, config, data_hash)
    try:
        yield run
    except BaseException as exc:
        finish_run(store, run, "failed", error_text(exc))
        raise
    finish_run(store, run, "completed")


def get_run(store: Store, run: RunRecord | str) -> RunRecord:
    """The run ``run`` (an id, or a record to read again).

    Raises:
        NotFoundError: no such run; the message lists the most recent runs.
    """
    with store._connection() as conn:
        return _get_run(store, conn, _run_id(run))


def list_runs(store: Store, kind: str | None = None, limit: int | None = 50) -> list[RunRecord]:
    """The most recent runs, newest first, of one ``kind`` (all when None)."""
    t = runs_table.c
    stmt = sa.select(runs_table).order_by(t.started_at.desc(), t.id.desc())
    if kind is not None:
        stmt = stmt.where(t.kind == kind)
    if limit is not None:
        stmt = stmt.limit(limit)
    with store._connection() as conn:
        return [_run_record(row) for row in conn.execute(stmt).mappings()]


# ---------------------------------------------------------------------- equity, orders, fills
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


def record_orders(store: Store, run: RunRecord | str, orders: Sequence[Order],
                  status: str = "submitted", *, reason: str | None = None) -> list[str]:
    """Journal ``orders`` with ``status`` (e.g. ``"pending"``, ``"submitted"``, ``"rejected"``).

    An order's time is its ``created`` bar.  An order without ``client_order_id`` gets
    ``"<run id>-<n>"``, ``n`` counting the run's orders from 1.

    Returns:
        The client order ids, in the order of ``orders``.

    Raises:
        DataError: an order without ``created`` time or with a non-finite quantity.
        StoreError: a client order id already in the store; nothing is written.
        NotFoundError: no such run.
    """
    run_id = _run_id(run)
    if not status or len(status) > 32:
        raise StoreError(f"order status must be 1 to 32 characters, got {status!r}")
    for i, order in enumerate(orders):
        if order.created is None:
            raise DataError(f"order {i} ({order.symbol}) of run {run_id} has no created time")
        _finite(order.quantity, f"order {i} ({order.symbol}) of run {run_id}: quantity")
    o = orders_table.c
    with store.transaction() as conn:
        _get_run(store, conn, run_id)
        count = conn.execute(sa.select(sa.func.count()).where(o.run_id == run_id)).scalar_one()
        ids = [order.client_order_id or f"{run_id}-{count + i + 1}"
               for i, order in enumerate(orders)]
        twice = [c for c, n in Counter(ids).items() if n > 1]
        if twice:
            raise StoreError(f"client order id {twice[0]!r} appears twice in one batch")
        for part in _chunks(ids):
            taken = conn.execute(sa.select(o.client_order_id, o.run_id).where(
                o.client_order_id.in_(part))).first()
            if taken is not None:
                raise StoreError(f"client order id {taken[0]!r} is already recorded "
                                 f"(run {taken[1]}); nothing was written")
        if ids:
            conn.execute(orders_table.insert(), [
                {"run_id": run_id, "client_order_id": cid, "ts": _stamp_ns(order.created),
                 "symbol": order.symbol, "quantity": float(order.quantity), "kind": order.kind,
                 "limit_price": order.limit_price, "status": status, "reason": reason}
                for cid, order in zip(ids, orders, strict=True)])
    return ids


def update_order(store: Store, client_order_id: str, *, status: str,
                 broker_order_id: str | None = None, reason: str | None = None) -> None:
    """Set the status (and the broker's id, or a rejection reason) of a journaled order.

    Raises:
        NotFoundError: no order has ``client_order_id``.
    """
    o = orders_table.c
    values: dict[str, Any] = {"status": status}
    if broker_order_id is not None:
        values["broker_order_id"] = broker_order_id
    if reason is not None:
        values["reason"] = reason
    with store.transaction() as conn:
        done = conn.execute(orders_table.update().where(
            o.client_order_id == client_order_id).values(**values))
        if done.rowcount == 0:
            raise NotFoundError(f"{store.url}: no order with client order id "
                                f"{client_order_id!r}")


def record_fills(store: Store, run: RunRecord | str, fills: Sequence[Fill]) -> int:
    """Record executed ``fills``; return how many were written.

    A fill whose ``order_id`` is the client (or broker) id of an order journaled for the run
    is linked to that order.

    Raises:
        DataError: a fill without time, or with a non-finite quantity, price or commission.
        NotFoundError: no such run.
    """
    run_id = _run_id(run)
    for i, fill in enumerate(fills):
        where = f"fill {i} ({fill.symbol}) of run {run_id}"
        if fill.time is None:
            raise DataError(f"{where} has no time")
        for name in ("quantity", "price", "commission"):
            _finite(getattr(fill, name), f"{where}: {name}")
    o = orders_table.c
    with store.transaction() as conn:
        _get_run(store, conn, run_id)
        wanted = {str(f.order_id) for f in fills if f.order_id is not None}
        linked: dict[str, int] = {}
        for part in _chunks(sorted(wanted)):
            stmt = sa.select(o.id, o.client_order_id, o.broker_order_id).where(
                o.run_id == run_id,
                sa.or_(o.client_order_id.in_(part), o.broker_order_id.in_(part)))
            for oid, client, broker in conn.execute(stmt):
                linked.update({k: oid for k in (broker, client) if k in wanted})
        if fills:
            conn.execute(fills_table.insert(), [
                {"run_id": run_id, "order_id": linked.get(str(f.order_id)),
                 "ts": _stamp_ns(f.time), "symbol": f.symbol, "quantity": float(f.quantity),
                 "price": float(f.price), "commission": float(f.commission)}
                for f in fills])
    return len(fills)


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


def run_fills(store: Store, run: RunRecord | str) -> pd.DataFrame:
    """The run's fills in time order: columns ``symbol``, ``quantity``, ``price``,
    ``commission`` and ``order_id`` (the linked order's client id, or None), indexed by time.

    Raises:
        NotFoundError: no such run.
    """
    import pandas as pd

    run_id = _run_id(run)
    f, o = fills_table.c, orders_table.c
    stmt = (sa.select(f.ts, f.symbol, f.quantity, f.price, f.commission, o.client_order_id)
            .select_from(fills_table.outerjoin(orders_table, f.order_id == o.id))
            .where(f.run_id == run_id).order_by(f.ts, f.id))
    with store._connection() as conn:
        _get_run(store, conn, run_id)
        rows = conn.execute(stmt).all()
    frame = pd.DataFrame(
        [r[1:] for r in rows], index=_index_from_ns([r[0] for r in rows]),
        columns=["symbol", "quantity", "price", "commission", "order_id"])
    return frame.astype({"quantity": "float64", "price": "float64", "commission": "float64"})


def run_orders(store: Store, run: RunRecord | str) -> pd.DataFrame:
    """The run's journaled orders in time order, indexed by time.

    Columns: ``client_order_id``, ``symbol``, ``quantity``, ``kind``, ``limit_price``,
    ``status``, ``reason``, ``broker_order_id``.

    Raises:
        NotFoundError: no such run.
    """
    import pandas as pd

    run_id = _run_id(run)
    o = orders_table.c
    columns = ["client_order_id", "symbol", "quantity", "kind", "limit_price", "status",
               "reason", "broker_order_id"]
    stmt = (sa.select(o.ts, *(getattr(o, c) for c in columns))
            .where(o.run_id == run_id).order_by(o.ts, o.id))
    with store._connection() as conn:
        _get_run(store, conn, run_id)
        rows = conn.execute(stmt).all()
    return pd.DataFrame([r[1:] for r in rows], index=_index_from_ns([r[0] for r in rows]),
                        columns=columns)


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


# ---------------------------------------------------------------------- models
def save_model(store: Store, run: RunRecord | str | None, *, algo: str, path: str | Path,
               config: Mapping[str, Any] | Any, data_hash: str | None,
               versions: Mapping[str, str | None]) -> ModelRecord:
    """Record a saved model file with what it was trained with.

    Args:
        store: the open store.
        run: the training run (or its id), or None.
        algo: the algorithm name.
        path: the model file; stored as an absolute path.
        config: the training config (stored without secrets).
        data_hash: the hash of the training data.
        versions: library name -> version (None for a library not installed).

    Raises:
        NotFoundError: ``run`` is not in the store.
    """
    run_id = None if run is None else _run_id(run)
    where = str(Path(path).expanduser().resolve())
    cleaned = clean_config(config)
    plain_versions = {str(k): None if v is None else str(v) for k, v in versions.items()}
    now = dt.datetime.now(dt.UTC)
    with store.transaction() as conn:
        if run_id is not None:
            _get_run(store, conn, run_id)
        key = conn.execute(models_table.insert().values(
            run_id=run_id, algo=algo, path=where, config=cleaned, data_hash=data_hash,
            versions=plain_versions, created_at=now)).inserted_primary_key
        assert key is not None  # an INSERT always has one
        new_id = key[0]
    return ModelRecord(int(new_id), run_id, algo, where, cleaned, data_hash, plain_versions, now)


def get_model(store: Store, ref: int | str | Path) -> ModelRecord:
    """The model with id ``ref`` (an int or its string) or saved at the path ``ref``.

    A path matches with or without the ``.zip`` suffix stable-baselines3 adds; when several
    models were saved at one path, the newest is returned.

    Raises:
        NotFoundError: no such model; the message lists the most recent model ids.
    """
    m = models_table.c
    if isinstance(ref, int) and not isinstance(ref, bool):
        stmt = sa.select(models_table).where(m.id == ref)
    elif isinstance(ref, str) and ref.strip().isdigit():
        stmt = sa.select(models_table).where(m.id == int(ref.strip()))
    else:
        where = Path(str(ref)).expanduser().resolve()
        forms = {str(where), str(where.with_name(where.name + ".zip"))}
        if where.suffix == ".zip":
            forms.add(str(where.with_suffix("")))
        stmt = sa.select(models_table).where(m.path.in_(forms)).order_by(m.id.desc()).limit(1)
    with store._connection() as conn:
        row = conn.execute(stmt).mappings().first()
        if row is not None:
            return _model_record(row)
        recent = conn.execute(sa.select(m.id, m.algo, m.path).order_by(m.id.desc())
                              .limit(_SHOWN)).all()
    if not recent:
        raise NotFoundError(f"no model {str(ref)!r}: the store {store.url} has no models yet; "
                            "train one with `rlbridge train CONFIG`")
    listed = "; ".join(f"{i} ({algo}, {p})" for i, algo, p in recent)
    raise NotFoundError(f"no model {str(ref)!r} in the store {store.url}; "
                        f"the most recent models are: {listed}")


def list_models(store: Store, limit: int | None = 50) -> list[ModelRecord]:
    """The most recent models, newest first."""
    stmt = sa.select(models_table).order_by(models_table.c.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    with store._connection() as conn:
        return [_model_record(row) for row in conn.execute(stmt).mappings()]


# ---------------------------------------------------------------------- errors
def error_text(exc: BaseException) -> str:
    """The text stored for a failed run: rlbridge's own errors as their message, anything
    else prefixed with its class name (``"ValueError: ..."``), URL passwords masked."""
    if isinstance(exc, KeyboardInterrupt):
        return "KeyboardInterrupt"
    message = mask_text(str(exc))
    if isinstance(exc, RLBridgeError):
        return message or type(exc).__name__
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


_error_text = error_text  # the name engine/train.py imports


# ---------------------------------------------------------------------- helpers
def _new_run_id(conn: sa.Connection) -> tuple[dt.datetime, str]:
    """The start time and a fresh id ``YYYYMMDD-HHMMSS-xxxx`` (UTC, 4 hex digits).

    Ids sort in start order: a run started in the same second as another gets a larger
    suffix, drawn at random above it so that runs started by other processes rarely clash.
    """
    while True:
        now = dt.datetime.now(dt.UTC)
        prefix = f"{now:%Y%m%d-%H%M%S}-"
        last = conn.execute(sa.select(sa.func.max(runs_table.c.id)).where(
            runs_table.c.id.like(prefix + "%"))).scalar_one()
        low = 0 if last is None else int(last[len(prefix):], 16) + 1
        if low <= 0xFFFF:
            return now, f"{prefix}{low + secrets.randbelow(min(0x1000, 0x10000 - low)):04x}"
        time.sleep(1.0 - now.microsecond / 1e6)  # this second's ids are used up


def _insert_many(conn: sa.Connection, table: sa.Table, rows: Iterator[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (tuples in the table's column order) in the connection's transaction.

    SQLite gets them through the driver's ``executemany`` (about 3x faster than building a
    dict per row for SQLAlchemy); other databases through SQLAlchemy's executemany.
    """
    insert = table.insert()
    names = [c.name for c in table.columns]
    if conn.dialect.name == "sqlite":
        compiled = insert.compile(dialect=conn.dialect)
        if compiled.positional and list(compiled.positiontup or ()) == names:
            cursor = conn.connection.cursor()
            try:
                cursor.executemany(str(compiled), rows)  # type: ignore[arg-type]  # any iterable
            finally:
                cursor.close()
            return
    batch = [dict(zip(names, row, strict=True)) for row in rows]
    if batch:
        conn.execute(insert, batch)


def _chunks(items: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    """``items`` in slices small enough for one ``IN (...)`` on any database."""
    for a in range(0, len(items), size):
        yield items[a:a + size]


def _run_id(run: RunRecord | str) -> str:
    return run.id if isinstance(run, RunRecord) else str(run)


def _get_run(store: Store, conn: sa.Connection, run_id: str) -> RunRecord:
    t = runs_table.c
    row = conn.execute(sa.select(runs_table).where(t.id == run_id)).mappings().first()
    if row is not None:
        return _run_record(row)
    recent = [r[0] for r in conn.execute(
        sa.select(t.id).order_by(t.started_at.desc(), t.id.desc()).limit(_SHOWN))]
    if not recent:
        raise NotFoundError(f"no run {run_id!r}: the store {store.url} has no runs yet")
    raise NotFoundError(f"no run {run_id!r} in the store {store.url}; "
                        f"the most recent runs are: {', '.join(recent)}")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite keeps no time zone: the stored times are UTC
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


def _run_record(row: sa.RowMapping) -> RunRecord:
    return RunRecord(row["id"], row["kind"], row["status"], row["config"] or {},
                     row["data_hash"], _utc(row["started_at"]),  # type: ignore[arg-type]
                     _utc(row["finished_at"]), row["error"], row["config_path"])


def _model_record(row: sa.RowMapping) -> ModelRecord:
    return ModelRecord(int(row["id"]), row["run_id"], row["algo"], row["path"],
                       row["config"] or {}, row["data_hash"], row["versions"] or {},
                       _utc(row["created_at"]))  # type: ignore[arg-type]


def _finite(value: Any, what: str) -> None:
    try:
        ok = math.isfinite(float(value))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise DataError(f"{what} is {value!r}, not a finite number")


def _stamp_ns(when: Any) -> int:
    """Epoch nanoseconds of ``when``: tz-naive as is, tz-aware in UTC."""
    import pandas as pd

    try:
        stamp = pd.Timestamp(when)
    except (TypeError, ValueError):
        raise DataError(f"cannot read {when!r} as a time") from None
    if stamp is pd.NaT:
        raise DataError(f"cannot read {when!r} as a time")
    return int(stamp.value)  # .value is UTC for aware stamps, wall time for naive ones


def _index_ns(index: pd.DatetimeIndex) -> list[int]:
    if index.tz is not None:
        index = index.tz_convert("UTC")
    return [int(t) for t in index.asi8]


_DAY_NS = 86_400 * 10**9


def _index_from_ns(stamps: Sequence[int] | np.ndarray) -> pd.DatetimeIndex:
    """Stored stamps as an index: dates (tz-naive) when all are midnight, else UTC."""
    import numpy as np
    import pandas as pd

    ns = np.asarray(stamps, dtype=np.int64)
    index = pd.DatetimeIndex(ns.view("datetime64[ns]"))
    if len(ns) and (ns % _DAY_NS != 0).any():
        return index.tz_localize("UTC").rename("time")
    return index.rename("date")
