"""The live order journal: every order intent is in the store before it reaches a broker.

Each order of a live deployment has a deterministic client order id, ``rlb-<deployment>-
<bar>-<symbol>``: the deployment (a hash of what trades: symbols, strategy, broker), the decision
bar and the symbol.  Deciding the same bar again, after a crash or a restart, gives the same ids,
and the store's unique client order id refuses a second intent; the broker refuses a second
order with the same id.  Together they make sure no order is sent twice.

An entry moves through ``pending`` (journaled, not known to the broker) to the broker's states
(``new``, ``partially_filled``, then ``filled``, ``canceled``, ``rejected`` or ``expired``).
``expired`` is also what a pending intent becomes when its bar has passed without it being sent:
a stale order is never sent.  Fills are recorded as the broker reports them, linked to their
entry, so the journal's filled quantity always equals the sum of its fills.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..errors import StoreError
from ..interfaces import FINAL_STATES, BrokerOrder, Fill, Order
from ..schema import fills_table, orders_table

if TYPE_CHECKING:
    import pandas as pd

    from ..config import Config
    from ..store import Store

#: journal states that may still change
OPEN_STATES = ("pending", "new", "partially_filled")
#: the broker's view of no order at all, after its bar passed
EXPIRED = "expired"
#: an order computed by ``--dry-run``: journaled, never sent
DRY_RUN = "dry_run"


def deployment_id(config: Config, broker: str) -> str:
    """A short stable hash of what a live deployment trades: symbols, strategy and broker.

    The same config on the same broker gives the same id in every process, which is what makes
    client order ids deterministic across restarts.
    """
    parts = {"symbols": list(config.data.symbols or ()) if config.data else [],
             "strategy": config.strategy.name if config.strategy else None,
             "params": {k: str(v) for k, v in (config.strategy.params.items()
                                               if config.strategy else ())},
             "broker": broker}
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def client_order_id(deployment: str, bar: Any, symbol: str) -> str:
    """``rlb-<deployment>-<YYYYmmddHHMM>-<symbol>``, at most 48 characters (Alpaca's limit)."""
    return id_prefix(deployment, bar) + id_symbol(symbol)


def id_prefix(deployment: str, bar: Any) -> str:
    """``rlb-<deployment>-<YYYYmmddHHMM>-``: what every client order id of one decision starts
    with (a decision's orders take it once, then add :func:`id_symbol`)."""
    import pandas as pd

    stamp = pd.Timestamp(bar)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC")
    return f"rlb-{deployment}-{stamp:%Y%m%d%H%M}-"


def id_symbol(symbol: str) -> str:
    """A symbol as it ends a client order id: letters, digits and dots, at most 18."""
    return re.sub(r"[^A-Za-z0-9.]", "", symbol)[:18]


@dataclass(frozen=True)
class Entry:
    """One journaled order and what the broker has filled of it."""

    row: int
    run_id: str
    client_order_id: str
    symbol: str
    quantity: float
    kind: str
    bar: pd.Timestamp
    status: str
    broker_order_id: str | None
    filled: float = 0.0
    cost: float = 0.0
    commission: float = 0.0

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATES

    def order(self) -> Order:
        """The order to send for this entry."""
        return Order(self.symbol, self.quantity, kind=self.kind, created=self.bar,
                     client_order_id=self.client_order_id)


class Journal:
    """The orders and fills of one deployment in the store.

    Args:
        store: the open store.
        run_id: the live run new entries and fills are recorded under.
        deployment: the deployment id (:func:`deployment_id`).
        by_range: select the deployment's orders as a range of client ids (SQLite, which
            compares them byte by byte) or with ``LIKE`` on their prefix (other databases,
            whose collations may sort them otherwise); None: by the store's database.
    """

    def __init__(self, store: Store, run_id: str, deployment: str, *,
                 by_range: bool | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.deployment = deployment
        self._prefix = f"rlb-{deployment}-"
        o = orders_table.c
        # SQLite compares ids byte by byte, and they sort by deployment then bar: the
        # deployment's orders (of a bar) are a range of the unique index; other databases'
        # collations vary, so they match a prefix
        self._by_range = (store.engine.dialect.name == "sqlite" if by_range is None
                          else by_range)
        self._mine: list[Any] = (
            [o.client_order_id >= sa.bindparam("lo"), o.client_order_id < sa.bindparam("hi")]
            if self._by_range else [o.client_order_id.like(sa.bindparam("pattern"), escape="/")])
        self._any = sa.select(o.id).where(*self._mine).limit(1)
        self._statements: dict[tuple[bool, bool, bool], sa.Select[Any]] = {}
        # one multi-row INSERT ... RETURNING: rows come back in any order, matched by client id
        # (asking SQLAlchemy for the parameters' order has it insert row by row on SQLite)
        self._insert = orders_table.insert().returning(o.client_order_id, o.id)
        self._update = orders_table.update().where(o.id == sa.bindparam("row"))

    # ------------------------------------------------------------------ reading
    def entries(self, *, bar: Any = None, states: Iterable[str] | None = None,
                ids: Iterable[str] | None = None) -> list[Entry]:
        """The deployment's entries (of one decision ``bar``, in ``states``, with these client
        order ``ids``), oldest first."""
        from ..runs._base import _index_from_ns, _stamp_ns

        params: dict[str, Any] = dict(self._owned(bar))
        if bar is not None:
            params["ts"] = _stamp_ns(bar)
        if states is not None:
            params["states"] = list(states)
        if ids is not None:
            params["ids"] = list(ids)
        stmt = self._select(bar is not None, states is not None, ids is not None)
        with self.store.engine.connect() as conn:
            rows = conn.execute(stmt, params).all()
        bars = _index_from_ns([r.ts for r in rows])  # one conversion, not one per row
        return [self._entry(r, bars[i]) for i, r in enumerate(rows)]

    def decided(self, bar: Any) -> bool:
        """Whether the journal holds any order decided on ``bar`` (one indexed lookup)."""
        with self.store.engine.connect() as conn:
            return conn.execute(self._any, self._owned(bar)).first() is not None

    def _select(self, by_bar: bool, by_state: bool, by_id: bool) -> sa.Select[Any]:
        """The statement of :meth:`entries` for these filters, built once per journal: a live
        decision reads the journal several times, and building a statement costs several
        times what SQLite takes to run it."""
        key = (by_bar, by_state, by_id)
        stmt = self._statements.get(key)
        if stmt is None:
            o, f = orders_table.c, fills_table.c
            # the orders, each with the sums of its fills (scalar subqueries on the fills'
            # order index), found through the index on client ids (and states): a join with a
            # GROUP BY would have SQLite walk every order ever journaled instead
            sums = [sa.select(sa.func.sum(value)).where(f.order_id == o.id).scalar_subquery()
                    for value in (f.quantity, f.quantity * f.price, f.commission)]
            stmt = (sa.select(o.id, o.run_id, o.client_order_id, o.symbol, o.quantity, o.kind,
                              o.ts, o.status, o.broker_order_id, *sums)
                    .where(*self._mine).order_by(o.id))
            if by_bar:
                stmt = stmt.where(o.ts == sa.bindparam("ts"))
            if by_state:
                stmt = stmt.where(o.status.in_(sa.bindparam("states", expanding=True)))
            if by_id:
                stmt = stmt.where(o.client_order_id.in_(sa.bindparam("ids", expanding=True)))
            self._statements[key] = stmt
        return stmt

    def _owned(self, bar: Any = None) -> dict[str, str]:
        """The parameters of ``self._mine``: the deployment's orders (of one decision ``bar``)."""
        prefix = self._prefix if bar is None else id_prefix(self.deployment, bar)
        if self._by_range:
            return {"lo": prefix, "hi": prefix[:-1] + "."}
        escaped = prefix.replace("/", "//").replace("%", "/%").replace("_", "/_")
        return {"pattern": escaped + "%"}

    def get(self, client_order_id: str) -> Entry | None:
        """The entry with this client order id."""
        found = self.entries(ids=[client_order_id])
        return found[0] if found else None

    @staticmethod
    def _entry(row: Any, bar: pd.Timestamp) -> Entry:
        order, run, client, symbol, quantity, kind, _, status, broker, q, cost, commission = row
        return Entry(order, run, client, symbol, float(quantity), kind, bar, status, broker,
                     float(q or 0.0), float(cost or 0.0), float(commission or 0.0))

    # ------------------------------------------------------------------ writing
    def intend(self, orders: Sequence[Order], status: str = "pending") -> list[Entry]:
        """Journal ``orders`` (client ids set) in one transaction, before anything is sent.

        Raises:
            StoreError: one of the client ids is journaled already; nothing is written.
        """
        from ..runs._base import _finite, _stamp_ns

        if not orders:
            return []
        missing = [o.symbol for o in orders if not o.client_order_id]
        if missing:
            raise StoreError(f"live orders need client order ids; missing for {missing}")
        ids = [str(o.client_order_id) for o in orders]
        if len(set(ids)) != len(ids):
            raise StoreError(f"a client order id appears twice in one decision: {ids}")
        stamps: dict[Any, int] = {}  # a decision's orders share their bar: converted once
        rows = []
        for order in orders:
            _finite(order.quantity, f"order {order.client_order_id}: quantity")
            if order.created not in stamps:
                stamps[order.created] = _stamp_ns(order.created)
            rows.append({"run_id": self.run_id, "client_order_id": order.client_order_id,
                         "ts": stamps[order.created], "symbol": order.symbol,
                         "quantity": float(order.quantity), "kind": order.kind,
                         "limit_price": order.limit_price, "status": status})
        # the hot path of a live decision: one insert, the store's unique client order id
        # refusing a second intent for the same deployment, bar and symbol
        try:
            with self.store.transaction() as conn:
                made = conn.execute(self._insert, rows).all()
        except sa.exc.IntegrityError:
            taken = [e.client_order_id for e in self.entries(ids=ids)]
            raise StoreError(f"client order id {taken[0] if taken else ids[0]!r} is already "
                             "journaled; nothing was written") from None
        from ..runs._base import _index_from_ns

        ns = list(stamps.values())
        read = dict(zip(ns, _index_from_ns(ns), strict=True))  # as entries() reads them
        made_ids: dict[str, int] = {str(cid): int(row) for cid, row in made}
        return [Entry(made_ids[ids[i]], self.run_id, ids[i], order.symbol,
                      float(order.quantity), order.kind, read[stamps[order.created]], status,
                      None)
                for i, order in enumerate(orders)]

    def mark(self, client_order_id: str, status: str, *, broker_order_id: str | None = None,
             reason: str | None = None) -> None:
        """Set an entry's state (and the broker's id or a reason)."""
        from ..runs import update_order

        update_order(self.store, client_order_id, status=status,
                     broker_order_id=broker_order_id, reason=reason)

    def apply(self, entry: Entry, seen: BrokerOrder, when: Any) -> Fill | None:
        """Bring ``entry`` up to the broker's view ``seen``: record the new fill, if any, and
        the state, in one transaction.

        The new fill is the difference between what the broker says is filled (quantity,
        average price, commission) and the fills already journaled, so a fill is recorded once
        however often the order is looked at, and none is lost between two looks.

        Returns:
            The fill recorded, or None when nothing new was filled.
        """
        return self.apply_all([(entry, seen)], when)[0]

    def apply_all(self, updates: Sequence[tuple[Entry, BrokerOrder]],
                  when: Any) -> list[Fill | None]:
        """:meth:`apply` for several entries, in one transaction (a cycle's looks and sends:
        one commit instead of one per order)."""
        from ..runs._base import _stamp_ns

        fills = self.fills_from(updates, when)
        if not updates:
            return fills
        new_fills = [{"run_id": self.run_id, "order_id": entry.row, "ts": _stamp_ns(fill.time),
                      "symbol": fill.symbol, "quantity": float(fill.quantity),
                      "price": float(fill.price), "commission": float(fill.commission)}
                     for (entry, _), fill in zip(updates, fills, strict=True) if fill is not None]
        states: dict[tuple[str, ...], list[dict[str, Any]]] = {}  # one statement per key set
        for entry, seen in updates:
            values: dict[str, Any] = {"status": seen.status,
                                      "broker_order_id": seen.broker_order_id}
            if seen.reason:
                values["reason"] = seen.reason
            states.setdefault(tuple(sorted(values)), []).append({"row": entry.row, **values})
        with self.store.transaction() as conn:  # executemany: a cycle's 30 orders cost 2 calls
            if new_fills:
                conn.execute(fills_table.insert(), new_fills)
            for params in states.values():
                conn.execute(self._update, params)
        return fills

    @staticmethod
    def fills_from(updates: Sequence[tuple[Entry, BrokerOrder]], when: Any) -> list[Fill | None]:
        """The fill each broker view adds to its entry (None where nothing more filled),
        without writing anything: what :meth:`apply_all` records for the same views.

        The new fill is the difference between what the broker says is filled (quantity,
        average price, commission) and what the entry holds; ``when`` stamps a fill the broker
        gives no time for.

        Raises:
            StoreError: the broker reports a filled quantity without a price.
        """
        fills: list[Fill | None] = []
        for entry, seen in updates:
            fill = None
            more = seen.filled_quantity - entry.filled
            if abs(more) > 1e-9:
                if seen.average_price is None:
                    raise StoreError(f"broker reports {seen.filled_quantity} filled of "
                                     f"{seen.client_order_id} without a price")
                price = (seen.average_price if not entry.filled  # exact for a first fill
                         else (seen.filled_quantity * seen.average_price - entry.cost) / more)
                fill = Fill(entry.symbol, more, price, seen.commission - entry.commission,
                            seen.filled_at if seen.filled_at is not None else when,
                            order_id=entry.client_order_id)
            fills.append(fill)
        return fills

    def positions(self) -> dict[str, float]:
        """Shares held according to the journal's fills (every run of the deployment)."""
        totals: dict[str, float] = {}
        for entry in self.entries():
            if entry.filled:
                totals[entry.symbol] = totals.get(entry.symbol, 0.0) + entry.filled
        return {s: q for s, q in totals.items() if abs(q) > 1e-9}

    def cash_spent(self) -> float:
        """Cash the journal's fills moved out of the account (costs included)."""
        return sum(e.cost + e.commission for e in self.entries())


def is_final(status: str) -> bool:
    """Whether a journal state can no longer change."""
    return status in FINAL_STATES or status == DRY_RUN
