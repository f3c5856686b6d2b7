"""Orders and fills of runs: the order journal (with client order ids) and executed fills."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..errors import DataError, NotFoundError, StoreError
from ..interfaces import Fill, Order
from ..schema import fills_table, orders_table
from ..store import Store
from ._base import RunRecord, _chunks, _finite, _get_run, _index_from_ns, _run_id, _stamp_ns

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["record_fills", "record_orders", "run_fills", "run_orders", "trade_counts",
           "update_order"]


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



def trade_counts(store: Store, run: RunRecord | str) -> dict[str, Any]:
    """How many orders (in all and by status) and fills the run recorded.

    Returns:
        ``{"orders": n, "orders_by_status": {status: n, ...}, "fills": n}``.

    Raises:
        NotFoundError: no such run.
    """
    run_id = _run_id(run)
    o, f = orders_table.c, fills_table.c
    with store._connection() as conn:
        _get_run(store, conn, run_id)
        by_status = {status: int(n) for status, n in conn.execute(
            sa.select(o.status, sa.func.count()).where(o.run_id == run_id)
            .group_by(o.status).order_by(o.status))}
        fills = conn.execute(sa.select(sa.func.count()).where(f.run_id == run_id)).scalar_one()
    return {"orders": sum(by_status.values()), "orders_by_status": by_status,
            "fills": int(fills)}
