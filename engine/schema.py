"""The store's schema: the tables, the schema version and the code that creates and checks them.

Timestamps are ``BIGINT`` nanoseconds since the Unix epoch: UTC, or the session date at midnight
for daily bars (interval ``"1d"``).  :mod:`rlbridge.store` reads and writes these tables and
re-exports every name here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from .errors import StoreError
from .interfaces import FIELDS

__all__ = [
    "SCHEMA_VERSION", "metadata", "meta_table", "bars_table", "ingests_table", "runs_table",
    "models_table", "orders_table", "fills_table", "equity_table", "positions_table",
    "prepare_schema",
]

#: The schema version this code writes; a store with a newer one is refused.  Version 2 added
#: ``runs.config_path``, ``equity.benchmark`` and the ``positions`` table; version 3 the indexes
#: the live journal reads through (open orders by state, an order's fills).  An older store gets
#: them when opened (:func:`prepare_schema`).
SCHEMA_VERSION = 3

metadata = sa.MetaData()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _c(name: str, type_: Any, *args: Any, null: bool = False, **kw: Any) -> sa.Column[Any]:
    return sa.Column(name, type_, *args, nullable=null, **kw)


def _created() -> sa.Column[Any]:
    return _c("created_at", sa.DateTime(timezone=True), default=_now)


_ID, _RUN, _SYMBOL = sa.String(64), sa.String(64), sa.String(64)
_TS = sa.BigInteger  # epoch nanoseconds: UTC, or the session date at midnight for daily bars

meta_table = sa.Table(
    "meta", metadata, _c("key", sa.String(64), primary_key=True), _c("value", sa.Text))

bars_table = sa.Table(
    "bars", metadata,
    _c("symbol", _SYMBOL, primary_key=True), _c("interval", sa.String(16), primary_key=True),
    _c("ts", _TS, primary_key=True), *(_c(f, sa.Double) for f in FIELDS),
    sqlite_with_rowid=False,  # clustered on the key: a symbol's bars lie together, in order
)

ingests_table = sa.Table(
    "ingests", metadata,
    _c("id", sa.Integer, primary_key=True, autoincrement=True),
    _c("feed", sa.String(128), default=""), _c("source", sa.Text, default=""),
    _c("symbols", sa.JSON), _c("rows", sa.BigInteger), _created(),
)

runs_table = sa.Table(
    "runs", metadata,
    _c("id", _ID, primary_key=True), _c("kind", sa.String(32)),
    _c("status", sa.String(16), default="running"),
    _c("config", sa.JSON, null=True), _c("data_hash", sa.String(64), null=True),
    _c("error", sa.Text, null=True),
    _c("started_at", sa.DateTime(timezone=True), default=_now),
    _c("finished_at", sa.DateTime(timezone=True), null=True),
    _c("config_path", sa.Text, null=True),  # the config file the run was started from
    sa.CheckConstraint("status IN ('running', 'completed', 'failed')", name="runs_status"),
)

models_table = sa.Table(
    "models", metadata,
    _c("id", sa.Integer, primary_key=True, autoincrement=True),
    _c("run_id", _RUN, sa.ForeignKey("runs.id"), null=True, index=True),
    _c("algo", sa.String(64)), _c("path", sa.Text), _c("config", sa.JSON, null=True),
    _c("data_hash", sa.String(64), null=True), _c("versions", sa.JSON, null=True), _created(),
)

orders_table = sa.Table(
    "orders", metadata,
    _c("id", sa.Integer, primary_key=True, autoincrement=True),
    _c("run_id", _RUN, sa.ForeignKey("runs.id"), index=True),
    _c("client_order_id", sa.String(128), unique=True), _c("ts", _TS),
    _c("symbol", _SYMBOL), _c("quantity", sa.Double), _c("kind", sa.String(16), default="market"),
    _c("limit_price", sa.Double, null=True), _c("status", sa.String(32)),
    _c("reason", sa.Text, null=True), _c("broker_order_id", sa.String(128), null=True),
    _created(),
    # the live journal's open orders (a few) among every order a deployment ever placed
    sa.Index("ix_orders_status_client", "status", "client_order_id"),
)

fills_table = sa.Table(
    "fills", metadata,
    _c("id", sa.Integer, primary_key=True, autoincrement=True),
    _c("run_id", _RUN, sa.ForeignKey("runs.id"), index=True),
    _c("order_id", sa.Integer, sa.ForeignKey("orders.id"), null=True), _c("ts", _TS),
    _c("symbol", _SYMBOL), _c("quantity", sa.Double), _c("price", sa.Double),
    _c("commission", sa.Double, default=0.0),
    sa.Index("ix_fills_order_id", "order_id"),  # an order's fills: the journal's filled sums
)

equity_table = sa.Table(
    "equity", metadata,
    _c("run_id", _RUN, sa.ForeignKey("runs.id"), primary_key=True),
    _c("ts", _TS, primary_key=True), _c("value", sa.Double), _c("cash", sa.Double),
    _c("benchmark", sa.Double, null=True),  # the benchmark's buy-and-hold value, if any
)

# Holdings at each close: shares and their value at the close.  Only non-zero holdings are
# stored, except at a run's first time, where every symbol of the run has a row (zeros
# included) so that the symbols and their order (``slot``) are known.
positions_table = sa.Table(
    "positions", metadata,
    _c("run_id", _RUN, sa.ForeignKey("runs.id"), primary_key=True),
    _c("ts", _TS, primary_key=True), _c("slot", sa.SmallInteger, primary_key=True),
    _c("symbol", _SYMBOL), _c("quantity", sa.Double), _c("value", sa.Double),
    sqlite_with_rowid=False,  # clustered on the key: a run's rows lie together, in time order
)


def prepare_schema(engine: sa.Engine) -> None:
    """Check the schema version, then create what is missing, in one transaction.

    A store at :data:`SCHEMA_VERSION` is left untouched (opening stays cheap); a new or
    partial one gets the missing tables and, when it has none, the version row.  A store at an
    older version gets the missing tables and the (nullable) columns added since, and its
    version row is raised to :data:`SCHEMA_VERSION`.

    Args:
        engine: the engine of the store to prepare.

    Raises:
        StoreError: the store's schema version is newer than :data:`SCHEMA_VERSION`.
        sqlalchemy.exc.SQLAlchemyError: the driver's own errors (not a database, unreadable,
            refused); :func:`rlbridge.store.open_store` turns them into a ``StoreError``.
    """
    with engine.begin() as conn:
        if sa.inspect(conn).has_table(meta_table.name):
            row = conn.execute(
                sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")
            ).first()
            version = int(row[0]) if row is not None else None
            if version is not None and version > SCHEMA_VERSION:
                raise StoreError(
                    f"its schema version is {version} but this rlbridge knows up to "
                    f"{SCHEMA_VERSION}; upgrade rlbridge"
                )
            if version == SCHEMA_VERSION:
                return  # every table exists: opening stays cheap (the sql feed opens per run)
        else:
            version = None
        metadata.create_all(conn)
        _add_columns(conn)
        _add_indexes(conn)
        if version is None:
            conn.execute(meta_table.insert().values(key="schema_version",
                                                    value=str(SCHEMA_VERSION)))
        else:
            conn.execute(meta_table.update().where(meta_table.c.key == "schema_version")
                         .values(value=str(SCHEMA_VERSION)))


def _add_indexes(conn: sa.Connection) -> None:
    """Create the indexes an older store lacks (``create_all`` makes them with new tables only)."""
    for table in metadata.sorted_tables:
        for index in table.indexes:
            index.create(conn, checkfirst=True)


def _add_columns(conn: sa.Connection) -> None:
    """Add the columns an older store lacks; every column added since version 1 is nullable."""
    inspector = sa.inspect(conn)
    for table in metadata.sorted_tables:
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in have:
                assert column.nullable, f"{table.name}.{column.name} cannot be added"
                ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
                conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {ddl}"))
